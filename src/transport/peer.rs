//! What an HTTP/2 server advertises in its first SETTINGS frame: how many concurrent streams it
//! takes on one connection (SETTINGS_MAX_CONCURRENT_STREAMS).
//!
//! hyper's HTTP/2 client queues a request above that limit in its own pending-open queue and
//! says nothing: the request looks sent (its service time runs) while it waits for a stream, so
//! metronome's own waiting would be reported as the server's time. The pool must therefore know
//! the limit and hold each connection to min(`--max-streams`, the peer's limit), opening more
//! connections on demand or, at `--max-connections`, making the wait the generator's (send lag).
//!
//! hyper does not expose the limit (h2 has `current_max_send_streams`, but hyper keeps its h2
//! handle private), so every HTTP/2 connection's bytes pass through a [`Tap`] that reads the
//! server's first frame as hyper reads it: the server connection preface is a SETTINGS frame.
//! Once that frame is through, the tap only forwards (one branch per read).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::record::ConnStats;

/// The frame type of SETTINGS.
const SETTINGS: u8 = 0x4;
/// The identifier of SETTINGS_MAX_CONCURRENT_STREAMS.
const MAX_CONCURRENT_STREAMS: u16 = 0x3;

/// Reads the first HTTP/2 frame of a byte stream, fed in pieces, for its max concurrent streams.
#[derive(Debug, Default)]
pub struct SettingsScan {
    head: [u8; 9],
    head_len: usize,
    /// Payload bytes of the SETTINGS frame still to read (after the head).
    left: usize,
    entry: [u8; 6],
    entry_len: usize,
    found: Option<u32>,
}

/// What the first frame said, once it is through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scanned {
    /// A SETTINGS frame, with the max concurrent streams it set, if it set one.
    Settings(Option<u32>),
    /// The first frame was not SETTINGS (not an HTTP/2 server preface): nothing learned.
    Other,
}

impl SettingsScan {
    /// Feeds bytes the server sent; `Some` once the first frame is complete.
    pub fn feed(&mut self, mut data: &[u8]) -> Option<Scanned> {
        if self.head_len < 9 {
            let take = (9 - self.head_len).min(data.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
            self.head_len += take;
            data = &data[take..];
            if self.head_len < 9 {
                return None;
            }
            if self.head[3] != SETTINGS {
                return Some(Scanned::Other);
            }
            self.left = usize::from(self.head[0]) << 16
                | usize::from(self.head[1]) << 8
                | usize::from(self.head[2]);
        }
        while self.left > 0 && !data.is_empty() {
            let take = (6 - self.entry_len).min(data.len()).min(self.left);
            self.entry[self.entry_len..self.entry_len + take].copy_from_slice(&data[..take]);
            self.entry_len += take;
            self.left -= take;
            data = &data[take..];
            if self.entry_len == 6 {
                self.entry_len = 0;
                let e = self.entry;
                if u16::from_be_bytes([e[0], e[1]]) == MAX_CONCURRENT_STREAMS {
                    self.found = Some(u32::from_be_bytes([e[2], e[3], e[4], e[5]]));
                }
            }
        }
        (self.left == 0).then_some(Scanned::Settings(self.found))
    }
}

/// Where the taps put what they learn: the limit goes to the connection counters (the lowest
/// seen is kept, and reported), and whoever waits for the first connection's is woken.
#[derive(Debug)]
pub struct PeerStreams {
    stats: Arc<ConnStats>,
    /// Woken when a connection's first frame has been read.
    learned: Notify,
}

impl PeerStreams {
    pub fn new(stats: Arc<ConnStats>) -> Self {
        PeerStreams {
            stats,
            learned: Notify::new(),
        }
    }

    /// The server's limit, if it advertised one (the lowest seen).
    pub fn limit(&self) -> Option<u64> {
        self.stats.peer_streams()
    }

    fn learn(&self, scanned: Scanned) {
        if let Scanned::Settings(Some(n)) = scanned {
            self.stats.peer_streams_advertised(u64::from(n));
        }
        // Stores a permit if nobody waits yet, so a later [`PeerStreams::wait`] returns at once.
        self.learned.notify_one();
    }

    /// Waits (up to `timeout`) until a connection's first frame has been read, and returns the
    /// limit then known.
    pub async fn wait(&self, timeout: std::time::Duration) -> Option<u64> {
        let _ = tokio::time::timeout(timeout, self.learned.notified()).await;
        self.limit()
    }
}

/// A connection's byte stream, with the server's first frame read on the way to hyper.
pub struct Tap<T> {
    io: T,
    scan: Option<SettingsScan>,
    peer: Arc<PeerStreams>,
}

impl<T> Tap<T> {
    pub fn new(io: T, peer: Arc<PeerStreams>) -> Self {
        Tap {
            io,
            scan: Some(SettingsScan::default()),
            peer,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tap<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let (Some(scan), Poll::Ready(Ok(()))) = (&mut this.scan, &r) {
            let got = &buf.filled()[before..];
            if got.is_empty() {
                // The connection ended before the first frame: nothing to learn.
                this.scan = None;
                this.peer.learn(Scanned::Other);
            } else if let Some(scanned) = scan.feed(got) {
                this.scan = None;
                this.peer.learn(scanned);
            }
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tap<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SETTINGS frame with the given (id, value) entries.
    fn settings(entries: &[(u16, u32)]) -> Vec<u8> {
        let len = entries.len() * 6;
        let mut out = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            SETTINGS,
            0,
            0,
            0,
            0,
            0,
        ];
        for (id, v) in entries {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    #[test]
    fn the_first_settings_frame_gives_the_limit_however_it_is_cut() {
        let frame = settings(&[(0x4, 65_535), (0x3, 4), (0x5, 16_384)]);
        for cut in 0..=frame.len() {
            let mut s = SettingsScan::default();
            let first = s.feed(&frame[..cut]);
            let got = first.or_else(|| s.feed(&frame[cut..]));
            assert_eq!(got, Some(Scanned::Settings(Some(4))), "cut at {cut}");
        }
        // Byte by byte, followed by more frames that are not read.
        let mut s = SettingsScan::default();
        let mut stream = frame.clone();
        stream.extend_from_slice(&settings(&[(0x3, 9)]));
        let got = stream.iter().find_map(|b| s.feed(std::slice::from_ref(b)));
        assert_eq!(got, Some(Scanned::Settings(Some(4))));
        // No limit advertised; an empty SETTINGS frame; not SETTINGS at all.
        let mut s = SettingsScan::default();
        assert_eq!(
            s.feed(&settings(&[(0x4, 1)])),
            Some(Scanned::Settings(None))
        );
        let mut s = SettingsScan::default();
        assert_eq!(s.feed(&settings(&[])), Some(Scanned::Settings(None)));
        let mut s = SettingsScan::default();
        assert_eq!(s.feed(b"HTTP/1.1 400 Bad"), Some(Scanned::Other));
    }

    #[test]
    fn the_lowest_limit_is_kept_and_zero_is_one() {
        let p = PeerStreams::new(Arc::default());
        assert_eq!(p.limit(), None);
        p.learn(Scanned::Settings(None));
        assert_eq!(p.limit(), None);
        p.learn(Scanned::Settings(Some(8)));
        p.learn(Scanned::Settings(Some(100)));
        assert_eq!(p.limit(), Some(8));
        p.learn(Scanned::Settings(Some(0)));
        assert_eq!(p.limit(), Some(1));
    }

    #[tokio::test]
    async fn the_tap_reads_the_servers_first_frame_and_forwards_every_byte() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, mut server) = tokio::io::duplex(64);
        let peer = Arc::new(PeerStreams::new(Arc::default()));
        let mut tap = Tap::new(client, peer.clone());
        let mut sent = settings(&[(0x3, 4)]);
        sent.extend_from_slice(b"rest");
        server.write_all(&sent).await.unwrap();
        drop(server);
        let mut got = Vec::new();
        tap.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, sent);
        assert_eq!(peer.wait(std::time::Duration::from_secs(1)).await, Some(4));
    }
}
