//! `metronome demo`: a real load test against the built-in target, with nothing to set up.
//!
//! The target has a capacity of about 800 requests/s (5 workers × 5–6 ms: a 5 ms service time
//! on tokio's 1 ms timer) and a queue of 40; the demo offers 1000/s. What that shows: requests
//! queue (latency climbs to ~50 ms although each one takes 5–6 ms of work), the queue fills, and
//! about a fifth of the requests are shed with 503, counted as rejections, while the generator
//! itself stays on schedule (send lag in microseconds).

use std::time::Duration;

use crate::error::Error;
use crate::plan::{Limits, Plan, Protocol, RequestSpec, Target, TlsOptions};
use crate::schedule::Shape;
use crate::serve::{ServeConfig, ServiceTime};

/// Offered load in the demo.
pub const DEMO_RATE: f64 = 1000.0;

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
    let plan = Plan {
        target: Target::parse(url)?,
        protocol: Protocol::Http1,
        request: RequestSpec::parse("GET", &[], None)?,
        shape: Shape::constant(DEMO_RATE, duration)?,
        limits: Limits {
            connections: 64,
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
    };
    plan.validate()?;
    Ok(plan)
}

/// What the demo prints before it starts.
pub fn intro(url: &str) -> String {
    format!(
        "metronome demo: built-in target on {url} with capacity ~800 req/s (5 workers x 5-6 ms) and a queue of 40.\n\
         Offering {DEMO_RATE:.0} req/s open-loop: watch requests queue (latency rises far above the 5 ms of work)\n\
         and the overflow get shed as 503 (counted as 'rejected'), while send lag stays in microseconds.\n"
    )
}
