//! Wires the pipeline for one run and owns shutdown.
//!
//! ```text
//! Plan ─► transport client (target checked, -c connections warmed before the clock starts)
//!      ─► Schedule ─► dispatch::pace ─► backlog ─► dispatch crew (on demand) ─► Recorder
//!                                                         collector (1 s) ─► progress, totals
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

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dispatch::{self, Crew, Fault, PaceEnd};
use crate::error::Error;
use crate::plan::Plan;
use crate::record::{
    ConnStats, Connections, ErrorSamples, Flow, Health, Outcome, Recorder, StageBook, StageTally,
    Window,
};
use crate::report::{progress_line, Report};
use crate::schedule::Schedule;
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

/// Everything the views need about a finished run.
#[derive(Clone, Debug)]
pub struct Measured {
    pub totals: Window,
    pub flow: Flow,
    pub ending: Ending,
    pub started: SystemTime,
    /// From the schedule's start to its end (or the stop).
    pub schedule_span: Duration,
    /// From the schedule's start until the last request was accounted for.
    pub elapsed: Duration,
    /// Most workers (requests that could be in flight at once) the run used.
    pub concurrency: usize,
    /// Per-stage tallies of a multi-stage shape (see [`StageBook`]).
    pub stages: Option<Vec<StageTally>>,
    pub health: Health,
    pub connections: Connections,
    pub errors: ErrorSamples,
    /// The connection pooling the run used (after fitting the file-descriptor limit).
    pub pooling: http::Pooling,
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

/// Runs `plan` to completion (or until stopped) and returns the report.
pub async fn run(plan: &Plan, stop: Stop) -> Result<Report, Error> {
    let pooling = pooling(plan)?;
    let conns = Arc::new(ConnStats::default());
    let client = tokio::select! {
        c = http::client(plan, pooling, conns.clone()) => c?,
        _ = stop.graceful.cancelled() => return Err(Error::Stopped),
    };
    let measured = drive(plan, client, conns, pooling, stop, Fault::from_env()).await;
    Ok(Report::new(plan, &measured))
}

async fn drive<C: Client>(
    plan: &Plan,
    client: C,
    conns: Arc<ConnStats>,
    pooling: http::Pooling,
    stop: Stop,
    fault: Fault,
) -> Measured {
    let (tx, rx) = async_channel::bounded(plan.limits.backlog.max(1));
    let abort = CancellationToken::new();
    let started = SystemTime::now();
    let start = Instant::now();
    let recorder = Arc::new(
        Recorder::starting_at(start)
            .with_conns(conns)
            .with_stages(StageBook::for_shape(&plan.shape, start)),
    );
    let collector_stop = CancellationToken::new();
    let collector = tokio::spawn(collect(
        recorder.clone(),
        start,
        plan.progress,
        plan.shape.clone(),
        collector_stop.clone(),
        fault,
    ));
    let crew = Crew::new(
        Arc::new(client),
        rx.clone(),
        recorder.clone(),
        plan.limits.timeout,
        plan.limits.max_in_flight,
        stop.graceful.clone(),
        abort.clone(),
        fault,
    );

    let (pace_end, sched_end, mut tasks) = if plan.shape.is_closed_loop() {
        drop(tx);
        let (end, at, set) = saturate(plan, &crew, pooling, start, &stop).await;
        (Some(end), at, set)
    } else {
        // A few workers to begin with; the crew grows as soon as tickets wait for one.
        crew.start(pooling.warm.min(INITIAL_WORKERS));
        let schedule = Schedule::new(plan.shape.clone(), start).with_mix(&plan.weights);
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
                    recorder.panicked("pacer");
                }
                (None, Instant::now())
            }
        };
        (end, at, crew.take_tasks())
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
    // Tickets still waiting in the backlog were scheduled but never sent.
    let cut = Instant::now();
    let stopped = stop.graceful.is_cancelled() && !abort.is_cancelled();
    while let Ok(ticket) = rx.try_recv() {
        let outcome = Outcome::cut(ticket, None, cut);
        if stopped {
            recorder.unsent(&outcome);
        } else {
            recorder.cut(&outcome);
        }
    }
    if ending == Ending::Completed && stop.graceful.is_cancelled() {
        ending = Ending::Interrupted;
    }
    let elapsed = start.elapsed();

    collector_stop.cancel();
    if let Err(e) = collector.await {
        if e.is_panic() {
            recorder.panicked("collector");
        }
    }
    let mut last = Window::default();
    recorder.close_interval(&mut last);
    let health = recorder.health();
    if !health.panics.is_empty() {
        ending = Ending::InternalError;
    }

    Measured {
        totals: recorder.totals(),
        flow: recorder.flow(),
        ending,
        started,
        schedule_span: sched_end.saturating_duration_since(start),
        elapsed,
        concurrency: crew.size(),
        stages: recorder.stage_tallies(),
        health,
        connections: recorder.conns().snapshot(),
        errors: recorder.error_samples(),
        pooling,
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
        crate::schedule::Shape::MaxCount(n) => Some(n),
        _ => None,
    };
    let budget = Arc::new(dispatch::Saturation::new(end, count));
    let mut set = JoinSet::new();
    // One worker per connection of the pool (HTTP/2: per stream), as wrk and oha do.
    let workers = plan
        .concurrency()
        .min(pooling.max_connections.saturating_mul(
            if plan.protocol == crate::plan::Protocol::Http2 {
                pooling.max_streams
            } else {
                1
            },
        ));
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

/// Once a second: close the interval (folding it into the totals), print a progress line.
async fn collect(
    recorder: Arc<Recorder>,
    start: Instant,
    progress: bool,
    shape: crate::schedule::Shape,
    stop: CancellationToken,
    fault: Fault,
) {
    let mut window = Window::default();
    let mut tick = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_flow = Flow::default();
    if fault == Fault::CollectorPanic {
        tokio::task::yield_now().await;
        panic!("injected fault: the collector panicked (METRONOME_FAULT=collector-panic)");
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        recorder.close_interval(&mut window);
        let flow = recorder.flow();
        if progress {
            let at = start.elapsed();
            // The middle of the second just measured.
            let mid = at.saturating_sub(Duration::from_millis(500));
            let stage = (shape.stages().len() > 1)
                .then(|| shape.stage_at(mid).map(|(_, name)| name))
                .flatten();
            let line = progress_line(
                at,
                &window,
                &flow,
                &last_flow,
                shape.rate_at(mid),
                stage,
                recorder.conns().open_now(),
            );
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
        last_flow = flow;
    }
}
