//! The report: a pure function of the final measurement, serialised as versioned JSON
//! (`docs/report-schema.md`, `docs/report-schema.json`) or rendered as text. It also carries the
//! generator-health verdict: whether the generator kept its own schedule.

mod json;
mod text;

pub use json::JsonOut;
pub use text::{format_us, progress_line};

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::plan::{Plan, Protocol};
use crate::record::StageTally;
use crate::run::{Ending, Measured};
use crate::schedule::Arrivals;

/// Bumped on any incompatible change to the JSON layout.
pub const SCHEMA_VERSION: u32 = 2;

/// The achieved rate must reach this share of the target for a trustworthy run.
pub const MIN_RATE_SHARE: f64 = 0.99;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub target: String,
    pub protocol: Protocol,
    /// The method of every request, or `mixed` for a mix with several methods.
    pub method: String,
    /// The load shape and where it came from: name, stages (with per-stage results for
    /// multi-stage shapes), arrivals, seed, scales and the request mix.
    pub profile: ProfileReport,
    /// `open_loop` (latency from each request's intended start) or `closed_loop` (`--rate max`:
    /// latency equals service time and is subject to coordinated omission).
    pub mode: Mode,
    /// RFC 3339, UTC.
    pub start_time: String,
    /// Seconds from the schedule's start to its end (or the stop).
    pub duration_s: f64,
    /// Seconds until the last request was accounted for (includes the drain).
    pub elapsed_s: f64,
    pub ending: Ending,
    pub rate: Rate,
    pub counts: Counts,
    pub status_codes: BTreeMap<String, u64>,
    pub latency_us: Stats,
    pub service_time_us: Stats,
    pub send_lag_us: Stats,
    pub settings: Settings,
    pub verdict: Verdict,
}

/// The load shape as run.
#[derive(Clone, Debug, Serialize)]
pub struct ProfileReport {
    /// The profile's name (file `name`, else its file stem); `None` for `--rate`/`--shape`.
    pub name: Option<String>,
    /// The profile file, if any.
    pub file: Option<String>,
    /// One-line description of the shape, e.g. `constant 5000/s for 20s`.
    pub shape: String,
    /// `uniform` or `poisson`.
    pub arrivals: &'static str,
    /// Seed of Poisson arrivals and the request pick: run again with `--seed` to repeat them.
    pub seed: u64,
    pub time_scale: f64,
    pub rate_scale: f64,
    /// Highest target rate of the shape (per second); `None` in closed loop.
    pub peak_rate: Option<f64>,
    /// The stage running when the schedule ended (or was stopped); `None` for one-stage shapes.
    pub stage_at_end: Option<String>,
    /// Every stage; `results` only when the shape has 2 to 64 stages.
    pub stages: Vec<StageReport>,
    /// The request mix (one entry without a profile's `[[request]]`s).
    pub requests: Vec<RequestReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    pub name: String,
    /// `constant`, `ramp`, `step`, `burst`, `sine`, `table` or `replay`.
    pub shape: &'static str,
    pub description: String,
    /// Seconds from the start of the run (after time scaling).
    pub start_s: f64,
    pub end_s: f64,
    /// Requests the stage schedules (the mean for Poisson arrivals).
    pub target_requests: u64,
    pub peak_rate: f64,
    pub results: Option<StageResults>,
}

/// What a stage's requests saw; a request belongs to the stage its intended start fell in.
#[derive(Clone, Debug, Serialize)]
pub struct StageResults {
    pub completed: u64,
    pub ok: u64,
    pub rejected: u64,
    /// HTTP errors, timeouts, connect and transport errors.
    pub errors: u64,
    pub dropped: u64,
    /// Latency percentiles (µs) at 2 significant digits.
    pub latency_us: Brief,
    pub send_lag_p99_us: u64,
}

/// A short percentile summary (µs).
#[derive(Clone, Debug, Serialize)]
pub struct Brief {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RequestReport {
    pub name: Option<String>,
    pub method: String,
    /// Path and query sent (the target's when the request does not set one).
    pub path: String,
    pub weight: u32,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    OpenLoop,
    ClosedLoop,
}

#[derive(Clone, Debug, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rate {
    /// `None` in closed-loop mode, which has no target.
    pub target: Option<f64>,
    pub achieved: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub scheduled: u64,
    pub sent: u64,
    pub completed: u64,
    pub dropped: u64,
    pub cancelled: u64,
    pub ok: u64,
    pub rejected: u64,
    pub http_error: u64,
    pub timeout: u64,
    pub connect_error: u64,
    pub transport_error: u64,
}

/// Summary of one clock, in microseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Stats {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
    /// Values above the histogram's 1 h ceiling, recorded as 1 h.
    pub clamped: u64,
}

impl Stats {
    fn of(h: &Histogram<u64>, clamped: u64) -> Stats {
        if h.is_empty() {
            return Stats {
                count: 0,
                min: 0,
                mean: 0.0,
                p50: 0,
                p90: 0,
                p95: 0,
                p99: 0,
                p999: 0,
                p9999: 0,
                max: 0,
                clamped,
            };
        }
        Stats {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
            clamped,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub connections: usize,
    pub max_streams: usize,
    pub max_in_flight: usize,
    /// Requests that could actually be on the wire at once (slots).
    pub concurrency: usize,
    pub backlog: usize,
    pub timeout_ms: f64,
    pub connect_timeout_ms: f64,
    pub grace_ms: f64,
    pub rejected_statuses: Vec<u16>,
    pub max_send_lag_us: u64,
}

/// Whether the generator kept its own schedule, and if not, why.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub trustworthy: bool,
    pub reasons: Vec<String>,
    /// `scheduled == completed + dropped + cancelled`.
    pub accounting_ok: bool,
}

impl Report {
    pub fn new(plan: &Plan, m: &Measured) -> Report {
        let c = &m.totals.counts;
        let counts = Counts {
            scheduled: m.flow.scheduled,
            sent: m.flow.sent,
            completed: c.completed,
            dropped: m.flow.dropped,
            cancelled: m.flow.cancelled,
            ok: c.ok,
            rejected: c.rejected,
            http_error: c.http_error,
            timeout: c.timeout,
            connect_error: c.connect_error,
            transport_error: c.transport_error,
        };
        let clocks = &m.totals.clocks;
        let span = m.schedule_span.as_secs_f64();
        // The rate the schedule asked for over the span actually run (a stopped ramp is judged
        // on the part it ran).
        let target_rate = if plan.shape.is_closed_loop() {
            None
        } else if m.ending == Ending::Completed || span <= 0.0 {
            plan.shape.mean_rate()
        } else {
            Some(plan.shape.due_before(m.schedule_span) as f64 / span)
        };
        let achieved = if span > 0.0 {
            counts.sent as f64 / span
        } else {
            0.0
        };
        let send_lag = Stats::of(&clocks.send_lag, clocks.clamped[2]);
        let verdict = verdict(plan, &counts, target_rate, achieved, span, &send_lag);
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: "metronome",
                version: env!("CARGO_PKG_VERSION"),
            },
            target: plan.target.url.clone(),
            protocol: plan.protocol,
            method: method(plan),
            profile: profile_report(plan, m),
            mode: if plan.shape.is_closed_loop() {
                Mode::ClosedLoop
            } else {
                Mode::OpenLoop
            },
            start_time: rfc3339(m.started),
            duration_s: round3(span),
            elapsed_s: round3(m.elapsed.as_secs_f64()),
            ending: m.ending,
            rate: Rate {
                target: target_rate.map(round3),
                achieved: round3(achieved),
            },
            status_codes: c.statuses().map(|(k, v)| (k.to_string(), v)).collect(),
            latency_us: Stats::of(&clocks.latency, clocks.clamped[0]),
            service_time_us: Stats::of(&clocks.service_time, clocks.clamped[1]),
            send_lag_us: send_lag,
            counts,
            settings: Settings {
                connections: plan.limits.connections,
                max_streams: plan.limits.max_streams,
                max_in_flight: plan.limits.max_in_flight,
                concurrency: m.concurrency,
                backlog: plan.limits.backlog,
                timeout_ms: plan.limits.timeout.as_secs_f64() * 1000.0,
                connect_timeout_ms: plan.limits.connect_timeout.as_secs_f64() * 1000.0,
                grace_ms: plan.limits.grace.as_secs_f64() * 1000.0,
                rejected_statuses: plan.rejected.clone(),
                max_send_lag_us: duration_us(plan.max_send_lag),
            },
            verdict,
        }
    }

    /// The process exit code this report calls for: 0 trustworthy, 3 untrustworthy.
    pub fn exit_code(&self) -> u8 {
        if self.verdict.trustworthy {
            0
        } else {
            3
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes the JSON report to `path`, or to stdout for `-`.
    pub fn to_text(&self) -> String {
        text::render(self)
    }
}

fn method(plan: &Plan) -> String {
    let first = plan
        .requests
        .first()
        .map(|r| r.method.as_str())
        .unwrap_or("GET");
    if plan.requests.iter().all(|r| r.method.as_str() == first) {
        first.to_string()
    } else {
        "mixed".to_string()
    }
}

fn profile_report(plan: &Plan, m: &Measured) -> ProfileReport {
    let shape = &plan.shape;
    let spans = shape.stages();
    let tallies = m.stages.as_deref().unwrap_or(&[]);
    let stages = spans
        .iter()
        .enumerate()
        .map(|(i, s)| StageReport {
            name: s.name.clone(),
            shape: s.shape,
            description: s.description.clone(),
            start_s: round3(s.start),
            end_s: round3(s.end),
            target_requests: s.requests,
            peak_rate: round3(s.peak),
            results: tallies.get(i).map(stage_results),
        })
        .collect();
    let stage_at_end = (spans.len() > 1)
        .then(|| {
            let t = m.schedule_span.saturating_sub(Duration::from_micros(1));
            shape.stage_at(t).map(|(_, name)| name.to_string())
        })
        .flatten();
    ProfileReport {
        name: shape.curve().and_then(|c| c.label()).map(str::to_string),
        file: plan.profile_file.as_ref().map(|p| p.display().to_string()),
        shape: shape.describe(),
        arrivals: shape.arrivals().name(),
        seed: shape.seed(),
        time_scale: shape.time_scale(),
        rate_scale: shape.rate_scale(),
        peak_rate: shape.peak_rate().map(round3),
        stage_at_end,
        stages,
        requests: plan
            .requests
            .iter()
            .zip(&plan.weights)
            .map(|(r, &weight)| RequestReport {
                name: r.name.clone(),
                method: r.method.to_string(),
                path: r.path.as_ref().unwrap_or(&plan.target.origin).to_string(),
                weight,
            })
            .collect(),
    }
}

fn stage_results(t: &StageTally) -> StageResults {
    let h = &t.latency;
    let q = |p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    StageResults {
        completed: t.completed,
        ok: t.ok,
        rejected: t.rejected,
        errors: t.errors,
        dropped: t.dropped,
        latency_us: Brief {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: if h.is_empty() { 0 } else { h.max() },
        },
        send_lag_p99_us: if t.send_lag.is_empty() {
            0
        } else {
            t.send_lag.value_at_quantile(0.99)
        },
    }
}

fn verdict(
    plan: &Plan,
    c: &Counts,
    target: Option<f64>,
    achieved: f64,
    span: f64,
    lag: &Stats,
) -> Verdict {
    let mut reasons = Vec::new();
    let accounting_ok = c.scheduled == c.completed + c.dropped + c.cancelled;
    if !accounting_ok {
        reasons.push(format!(
            "accounting mismatch: scheduled {} != completed {} + dropped {} + cancelled {} (a bug in metronome; please report it)",
            c.scheduled, c.completed, c.dropped, c.cancelled
        ));
    }
    if c.dropped > 0 {
        reasons.push(format!(
            "the generator dropped {} of {} scheduled requests because its backlog was full (raise --max-in-flight, --connections or --backlog)",
            c.dropped, c.scheduled
        ));
    }
    // Poisson counts vary by about √N around the mean: allow four standard deviations so a
    // fair draw is not called a generator failure.
    let noise = if plan.shape.arrivals() == Arrivals::Poisson && span > 0.0 {
        4.0 * (target.unwrap_or(0.0) * span).sqrt() / span
    } else {
        0.0
    };
    if let Some(target) =
        target.filter(|&t| c.scheduled > 0 && achieved < t * MIN_RATE_SHARE - noise)
    {
        reasons.push(format!(
            "achieved rate {achieved:.1}/s is below {:.0}% of the target {target:.1}/s",
            MIN_RATE_SHARE * 100.0
        ));
    }
    let limit = duration_us(plan.max_send_lag);
    if lag.p99 > limit {
        reasons.push(format!(
            "send-lag p99 {} exceeds the limit {} (--max-send-lag): the generator could not keep its schedule (busy host, or too few connections for the target's latency)",
            format_us(lag.p99),
            format_us(limit)
        ));
    }
    Verdict {
        trustworthy: reasons.is_empty(),
        reasons,
        accounting_ok,
    }
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn rfc3339(t: std::time::SystemTime) -> String {
    let t: time::OffsetDateTime = t.into();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
