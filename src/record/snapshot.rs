//! What the recorder publishes: an immutable [`Snapshot`] per interval while the run goes on,
//! and the [`Measured`] result at the end. Views (the progress line, and later the terminal UI,
//! interval logs, Prometheus, per-window thresholds) subscribe to snapshots; they never touch
//! the hot path, so a slow view cannot slow a send or change a number.

use std::time::{Duration, SystemTime};

use super::{Connections, ErrorSamples, Health, StageTally, Tally, Tickets, Timeline};
use crate::retry::{BreakerCounts, Logical, RetryCounts};

/// One interval of a run, as published to views.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Time since the schedule's start at the end of this interval.
    pub at: Duration,
    /// Length of the interval (the last one of a run may be short).
    pub interval_len: Duration,
    /// What was recorded during the interval.
    pub interval: Tally,
    /// Everything recorded so far, this interval included.
    pub totals: Tally,
    pub tickets: Tickets,
    /// Tickets waiting for a worker.
    pub backlog: u64,
    /// Workers spawned so far (requests that can be in flight at once).
    pub workers: u64,
    pub connections: Connections,
    /// The target rate at the middle of the interval (`NaN` in closed loop).
    pub target_rate: f64,
    /// The stage running at the middle of the interval, for multi-stage shapes.
    pub stage: Option<String>,
    pub health: Health,
    /// CPU time (user + system) the generator's process has used so far.
    pub cpu: Duration,
    /// Retries so far, when the run has a retry policy.
    pub retry: Option<RetryCounts>,
    /// Pause and rate changes (see [`crate::control`]).
    pub steering: crate::control::Status,
}

impl Snapshot {
    /// Requests sent but not yet finished (answered, failed or cut).
    pub fn in_flight(&self) -> u64 {
        let done = self.totals.counts.completed + self.tickets.cancelled;
        self.tickets.sent.saturating_sub(done)
    }

    /// A one-second snapshot at `at_s` whose interval and totals are both `interval`, at a
    /// target of 100/s: a fixture for the views' and the collector's unit tests.
    #[cfg(test)]
    pub(crate) fn fixture(at_s: u64, interval: Tally) -> Snapshot {
        Snapshot {
            at: Duration::from_secs(at_s),
            interval_len: Duration::from_secs(1),
            interval: interval.clone(),
            totals: interval,
            tickets: Tickets::default(),
            backlog: 0,
            workers: 0,
            connections: Connections::default(),
            target_rate: 100.0,
            stage: None,
            health: Health::default(),
            cpu: Duration::ZERO,
            retry: None,
            steering: Default::default(),
        }
    }
}

/// How the run ended, as named in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The whole schedule ran.
    Completed,
    /// A stop (Ctrl-C, SIGTERM) ended scheduling early; in-flight requests were awaited.
    Interrupted,
    /// A second stop ended the wait for in-flight requests.
    Aborted,
    /// A task of the engine panicked: the measurement is incomplete (a bug in metronome).
    InternalError,
}

/// Everything the views need about a finished run: the last snapshot's figures plus the verdict
/// inputs.
#[derive(Clone, Debug)]
pub struct Measured {
    pub totals: Tally,
    pub tickets: Tickets,
    pub ending: Ending,
    pub started: SystemTime,
    /// From the schedule's start to its end (or the stop).
    pub schedule_span: Duration,
    /// From the schedule's start until the last request was accounted for.
    pub elapsed: Duration,
    /// Most workers (requests that could be in flight at once) the run used.
    pub concurrency: usize,
    /// Per-stage tallies of a multi-stage shape (see [`super::StageBook`]).
    pub stages: Option<Vec<StageTally>>,
    pub health: Health,
    pub connections: Connections,
    pub errors: ErrorSamples,
    /// Connections opened before the clock started (those that succeeded).
    pub warm: usize,
    /// The connection cap in force (after fitting the file-descriptor limit).
    pub max_connections: usize,
    /// The run second by second.
    pub timeline: Timeline,
    /// What the client's retry policy did, when it had one.
    pub retry: Option<RetryResult>,
    /// Pauses and rate changes made during the run.
    pub control: crate::control::Summary,
}

/// What a run's retry policy did: the logical requests' tally, budget and breaker counters.
#[derive(Clone, Debug)]
pub struct RetryResult {
    pub logical: Logical,
    /// Retries refused by the budget.
    pub budget_denied: u64,
    pub breaker: Option<BreakerCounts>,
}
