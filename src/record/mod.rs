//! The recorder: the sole owner of measurement.
//!
//! Workers push [`Outcome`]s into a **shard** of the current window: one shard per runtime thread
//! (a thread keeps its shard), each behind its own lock on its own cache line, so recording is a
//! few histogram increments under a lock no other thread takes, except once an interval when the
//! collector swaps every shard out (wrk2's approach: no shared write on the hot path). The
//! collector merges the shards into the interval, folds it into the whole-run totals (which also
//! live here, so a panicking view cannot lose them) and publishes an immutable
//! [`Snapshot`] that views subscribe to. Memory is fixed: one window per shard, the interval and
//! the totals (plus, for a multi-stage shape, one small tally per stage and shard, and a bounded
//! sample of error messages), whatever the run length or rate. Values above the histogram range
//! (1 h) are clamped to it and counted, never dropped.

mod conns;
mod errors;
mod outcome;
mod snapshot;
mod stages;
mod timeline;

pub use conns::{ConnStats, Connections};
pub use errors::{ErrorSample, ErrorSamples, MAX_DISTINCT_ERRORS};
pub use outcome::{Class, Completion, Group, Outcome};
pub use snapshot::{Ending, Measured, RetryResult, Snapshot};
pub use stages::{StageBook, StageTally, MAX_STAGES};
pub use timeline::{Bucket, Timeline, MAX_BUCKETS};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Highest value the histograms hold: one hour in microseconds.
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Significant digits kept by every histogram.
pub const SIGFIGS: u8 = 3;
/// Highest HTTP status code counted per code (hyper accepts 100..=999).
pub const MAX_STATUS: usize = 999;

/// Significant digits of the secondary histograms (latency per outcome, connect times): 1 %
/// resolution at a seventh of the memory, since a run keeps several copies of each.
pub const SECONDARY_SIGFIGS: u8 = 2;

fn new_histogram() -> Histogram<u64> {
    // Bounds are constants known to be valid, so this cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_US, SIGFIGS).expect("static histogram bounds are valid")
}

fn new_secondary() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, SECONDARY_SIGFIGS)
        .expect("static histogram bounds are valid")
}

/// One histogram per clock, all in microseconds, plus latency per outcome group and the time
/// taken to open connections.
#[derive(Clone, Debug)]
pub struct Clocks {
    /// Every request that took time: answered, failed, timed out, or censored at the cut.
    pub latency: Histogram<u64>,
    /// Every sent request (completed, or censored at the cut).
    pub service_time: Histogram<u64>,
    /// Every sent request.
    pub send_lag: Histogram<u64>,
    /// Latency per [`Group`] (indexed by `Group as usize`), at [`SECONDARY_SIGFIGS`].
    pub latency_by_group: [Histogram<u64>; 5],
    /// Successful connection set-ups (TCP + TLS + HTTP handshake) made during the run, at
    /// [`SECONDARY_SIGFIGS`].
    pub connect: Histogram<u64>,
    /// gRPC: first response message − send, for calls that got one, at [`SECONDARY_SIGFIGS`].
    pub first_message: Histogram<u64>,
    /// gRPC client streaming: per request message (after the first), the time it waited for
    /// HTTP/2 flow control, at [`SECONDARY_SIGFIGS`].
    pub flow_wait: Histogram<u64>,
    /// The same waits summed per call.
    pub flow_wait_call: Histogram<u64>,
    /// Calls cut by the timeout while a request message waited for flow control.
    pub flow_stuck: u64,
    /// Values that exceeded [`HIGHEST_US`] and were clamped: latency, service time, send lag.
    pub clamped: [u64; 3],
}

impl Default for Clocks {
    fn default() -> Self {
        Clocks {
            latency: new_histogram(),
            service_time: new_histogram(),
            send_lag: new_histogram(),
            latency_by_group: std::array::from_fn(|_| new_secondary()),
            connect: new_secondary(),
            first_message: new_secondary(),
            flow_wait: new_secondary(),
            flow_wait_call: new_secondary(),
            flow_stuck: 0,
            clamped: [0; 3],
        }
    }
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn record_us(h: &mut Histogram<u64>, clamped: &mut u64, d: Duration) {
    let us = us(d);
    if us > HIGHEST_US {
        *clamped += 1;
    }
    h.saturating_record(us.min(HIGHEST_US));
}

impl Clocks {
    fn record(&mut self, o: &Outcome) {
        let latency = o.latency();
        record_us(&mut self.latency, &mut self.clamped[0], latency);
        self.latency_by_group[o.class().group() as usize]
            .saturating_record(us(latency).min(HIGHEST_US));
        if o.was_sent() {
            record_us(&mut self.send_lag, &mut self.clamped[2], o.send_lag());
            record_us(
                &mut self.service_time,
                &mut self.clamped[1],
                o.service_time(),
            );
        }
        if let Some(c) = o.completion().connect {
            self.connect.saturating_record(us(c).min(HIGHEST_US));
        }
        if let Some(t) = o.time_to_first_message() {
            self.first_message.saturating_record(us(t).min(HIGHEST_US));
        }
        if let Some(f) = &o.completion().flow {
            let mut sum = 0u64;
            for &w in &f.waits_us {
                let w = u64::from(w);
                self.flow_wait.saturating_record(w.min(HIGHEST_US));
                sum += w;
            }
            self.flow_wait_call.saturating_record(sum.min(HIGHEST_US));
            self.flow_stuck += u64::from(f.stuck);
        }
    }

    fn add(&mut self, other: &Clocks) {
        // Same bounds everywhere, so `add` cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.service_time.add(&other.service_time);
        let _ = self.send_lag.add(&other.send_lag);
        let _ = self.connect.add(&other.connect);
        let _ = self.first_message.add(&other.first_message);
        let _ = self.flow_wait.add(&other.flow_wait);
        let _ = self.flow_wait_call.add(&other.flow_wait_call);
        self.flow_stuck += other.flow_stuck;
        for (a, b) in self
            .latency_by_group
            .iter_mut()
            .zip(&other.latency_by_group)
        {
            let _ = a.add(b);
        }
        for i in 0..3 {
            self.clamped[i] += other.clamped[i];
        }
    }

    fn reset(&mut self) {
        // An empty histogram is all zeros already: resetting it would only write (and make
        // resident) pages that no value ever touched.
        let hists = [
            &mut self.latency,
            &mut self.service_time,
            &mut self.send_lag,
            &mut self.connect,
            &mut self.first_message,
            &mut self.flow_wait,
            &mut self.flow_wait_call,
        ];
        for h in hists.into_iter().chain(&mut self.latency_by_group) {
            if !h.is_empty() {
                h.reset();
            }
        }
        self.flow_stuck = 0;
        self.clamped = [0; 3];
    }
}

/// Outcome counts: per class, and per HTTP status code (a fixed array, no allocation).
#[derive(Clone, Debug)]
pub struct Counts {
    /// Requests that ended with an answer or a failure (not cut).
    pub completed: u64,
    pub ok: u64,
    pub rejected: u64,
    pub http_error: u64,
    pub timeout: u64,
    pub connect_error: u64,
    pub transport_error: u64,
    pub local_error: u64,
    /// Index = status code (100..=999).
    pub status: Box<[u64; MAX_STATUS + 1]>,
    /// gRPC calls per status code (index = code, the last slot for codes above 16).
    pub grpc: [u64; crate::grpc::CODE_SLOTS],
    /// gRPC response messages received, by calls of every outcome.
    pub messages: u64,
    /// Of `messages`, those of OK calls: a whole answer's messages, so that messages per call
    /// (÷ `ok`) is not inflated by calls that failed or broke after some messages.
    pub ok_messages: u64,
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
            local_error: 0,
            status: Box::new([0; MAX_STATUS + 1]),
            grpc: [0; crate::grpc::CODE_SLOTS],
            messages: 0,
            ok_messages: 0,
        }
    }
}

impl Counts {
    fn record(&mut self, o: &Outcome) {
        let n = match o.class() {
            Class::Ok => &mut self.ok,
            Class::Rejected => &mut self.rejected,
            Class::HttpError => &mut self.http_error,
            Class::Timeout => &mut self.timeout,
            Class::ConnectError => &mut self.connect_error,
            Class::TransportError => &mut self.transport_error,
            Class::LocalError => &mut self.local_error,
            // Cut requests are counted in the flow (`cancelled`), not as completed.
            Class::Cancelled => return,
        };
        *n += 1;
        self.completed += 1;
        let status = usize::from(o.status());
        if status > 0 {
            if let Some(slot) = self.status.get_mut(status) {
                *slot += 1;
            }
        }
        let done = o.completion();
        if let Some(code) = done.grpc {
            let i = usize::from(code.0).min(crate::grpc::CODE_SLOTS - 1);
            self.grpc[i] += 1;
        }
        self.messages += u64::from(done.messages);
        if done.class == Class::Ok {
            self.ok_messages += u64::from(done.messages);
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
        self.local_error += other.local_error;
        for (a, b) in self.status.iter_mut().zip(other.status.iter()) {
            *a += b;
        }
        for (a, b) in self.grpc.iter_mut().zip(other.grpc.iter()) {
            *a += b;
        }
        self.messages += other.messages;
        self.ok_messages += other.ok_messages;
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
            local_error,
            status,
            grpc,
            messages,
            ok_messages,
        } = self;
        grpc.fill(0);
        *messages = 0;
        *ok_messages = 0;
        for n in [
            completed,
            ok,
            rejected,
            http_error,
            timeout,
            connect_error,
            transport_error,
            local_error,
        ] {
            *n = 0;
        }
        status.fill(0);
    }

    /// Failures of any kind (everything but ok and rejected).
    pub fn errors(&self) -> u64 {
        self.http_error
            + self.timeout
            + self.connect_error
            + self.transport_error
            + self.local_error
    }

    /// Non-zero gRPC status codes, by code.
    pub fn grpc_statuses(&self) -> impl Iterator<Item = (crate::grpc::Code, u64)> + '_ {
        self.grpc
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(code, &n)| (crate::grpc::Code(code as u8), n))
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

/// Everything measured over some span (an interval, one shard's share of it, or the whole run):
/// the clocks and the outcome counts.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub clocks: Clocks,
    pub counts: Counts,
}

impl Tally {
    /// Folds `other` into `self`.
    pub fn add(&mut self, other: &Tally) {
        self.clocks.add(&other.clocks);
        self.counts.add(&other.counts);
    }

    pub fn reset(&mut self) {
        self.clocks.reset();
        self.counts.reset();
    }
}

/// What became of the tickets: scheduled, sent (and how many late), dropped, cut, unsent. Counted
/// by the pacer, the workers and the shutdown path rather than by outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tickets {
    /// Tickets whose intended time was reached while the run was scheduling.
    pub scheduled: u64,
    /// Tickets that went on the wire.
    pub sent: u64,
    /// Of `sent`, those sent after the schedule's window had ended (late, during the drain).
    pub sent_late: u64,
    /// Tickets refused because the backlog was full (never sent).
    pub dropped: u64,
    /// Tickets still in flight or queued when the run stopped waiting: censored into the tail.
    pub cancelled: u64,
    /// Tickets due but not yet sent when the first stop arrived: never sent, by request.
    pub unsent_at_stop: u64,
    /// Of `scheduled`, retries (released by the pacer from the pending-retry queue).
    pub retries: u64,
    /// Of `sent`, retries.
    pub sent_retries: u64,
    /// Of `sent_late`, retries.
    pub sent_retries_late: u64,
    /// Attempts the client's circuit breaker failed fast (never sent).
    pub short_circuited: u64,
    /// Of `short_circuited`, first attempts.
    pub short_circuited_first: u64,
}

impl Tickets {
    /// First attempts (the schedule's own tickets) sent inside the schedule's window, plus those
    /// the client's breaker failed fast on time: what the schedule asked of the generator.
    pub fn first_on_time(&self) -> u64 {
        let in_window = self.sent.saturating_sub(self.sent_late);
        let retries_in_window = self.sent_retries.saturating_sub(self.sent_retries_late);
        in_window.saturating_sub(retries_in_window) + self.short_circuited_first
    }

    /// Every attempt sent inside the schedule's window (first attempts and retries).
    pub fn sent_in_window(&self) -> u64 {
        self.sent.saturating_sub(self.sent_late)
    }
}

/// Facts about the generator itself that the verdict needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// The pacer had to use tokio's 1 ms timer instead of the precise one.
    pub timer_fallback: bool,
    /// Kinds of engine task that panicked (e.g. `pacer`, `worker`), each named once.
    pub panics: Vec<String>,
}

/// What one shard's workers write under its lock: the current window and, for multi-stage
/// shapes, the per-stage tallies (which are never rotated).
#[derive(Debug, Default)]
struct Shard {
    window: Tally,
    stages: Vec<StageTally>,
}

/// Keeps a value on its own cache line(s), so two threads writing neighbours do not contend.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Shards per recorder: enough for the runtime's threads plus the `block_on` thread; a thread
/// beyond that shares a shard (correct, merely contended).
fn shard_count() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get() + 1)
        .clamp(2, 64)
}

thread_local! {
    /// This thread's shard number (taken modulo a recorder's shard count).
    static SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}
static NEXT_SHARD: AtomicU64 = AtomicU64::new(0);

fn my_shard(n: usize) -> usize {
    SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) as usize);
        }
        s.get() % n
    })
}

/// Shared by the pacer, the workers, the transport and the collector.
#[derive(Debug)]
pub struct Recorder {
    shards: Box<[Padded<Mutex<Shard>>]>,
    totals: Mutex<Tally>,
    errors: Mutex<ErrorSamples>,
    health: Mutex<Health>,
    /// Written by the pacer.
    scheduled: Padded<AtomicU64>,
    /// Written by every worker on send.
    sent: Padded<AtomicU64>,
    sent_late: Padded<AtomicU64>,
    retries: AtomicU64,
    sent_retries: AtomicU64,
    sent_retries_late: AtomicU64,
    short_circuited: AtomicU64,
    short_circuited_first: AtomicU64,
    dropped: AtomicU64,
    cancelled: AtomicU64,
    unsent_at_stop: AtomicU64,
    timer_fallback: AtomicBool,
    /// Offset from `start` (ns) after which a send counts as late; `u64::MAX` until known.
    window_end_ns: AtomicU64,
    start: Instant,
    stages: Option<StageBook>,
    conns: Arc<ConnStats>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Recorder::starting_at(Instant::now())
    }

    /// A recorder for a run whose schedule starts at `start`.
    pub fn starting_at(start: Instant) -> Self {
        Recorder {
            shards: (0..shard_count()).map(|_| Padded::default()).collect(),
            totals: Mutex::default(),
            errors: Mutex::default(),
            health: Mutex::default(),
            scheduled: Padded::default(),
            sent: Padded::default(),
            sent_late: Padded::default(),
            retries: AtomicU64::new(0),
            sent_retries: AtomicU64::new(0),
            sent_retries_late: AtomicU64::new(0),
            short_circuited: AtomicU64::new(0),
            short_circuited_first: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            unsent_at_stop: AtomicU64::new(0),
            timer_fallback: AtomicBool::new(false),
            window_end_ns: AtomicU64::new(u64::MAX),
            start,
            stages: None,
            conns: Arc::new(ConnStats::default()),
        }
    }

    /// Records one finished (or cut) request into the current window (and its stage's tally),
    /// under one short lock; its error message, if any, goes to the sample under another.
    pub fn record(&self, outcome: &Outcome) {
        let stage = self.stages.as_ref().map(|b| b.index(&outcome.ticket()));
        {
            let mut shard = self.shard();
            shard.window.clocks.record(outcome);
            shard.window.counts.record(outcome);
            if let Some(t) = stage.and_then(|i| shard.stages.get_mut(i)) {
                t.record(outcome);
            }
        }
        if let Some(msg) = &outcome.completion().error {
            lock(&self.errors).add(outcome.class(), msg);
        }
    }

    /// Records a request still unanswered (in flight or queued) when the run stopped waiting:
    /// censored into the tail at the cut, counted as cancelled.
    pub fn cut(&self, outcome: &Outcome) {
        self.record(outcome);
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a ticket that was due but is not sent because the run was asked to stop: its wait
    /// so far is censored into the tail, and it is counted as unsent at stop.
    pub fn unsent(&self, outcome: &Outcome) {
        self.record(outcome);
        self.unsent_at_stop.fetch_add(1, Ordering::Relaxed);
    }

    pub fn scheduled(&self) {
        self.scheduled.fetch_add(1, Ordering::Relaxed);
    }

    /// The pacer released a retry (also counted as scheduled).
    pub fn retry_scheduled(&self) {
        self.scheduled.fetch_add(1, Ordering::Relaxed);
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// The client's circuit breaker failed `ticket` fast: scheduled, never sent.
    pub fn short_circuited(&self, ticket: &crate::schedule::Ticket) {
        self.short_circuited.fetch_add(1, Ordering::Relaxed);
        if !ticket.is_retry() {
            self.short_circuited_first.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request (a retry if `retry`) went on the wire at `at`.
    pub fn sent(&self, at: Instant, retry: bool) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        if retry {
            self.sent_retries.fetch_add(1, Ordering::Relaxed);
        }
        let offset =
            u64::try_from(at.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        if offset > self.window_end_ns.load(Ordering::Relaxed) {
            self.sent_late.fetch_add(1, Ordering::Relaxed);
            if retry {
                self.sent_retries_late.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The schedule's window ends at `end`: sends after it are counted as late.
    pub fn window_ends(&self, end: Instant) {
        let offset =
            u64::try_from(end.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        self.window_end_ns.store(offset, Ordering::Relaxed);
    }

    pub fn dropped(&self, ticket: &crate::schedule::Ticket) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = self.stages.as_ref().map(|b| b.index(ticket)) {
            if let Some(t) = self.shard().stages.get_mut(i) {
                t.dropped += 1;
            }
        }
    }

    /// The pacer fell back to tokio's 1 ms timer.
    pub fn timer_fell_back(&self) {
        self.timer_fallback.store(true, Ordering::Relaxed);
    }

    /// An engine task panicked. Each kind of task is named once however many of its kind
    /// panicked (up to `--max-in-flight` workers could), so the list stays short.
    pub fn panicked(&self, task: &str) {
        let mut health = lock(&self.health);
        if !health.panics.iter().any(|t| t == task) {
            health.panics.push(task.to_string());
        }
    }

    pub fn health(&self) -> Health {
        let mut h = lock(&self.health).clone();
        h.timer_fallback = self.timer_fallback.load(Ordering::Relaxed);
        h
    }

    /// Shares connection counters with the transport that opened the connections.
    pub fn with_conns(mut self, conns: Arc<ConnStats>) -> Self {
        self.conns = conns;
        self
    }

    /// Also keeps a tally per stage of a multi-stage shape (see [`StageBook`]).
    pub fn with_stages(mut self, book: Option<StageBook>) -> Self {
        for shard in self.shards.iter() {
            lock(shard).stages = book.as_ref().map_or_else(Vec::new, StageBook::tallies);
        }
        self.stages = book;
        self
    }

    /// Per-stage tallies (merged over the shards), if kept.
    pub fn stage_tallies(&self) -> Option<Vec<StageTally>> {
        let book = self.stages.as_ref()?;
        let mut merged = book.tallies();
        for shard in self.shards.iter() {
            for (m, t) in merged.iter_mut().zip(&lock(shard).stages) {
                m.add(t);
            }
        }
        Some(merged)
    }

    /// This thread's shard, locked (uncontended but for the collector's swap).
    fn shard(&self) -> std::sync::MutexGuard<'_, Shard> {
        lock(&self.shards[my_shard(self.shards.len())])
    }

    /// Connection counters, shared with the transport that opens and closes them.
    pub fn conns(&self) -> &Arc<ConnStats> {
        &self.conns
    }

    pub fn tickets(&self) -> Tickets {
        Tickets {
            scheduled: self.scheduled.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            sent_late: self.sent_late.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            cancelled: self.cancelled.load(Ordering::Relaxed),
            unsent_at_stop: self.unsent_at_stop.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            sent_retries: self.sent_retries.load(Ordering::Relaxed),
            sent_retries_late: self.sent_retries_late.load(Ordering::Relaxed),
            short_circuited: self.short_circuited.load(Ordering::Relaxed),
            short_circuited_first: self.short_circuited_first.load(Ordering::Relaxed),
        }
    }

    /// The bounded sample of distinct error messages seen so far.
    pub fn error_samples(&self) -> ErrorSamples {
        lock(&self.errors).clone()
    }

    /// Ends an interval: every shard's window is swapped out (each lock held only for the swap)
    /// and merged into `interval` (replacing what it held), which is folded into the run's
    /// totals. Allocates a fresh spare; a collector that closes intervals all run long keeps
    /// its own and calls [`Recorder::close_interval_with`].
    pub fn close_interval(&self, interval: &mut Tally) {
        self.close_interval_with(interval, &mut Tally::default());
    }

    /// [`Recorder::close_interval`], with `spare` (any tally; it is emptied here) swapped into
    /// each shard in turn. Reusing the same tallies every interval keeps their pages resident:
    /// fresh histograms (megabytes a second) cost a page fault per 4 KiB, and those faults,
    /// taken on a runtime thread, held the pacer up by 20–40 ms once an interval.
    pub fn close_interval_with(&self, interval: &mut Tally, spare: &mut Tally) {
        interval.reset();
        for shard in self.shards.iter() {
            spare.reset();
            std::mem::swap(&mut lock(shard).window, spare);
            interval.add(spare);
        }
        lock(&self.totals).add(interval);
    }

    /// Copies the run's totals so far into `out`, reusing its histograms.
    pub fn totals_into(&self, out: &mut Tally) {
        out.reset();
        out.add(&lock(&self.totals));
    }

    /// The run's totals so far (everything up to the last closed interval).
    pub fn totals(&self) -> Tally {
        lock(&self.totals).clone()
    }
}

/// A poisoned lock only means a task panicked while holding it (the panic is reported on its own);
/// what it guards is still usable. Shared by the recorder, the dispatcher and the transport.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Schedule, Shape};
    use std::time::Instant;

    fn outcome(lat_ms: u64, completion: Completion) -> Outcome {
        let start = Instant::now();
        let t = Schedule::new(Shape::constant(1.0, Duration::from_secs(1)).unwrap(), start)
            .next()
            .unwrap();
        Outcome::new(t, start, start + Duration::from_millis(lat_ms), completion)
    }

    #[test]
    fn rotate_and_fold() {
        let r = Recorder::new();
        r.record(&outcome(5, Completion::status(Class::Ok, 200)));
        r.record(&outcome(7, Completion::status(Class::Rejected, 503)));
        r.record(&outcome(
            3000,
            Completion::failed(Class::ConnectError, "connect timed out"),
        ));
        r.record(&outcome(1, Completion::status(Class::HttpError, 799)));
        let mut spare = Tally::default();
        r.close_interval(&mut spare);
        assert_eq!(spare.counts.completed, 4);
        assert_eq!(spare.counts.ok, 1);
        assert_eq!(spare.counts.rejected, 1);
        assert_eq!(spare.counts.connect_error, 1);
        assert_eq!(
            spare.clocks.latency.len(),
            4,
            "failures are in the tail with their time"
        );
        assert!(spare.clocks.latency.max() >= 2_990_000);
        assert_eq!(
            spare.clocks.latency_by_group[Group::Error as usize].len(),
            2
        );
        assert_eq!(spare.clocks.latency_by_group[Group::Ok as usize].len(), 1);
        assert_eq!(spare.clocks.send_lag.len(), 4);
        assert_eq!(
            spare.counts.statuses().collect::<Vec<_>>(),
            vec![(200, 1), (503, 1), (799, 1)],
            "codes up to 999 are counted"
        );
        let totals = r.totals();
        assert_eq!(totals.counts.completed, 4);
        let samples = r.error_samples().samples();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].message, "connect timed out");
        spare.reset();
        assert_eq!(spare.counts.completed, 0);
        assert_eq!(spare.clocks.latency.len(), 0);
    }

    #[test]
    fn reused_tallies_carry_nothing_from_one_interval_to_the_next() {
        let r = Recorder::new();
        let (mut interval, mut spare) = (Tally::default(), Tally::default());
        let mut totals = Tally::default();
        r.record(&outcome(5, Completion::status(Class::Ok, 200)));
        r.record(&outcome(
            3000,
            Completion::failed(Class::Timeout, "timed out"),
        ));
        r.close_interval_with(&mut interval, &mut spare);
        assert_eq!(interval.counts.completed, 2);
        assert!(interval.clocks.latency.max() >= 2_990_000);
        r.totals_into(&mut totals);
        assert_eq!(totals.clocks.latency.len(), 2);
        // The next interval, built in the same tallies, holds only its own request.
        r.record(&outcome(7, Completion::status(Class::Ok, 200)));
        r.close_interval_with(&mut interval, &mut spare);
        assert_eq!(interval.counts.completed, 1);
        assert_eq!(interval.counts.timeout, 0);
        assert_eq!(interval.clocks.latency.len(), 1);
        assert!(interval.clocks.latency.max() < 10_000);
        assert_eq!(
            interval.clocks.latency_by_group[Group::Error as usize].len(),
            0
        );
        r.totals_into(&mut totals);
        assert_eq!(totals.counts.completed, 3);
        assert_eq!(totals.clocks.latency.len(), 3);
        // An empty interval after that is empty.
        r.close_interval_with(&mut interval, &mut spare);
        assert_eq!(interval.counts.completed, 0);
        assert!(interval.clocks.latency.is_empty());
        assert_eq!(r.totals().counts.completed, 3);
    }

    #[test]
    fn messages_of_ok_calls_are_counted_apart() {
        let r = Recorder::new();
        r.record(&outcome(
            5,
            Completion::status(Class::Ok, 200).with_messages(5, None),
        ));
        let broken = Completion::failed(Class::TransportError, "the stream broke");
        r.record(&outcome(5, broken.with_messages(3, None)));
        let mut w = Tally::default();
        r.close_interval(&mut w);
        assert_eq!((w.counts.messages, w.counts.ok_messages), (8, 5));
        let mut sum = Tally::default();
        sum.add(&w);
        assert_eq!(sum.counts.ok_messages, 5);
        w.reset();
        assert_eq!(w.counts.ok_messages, 0);
    }

    #[test]
    fn cut_requests_are_censored_not_completed() {
        let r = Recorder::new();
        let start = Instant::now();
        let t = Schedule::new(Shape::constant(1.0, Duration::from_secs(1)).unwrap(), start)
            .next()
            .unwrap();
        r.cut(&Outcome::cut(t, None, start + Duration::from_secs(4)));
        r.cut(&Outcome::cut(
            t,
            Some(start),
            start + Duration::from_secs(4),
        ));
        let mut w = Tally::default();
        r.close_interval(&mut w);
        assert_eq!(w.counts.completed, 0);
        assert_eq!(r.tickets().cancelled, 2);
        assert_eq!(w.clocks.latency.len(), 2);
        assert!(w.clocks.latency.min() >= 3_990_000);
        assert_eq!(
            w.clocks.send_lag.len(),
            1,
            "only the sent one has a send lag"
        );
        assert_eq!(w.clocks.service_time.len(), 1);
    }

    #[test]
    fn sends_after_the_window_are_late() {
        let start = Instant::now();
        let r = Recorder::starting_at(start);
        r.sent(start + Duration::from_secs(5), false);
        r.window_ends(start + Duration::from_secs(3));
        r.sent(start + Duration::from_secs(2), false);
        r.sent(start + Duration::from_secs(4), false);
        r.sent(start + Duration::from_secs(4), true);
        r.sent(start + Duration::from_secs(1), true);
        let f = r.tickets();
        assert_eq!((f.sent, f.sent_late), (5, 2));
        assert_eq!((f.sent_retries, f.sent_retries_late), (2, 1));
        assert_eq!(f.first_on_time(), 2);
        assert_eq!(f.sent_in_window(), 3);
    }

    #[test]
    fn values_beyond_an_hour_are_clamped_and_counted() {
        let mut c = Clocks::default();
        c.record(&outcome(
            2 * 3_600_000,
            Completion::failed(Class::Timeout, "timed out"),
        ));
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
