//! `metronome demo`: a real load test against the built-in target, with nothing to set up.
//!
//! The target has a capacity of about 800 requests/s (5 workers × 5–6 ms: a 5 ms service time
//! on tokio's 1 ms timer) and a queue of 40. The demo's load is a three-stage profile that
//! crosses that capacity: 500/s (`under`), a ramp 500 → 1200/s (`ramp`), then 1200/s
//! (`overload`). What that shows, stage by stage: clean latency under capacity; requests queue
//! once the ramp passes ~800/s (latency climbs to ~50 ms although each one takes 5–6 ms of work);
//! then the queue is full and about a third of the requests are shed with 503, counted as
//! rejections, while the generator itself stays on schedule (send lag in microseconds).

use std::time::Duration;

use crate::error::Error;
use crate::plan::{Limits, Plan, Protocol, RequestSpec, Target, TlsOptions};
use crate::profile;
use crate::serve::{ServeConfig, ServiceTime};

/// The demo's load at its natural length (8 s); `--duration` scales time, not rates.
pub const DEMO_SHAPE: &str =
    "500/s@2s,name=under; 500->1200/s@4s,name=ramp; 1200/s@2s,name=overload";

/// Length of [`DEMO_SHAPE`] unscaled.
pub const DEMO_LENGTH: Duration = Duration::from_secs(8);

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

/// The run plan against the started target at `url`.
pub fn plan(url: &str, duration: Duration) -> Result<Plan, Error> {
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
    let plan = Plan {
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
        rejected: vec![429, 503],
        max_send_lag: Duration::from_millis(5),
        progress: true,
        pacer_quantum: Duration::ZERO,
        retry: None,
        recovery: None,
    };
    plan.validate()?;
    Ok(plan)
}

/// What the demo prints before it starts.
pub fn intro(url: &str) -> String {
    format!(
        "metronome demo: built-in target on {url} with capacity ~800 req/s (5 workers x 5-6 ms) and a queue of 40.\n\
         Offering 500 req/s, then a ramp to 1200 req/s, open-loop: watch requests queue once the ramp passes\n\
         capacity (latency rises far above the 5 ms of work) and the overflow get shed as 503 (counted as\n\
         'rejected'), while send lag stays in microseconds. The report breaks the results down by stage.\n"
    )
}
