//! Raw command-line flags (clap) and their translation into a validated [`Plan`]. The library
//! API is the plan, never these structs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::error::{clip, Error};
use crate::grpc::schema::CallName;
use crate::plan::{
    self, GrpcCall, GrpcPlan, GrpcSchema, Limits, Plan, Protocol, RequestSpec, Target, TlsOptions,
};
use crate::profile::{self, Profile};
use crate::schedule::{fresh_seed, Arrivals, Shape, ShapeError, ShapeParam};
use crate::serve::{ServeConfig, ServiceTime, Stall};

#[derive(Debug, Parser)]
#[command(
    name = "metronome",
    version,
    about = "Open-loop, coordinated-omission-correct load generator",
    long_about = "Open-loop, coordinated-omission-correct load generator.\n\nEvery request's intended start is fixed by the schedule before the run; latency is measured from it, so a slow target cannot hide its own slowness.\n\nExit codes: 0 ok, 1 a threshold failed or a clear regression against the baseline, 2 bad input or target unreachable before the start, 3 untrustworthy measurement (the generator fell behind, dropped requests or hit its own limits), 4 internal error (the report is still written), 130 stopped before the start."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send load to a URL at a fixed rate or along a load profile; report latency from each request's intended start.
    Run(Box<RunArgs>),
    /// Run the built-in target: an HTTP/1.1 + h2c server (and a gRPC demo service with reflection on the same port) with capacity, queueing and shedding.
    Serve(ServeArgs),
    /// Start the built-in target on a free loopback port and run a short load test against it.
    Demo(DemoArgs),
    /// Show or check a load profile; sends nothing.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Compare a report with a baseline: every percentile and share side by side, with the
    /// change and its confidence; exit 1 on a clear regression beyond --max-regression.
    Compare(CompareArgs),
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// BASE.json NEW.json; with --replicas, the baseline replicas (then `--` and the new ones).
    #[arg(required = true, value_name = "REPORT")]
    pub files: Vec<PathBuf>,

    /// The new runs' replicas, after `--`.
    #[arg(last = true, value_name = "NEW")]
    pub new: Vec<PathBuf>,

    /// Replicated runs: `compare --replicas B1.json B2.json … -- N1.json N2.json …`; the change's
    /// interval is then Welch's t interval over the replicas (see docs/ci.md).
    #[arg(long)]
    pub replicas: bool,

    /// Allowed regression: `10%` for every gated time (default 10%; gated by default: latency
    /// and service time p50/p90/p99, and errors.rate and rejected.rate at 1 percentage point),
    /// or `FIGURE=5%` to gate one more (or set its own), e.g. latency.p999=20% or
    /// errors.rate=2% (percentage points). Repeatable.
    #[arg(long, value_name = "SPEC")]
    pub max_regression: Vec<String>,

    /// Write the comparison as JSON to FILE ('-' for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write JUnit XML to FILE: one test case for the inputs' trust, one per gated figure.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

impl CompareArgs {
    /// (baseline files, new files), checked for shape.
    pub fn sides(&self) -> Result<(Vec<PathBuf>, Vec<PathBuf>), Error> {
        if self.replicas || !self.new.is_empty() {
            if self.new.is_empty() {
                return Err(Error::invalid(
                    "--replicas",
                    "(no new reports)",
                    "give the baseline replicas, then -- and the new ones: compare --replicas B1.json B2.json -- N1.json N2.json",
                ));
            }
            // Everything after `--` is a file name: an option there (`-- N1 N2 --junit x.xml`)
            // would be read as a report and fail as an unreadable file, far from the cause.
            if let Some(opt) = self
                .new
                .iter()
                .find(|p| p.to_string_lossy().starts_with('-'))
            {
                return Err(Error::invalid(
                    "NEW",
                    opt.display().to_string(),
                    "an option after --, where every argument is a new report: put options before --, e.g. compare --replicas --junit junit.xml B1.json B2.json -- N1.json N2.json",
                ));
            }
            return Ok((self.files.clone(), self.new.clone()));
        }
        match self.files.as_slice() {
            [base, new] => Ok((vec![base.clone()], vec![new.clone()])),
            _ => Err(Error::invalid(
                "REPORT",
                format!("{} files", self.files.len()),
                "give BASE.json NEW.json, or --replicas B1.json B2.json … -- N1.json N2.json …",
            )),
        }
    }

    pub fn limits(&self) -> Result<crate::gate::compare::Limits, Error> {
        crate::gate::compare::Limits::parse(&self.max_regression).map_err(|reason| {
            Error::invalid("--max-regression", self.max_regression.join(" "), reason)
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Print the rate curve as a plot, requests and duration per stage and overall, and the peak.
    Show(ShowArgs),
    /// Validate profile files: exit 0 if all are usable, else say what is wrong and where (exit 2).
    Check(CheckArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["file", "shape"])))]
pub struct ShowArgs {
    /// A TOML profile.
    pub file: Option<PathBuf>,

    /// A one-line shape instead of a file, e.g. '50->1000/s@2m'.
    #[arg(long, value_name = "SHORTHAND")]
    pub shape: Option<String>,

    /// As for `run`: show the shape this many times faster.
    #[arg(long, value_parser = Clipped(scale))]
    pub time_scale: Option<f64>,

    /// As for `run`: multiply every rate.
    #[arg(long, value_parser = Clipped(scale))]
    pub rate_scale: Option<f64>,

    /// Plot width in columns.
    #[arg(long, default_value_t = 72, value_parser = clap::value_parser!(u16).range(20..=400))]
    pub width: u16,

    /// Plot height in rows.
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u16).range(4..=100))]
    pub height: u16,
}

impl ShowArgs {
    /// The profile to show, scales applied.
    pub fn profile(&self) -> Result<Profile, Error> {
        let mut p = match (&self.file, &self.shape) {
            (Some(file), _) => profile::load(file)?,
            (None, Some(text)) => Profile {
                name: "--shape".to_string(),
                description: None,
                path: None,
                shape: profile::parse_shorthand(text)?,
                seed: None,
                requests: Vec::new(),
                retry: None,
                recovery: None,
                thresholds: Vec::new(),
            },
            (None, None) => {
                return Err(Error::invalid(
                    "FILE",
                    "(none)",
                    "give a profile file or --shape",
                ))
            }
        };
        p.shape = apply_scales(p.shape, self.time_scale, self.rate_scale)?;
        Ok(p)
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// TOML profiles to validate.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `--time-scale` and `--rate-scale`, each replacing the shape's own.
fn apply_scales(shape: Shape, time: Option<f64>, rate: Option<f64>) -> Result<Shape, Error> {
    let err = |flag: &'static str, v: f64| {
        move |e: crate::schedule::StageError| {
            // 1e-30 as written, not as thirty zeros.
            let shown = if (1e-3..1e7).contains(&v) {
                v.to_string()
            } else {
                format!("{v:e}")
            };
            Error::invalid(flag, shown, format!("{} ({})", e.reason, e.hint))
        }
    };
    let shape = match time {
        Some(k) => shape.with_time_scale(k).map_err(err("--time-scale", k))?,
        None => shape,
    };
    match rate {
        Some(s) => shape.with_rate_scale(s).map_err(err("--rate-scale", s)),
        None => Ok(shape),
    }
}

/// Default in-flight cap: a 2 s stall at 1 000/s puts 2 000 requests in flight, twice over.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4000;

/// Added to the request timeout for the default grace period, so that a request sent a little
/// late at the very end of the schedule still gets its whole timeout before the run stops waiting.
pub const DEFAULT_GRACE_MARGIN: Duration = Duration::from_secs(1);

/// One of our value parsers, with clap's error message but the echoed value cut to
/// [`crate::error::ECHO_LIMIT`] characters (clap would echo a 100 KB argument whole).
#[derive(Clone, Copy)]
pub struct Clipped<T>(fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for Clipped<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        (self.0)(&text).map_err(|reason| {
            let name = arg.map_or("...".to_string(), |a| a.to_string());
            let message = format!(
                "invalid value '{}' for '{name}': {}\n\nFor more information, try '--help'.\n",
                clip(&text),
                clip_reason(&reason)
            );
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, message).with_cmd(cmd)
        })
    }
}

/// A reason may quote the value itself (humantime does): cut it as a whole at a generous length.
fn clip_reason(reason: &str) -> std::borrow::Cow<'_, str> {
    if reason.len() <= 4 * crate::error::ECHO_LIMIT {
        std::borrow::Cow::Borrowed(reason)
    } else {
        clip(reason)
    }
}

/// A whole number for a count flag (connections, requests, queue sizes…), parsed here rather than
/// by clap so that a 300-digit value is not echoed whole.
fn whole_usize(s: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| "expected a whole number (e.g. 50)".to_string())
}

/// As [`whole_usize`], for 64-bit counts and seeds.
fn whole_u64(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| "expected a whole number (e.g. 1000)".to_string())
}

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
#[command(group(
    clap::ArgGroup::new("load")
        .required(true)
        .args(["rate", "shape", "profile"]),
))]
pub struct RunArgs {
    /// Target URL (http:// or https://), or grpc://host:port / grpcs://host:port with --call.
    /// Optional with --profile when its requests give a `url`.
    pub url: Option<String>,

    /// Requests per second: 500, 500/s, 1200/m, 100/h or 100/d (the profiles' rate syntax); or
    /// `max` for a closed-loop throughput test (each slot sends as soon as its previous response
    /// arrived; latency is then service time and hides queueing).
    #[arg(short, long, value_parser = Clipped(rate_or_max), allow_negative_numbers = true)]
    pub rate: Option<RateArg>,

    /// A load shape in one line instead of --rate, e.g. '50->1000/s@2m' (a ramp) or
    /// '100/s@1m; burst:100->2000/s@1m,hold=10s' (see docs/profiles.md).
    #[arg(long, value_name = "SHORTHAND")]
    pub shape: Option<String>,

    /// A TOML profile: stages, arrivals, seed and the request mix (see profiles/).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,

    /// Arrival process: uniform (evenly spaced) or poisson (random gaps, same mean rate curve).
    /// Overrides the profile's.
    #[arg(long, value_parser = ["uniform", "poisson"])]
    pub arrivals: Option<String>,

    /// Seed for Poisson arrivals and the request mix (default: the profile's, else drawn and
    /// printed in the report so the run can be repeated).
    #[arg(long, value_parser = Clipped(whole_u64))]
    pub seed: Option<u64>,

    /// Run the shape this many times faster (60: a 24 h profile in 24 min). Replaces the
    /// profile's time_scale. With --shape or --profile only.
    #[arg(long, value_parser = Clipped(scale), allow_negative_numbers = true)]
    pub time_scale: Option<f64>,

    /// Multiply every rate of the shape (0.3: the production shape at 30 %). Replaces the
    /// profile's rate_scale. With --shape or --profile only.
    #[arg(long, value_parser = Clipped(scale), allow_negative_numbers = true)]
    pub rate_scale: Option<f64>,

    /// How long to send for (humantime: 30s, 5m, 1h). Default 10s. With --rate only.
    #[arg(short, long, value_parser = Clipped(duration), allow_hyphen_values = true, conflicts_with_all = ["requests", "shape", "profile"])]
    pub duration: Option<Duration>,

    /// Send exactly this many requests (at --rate) instead of for a duration.
    #[arg(short = 'n', long, conflicts_with_all = ["shape", "profile"], value_parser = Clipped(whole_u64))]
    pub requests: Option<u64>,

    /// TCP connections opened before the clock starts. On HTTP/1.1 each carries one request at a
    /// time. More are opened on demand, up to --max-connections, when every one is busy.
    #[arg(short, long, default_value_t = 50, value_parser = Clipped(whole_usize))]
    pub connections: usize,

    /// Most connections open at once (default: --max-in-flight, within the file-descriptor
    /// limit). Equal to -c for a fixed pool: waiting for a free connection then counts as the
    /// generator's send lag.
    #[arg(long, value_parser = Clipped(whole_usize))]
    pub max_connections: Option<usize>,

    /// Speak HTTP/2: prior knowledge (h2c) on http://, ALPN h2 on https://.
    #[arg(long)]
    pub http2: bool,

    /// Concurrent streams per HTTP/2 connection.
    #[arg(long, default_value_t = 100, value_parser = Clipped(whole_usize))]
    pub max_streams: usize,

    /// Requests allowed on the wire at once. The default lets a 2 s stall at 1 000/s stay
    /// open-loop; beyond it, due requests wait in the backlog (send lag).
    #[arg(long, default_value_t = DEFAULT_MAX_IN_FLIGHT, value_parser = Clipped(whole_usize))]
    pub max_in_flight: usize,

    /// Due requests allowed to wait for an in-flight slot; beyond that they are dropped and counted.
    #[arg(long, default_value_t = 10_000, value_parser = Clipped(whole_usize))]
    pub backlog: usize,

    /// HTTP method (default GET).
    #[arg(short = 'X', long)]
    pub method: Option<String>,

    /// Request header 'Name: value' (repeatable). With a profile's requests, added to each one
    /// that does not set the same header. Host replaces the URL's on HTTP/1.1 (refused with
    /// --http2, where the URL's host is the :authority); Content-Length and Transfer-Encoding
    /// are refused (set from the body).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,

    /// Request body: a literal string, or @FILE to read it from a file.
    #[arg(short, long)]
    pub body: Option<String>,

    /// gRPC: the method to call, package.Service/Method (with a grpc:// or grpcs:// target).
    #[arg(long, value_name = "METHOD")]
    pub call: Option<String>,

    /// gRPC: a .proto file with the called service (repeatable); compiled at run time, no protoc
    /// needed. Without it the schema comes from the server's reflection service.
    #[arg(long = "proto", value_name = "FILE")]
    pub protos: Vec<PathBuf>,

    /// gRPC: a directory the .proto files' imports are under (repeatable; each file's own
    /// directory is searched too).
    #[arg(long = "import-path", value_name = "DIR")]
    pub import_paths: Vec<PathBuf>,

    /// gRPC: status codes counted as rejections (load shedding) rather than errors, by name or
    /// number; empty for none. DEADLINE_EXCEEDED is always a timeout.
    #[arg(long, default_value = "RESOURCE_EXHAUSTED,UNAVAILABLE")]
    pub grpc_rejected: String,

    /// gRPC: request messages per call for a client-streaming or bidirectional method (the -b
    /// message, that many times; default 1).
    #[arg(long, value_parser = Clipped(messages))]
    pub messages: Option<u32>,

    /// gRPC: pause this long between response messages, a slow reader (server streaming); the
    /// pauses count in latency and service time.
    #[arg(long, value_parser = Clipped(duration), allow_hyphen_values = true)]
    pub read_delay: Option<Duration>,

    /// Give up on a request after this long (it is counted as a timeout and enters the latency
    /// figures at that moment).
    #[arg(long, value_parser = Clipped(duration), default_value = "10s", allow_hyphen_values = true)]
    pub timeout: Duration,

    /// Give up on a TCP/TLS/HTTP connection attempt after this long.
    #[arg(long, value_parser = Clipped(duration), default_value = "3s", allow_hyphen_values = true)]
    pub connect_timeout: Duration,

    /// How long to keep measuring in-flight requests after the schedule ends or the first
    /// Ctrl-C. Default: the request timeout plus 1 s, so a request sent at the very end still
    /// gets its whole timeout.
    #[arg(long, value_parser = Clipped(duration), allow_hyphen_values = true)]
    pub grace: Option<Duration>,

    /// Statuses counted as rejections (load shedding) rather than errors; empty for none.
    #[arg(long, default_value = "429,503")]
    pub rejected: String,

    /// Send-lag p99 above this marks the measurement untrustworthy (exit 3).
    #[arg(long, value_parser = Clipped(duration), default_value = "5ms", allow_hyphen_values = true)]
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
    #[arg(long, value_parser = Clipped(duration), default_value = "0s", allow_hyphen_values = true)]
    pub pacer_quantum: Duration,

    /// Client retry policy, as key=value pairs: e.g. 'on=rejected,timeout attempts=4
    /// backoff=exp:100ms..5s jitter=full budget=10% retry_after=honour' (see
    /// docs/retry-storms.md); 'none' for no retries. Overrides a profile's [retry].
    #[arg(long, value_name = "SETTINGS")]
    pub retry: Option<String>,

    /// How recovery is judged: 'after=30s|STAGE threshold=99% hold=3s' (when the trigger
    /// ended, the success ratio to get back to, and for how long). Overrides a profile's
    /// [recovery].
    #[arg(long, value_name = "SETTINGS")]
    pub recovery: Option<String>,

    /// No per-second progress lines on stderr (and no terminal UI).
    #[arg(short, long)]
    pub quiet: bool,

    /// Per-second progress lines instead of the terminal UI (the UI is the default when stderr
    /// is a terminal).
    #[arg(long)]
    pub no_tui: bool,

    /// Runtime worker threads. Default: the CPUs this process may run on.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,

    /// A pass/fail condition on the report, e.g. 'latency.p99 < 250ms', 'errors.count == 0',
    /// 'rejected.rate < 1%', 'rate.achieved >= 0.99 * rate.target', optionally scoped:
    /// 'stage=peak' or 'for each 1s'. Repeatable; added to the profile's [thresholds]. Exit 1
    /// when one fails (see docs/ci.md).
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,

    /// Stop the run (gracefully; the full report is written) as soon as a threshold fails that
    /// cannot recover: a `for each` window, or a count held below a limit.
    #[arg(long)]
    pub abort_on_fail: bool,

    /// Write the verdicts (trust, every threshold, the baseline's gated figures) as JUnit XML.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Compare this run with a stored report at the end (as `metronome compare` does); exit 1
    /// on a clear regression beyond --max-regression.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// With --baseline: allowed regression, `10%` or `FIGURE=5%` (as for `compare`).
    #[arg(long, value_name = "SPEC", requires = "baseline")]
    pub max_regression: Vec<String>,

    /// Run at --rate until this percentile is known to within ±SHARE at 95 % confidence, then
    /// stop gracefully, e.g. 'latency.p99 ±2%' (see docs/ci.md); capped by --max-duration.
    #[arg(long, value_name = "RULE", conflicts_with_all = ["duration", "requests", "shape", "profile"])]
    pub until_confident: Option<String>,

    /// With --until-confident: the longest the run may go on (default 10m).
    #[arg(long, value_parser = Clipped(duration), requires = "until_confident", allow_hyphen_values = true)]
    pub max_duration: Option<Duration>,
}

/// `--messages`: 1 to 100 000 request messages per call.
fn messages(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err("expected a whole number of messages from 1 to 100000 (e.g. 10)".to_string()),
    }
}

fn scale(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err("expected a number above zero (e.g. 60, or 0.3)".to_string()),
    }
}

impl RunArgs {
    /// Validates everything, profile file included; no network access.
    pub fn plan(&self) -> Result<Plan, Error> {
        let profile = self.profile.as_deref().map(profile::load).transpose()?;
        let target = self.target(profile.as_ref())?;
        let grpc = self.grpc(profile.as_ref(), &target)?;
        let (grpc, (requests, weights)) = match grpc {
            Some((g, specs, weights)) => (Some(g), (specs, weights)),
            None => (None, self.requests(profile.as_ref(), &target)?),
        };
        let shape = self.shape(profile.as_ref())?;
        let plan = Plan {
            target,
            protocol: if self.http2 || grpc.is_some() {
                Protocol::Http2
            } else {
                Protocol::Http1
            },
            requests,
            weights,
            shape,
            profile_file: self.profile.clone(),
            limits: Limits {
                connections: self.connections,
                max_connections: self.max_connections,
                max_streams: self.max_streams,
                max_in_flight: self.max_in_flight,
                backlog: self.backlog,
                timeout: self.timeout,
                connect_timeout: self.connect_timeout,
                grace: self
                    .grace
                    .unwrap_or(self.timeout.saturating_add(DEFAULT_GRACE_MARGIN)),
            },
            tls: TlsOptions {
                insecure: self.insecure,
                ca_file: self.cacert.clone(),
            },
            rejected: plan::parse_statuses(&self.rejected)?,
            grpc,
            max_send_lag: self.max_send_lag,
            progress: !self.quiet,
            pacer_quantum: self.pacer_quantum,
            retry: self.retry_policy(profile.as_ref())?,
            recovery: self.recovery_spec(profile.as_ref())?,
        };
        plan.validate()?;
        Ok(plan)
    }

    /// `--retry`, else the profile's `[retry]`.
    fn retry_policy(
        &self,
        profile: Option<&Profile>,
    ) -> Result<Option<crate::retry::Policy>, Error> {
        match &self.retry {
            Some(spec) => crate::retry::Policy::parse(spec)
                .map_err(|e| Error::invalid("--retry", spec.clone(), e.to_string())),
            None => Ok(profile.and_then(|p| p.retry.clone())),
        }
    }

    /// `--recovery`, else the profile's `[recovery]`.
    fn recovery_spec(
        &self,
        profile: Option<&Profile>,
    ) -> Result<Option<crate::report::recovery::RecoverySpec>, Error> {
        match &self.recovery {
            Some(spec) => crate::report::recovery::RecoverySpec::parse(spec)
                .map(Some)
                .map_err(|e| Error::invalid("--recovery", spec.clone(), e.to_string())),
            None => Ok(profile.and_then(|p| p.recovery.clone())),
        }
    }

    /// The thresholds of the profile's `[thresholds]` and of `--threshold`, checked (and every
    /// `stage=NAME` against the plan's stages) before anything is sent.
    pub fn gate(&self, plan: &Plan) -> Result<crate::gate::Gate, Error> {
        let from_profile = match self.profile.as_deref() {
            Some(p) => profile::load(p)?.thresholds,
            None => Vec::new(),
        };
        let items = from_profile
            .iter()
            .map(|(origin, text)| (origin.clone(), text.as_str()))
            .chain(
                self.thresholds
                    .iter()
                    .map(|t| ("--threshold".to_string(), t.as_str())),
            );
        let gate = crate::gate::Gate::parse(items, self.abort_on_fail)?;
        let stages: Vec<String> = plan.shape.stages().iter().map(|s| s.name.clone()).collect();
        gate.check_stages(&stages)?;
        Ok(gate)
    }

    /// The files this run reads (the profile and its body files, `-b @FILE`, `--cacert`): the
    /// JSON report must not overwrite any of them.
    pub fn inputs(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.profile.iter().cloned().collect();
        if let Some(p) = self.profile.as_deref().and_then(|p| profile::load(p).ok()) {
            files.extend(p.requests.iter().filter_map(|r| r.body_file.clone()));
        }
        if let Some(b) = self.body.as_deref().and_then(|b| b.strip_prefix('@')) {
            files.push(PathBuf::from(b));
        }
        files.extend(self.cacert.iter().cloned());
        files.extend(self.protos.iter().cloned());
        files.extend(self.baseline.iter().cloned());
        files
    }

    /// The URL on the command line, else the first `url` among the profile's requests.
    fn target(&self, profile: Option<&Profile>) -> Result<Target, Error> {
        if let Some(url) = &self.url {
            return Target::parse(url);
        }
        let from_profile = profile
            .and_then(|p| p.requests.iter().find_map(|r| r.url.as_deref()))
            .map(Target::parse);
        from_profile.unwrap_or_else(|| {
            Err(Error::invalid(
                "URL",
                "(none)",
                "give the target URL, e.g. metronome run -r 100 http://127.0.0.1:8080/ (or url = \"...\" in the profile's [[request]])",
            ))
        })
    }

    /// A gRPC target's calls: `--call` with `-b`, or the profile's `[[request]]`s each naming a
    /// `call`; their schema (the .proto files are compiled and the bodies encoded here;
    /// reflection waits for the run), metadata from -H (and the profile's headers), the deadline.
    fn grpc(&self, profile: Option<&Profile>, target: &Target) -> Result<Option<GrpcRun>, Error> {
        if !target.grpc {
            let grpc_only = self.call.is_some()
                || !self.protos.is_empty()
                || !self.import_paths.is_empty()
                || self.messages.is_some()
                || self.read_delay.is_some();
            if grpc_only {
                return Err(Error::invalid(
                    "--call/--proto/--import-path/--messages/--read-delay",
                    target.url.clone(),
                    "gRPC options need a grpc:// or grpcs:// target, e.g. grpc://127.0.0.1:50051",
                ));
            }
            return Ok(None);
        }
        if let Some(m) = &self.method {
            return Err(Error::invalid(
                "--method",
                m.clone(),
                "a gRPC call is always a POST; name the method with --call package.Service/Method",
            ));
        }
        let rejected = crate::grpc::parse_codes(&self.grpc_rejected).map_err(|reason| {
            Error::invalid("--grpc-rejected", self.grpc_rejected.clone(), reason)
        })?;
        let (mix, weights) = self.grpc_mix(profile)?;
        let pool = if self.protos.is_empty() {
            None
        } else {
            Some(crate::grpc::schema::compile(
                &self.protos,
                &self.import_paths,
            )?)
        };
        let mut calls = Vec::new();
        let mut specs = Vec::new();
        for MixEntry {
            name,
            place,
            call,
            json,
            headers: extra,
        } in mix
        {
            let mut spec = RequestSpec::parse("POST", &[], None)?;
            spec.name = name;
            spec.path = Some(call.path().parse().map_err(|_| {
                Error::invalid("--call", call.path(), "not usable as an HTTP/2 path")
            })?);
            let mut headers = self.headers.clone();
            headers.extend(extra);
            spec.headers = grpc_metadata(&headers, self.timeout)?;
            let mut c = GrpcCall {
                call,
                json: json.clone(),
                client_streaming: false,
                server_streaming: false,
                place,
            };
            spec.body = match &pool {
                None => json,
                Some(pool) => {
                    let here =
                        |e: crate::grpc::schema::SchemaError| e.in_request(c.place.as_deref());
                    let method = crate::grpc::schema::find(pool, &c.call, "the --proto files")
                        .map_err(here)?;
                    c.client_streaming = method.is_client_streaming();
                    c.server_streaming = method.is_server_streaming();
                    crate::grpc::schema::encode_n(&method, &json, self.messages).map_err(here)?
                }
            };
            calls.push(c);
            specs.push(spec);
        }
        let schema = if pool.is_some() {
            GrpcSchema::Files
        } else {
            GrpcSchema::Reflection
        };
        let plan = GrpcPlan {
            calls,
            schema,
            rejected,
            messages: self.messages,
            read_delay: self.read_delay,
        };
        Ok(Some((plan, specs, weights)))
    }

    /// The calls of a gRPC run (name, method, JSON body, the request's own headers) and their
    /// weights: `--call` and `-b`, or the profile's `[[request]]`s, each with a `call`.
    fn grpc_mix(&self, profile: Option<&Profile>) -> Result<(Vec<MixEntry>, Vec<u32>), Error> {
        let Some(p) = profile.filter(|p| !p.requests.is_empty()) else {
            let raw = self.call.as_deref().ok_or_else(|| {
                Error::invalid(
                    "--call",
                    "(none)",
                    "a grpc:// target needs the method to call, e.g. --call metronome.demo.v1.Demo/Ping",
                )
            })?;
            let json = plan::parse_body(self.body.as_deref().unwrap_or("{}"))?;
            let one = MixEntry {
                name: None,
                place: None,
                call: CallName::parse(raw)?,
                json,
                headers: Vec::new(),
            };
            return Ok((vec![one], vec![1]));
        };
        if self.call.is_some() || self.body.is_some() {
            return Err(Error::invalid(
                "--call/--body",
                self.call.clone().or(self.body.clone()).unwrap_or_default(),
                "the profile defines its own [[request]]s; set call and body there (-H still adds metadata to each)",
            ));
        }
        let file = self
            .profile
            .as_deref()
            .map_or_else(|| "the profile".to_string(), |f| f.display().to_string());
        let mut mix = Vec::new();
        for (i, def) in p.requests.iter().enumerate() {
            let place = match &def.name {
                Some(n) => format!("[[request]] \"{}\" of {file}", crate::error::clip(n)),
                None => format!("[[request]] #{} of {file}", i + 1),
            };
            let raw = def.call.as_deref().ok_or_else(|| {
                Error::invalid(
                    "--profile",
                    place.clone(),
                    "on a grpc:// target every [[request]] names its method: call = \"package.Service/Method\"",
                )
            })?;
            let json = def
                .body
                .clone()
                .unwrap_or_else(|| bytes::Bytes::from_static(b"{}"));
            let headers = def
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            mix.push(MixEntry {
                name: def.name.clone(),
                call: CallName::parse(raw).map_err(|e| e.in_request(Some(&place)))?,
                place: Some(place),
                json,
                headers,
            });
        }
        Ok((mix, p.weights()))
    }

    /// One request from -X/-H/-b, or the profile's mix (which -X and -b cannot override).
    fn requests(
        &self,
        profile: Option<&Profile>,
        target: &Target,
    ) -> Result<(Vec<RequestSpec>, Vec<u32>), Error> {
        let method = self.method.as_deref().unwrap_or("GET");
        let single = RequestSpec::parse(method, &self.headers, self.body.as_deref())?;
        let Some(p) = profile.filter(|p| !p.requests.is_empty()) else {
            return Ok((vec![single], vec![1]));
        };
        if self.method.is_some() || self.body.is_some() {
            return Err(Error::invalid(
                "-X/--body",
                self.method.clone().or(self.body.clone()).unwrap_or_default(),
                "the profile defines its own [[request]]s; set method and body there (-H still adds headers to each)",
            ));
        }
        let specs = p
            .requests
            .iter()
            .map(|def| RequestSpec::from_profile(def, target, &single.headers))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((specs, p.weights()))
    }

    /// `-d`, or with --until-confident its --max-duration cap, else 10 s.
    fn duration_or_cap(&self) -> Duration {
        match (&self.until_confident, self.duration) {
            (Some(_), _) => self
                .max_duration
                .unwrap_or(crate::gate::until::DEFAULT_MAX_DURATION),
            (None, d) => d.unwrap_or(Duration::from_secs(10)),
        }
    }

    /// `--until-confident`, checked: it needs a constant rate.
    pub fn until_confident(&self) -> Result<Option<crate::gate::until::UntilConfident>, Error> {
        let Some(text) = &self.until_confident else {
            return Ok(None);
        };
        if !matches!(self.rate, Some(RateArg::PerSecond(_))) {
            return Err(Error::invalid(
                "--until-confident",
                text.clone(),
                "it needs a constant rate to run at: give -r RATE (not max)",
            ));
        }
        crate::gate::until::UntilConfident::parse(text)
            .map(Some)
            .map_err(|reason| Error::invalid("--until-confident", text.clone(), reason))
    }

    /// The load shape from --rate, --shape or --profile, then --arrivals/--seed and the scales.
    fn shape(&self, profile: Option<&Profile>) -> Result<Shape, Error> {
        let base = match (self.rate, &self.shape, profile) {
            (Some(RateArg::Max), ..) => {
                if self.arrivals.is_some() || self.time_scale.is_some() || self.rate_scale.is_some()
                {
                    return Err(Error::invalid(
                        "--rate",
                        "max",
                        "a closed-loop run has no schedule to shape; drop --arrivals/--time-scale/--rate-scale or give a rate",
                    ));
                }
                return Shape::max(self.duration, self.requests).map_err(flag_error);
            }
            (Some(RateArg::PerSecond(_)), ..)
                if self.time_scale.is_some() || self.rate_scale.is_some() =>
            {
                // -r -d / -r -n say exactly what to send; a scale would either change that
                // silently or make the report disagree with what was sent.
                return Err(Error::invalid(
                    if self.time_scale.is_some() {
                        "--time-scale"
                    } else {
                        "--rate-scale"
                    },
                    self.time_scale.or(self.rate_scale).unwrap_or(1.0).to_string(),
                    "scales apply to --shape and --profile only; with --rate, give the rate and -d/-n you mean",
                ));
            }
            (Some(RateArg::PerSecond(r)), ..) => match self.requests {
                Some(n) => Shape::constant_count(r, n),
                None => Shape::constant(r, self.duration_or_cap()),
            }
            .map_err(flag_error)?,
            (None, Some(text), _) => profile::parse_shorthand(text)?,
            (None, None, Some(p)) => p.shape.clone(),
            (None, None, None) => {
                return Err(Error::invalid(
                    "--rate",
                    "(none)",
                    "give --rate, --shape or --profile",
                ))
            }
        };
        let arrivals = match self.arrivals.as_deref() {
            Some(a) => Arrivals::parse(a).unwrap_or(Arrivals::Uniform),
            None => base.arrivals(),
        };
        // A profile's shape already carries its seed (written, or drawn at load).
        let seed = self.seed.unwrap_or_else(|| {
            if profile.is_some() {
                base.seed()
            } else {
                fresh_seed()
            }
        });
        apply_scales(
            base.with_arrivals(arrivals, seed),
            self.time_scale,
            self.rate_scale,
        )
    }
}

/// A gRPC run's part of the plan: the calls, their requests and their weights.
type GrpcRun = (GrpcPlan, Vec<RequestSpec>, Vec<u32>);

/// One call of a gRPC mix before its schema is known.
struct MixEntry {
    name: Option<String>,
    /// Which profile `[[request]]` this is, for errors; `None` for `--call`.
    place: Option<String>,
    call: CallName,
    /// The request message as JSON.
    json: bytes::Bytes,
    /// The profile request's own headers (`Name: value`), added to -H.
    headers: Vec<String>,
}

/// gRPC metadata from -H, plus the headers every call carries (content type, `te: trailers`,
/// the deadline as `grpc-timeout`). Those three are metronome's, so -H may not set them.
fn grpc_metadata(raw: &[String], timeout: Duration) -> Result<http::HeaderMap, Error> {
    let mut map = http::HeaderMap::new();
    for h in raw {
        let (name, value) = plan::parse_header(h)?;
        let reserved = [
            "content-type",
            "te",
            "grpc-timeout",
            "content-length",
            "transfer-encoding",
        ];
        if reserved.contains(&name.as_str()) {
            return Err(Error::Header {
                header: h.clone(),
                reason: "metronome sets content-type, te and grpc-timeout on every gRPC call (the deadline is --timeout); drop the header".to_string(),
            });
        }
        map.append(name, value);
    }
    let fixed = [
        ("content-type", "application/grpc".to_string()),
        ("te", "trailers".to_string()),
        ("grpc-timeout", crate::grpc::timeout_header(timeout)),
        (
            "user-agent",
            format!("metronome/{}", env!("CARGO_PKG_VERSION")),
        ),
    ];
    for (name, value) in fixed {
        if name == "user-agent" && map.contains_key(name) {
            continue;
        }
        let v = http::HeaderValue::from_str(&value)
            .map_err(|_| Error::invalid("--timeout", value.clone(), "not a header value"))?;
        map.insert(name, v);
    }
    Ok(map)
}

/// A refused `-r`/`-d`/`-n` value → the error naming its flag, with an example of a good one.
fn flag_error(e: ShapeError) -> Error {
    let flag = match e.param() {
        ShapeParam::Rate => "--rate",
        ShapeParam::Duration => "--duration",
        ShapeParam::Count => "--requests",
    };
    let example = match e {
        ShapeError::RateNotPositive(_) => " (e.g. -r 500)",
        ShapeError::ZeroDuration => " (e.g. -d 10s)",
        ShapeError::ZeroCount => " (e.g. -n 1000)",
        _ => "",
    };
    Error::invalid(flag, e.value(), format!("{}{example}", e.reason()))
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,

    /// Time to process each request: fixed (5ms) or uniform random (2ms..8ms); at most 1h.
    #[arg(long, default_value = "0ms")]
    pub service_time: ServiceTime,

    /// Requests processed at once (the capacity), 1 to 1000000.
    #[arg(long, default_value_t = 1024, value_parser = Clipped(whole_usize))]
    pub workers: usize,

    /// Requests allowed to wait for a worker (0 to 1000000); when full, new ones are shed with 503.
    #[arg(long, default_value_t = 1024, value_parser = Clipped(whole_usize))]
    pub queue: usize,

    /// Token-bucket limit in requests per second (1/h to 1e9/s); over it, 429 with Retry-After.
    #[arg(long, value_parser = Clipped(rate), allow_negative_numbers = true)]
    pub rate_limit: Option<f64>,

    /// Token-bucket size (burst, 1 to 1e9), with --rate-limit.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub burst: f64,

    /// Stall all processing: AT+FOR from the server's start, e.g. 5s+2s (repeatable; ending
    /// within a year).
    #[arg(long = "stall")]
    pub stalls: Vec<Stall>,

    /// Add Retry-After to shed (503) answers: this long, in whole seconds (e.g. 1s).
    #[arg(long, value_parser = Clipped(duration))]
    pub retry_after: Option<Duration>,

    /// Share of served requests answered 500 (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub error_rate: f64,

    /// Stop by itself after this long (default: run until Ctrl-C).
    #[arg(long, value_parser = Clipped(duration))]
    pub duration: Option<Duration>,

    /// Seed for random service times and errors.
    #[arg(long, default_value_t = 1, value_parser = Clipped(whole_u64))]
    pub seed: u64,

    /// Longest request body accepted (bytes, or 64KiB, 1MiB…); longer ones get 413 and, on
    /// HTTP/1.1, the connection is closed. Bodies are discarded as they arrive.
    #[arg(long, default_value = "1MiB", value_parser = crate::serve::parse_size, allow_hyphen_values = true)]
    pub max_body: u64,

    /// Close a connection whose request head is not complete this long after the server
    /// starts waiting for it (on opening, or after the previous answer on HTTP/1.1).
    #[arg(long, value_parser = duration, default_value = "30s", allow_hyphen_values = true)]
    pub header_timeout: Duration,

    /// Close a connection with no request in hand and no traffic for this long; answer 408 to a
    /// request body that sends nothing for this long.
    #[arg(long, value_parser = duration, default_value = "60s", allow_hyphen_values = true)]
    pub idle_timeout: Duration,
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
            retry_after: self.retry_after,
            error_rate: self.error_rate,
            seed: self.seed,
            max_body: self.max_body,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            ..ServeConfig::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Write the JSON report to FILE ('-' for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// How long the demo sends load (its story is scaled to fit).
    #[arg(short, long, value_parser = Clipped(duration), default_value = "30s")]
    pub duration: Duration,

    /// Per-second progress lines instead of the terminal UI.
    #[arg(long)]
    pub no_tui: bool,

    /// The same story over gRPC: unary calls of the built-in gRPC service, schema by reflection.
    #[arg(long)]
    pub grpc: bool,
}
