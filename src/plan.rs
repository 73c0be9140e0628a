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
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => {
                return Err(bad(&format!(
                    "unsupported scheme '{other}', only http and https are supported"
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
        let origin: Uri = path
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let absolute = Uri::builder()
            .scheme(uri.scheme_str().unwrap_or("http"))
            .authority(authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Target {
            url: url.to_string(),
            tls,
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

/// A literal body, or `@path` to read it from a file.
pub fn parse_body(raw: &str) -> Result<Bytes, Error> {
    match raw.strip_prefix('@') {
        Some(path) => std::fs::read(path)
            .map(Bytes::from)
            .map_err(|cause| Error::BodyFile {
                path: PathBuf::from(path),
                cause,
            }),
        None => Ok(Bytes::copy_from_slice(raw.as_bytes())),
    }
}

/// `500`, `500/s`, `30000/m` or `100/h` → requests per second.
pub fn parse_rate(raw: &str) -> Result<f64, Error> {
    let bad = || {
        Error::invalid(
            "--rate",
            raw,
            "expected requests per second as a number above zero, optionally with /s, /m or /h (e.g. 500, 500/s, 1200/m)",
        )
    };
    let (num, per) = match raw.split_once('/') {
        Some((n, unit)) => {
            let secs = match unit.trim() {
                "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" | "hour" => 3600.0,
                _ => return Err(bad()),
            };
            (n, secs)
        }
        None => (raw, 1.0),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    let rate = n / per;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(bad());
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
    /// Send-lag p99 above this marks the run untrustworthy.
    pub max_send_lag: Duration,
    /// Print a progress line per second on stderr.
    pub progress: bool,
    /// Shortest time between two pacer wake-ups (zero: wake at every due instant).
    pub pacer_quantum: Duration,
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
                return Err(Error::invalid("--max-connections", "0", "must be at least 1"));
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
        if l.connections > 100_000 {
            return Err(Error::invalid(
                "--connections",
                l.connections.to_string(),
                "at most 100000 connections",
            ));
        }
        if l.timeout.is_zero() {
            return Err(Error::invalid(
                "--timeout",
                "0s",
                "must be above zero (e.g. --timeout 10s)",
            ));
        }
        if l.connect_timeout.is_zero() {
            return Err(Error::invalid(
                "--connect-timeout",
                "0s",
                "must be above zero (e.g. --connect-timeout 3s)",
            ));
        }
        if !self.target.tls && (self.tls.insecure || self.tls.ca_file.is_some()) {
            return Err(Error::invalid(
                "--insecure/--cacert",
                self.target.url.clone(),
                "TLS options need an https:// URL; drop the flag or use https",
            ));
        }
        if let Some(path) = &self.tls.ca_file {
            check_readable(path)?;
        }
        Ok(())
    }
}

fn check_readable(path: &Path) -> Result<(), Error> {
    std::fs::metadata(path)
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
        ];
        for (raw, want) in table {
            assert_eq!(parse_rate(raw).unwrap(), want, "{raw}");
        }
        for bad in ["0", "-5", "NaN", "inf", "x", "5/d", "", "1e400"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
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
