//! The report: a pure function of the final measurement, serialised as versioned JSON
//! (`docs/report-schema.md`, `docs/report-schema.json`) or rendered as text. It also carries the
//! generator-health verdict: whether the generator kept its own schedule.

pub mod hist;
mod json;
pub mod recovery;
mod retry;
mod text;

pub use hist::Histograms;
pub use json::JsonOut;
pub use retry::{BucketReport, GaveUp, LogicalReport, RetryReport, TimelineReport};
pub use text::{format_us, progress_line};

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::gate::compare::Comparison;
use crate::gate::confidence::Confidence;
use crate::gate::{GateVerdict, EXIT_BREACHED};
use crate::plan::{Plan, Protocol};
use crate::record::{Ending, ErrorSample, Group, Measured, StageTally};
use crate::schedule::Arrivals;

/// Bumped on any incompatible change to the JSON layout.
pub const SCHEMA_VERSION: u32 = 4;

/// Exit code of an untrustworthy measurement.
pub const EXIT_UNTRUSTWORTHY: u8 = 3;
/// Exit code of a run whose engine failed (a panic): the report is written but incomplete.
pub const EXIT_INTERNAL_ERROR: u8 = 4;

/// The achieved rate must reach this share of the target for a trustworthy run.
pub const MIN_RATE_SHARE: f64 = 0.99;

/// At most this share of sent requests may have a send lag above `--max-send-lag`.
pub const MAX_LATE_SHARE: f64 = 0.01;

/// No request may have a send lag above this many times `--max-send-lag` (500 ms by default): a
/// generator stall that hits fewer than 1 % of requests still fails the run.
pub const SEND_LAG_CEILING_FACTOR: u64 = 100;

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
    pub counts: CountsReport,
    pub status_codes: BTreeMap<String, u64>,
    /// gRPC status name (`OK`, `RESOURCE_EXHAUSTED`…) → calls, for every code seen; empty for
    /// HTTP targets. Apart from `status_codes`, which keeps the HTTP status of the answers.
    /// Calls cut by the client's own deadline (`--timeout`) are DEADLINE_EXCEEDED, as a gRPC
    /// client reports them, so the codes add up to the calls completed.
    pub grpc_status_codes: BTreeMap<String, u64>,
    /// gRPC figures (`null` for HTTP targets): the call, messages per call, time to first message.
    pub grpc: Option<GrpcReport>,
    pub latency_us: Stats,
    pub service_time_us: Stats,
    pub send_lag_us: Stats,
    /// Latency per outcome group, so "latency of successful requests" can be read directly.
    pub latency_by_outcome_us: ByOutcome,
    /// Connection set-ups made during the run (TCP + TLS + HTTP handshake), µs.
    pub connect_us: Stats,
    pub connections: ConnectionsReport,
    /// The first distinct error messages per class, most frequent first.
    pub errors: Vec<ErrorSample>,
    /// Failures whose message was beyond the sample, per class.
    pub errors_unsampled: BTreeMap<String, u64>,
    pub settings: Settings,
    /// What the client's retry policy did; `null` without one.
    pub retry: Option<RetryReport>,
    /// The run second by second.
    pub timeline: TimelineReport,
    /// Whether and when the target's success ratio recovered after a fault.
    pub recovery: recovery::Recovery,
    pub verdict: Verdict,
    // Schema 4, CI gates (docs/ci.md): kept together and apart from the rest.
    /// Every clock's whole-run histogram, lossless (base64 HdrHistogram V2), for `compare`.
    pub histograms: Histograms,
    /// A 95 % interval for every percentile of the three clocks, and whether it is resolved.
    pub confidence_us: Confidence,
    /// The thresholds' verdict (`null` without thresholds); set by the caller after the run.
    pub thresholds: Option<GateVerdict>,
    /// The comparison with `--baseline` (`null` without one); set by the caller after the run.
    pub baseline: Option<Comparison>,
    /// `--until-confident`: whether the figure was pinned down (`null` without it); set by the
    /// caller after the run.
    pub until_confident: Option<crate::gate::until::UntilReport>,
    /// Pauses and live rate changes (from the terminal UI): when, and what they did to the
    /// schedule.
    pub control: ControlReport,
}

/// What a gRPC run adds to the report.
#[derive(Clone, Debug, Serialize)]
pub struct GrpcReport {
    /// `package.Service/Method`, or `mixed` for a profile's mix of several calls.
    pub call: String,
    /// `proto` (the --proto files) or `reflection` (the server's reflection service).
    pub schema: &'static str,
    /// Some method of the mix streams its answer.
    pub server_streaming: bool,
    /// Some method of the mix takes a stream of requests (client streaming or bidirectional).
    pub client_streaming: bool,
    /// Request messages sent per call (`--messages`, 1 by default).
    pub request_messages: u32,
    /// Response messages received in all, by calls of every outcome (a stream that failed or was
    /// cut after some messages counts them).
    pub messages: u64,
    /// Messages of OK calls ÷ OK calls: what a whole answer holds (0 when none succeeded). The
    /// messages of failed calls are left out of both sides, so partial streams cannot skew it.
    pub messages_per_call: f64,
    /// First response message − send, for calls that got one (µs).
    pub time_to_first_message_us: Stats,
    /// Client streaming and bidi: per request message after the first, the time it waited for
    /// HTTP/2 flow control (µs); empty for other calls. Backpressure, apart from latency.
    pub flow_control_wait_us: Stats,
    /// The same waits summed per call (µs).
    pub flow_control_wait_per_call_us: Stats,
    /// Calls cut by `--timeout` while a request message still waited for flow control: the
    /// server had stopped reading the stream (backpressure, though counted as timeouts).
    pub flow_control_stuck: u64,
    /// The pause between response messages, after each but the last (`--read-delay`), ms; 0 for
    /// none. The pauses are inside the calls' latency and service time, by design: the client's
    /// own slow reading is part of the call.
    pub read_delay_ms: f64,
}

/// What steering did to the schedule (see `crate::control`).
#[derive(Clone, Debug, Serialize)]
pub struct ControlReport {
    /// Wall time the schedule spent paused (excluded from the rates).
    pub paused_s: f64,
    pub pauses: u64,
    /// The rate factor in force at the end (1 = as planned).
    pub rate_factor: f64,
    /// How far along the shape's own clock the schedule got.
    pub schedule_reached_s: f64,
    pub changes: Vec<ChangeReport>,
}

/// One pause, resume or rate change.
#[derive(Clone, Debug, Serialize)]
pub struct ChangeReport {
    /// Seconds since the schedule's start (wall time).
    pub at_s: f64,
    pub action: crate::control::Action,
    /// The rate factor in force after the change.
    pub rate_factor: f64,
    /// The schedule time (the shape's clock) reached at the change.
    pub schedule_s: f64,
}

impl ControlReport {
    fn of(c: &crate::control::Summary) -> ControlReport {
        ControlReport {
            paused_s: round3(c.paused.as_secs_f64()),
            pauses: c
                .changes
                .iter()
                .filter(|x| x.action == crate::control::Action::Pause)
                .count() as u64,
            rate_factor: c.factor,
            schedule_reached_s: round3(c.position.as_secs_f64()),
            changes: c
                .changes
                .iter()
                .map(|x| ChangeReport {
                    at_s: round3(x.at.as_secs_f64()),
                    action: x.action,
                    rate_factor: x.factor,
                    schedule_s: round3(x.sched.as_secs_f64()),
                })
                .collect(),
        }
    }
}

/// Latency (from intended start) per outcome group.
#[derive(Clone, Debug, Serialize)]
pub struct ByOutcome {
    pub ok: Stats,
    pub rejected: Stats,
    /// HTTP errors, connect, transport and local errors.
    pub error: Stats,
    pub timeout: Stats,
    /// Requests cut at the end of the run or unsent at a stop: censored at that moment.
    pub cancelled: Stats,
}

/// Connections the run opened and lost.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionsReport {
    /// Opened before the clock started (of `--connections`, those that succeeded).
    pub warm: u64,
    /// Opened in all, warm-up included.
    pub opened: u64,
    /// Most open at once.
    pub peak_open: u64,
    /// Still open at the end.
    pub open_at_end: u64,
    /// Closed or broken by the peer.
    pub closed_by_peer: u64,
    /// Opened to replace a connection the peer closed or broke.
    pub reconnects: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// The cap in force (`--max-connections`, or the default fitted to the fd limit).
    pub max: usize,
    /// HTTP/2: the concurrent streams the server allows per connection (its
    /// SETTINGS_MAX_CONCURRENT_STREAMS, the lowest seen); `null` when it set no limit, and for
    /// HTTP/1.1. Each connection carries min(`--max-streams`, this).
    pub peer_max_streams: Option<u64>,
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
    /// First attempts sent inside the schedule's window (or failed fast by the client's
    /// breaker) ÷ its length: the schedule's own requests, retries not included.
    pub achieved: f64,
    /// Every attempt sent inside the window (first attempts and retries) ÷ its length: the load
    /// the target was offered. Equal to `achieved` without retries.
    pub offered: f64,
    /// Requests sent after the schedule's window had ended (late, during the drain); not in
    /// `achieved`.
    pub sent_after_schedule: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CountsReport {
    pub scheduled: u64,
    pub sent: u64,
    pub completed: u64,
    pub dropped: u64,
    /// Still in flight or queued when the run stopped waiting; censored into the latency.
    pub cancelled: u64,
    /// Due but not sent because of a stop; their wait so far is censored into the latency.
    pub unsent_at_stop: u64,
    pub ok: u64,
    pub rejected: u64,
    pub http_error: u64,
    pub timeout: u64,
    pub connect_error: u64,
    pub transport_error: u64,
    /// The generator's own host ran out of a resource (file descriptors, ports, buffers).
    pub local_error: u64,
    /// Of `scheduled`, retries (0 without a retry policy).
    pub retries: u64,
    /// Attempts failed fast by the client's circuit breaker (scheduled, never sent).
    pub short_circuited: u64,
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
    pub fn of(h: &Histogram<u64>, clamped: u64) -> Stats {
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
    /// The connection cap in force (see `connections.max`); `None` when left to the default.
    pub max_connections: Option<usize>,
    pub max_streams: usize,
    pub max_in_flight: usize,
    /// Most workers the run used (requests that could be on the wire at once).
    pub concurrency: usize,
    pub backlog: usize,
    pub timeout_ms: f64,
    pub connect_timeout_ms: f64,
    pub grace_ms: f64,
    /// HTTP statuses counted as rejections (`--rejected`); empty for gRPC runs, whose answers
    /// are judged by their gRPC code (see `grpc_rejected`).
    pub rejected_statuses: Vec<u16>,
    /// gRPC runs: the codes counted as rejections (`--grpc-rejected`), by name; `None` for HTTP.
    pub grpc_rejected: Option<Vec<&'static str>>,
    pub max_send_lag_us: u64,
    /// No request may have a send lag above this.
    pub send_lag_ceiling_us: u64,
    pub pacer_quantum_us: u64,
}

/// Whether the generator kept its own schedule, and if not, why.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub trustworthy: bool,
    pub reasons: Vec<String>,
    /// `scheduled == completed + dropped + cancelled + unsent_at_stop + short_circuited`, and
    /// with a retry policy every logical request started has ended.
    pub accounting_ok: bool,
}

impl Report {
    pub fn new(plan: &Plan, m: &Measured) -> Report {
        let c = &m.totals.counts;
        let counts = CountsReport {
            scheduled: m.tickets.scheduled,
            sent: m.tickets.sent,
            completed: c.completed,
            dropped: m.tickets.dropped,
            cancelled: m.tickets.cancelled,
            unsent_at_stop: m.tickets.unsent_at_stop,
            ok: c.ok,
            rejected: c.rejected,
            http_error: c.http_error,
            timeout: c.timeout,
            connect_error: c.connect_error,
            transport_error: c.transport_error,
            local_error: c.local_error,
            retries: m.tickets.retries,
            short_circuited: m.tickets.short_circuited,
        };
        let clocks = &m.totals.clocks;
        let steered = m.control.steered();
        // Paused time is not schedule time: rates are judged over the time the schedule ran.
        let span = m
            .schedule_span
            .saturating_sub(m.control.paused)
            .as_secs_f64();
        let closed_loop = plan.shape.is_closed_loop();
        // What the schedule asked for over the span actually run (a stopped ramp is judged on
        // the part it ran; a steered one on the shape's clock it reached).
        let due = if closed_loop {
            None
        } else if matches!(m.ending, Ending::Completed) {
            Some(plan.shape.total())
        } else if steered {
            Some(plan.shape.due_before(m.control.position))
        } else {
            Some(plan.shape.due_before(m.schedule_span))
        };
        let target_rate = if closed_loop {
            None
        } else if (m.ending == Ending::Completed && !steered) || span <= 0.0 {
            plan.shape.mean_rate()
        } else {
            due.map(|d| d as f64 / span)
        };
        let per_span = |n: u64| if span > 0.0 { n as f64 / span } else { 0.0 };
        let achieved = per_span(m.tickets.first_on_time());
        let offered = per_span(m.tickets.sent_in_window());
        let retry = plan
            .retry
            .as_ref()
            .zip(m.retry.as_ref())
            .map(|(p, r)| RetryReport::new(p, r, m));
        let trigger_end = plan
            .recovery
            .as_ref()
            .and_then(|r| r.trigger_end(&plan.shape).ok().flatten());
        let recovery = recovery::assess(
            &m.timeline,
            span,
            &plan.recovery.clone().unwrap_or_default(),
            trigger_end,
        );
        let send_lag = Stats::of(&clocks.send_lag, clocks.clamped[2]);
        let limit = duration_us(plan.max_send_lag);
        let ceiling = limit.saturating_mul(SEND_LAG_CEILING_FACTOR);
        let sent_lag_count = clocks.send_lag.len();
        let late = sent_lag_count.saturating_sub(clocks.send_lag.count_between(0, limit));
        let by_group = |g: Group| Stats::of(&clocks.latency_by_group[g as usize], 0);
        let verdict = verdict(&VerdictInputs {
            counts: &counts,
            ending: m.ending,
            closed_loop,
            poisson: plan.shape.arrivals() == Arrivals::Poisson,
            target_rate,
            due,
            achieved,
            span,
            lag_p99: send_lag.p99,
            lag_max: send_lag.max,
            late,
            lag_count: sent_lag_count,
            limit,
            ceiling,
            quantum: plan.pacer_quantum,
            timer_fallback: m.health.timer_fallback,
            panics: &m.health.panics,
            pool_full: m.connections.peak_open >= m.max_connections as u64,
            max_connections: m.max_connections,
            explicit_cap: plan.limits.max_connections.is_some(),
            workers_full: m.concurrency >= plan.limits.max_in_flight,
            max_in_flight: plan.limits.max_in_flight,
            local_errors: first_message(&m.errors.samples(), "local_error"),
            logical: retry.as_ref().map(|r| {
                (
                    r.logical.started,
                    r.logical.ended,
                    r.logical.gave_up.queue_full,
                    r.queue,
                )
            }),
        });
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
            mode: if closed_loop {
                Mode::ClosedLoop
            } else {
                Mode::OpenLoop
            },
            start_time: rfc3339(m.started),
            duration_s: round3(m.schedule_span.as_secs_f64()),
            elapsed_s: round3(m.elapsed.as_secs_f64()),
            ending: m.ending,
            rate: Rate {
                target: target_rate.map(round3),
                achieved: round3(achieved),
                offered: round3(offered),
                sent_after_schedule: m.tickets.sent_late,
            },
            status_codes: c.statuses().map(|(k, v)| (k.to_string(), v)).collect(),
            grpc_status_codes: c
                .grpc_statuses()
                .map(|(k, v)| (k.name().to_string(), v))
                .collect(),
            grpc: plan.grpc.as_ref().map(|g| GrpcReport {
                call: match g.calls.as_slice() {
                    [one] => format!("{}/{}", one.call.service, one.call.method),
                    _ => "mixed".to_string(),
                },
                schema: match g.schema {
                    crate::plan::GrpcSchema::Files => "proto",
                    crate::plan::GrpcSchema::Reflection => "reflection",
                },
                server_streaming: g.calls.iter().any(|c| c.server_streaming),
                client_streaming: g.calls.iter().any(|c| c.client_streaming),
                request_messages: g.messages.unwrap_or(1),
                messages: c.messages,
                messages_per_call: if c.ok > 0 {
                    round3(c.ok_messages as f64 / c.ok as f64)
                } else {
                    0.0
                },
                time_to_first_message_us: Stats::of(&clocks.first_message, 0),
                flow_control_wait_us: Stats::of(&clocks.flow_wait, 0),
                flow_control_wait_per_call_us: Stats::of(&clocks.flow_wait_call, 0),
                flow_control_stuck: clocks.flow_stuck,
                read_delay_ms: g
                    .read_delay
                    .map_or(0.0, |d| round3(d.as_secs_f64() * 1000.0)),
            }),
            latency_us: Stats::of(&clocks.latency, clocks.clamped[0]),
            service_time_us: Stats::of(&clocks.service_time, clocks.clamped[1]),
            send_lag_us: send_lag,
            latency_by_outcome_us: ByOutcome {
                ok: by_group(Group::Ok),
                rejected: by_group(Group::Rejected),
                error: by_group(Group::Error),
                timeout: by_group(Group::Timeout),
                cancelled: by_group(Group::Cancelled),
            },
            connect_us: Stats::of(&clocks.connect, 0),
            connections: ConnectionsReport {
                warm: m.warm as u64,
                opened: m.connections.opened,
                peak_open: m.connections.peak_open,
                open_at_end: m.connections.open,
                closed_by_peer: m.connections.closed_by_peer,
                reconnects: m.connections.reconnects,
                failed: m.connections.failed,
                max: m.max_connections,
                peer_max_streams: m.connections.peer_max_streams,
            },
            errors: m.errors.samples(),
            errors_unsampled: m
                .errors
                .other()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            counts,
            settings: Settings {
                connections: plan.limits.connections,
                max_connections: plan.limits.max_connections,
                max_streams: plan.limits.max_streams,
                max_in_flight: plan.limits.max_in_flight,
                concurrency: m.concurrency,
                backlog: plan.limits.backlog,
                timeout_ms: plan.limits.timeout.as_secs_f64() * 1000.0,
                connect_timeout_ms: plan.limits.connect_timeout.as_secs_f64() * 1000.0,
                grace_ms: plan.limits.grace.as_secs_f64() * 1000.0,
                rejected_statuses: if plan.grpc.is_some() {
                    Vec::new()
                } else {
                    plan.rejected.clone()
                },
                grpc_rejected: plan
                    .grpc
                    .as_ref()
                    .map(|g| g.rejected.iter().map(|c| c.name()).collect()),
                max_send_lag_us: limit,
                send_lag_ceiling_us: ceiling,
                pacer_quantum_us: duration_us(plan.pacer_quantum),
            },
            retry,
            timeline: TimelineReport::new(&m.timeline),
            recovery,
            verdict,
            histograms: Histograms {
                latency: clocks.latency.clone(),
                service_time: clocks.service_time.clone(),
                send_lag: clocks.send_lag.clone(),
                latency_ok: clocks.latency_by_group[Group::Ok as usize].clone(),
            },
            confidence_us: Confidence::of(&clocks.latency, &clocks.service_time, &clocks.send_lag),
            thresholds: None,
            baseline: None,
            until_confident: None,
            control: ControlReport::of(&m.control),
        }
    }

    /// The process exit code this report calls for, the first that applies: 4 an internal error
    /// (a panic in the engine), 3 untrustworthy (a run that could not keep its own schedule
    /// never passes, nor fails, a gate silently: its figures are not the target's; nor does a
    /// comparison with an untrustworthy baseline, as `compare` exits 3 for it), 1 a breached
    /// threshold or a clear regression against the baseline, else 0.
    pub fn exit_code(&self) -> u8 {
        let breached = self.thresholds.as_ref().is_some_and(|t| !t.passed)
            || self.baseline.as_ref().is_some_and(|b| b.regressed);
        let baseline_untrustworthy = self.baseline.as_ref().is_some_and(|b| !b.trustworthy);
        if self.ending == Ending::InternalError {
            EXIT_INTERNAL_ERROR
        } else if !self.verdict.trustworthy || baseline_untrustworthy {
            EXIT_UNTRUSTWORTHY
        } else if breached {
            EXIT_BREACHED
        } else {
            0
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The human-readable summary.
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

/// Everything the verdict looks at, so it can be tested as a table.
pub struct VerdictInputs<'a> {
    pub counts: &'a CountsReport,
    pub ending: Ending,
    pub closed_loop: bool,
    pub poisson: bool,
    pub target_rate: Option<f64>,
    /// Requests the schedule had due by its end (or the stop).
    pub due: Option<u64>,
    pub achieved: f64,
    pub span: f64,
    pub lag_p99: u64,
    pub lag_max: u64,
    /// Sent requests whose send lag was above `limit`.
    pub late: u64,
    /// Sent requests with a send lag recorded.
    pub lag_count: u64,
    pub limit: u64,
    pub ceiling: u64,
    pub quantum: Duration,
    pub timer_fallback: bool,
    pub panics: &'a [String],
    /// Every connection allowed was open at some point.
    pub pool_full: bool,
    pub max_connections: usize,
    /// The connection cap was given with `--max-connections` (else it is the default).
    pub explicit_cap: bool,
    /// Every in-flight slot was used at some point.
    pub workers_full: bool,
    pub max_in_flight: usize,
    /// The most frequent local error, if any.
    pub local_errors: Option<String>,
    /// With a retry policy: logical requests started and ended, retries that found the
    /// pending-retry queue full, and its bound.
    pub logical: Option<(u64, u64, u64, usize)>,
}

/// Whether the generator kept its own schedule, and if not, why and what to change.
pub fn verdict(v: &VerdictInputs) -> Verdict {
    let c = v.counts;
    let mut reasons = Vec::new();
    for task in v.panics {
        reasons.push(format!(
            "internal error: the {task} panicked (a bug in metronome; please report it with the message above); the figures are incomplete"
        ));
    }
    let attempts_ok =
        c.scheduled == c.completed + c.dropped + c.cancelled + c.unsent_at_stop + c.short_circuited;
    let logical_ok = v
        .logical
        .is_none_or(|(started, ended, ..)| started == ended);
    let accounting_ok = attempts_ok && logical_ok;
    if !attempts_ok && v.panics.is_empty() {
        reasons.push(format!(
            "accounting mismatch: scheduled {} != completed {} + dropped {} + cancelled {} + unsent {} + short-circuited {} (a bug in metronome; please report it)",
            c.scheduled, c.completed, c.dropped, c.cancelled, c.unsent_at_stop, c.short_circuited
        ));
    }
    if let Some((started, ended, queue_full, queue)) = v.logical {
        if started != ended && v.panics.is_empty() {
            reasons.push(format!(
                "accounting mismatch: {started} logical requests started but {ended} ended (a bug in metronome; please report it)"
            ));
        }
        if queue_full > 0 {
            reasons.push(format!(
                "{queue_full} retries were not made because the generator's pending-retry queue was full (queue={queue}): the client was not modelled faithfully; raise queue= in the retry policy"
            ));
        }
    }
    if let Some(message) = &v.local_errors {
        reasons.push(format!(
            "{} requests failed on the generator's own host, not the target: {message}",
            c.local_error
        ));
    }
    if c.dropped > 0 {
        reasons.push(format!(
            "the generator dropped {} of {} scheduled requests because its backlog was full ({})",
            c.dropped,
            c.scheduled,
            capacity_hint(v)
        ));
    }
    if v.ending == Ending::Completed && c.cancelled > 0 {
        reasons.push(format!(
            "{} requests were still unanswered when the grace period ended and were cut (censored into the latency at the cut): raise --grace or --timeout to see them finish",
            c.cancelled
        ));
    }
    if !v.closed_loop {
        rate_reasons(v, &mut reasons);
        lag_reasons(v, &mut reasons);
        if v.timer_fallback && v.quantum < Duration::from_millis(1) {
            reasons.push("the precise timer (timerfd) was unavailable, so requests were released on tokio's 1 ms timer: send lag of up to 1 ms is the timer's, not the target's (run on Linux, or pass --pacer-quantum 1ms to accept it)".to_string());
        }
    }
    Verdict {
        trustworthy: reasons.is_empty(),
        reasons,
        accounting_ok,
    }
}

/// What to change when requests waited for capacity inside the generator.
fn capacity_hint(v: &VerdictInputs) -> String {
    if v.pool_full && v.explicit_cap {
        format!(
            "every one of the {} connections allowed was busy: raise --max-connections, or leave it unset so connections grow with the load",
            v.max_connections
        )
    } else if v.pool_full && v.max_connections < v.max_in_flight {
        format!(
            "every one of the {} connections that fit this process's file-descriptor limit was busy: raise the limit (ulimit -n) to let connections grow with the load",
            v.max_connections
        )
    } else if v.pool_full || v.workers_full {
        format!(
            "all {} requests allowed in flight were busy: the target (or this host) could not keep up with the rate; raise --max-in-flight if the target can take more at once",
            v.max_in_flight.min(v.max_connections)
        )
    } else {
        "the generator's host was too busy: fewer connections per core, a quieter host, or --pacer-quantum".to_string()
    }
}

fn rate_reasons(v: &VerdictInputs, reasons: &mut Vec<String>) {
    let c = v.counts;
    if let Some(due) = v.due.filter(|&d| d > 0 && c.sent == 0) {
        reasons.push(format!(
            "nothing was sent although {due} requests were due: the generator never kept its schedule"
        ));
        return;
    }
    let Some(target) = v.target_rate.filter(|&t| t > 0.0) else {
        return;
    };
    // Poisson counts vary by about √N around the mean: allow four standard deviations so a
    // fair draw is not called a generator failure.
    let noise = if v.poisson && v.span > 0.0 {
        4.0 * (target * v.span).sqrt() / v.span
    } else {
        0.0
    };
    if v.achieved < target * MIN_RATE_SHARE - noise {
        reasons.push(format!(
            "achieved rate {:.1}/s (sent inside the schedule's window) is below {:.0}% of the target {target:.1}/s ({})",
            v.achieved,
            MIN_RATE_SHARE * 100.0,
            capacity_hint(v)
        ));
    }
}

fn lag_reasons(v: &VerdictInputs, reasons: &mut Vec<String>) {
    if v.lag_count == 0 {
        return;
    }
    let share = v.late as f64 / v.lag_count as f64;
    if share > MAX_LATE_SHARE || v.lag_p99 > v.limit {
        reasons.push(format!(
            "{:.1}% of requests were sent more than {} late (--max-send-lag; at most {:.0}% may be), send-lag p99 {}: requests waited inside the generator ({})",
            share * 100.0,
            format_us(v.limit),
            MAX_LATE_SHARE * 100.0,
            format_us(v.lag_p99),
            capacity_hint(v)
        ));
    } else if v.lag_max > v.ceiling {
        reasons.push(format!(
            "a request was sent {} late, above the ceiling of {} ({}× --max-send-lag): the generator stalled ({})",
            format_us(v.lag_max),
            format_us(v.ceiling),
            SEND_LAG_CEILING_FACTOR,
            capacity_hint(v)
        ));
    }
}

fn first_message(samples: &[ErrorSample], class: &str) -> Option<String> {
    samples
        .iter()
        .find(|s| s.class == class)
        .map(|s| s.message.clone())
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

#[cfg(test)]
mod verdict_tests {
    use super::*;

    fn counts(scheduled: u64) -> CountsReport {
        CountsReport {
            scheduled,
            sent: scheduled,
            completed: scheduled,
            dropped: 0,
            cancelled: 0,
            unsent_at_stop: 0,
            ok: scheduled,
            rejected: 0,
            http_error: 0,
            timeout: 0,
            connect_error: 0,
            transport_error: 0,
            local_error: 0,
            retries: 0,
            short_circuited: 0,
        }
    }

    /// A healthy 1 000/s run for 10 s; each case changes one thing.
    fn healthy<'a>(c: &'a CountsReport, panics: &'a [String]) -> VerdictInputs<'a> {
        VerdictInputs {
            counts: c,
            ending: Ending::Completed,
            closed_loop: false,
            poisson: false,
            target_rate: Some(1000.0),
            due: Some(10_000),
            achieved: 1000.0,
            span: 10.0,
            lag_p99: 200,
            lag_max: 900,
            late: 0,
            lag_count: 10_000,
            limit: 5_000,
            ceiling: 500_000,
            quantum: Duration::ZERO,
            timer_fallback: false,
            panics,
            pool_full: false,
            max_connections: 4000,
            explicit_cap: false,
            workers_full: false,
            max_in_flight: 4000,
            local_errors: None,
            logical: None,
        }
    }

    #[test]
    fn verdict_table() {
        let ok = counts(10_000);
        let mut dropped = counts(10_000);
        dropped.completed -= 10;
        dropped.ok -= 10;
        dropped.dropped = 10;
        let mut cut = counts(10_000);
        cut.completed -= 3;
        cut.ok -= 3;
        cut.cancelled = 3;
        let mut local = counts(10_000);
        local.ok -= 5;
        local.local_error = 5;
        let mut none_sent = counts(10);
        none_sent.sent = 0;
        none_sent.completed = 0;
        none_sent.ok = 0;
        none_sent.unsent_at_stop = 10;
        let mut broken = counts(10_000);
        broken.completed -= 1;
        broken.ok -= 1;
        let panics = vec!["pacer".to_string()];
        type Case<'a> = (&'a str, VerdictInputs<'a>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            ("healthy", healthy(&ok, &[]), None),
            ("drops", healthy(&dropped, &[]), Some("dropped 10")),
            (
                "1.5% late sends with a fine p99",
                VerdictInputs {
                    late: 150,
                    ..healthy(&ok, &[])
                },
                Some("1.5% of requests were sent more than"),
            ),
            (
                "0.5% late sends but one past the ceiling",
                VerdictInputs {
                    late: 50,
                    lag_max: 600_000,
                    ..healthy(&ok, &[])
                },
                Some("above the ceiling"),
            ),
            (
                "late sends at a full connection pool name the cap",
                VerdictInputs {
                    late: 500,
                    lag_p99: 40_000,
                    pool_full: true,
                    max_connections: 50,
                    explicit_cap: true,
                    ..healthy(&ok, &[])
                },
                Some("raise --max-connections"),
            ),
            (
                "timer fallback",
                VerdictInputs {
                    timer_fallback: true,
                    ..healthy(&ok, &[])
                },
                Some("precise timer"),
            ),
            (
                "timer fallback accepted with a 1 ms quantum",
                VerdictInputs {
                    timer_fallback: true,
                    quantum: Duration::from_millis(1),
                    ..healthy(&ok, &[])
                },
                None,
            ),
            (
                "cut on a completed schedule",
                healthy(&cut, &[]),
                Some("were cut"),
            ),
            (
                "cut after a stop is the stop's doing",
                VerdictInputs {
                    ending: Ending::Interrupted,
                    ..healthy(&cut, &[])
                },
                None,
            ),
            (
                "local errors",
                VerdictInputs {
                    local_errors: Some("too many open files (EMFILE)".into()),
                    ..healthy(&local, &[])
                },
                Some("generator's own host"),
            ),
            (
                "due but nothing sent",
                VerdictInputs {
                    ending: Ending::Interrupted,
                    due: Some(10),
                    target_rate: Some(3.3),
                    achieved: 0.0,
                    lag_count: 0,
                    ..healthy(&none_sent, &[])
                },
                Some("nothing was sent"),
            ),
            (
                "slow achieved rate",
                VerdictInputs {
                    achieved: 900.0,
                    ..healthy(&ok, &[])
                },
                Some("achieved rate"),
            ),
            (
                "poisson noise is allowed",
                VerdictInputs {
                    poisson: true,
                    achieved: 970.0,
                    ..healthy(&ok, &[])
                },
                None,
            ),
            (
                "accounting",
                healthy(&broken, &[]),
                Some("accounting mismatch"),
            ),
            (
                "a panic",
                VerdictInputs {
                    ending: Ending::InternalError,
                    ..healthy(&broken, &panics)
                },
                Some("the pacer panicked"),
            ),
            (
                "closed loop has no schedule to keep",
                VerdictInputs {
                    closed_loop: true,
                    late: 5000,
                    lag_p99: 90_000,
                    ..healthy(&ok, &[])
                },
                None,
            ),
        ];
        for (name, inputs, want) in cases {
            let v = verdict(&inputs);
            match want {
                None => assert!(v.trustworthy, "{name}: {:?}", v.reasons),
                Some(text) => {
                    assert!(!v.trustworthy, "{name}");
                    assert!(
                        v.reasons.iter().any(|r| r.contains(text)),
                        "{name}: {:?}",
                        v.reasons
                    );
                }
            }
        }
    }
}
