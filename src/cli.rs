//! Raw command-line flags (clap) and their translation into a validated [`Plan`]. The library
//! API is the plan, never these structs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::error::Error;
use crate::plan::{self, Limits, Plan, Protocol, RequestSpec, Target, TlsOptions};
use crate::schedule::Shape;
use crate::serve::{ServeConfig, ServiceTime, Stall};

#[derive(Debug, Parser)]
#[command(
    name = "metronome",
    version,
    about = "Open-loop, coordinated-omission-correct load generator",
    long_about = "Open-loop, coordinated-omission-correct load generator.\n\nEvery request's intended start is fixed by the schedule before the run; latency is measured from it, so a slow target cannot hide its own slowness.\n\nExit codes: 0 ok, 2 bad input or target unreachable before the start, 3 untrustworthy measurement (the generator fell behind or dropped requests)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send load to a URL at a fixed rate and report latency from each request's intended start.
    Run(RunArgs),
    /// Run the built-in target: an HTTP/1.1 + h2c server with capacity, queueing and shedding.
    Serve(ServeArgs),
    /// Start the built-in target on a free loopback port and run a short load test against it.
    Demo(DemoArgs),
}

/// Added to the request timeout for the default grace period, so that a request sent a little
/// late at the very end of the schedule still gets its whole timeout before the run stops waiting.
pub const DEFAULT_GRACE_MARGIN: Duration = Duration::from_secs(1);

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (use a duration such as 500ms, 10s, 2m or 1h30m)"))
}

/// `--rate`: a rate, or `max` for closed-loop saturation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateArg {
    PerSecond(f64),
    Max,
}

fn rate_or_max(s: &str) -> Result<RateArg, String> {
    if s.trim().eq_ignore_ascii_case("max") {
        Ok(RateArg::Max)
    } else {
        rate(s).map(RateArg::PerSecond)
    }
}

fn rate(s: &str) -> Result<f64, String> {
    plan::parse_rate(s).map_err(|e| match e {
        Error::Invalid { reason, .. } => reason,
        other => other.to_string(),
    })
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Target URL (http:// or https://).
    pub url: String,

    /// Requests per second: 500, 500/s, 1200/m or 100/h; or `max` for a closed-loop throughput
    /// test (each slot sends as soon as its previous response arrived; latency is then service
    /// time and hides queueing).
    #[arg(short, long, value_parser = rate_or_max)]
    pub rate: RateArg,

    /// How long to send for (humantime: 30s, 5m, 1h). Default 10s.
    #[arg(short, long, value_parser = duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,

    /// Send exactly this many requests (at --rate) instead of for a duration.
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,

    /// TCP connections. On HTTP/1.1 each carries one request at a time.
    #[arg(short, long, default_value_t = 50)]
    pub connections: usize,

    /// Speak HTTP/2: prior knowledge (h2c) on http://, ALPN h2 on https://.
    #[arg(long)]
    pub http2: bool,

    /// Concurrent streams per HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    pub max_streams: usize,

    /// Requests allowed on the wire at once (also capped by connections × streams).
    #[arg(long, default_value_t = 1000)]
    pub max_in_flight: usize,

    /// Due requests allowed to wait for an in-flight slot; beyond that they are dropped and counted.
    #[arg(long, default_value_t = 10_000)]
    pub backlog: usize,

    /// HTTP method.
    #[arg(short = 'X', long, default_value = "GET")]
    pub method: String,

    /// Request header 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,

    /// Request body: a literal string, or @FILE to read it from a file.
    #[arg(short, long)]
    pub body: Option<String>,

    /// Give up on a request after this long (it is counted as a timeout and enters the latency
    /// figures at that moment).
    #[arg(long, value_parser = duration, default_value = "10s")]
    pub timeout: Duration,

    /// Give up on a TCP/TLS/HTTP connection attempt after this long.
    #[arg(long, value_parser = duration, default_value = "3s")]
    pub connect_timeout: Duration,

    /// How long to keep measuring in-flight requests after the schedule ends or the first
    /// Ctrl-C. Default: the request timeout plus 1 s, so a request sent at the very end still
    /// gets its whole timeout.
    #[arg(long, value_parser = duration)]
    pub grace: Option<Duration>,

    /// Statuses counted as rejections (load shedding) rather than errors; empty for none.
    #[arg(long, default_value = "429,503")]
    pub rejected: String,

    /// Send-lag p99 above this marks the measurement untrustworthy (exit 3).
    #[arg(long, value_parser = duration, default_value = "5ms")]
    pub max_send_lag: Duration,

    /// Skip TLS certificate verification (the connection is still encrypted).
    #[arg(long)]
    pub insecure: bool,

    /// Also trust the CA certificates in this PEM file.
    #[arg(long)]
    pub cacert: Option<PathBuf>,

    /// Write the JSON report to FILE ('-' for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Batch the pacer's wake-ups at most this often (e.g. 1ms): less CPU per request at the
    /// price of up to this much send lag, which is measured and reported. Default 0: wake at
    /// every request's due instant.
    #[arg(long, value_parser = duration, default_value = "0s")]
    pub pacer_quantum: Duration,

    /// No per-second progress lines on stderr.
    #[arg(short, long)]
    pub quiet: bool,

    /// Runtime worker threads. Default: the CPUs this process may run on.
    #[arg(long)]
    pub threads: Option<usize>,
}

impl RunArgs {
    /// Validates everything; no network access.
    pub fn plan(&self) -> Result<Plan, Error> {
        let target = Target::parse(&self.url)?;
        let request = RequestSpec::parse(&self.method, &self.headers, self.body.as_deref())?;
        let shape = match (self.rate, self.requests, self.duration) {
            (RateArg::Max, n, d) => Shape::max(d, n)?,
            (RateArg::PerSecond(r), Some(n), _) => Shape::constant_count(r, n)?,
            (RateArg::PerSecond(r), None, d) => {
                Shape::constant(r, d.unwrap_or(Duration::from_secs(10)))?
            }
        };
        let plan = Plan {
            target,
            protocol: if self.http2 {
                Protocol::Http2
            } else {
                Protocol::Http1
            },
            request,
            shape,
            limits: Limits {
                connections: self.connections,
                max_streams: self.max_streams,
                max_in_flight: self.max_in_flight,
                backlog: self.backlog,
                timeout: self.timeout,
                connect_timeout: self.connect_timeout,
                grace: self.grace.unwrap_or(self.timeout + DEFAULT_GRACE_MARGIN),
            },
            tls: TlsOptions {
                insecure: self.insecure,
                ca_file: self.cacert.clone(),
            },
            rejected: plan::parse_statuses(&self.rejected)?,
            max_send_lag: self.max_send_lag,
            progress: !self.quiet,
            pacer_quantum: self.pacer_quantum,
        };
        plan.validate()?;
        Ok(plan)
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,

    /// Time to process each request: fixed (5ms) or uniform random (2ms..8ms).
    #[arg(long, default_value = "0ms")]
    pub service_time: ServiceTime,

    /// Requests processed at once (the capacity).
    #[arg(long, default_value_t = 1024)]
    pub workers: usize,

    /// Requests allowed to wait for a worker; when full, new ones are shed with 503.
    #[arg(long, default_value_t = 1024)]
    pub queue: usize,

    /// Token-bucket limit in requests per second; over it, 429 with Retry-After.
    #[arg(long, value_parser = rate)]
    pub rate_limit: Option<f64>,

    /// Token-bucket size (burst), with --rate-limit.
    #[arg(long, default_value_t = 1.0)]
    pub burst: f64,

    /// Stall all processing: AT+FOR from the server's start, e.g. 5s+2s (repeatable).
    #[arg(long = "stall")]
    pub stalls: Vec<Stall>,

    /// Share of served requests answered 500 (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,

    /// Stop by itself after this long (default: run until Ctrl-C).
    #[arg(long, value_parser = duration)]
    pub duration: Option<Duration>,

    /// Seed for random service times and errors.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl ServeArgs {
    pub fn config(&self) -> ServeConfig {
        ServeConfig {
            addr: self.addr,
            service_time: self.service_time,
            workers: self.workers,
            queue: self.queue,
            rate_limit: self.rate_limit,
            rate_burst: self.burst,
            stalls: self.stalls.clone(),
            error_rate: self.error_rate,
            seed: self.seed,
            ..ServeConfig::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Write the JSON report to FILE ('-' for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// How long the demo sends load.
    #[arg(short, long, value_parser = duration, default_value = "8s")]
    pub duration: Duration,
}
