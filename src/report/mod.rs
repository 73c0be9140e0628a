//! The report: a pure function of the final measurement, serialised as versioned JSON
//! (`docs/report-schema.md`, `docs/report-schema.json`) or rendered as text. It also carries the
//! generator-health verdict: whether the generator kept its own schedule.

mod text;

pub use text::{format_us, progress_line};

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::error::Error;
use crate::plan::{Plan, Protocol};
use crate::run::{Ending, Measured};

/// Bumped on any incompatible change to the JSON layout.
pub const SCHEMA_VERSION: u32 = 1;

/// The achieved rate must reach this share of the target for a trustworthy run.
pub const MIN_RATE_SHARE: f64 = 0.99;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub target: String,
    pub protocol: Protocol,
    pub method: String,
    pub profile: String,
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
        let target_rate = plan.shape.mean_rate();
        let achieved = if span > 0.0 {
            counts.sent as f64 / span
        } else {
            0.0
        };
        let send_lag = Stats::of(&clocks.send_lag, clocks.clamped[2]);
        let verdict = verdict(plan, &counts, target_rate, achieved, &send_lag);
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: "metronome",
                version: env!("CARGO_PKG_VERSION"),
            },
            target: plan.target.url.clone(),
            protocol: plan.protocol,
            method: plan.request.method.to_string(),
            profile: plan.shape.describe(),
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
    pub fn write_json(&self, path: &Path) -> Result<(), Error> {
        let mut json = self.to_json();
        json.push('\n');
        if path == Path::new("-") {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            return out
                .write_all(json.as_bytes())
                .map_err(|source| Error::Report {
                    path: path.to_path_buf(),
                    source,
                });
        }
        std::fs::write(path, json).map_err(|source| Error::Report {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn to_text(&self) -> String {
        text::render(self)
    }
}

fn verdict(plan: &Plan, c: &Counts, target: Option<f64>, achieved: f64, lag: &Stats) -> Verdict {
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
    if let Some(target) = target.filter(|&t| c.scheduled > 0 && achieved < t * MIN_RATE_SHARE) {
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
