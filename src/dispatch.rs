//! The dispatcher: releases tickets when they are due and hands them to workers without ever
//! waiting on a response.
//!
//! ```text
//! Schedule ──► pacer ──try_send──► backlog (bounded) ──► crew of workers ──► Client ──► Recorder
//!                 └── backlog full: ticket dropped and counted
//! ```
//!
//! The in-flight limit is the number of workers (`--max-in-flight`). Workers are spawned on
//! demand: when a ticket is queued and no worker is idle, the pacer adds one, up to the limit, so
//! a stalled target meets the pile-up real arrivals would cause (each worker then leases a
//! connection, opened on demand by the transport). A ticket that is due while every worker is
//! busy waits in the backlog; when the backlog is full the ticket is **dropped** and counted.
//! Lateness is never hidden: a worker stamps `sent_at` once it holds a connection lease, so time
//! spent in the backlog or waiting at the connection cap shows up as send lag and, because latency
//! is measured from the intended start, in the latency too.
//!
//! Stops: the first stop (`stop_sending`) ends scheduling and sending; tickets due but unsent are
//! counted as `unsent_at_stop`. The abort (end of grace, or a second stop) cuts what is in flight:
//! those requests are censored into the tail at the cut and counted as cancelled.
//!
//! ## Pacing below tokio's 1 ms timer
//! tokio's timer wheel has 1 ms resolution, which alone puts ~0.6–1 ms of lateness on every
//! request. On Linux the pacer instead arms a `timerfd` (CLOCK_MONOTONIC, absolute, nanosecond
//! resolution) registered with tokio's reactor: the epoll wake-up happens at the due instant and
//! the pacer runs as an ordinary task, so releasing a ticket to a worker is a local task wake-up
//! rather than a cross-thread hand-off. At each wake-up it releases *every* ticket already due
//! (pushed, or dropped and counted when the backlog is full); it never sleeps once per ticket when
//! behind, and when behind it yields once per round so that on one core the workers and the
//! signal handler still run. Elsewhere it falls back to tokio's timer, and the verdict says so.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender, TrySendError};
use tokio::task::JoinSet;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::record::{lock, Class, Completion, Outcome, Recorder};
use crate::retry::{Admission, Pushback, Retrier};
use crate::schedule::{Schedule, Ticket};
use crate::transport::Client;

/// Why the pacer stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaceEnd {
    /// Every ticket in the schedule was released.
    Completed,
    /// A stop was requested; later tickets were never scheduled.
    Stopped,
}

/// A fault injected on purpose, to test that the engine reports its own failures (set with the
/// `METRONOME_FAULT` environment variable; see docs/engine.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// The pacer panics after releasing its first ticket.
    PacerPanic,
    /// The first worker to finish a request panics.
    WorkerPanic,
    /// The collector panics at its first interval.
    CollectorPanic,
    /// The precise timer is reported unavailable.
    NoPreciseTimer,
}

impl Fault {
    /// Reads `METRONOME_FAULT` (`pacer-panic`, `worker-panic`, `collector-panic`,
    /// `no-precise-timer`); anything else is no fault.
    pub fn from_env() -> Fault {
        match std::env::var("METRONOME_FAULT").as_deref() {
            Ok("pacer-panic") => Fault::PacerPanic,
            Ok("worker-panic") => Fault::WorkerPanic,
            Ok("collector-panic") => Fault::CollectorPanic,
            Ok("no-precise-timer") => Fault::NoPreciseTimer,
            _ => Fault::None,
        }
    }
}

/// The dispatcher's clock. A run uses the system's (std `Instant`, and a timerfd to sleep); the
/// dispatcher's own tests use tokio's paused clock mapped onto `Instant`s, so they are exact and
/// take no real time.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    System,
    /// `std0` corresponds to `tokio0`; time moves as tokio's (paused) clock does.
    #[cfg(test)]
    Virtual {
        std0: Instant,
        tokio0: tokio::time::Instant,
    },
}

impl Clock {
    #[inline]
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            #[cfg(test)]
            Clock::Virtual { std0, tokio0 } => *std0 + tokio0.elapsed(),
        }
    }

    /// The tokio deadline for `at` (for timeouts).
    fn tokio_at(&self, at: Instant) -> tokio::time::Instant {
        match self {
            Clock::System => at.into(),
            #[cfg(test)]
            Clock::Virtual { std0, tokio0 } => *tokio0 + at.saturating_duration_since(*std0),
        }
    }

    fn is_system(&self) -> bool {
        matches!(self, Clock::System)
    }
}

/// The workers of a run and what they share. Workers are spawned on demand, up to `cap`.
pub struct Crew<C: Client> {
    client: Arc<C>,
    backlog: Receiver<Ticket>,
    recorder: Arc<Recorder>,
    timeout: Duration,
    timeout_message: String,
    /// First stop: take no new tickets.
    stop_sending: CancellationToken,
    /// End of grace or second stop: cut what is in flight.
    abort: CancellationToken,
    fault: Fault,
    idle: AtomicUsize,
    spawned: AtomicUsize,
    cap: usize,
    tasks: Mutex<JoinSet<()>>,
    faulted: AtomicU64,
    clock: Clock,
    /// The client's retry policy, if any: decides retries as attempts end; the pacer releases
    /// them when due.
    retrier: Option<Arc<Retrier>>,
}

impl<C: Client> Crew<C> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Arc<C>,
        backlog: Receiver<Ticket>,
        recorder: Arc<Recorder>,
        timeout: Duration,
        cap: usize,
        stop_sending: CancellationToken,
        abort: CancellationToken,
        fault: Fault,
    ) -> Arc<Self> {
        Arc::new(Crew {
            client,
            backlog,
            recorder,
            timeout,
            timeout_message: format!(
                "no complete response within {} (--timeout)",
                humantime::format_duration(timeout)
            ),
            stop_sending,
            abort,
            fault,
            idle: AtomicUsize::new(0),
            spawned: AtomicUsize::new(0),
            cap: cap.max(1),
            tasks: Mutex::new(JoinSet::new()),
            faulted: AtomicU64::new(0),
            clock: Clock::System,
            retrier: None,
        })
    }

    /// The same crew with a retry policy (before it starts any worker).
    pub fn with_retrier(self: Arc<Self>, retrier: Option<Arc<Retrier>>) -> Arc<Self> {
        match Arc::try_unwrap(self) {
            Ok(mut crew) => {
                crew.retrier = retrier;
                Arc::new(crew)
            }
            // Already shared: the policy cannot be attached any more (a bug in the caller).
            Err(shared) => shared,
        }
    }

    /// The retry machinery, if the run has a policy.
    pub fn retrier(&self) -> Option<&Arc<Retrier>> {
        self.retrier.as_ref()
    }

    /// The same crew on another clock (before it starts any worker).
    #[cfg(test)]
    fn on_clock(self: Arc<Self>, clock: Clock) -> Arc<Self> {
        let mut crew = Arc::into_inner(self).expect("a crew not yet shared");
        crew.clock = clock;
        Arc::new(crew)
    }

    /// Spawns `n` workers now (up to the cap).
    pub fn start(self: &Arc<Self>, n: usize) {
        for _ in 0..n.min(self.cap) {
            self.spawn_one();
        }
    }

    fn spawn_one(self: &Arc<Self>) -> bool {
        let claimed = self
            .spawned
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.cap).then_some(n + 1)
            });
        if claimed.is_err() {
            return false;
        }
        let crew = self.clone();
        lock(&self.tasks).spawn(work(crew));
        true
    }

    /// Adds a worker when tickets are waiting and none is idle.
    fn grow(self: &Arc<Self>) {
        if self.backlog.len() > self.idle.load(Ordering::Relaxed) {
            self.spawn_one();
        }
    }

    /// The recorder the crew writes to.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    /// Workers spawned so far.
    pub fn size(&self) -> usize {
        self.spawned.load(Ordering::Relaxed)
    }

    /// Takes the workers' join handles (for the run's drain); spawn no more after this.
    pub fn take_tasks(&self) -> JoinSet<()> {
        std::mem::take(&mut *lock(&self.tasks))
    }
}

/// Releases every ticket at its intended time into the backlog. Returns when the schedule ends
/// or `stop` fires, with the instant scheduling ended. On a stop, tickets already due but not yet
/// released are counted as unsent (censored at the stop).
///
/// Spawn it as a task (as [`crate::run::run`] does) rather than awaiting it from `block_on`: on a
/// runtime worker thread, waking a worker task is a local queue push; from the `block_on` thread
/// it is a cross-thread futex wake-up per ticket.
///
/// `quantum` is the shortest time between two wake-ups. Zero (the default) wakes at every due
/// instant; a larger quantum releases tickets in batches, trading up to `quantum` of send lag
/// (which is measured and reported) for fewer wake-ups and less CPU.
pub async fn pace<C: Client>(
    mut schedule: Schedule,
    backlog: Sender<Ticket>,
    crew: Arc<Crew<C>>,
    quantum: Duration,
) -> (PaceEnd, Instant) {
    let recorder = crew.recorder.clone();
    let retrier = crew.retrier.clone();
    let clock = crew.clock;
    let mut timer = match PreciseTimer::new() {
        Ok(t) if crew.fault != Fault::NoPreciseTimer => t,
        _ => PreciseTimer::fallback(),
    };
    let stop = crew.stop_sending.clone();
    let mut last_wake = schedule.start();
    let mut due_retries = Vec::new();
    // One waiter for the whole run, not one per wake-up (see [`StopWaiters`]).
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let end = loop {
        // The window's end moves with pauses and rate changes (src/control.rs).
        let window_end = schedule.end();
        let retry_due = retrier.as_deref().and_then(Retrier::next_due);
        // Paused from outside: no new arrivals, and the rest of the schedule shifts. Tickets due
        // before the pause go now (a busy pacer may not have released them yet): held until the
        // resume, the pause would count as their lateness. Retries of requests already made
        // still come due, as their clients would send them.
        if schedule.paused() {
            release_due(&mut schedule, clock.now(), &backlog, &crew);
        }
        if let Some(resumed) = schedule.hold() {
            let retry_wait = async {
                match retry_due {
                    Some(at) => sleep_until(&clock, &mut timer, at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = &mut stopped => break (PaceEnd::Stopped, clock.now()),
                _ = resumed => continue,
                _ = retry_decided(retrier.as_deref()) => continue,
                _ = retry_wait => {
                    if let Some(r) = &retrier {
                        release_retries(r, clock.now(), &mut due_retries, &backlog, &crew);
                    }
                    continue;
                }
            }
        }
        let Some(due) = next_due(&schedule, retrier.as_deref(), window_end) else {
            // The schedule is done. Retries decided before the window ends are still due in it.
            if retrier.is_none() || clock.now() >= window_end {
                break (PaceEnd::Completed, schedule.end());
            }
            tokio::select! {
                biased;
                _ = &mut stopped => break (PaceEnd::Stopped, clock.now()),
                _ = retry_decided(retrier.as_deref()) => {}
                _ = schedule.steered() => {}
                _ = sleep_until(&clock, &mut timer, window_end) => {}
            }
            continue;
        };
        let wake = due.max(last_wake + quantum);
        let behind = wake <= clock.now();
        if !behind {
            tokio::select! {
                biased;
                _ = &mut stopped => break (PaceEnd::Stopped, clock.now()),
                // A retry due sooner than `wake` was queued: look again.
                _ = retry_decided(retrier.as_deref()) => continue,
                _ = schedule.steered() => continue,
                _ = sleep_until(&clock, &mut timer, wake) => {}
            }
        } else if stop.is_cancelled() {
            break (PaceEnd::Stopped, clock.now());
        }
        // Release everything that is due now, not one ticket per wake-up, and never yield in
        // between: yielding per batch would let the workers' pace throttle the pacer (a closed
        // loop). Each release is O(1), a push or a counted drop once the backlog is full, so a
        // pacer far behind catches up with its schedule instead of running late past its end.
        let now = clock.now();
        last_wake = now;
        release_due(&mut schedule, now, &backlog, &crew);
        if let Some(r) = &retrier {
            release_retries(r, now.min(window_end), &mut due_retries, &backlog, &crew);
        }
        if behind {
            // No sleep this round: let the workers (and a signal handler) run before the next.
            tokio::task::yield_now().await;
        }
    };
    // Unavailable from the start, or given up during the run: either way the verdict says so.
    if !timer.is_precise() && clock.is_system() {
        recorder.timer_fell_back();
    }
    recorder.window_ends(end.1);
    if let Some(r) = &retrier {
        // Retries not yet due when the window ends (or the stop) are never sent.
        r.close(end.1);
    }
    if end.0 == PaceEnd::Stopped {
        // Due before the stop but never released: counted, and their wait is in the tail.
        while schedule.peek().is_some_and(|d| d <= end.1) {
            let Some(ticket) = schedule.next_ticket() else {
                break;
            };
            recorder.scheduled();
            recorder.unsent(&Outcome::cut(ticket, None, end.1));
            if let Some(r) = &retrier {
                r.unfinished(&ticket, end.1);
            }
        }
    }
    end
}

/// The earliest of the schedule's next ticket and the earliest pending retry due inside the
/// window.
fn next_due(
    schedule: &Schedule,
    retrier: Option<&Retrier>,
    window_end: Instant,
) -> Option<Instant> {
    let retry = retrier
        .and_then(Retrier::next_due)
        .filter(|&d| d <= window_end);
    match (schedule.peek(), retry) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Resolves when a worker queues a retry that is due before every other pending one (never
/// without a retry policy).
async fn retry_decided(retrier: Option<&Retrier>) {
    match retrier {
        Some(r) => r.wake.notified().await,
        None => std::future::pending().await,
    }
}

/// Releases every retry due by `now`.
fn release_retries<C: Client>(
    retrier: &Retrier,
    now: Instant,
    due: &mut Vec<Ticket>,
    backlog: &Sender<Ticket>,
    crew: &Arc<Crew<C>>,
) {
    retrier.take_due(now, due);
    for ticket in due.drain(..) {
        crew.recorder.retry_scheduled();
        release(backlog, crew, ticket);
    }
}

/// Releases every ticket of the schedule due at or before `now`.
fn release_due<C: Client>(
    schedule: &mut Schedule,
    now: Instant,
    backlog: &Sender<Ticket>,
    crew: &Arc<Crew<C>>,
) {
    while schedule.peek().is_some_and(|d| d <= now) {
        let Some(ticket) = schedule.next_ticket() else {
            break;
        };
        crew.recorder.scheduled();
        release(backlog, crew, ticket);
        if crew.fault == Fault::PacerPanic {
            panic!("injected fault: the pacer panicked (METRONOME_FAULT=pacer-panic)");
        }
    }
}

/// Hands a due ticket to the workers, or drops and counts it when the backlog is full.
fn release<C: Client>(backlog: &Sender<Ticket>, crew: &Arc<Crew<C>>, ticket: Ticket) {
    match backlog.try_send(ticket) {
        Ok(()) => crew.grow(),
        Err(TrySendError::Full(t)) | Err(TrySendError::Closed(t)) => {
            crew.recorder.dropped(&t);
            if let Some(r) = &crew.retrier {
                r.dropped(&t);
            }
        }
    }
}

/// Sleeps until `at` on the crew's clock: the precise timer on the system clock, tokio's timer on
/// a virtual one.
async fn sleep_until(clock: &Clock, timer: &mut PreciseTimer, at: Instant) {
    match clock {
        Clock::System => timer.sleep_until(at).await,
        #[cfg(test)]
        Clock::Virtual { .. } => tokio::time::sleep_until(clock.tokio_at(at)).await,
    }
}

/// One worker: takes tickets from the backlog and runs them until the backlog is closed and
/// empty, the first stop, or the abort.
async fn work<C: Client>(crew: Arc<Crew<C>>) {
    let mut waiters = StopWaiters::new(&crew);
    loop {
        crew.idle.fetch_add(1, Ordering::Relaxed);
        let next = tokio::select! {
            biased;
            _ = waiters.aborted.as_mut() => None,
            _ = waiters.stopped.as_mut() => None,
            t = crew.backlog.recv() => t.ok(),
        };
        crew.idle.fetch_sub(1, Ordering::Relaxed);
        let Some(ticket) = next else { return };
        if !execute(&crew, ticket, &mut waiters).await {
            return;
        }
        if crew.fault == Fault::WorkerPanic && crew.faulted.fetch_add(1, Ordering::Relaxed) == 0 {
            panic!("injected fault: a worker panicked (METRONOME_FAULT=worker-panic)");
        }
    }
}

/// The request budget of a closed-loop (`--rate max`) run, shared by all its workers.
#[derive(Debug)]
pub struct Saturation {
    end: Option<Instant>,
    remaining: AtomicU64,
    next_seq: AtomicU64,
    /// Fires when no more requests may start (budget spent, time up, or stopped).
    pub done: CancellationToken,
}

impl Saturation {
    pub fn new(end: Option<Instant>, count: Option<u64>) -> Self {
        Saturation {
            end,
            remaining: AtomicU64::new(count.unwrap_or(u64::MAX)),
            next_seq: AtomicU64::new(0),
            done: CancellationToken::new(),
        }
    }

    /// Claims the next request, if the budget allows one.
    fn take(&self) -> Option<u64> {
        if self.done.is_cancelled() || self.end.is_some_and(|e| Instant::now() >= e) {
            self.done.cancel();
            return None;
        }
        let claimed = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        match claimed {
            Ok(1) => self.done.cancel(),
            Ok(_) => {}
            Err(_) => {
                self.done.cancel();
                return None;
            }
        }
        Some(self.next_seq.fetch_add(1, Ordering::Relaxed))
    }
}

/// Closed-loop worker: sends its next request as soon as the previous one completed, until the
/// budget is spent. No schedule, so latency equals service time (see [`Ticket::unscheduled`]).
pub async fn saturate<C: Client>(crew: Arc<Crew<C>>, budget: Arc<Saturation>) {
    let mut waiters = StopWaiters::new(&crew);
    while let Some(seq) = budget.take() {
        crew.recorder.scheduled();
        if !execute(&crew, Ticket::unscheduled(seq), &mut waiters).await {
            return;
        }
    }
}

/// What ends a worker's request early: the first stop (before sending) and the abort. The
/// waiters are made once per worker: a fresh `cancelled()` per request joined and left the
/// token's waiter list under its lock every time, ~10 % of metronome's CPU per request at maximum
/// rate. The timeout stays a fresh `timeout_at` per request: reusing one re-armed `Sleep` per
/// worker measured slower at 5 000/s (68 vs 55 µs of CPU per request), see docs/performance.md.
struct StopWaiters {
    aborted: Pin<Box<WaitForCancellationFutureOwned>>,
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl StopWaiters {
    fn new<C: Client>(crew: &Crew<C>) -> Self {
        StopWaiters {
            aborted: Box::pin(crew.abort.clone().cancelled_owned()),
            stopped: Box::pin(crew.stop_sending.clone().cancelled_owned()),
        }
    }
}

/// Leases a connection, sends one ticket and records its outcome. Returns false if the worker
/// must stop (a stop before sending, or the abort: the request is then counted and censored).
async fn execute<C: Client>(crew: &Crew<C>, ticket: Ticket, waiters: &mut StopWaiters) -> bool {
    let recorder = &*crew.recorder;
    let retrier = crew.retrier.as_deref();
    let clock = crew.clock;
    let admission = retrier.map_or(Admission::Pass, |r| r.admit(clock.now()));
    if admission == Admission::Refuse {
        // The client's breaker is open: the attempt fails fast and is never sent.
        recorder.short_circuited(&ticket);
        if let Some(r) = retrier {
            r.short_circuit(&ticket, clock.now());
        }
        return true;
    }
    // Waiting here happens only at the connection cap: it is the generator's, so it is send lag.
    let lease = tokio::select! {
        biased;
        _ = waiters.aborted.as_mut() => {
            let now = clock.now();
            recorder.cut(&Outcome::cut(ticket, None, now));
            unfinished(retrier, &ticket, now);
            return false;
        }
        _ = waiters.stopped.as_mut() => {
            let now = clock.now();
            recorder.unsent(&Outcome::cut(ticket, None, now));
            unfinished(retrier, &ticket, now);
            return false;
        }
        lease = crew.client.lease() => lease,
    };
    let sent_at = clock.now();
    recorder.sent(sent_at, ticket.is_retry());
    if let Some(r) = retrier {
        if ticket.is_retry() {
            r.retry_sent(&ticket);
        } else {
            r.first_sent(sent_at);
        }
    }
    let deadline = clock.tokio_at(
        sent_at
            .checked_add(crew.timeout)
            .unwrap_or_else(|| sent_at + Duration::from_secs(365 * 86_400)),
    );
    let completion = tokio::select! {
        biased;
        _ = waiters.aborted.as_mut() => {
            let now = clock.now();
            recorder.cut(&Outcome::cut(ticket, Some(sent_at), now));
            unfinished(retrier, &ticket, now);
            return false;
        }
        r = tokio::time::timeout_at(deadline, crew.client.call(lease, ticket.request(), deadline)) => match r {
            Ok(c) => c,
            Err(_) => Completion::failed(Class::Timeout, crew.timeout_message.clone()),
        },
    };
    let done = clock.now();
    let answer = (completion.class, completion.status, completion.grpc);
    let pushback = match (completion.no_retry, completion.retry_after) {
        (true, _) => Pushback::Refused,
        (false, Some(d)) => Pushback::After(d),
        (false, None) => Pushback::None,
    };
    recorder.record(&Outcome::new(ticket, sent_at, done, completion));
    if let Some(r) = retrier {
        r.settle_coded(&ticket, answer, pushback, done, admission);
    }
    true
}

fn unfinished(retrier: Option<&Retrier>, ticket: &Ticket, at: Instant) {
    if let Some(r) = retrier {
        r.unfinished(ticket, at);
    }
}

/// A sleep with sub-millisecond resolution (Linux `timerfd`), or tokio's timer elsewhere.
struct PreciseTimer {
    #[cfg(target_os = "linux")]
    fd: Option<linux::TimerFd>,
}

impl PreciseTimer {
    #[cfg(target_os = "linux")]
    fn new() -> std::io::Result<Self> {
        Ok(PreciseTimer {
            fd: Some(linux::TimerFd::new()?),
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> std::io::Result<Self> {
        Ok(PreciseTimer {})
    }

    fn fallback() -> Self {
        PreciseTimer {
            #[cfg(target_os = "linux")]
            fd: None,
        }
    }

    /// Whether wake-ups are sub-millisecond (false on tokio's 1 ms timer).
    fn is_precise(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.fd.is_some();
        #[cfg(not(target_os = "linux"))]
        false
    }

    async fn sleep_until(&mut self, deadline: Instant) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &mut self.fd {
            if fd.sleep_until(deadline).await.is_ok() {
                return;
            }
            // The timerfd failed (should not happen); fall back for good.
            self.fd = None;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}

#[cfg(target_os = "linux")]
mod linux {
    //! A non-blocking CLOCK_MONOTONIC timerfd driven by tokio's reactor. `std::time::Instant` is
    //! CLOCK_MONOTONIC on Linux, so an `Instant` maps onto the timerfd clock by a fixed offset
    //! taken once.

    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    pub struct TimerFd {
        fd: AsyncFd<OwnedFd>,
        base_instant: Instant,
        base_ts: Duration,
    }

    fn monotonic_now() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    impl TimerFd {
        pub fn new() -> io::Result<Self> {
            // SAFETY: plain syscall; the result is checked before use.
            let raw = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `raw` is a freshly created fd that nothing else owns.
            let owned = unsafe { OwnedFd::from_raw_fd(raw) };
            let base_instant = Instant::now();
            let base_ts = monotonic_now();
            // SAFETY: `owned` is a valid open fd and the AsyncFd owns it for its whole life.
            let fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
                .map_err(|e| io::Error::other(e.to_string()))?;
            Ok(TimerFd {
                fd,
                base_instant,
                base_ts,
            })
        }

        fn arm(&self, deadline: Instant) -> io::Result<()> {
            let at = self.base_ts + deadline.saturating_duration_since(self.base_instant);
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: at.as_secs() as libc::time_t,
                    // A zero it_value would disarm the timer; deadlines are never at the epoch.
                    tv_nsec: (at.subsec_nanos().max(1)) as libc::c_long,
                },
            };
            // SAFETY: valid fd and a fully initialised itimerspec.
            let rc = unsafe {
                libc::timerfd_settime(
                    self.fd.as_raw_fd(),
                    libc::TFD_TIMER_ABSTIME,
                    &spec,
                    std::ptr::null_mut(),
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        pub async fn sleep_until(&mut self, deadline: Instant) -> io::Result<()> {
            self.arm(deadline)?;
            loop {
                let mut guard = self.fd.readable().await?;
                let mut buf = [0u8; 8];
                // SAFETY: reading 8 bytes into an 8-byte buffer from a valid fd.
                let n = unsafe {
                    libc::read(guard.get_inner().as_raw_fd(), buf.as_mut_ptr().cast(), 8)
                };
                if n == 8 {
                    // The fd is drained; forget the readiness now rather than paying an EAGAIN
                    // read at the next sleep.
                    guard.clear_ready();
                    return Ok(());
                }
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    if Instant::now() >= deadline {
                        return Ok(());
                    }
                    continue;
                }
                return Err(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! On tokio's paused clock (mapped onto `Instant`s by [`Clock::Virtual`]): time moves only
    //! when every task waits, so lateness is exactly the dispatcher's design, never the host's.

    use super::*;
    use crate::record::{Tally, Tickets};
    use crate::schedule::Shape;
    use crate::transport::Lease;
    use tokio::sync::Semaphore;

    /// A client that "answers" after a fixed delay; `conns` plays the connection cap.
    struct Delay {
        delay: Duration,
        conns: Arc<Semaphore>,
    }

    impl Client for Delay {
        async fn lease(&self) -> Lease {
            self.conns.clone().acquire_owned().await.unwrap()
        }
        async fn call(
            &self,
            _lease: Lease,
            _request: u32,
            _deadline: tokio::time::Instant,
        ) -> Completion {
            tokio::time::sleep(self.delay).await;
            Completion::status(Class::Ok, 200)
        }
    }

    struct Rig {
        recorder: Arc<Recorder>,
        crew: Arc<Crew<Delay>>,
        tx: Sender<Ticket>,
        start: Instant,
    }

    fn rig(workers: usize, backlog: usize, delay_ms: u64, conns: usize) -> Rig {
        let start = Instant::now();
        let clock = Clock::Virtual {
            std0: start,
            tokio0: tokio::time::Instant::now(),
        };
        let recorder = Arc::new(Recorder::starting_at(start));
        let (tx, rx) = async_channel::bounded(backlog);
        let client = Delay {
            delay: Duration::from_millis(delay_ms),
            conns: Arc::new(Semaphore::new(conns)),
        };
        let crew = Crew::new(
            Arc::new(client),
            rx,
            recorder.clone(),
            Duration::from_secs(10),
            workers,
            CancellationToken::new(),
            CancellationToken::new(),
            Fault::None,
        )
        .on_clock(clock);
        crew.start(1);
        Rig {
            recorder,
            crew,
            tx,
            start,
        }
    }

    async fn pace_constant(r: &Rig, rate: f64, ms: u64) -> PaceEnd {
        let shape = Shape::constant(rate, Duration::from_millis(ms)).unwrap();
        pace(
            Schedule::new(shape, r.start),
            r.tx.clone(),
            r.crew.clone(),
            Duration::ZERO,
        )
        .await
        .0
    }

    /// Closes the backlog (as the end of pacing does), waits for the crew, returns the counts
    /// and everything recorded.
    async fn finish(rig: Rig) -> (Tickets, Tally, Arc<Crew<Delay>>) {
        let Rig {
            recorder, crew, tx, ..
        } = rig;
        drop(tx);
        let mut tasks = crew.take_tasks();
        while tasks.join_next().await.is_some() {}
        let mut t = Tally::default();
        recorder.close_interval(&mut t);
        (recorder.tickets(), t, crew)
    }

    #[tokio::test(start_paused = true)]
    async fn every_ticket_is_sent_on_time_when_capacity_suffices() {
        let r = rig(50, 100, 5, 10_000);
        assert_eq!(pace_constant(&r, 1000.0, 200).await, PaceEnd::Completed);
        let (f, t, _) = finish(r).await;
        assert_eq!((f.scheduled, f.sent, f.dropped), (200, 200, 0));
        assert_eq!(t.clocks.send_lag.max(), 0, "nobody waited");
        assert_eq!(t.clocks.latency.min(), 5_000);
    }

    #[tokio::test(start_paused = true)]
    async fn workers_grow_on_demand_to_what_is_in_flight() {
        // 100 ms per request at 500/s: 50 in flight at once, from a crew that started with 1.
        let r = rig(1000, 1000, 100, 10_000);
        pace_constant(&r, 500.0, 400).await;
        let (f, t, crew) = finish(r).await;
        assert!((50..=52).contains(&crew.size()), "crew of {}", crew.size());
        assert_eq!(f.sent, 200);
        assert_eq!(t.clocks.send_lag.max(), 0, "a worker was always there");
    }

    #[tokio::test(start_paused = true)]
    async fn full_backlog_drops_and_counts() {
        // 1 worker busy 100 ms per request, backlog 2, 50 tickets 2 ms apart: ticket 0 is sent,
        // 1 and 2 wait, and every later one finds the backlog full until the schedule ends.
        let r = rig(1, 2, 100, 10_000);
        pace_constant(&r, 500.0, 100).await;
        let (f, _, _) = finish(r).await;
        assert_eq!((f.scheduled, f.sent, f.dropped), (50, 3, 47));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_at_the_connection_cap_is_send_lag() {
        // 2 connections, 50 ms each, a request every 10 ms: request k starts at ⌊k/2⌋·50 ms, so
        // k = 18 waits longest, 9·50 − 180 = 270 ms.
        let r = rig(100, 100, 50, 2);
        pace_constant(&r, 100.0, 200).await;
        let (_, t, _) = finish(r).await;
        assert_eq!(t.counts.ok, 20);
        let max = t.clocks.send_lag.max();
        assert!((270_000..=270_300).contains(&max), "max send lag {max}");
        assert_eq!(t.clocks.send_lag.min(), 0);
        // Service time is the 50 ms of work, the wait is not in it.
        assert!(t.clocks.service_time.max() <= 50_100);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_leaves_the_backlog_unsent_and_the_abort_cuts_in_flight() {
        // One worker, 1 s per request, 100/s: at the stop (505 ms) ticket 0 is in flight and
        // tickets 1..=50 wait in the backlog.
        let r = rig(1, 1000, 1000, 10);
        let stop = r.crew.stop_sending.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(505)).await;
            stop.cancel();
        });
        assert_eq!(pace_constant(&r, 100.0, 2000).await, PaceEnd::Stopped);
        r.crew.abort.cancel();
        let rx = r.crew.backlog.clone();
        let (f, t, _) = finish(r).await;
        assert_eq!((f.scheduled, f.sent, f.cancelled), (51, 1, 1), "{f:?}");
        assert_eq!(rx.len(), 50, "the backlog is not sent after the stop");
        assert_eq!(t.counts.completed, 0);
        let cut = t.clocks.latency.max();
        assert!(
            (505_000..=505_300).contains(&cut),
            "censored at the cut: {cut}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn saturation_budget_is_exact() {
        let r = rig(4, 1, 1, 10);
        let budget = Arc::new(Saturation::new(None, Some(37)));
        let mut handles = Vec::new();
        for _ in 0..4 {
            handles.push(tokio::spawn(saturate(r.crew.clone(), budget.clone())));
        }
        for h in handles {
            h.await.unwrap();
        }
        let f = r.recorder.tickets();
        assert_eq!((f.scheduled, f.sent), (37, 37));
        assert!(budget.done.is_cancelled());
    }

    /// A client that sheds (503) everything sent before `until`, then answers; 1 ms per call.
    struct Flaky {
        until: tokio::time::Instant,
    }

    impl Client for Flaky {
        async fn lease(&self) -> Lease {
            Arc::new(Semaphore::new(1)).acquire_owned().await.unwrap()
        }
        async fn call(
            &self,
            _lease: Lease,
            _request: u32,
            _deadline: tokio::time::Instant,
        ) -> Completion {
            let shed = tokio::time::Instant::now() < self.until;
            tokio::time::sleep(Duration::from_millis(1)).await;
            if shed {
                Completion::status(Class::Rejected, 503)
            } else {
                Completion::status(Class::Ok, 200)
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_released_at_their_due_time_and_every_logical_request_ends() {
        // 100/s for 1 s; the target sheds everything sent before 300 ms. Attempt k of the ticket
        // due at t goes out at t + 51k ms (1 ms of call, 50 ms of backoff): tickets before 198 ms
        // fail all 3 attempts, 200–240 ms succeed on the third, 250–290 ms on the second.
        let start = Instant::now();
        let tokio0 = tokio::time::Instant::now();
        let recorder = Arc::new(Recorder::starting_at(start));
        let (tx, rx) = async_channel::bounded(1000);
        let policy = crate::retry::Policy::parse("backoff=fixed:50ms jitter=none attempts=3")
            .unwrap()
            .unwrap();
        let retrier = Arc::new(Retrier::new(policy, start, 1));
        let crew = Crew::new(
            Arc::new(Flaky {
                until: tokio0 + Duration::from_millis(300),
            }),
            rx,
            recorder.clone(),
            Duration::from_secs(10),
            100,
            CancellationToken::new(),
            CancellationToken::new(),
            Fault::None,
        )
        .on_clock(Clock::Virtual {
            std0: start,
            tokio0,
        })
        .with_retrier(Some(retrier.clone()));
        crew.start(1);
        let shape = Shape::constant(100.0, Duration::from_secs(1)).unwrap();
        let (end, _) = pace(
            Schedule::new(shape, start),
            tx,
            crew.clone(),
            Duration::ZERO,
        )
        .await;
        assert_eq!(end, PaceEnd::Completed);
        let mut tasks = crew.take_tasks();
        while tasks.join_next().await.is_some() {}
        let mut t = Tally::default();
        recorder.close_interval(&mut t);
        let f = recorder.tickets();
        assert_eq!(f.retries, 55, "{f:?}");
        assert_eq!((f.scheduled, f.sent, f.sent_retries), (155, 155, 55));
        assert_eq!(
            t.clocks.send_lag.max(),
            0,
            "retries went out exactly when due"
        );
        let l = retrier.logical();
        assert_eq!(
            (l.succeeded_first, l.succeeded_retry, l.exhausted),
            (70, 10, 20)
        );
        assert_eq!(l.ended(), 100);
        assert_eq!(
            (l.attempts_used[1], l.attempts_used[2], l.attempts_used[3]),
            (70, 5, 25)
        );
        // End to end: the longest is three attempts, 1 + 50 + 1 + 50 + 1 ms.
        assert_eq!(l.end_to_end.max() / 1000, 103);
    }

    /// The real timerfd, on the real clock.
    #[tokio::test]
    async fn precise_timer_wakes_close_to_deadline() {
        let mut t = PreciseTimer::new().unwrap();
        let mut worst = Duration::ZERO;
        for i in 1..=20u64 {
            let due = Instant::now() + Duration::from_micros(300 * i);
            t.sleep_until(due).await;
            let late = Instant::now().saturating_duration_since(due);
            assert!(Instant::now() >= due);
            worst = worst.max(late);
        }
        // Generous: the point is "not tokio's whole-millisecond rounding" on an idle machine,
        // but a busy CI box can preempt us, so only catch gross failures here.
        assert!(
            worst < Duration::from_millis(50),
            "worst lateness {worst:?}"
        );
    }
}
