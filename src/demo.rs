//! `metronome demo`: a real load test against the built-in target, with nothing to set up.
//!
//! The target has a capacity of about 800 requests/s (5 workers × 5–6 ms: a 5 ms service time
//! on tokio's 1 ms timer) and a queue of 40. The demo's load tells a short story in five stages
//! (30 s unless `--duration` scales it): 400/s (`under`: clean latency), a ramp 400 → 1100/s
//! (`ramp`: requests queue once it passes ~800/s, latency climbs to ~50 ms although each takes
//! 5–6 ms of work, then the full queue sheds the excess as 503, counted as rejections), 500/s
//! (`calm`: the queue drains), a 1 s burst to 2500/s (`burst`: most of it shed) and 500/s again
//! (`recovery`), all while the generator itself stays on schedule (send lag in microseconds).
//! In a terminal it runs under the live UI, which tells the story stage by stage.

use std::time::Duration;

use crate::error::Error;
use crate::plan::{Limits, Plan, Protocol, RequestSpec, Target, TlsOptions};
use crate::profile;
use crate::serve::{ServeConfig, ServiceTime};

/// The demo's load at its natural length (30 s); `--duration` scales time, not rates.
pub const DEMO_SHAPE: &str = "400/s@5s,name=under; 400->1100/s@10s,name=ramp; \
     500/s@5s,name=calm; burst:500->2500/s@5s,hold=1s,at=1s,name=burst; 500/s@5s,name=recovery";

/// Length of [`DEMO_SHAPE`] unscaled.
pub const DEMO_LENGTH: Duration = Duration::from_secs(30);

/// What the terminal UI says while each stage of the demo runs.
pub const STORY: [(&str, &str); 5] = [
    ("under", "400/s, half the target's capacity (~800/s): latency is about the 5 ms of work"),
    ("ramp", "ramping to 1100/s: past ~800/s requests queue (latency climbs far above 5 ms), then the queue of 40 overflows and the excess is shed (503, or UNAVAILABLE over gRPC)"),
    ("calm", "back to 500/s: the queue drains and the tail comes back down"),
    ("burst", "a 1 s burst at 2500/s, three times capacity: most of it is shed while the generator stays on schedule"),
    ("recovery", "500/s again: rejections stop, latency recovers; q ends the demo early"),
];

/// The terminal UI's view of the demo: the plan, and the story told stage by stage.
pub fn ui_info(plan: &Plan, url: &str) -> crate::tui::Info {
    let mut info = crate::tui::Info::for_plan(plan);
    info.target = format!("built-in target {url}");
    info.notes = STORY
        .iter()
        .map(|(stage, text)| (stage.to_string(), text.to_string()))
        .collect();
    info
}

/// The built-in target as the demo configures it: capacity ≈ 5 / 6 ms ≈ 800/s, queue 40.
pub fn target_config() -> ServeConfig {
    ServeConfig {
        addr: ([127, 0, 0, 1], 0).into(),
        service_time: ServiceTime::Fixed(Duration::from_millis(5)),
        workers: 5,
        queue: 40,
        ..ServeConfig::default()
    }
}

/// The unary call the gRPC demo makes (schema by the target's reflection: no files needed).
pub const GRPC_CALL: &str = "metronome.demo.v1.Demo/Ping";

/// The run plan against the started target at `url`: HTTP/1.1 GETs, or with `grpc` (a
/// `grpc://` url) unary calls of [`GRPC_CALL`] over HTTP/2, through the same capacity and queue.
pub fn plan(url: &str, duration: Duration, grpc: bool) -> Result<Plan, Error> {
    if duration.is_zero() {
        return Err(Error::invalid(
            "--duration",
            "0s",
            "the demo must last longer than zero (e.g. -d 8s)",
        ));
    }
    let time_scale = DEMO_LENGTH.as_secs_f64() / duration.as_secs_f64();
    let shape = profile::parse_shorthand(DEMO_SHAPE)?
        .with_label(Some("demo".to_string()))
        .with_time_scale(time_scale)
        .map_err(|e| {
            Error::invalid(
                "--duration",
                humantime::format_duration(duration).to_string(),
                e.reason,
            )
        })?;
    let mut plan = Plan {
        target: Target::parse(url)?,
        protocol: Protocol::Http1,
        requests: vec![RequestSpec::parse("GET", &[], None)?],
        weights: vec![1],
        shape,
        profile_file: None,
        limits: Limits {
            connections: 64,
            max_connections: None,
            max_streams: 1,
            max_in_flight: 64,
            backlog: 10_000,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            grace: Duration::from_secs(5),
        },
        tls: TlsOptions::default(),
        grpc: None,
        rejected: vec![429, 503],
        max_send_lag: Duration::from_millis(5),
        progress: true,
        pacer_quantum: Duration::ZERO,
        retry: None,
        recovery: None,
    };
    if grpc {
        // The call is built as `run --call` builds it; the demo keeps its own load and limits.
        use clap::Parser;
        let argv = [
            "metronome",
            "run",
            url,
            "--call",
            GRPC_CALL,
            "-r",
            "1",
            "-n",
            "1",
        ];
        let call = crate::cli::Cli::try_parse_from(argv)
            .map_err(|e| Error::invalid("demo --grpc", url, e.to_string()))?;
        let crate::cli::Command::Run(args) = call.command else {
            return Err(Error::invalid("demo --grpc", url, "not a run"));
        };
        let call = args.plan()?;
        plan.target = call.target;
        plan.protocol = call.protocol;
        plan.requests = call.requests;
        plan.grpc = call.grpc;
        // Two HTTP/2 connections carry the 64 calls in flight.
        plan.limits.connections = 2;
        plan.limits.max_streams = 100;
    }
    plan.validate()?;
    Ok(plan)
}

/// What the demo prints before it starts.
pub fn intro(url: &str, grpc: bool) -> String {
    let (what, shed) = if grpc {
        (
            format!("unary gRPC calls ({GRPC_CALL}, schema by reflection)"),
            "UNAVAILABLE",
        )
    } else {
        ("GET requests".to_string(), "503")
    };
    format!(
        "metronome demo: built-in target on {url} with capacity ~800 req/s (5 workers x 5-6 ms) and a queue of 40.\n\
         Offering {what} at 400/s, a ramp to 1100/s, 500/s, a 1 s burst at 2500/s and 500/s again,\n\
         open-loop: watch requests queue once the ramp passes capacity (latency rises far above the 5 ms of work),\n\
         the overflow get shed as {shed} (counted as 'rejected') and the recovery, while send lag stays in\n\
         microseconds. The report breaks the results down by stage.\n"
    )
}
