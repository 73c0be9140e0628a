//! Wires the pipeline for one run and owns shutdown.
//!
//! ```text
//! Plan ─► transport client (target checked, -c connections warmed before the clock starts)
//!      ─► Schedule ─► dispatch::pace ─► backlog ─► dispatch crew (on demand) ─► Recorder
//!                                      collector (each interval) ─► Snapshot ─► views (progress…)
//! ```
//!
//! End of a run: when the schedule ends the backlog is closed, and the run keeps measuring the
//! requests still queued or in flight for up to the grace period, because cutting them off at
//! the deadline would drop exactly the slowest requests from the tail. What is still unfinished
//! then (or at a second stop) is cut: censored into the tail at the cut and counted as
//! cancelled. The first stop ends sending at once: tickets due but unsent are counted as
//! `unsent_at_stop`, and only what is already in flight is awaited.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_channel::Receiver;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::control::{self, Control};
use crate::dispatch::{self, Crew, Fault, PaceEnd};
use crate::error::Error;
use crate::plan::Plan;
use crate::record::{
    ConnStats, Ending, Measured, Outcome, Recorder, RetryResult, Snapshot, StageBook, Tally,
    Tickets, Timeline,
};
use crate::report::{progress_line, Report};
use crate::retry::Retrier;
use crate::schedule::{Schedule, Shape, Ticket};
use crate::transport::{http, Client};

/// Stop requests from the outside world (signals, a TUI, a test).
#[derive(Clone, Debug, Default)]
pub struct Stop {
    /// Stop sending (due tickets not yet sent are counted as unsent), then wait up to the grace
    /// period for what is in flight.
    pub graceful: CancellationToken,
    /// Stop waiting at once; everything unfinished is cut (censored) and counted as cancelled.
    pub abort: CancellationToken,
}

impl Stop {
    pub fn new() -> Self {
        Stop::default()
    }
}

/// Workers spawned before the clock starts (more are added on demand).
const INITIAL_WORKERS: usize = 64;

/// File descriptors kept free for everything that is not a connection (stdio, the runtime's
/// epoll and timers, the report file).
pub const FD_RESERVE: u64 = 64;

/// Connection limits for `plan`, fitted to the process's file-descriptor limit (raised to its
/// hard limit first). A `--max-connections` that cannot fit is refused before anything is sent;
/// the default is lowered to fit.
pub fn pooling(plan: &Plan) -> Result<http::Pooling, Error> {
    let limit = raise_fd_limit();
    let room = usize::try_from(limit.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
    let (max, explicit) = match plan.limits.max_connections {
        Some(n) => (n, true),
        None => (plan.limits.max_in_flight, false),
    };
    if max > room && (explicit || room < plan.limits.connections) {
        return Err(Error::FdLimit {
            wanted: max.max(plan.limits.connections),
            limit,
            reserve: FD_RESERVE,
        });
    }
    let max_connections = max.min(room).max(1);
    Ok(http::Pooling {
        warm: plan.limits.connections.min(max_connections),
        max_connections,
        max_streams: plan.limits.max_streams,
    })
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft limit now in force.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid, initialised rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
    let soft = lim.rlim_cur as u64;
    soft
}

/// Where a run publishes its [`Snapshot`]s: once per interval, the newest replacing the last
/// (a `watch` channel, so a slow view sees fewer snapshots but never holds anything up). `None`
/// before the first interval and again once the run is over.
#[derive(Clone, Debug)]
pub struct Views {
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    interval: Duration,
}

impl Default for Views {
    fn default() -> Self {
        Views::every(Duration::from_secs(1))
    }
}

impl Views {
    /// Snapshots every `interval` (at least 10 ms; 1 s for the progress line, 250 ms suits a UI).
    pub fn every(interval: Duration) -> Views {
        Views {
            tx: watch::Sender::new(None),
            interval: interval.max(Duration::from_millis(10)),
        }
    }

    /// How often snapshots are published.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// A new subscriber; it sees the latest snapshot and every later one it has time for.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.tx.subscribe()
    }

    /// Follows the snapshots on a thread of its own named `name` (a thread, so that a slow
    /// view never holds up the engine's runtime): `each` sees every snapshot it has time for,
    /// with `state`, until it breaks or the run is over; the thread then returns `state`.
    pub fn follow<S, F>(
        &self,
        name: &str,
        mut state: S,
        mut each: F,
    ) -> std::io::Result<std::thread::JoinHandle<S>>
    where
        S: Send + 'static,
        F: FnMut(&mut S, &Snapshot) -> std::ops::ControlFlow<()> + Send + 'static,
    {
        let mut rx = self.subscribe();
        let handle = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut started = false;
                while handle.block_on(rx.changed()).is_ok() {
                    let Some(snap) = rx.borrow_and_update().clone() else {
                        if started {
                            break;
                        }
                        continue;
                    };
                    started = true;
                    if each(&mut state, &snap).is_break() {
                        break;
                    }
                }
                state
            })
    }
}

/// Runs `plan` to completion (or until stopped) and returns the report.
pub async fn run(plan: &Plan, stop: Stop) -> Result<Report, Error> {
    run_with(plan, stop, Views::default()).await
}

/// [`run`], publishing snapshots to `views` while it goes.
pub async fn run_with(plan: &Plan, stop: Stop, views: Views) -> Result<Report, Error> {
    run_steered(plan, stop, views, Control::new()).await
}

/// [`run_with`], with `control` able to pause the schedule and change its rate while it runs
/// (open loop only; a closed-loop run has no schedule to steer).
pub async fn run_steered(
    plan: &Plan,
    stop: Stop,
    views: Views,
    control: Control,
) -> Result<Report, Error> {
    // A gRPC schema from reflection is fetched (and the body checked) before anything else.
    let resolved = tokio::select! {
        r = crate::transport::grpc::resolve(plan) => r?,
        _ = stop.graceful.cancelled() => return Err(Error::Stopped),
    };
    let plan = resolved.as_ref().unwrap_or(plan);
    let pooling = pooling(plan)?;
    let conns = Arc::new(ConnStats::default());
    let client = tokio::select! {
        c = http::client(plan, pooling, conns.clone()) => c?,
        _ = stop.graceful.cancelled() => return Err(Error::Stopped),
    };
    if plan.progress {
        print_progress(&views);
    }
    let measured = drive(
        plan,
        client,
        conns,
        pooling,
        stop,
        (&views, &control),
        Fault::from_env(),
    )
    .await;
    views.tx.send_replace(None);
    Ok(Report::new(plan, &measured))
}

async fn drive<C: Client>(
    plan: &Plan,
    client: C,
    conns: Arc<ConnStats>,
    pooling: http::Pooling,
    stop: Stop,
    (views, control): (&Views, &Control),
    fault: Fault,
) -> Measured {
    let (tx, rx) = async_channel::bounded(plan.limits.backlog.max(1));
    let abort = CancellationToken::new();
    // Everything is built before the schedule's clock starts: making the histograms and the
    // first workers takes milliseconds (tens in a debug build), and a clock started before them
    // made the first tickets late by that much. The recorder only needs an instant before
    // every send; the retry budget's and breaker's windows may open a little early.
    let recorder = Arc::new(
        Recorder::new()
            .with_conns(conns)
            .with_stages(StageBook::for_shape(&plan.shape)),
    );
    let retrier = plan
        .retry
        .clone()
        .map(|p| Arc::new(Retrier::new(p, Instant::now(), plan.shape.seed())));
    let crew = Crew::new(
        Arc::new(client),
        rx.clone(),
        recorder.clone(),
        plan.limits.timeout,
        plan.limits.max_in_flight,
        stop.graceful.clone(),
        abort.clone(),
        fault,
    )
    .with_retrier(retrier.clone());
    if !plan.shape.is_closed_loop() {
        // A few workers to begin with; the crew grows as soon as tickets wait for one.
        crew.start(pooling.warm.min(INITIAL_WORKERS));
    }
    let started = SystemTime::now();
    let start = Instant::now();
    control.anchor(start);
    let collector_stop = CancellationToken::new();
    let collector_handle = tokio::runtime::Handle::current();
    let collector_until = collector_stop.clone();
    let collector_of = Collector {
        recorder: recorder.clone(),
        crew: crew.clone(),
        backlog: rx.clone(),
        start,
        shape: plan.shape.clone(),
        views: views.clone(),
        control: control.clone(),
        fault,
    };
    // The collector's work (merging histograms once an interval) runs on a thread of its own,
    // never on the runtime's: a runtime thread busy merging cannot release or send a ticket.
    let collector = tokio::task::spawn_blocking(move || {
        collect(collector_of, &collector_handle, &collector_until)
    });

    let (pace_end, sched_end, mut tasks) = if plan.shape.is_closed_loop() {
        drop(tx);
        let (end, at, set) = saturate(plan, &crew, pooling, start, &stop).await;
        (Some(end), at, set)
    } else {
        open_loop(plan, &crew, tx, (start, control)).await
    };
    recorder.window_ends(sched_end);

    let mut ending = match pace_end {
        Some(PaceEnd::Completed) => Ending::Completed,
        Some(PaceEnd::Stopped) => Ending::Interrupted,
        None => Ending::InternalError,
    };
    if drain(&mut tasks, &recorder, &abort, &stop, plan.limits.grace).await {
        ending = Ending::Aborted;
    }
    settle_backlog(
        &rx,
        &recorder,
        retrier.as_deref(),
        stop.graceful.is_cancelled() && !abort.is_cancelled(),
    );
    if ending == Ending::Completed && stop.graceful.is_cancelled() {
        ending = Ending::Interrupted;
    }
    let elapsed = start.elapsed();
    collector_stop.cancel();
    let (timeline, last_close) = match collector.await {
        Ok(t) => t,
        Err(e) => {
            if e.is_panic() {
                recorder.panicked("collector");
            }
            (Timeline::default(), start)
        }
    };
    let span = sched_end.saturating_duration_since(start);
    let mut m = measured(
        &recorder,
        crew.size(),
        pooling,
        (started, span, elapsed),
        ending,
        Closing {
            timeline,
            last_close,
            start,
            shape: &plan.shape,
            retry: retrier.as_ref().map(|r| r.counts()),
        },
    );
    m.control = control::Summary::at(&control.state(), sched_end);
    m.retry = retrier.map(|r| RetryResult {
        logical: r.logical(),
        budget_denied: r.budget_denied(),
        breaker: r.breaker_counts(),
    });
    m
}

/// The collector's timeline, to be completed with the run's last (partial) interval.
struct Closing<'a> {
    timeline: Timeline,
    /// When the collector last closed an interval.
    last_close: Instant,
    start: Instant,
    shape: &'a Shape,
    /// The retry counters at the end, with a retry policy.
    retry: Option<crate::retry::RetryCounts>,
}

/// The run's result, from the recorder once every task is done.
fn measured(
    recorder: &Recorder,
    workers: usize,
    pooling: http::Pooling,
    (started, schedule_span, elapsed): (SystemTime, Duration, Duration),
    mut ending: Ending,
    closing: Closing,
) -> Measured {
    let mut last = Tally::default();
    recorder.close_interval(&mut last);
    let Closing {
        mut timeline,
        last_close,
        start,
        shape,
        retry,
    } = closing;
    let now = Instant::now();
    let mid = (last_close + now.saturating_duration_since(last_close) / 2)
        .saturating_duration_since(start);
    timeline.add(
        mid,
        now.saturating_duration_since(last_close),
        &last,
        &recorder.tickets(),
        shape.rate_at(mid),
        retry.as_ref(),
    );
    let health = recorder.health();
    if !health.panics.is_empty() {
        ending = Ending::InternalError;
    }
    Measured {
        totals: recorder.totals(),
        tickets: recorder.tickets(),
        ending,
        started,
        schedule_span,
        elapsed,
        concurrency: workers,
        stages: recorder.stage_tallies(),
        health,
        connections: recorder.conns().snapshot(),
        errors: recorder.error_samples(),
        warm: pooling.warm,
        max_connections: pooling.max_connections,
        timeline,
        retry: None,
        control: control::Summary::default(),
    }
}

/// Open loop: the pacer releases the schedule's tickets to a crew that grows on demand.
/// Returns how pacing ended (`None`: the pacer panicked), when, and the workers to drain.
async fn open_loop<C: Client>(
    plan: &Plan,
    crew: &Arc<Crew<C>>,
    tx: async_channel::Sender<Ticket>,
    (start, control): (Instant, &Control),
) -> (Option<PaceEnd>, Instant, JoinSet<()>) {
    let schedule = Schedule::new(plan.shape.clone(), start)
        .with_mix(&plan.weights)
        .steered_by(control);
    let pacer = tokio::spawn(dispatch::pace(
        schedule,
        tx,
        crew.clone(),
        plan.pacer_quantum,
    ));
    let (end, at) = match pacer.await {
        Ok((end, at)) => (Some(end), at),
        Err(e) => {
            if e.is_panic() {
                crew.recorder().panicked("pacer");
            }
            (None, Instant::now())
        }
    };
    (end, at, crew.take_tasks())
}

/// Tickets still in the backlog once the workers are done were scheduled but never sent: unsent
/// by request after a stop, otherwise cut. Either way their wait so far is in the tail.
fn settle_backlog(
    rx: &Receiver<Ticket>,
    recorder: &Recorder,
    retrier: Option<&Retrier>,
    stopped: bool,
) {
    let cut = Instant::now();
    while let Ok(ticket) = rx.try_recv() {
        let outcome = Outcome::cut(ticket, None, cut);
        if stopped {
            recorder.unsent(&outcome);
        } else {
            recorder.cut(&outcome);
        }
        if let Some(r) = retrier {
            r.unfinished(&ticket, cut);
        }
    }
}

/// Waits for the workers up to the grace period (or the abort); then cuts what is in flight.
/// Returns true if a second stop ended the wait.
async fn drain(
    tasks: &mut JoinSet<()>,
    recorder: &Recorder,
    abort: &CancellationToken,
    stop: &Stop,
    grace: Duration,
) -> bool {
    let grace = tokio::time::sleep(grace);
    tokio::pin!(grace);
    let mut aborted = false;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Err(e)) if e.is_panic() => recorder.panicked("worker"),
                Some(_) => {}
            },
            _ = &mut grace => { abort.cancel(); break }
            _ = stop.abort.cancelled() => { abort.cancel(); aborted = true; break }
        }
    }
    while let Some(joined) = tasks.join_next().await {
        if matches!(&joined, Err(e) if e.is_panic()) {
            recorder.panicked("worker");
        }
    }
    aborted
}

/// Closed loop (`--rate max`): every worker sends back to back until the budget is spent.
async fn saturate<C: Client>(
    plan: &Plan,
    crew: &Arc<Crew<C>>,
    pooling: http::Pooling,
    start: Instant,
    stop: &Stop,
) -> (PaceEnd, Instant, JoinSet<()>) {
    let duration = plan.shape.duration();
    let end = (duration > Duration::ZERO)
        .then(|| start.checked_add(duration))
        .flatten();
    let count = match plan.shape {
        Shape::MaxCount(n) => Some(n),
        _ => None,
    };
    let budget = Arc::new(dispatch::Saturation::new(end, count));
    let mut set = JoinSet::new();
    // One worker per connection of the pool (HTTP/2: per stream), as wrk and oha do.
    let per_conn = if plan.protocol == crate::plan::Protocol::Http2 {
        pooling.max_streams
    } else {
        1
    };
    let workers = plan
        .concurrency()
        .min(pooling.max_connections.saturating_mul(per_conn));
    for _ in 0..workers.max(1) {
        set.spawn(dispatch::saturate(crew.clone(), budget.clone()));
    }
    let until_end = async {
        match end {
            Some(e) => tokio::time::sleep_until(e.into()).await,
            None => std::future::pending().await,
        }
    };
    let (how, at) = tokio::select! {
        _ = budget.done.cancelled() => (PaceEnd::Completed, Instant::now()),
        _ = until_end => {
            budget.done.cancel();
            (PaceEnd::Completed, end.unwrap_or_else(Instant::now))
        }
        _ = stop.graceful.cancelled() => {
            budget.done.cancel();
            (PaceEnd::Stopped, Instant::now())
        }
    };
    (how, at, set)
}

/// What the collector reads to build a snapshot.
struct Collector<C: Client> {
    recorder: Arc<Recorder>,
    crew: Arc<Crew<C>>,
    backlog: Receiver<Ticket>,
    start: Instant,
    shape: Shape,
    views: Views,
    control: Control,
    fault: Fault,
}

/// Once an interval: close it (folding it into the totals and the timeline) and publish a
/// snapshot. Returns the timeline and when it last closed an interval. Runs on a thread of its
/// own and only waits on `handle`'s timer; a snapshot no view still holds lends its tallies to
/// the next one, so a run does not allocate (and fault in) fresh histograms every interval.
fn collect<C: Client>(
    c: Collector<C>,
    handle: &tokio::runtime::Handle,
    stop: &CancellationToken,
) -> (Timeline, Instant) {
    let every = c.views.interval;
    if c.fault == Fault::CollectorPanic {
        panic!("injected fault: the collector panicked (METRONOME_FAULT=collector-panic)");
    }
    let mut last = c.start;
    let mut timeline = Timeline::default();
    let mut next = c.start + every;
    let mut buffers = Buffers::default();
    loop {
        let stopped = handle.block_on(async {
            tokio::select! {
                _ = stop.cancelled() => true,
                _ = tokio::time::sleep_until(next.into()) => false,
            }
        });
        if stopped {
            return (timeline, last);
        }
        let (snapshot, now) = c.snapshot(last, &mut buffers);
        // A missed tick is not made up in a burst: the next comes a whole interval later.
        next += every;
        if next <= now {
            next = now + every;
        }
        let mid = snapshot.at.saturating_sub(snapshot.interval_len / 2);
        timeline.add(
            mid,
            snapshot.interval_len,
            &snapshot.interval,
            &snapshot.tickets,
            snapshot.target_rate,
            snapshot.retry.as_ref(),
        );
        last = now;
        let previous = c.views.tx.send_replace(Some(Arc::new(snapshot)));
        buffers.recover(previous);
    }
}

/// Tallies the collector reuses: the shards' spare, and an earlier snapshot's interval and
/// totals once no view holds that snapshot any more.
#[derive(Default)]
struct Buffers {
    spare: Tally,
    interval: Option<Tally>,
    totals: Option<Tally>,
    /// The snapshot replaced last time, which a view (the TUI keeps the latest) still held.
    held: Option<Arc<Snapshot>>,
}

impl Buffers {
    /// Takes the tallies of `replaced` (the snapshot just replaced in the channel) or of the one
    /// held back last time, whichever no view holds now; keeps the other for the next try.
    fn recover(&mut self, replaced: Option<Arc<Snapshot>>) {
        for old in [self.held.take(), replaced].into_iter().flatten() {
            match Arc::try_unwrap(old) {
                Ok(snap) if self.interval.is_none() => {
                    self.interval = Some(snap.interval);
                    self.totals = Some(snap.totals);
                }
                Ok(_) => {}
                Err(still_held) => self.held = Some(still_held),
            }
        }
    }
}

impl<C: Client> Collector<C> {
    /// The snapshot of the interval since `last` (the previous one's end), and its own end.
    /// Its edge is read in one go: the interval closed, then the ticket counts and the time,
    /// so the interval's length is exactly the difference of consecutive `at`s and its sends
    /// are counted over that same length. (Taking the time before closing the interval, which
    /// takes milliseconds, skewed a window's send rate by up to half a percent.)
    fn snapshot(&self, last: Instant, buffers: &mut Buffers) -> (Snapshot, Instant) {
        let mut interval = buffers.interval.take().unwrap_or_default();
        self.recorder
            .close_interval_with(&mut interval, &mut buffers.spare);
        let tickets = self.recorder.tickets();
        let now = Instant::now();
        let interval_len = now.saturating_duration_since(last);
        let at = now.saturating_duration_since(self.start);
        let control = self.control.state();
        let steering = control.status(now);
        // The middle of the interval just measured, on the shape's own clock.
        let mid = control.position(now.checked_sub(interval_len / 2).unwrap_or(now));
        let stage = (self.shape.stages().len() > 1)
            .then(|| self.shape.stage_at(mid).map(|(_, name)| name.to_string()))
            .flatten();
        let target_rate = if steering.paused {
            0.0
        } else {
            self.shape.rate_at(mid) * steering.factor
        };
        let snapshot = Snapshot {
            at,
            interval_len,
            interval,
            totals: {
                let mut totals = buffers.totals.take().unwrap_or_default();
                self.recorder.totals_into(&mut totals);
                totals
            },
            tickets,
            backlog: self.backlog.len() as u64,
            workers: self.crew.size() as u64,
            connections: self.recorder.conns().snapshot(),
            target_rate,
            stage,
            health: self.recorder.health(),
            cpu: process_cpu(),
            retry: self.crew.retrier().map(|r| r.counts()),
            steering,
        };
        (snapshot, now)
    }
}

/// User + system CPU time of this process.
fn process_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The progress line: one subscriber among others, on its own thread, so a slow or blocked
/// terminal delays only the next line, never a send or a number.
fn print_progress(views: &Views) {
    let spawned = views.follow("metronome-progress", Tickets::default(), |prev, snap| {
        let line = progress_line(snap, prev);
        *prev = snap.tickets;
        if writeln!(std::io::stderr().lock(), "{line}").is_err() {
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    // Without a thread there is no progress line; the run itself is unaffected.
    drop(spawned);
}

#[cfg(test)]
mod buffer_tests {
    use super::*;

    fn snap(completed: u64) -> Arc<Snapshot> {
        let mut interval = Tally::default();
        interval.counts.completed = completed;
        Arc::new(Snapshot::fixture(1, interval))
    }

    #[test]
    fn a_snapshot_a_view_still_holds_is_reused_once_the_view_lets_go() {
        let mut b = Buffers::default();
        // A view (the TUI) holds the snapshot being replaced: nothing to reuse yet.
        let first = snap(1);
        let view = first.clone();
        b.recover(Some(first));
        assert!(b.interval.is_none() && b.held.is_some());
        // The view moved on to the next snapshot: the first one's tallies come back.
        drop(view);
        let second = snap(2);
        let view = second.clone();
        b.recover(Some(second));
        assert_eq!(b.interval.as_ref().map(|t| t.counts.completed), Some(1));
        assert!(b.totals.is_some());
        assert!(b.held.is_some(), "the second is kept for the next try");
        // Nobody holds a replaced snapshot: it is reused at once (buffers taken meanwhile).
        drop(view);
        b.interval = None;
        b.recover(None);
        assert_eq!(b.interval.as_ref().map(|t| t.counts.completed), Some(2));
        assert!(b.held.is_none());
    }
}
