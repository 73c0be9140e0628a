//! The UI's model: a bounded history of per-interval points built from published snapshots, and
//! what the screen is showing (help, panel, messages). Nothing here touches the engine.

use crate::grpc::Code;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::record::{Snapshot, Tickets};
use crate::schedule::Shape;

/// Points kept for the charts (at 2 snapshots a second: the last 4 minutes).
pub const HISTORY: usize = 480;

/// One interval, as rates per second and latencies in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Point {
    /// Seconds since the start (end of the interval).
    pub t: f64,
    pub target: f64,
    /// Every attempt sent (first attempts and retries).
    pub sent: f64,
    /// Of `sent`, retries (0 without a retry policy).
    pub retries: f64,
    /// Logical requests started per second: the schedule's own tickets, sent or not.
    pub logical: f64,
    pub ok: f64,
    pub rejected: f64,
    /// Answers saying "rate limited" (HTTP 429, gRPC RESOURCE_EXHAUSTED) and "overloaded"
    /// (HTTP 503, gRPC UNAVAILABLE), per second: the causes of rejection.
    pub limited: f64,
    pub unavailable: f64,
    /// HTTP errors, connect, transport and local errors (timeouts apart).
    pub errors: f64,
    pub timeouts: f64,
    /// Latency (from intended start) p50, p90, p99, p99.9; `None` with no completion.
    pub latency: Option<[f64; 4]>,
    /// Service time p99.
    pub service_p99: Option<f64>,
}

/// Logical requests started so far: tickets released that were not retries.
fn logical(t: &Tickets) -> u64 {
    t.scheduled.saturating_sub(t.retries)
}

fn ms_at(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

impl Point {
    /// First attempts sent per second: the schedule's own requests.
    pub fn first(&self) -> f64 {
        (self.sent - self.retries).max(0.0)
    }

    /// Attempts sent per logical request started (1 without retries, a breaker or drops).
    pub fn amplification(&self) -> Option<f64> {
        (self.logical > 0.0).then(|| self.sent / self.logical)
    }

    fn of(snap: &Snapshot, prev: &Tickets) -> Point {
        let secs = snap.interval_len.as_secs_f64().max(1e-3);
        let c = &snap.interval.counts;
        let per = |n: u64| n as f64 / secs;
        let clocks = &snap.interval.clocks;
        let lat = &clocks.latency;
        Point {
            t: snap.at.as_secs_f64(),
            target: if snap.target_rate.is_finite() {
                snap.target_rate
            } else {
                0.0
            },
            sent: per(snap.tickets.sent.saturating_sub(prev.sent)),
            retries: per(snap.tickets.sent_retries.saturating_sub(prev.sent_retries)),
            logical: per(logical(&snap.tickets).saturating_sub(logical(prev))),
            ok: per(c.ok),
            rejected: per(c.rejected),
            limited: per(c.status[429] + c.grpc[usize::from(Code::RESOURCE_EXHAUSTED.0)]),
            unavailable: per(c.status[503] + c.grpc[usize::from(Code::UNAVAILABLE.0)]),
            errors: per(c.errors().saturating_sub(c.timeout)),
            timeouts: per(c.timeout),
            latency: (!lat.is_empty()).then(|| [0.5, 0.9, 0.99, 0.999].map(|q| ms_at(lat, q))),
            service_p99: (!clocks.service_time.is_empty())
                .then(|| ms_at(&clocks.service_time, 0.99)),
        }
    }
}

/// What the UI knows about the run before it starts.
#[derive(Clone, Debug)]
pub struct Info {
    pub target: String,
    /// The profile's name or one-line description.
    pub profile: String,
    pub shape: Shape,
    /// Lines shown under the header while a stage runs (the demo tells its story this way).
    pub notes: Vec<(String, String)>,
    /// Whether the screen may use colour (`NO_COLOR` unset).
    pub color: bool,
    /// `--max-send-lag`: above it at p99 the header warns.
    pub max_send_lag: Duration,
    /// A gRPC run: causes of rejection are named by gRPC code.
    pub grpc: bool,
}

impl Info {
    /// What the UI shows for `plan`.
    pub fn for_plan(plan: &crate::Plan) -> Info {
        let shape = &plan.shape;
        let profile = shape
            .curve()
            .and_then(|c| c.label())
            .map_or_else(|| shape.describe(), str::to_string);
        Info {
            target: format!("{} {}", method(plan), plan.target.url),
            grpc: plan.grpc.is_some(),
            profile,
            shape: shape.clone(),
            notes: Vec::new(),
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            max_send_lag: plan.max_send_lag,
        }
    }
}

fn method(plan: &crate::Plan) -> String {
    if let Some(g) = &plan.grpc {
        return match g.calls.as_slice() {
            [one] => format!("gRPC {}/{}", one.call.service, one.call.method),
            _ => "gRPC mixed".into(),
        };
    }
    let mut methods: Vec<&str> = plan.requests.iter().map(|r| r.method.as_str()).collect();
    methods.dedup();
    match methods.as_slice() {
        [one] => one.to_string(),
        _ => "mixed".into(),
    }
}

impl Info {
    /// The planned length of the schedule (zero for a count-limited closed loop).
    pub fn planned(&self) -> Duration {
        self.shape.duration()
    }

    /// The note for `stage`, if any.
    pub fn note(&self, stage: Option<&str>) -> Option<&str> {
        let stage = stage?;
        self.notes
            .iter()
            .find(|(s, _)| s == stage)
            .map(|(_, n)| n.as_str())
    }
}

/// The bottom panels `tab` and the arrows cycle through when they do not all fit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Panel {
    #[default]
    Distribution,
    Breakdown,
    Profile,
}

impl Panel {
    const ALL: [Panel; 3] = [Panel::Distribution, Panel::Breakdown, Panel::Profile];

    pub fn next(self, by: isize) -> Panel {
        let i = Panel::ALL.iter().position(|&p| p == self).unwrap_or(0) as isize;
        let n = Panel::ALL.len() as isize;
        Panel::ALL[(i + by).rem_euclid(n) as usize]
    }
}

/// Everything the screen is drawn from.
#[derive(Debug)]
pub struct App {
    pub info: Info,
    pub points: VecDeque<Point>,
    pub latest: Option<Arc<Snapshot>>,
    prev: Tickets,
    pub help: bool,
    pub panel: Panel,
    /// A short message (a refused key, the stop) and until when to show it.
    pub message: Option<(String, Instant)>,
    /// `q` was pressed once (stopping gracefully); again cuts what is in flight.
    pub stopping: u8,
}

impl App {
    pub fn new(info: Info) -> App {
        App {
            info,
            points: VecDeque::with_capacity(HISTORY),
            latest: None,
            prev: Tickets::default(),
            help: false,
            panel: Panel::default(),
            message: None,
            stopping: 0,
        }
    }

    /// Takes in a published snapshot.
    pub fn push(&mut self, snap: Arc<Snapshot>) {
        if self.points.len() == HISTORY {
            self.points.pop_front();
        }
        self.points.push_back(Point::of(&snap, &self.prev));
        self.prev = snap.tickets;
        self.latest = Some(snap);
    }

    /// Shows `text` for a few seconds.
    pub fn say(&mut self, text: impl Into<String>) {
        self.message = Some((text.into(), Instant::now() + Duration::from_secs(4)));
    }

    /// The message, while it lasts.
    pub fn message(&self) -> Option<&str> {
        self.message
            .as_ref()
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(m, _)| m.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_cycle_both_ways() {
        assert_eq!(Panel::Distribution.next(1), Panel::Breakdown);
        assert_eq!(Panel::Distribution.next(-1), Panel::Profile);
        assert_eq!(Panel::Profile.next(1), Panel::Distribution);
    }
}
