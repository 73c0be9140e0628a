//! Client retry policies on top of the open-loop schedule.
//!
//! A well-meaning client retries what the target shed, and the retries add load exactly when the
//! target is weakest: a retry storm. This module models such a client so a run can reproduce a
//! storm, and show that backoff, jitter, a retry budget and a circuit breaker prevent it.
//!
//! ```text
//! Schedule ─► pacer ◄─ pending retries (bounded, time-ordered) ◄─ Retrier::settle ◄─ worker
//!               └─► backlog ─► worker ─► Client ─► Recorder (every attempt)
//! ```
//!
//! A retry is a [`Ticket`] with the first attempt's origin and an attempt number, due at its
//! backoff's end: the pacer merges pending retries with the schedule's next due time, so a retry
//! goes through the same dispatcher, in-flight cap and accounting as a first attempt and its
//! send lag is measured the same way. Every attempt is recorded as a request of its own; the
//! [`Retrier`] also follows each *logical* request (a first attempt and its retries) to its final
//! outcome, with its end-to-end latency from the first attempt's intended start.
//!
//! Nothing is unbounded: pending retries are capped (`queue=`), and a retry that does not fit is
//! counted (`gave_up.queue_full`) and makes the run untrustworthy, since the generator failed to
//! model the client it was asked to.

pub mod breaker;
pub mod budget;
pub mod policy;
mod window;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Notify;

use crate::record::{lock, Class, HIGHEST_US, SIGFIGS};
use crate::schedule::{splitmix64, Rng, Ticket};

pub use breaker::{Admission, Breaker, BreakerCounts};
pub use budget::Budget;
pub use policy::{parse_retry_after, Policy, SettingError};

/// Retries sent, by why they were made: the outcome of the attempt before.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reasons {
    pub rejected: u64,
    pub timeout: u64,
    pub connect_error: u64,
    pub transport_error: u64,
    pub http_error: u64,
}

impl Reasons {
    /// The reason a retry's ticket carries (see [`Ticket::reason`]).
    fn index(class: Class) -> u8 {
        match class {
            Class::Rejected => 1,
            Class::Timeout => 2,
            Class::ConnectError => 3,
            Class::TransportError => 4,
            _ => 5,
        }
    }

    fn count(&mut self, index: u8) {
        match index {
            1 => self.rejected += 1,
            2 => self.timeout += 1,
            3 => self.connect_error += 1,
            4 => self.transport_error += 1,
            _ => self.http_error += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.rejected + self.timeout + self.connect_error + self.transport_error + self.http_error
    }
}

/// What the server said about retrying an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushback {
    /// Nothing: the policy decides.
    None,
    /// Come back after this long (`Retry-After`, or a gRPC `grpc-retry-pushback-ms` ≥ 0).
    After(Duration),
    /// Do not retry: a gRPC `grpc-retry-pushback-ms` that is negative or not a number (gRPC's
    /// retry design, A6). Overrides the policy.
    Refused,
}

/// How logical requests ended, and what they cost. Every first attempt the pacer released starts
/// one logical request, and each ends exactly once (see [`Logical::ended`]).
#[derive(Clone, Debug)]
pub struct Logical {
    /// Succeeded on the first attempt.
    pub succeeded_first: u64,
    /// Succeeded on a retry.
    pub succeeded_retry: u64,
    /// Ended with an outcome the policy does not retry (e.g. a 404, or a local error), or one
    /// the server said not to retry (a negative `grpc-retry-pushback-ms`).
    pub failed: u64,
    /// Gave up: the last allowed attempt failed.
    pub exhausted: u64,
    /// Gave up: the retry budget was spent.
    pub budget: u64,
    /// Gave up: the next attempt would have started after the deadline.
    pub deadline: u64,
    /// Gave up: the pending-retry queue was full (the generator's limit).
    pub queue_full: u64,
    /// Failed fast by the open circuit breaker, never sent.
    pub short_circuited: u64,
    /// Still waiting (in flight, queued, or for a retry's due time) when the run ended or was
    /// stopped: censored at that moment.
    pub unfinished: u64,
    /// The attempt was dropped by the generator (backlog full).
    pub dropped: u64,
    /// Logical requests that ended after `n` attempts (index n; 0 is unused).
    pub attempts_used: Vec<u64>,
    /// First intended start → final outcome, µs (every ending but `dropped`).
    pub end_to_end: Histogram<u64>,
    /// Retries sent, by the outcome that caused them (see [`Retrier::retry_sent`]).
    pub retries_by_reason: Reasons,
    /// Retries decided (queued to wait for their due time); some never go out (the run ended,
    /// the breaker, the backlog).
    pub decided: u64,
    /// Most retries pending at once.
    pub pending_peak: u64,
}

impl Logical {
    fn new(attempts: u32) -> Self {
        Logical {
            succeeded_first: 0,
            succeeded_retry: 0,
            failed: 0,
            exhausted: 0,
            budget: 0,
            deadline: 0,
            queue_full: 0,
            short_circuited: 0,
            unfinished: 0,
            dropped: 0,
            attempts_used: vec![0; attempts as usize + 1],
            end_to_end: Histogram::new_with_bounds(1, HIGHEST_US, SIGFIGS)
                .expect("static histogram bounds are valid"),
            retries_by_reason: Reasons::default(),
            decided: 0,
            pending_peak: 0,
        }
    }

    /// Logical requests that have ended.
    pub fn ended(&self) -> u64 {
        self.succeeded_first
            + self.succeeded_retry
            + self.failed
            + self.gave_up()
            + self.short_circuited
            + self.unfinished
            + self.dropped
    }

    /// Gave up for any reason.
    pub fn gave_up(&self) -> u64 {
        self.exhausted + self.budget + self.deadline + self.queue_full
    }

    fn end(&mut self, ticket: &Ticket, at: Instant, attempts: u16) {
        let us = u64::try_from(at.saturating_duration_since(ticket.origin()).as_micros())
            .unwrap_or(u64::MAX);
        self.end_to_end.saturating_record(us.min(HIGHEST_US));
        let n = usize::from(attempts).min(self.attempts_used.len().saturating_sub(1));
        if let Some(slot) = self.attempts_used.get_mut(n) {
            *slot += 1;
        }
    }
}

/// Live figures for snapshots (no histogram).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryCounts {
    /// Retries decided so far.
    pub scheduled: u64,
    /// Logical requests that gave up (attempts, budget, deadline, queue full).
    pub gave_up: u64,
    pub short_circuited: u64,
    pub pending: u64,
    /// Retries sent so far, by reason: rejected, timeout, other failures.
    pub by_reason: [u64; 3],
}

#[derive(Debug, PartialEq, Eq)]
struct Entry {
    due: Instant,
    seq: u64,
    ticket: Ticket,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq, self.ticket.attempt()).cmp(&(
            other.due,
            other.seq,
            other.ticket.attempt(),
        ))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Default)]
struct Pending {
    heap: BinaryHeap<Reverse<Entry>>,
    /// No more retries: the schedule's window ended or the run was stopped.
    closed: bool,
}

/// The client's retry machinery for one run: the policy, pending retries, budget, breaker and
/// the logical-request tally. Shared by the pacer (which releases due retries) and the workers
/// (which decide them).
#[derive(Debug)]
pub struct Retrier {
    policy: Policy,
    pending: Mutex<Pending>,
    /// Wakes the pacer when a retry becomes the earliest pending one.
    pub wake: Notify,
    budget: Option<Mutex<Budget>>,
    breaker: Option<Mutex<Breaker>>,
    logical: Mutex<Logical>,
    seed: u64,
}

impl Retrier {
    pub fn new(policy: Policy, start: Instant, seed: u64) -> Self {
        Retrier {
            budget: policy.budget.map(|b| Mutex::new(Budget::new(b, start))),
            breaker: policy.breaker.map(|b| Mutex::new(Breaker::new(b, start))),
            logical: Mutex::new(Logical::new(policy.attempts)),
            pending: Mutex::default(),
            wake: Notify::new(),
            seed,
            policy,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A first attempt went on the wire at `at`: it earns budget for retries.
    pub fn first_sent(&self, at: Instant) {
        if let Some(b) = &self.budget {
            lock(b).deposit(at);
        }
    }

    /// A retry went on the wire: counted by why it was made, so that the retries by reason add
    /// up to the retries sent.
    pub fn retry_sent(&self, retry: &Ticket) {
        lock(&self.logical).retries_by_reason.count(retry.reason());
    }

    /// The breaker's word on an attempt about to be sent (always `Pass` without a breaker).
    pub fn admit(&self, at: Instant) -> Admission {
        match &self.breaker {
            Some(b) => lock(b).admit(at),
            None => Admission::Pass,
        }
    }

    /// The breaker refused `ticket` at `at`: its logical request fails fast.
    pub fn short_circuit(&self, ticket: &Ticket, at: Instant) {
        let mut l = lock(&self.logical);
        l.short_circuited += 1;
        l.end(ticket, at, ticket.attempt());
    }

    /// The generator dropped `ticket` (backlog full): its logical request ends there.
    pub fn dropped(&self, _ticket: &Ticket) {
        lock(&self.logical).dropped += 1;
    }

    /// `ticket` was cut or left unsent at `at` (stop, end of grace): its logical request is
    /// still unfinished, censored at `at`.
    pub fn unfinished(&self, ticket: &Ticket, at: Instant) {
        let mut l = lock(&self.logical);
        l.unfinished += 1;
        l.end(ticket, at, ticket.attempt());
    }

    /// An attempt of `ticket` ended at `done` with `class`/`status` (and the server's
    /// `Retry-After`, if any): retry it, or end its logical request.
    pub fn settle(
        &self,
        ticket: &Ticket,
        class: Class,
        status: u16,
        retry_after: Option<Duration>,
        done: Instant,
        admission: Admission,
    ) {
        let pushback = retry_after.map_or(Pushback::None, Pushback::After);
        self.settle_coded(ticket, (class, status, None), pushback, done, admission);
    }

    /// [`Retrier::settle`] for an answer that may carry a gRPC status, and a server's word on
    /// retrying it (`pushback`): a wait to honour, or a refusal, which ends the logical request
    /// as failed even when the policy would retry its outcome.
    pub fn settle_coded(
        &self,
        ticket: &Ticket,
        (class, status, grpc): (Class, u16, Option<crate::grpc::Code>),
        pushback: Pushback,
        done: Instant,
        admission: Admission,
    ) {
        let retry_after = match pushback {
            Pushback::None | Pushback::Refused => None,
            Pushback::After(d) => Some(d),
        };
        let retryable = self.policy.on.covers_coded(class, status, grpc);
        if let Some(b) = &self.breaker {
            lock(b).record(done, admission, retryable);
        }
        let attempts = ticket.attempt().saturating_add(1);
        if class == Class::Cancelled {
            return self.unfinished(ticket, done);
        }
        // A client that ignores the server's hints (`retry_after=ignore`) ignores its refusal too.
        let refused = pushback == Pushback::Refused
            && matches!(self.policy.retry_after, policy::RetryAfter::Honour { .. });
        if !retryable || refused {
            let mut l = lock(&self.logical);
            match (class, ticket.is_retry()) {
                (Class::Ok, false) => l.succeeded_first += 1,
                (Class::Ok, true) => l.succeeded_retry += 1,
                _ => l.failed += 1,
            }
            return l.end(ticket, done, attempts);
        }
        let next = ticket.attempt().saturating_add(1);
        if !self.policy.allows_attempt(next) {
            let mut l = lock(&self.logical);
            l.exhausted += 1;
            return l.end(ticket, done, attempts);
        }
        let mut rng = self.rng(ticket);
        let delay = self
            .policy
            .delay(u32::from(next), ticket.backoff(), retry_after, &mut rng);
        let due = done.checked_add(delay).unwrap_or(done);
        if let Some(limit) = self.policy.deadline {
            if due.saturating_duration_since(ticket.origin()) > limit {
                let mut l = lock(&self.logical);
                l.deadline += 1;
                return l.end(ticket, done, attempts);
            }
        }
        if let Some(b) = &self.budget {
            if !lock(b).try_withdraw(done) {
                let mut l = lock(&self.logical);
                l.budget += 1;
                return l.end(ticket, done, attempts);
            }
        }
        self.push(
            ticket.retry(due, delay, Reasons::index(class)),
            done,
            attempts,
        );
    }

    /// Queues a retry, or ends its logical request when the queue is closed or full.
    fn push(&self, retry: Ticket, done: Instant, attempts: u16) {
        let (earliest, depth) = {
            let mut p = lock(&self.pending);
            if p.closed {
                drop(p);
                let mut l = lock(&self.logical);
                l.unfinished += 1;
                return l.end(&retry, done, attempts);
            }
            if p.heap.len() >= self.policy.queue {
                drop(p);
                let mut l = lock(&self.logical);
                l.queue_full += 1;
                return l.end(&retry, done, attempts);
            }
            let due = retry.intended();
            let earliest = p.heap.peek().is_none_or(|Reverse(e)| due < e.due);
            p.heap.push(Reverse(Entry {
                due,
                seq: retry.seq(),
                ticket: retry,
            }));
            (earliest, p.heap.len() as u64)
        };
        {
            let mut l = lock(&self.logical);
            l.decided += 1;
            l.pending_peak = l.pending_peak.max(depth);
        }
        if earliest {
            self.wake.notify_one();
        }
    }

    /// The due time of the earliest pending retry.
    pub fn next_due(&self) -> Option<Instant> {
        lock(&self.pending).heap.peek().map(|Reverse(e)| e.due)
    }

    /// Moves every retry due at or before `now` into `out`, earliest first.
    pub fn take_due(&self, now: Instant, out: &mut Vec<Ticket>) {
        let mut p = lock(&self.pending);
        while p.heap.peek().is_some_and(|Reverse(e)| e.due <= now) {
            if let Some(Reverse(e)) = p.heap.pop() {
                out.push(e.ticket);
            }
        }
    }

    /// No more retries will be released (the schedule's window ended, or a stop): pending ones
    /// and any decided later end their logical requests as unfinished, censored at `at` (or when
    /// decided).
    pub fn close(&self, at: Instant) {
        let left = {
            let mut p = lock(&self.pending);
            p.closed = true;
            std::mem::take(&mut p.heap)
        };
        if left.is_empty() {
            return;
        }
        let mut l = lock(&self.logical);
        for Reverse(e) in left {
            l.unfinished += 1;
            // It had made `attempt` attempts; the retry was never sent.
            l.end(&e.ticket, at, e.ticket.attempt());
        }
    }

    /// Live counters for snapshots.
    pub fn counts(&self) -> RetryCounts {
        let pending = lock(&self.pending).heap.len() as u64;
        let l = lock(&self.logical);
        let r = &l.retries_by_reason;
        RetryCounts {
            scheduled: l.decided,
            gave_up: l.gave_up(),
            short_circuited: l.short_circuited,
            pending,
            by_reason: [
                r.rejected,
                r.timeout,
                r.connect_error + r.transport_error + r.http_error,
            ],
        }
    }

    /// Everything about the logical requests, for the report.
    pub fn logical(&self) -> Logical {
        lock(&self.logical).clone()
    }

    pub fn budget_denied(&self) -> u64 {
        self.budget.as_ref().map_or(0, |b| lock(b).denied)
    }

    pub fn breaker_counts(&self) -> Option<BreakerCounts> {
        self.breaker.as_ref().map(|b| lock(b).counts)
    }

    /// A jitter stream per attempt: reproducible for a seed, independent across requests.
    fn rng(&self, ticket: &Ticket) -> Rng {
        let mut s = self.seed
            ^ ticket.seq().wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(ticket.attempt()) << 48;
        Rng::new(splitmix64(&mut s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Schedule, Shape};

    fn tickets(n: usize, start: Instant) -> Vec<Ticket> {
        Schedule::new(
            Shape::constant(1000.0, Duration::from_secs(1)).unwrap(),
            start,
        )
        .take(n)
        .collect()
    }

    #[test]
    fn a_rejection_becomes_a_retry_due_after_its_backoff() {
        let start = Instant::now();
        let p = Policy::parse("backoff=fixed:100ms jitter=none attempts=3")
            .unwrap()
            .unwrap();
        let r = Retrier::new(p, start, 1);
        let t = tickets(1, start)[0];
        let done = start + Duration::from_millis(5);
        r.settle(&t, Class::Rejected, 503, None, done, Admission::Pass);
        assert_eq!(r.next_due(), Some(done + Duration::from_millis(100)));
        let mut out = Vec::new();
        r.take_due(done + Duration::from_millis(99), &mut out);
        assert!(out.is_empty());
        r.take_due(done + Duration::from_millis(100), &mut out);
        let retry = out[0];
        assert_eq!((retry.seq(), retry.attempt()), (t.seq(), 1));
        assert_eq!(retry.origin(), t.intended());
        // The second attempt is rejected too, the third (last allowed) as well: exhausted.
        let done2 = retry.intended() + Duration::from_millis(5);
        r.settle(&retry, Class::Rejected, 503, None, done2, Admission::Pass);
        r.take_due(done2 + Duration::from_millis(100), &mut out);
        let third = out[1];
        assert_eq!(third.attempt(), 2);
        let done3 = third.intended() + Duration::from_millis(5);
        r.settle(&third, Class::Rejected, 503, None, done3, Admission::Pass);
        // Retries count by reason once sent (the dispatcher says so), not when decided.
        assert_eq!(r.logical().retries_by_reason.rejected, 0);
        r.retry_sent(&retry);
        r.retry_sent(&third);
        let l = r.logical();
        assert_eq!(l.exhausted, 1);
        assert_eq!(l.attempts_used[3], 1);
        assert_eq!((l.decided, l.retries_by_reason.rejected), (2, 2));
        assert_eq!(
            l.end_to_end.max() / 1000,
            215,
            "5+100+5+100+5 ms from the origin"
        );
    }

    #[test]
    fn a_server_that_refuses_retries_ends_the_request_as_failed() {
        let start = Instant::now();
        let p = Policy::parse("on=rejected backoff=none attempts=3")
            .unwrap()
            .unwrap();
        let r = Retrier::new(p, start, 1);
        let ts = tickets(2, start);
        let at = start + Duration::from_millis(10);
        let shed = (Class::Rejected, 200, Some(crate::grpc::Code::UNAVAILABLE));
        r.settle_coded(&ts[0], shed, Pushback::Refused, at, Admission::Pass);
        assert_eq!(r.next_due(), None, "no retry queued");
        let l = r.logical();
        assert_eq!((l.failed, l.decided, l.attempts_used[1]), (1, 0, 1));
        // Without the refusal the same answer is retried.
        r.settle_coded(&ts[1], shed, Pushback::None, at, Admission::Pass);
        assert!(r.next_due().is_some());
        // A client that ignores the server's hints ignores its refusal too.
        let p = Policy::parse("on=rejected backoff=none attempts=3 retry_after=ignore")
            .unwrap()
            .unwrap();
        let r = Retrier::new(p, start, 1);
        r.settle_coded(&ts[0], shed, Pushback::Refused, at, Admission::Pass);
        assert!(r.next_due().is_some());
    }

    #[test]
    fn every_logical_request_ends_once() {
        let start = Instant::now();
        let p = Policy::parse("backoff=none attempts=2 budget=0% budget_min=0 queue=3")
            .unwrap()
            .unwrap();
        let r = Retrier::new(p, start, 1);
        let ts = tickets(8, start);
        let at = start + Duration::from_millis(10);
        r.settle(&ts[0], Class::Ok, 200, None, at, Admission::Pass);
        r.settle(&ts[1], Class::HttpError, 404, None, at, Admission::Pass);
        r.settle(&ts[2], Class::Rejected, 503, None, at, Admission::Pass); // budget 0: gave up
        assert_eq!(r.logical().budget, 1);
        r.dropped(&ts[3]);
        r.short_circuit(&ts[4], at);
        r.unfinished(&ts[5], at);
        let l = r.logical();
        assert_eq!(
            (
                l.succeeded_first,
                l.failed,
                l.budget,
                l.dropped,
                l.short_circuited,
                l.unfinished
            ),
            (1, 1, 1, 1, 1, 1)
        );
        assert_eq!(l.ended(), 6);
        assert_eq!(l.end_to_end.len(), 5, "all but the dropped one");
    }

    #[test]
    fn a_full_queue_gives_up_and_a_closed_one_leaves_requests_unfinished() {
        let start = Instant::now();
        let p = Policy::parse("backoff=fixed:1s jitter=none attempts=5 queue=2")
            .unwrap()
            .unwrap();
        let r = Retrier::new(p, start, 1);
        let ts = tickets(5, start);
        for t in &ts[..3] {
            r.settle(t, Class::Timeout, 0, None, start, Admission::Pass);
        }
        assert_eq!(r.logical().queue_full, 1);
        assert_eq!(r.counts().pending, 2);
        r.close(start + Duration::from_millis(500));
        r.settle(&ts[3], Class::Timeout, 0, None, start, Admission::Pass);
        let l = r.logical();
        assert_eq!(
            l.unfinished, 3,
            "two pending at the close, one decided after it"
        );
        assert_eq!(r.next_due(), None);
    }

    #[test]
    fn deadline_and_retry_after() {
        let start = Instant::now();
        let p = Policy::parse("backoff=fixed:100ms jitter=none deadline=1s")
            .unwrap()
            .unwrap();
        let r = Retrier::new(p, start, 1);
        let ts = tickets(2, start);
        let at = ts[0].intended() + Duration::from_millis(10);
        r.settle(
            &ts[0],
            Class::Rejected,
            429,
            Some(Duration::from_secs(5)),
            at,
            Admission::Pass,
        );
        assert_eq!(
            r.logical().deadline,
            1,
            "Retry-After 5s is past the 1 s deadline"
        );
        r.settle(
            &ts[1],
            Class::Rejected,
            429,
            Some(Duration::from_millis(300)),
            at,
            Admission::Pass,
        );
        assert_eq!(r.next_due(), Some(at + Duration::from_millis(300)));
    }
}
