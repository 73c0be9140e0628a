//! The recorder: the sole owner of measurement.
//!
//! Workers push [`Outcome`]s into the current window under a short lock (three histogram
//! increments and a few counters); once a second the collector swaps the window out, folds it into
//! the whole-run totals and hands a snapshot to the views. Memory is fixed: two windows and one
//! set of totals (plus, for a multi-stage shape, one small tally per stage, updated under the same
//! lock), whatever the run length or rate. Values above the histogram range (1 h) are clamped to
//! it and counted, never dropped.

mod outcome;
mod stages;

pub use outcome::{Class, Completion, Outcome};
pub use stages::{StageBook, StageTally, MAX_STAGES};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest value the histograms hold: one hour in microseconds.
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Significant digits kept by every histogram.
pub const SIGFIGS: u8 = 3;

fn new_histogram() -> Histogram<u64> {
    // Bounds are constants known to be valid, so this cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_US, SIGFIGS).expect("static histogram bounds are valid")
}

/// One histogram per clock, all in microseconds.
#[derive(Clone, Debug)]
pub struct Clocks {
    pub latency: Histogram<u64>,
    pub service_time: Histogram<u64>,
    pub send_lag: Histogram<u64>,
    /// Values that exceeded [`HIGHEST_US`] and were clamped, per clock.
    pub clamped: [u64; 3],
}

impl Default for Clocks {
    fn default() -> Self {
        Clocks {
            latency: new_histogram(),
            service_time: new_histogram(),
            send_lag: new_histogram(),
            clamped: [0; 3],
        }
    }
}

fn record_us(h: &mut Histogram<u64>, clamped: &mut u64, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    if us > HIGHEST_US {
        *clamped += 1;
    }
    h.saturating_record(us.min(HIGHEST_US));
}

impl Clocks {
    fn record(&mut self, o: &Outcome) {
        record_us(&mut self.send_lag, &mut self.clamped[2], o.send_lag());
        if o.class().is_timed() {
            record_us(&mut self.latency, &mut self.clamped[0], o.latency());
            record_us(
                &mut self.service_time,
                &mut self.clamped[1],
                o.service_time(),
            );
        }
    }

    fn add(&mut self, other: &Clocks) {
        // Same bounds everywhere, so `add` cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.service_time.add(&other.service_time);
        let _ = self.send_lag.add(&other.send_lag);
        for i in 0..3 {
            self.clamped[i] += other.clamped[i];
        }
    }

    fn reset(&mut self) {
        self.latency.reset();
        self.service_time.reset();
        self.send_lag.reset();
        self.clamped = [0; 3];
    }
}

/// Outcome counts: per class, and per HTTP status code (a fixed array, no allocation).
#[derive(Clone, Debug)]
pub struct Counts {
    pub completed: u64,
    pub ok: u64,
    pub rejected: u64,
    pub http_error: u64,
    pub timeout: u64,
    pub connect_error: u64,
    pub transport_error: u64,
    /// Index = status code (100..=599).
    pub status: Box<[u64; 600]>,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            completed: 0,
            ok: 0,
            rejected: 0,
            http_error: 0,
            timeout: 0,
            connect_error: 0,
            transport_error: 0,
            status: Box::new([0; 600]),
        }
    }
}

impl Counts {
    fn record(&mut self, o: &Outcome) {
        self.completed += 1;
        match o.class() {
            Class::Ok => self.ok += 1,
            Class::Rejected => self.rejected += 1,
            Class::HttpError => self.http_error += 1,
            Class::Timeout => self.timeout += 1,
            Class::ConnectError => self.connect_error += 1,
            Class::TransportError => self.transport_error += 1,
        }
        if let Some(slot) = self.status.get_mut(usize::from(o.status())) {
            if o.status() > 0 {
                *slot += 1;
            }
        }
    }

    fn add(&mut self, other: &Counts) {
        self.completed += other.completed;
        self.ok += other.ok;
        self.rejected += other.rejected;
        self.http_error += other.http_error;
        self.timeout += other.timeout;
        self.connect_error += other.connect_error;
        self.transport_error += other.transport_error;
        for (a, b) in self.status.iter_mut().zip(other.status.iter()) {
            *a += b;
        }
    }

    fn reset(&mut self) {
        let Counts {
            completed,
            ok,
            rejected,
            http_error,
            timeout,
            connect_error,
            transport_error,
            status,
        } = self;
        for n in [
            completed,
            ok,
            rejected,
            http_error,
            timeout,
            connect_error,
            transport_error,
        ] {
            *n = 0;
        }
        status.fill(0);
    }

    /// Non-zero status codes, ascending.
    pub fn statuses(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.status
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(code, &n)| (code as u16, n))
    }
}

/// Everything measured over some interval: the three clocks and the outcome counts.
#[derive(Clone, Debug, Default)]
pub struct Window {
    pub clocks: Clocks,
    pub counts: Counts,
}

impl Window {
    /// Folds `other` into `self`.
    pub fn add(&mut self, other: &Window) {
        self.clocks.add(&other.clocks);
        self.counts.add(&other.counts);
    }

    pub fn reset(&mut self) {
        self.clocks.reset();
        self.counts.reset();
    }
}

/// Counters owned by the pacer and the shutdown path rather than by outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// Tickets whose intended time was reached while the run was scheduling.
    pub scheduled: u64,
    /// Tickets a worker started on.
    pub sent: u64,
    /// Tickets refused because the backlog was full (never sent).
    pub dropped: u64,
    /// Tickets still in flight or in the backlog when the run stopped waiting.
    pub cancelled: u64,
}

/// What the workers write under the one lock: the current window and, for multi-stage shapes,
/// the per-stage tallies (which are never rotated).
#[derive(Debug, Default)]
struct Live {
    window: Window,
    stages: Vec<StageTally>,
}

/// Shared by the pacer, the workers and the collector.
#[derive(Debug, Default)]
pub struct Recorder {
    live: Mutex<Live>,
    scheduled: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    cancelled: AtomicU64,
    stages: Option<StageBook>,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder::default()
    }

    /// Records one finished request into the current window (and its stage's tally), under one
    /// short lock.
    pub fn record(&self, outcome: &Outcome) {
        let stage = self.stages.as_ref().map(|b| b.index(&outcome.ticket()));
        let mut live = lock(&self.live);
        live.window.clocks.record(outcome);
        live.window.counts.record(outcome);
        if let Some(t) = stage.and_then(|i| live.stages.get_mut(i)) {
            t.record(outcome);
        }
    }

    pub fn scheduled(&self) {
        self.scheduled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self, ticket: &crate::schedule::Ticket) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = self.stages.as_ref().map(|b| b.index(ticket)) {
            if let Some(t) = lock(&self.live).stages.get_mut(i) {
                t.dropped += 1;
            }
        }
    }

    /// Also keeps a tally per stage of a multi-stage shape (see [`StageBook`]).
    pub fn with_stages(mut self, book: Option<StageBook>) -> Self {
        let tallies = book.as_ref().map_or_else(Vec::new, StageBook::tallies);
        lock(&self.live).stages = tallies;
        self.stages = book;
        self
    }

    /// Per-stage tallies, if kept.
    pub fn stage_tallies(&self) -> Option<Vec<StageTally>> {
        self.stages
            .as_ref()
            .map(|_| lock(&self.live).stages.clone())
    }

    pub fn cancelled(&self, n: u64) {
        self.cancelled.fetch_add(n, Ordering::Relaxed);
    }

    pub fn flow(&self) -> Flow {
        Flow {
            scheduled: self.scheduled.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            cancelled: self.cancelled.load(Ordering::Relaxed),
        }
    }

    /// Swaps the current window with `spare` (which must be empty) and returns the filled one in
    /// `spare`. The lock is held only for the swap.
    pub fn rotate(&self, spare: &mut Window) {
        std::mem::swap(&mut lock(&self.live).window, spare);
    }
}

/// A poisoned lock only means a worker panicked mid-record; the counts are still usable.
fn lock(m: &Mutex<Live>) -> std::sync::MutexGuard<'_, Live> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Schedule, Shape};
    use std::time::Instant;

    fn outcome(lat_ms: u64, class: Class, status: u16) -> Outcome {
        let start = Instant::now();
        let t = Schedule::new(Shape::constant(1.0, Duration::from_secs(1)).unwrap(), start)
            .next()
            .unwrap();
        Outcome::new(
            t,
            start,
            start + Duration::from_millis(lat_ms),
            Completion { class, status },
        )
    }

    #[test]
    fn rotate_and_fold() {
        let r = Recorder::new();
        r.record(&outcome(5, Class::Ok, 200));
        r.record(&outcome(7, Class::Rejected, 503));
        r.record(&outcome(0, Class::ConnectError, 0));
        let mut spare = Window::default();
        r.rotate(&mut spare);
        assert_eq!(spare.counts.completed, 3);
        assert_eq!(spare.counts.ok, 1);
        assert_eq!(spare.counts.rejected, 1);
        assert_eq!(spare.counts.connect_error, 1);
        assert_eq!(
            spare.clocks.latency.len(),
            2,
            "connect errors are not timed"
        );
        assert_eq!(spare.clocks.send_lag.len(), 3);
        assert_eq!(
            spare.counts.statuses().collect::<Vec<_>>(),
            vec![(200, 1), (503, 1)]
        );
        let mut total = Window::default();
        total.add(&spare);
        spare.reset();
        assert_eq!(spare.counts.completed, 0);
        assert_eq!(spare.clocks.latency.len(), 0);
        assert_eq!(total.counts.completed, 3);
        assert!(total.clocks.latency.max() >= 7000);
    }

    #[test]
    fn values_beyond_an_hour_are_clamped_and_counted() {
        let mut c = Clocks::default();
        c.record(&outcome(2 * 3_600_000, Class::Timeout, 0));
        assert_eq!(c.clamped[0], 1);
        assert_eq!(c.latency.len(), 1);
        assert!(c.latency.max() <= HIGHEST_US + HIGHEST_US / 1000);
    }

    #[test]
    fn zero_is_recordable() {
        let mut h = new_histogram();
        h.saturating_record(0);
        assert_eq!(h.len(), 1);
        assert_eq!(h.max(), 0);
    }
}
