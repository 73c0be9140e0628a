//! The retry and recovery parts of the report: what the client's policy did to the offered load
//! (amplification), how logical requests ended, and the run second by second.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{round3, Stats};
use crate::record::{Measured, RetryResult, Timeline};
use crate::retry::{BreakerCounts, Policy, Reasons};

/// What the retry policy did (`null` in the JSON without one).
#[derive(Clone, Debug, Serialize)]
pub struct RetryReport {
    /// The policy in one line, as understood.
    pub policy: String,
    /// Attempts sent: first attempts and retries.
    pub first_attempts: u64,
    pub retries: u64,
    /// Attempts sent (first attempts + retries) ÷ logical requests started, over the whole run.
    pub amplification: f64,
    /// Highest amplification of any timeline bucket.
    pub peak_amplification: f64,
    /// Retries decided, by the outcome of the attempt before.
    pub retries_by_reason: Reasons,
    pub logical: LogicalReport,
    /// First attempt's intended start → final outcome, µs (every logical request but dropped
    /// ones; those cut or pending at the end are censored there).
    pub end_to_end_us: Stats,
    /// Logical requests that ended after n attempts.
    pub attempts_used: BTreeMap<String, u64>,
    /// Retries refused by the budget (each ended its logical request as `gave_up.budget`).
    pub budget_denied: u64,
    pub breaker: Option<BreakerCounts>,
    /// Most retries waiting for their due time at once, and the bound (`queue=`).
    pub pending_peak: u64,
    pub queue: usize,
}

/// How the logical requests (a first attempt and its retries) ended.
#[derive(Clone, Debug, Serialize)]
pub struct LogicalReport {
    /// Logical requests started (first attempts scheduled) and ended: equal when the
    /// accounting holds.
    pub started: u64,
    pub ended: u64,
    pub succeeded_first_try: u64,
    pub succeeded_after_retry: u64,
    /// Ended with an outcome the policy does not retry.
    pub failed: u64,
    pub gave_up: GaveUp,
    /// Failed fast by the open breaker, never sent.
    pub short_circuited: u64,
    /// Still in flight, queued or waiting for a retry when the run ended or stopped.
    pub unfinished: u64,
    /// Dropped by the generator (backlog full).
    pub dropped: u64,
    /// Succeeded (first try or after retries) ÷ ended.
    pub success_ratio: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct GaveUp {
    pub attempts_exhausted: u64,
    pub budget: u64,
    pub deadline: u64,
    /// The generator's pending-retry queue was full: the run is untrustworthy.
    pub queue_full: u64,
}

impl RetryReport {
    pub fn new(policy: &Policy, r: &RetryResult, m: &Measured) -> RetryReport {
        let l = &r.logical;
        let t = &m.tickets;
        let retries = t.sent_retries;
        let first = t.sent.saturating_sub(retries);
        let started = t.scheduled.saturating_sub(t.retries);
        let ended = l.ended();
        let succeeded = l.succeeded_first + l.succeeded_retry;
        let peak = m
            .timeline
            .buckets()
            .iter()
            .filter(|b| b.logical >= 10)
            .filter_map(|b| b.amplification())
            .fold(1.0f64, f64::max);
        RetryReport {
            policy: policy.describe(),
            first_attempts: first,
            retries,
            amplification: if started > 0 {
                round3((first + retries) as f64 / started as f64)
            } else {
                1.0
            },
            peak_amplification: round3(peak),
            retries_by_reason: l.retries_by_reason.clone(),
            logical: LogicalReport {
                started,
                ended,
                succeeded_first_try: l.succeeded_first,
                succeeded_after_retry: l.succeeded_retry,
                failed: l.failed,
                gave_up: GaveUp {
                    attempts_exhausted: l.exhausted,
                    budget: l.budget,
                    deadline: l.deadline,
                    queue_full: l.queue_full,
                },
                short_circuited: l.short_circuited,
                unfinished: l.unfinished,
                dropped: l.dropped,
                success_ratio: if ended > 0 {
                    round3(succeeded as f64 / ended as f64)
                } else {
                    0.0
                },
            },
            end_to_end_us: Stats::of(&l.end_to_end, 0),
            attempts_used: l
                .attempts_used
                .iter()
                .enumerate()
                .filter(|(n, c)| *n > 0 && **c > 0)
                .map(|(n, c)| (n.to_string(), *c))
                .collect(),
            budget_denied: r.budget_denied,
            breaker: r.breaker,
            pending_peak: l.pending_peak,
            queue: policy.queue,
        }
    }
}

/// The run bucket by bucket (one second each, coarser for runs over an hour).
#[derive(Clone, Debug, Serialize)]
pub struct TimelineReport {
    pub bucket_s: f64,
    pub buckets: Vec<BucketReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BucketReport {
    /// Start of the bucket, seconds from the schedule's start.
    pub t: f64,
    /// The schedule's target rate (per second) in the bucket.
    pub target_rate: f64,
    pub first_attempts: u64,
    pub retries: u64,
    /// Logical requests started (the schedule's own, sent or not).
    pub logical_requests: u64,
    /// Attempts sent per second: first attempts and retries.
    pub offered_rate: f64,
    /// Attempts sent per logical request started (`null` when none started).
    pub amplification: Option<f64>,
    pub short_circuited: u64,
    /// Retries sent in the bucket, by the outcome that caused them.
    pub retries_rejected: u64,
    pub retries_timeout: u64,
    /// Connect, transport and HTTP errors.
    pub retries_other: u64,
    pub completed: u64,
    pub ok: u64,
    pub rejected: u64,
    pub timeout: u64,
    pub errors: u64,
    /// ok ÷ completed (`null` when nothing was sent or ended).
    pub success_ratio: Option<f64>,
}

impl TimelineReport {
    pub fn new(t: &Timeline) -> TimelineReport {
        let w = t.width().as_secs_f64();
        TimelineReport {
            bucket_s: w,
            buckets: t
                .buckets()
                .iter()
                .enumerate()
                .map(|(i, b)| BucketReport {
                    t: round3(i as f64 * w),
                    target_rate: round3(b.target),
                    first_attempts: b.first,
                    retries: b.retries,
                    logical_requests: b.logical,
                    offered_rate: round3((b.first + b.retries) as f64 / w),
                    amplification: b.amplification().map(round3),
                    short_circuited: b.short_circuited,
                    retries_rejected: b.retry_reasons[0],
                    retries_timeout: b.retry_reasons[1],
                    retries_other: b.retry_reasons[2],
                    completed: b.completed,
                    ok: b.ok,
                    rejected: b.rejected,
                    timeout: b.timeout,
                    errors: b.errors,
                    success_ratio: b.success_ratio().map(round3),
                })
                .collect(),
        }
    }
}
