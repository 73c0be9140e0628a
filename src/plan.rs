//! The validated, typed run plan. The CLI turns raw flags into a [`Plan`]; the library never sees
//! clap. Everything a user can get wrong is checked here, before a single request is sent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use http::{HeaderMap, Method, Uri};

use crate::error::Error;
use crate::schedule::Shape;

/// Which HTTP version to speak. HTTP/2 over plain TCP uses prior knowledge (h2c); over TLS it is
/// negotiated with ALPN and the run refuses to start if the server does not agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
        }
    }
}

/// Where the load goes.
#[derive(Clone, Debug)]
pub struct Target {
    /// As the user wrote it.
    pub url: String,
    pub tls: bool,
    /// `grpc://` or `grpcs://`: calls are gRPC over HTTP/2 (`--call` names the method).
    pub grpc: bool,
    pub host: String,
    pub port: u16,
    /// Absolute form, used for HTTP/2 (`:scheme`, `:authority`, `:path`).
    pub absolute: Uri,
    /// Origin form (`/path?query`), used on HTTP/1.1 with a `Host` header.
    pub origin: Uri,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, Error> {
        let bad = |reason: &str| Error::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let (tls, grpc) = match uri.scheme_str() {
            Some("http") => (false, false),
            Some("https") => (true, false),
            Some("grpc") => (false, true),
            Some("grpcs") => (true, true),
            Some(other) => {
                return Err(bad(&format!(
                    "unsupported scheme '{}', only http, https, grpc and grpcs are supported",
                    crate::error::clip(other)
                )))
            }
            None => return Err(bad("missing scheme")),
        };
        let authority = uri.authority().ok_or_else(|| bad("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user information in the URL is not supported; send an Authorization header with -H instead"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let explicit_port = authority
            .as_str()
            .rsplit(']')
            .next()
            .unwrap_or("")
            .contains(':');
        let port = match authority.port_u16() {
            Some(p) => p,
            None if explicit_port => return Err(bad("the port must be a number from 1 to 65535")),
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
        };
        if port == 0 {
            return Err(bad("port 0 cannot be connected to"));
        }
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let path = if path.is_empty() { "/" } else { path };
        if grpc && path != "/" {
            return Err(bad("a gRPC target is host:port only; name the method with --call package.Service/Method"));
        }
        let origin: Uri = path
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        // HTTP/2's :scheme is http or https for gRPC too.
        let absolute = Uri::builder()
            .scheme(if tls { "https" } else { "http" })
            .authority(authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Target {
            url: url.to_string(),
            tls,
            grpc,
            host: host.to_string(),
            port,
            absolute,
            origin,
        })
    }

    /// `host:port` for the Host header (port omitted when it is the scheme's default).
    pub fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The absolute URI of `path` (origin form, `/a?b`) on this target, for HTTP/2.
    pub fn absolute_with(&self, path: &Uri) -> Option<Uri> {
        let parts = self.absolute.clone().into_parts();
        Uri::builder()
            .scheme(parts.scheme?)
            .authority(parts.authority?)
            .path_and_query(path.path_and_query()?.clone())
            .build()
            .ok()
    }

    /// True when `other` is the same scheme, host and port: connections are owned per target, so
    /// a request mix must stay on one origin.
    pub fn same_origin(&self, other: &Target) -> bool {
        self.tls == other.tls
            && self.grpc == other.grpc
            && self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
    }
}

/// One request of the run: the only one for `-X/-H/-b`, or one entry of a profile's mix.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    /// A profile request's `name`, for reports.
    pub name: Option<String>,
    pub method: Method,
    /// Origin-form path and query replacing the target's (a profile request's `path`/`url`).
    pub path: Option<Uri>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RequestSpec {
    /// Builds the request parts from raw flag values.
    pub fn parse(method: &str, headers: &[String], body: Option<&str>) -> Result<Self, Error> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| {
            Error::invalid(
                "--method",
                method,
                "not a valid HTTP method token (e.g. GET, POST, PUT)",
            )
        })?;
        let mut map = HeaderMap::new();
        for h in headers {
            let (name, value) = parse_header(h)?;
            if let Some(reason) = reserved_header(name.as_str()) {
                return Err(Error::Header {
                    header: h.clone(),
                    reason: reason.to_string(),
                });
            }
            map.append(name, value);
        }
        let body = match body {
            None => Bytes::new(),
            Some(b) => parse_body(b)?,
        };
        Ok(RequestSpec {
            name: None,
            method,
            path: None,
            headers: map,
            body,
        })
    }
}

impl RequestSpec {
    /// A profile's `[[request]]` on `target`. `extra` headers (the command line's `-H`) go on
    /// every request unless the profile's request sets the same header itself.
    pub fn from_profile(
        def: &crate::profile::RequestDef,
        target: &Target,
        extra: &HeaderMap,
    ) -> Result<Self, Error> {
        let what = def.name.clone().unwrap_or_else(|| def.method.clone());
        let bad =
            |reason: String| Error::invalid("--profile", format!("[[request]] {what}"), reason);
        if let Some(call) = &def.call {
            return Err(bad(format!(
                "call = \"{call}\" names a gRPC method, but the target {} is not grpc:// or grpcs://",
                target.url
            )));
        }
        let method = Method::from_bytes(def.method.as_bytes())
            .map_err(|_| bad(format!("'{}' is not an HTTP method", def.method)))?;
        let path = match (&def.url, &def.path) {
            (Some(url), _) => {
                let t = Target::parse(url)?;
                if !target.same_origin(&t) {
                    return Err(bad(format!(
                        "url {url} is not on the run's target {}; connections are owned per origin, so every request of a mix must use the same scheme, host and port (use `path`, or run one metronome per origin)",
                        target.url
                    )));
                }
                Some(t.origin)
            }
            (None, Some(p)) => Some(
                p.parse::<Uri>()
                    .map_err(|e| bad(format!("path '{p}': {e}")))?,
            ),
            (None, None) => None,
        };
        let mut own = HeaderMap::new();
        for (k, v) in &def.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| bad(format!("invalid header name '{k}'")))?;
            if let Some(reason) = reserved_header(name.as_str()) {
                return Err(bad(format!("header '{k}': {reason}")));
            }
            let value = HeaderValue::from_str(v)
                .map_err(|_| bad(format!("invalid value for header '{k}'")))?;
            own.append(name, value);
        }
        let mut headers = extra.clone();
        for name in own.keys() {
            headers.remove(name);
        }
        for (name, value) in &own {
            headers.append(name, value.clone());
        }
        Ok(RequestSpec {
            name: def.name.clone(),
            method,
            path,
            headers,
            body: def.body.clone().unwrap_or_default(),
        })
    }
}

/// Why a header a user gives would break the request, if it would: metronome frames the body
/// itself, so a user `Content-Length` would truncate the body or make the server wait for bytes
/// that never come, and a `Transfer-Encoding` would contradict the framing hyper chooses.
pub fn reserved_header(name: &str) -> Option<&'static str> {
    if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
    {
        Some("metronome sets Content-Length and Transfer-Encoding from the body; drop the header (give the body with -b, or body/body_file in a profile)")
    } else {
        None
    }
}

/// `Name: value` → a header pair, with a clear error for anything else.
pub fn parse_header(raw: &str) -> Result<(HeaderName, HeaderValue), Error> {
    let bad = |reason: &str| Error::Header {
        header: raw.to_string(),
        reason: reason.to_string(),
    };
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| bad("no ':' between name and value"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("empty header name"));
    }
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| bad("the name has characters not allowed in a header name"))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| bad("the value has characters not allowed in a header value"))?;
    Ok((name, value))
}

/// A literal body, or `@path` to read it from a file (at most [`crate::input::MAX_BODY`]).
pub fn parse_body(raw: &str) -> Result<Bytes, Error> {
    match raw.strip_prefix('@') {
        Some(path) => {
            crate::input::read_bounded(Path::new(path), crate::input::MAX_BODY, "a request body")
                .map(Bytes::from)
                .map_err(|cause| Error::BodyFile {
                    path: PathBuf::from(path),
                    cause,
                })
        }
        None => Ok(Bytes::copy_from_slice(raw.as_bytes())),
    }
}

/// `500`, `500/s`, `30000/m`, `100/h` or `2/d` → requests per second, for `-r` and
/// `serve --rate-limit`. The grammar is the profiles' and `--shape`'s
/// ([`crate::profile::parse_rate`]), so a rate written one way is accepted everywhere; only
/// the bounds differ: a flag's rate must be above zero (a profile's 0 is a pause).
pub fn parse_rate(raw: &str) -> Result<f64, Error> {
    let bad = |why: &str| {
        Error::invalid(
            "--rate",
            raw,
            format!("{why}expected requests per second as a number above zero, optionally with /s, /m, /h or /d (e.g. 500, 500/s, 1200/m)"),
        )
    };
    let rate = crate::profile::parse_rate(raw).map_err(|_| bad(""))?;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(bad(""));
    }
    Ok(rate)
}

/// A comma-separated status list such as `429,503`.
pub fn parse_statuses(raw: &str) -> Result<Vec<u16>, Error> {
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    raw.split(',')
        .map(|s| {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| {
                    Error::invalid(
                        "--rejected",
                        raw,
                        "expected HTTP status codes 100-599 separated by commas (e.g. 429,503)",
                    )
                })
        })
        .collect()
}

/// Concurrency, queueing and time limits.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Limits {
    /// TCP connections opened before the clock starts (each is one HTTP/1.1 request at a time,
    /// or many HTTP/2 streams).
    pub connections: usize,
    /// Most connections open at once; more are opened on demand up to this. `None`: the in-flight
    /// cap (fitted to the file-descriptor limit). Equal to `connections`: a fixed pool, where
    /// waiting for a free connection is send lag.
    pub max_connections: Option<usize>,
    /// Concurrent HTTP/2 streams per connection (ignored for HTTP/1.1).
    pub max_streams: usize,
    /// Requests allowed on the wire at once.
    pub max_in_flight: usize,
    /// Due requests allowed to wait for an in-flight slot; beyond that they are dropped.
    pub backlog: usize,
    #[serde(serialize_with = "ser_ms")]
    pub timeout: Duration,
    #[serde(serialize_with = "ser_ms")]
    pub connect_timeout: Duration,
    /// How long the run waits for in-flight requests after the schedule ends or a stop.
    #[serde(serialize_with = "ser_ms")]
    pub grace: Duration,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Where a gRPC call's schema comes from.
#[derive(Clone, Debug)]
pub enum GrpcSchema {
    /// `--proto` files, already compiled at plan time: the request body is encoded.
    Files,
    /// The server's reflection service, asked before the run's connections are opened; the
    /// request bodies are still the JSON ([`GrpcCall::json`]), checked and encoded then.
    Reflection,
}

/// One gRPC call of the request mix.
#[derive(Clone, Debug)]
pub struct GrpcCall {
    pub call: crate::grpc::schema::CallName,
    /// The request message as JSON (`-b`, or the profile request's body).
    pub json: Bytes,
    /// The method takes a stream of requests (client streaming or bidirectional).
    pub client_streaming: bool,
    /// The method streams its answer (server streaming or bidirectional).
    pub server_streaming: bool,
    /// For a profile's `[[request]]`: which one, for errors (`[[request]] "ping" of mix.toml`,
    /// or its position when unnamed); `None` for `--call`.
    pub place: Option<String>,
}

/// A gRPC run: the methods, where their schema comes from, and how answers are judged.
#[derive(Clone, Debug)]
pub struct GrpcPlan {
    /// One per entry of [`Plan::requests`], same order.
    pub calls: Vec<GrpcCall>,
    pub schema: GrpcSchema,
    /// Codes counted as rejected (load shedding) rather than errors.
    pub rejected: Vec<crate::grpc::Code>,
    /// Request messages per call (`--messages`; `None`: one).
    pub messages: Option<u32>,
    /// Pause after each response message (a slow reader).
    pub read_delay: Option<Duration>,
}

/// TLS choices: certificate verification is on unless `insecure`.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    pub insecure: bool,
    /// Extra trust anchors (PEM), e.g. a test or internal CA.
    pub ca_file: Option<PathBuf>,
}

/// A complete, validated description of one run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub target: Target,
    pub protocol: Protocol,
    /// The request mix (never empty): [`crate::schedule::Ticket::request`] indexes it and
    /// `weights` gives each entry's share.
    pub requests: Vec<RequestSpec>,
    /// Relative weight of each request, same length as `requests`.
    pub weights: Vec<u32>,
    pub shape: Shape,
    /// The profile file the shape and requests came from, if any.
    pub profile_file: Option<PathBuf>,
    pub limits: Limits,
    pub tls: TlsOptions,
    /// Statuses counted as rejections (load shedding) rather than errors.
    pub rejected: Vec<u16>,
    /// Set for `grpc://` and `grpcs://` targets.
    pub grpc: Option<GrpcPlan>,
    /// Send-lag p99 above this marks the run untrustworthy.
    pub max_send_lag: Duration,
    /// Print a progress line per second on stderr.
    pub progress: bool,
    /// Shortest time between two pacer wake-ups (zero: wake at every due instant).
    pub pacer_quantum: Duration,
    /// The client's retry policy (`--retry`, or the profile's `[retry]`); `None`: no retries.
    pub retry: Option<crate::retry::Policy>,
    /// How recovery is judged (`--recovery`, or the profile's `[recovery]`); `None`: the
    /// defaults, with no known trigger.
    pub recovery: Option<crate::report::recovery::RecoverySpec>,
}

impl Plan {
    /// Closed-loop workers: one per connection of the pool (per stream on HTTP/2), capped by the
    /// in-flight limit. (Open-loop runs grow their workers on demand up to `max_in_flight`.)
    pub fn concurrency(&self) -> usize {
        let per_conn = match self.protocol {
            Protocol::Http1 => 1,
            Protocol::Http2 => self.limits.max_streams,
        };
        self.limits
            .max_in_flight
            .min(self.limits.connections.saturating_mul(per_conn))
            .max(1)
    }

    /// Checks cross-field consistency that single flags cannot.
    pub fn validate(&self) -> Result<(), Error> {
        if self.retry.is_some() && self.shape.is_closed_loop() {
            return Err(Error::invalid(
                "--retry",
                "with --rate max",
                "retries need an open-loop schedule (a closed loop has no intended start to retry from): give a rate",
            ));
        }
        if let Some(r) = &self.recovery {
            r.trigger_end(&self.shape)
                .map_err(|e| Error::invalid("--recovery", e.value.clone(), e.to_string()))?;
        }
        if self.requests.is_empty() || self.requests.len() != self.weights.len() {
            return Err(Error::invalid(
                "--profile",
                self.requests.len().to_string(),
                "a run needs at least one request, each with a weight",
            ));
        }
        let l = &self.limits;
        for (flag, v) in [
            ("--connections", l.connections),
            ("--max-streams", l.max_streams),
            ("--max-in-flight", l.max_in_flight),
            ("--backlog", l.backlog),
        ] {
            if v == 0 {
                return Err(Error::invalid(flag, "0", "must be at least 1"));
            }
        }
        if let Some(max) = l.max_connections {
            if max == 0 {
                return Err(Error::invalid(
                    "--max-connections",
                    "0",
                    "must be at least 1",
                ));
            }
            if max < l.connections {
                return Err(Error::invalid(
                    "--max-connections",
                    max.to_string(),
                    format!(
                        "is below --connections {}: the warm pool cannot exceed the cap (for a fixed pool give both the same value)",
                        l.connections
                    ),
                ));
            }
        }
        for (flag, v, cap) in [
            ("--connections", l.connections, MAX_CONNECTIONS),
            ("--max-in-flight", l.max_in_flight, MAX_IN_FLIGHT),
            ("--backlog", l.backlog, MAX_BACKLOG),
        ] {
            if v > cap {
                return Err(Error::invalid(
                    flag,
                    v.to_string(),
                    format!("at most {cap} (each one is preallocated memory; lower it)"),
                ));
            }
        }
        let streams = l.connections.saturating_mul(l.max_streams);
        if self.protocol == Protocol::Http2 && streams > MAX_STREAMS_TOTAL {
            return Err(Error::invalid(
                "--max-streams",
                l.max_streams.to_string(),
                format!(
                    "--connections × --max-streams is {streams}, above the limit of {MAX_STREAMS_TOTAL} HTTP/2 streams; lower either"
                ),
            ));
        }
        self.validate_times()?;
        self.validate_host_headers()?;
        if !self.target.tls && (self.tls.insecure || self.tls.ca_file.is_some()) {
            return Err(Error::invalid(
                "--insecure/--cacert",
                self.target.url.clone(),
                "TLS options need an https:// or grpcs:// URL; drop the flag or use https",
            ));
        }
        if let Some(path) = &self.tls.ca_file {
            check_readable(path)?;
        }
        Ok(())
    }
}

impl Plan {
    /// Every duration is bounded: above its cap it could overflow `Instant + Duration` (a
    /// panic in a worker, a lost ticket) or make a run that never ends, and none of them has a
    /// use there (latency histograms hold at most 1 h; see docs/engine.md, "Input limits").
    fn validate_times(&self) -> Result<(), Error> {
        let l = &self.limits;
        for (flag, v, cap, example) in [
            ("--timeout", l.timeout, MAX_TIMEOUT, "--timeout 10s"),
            (
                "--connect-timeout",
                l.connect_timeout,
                MAX_TIMEOUT,
                "--connect-timeout 3s",
            ),
            ("--grace", l.grace, MAX_GRACE, "--grace 30s"),
            (
                "--max-send-lag",
                self.max_send_lag,
                MAX_TIMEOUT,
                "--max-send-lag 5ms",
            ),
        ] {
            if v > cap {
                return Err(Error::invalid(
                    flag,
                    fmt_duration(v),
                    format!("at most {} (e.g. {example})", fmt_duration(cap)),
                ));
            }
        }
        for (flag, v) in [
            ("--timeout", l.timeout),
            ("--connect-timeout", l.connect_timeout),
        ] {
            if v.is_zero() {
                return Err(Error::invalid(
                    flag,
                    "0s",
                    format!("must be above zero (e.g. {flag} 3s)"),
                ));
            }
        }
        let run = self.shape.duration();
        if run > MAX_RUN {
            return Err(Error::invalid(
                "--duration",
                fmt_duration(run),
                "a run lasts at most 366 days; shorten it",
            ));
        }
        let q = self.pacer_quantum;
        if !q.is_zero() && !self.shape.is_closed_loop() {
            if q > self.max_send_lag {
                return Err(Error::invalid(
                    "--pacer-quantum",
                    fmt_duration(q),
                    format!(
                        "above --max-send-lag {}: batching wake-ups adds up to one quantum of send lag, so the run would be marked untrustworthy by design; lower the quantum or raise --max-send-lag",
                        fmt_duration(self.max_send_lag)
                    ),
                ));
            }
            if q >= run {
                return Err(Error::invalid(
                    "--pacer-quantum",
                    fmt_duration(q),
                    format!(
                        "not shorter than the run ({}): the pacer would release the whole schedule in one late batch; use a quantum well below the run's length (e.g. 1ms)",
                        fmt_duration(run)
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Plan {
    /// A user `Host` header replaces the URL's on HTTP/1.1. On HTTP/2 the URL's host is sent as
    /// `:authority`, and a `Host` header beside it would be a second, conflicting name for the
    /// origin, so it is refused there; so are two `Host` headers anywhere.
    fn validate_host_headers(&self) -> Result<(), Error> {
        for spec in &self.requests {
            let hosts: Vec<&HeaderValue> = spec.headers.get_all(HOST).iter().collect();
            let shown = || {
                let v = hosts
                    .iter()
                    .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("Host: {v}")
            };
            if hosts.len() > 1 {
                return Err(Error::Header {
                    header: shown(),
                    reason: "more than one Host header; give one".to_string(),
                });
            }
            if !hosts.is_empty() && self.protocol == Protocol::Http2 {
                return Err(Error::Header {
                    header: shown(),
                    reason: "on HTTP/2 the URL's host is sent as :authority and a Host header is not sent; put the host in the URL, or drop --http2 to send Host on HTTP/1.1".to_string(),
                });
            }
        }
        Ok(())
    }
}

/// `1h 30m`-style text for a duration in an error message.
fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The longest `--timeout`, `--connect-timeout` and `--max-send-lag`: 1 h, the latency
/// histograms' ceiling (a longer timeout could not be recorded as such).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// The longest `--grace`: one day. Longer has no use and only risks overflowing a deadline.
pub const MAX_GRACE: Duration = Duration::from_secs(86_400);
/// The longest run (`-d`, including `--rate max`): 366 days, as for profiles.
pub const MAX_RUN: Duration = Duration::from_secs(366 * 86_400);
/// At most this many connections.
pub const MAX_CONNECTIONS: usize = 100_000;
/// At most this many requests on the wire (one worker and its state each).
pub const MAX_IN_FLIGHT: usize = 100_000;
/// At most this many waiting requests: the backlog channel is preallocated, so
/// `--backlog 10000000000` would abort the process on allocation instead of refusing.
pub const MAX_BACKLOG: usize = 10_000_000;
/// At most this many HTTP/2 streams in all (`--connections × --max-streams`).
pub const MAX_STREAMS_TOTAL: usize = 10_000_000;

/// Reads the `--cacert` file once up front (bounded), so that a missing, endless or huge file is
/// bad input before the run rather than a failure at the first connection.
fn check_readable(path: &Path) -> Result<(), Error> {
    crate::input::read_bounded(path, crate::input::MAX_CACERT, "a CA file")
        .map(|_| ())
        .map_err(|e| Error::CaCert {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// The Host header HTTP/1.1 needs, unless the user gave one.
pub fn with_host(headers: &HeaderMap, target: &Target) -> HeaderMap {
    let mut h = headers.clone();
    if !h.contains_key(HOST) {
        if let Ok(v) = HeaderValue::from_str(&target.host_header()) {
            h.insert(HOST, v);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:8080/a?b=1").unwrap();
        assert!(!t.tls);
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8080));
        assert_eq!(t.origin.to_string(), "/a?b=1");
        assert_eq!(t.absolute.to_string(), "http://127.0.0.1:8080/a?b=1");
        let t = Target::parse("https://localhost").unwrap();
        assert!(t.tls);
        assert_eq!(t.port, 443);
        assert_eq!(t.origin.to_string(), "/");
        assert_eq!(t.host_header(), "localhost");
        let t = Target::parse("http://[::1]:9/").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.host_header(), "[::1]:9");
        for bad in [
            "",
            "localhost:80",
            "ftp://x/",
            "http://",
            "http:///x",
            "not a url",
            "http://u:p@host/",
            "http://h:0/",
            "http://h:99999/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn headers() {
        let (n, v) = parse_header("X-Test:  yes ").unwrap();
        assert_eq!((n.as_str(), v.to_str().unwrap()), ("x-test", "yes"));
        let (_, v) = parse_header("Authorization: Bearer a:b").unwrap();
        assert_eq!(v, "Bearer a:b");
        for bad in ["novalue", ": x", "bad name: x", "x: a\nb"] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rates() {
        let table = [
            ("500", 500.0),
            ("500/s", 500.0),
            ("120/m", 2.0),
            ("3600/h", 1.0),
            ("0.5", 0.5),
            ("86400/d", 1.0),
            (" 60 / min ", 1.0),
        ];
        for (raw, want) in table {
            assert_eq!(parse_rate(raw).unwrap(), want, "{raw}");
        }
        for bad in ["0", "-5", "NaN", "inf", "x", "5/y", "", "1e400", "0/s"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }

    /// One grammar: every rate `-r` accepts means the same in a profile and in `--shape`.
    #[test]
    fn rates_mean_the_same_everywhere() {
        for raw in [
            "500",
            "500/s",
            "500/sec",
            "500/second",
            "120/m",
            "120/min",
            "120/minute",
            "3600/h",
            "3600/hour",
            "100/d",
            "100/day",
            "0.5",
            "1e3/m",
        ] {
            let flag = parse_rate(raw).unwrap();
            assert_eq!(crate::profile::parse_rate(raw).unwrap(), flag, "{raw}");
            let shape = crate::profile::parse_shorthand(&format!("{raw}@1h")).unwrap();
            let at = shape.rate_at(Duration::from_secs(60));
            assert!((at - flag).abs() <= 1e-9 * flag, "{raw}: {at} vs {flag}");
        }
    }

    #[test]
    fn framing_headers_are_ours_and_host_overrides_on_http1() {
        for h in ["Content-Length: 5", "transfer-encoding: chunked"] {
            let e = RequestSpec::parse("POST", &[h.to_string()], Some("x")).unwrap_err();
            assert!(e.to_string().contains("from the body"), "{e}");
        }
        let t = Target::parse("http://127.0.0.1:8080/").unwrap();
        let spec = RequestSpec::parse("GET", &["Host: example.test".to_string()], None).unwrap();
        let sent = with_host(&spec.headers, &t);
        assert_eq!(
            sent.get_all(HOST).iter().collect::<Vec<_>>(),
            ["example.test"]
        );
        assert_eq!(with_host(&HeaderMap::new(), &t)[HOST], "127.0.0.1:8080");
    }

    #[test]
    fn statuses_and_bodies() {
        assert_eq!(parse_statuses("429, 503").unwrap(), vec![429, 503]);
        assert!(parse_statuses("").unwrap().is_empty());
        assert!(parse_statuses("42").is_err());
        assert!(parse_statuses("abc").is_err());
        assert_eq!(parse_body("hi").unwrap(), Bytes::from_static(b"hi"));
        assert!(matches!(
            parse_body("@/nonexistent/x"),
            Err(Error::BodyFile { .. })
        ));
        assert!(RequestSpec::parse("G E T", &[], None).is_err());
    }
}
