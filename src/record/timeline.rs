//! The run second by second: attempts sent (first and retries), outcomes, and the target rate.
//! Built by the collector from every interval it closes (never from the views' `watch` channel,
//! which may skip some), so no second is missed. Memory is bounded: past [`MAX_BUCKETS`] buckets,
//! neighbours are merged and each bucket covers twice as long.

use std::time::Duration;

use super::{Tally, Tickets};
use crate::retry::RetryCounts;

/// Most buckets kept: an hour at one second each, then two hours at two seconds…
pub const MAX_BUCKETS: usize = 3600;

/// What happened during one bucket of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bucket {
    /// Logical requests started: the schedule's own tickets released, sent or not.
    pub logical: u64,
    /// First attempts sent.
    pub first: u64,
    /// Retries sent.
    pub retries: u64,
    /// Attempts failed fast by the client's breaker.
    pub short_circuited: u64,
    /// Retries decided, by the outcome that caused them: rejected, timeout, other failures.
    pub retry_reasons: [u64; 3],
    /// Attempts that ended (answered or failed; not cut).
    pub completed: u64,
    pub ok: u64,
    pub rejected: u64,
    pub timeout: u64,
    /// HTTP, connect, transport and local errors.
    pub errors: u64,
    /// The schedule's target rate over the bucket: the mean of its intervals' target rates
    /// (each at its interval's middle), weighted by their lengths, so that it does not depend on
    /// how often snapshots are taken.
    pub target: f64,
    /// Seconds of intervals behind `target`.
    pub target_secs: f64,
}

impl Bucket {
    fn add(&mut self, o: &Bucket) {
        self.logical += o.logical;
        self.first += o.first;
        self.retries += o.retries;
        self.short_circuited += o.short_circuited;
        for (a, b) in self.retry_reasons.iter_mut().zip(o.retry_reasons) {
            *a += b;
        }
        self.completed += o.completed;
        self.ok += o.ok;
        self.rejected += o.rejected;
        self.timeout += o.timeout;
        self.errors += o.errors;
        let secs = self.target_secs + o.target_secs;
        if secs > 0.0 {
            self.target = (self.target * self.target_secs + o.target * o.target_secs) / secs;
        }
        self.target_secs = secs;
    }

    /// Share of ended attempts that succeeded; `None` when nothing was sent or ended.
    pub fn success_ratio(&self) -> Option<f64> {
        if self.completed > 0 {
            Some(self.ok as f64 / self.completed as f64)
        } else if self.first + self.retries > 0 {
            // Sent but nothing came back: as bad as it gets.
            Some(0.0)
        } else {
            None
        }
    }

    /// Attempts sent per logical request started (1 without retries, a breaker or drops);
    /// `None` when no logical request started.
    pub fn amplification(&self) -> Option<f64> {
        (self.logical > 0).then(|| (self.first + self.retries) as f64 / self.logical as f64)
    }
}

/// Buckets of equal width from the schedule's start.
#[derive(Clone, Debug)]
pub struct Timeline {
    width: Duration,
    buckets: Vec<Bucket>,
    prev: Tickets,
    prev_reasons: [u64; 3],
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            width: Duration::from_secs(1),
            buckets: Vec::new(),
            prev: Tickets::default(),
            prev_reasons: [0; 3],
        }
    }
}

impl Timeline {
    /// Folds one closed interval, whose middle is `mid` after the start and which lasted
    /// `len`, into its bucket. `tickets` (and `retry`, with a retry policy) are the run's
    /// counters at the interval's end (deltas are taken here).
    pub fn add(
        &mut self,
        mid: Duration,
        len: Duration,
        interval: &Tally,
        tickets: &Tickets,
        target: f64,
        retry: Option<&RetryCounts>,
    ) {
        let reasons = retry.map_or([0; 3], |r| r.by_reason);
        let mut retry_reasons = [0; 3];
        for i in 0..3 {
            retry_reasons[i] = reasons[i].saturating_sub(self.prev_reasons[i]);
        }
        self.prev_reasons = reasons;
        let t = tickets;
        let p = &self.prev;
        let retries = t.sent_retries.saturating_sub(p.sent_retries);
        let c = &interval.counts;
        let logical_now = t.scheduled.saturating_sub(t.retries);
        let logical_before = p.scheduled.saturating_sub(p.retries);
        let b = Bucket {
            logical: logical_now.saturating_sub(logical_before),
            first: t.sent.saturating_sub(p.sent).saturating_sub(retries),
            retries,
            short_circuited: t.short_circuited.saturating_sub(p.short_circuited),
            retry_reasons,
            completed: c.completed,
            ok: c.ok,
            rejected: c.rejected,
            timeout: c.timeout,
            errors: c.errors().saturating_sub(c.timeout),
            target: if target.is_finite() { target } else { 0.0 },
            target_secs: len.as_secs_f64().max(1e-6),
        };
        self.prev = *tickets;
        let mut idx = (mid.as_nanos() / self.width.as_nanos()) as usize;
        while idx >= MAX_BUCKETS {
            self.coarsen();
            idx = (mid.as_nanos() / self.width.as_nanos()) as usize;
        }
        if self.buckets.len() <= idx {
            self.buckets.resize(idx + 1, Bucket::default());
        }
        self.buckets[idx].add(&b);
    }

    /// Doubles the bucket width, merging neighbours.
    fn coarsen(&mut self) {
        let merged = self
            .buckets
            .chunks(2)
            .map(|pair| {
                let mut b = pair[0];
                if let Some(o) = pair.get(1) {
                    b.add(o);
                }
                b
            })
            .collect();
        self.buckets = merged;
        self.width *= 2;
    }

    pub fn width(&self) -> Duration {
        self.width
    }

    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(ok: u64, rejected: u64) -> Tally {
        let mut t = Tally::default();
        t.counts.ok = ok;
        t.counts.rejected = rejected;
        t.counts.completed = ok + rejected;
        t
    }

    #[test]
    fn intervals_land_in_their_second_and_deltas_are_taken() {
        let mut tl = Timeline::default();
        let mut tickets = Tickets {
            scheduled: 100,
            sent: 100,
            ..Tickets::default()
        };
        tl.add(
            Duration::from_millis(500),
            Duration::from_secs(1),
            &tally(90, 10),
            &tickets,
            100.0,
            None,
        );
        // 100 more logical requests; 150 attempts sent (50 retries) and 10 retries
        // short-circuited: amplification is what was sent per logical request.
        tickets.scheduled = 260;
        tickets.retries = 60;
        tickets.sent = 250;
        tickets.sent_retries = 50;
        let mut retry = RetryCounts {
            by_reason: [30, 15, 5],
            ..RetryCounts::default()
        };
        tl.add(
            Duration::from_millis(1500),
            Duration::from_secs(1),
            &tally(50, 100),
            &tickets,
            100.0,
            Some(&retry),
        );
        retry.by_reason = [40, 15, 5];
        tl.add(
            Duration::from_millis(1700),
            Duration::from_secs(1),
            &Tally::default(),
            &tickets,
            100.0,
            Some(&retry),
        );
        let b = tl.buckets();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].first, b[0].retries, b[0].ok), (100, 0, 90));
        assert_eq!((b[1].logical, b[1].first, b[1].retries), (100, 100, 50));
        assert_eq!(b[1].amplification(), Some(1.5));
        assert_eq!(
            b[1].retry_reasons,
            [40, 15, 5],
            "deltas, summed within the second"
        );
        assert_eq!(b[0].success_ratio(), Some(0.9));
    }

    #[test]
    fn memory_stays_bounded_by_coarsening() {
        let mut tl = Timeline::default();
        let mut tickets = Tickets::default();
        for s in 0..10_000u64 {
            tickets.sent += 10;
            tl.add(
                Duration::from_millis(s * 1000 + 500),
                Duration::from_secs(1),
                &tally(10, 0),
                &tickets,
                10.0,
                None,
            );
        }
        assert!(tl.buckets().len() <= MAX_BUCKETS);
        assert_eq!(tl.width(), Duration::from_secs(4));
        let total: u64 = tl.buckets().iter().map(|b| b.first).sum();
        assert_eq!(total, 100_000, "nothing is lost by merging");
    }

    #[test]
    fn the_target_does_not_depend_on_how_often_snapshots_are_taken() {
        // A ramp through 300 → 350/s over the second: two half-second intervals (a UI's
        // snapshots) or one whole one give the same target.
        let tickets = Tickets::default();
        let mut halves = Timeline::default();
        for (mid, target) in [(250, 312.5), (750, 337.5)] {
            halves.add(
                Duration::from_millis(mid),
                Duration::from_millis(500),
                &Tally::default(),
                &tickets,
                target,
                None,
            );
        }
        let mut whole = Timeline::default();
        whole.add(
            Duration::from_millis(500),
            Duration::from_secs(1),
            &Tally::default(),
            &tickets,
            325.0,
            None,
        );
        assert_eq!(halves.buckets()[0].target, 325.0);
        assert_eq!(whole.buckets()[0].target, 325.0);
        // A bucket half paused (target 0 while paused) shows half the rate, not 0 or the last.
        let mut paused = Timeline::default();
        for (mid, target) in [(250, 0.0), (750, 400.0)] {
            paused.add(
                Duration::from_millis(mid),
                Duration::from_millis(500),
                &Tally::default(),
                &tickets,
                target,
                None,
            );
        }
        assert_eq!(paused.buckets()[0].target, 200.0);
    }
}
