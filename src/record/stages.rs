//! Per-stage tallies for multi-stage profiles, so a report can say "p99 was 4 ms in `warm` and
//! 1.8 s in `peak`" instead of one figure averaged over a ramp.
//!
//! A request belongs to the stage its *intended* start falls in (not the stage it completed in),
//! so a stall's tail is charged to the load that caused it. Memory is fixed at construction: two
//! histograms of 2 significant digits (~27 KiB each) per stage, at most [`MAX_STAGES`] stages.

use hdrhistogram::Histogram;

use super::{Class, Outcome, HIGHEST_US};
use crate::schedule::{Shape, Ticket};

/// Beyond this many stages the run keeps no per-stage tallies (the report says so): hundreds of
/// stages are a replay, better read from the per-second progress.
pub const MAX_STAGES: usize = 64;

/// What one stage saw.
#[derive(Clone, Debug)]
pub struct StageTally {
    pub completed: u64,
    pub ok: u64,
    pub rejected: u64,
    /// HTTP errors, timeouts, connect, transport and local errors.
    pub errors: u64,
    pub dropped: u64,
    /// Latency of every request of the stage that took time, cut ones included (µs), 2
    /// significant digits.
    pub latency: Histogram<u64>,
    /// Send lag of every sent request (µs), 2 significant digits.
    pub send_lag: Histogram<u64>,
}

impl StageTally {
    fn new() -> Self {
        // Constant, valid bounds: this cannot fail.
        let h = || {
            Histogram::new_with_bounds(1, HIGHEST_US, 2).expect("static histogram bounds are valid")
        };
        StageTally {
            completed: 0,
            ok: 0,
            rejected: 0,
            errors: 0,
            dropped: 0,
            latency: h(),
            send_lag: h(),
        }
    }

    /// Folds another shard's tally of the same stage into this one.
    pub(super) fn add(&mut self, other: &StageTally) {
        self.completed += other.completed;
        self.ok += other.ok;
        self.rejected += other.rejected;
        self.errors += other.errors;
        self.dropped += other.dropped;
        // Same bounds everywhere, so `add` cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.send_lag.add(&other.send_lag);
    }

    pub(super) fn record(&mut self, o: &Outcome) {
        let us = |d: std::time::Duration| {
            u64::try_from(d.as_micros())
                .unwrap_or(u64::MAX)
                .min(HIGHEST_US)
        };
        // Every request that took time is in the stage's tail, cut ones included.
        self.latency.saturating_record(us(o.latency()));
        if o.was_sent() {
            self.send_lag.saturating_record(us(o.send_lag()));
        }
        match o.class() {
            Class::Cancelled => return,
            Class::Ok => self.ok += 1,
            Class::Rejected => self.rejected += 1,
            _ => self.errors += 1,
        }
        self.completed += 1;
    }
}

/// The stage boundaries of a shape, to find the stage a ticket was due in. The tallies live with
/// the recorder's shards, under their locks, and are merged when read.
#[derive(Debug)]
pub struct StageBook {
    /// Stage start offsets (s), ascending.
    starts: Vec<f64>,
}

impl StageBook {
    /// A book for `shape`, or `None` when per-stage tallies would say nothing
    /// new (one stage, closed loop) or cost too much (more than [`MAX_STAGES`]).
    pub fn for_shape(shape: &Shape) -> Option<StageBook> {
        let spans = shape.stages();
        if spans.len() < 2 || spans.len() > MAX_STAGES {
            return None;
        }
        Some(StageBook {
            starts: spans.iter().map(|s| s.start).collect(),
        })
    }

    /// One empty tally per stage.
    pub(super) fn tallies(&self) -> Vec<StageTally> {
        self.starts.iter().map(|_| StageTally::new()).collect()
    }

    /// The stage a ticket was due in; past the end (a count-limited Poisson run) is the last.
    pub(super) fn index(&self, ticket: &Ticket) -> usize {
        // The shape's own clock, so a paused or re-rated run still charges the right stage.
        let t = ticket.offset().as_secs_f64();
        self.starts.partition_point(|&s| s <= t).saturating_sub(1)
    }
}
