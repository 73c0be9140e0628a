//! Wires the pipeline for one run and owns shutdown.
//!
//! ```text
//! Plan ─► transport slots (connected before the clock starts)
//!      ─► Schedule ─► dispatch::pace ─► backlog ─► dispatch::work × slots ─► Recorder
//!                                                         collector (1 s) ─► progress, totals
//! ```
//!
//! End of a run: when the schedule ends (or the first stop arrives) the backlog is closed, and the
//! run keeps measuring the requests still queued or in flight for up to the grace period, because
//! cutting them off at the deadline would drop exactly the slowest requests from the tail. What is
//! still unfinished then (or at a second stop) is counted as cancelled.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::dispatch::{self, PaceEnd};
use crate::error::Error;
use crate::plan::Plan;
use crate::record::{Flow, Recorder, StageBook, StageTally, Window};
use crate::report::{progress_line, Report};
use crate::schedule::Schedule;
use crate::transport::{http, Slot};

/// Stop requests from the outside world (signals, a TUI, a test).
#[derive(Clone, Debug, Default)]
pub struct Stop {
    /// Stop scheduling, then wait up to the grace period for what is in flight.
    pub graceful: CancellationToken,
    /// Stop waiting at once; everything unfinished is cancelled.
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
    pub concurrency: usize,
    /// Per-stage tallies of a multi-stage shape (see [`StageBook`]).
    pub stages: Option<Vec<StageTally>>,
}

/// Runs `plan` to completion (or until stopped) and returns the report.
pub async fn run(plan: &Plan, stop: Stop) -> Result<Report, Error> {
    let slots = http::slots(plan).await?;
    let measured = drive(plan, slots, stop).await;
    Ok(Report::new(plan, &measured))
}

async fn drive<S: Slot>(plan: &Plan, slots: Vec<S>, stop: Stop) -> Measured {
    let concurrency = slots.len();
    let (tx, rx) = async_channel::bounded(plan.limits.backlog.max(1));
    let cancel = CancellationToken::new();
    let timeout = plan.limits.timeout;
    let started = SystemTime::now();
    let start = Instant::now();
    let recorder = Arc::new(Recorder::new().with_stages(StageBook::for_shape(&plan.shape, start)));
    let collector_stop = CancellationToken::new();
    let collector = tokio::spawn(collect(
        recorder.clone(),
        start,
        plan.progress,
        plan.shape.clone(),
        collector_stop.clone(),
    ));

    let mut workers = tokio::task::JoinSet::new();
    let (pace_end, sched_end) = if plan.shape.is_closed_loop() {
        drop(tx);
        let end = (plan.shape.duration() > Duration::ZERO).then(|| start + plan.shape.duration());
        let count = match plan.shape {
            crate::schedule::Shape::MaxCount(n) => Some(n),
            _ => None,
        };
        let budget = Arc::new(dispatch::Saturation::new(end, count));
        for slot in slots {
            workers.spawn(dispatch::saturate(
                slot,
                budget.clone(),
                recorder.clone(),
                timeout,
                cancel.clone(),
            ));
        }
        let far = start + Duration::from_secs(366 * 86_400);
        tokio::select! {
            _ = budget.done.cancelled() => (PaceEnd::Completed, Instant::now()),
            _ = tokio::time::sleep_until(end.unwrap_or(far).into()) => {
                budget.done.cancel();
                (PaceEnd::Completed, end.unwrap_or_else(Instant::now))
            }
            _ = stop.graceful.cancelled() => {
                budget.done.cancel();
                (PaceEnd::Stopped, Instant::now())
            }
        }
    } else {
        for slot in slots {
            workers.spawn(dispatch::work(
                slot,
                rx.clone(),
                recorder.clone(),
                timeout,
                cancel.clone(),
            ));
        }
        let schedule = Schedule::new(plan.shape.clone(), start).with_mix(&plan.weights);
        let pacer = tokio::spawn(dispatch::pace(
            schedule,
            tx,
            recorder.clone(),
            stop.graceful.clone(),
            plan.pacer_quantum,
        ));
        pacer.await.unwrap_or((PaceEnd::Stopped, Instant::now()))
    };

    // Drain: workers finish the backlog and what is in flight, up to the grace period.
    let mut ending = match pace_end {
        PaceEnd::Completed => Ending::Completed,
        PaceEnd::Stopped => Ending::Interrupted,
    };
    let grace = tokio::time::sleep(plan.limits.grace);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            joined = workers.join_next() => if joined.is_none() { break },
            _ = &mut grace => { cancel.cancel(); break }
            _ = stop.abort.cancelled() => { cancel.cancel(); ending = Ending::Aborted; break }
        }
    }
    while workers.join_next().await.is_some() {}
    // Tickets still waiting in the backlog were scheduled but never sent.
    let mut left = 0;
    while rx.try_recv().is_ok() {
        left += 1;
    }
    recorder.cancelled(left);
    let elapsed = start.elapsed();

    collector_stop.cancel();
    let mut totals = collector.await.unwrap_or_default();
    let mut last = Window::default();
    recorder.rotate(&mut last);
    totals.add(&last);

    Measured {
        totals,
        flow: recorder.flow(),
        ending,
        started,
        schedule_span: sched_end.saturating_duration_since(start),
        elapsed,
        concurrency,
        stages: recorder.stage_tallies(),
    }
}

/// Once a second: swap the window out, fold it into the totals, print a progress line.
async fn collect(
    recorder: Arc<Recorder>,
    start: Instant,
    progress: bool,
    shape: crate::schedule::Shape,
    stop: CancellationToken,
) -> Window {
    let mut totals = Window::default();
    let mut window = Window::default();
    let mut tick = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_flow = Flow::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return totals,
            _ = tick.tick() => {}
        }
        recorder.rotate(&mut window);
        let flow = recorder.flow();
        if progress {
            let at = start.elapsed();
            // The middle of the second just measured.
            let mid = at.saturating_sub(Duration::from_millis(500));
            let stage = (shape.stages().len() > 1)
                .then(|| shape.stage_at(mid).map(|(_, name)| name))
                .flatten();
            let line = progress_line(at, &window, &flow, &last_flow, shape.rate_at(mid), stage);
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
        last_flow = flow;
        totals.add(&window);
        window.reset();
    }
}
