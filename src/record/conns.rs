//! Connection counters: the transport opens connections on demand, and the report says how many,
//! because a target that closes connections under load (or a fixed pool that ran out) changes
//! what the latency figures mean.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, updated by the transport (atomics: a connection event is rare next to a
/// request, but must never take the recorder's lock).
#[derive(Debug, Default)]
pub struct ConnStats {
    opened: AtomicU64,
    open: AtomicU64,
    peak: AtomicU64,
    closed_by_peer: AtomicU64,
    /// Connections lost to the peer and not yet replaced by a new one.
    unreplaced: AtomicU64,
    reconnects: AtomicU64,
    failed: AtomicU64,
    /// The lowest SETTINGS_MAX_CONCURRENT_STREAMS an HTTP/2 server advertised on a
    /// connection's first frame; 0 while none has.
    peer_streams: AtomicU64,
}

/// A copy of the counters for views.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Connections {
    /// Connections opened, warm-up included.
    pub opened: u64,
    /// Open now (at the end of the run: still open when it ended).
    pub open: u64,
    /// Most open at once.
    pub peak_open: u64,
    /// Found closed, or broken mid-request, by the peer.
    pub closed_by_peer: u64,
    /// Opened to replace a connection the peer closed or broke.
    pub reconnects: u64,
    /// Connection attempts that failed (connect, TLS or HTTP handshake, local limits).
    pub failed: u64,
    /// HTTP/2: the concurrent streams the server allows per connection (its
    /// SETTINGS_MAX_CONCURRENT_STREAMS, the lowest seen), when it advertised a limit.
    pub peer_max_streams: Option<u64>,
}

impl ConnStats {
    /// A connection was established.
    pub fn opened(&self) {
        self.opened.fetch_add(1, Ordering::Relaxed);
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        let replaced = self
            .unreplaced
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if replaced.is_ok() {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection was closed (by us or the peer; see [`ConnStats::lost`]).
    pub fn closed(&self) {
        let _ = self
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// The peer closed or broke a connection.
    pub fn lost(&self) {
        self.closed_by_peer.fetch_add(1, Ordering::Relaxed);
        self.unreplaced.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection attempt failed.
    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// An HTTP/2 server advertised `n` concurrent streams per connection; the lowest is kept.
    /// A limit of 0 (no new streams for now) is kept as 1: a pool that allowed no request at
    /// all would wait forever.
    pub fn peer_streams_advertised(&self, n: u64) {
        let n = n.max(1);
        let _ = self
            .peer_streams
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                (cur == 0 || n < cur).then_some(n)
            });
    }

    /// The concurrent streams per connection the HTTP/2 server allows, if it said.
    pub fn peer_streams(&self) -> Option<u64> {
        let n = self.peer_streams.load(Ordering::Relaxed);
        (n > 0).then_some(n)
    }

    pub fn snapshot(&self) -> Connections {
        Connections {
            opened: self.opened.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
            peak_open: self.peak.load(Ordering::Relaxed),
            closed_by_peer: self.closed_by_peer.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            peer_max_streams: self.peer_streams(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_replace_lost_connections_only() {
        let c = ConnStats::default();
        c.opened();
        c.opened();
        c.opened();
        assert_eq!(c.snapshot().reconnects, 0);
        c.lost();
        c.closed();
        c.opened();
        c.opened();
        let s = c.snapshot();
        assert_eq!(
            (
                s.opened,
                s.open,
                s.peak_open,
                s.closed_by_peer,
                s.reconnects
            ),
            (5, 4, 4, 1, 1)
        );
    }
}
