//! `metronome serve`: the built-in target, used by `metronome demo` and the tests.
//!
//! A small HTTP/1.1 + h2c (prior knowledge) server on one port that behaves like the services
//! load tests are pointed at, with every behaviour injectable:
//!
//! 1. **Arrival.** Every request is counted on arrival (total, and in a per-100 ms timeline).
//!    Its body is read and thrown away as it arrives, up to `max_body` bytes: a longer one
//!    (declared or sent) is answered `413` and, on HTTP/1.1, the connection closed unread.
//! 2. **Rate limit** (optional token bucket, `rate_limit` per second, `rate_burst` tokens): no
//!    token ⇒ `429 Too Many Requests` with `Retry-After` (whole seconds until the next token).
//! 3. **Admission.** At most `workers` requests are processed at once and at most `queue` wait
//!    for a worker; a request arriving when the queue is full is shed at once with `503`.
//! 4. **Service.** A worker holds the request for the service time (fixed, or uniform in a
//!    range); then, if the server is inside a stall window (`at`..`at+duration` from the server's
//!    start), it waits until the window ends: requests arriving during a stall and those being
//!    processed all finish just after it.
//! 5. **Errors.** With probability `error_rate` the answer is `500`, otherwise `200` with the body.
//! 6. **Wasted work.** Once admitted, a request is waited for and processed to the end even if
//!    its client has gone (timed out, closed the connection), as a thread-per-request server
//!    does: that work is counted as `abandoned`. This is what lets a retry storm keep the target
//!    down after the trigger has passed: capacity is spent on requests nobody waits for.
//!
//! Shed answers (`503`) carry `Retry-After` when `retry_after` is set.
//!
//! Everything is bounded: counters are atomics, the timeline is a fixed array (one hour of
//! 100 ms slots; later arrivals land in the last slot), per-path counts keep at most
//! [`MAX_PATHS`] keys of at most [`MAX_PATH_KEY`] bytes, request bodies are discarded as they
//! arrive, the wait queue is a counter, and there is no per-request storage beyond the request
//! itself (hyper bounds heads: 100 headers, ~400 KB on HTTP/1.1, 16 KiB of headers on h2).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

mod grpc;

/// How the target behaves.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// `127.0.0.1:0` for any free port.
    pub addr: SocketAddr,
    pub service_time: ServiceTime,
    /// Requests processed at once: the capacity.
    pub workers: usize,
    /// Requests allowed to wait for a worker; beyond that they are shed with 503.
    pub queue: usize,
    /// Token-bucket refill per second; `None` for no limit.
    pub rate_limit: Option<f64>,
    /// Token-bucket size, at least 1.
    pub rate_burst: f64,
    pub stalls: Vec<Stall>,
    /// `Retry-After` on shed (503) answers, in whole seconds (rounded up); `None`: no header.
    pub retry_after: Option<Duration>,
    /// Probability in [0, 1] that a served request is answered 500.
    pub error_rate: f64,
    pub seed: u64,
    /// Body of a 200 answer.
    pub body: Bytes,
    /// Longest request body accepted, in bytes; longer ones are answered 413. Bodies are
    /// discarded as they arrive, never collected, so this bounds work rather than memory.
    pub max_body: u64,
    /// Longest a client may take to send a request head (counted from when the server starts
    /// waiting for it: the connection's opening, or the previous answer on HTTP/1.1).
    pub header_timeout: Duration,
    /// A connection with no request in hand and no bytes moving for this long is closed; a
    /// request body with no bytes for this long is answered 408.
    pub idle_timeout: Duration,
}

/// Default `header_timeout`: hyper's own default.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest `header_timeout` or `idle_timeout`: a day. Longer is no protection, and the bound
/// keeps hyper's `now + timeout` far from overflowing.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Default `max_body`: 1 MiB.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: ([127, 0, 0, 1], 8080).into(),
            service_time: ServiceTime::Fixed(Duration::ZERO),
            workers: 1024,
            queue: 1024,
            rate_limit: None,
            rate_burst: 1.0,
            stalls: Vec::new(),
            retry_after: None,
            error_rate: 0.0,
            seed: 1,
            body: Bytes::from_static(b"ok\n"),
            max_body: DEFAULT_MAX_BODY,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Longest service time accepted: a worker held longer than an hour is no load-test target, and
/// the bound keeps every `Duration` and `Instant` sum below far from overflow.
pub const MAX_SERVICE_TIME: Duration = Duration::from_secs(3600);
/// Latest end (AT+FOR) of a stall window, counted from the server's start: one year. Beyond it
/// `started + end` could overflow an `Instant`.
pub const MAX_STALL_END: Duration = Duration::from_secs(365 * 86_400);
/// Most `--workers`: permits cost nothing, but a million concurrent requests is surely a typo
/// (and tokio's semaphore panics above `usize::MAX >> 3`).
pub const MAX_WORKERS: usize = 1_000_000;
/// Most `--queue`: nothing is preallocated; the bound only catches typos.
pub const MAX_QUEUE: usize = 1_000_000;
/// Slowest `--rate-limit`: one request per hour. Slower limits would compute `Retry-After`s of
/// centuries (and `1e-300` overflowed a `Duration`).
pub const MIN_RATE_LIMIT: f64 = 1.0 / 3600.0;
/// Fastest `--rate-limit`, and the largest `--burst`: beyond, the bucket never limits anything.
pub const MAX_RATE_LIMIT: f64 = 1e9;
pub const MAX_BURST: f64 = 1e9;

/// Time a worker spends on each request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServiceTime {
    Fixed(Duration),
    /// Uniformly random in `[lo, hi]`.
    Uniform(Duration, Duration),
}

impl ServiceTime {
    /// Refuses a service time above [`MAX_SERVICE_TIME`] or a reversed range.
    fn check(&self) -> Result<(), String> {
        let (lo, hi) = match *self {
            ServiceTime::Fixed(d) => (d, d),
            ServiceTime::Uniform(lo, hi) => (lo, hi),
        };
        if lo > hi {
            return Err("the range's start is above its end (write it low..high)".to_string());
        }
        if hi > MAX_SERVICE_TIME {
            return Err(format!(
                "{} is above the limit of 1h (give a service time such as 5ms or 2ms..8ms)",
                humantime::format_duration(hi)
            ));
        }
        Ok(())
    }

    /// The time for one request; `x` is uniform in [0, 1). Saturating float-to-integer casts,
    /// so no input can panic here (`Duration::mul_f64` can, on huge durations).
    fn pick(&self, x: f64) -> Duration {
        match *self {
            ServiceTime::Fixed(d) => d,
            ServiceTime::Uniform(lo, hi) => {
                let span = hi.saturating_sub(lo).as_nanos() as f64;
                lo.saturating_add(Duration::from_nanos((span * x) as u64))
                    .min(hi)
            }
        }
    }
}

impl FromStr for ServiceTime {
    type Err = String;

    /// `5ms` (fixed) or `2ms..8ms` (uniform).
    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |p: &str| {
            humantime::parse_duration(p.trim()).map_err(|e| {
                format!("'{p}': {e} (expected a duration like 5ms, or a range like 2ms..8ms)")
            })
        };
        let t = match s.split_once("..") {
            Some((lo, hi)) => ServiceTime::Uniform(parse(lo)?, parse(hi)?),
            None => ServiceTime::Fixed(parse(s)?),
        };
        t.check().map_err(|e| format!("'{s}': {e}"))?;
        Ok(t)
    }
}

/// All processing stops from `at` (since the server started) for `duration`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stall {
    pub at: Duration,
    pub duration: Duration,
}

impl Stall {
    /// When the window ends, since the server's start; `None` if that overflows.
    fn end(&self) -> Option<Duration> {
        self.at.checked_add(self.duration)
    }

    /// Refuses an empty window, or one ending after [`MAX_STALL_END`].
    fn check(&self) -> Result<(), String> {
        if self.duration.is_zero() {
            return Err("a stall must last longer than zero (e.g. 5s+2s)".to_string());
        }
        match self.end() {
            Some(end) if end <= MAX_STALL_END => Ok(()),
            _ => Err("the stall would end more than a year after the start (give AT+FOR within 365 days)".to_string()),
        }
    }
}

impl FromStr for Stall {
    type Err = String;

    /// `5s+2s`: from t=5 s, for 2 s.
    fn from_str(s: &str) -> Result<Self, String> {
        let hint = "expected AT+FOR, e.g. 5s+2s (stall from t=5s for 2s)";
        let (at, dur) = s.split_once('+').ok_or_else(|| format!("'{s}': {hint}"))?;
        let parse = |p: &str| {
            humantime::parse_duration(p.trim()).map_err(|e| format!("'{s}': {e} ({hint})"))
        };
        let stall = Stall {
            at: parse(at)?,
            duration: parse(dur)?,
        };
        stall.check().map_err(|e| format!("'{s}': {e}"))?;
        Ok(stall)
    }
}

/// A byte count for `--max-body`: `1048576`, `64KiB`, `1MiB`, `2G`… (K, M, G are 1024-based,
/// with or without `iB`/`B`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let hint = "expected a byte count such as 1048576, 64KiB or 1MiB";
    let n: u64 = num.parse().map_err(|_| format!("'{s}': {hint}"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("'{s}': unknown unit ({hint})")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{s}': too large ({hint})"))
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {cause} (pick another port with --addr, or 127.0.0.1:0 for any free port)")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("invalid serve setting: {0}")]
    Invalid(String),
}

/// What the server saw, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServeStats {
    pub connections: u64,
    pub received: u64,
    /// Answered 200 (gRPC: OK).
    pub served: u64,
    /// Answered 503 (gRPC: UNAVAILABLE) because the queue was full.
    pub shed: u64,
    /// Answered 429 (gRPC: RESOURCE_EXHAUSTED) by the rate limit.
    pub limited: u64,
    /// Answered 500 (gRPC: INTERNAL) by the injected error rate.
    pub errors: u64,
    /// Answered 413 (gRPC: RESOURCE_EXHAUSTED): the request body was longer than `max_body`.
    pub too_large: u64,
    /// Admitted requests processed to the end after their client had gone (wasted work).
    pub abandoned: u64,
    /// Times `accept` failed for want of resources (out of file descriptors, kernel memory or
    /// buffers) and the accept loop paused for [`ACCEPT_BACKOFF`].
    pub accept_backoffs: u64,
    /// Clients too slow: connections closed for want of a complete request head within
    /// `header_timeout` or of any traffic within `idle_timeout`, and request bodies stalled for
    /// `idle_timeout` (answered 408).
    pub timed_out: u64,
    /// Calls to the gRPC reflection service (not counted in `received`: they are the client
    /// learning the schema, not load).
    pub reflection: u64,
}

impl ServeStats {
    /// One line for humans; the accept back-offs only when there were some. Each outcome names
    /// its answer in both protocols (HTTP status / gRPC code): the counters are shared.
    pub fn summary_line(&self) -> String {
        let mut line = format!(
            "received {}, served {}, shed {} (503 / UNAVAILABLE), limited {} (429 / RESOURCE_EXHAUSTED), errors {} (500 / INTERNAL), too large {} (413 / RESOURCE_EXHAUSTED), abandoned {} (processed after the client left), connections {} ({} closed slow or idle)",
            self.received, self.served, self.shed, self.limited, self.errors, self.too_large, self.abandoned, self.connections, self.timed_out
        );
        if self.accept_backoffs > 0 {
            line += &format!(
                ", accept backoffs {} (out of file descriptors or memory)",
                self.accept_backoffs
            );
        }
        line
    }
}

/// 100 ms slots for one hour.
const TIMELINE_SLOTS: usize = 36_000;
const SLOT: Duration = Duration::from_millis(100);

struct Counters {
    connections: AtomicU64,
    received: AtomicU64,
    served: AtomicU64,
    shed: AtomicU64,
    limited: AtomicU64,
    errors: AtomicU64,
    too_large: AtomicU64,
    abandoned: AtomicU64,
    accept_backoffs: AtomicU64,
    timed_out: AtomicU64,
    reflection: AtomicU64,
    timeline: Box<[AtomicU64]>,
    /// Requests per path, for at most [`MAX_PATHS`] distinct paths (the rest under `(other)`):
    /// bounded whatever the clients send.
    paths: Mutex<Vec<(String, u64)>>,
}

/// Distinct paths counted one by one; beyond, they share `(other)`.
pub const MAX_PATHS: usize = 32;
/// Bytes of a path (and query) kept as its key: a request head may carry a URI of hundreds of
/// kilobytes, and 32 of those would be kept for the server's lifetime. Longer paths are counted
/// under their first `MAX_PATH_KEY` bytes.
pub const MAX_PATH_KEY: usize = 256;

impl Counters {
    fn new() -> Self {
        Counters {
            connections: AtomicU64::new(0),
            received: AtomicU64::new(0),
            served: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            too_large: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            accept_backoffs: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            reflection: AtomicU64::new(0),
            timeline: (0..TIMELINE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            paths: Mutex::new(Vec::new()),
        }
    }

    fn count_path(&self, path: &str) {
        let mut end = path.len().min(MAX_PATH_KEY);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        let path = &path[..end];
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = paths.iter_mut().find(|(p, _)| p == path) {
            entry.1 += 1;
            return;
        }
        let key = if paths.len() < MAX_PATHS {
            path
        } else {
            "(other)"
        };
        match paths.iter_mut().find(|(p, _)| p == key) {
            Some(entry) => entry.1 += 1,
            None => paths.push((key.to_string(), 1)),
        }
    }

    fn snapshot(&self) -> ServeStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServeStats {
            connections: l(&self.connections),
            received: l(&self.received),
            served: l(&self.served),
            shed: l(&self.shed),
            limited: l(&self.limited),
            errors: l(&self.errors),
            too_large: l(&self.too_large),
            abandoned: l(&self.abandoned),
            accept_backoffs: l(&self.accept_backoffs),
            timed_out: l(&self.timed_out),
            reflection: l(&self.reflection),
        }
    }
}

/// A token bucket with fractional tokens.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Takes a token, or returns how long until one is available.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            // `try_`: a tiny rate would overflow a `Duration` and panic (validation also keeps
            // the rate at or above `MIN_RATE_LIMIT`).
            let secs = (1.0 - self.tokens) / self.rate;
            Err(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
        }
    }
}

/// splitmix64: tiny, seedable, good enough for service-time jitter and error injection.
struct Rng(AtomicU64);

impl Rng {
    /// A uniform number in [0, 1).
    fn next_f64(&self) -> f64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct State {
    config: ServeConfig,
    started: Instant,
    counters: Counters,
    workers: Arc<Semaphore>,
    waiting: AtomicUsize,
    bucket: Option<Mutex<Bucket>>,
    rng: Rng,
    /// The gRPC demo service's schema and pre-encoded answers.
    demo: crate::grpc::demo::Demo,
}

type Reply = Response<Out>;

/// What became of a request at admission and service, whatever its protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// No token in the rate limit's bucket; the next one comes after this long.
    Limited(Duration),
    /// The wait queue was full.
    Shed,
    /// Processed, and answered with the injected error.
    Failed,
    Served,
    /// The server is shutting down.
    Lost,
}

/// A response body: whole (HTTP), or frames sent as they are ready (gRPC: messages, then the
/// trailers with the status).
pub enum Out {
    Whole(Full<Bytes>),
    Frames(tokio::sync::mpsc::Receiver<hyper::body::Frame<Bytes>>),
}

impl Body for Out {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Out::Whole(b) => Pin::new(b).poll_frame(cx),
            Out::Frames(rx) => rx.poll_recv(cx).map(|f| f.map(Ok)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Out::Whole(b) => b.is_end_stream(),
            Out::Frames(_) => false,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            Out::Whole(b) => b.size_hint(),
            Out::Frames(_) => hyper::body::SizeHint::default(),
        }
    }
}

fn reply(status: StatusCode, body: Bytes) -> Reply {
    let mut r = Response::new(Out::Whole(Full::new(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    r
}

impl State {
    async fn handle(self: &Arc<Self>, req: Request<Incoming>) -> Reply {
        if grpc::is_grpc(&req) {
            return self.handle_grpc(req).await;
        }
        let arrived = self.arrival(&req);
        let c = &self.counters;
        let http1 = req.version() < Version::HTTP_2;
        let drained = drain(
            req.into_body(),
            self.config.max_body,
            self.config.idle_timeout,
        )
        .await;
        if drained != Drained::Done {
            let mut r = if drained == Drained::TooLarge {
                c.too_large.fetch_add(1, Ordering::Relaxed);
                reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Bytes::from(format!(
                        "request body above {} bytes\n",
                        self.config.max_body
                    )),
                )
            } else {
                c.timed_out.fetch_add(1, Ordering::Relaxed);
                reply(
                    StatusCode::REQUEST_TIMEOUT,
                    Bytes::from_static(b"request body stalled\n"),
                )
            };
            // The rest of the body is still on the wire: reading it would be the very work the
            // cap refuses, and the connection cannot be reused without it. (On h2 hyper resets
            // the stream instead; `Connection` is not an h2 header.)
            if http1 {
                r.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            return r;
        }

        self.http_reply(self.admit(arrived).await)
    }

    /// Step 1: counts a request on arrival (total, timeline slot, path); returns when.
    fn arrival<B>(&self, req: &Request<B>) -> Instant {
        let arrived = Instant::now();
        let c = &self.counters;
        c.received.fetch_add(1, Ordering::Relaxed);
        let slot = usize::try_from(
            arrived.saturating_duration_since(self.started).as_millis() / SLOT.as_millis(),
        )
        .unwrap_or(usize::MAX);
        c.timeline[slot.min(TIMELINE_SLOTS - 1)].fetch_add(1, Ordering::Relaxed);
        c.count_path(req.uri().path_and_query().map_or("/", |p| p.as_str()));
        arrived
    }

    /// The HTTP answer to an admission verdict.
    fn http_reply(&self, verdict: Verdict) -> Reply {
        match verdict {
            Verdict::Limited(wait) => {
                let mut r = reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    Bytes::from_static(b"rate limited\n"),
                );
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                r.headers_mut()
                    .insert(hyper::header::RETRY_AFTER, secs.into());
                r
            }
            Verdict::Shed => {
                let mut r = reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Bytes::from_static(b"overloaded\n"),
                );
                if let Some(after) = self.config.retry_after {
                    let secs = after.as_secs_f64().ceil().max(1.0) as u64;
                    r.headers_mut()
                        .insert(hyper::header::RETRY_AFTER, secs.into());
                }
                r
            }
            Verdict::Failed => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from_static(b"injected error\n"),
            ),
            Verdict::Served => reply(StatusCode::OK, self.config.body.clone()),
            Verdict::Lost => reply(StatusCode::SERVICE_UNAVAILABLE, Bytes::new()),
        }
    }

    /// Steps 2 to 5 for one request, HTTP or gRPC alike: the rate limit, admission (or
    /// shedding), the service time and any stall, and the injected errors. Counts the verdict.
    async fn admit(self: &Arc<Self>, arrived: Instant) -> Verdict {
        let c = &self.counters;
        if let Some(bucket) = &self.bucket {
            let verdict = bucket
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(arrived);
            if let Err(wait) = verdict {
                c.limited.fetch_add(1, Ordering::Relaxed);
                return Verdict::Limited(wait);
            }
        }

        let permit = match self.workers.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.config.queue {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    c.shed.fetch_add(1, Ordering::Relaxed);
                    return Verdict::Shed;
                }
                None
            }
        };
        if permit.is_some() && !self.has_work() {
            return self.answer(permit);
        }
        // Admitted: the wait and the work go on in their own task, so a client that gives up
        // (closing its connection or resetting its stream) does not free the capacity it took.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let state = self.clone();
        tokio::spawn(async move {
            let permit = match permit {
                Some(p) => Some(p),
                None => {
                    let p = state.workers.clone().acquire_owned().await.ok();
                    state.waiting.fetch_sub(1, Ordering::AcqRel);
                    p
                }
            };
            if permit.is_none() {
                let _ = tx.send(Verdict::Lost);
                return;
            }
            let service = match state.config.service_time {
                ServiceTime::Fixed(d) => d,
                t @ ServiceTime::Uniform(..) => t.pick(state.rng.next_f64()),
            };
            if !service.is_zero() {
                tokio::time::sleep(service).await;
            }
            while let Some(end) = state.stall_end(Instant::now()) {
                tokio::time::sleep_until(end.into()).await;
            }
            let answer = state.answer(permit);
            if tx.send(answer).is_err() {
                state.counters.abandoned.fetch_add(1, Ordering::Relaxed);
            }
        });
        rx.await.unwrap_or(Verdict::Lost)
    }

    /// Whether an admitted request takes any time (a service time or a stall window).
    fn has_work(&self) -> bool {
        self.config.service_time != ServiceTime::Fixed(Duration::ZERO)
            || !self.config.stalls.is_empty()
    }

    /// The verdict on a processed request, releasing its worker first.
    fn answer(&self, permit: Option<tokio::sync::OwnedSemaphorePermit>) -> Verdict {
        drop(permit);
        let c = &self.counters;
        if self.config.error_rate > 0.0 && self.rng.next_f64() < self.config.error_rate {
            c.errors.fetch_add(1, Ordering::Relaxed);
            return Verdict::Failed;
        }
        c.served.fetch_add(1, Ordering::Relaxed);
        Verdict::Served
    }

    /// The end of the stall window `now` falls in, if any. Checked sums: a window that cannot
    /// be represented (validation refuses those) is ignored rather than panicking.
    fn stall_end(&self, now: Instant) -> Option<Instant> {
        let t = now.saturating_duration_since(self.started);
        self.config
            .stalls
            .iter()
            .filter_map(|s| s.end().map(|end| (s.at, end)))
            .find(|&(at, end)| t >= at && t < end)
            .and_then(|(_, end)| self.started.checked_add(end))
    }
}

/// A running target. Dropping it without [`Server::shutdown`] leaves the accept loop running
/// until the runtime ends.
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    stop: CancellationToken,
    accept: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Validates the configuration, binds, and starts serving on the current tokio runtime.
    pub async fn start(config: ServeConfig) -> Result<Server, ServeError> {
        validate(&config)?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|cause| ServeError::Bind {
                addr: config.addr,
                cause,
            })?;
        let addr = listener.local_addr().map_err(|cause| ServeError::Bind {
            addr: config.addr,
            cause,
        })?;
        let started = Instant::now();
        let bucket = config.rate_limit.map(|rate| {
            Mutex::new(Bucket {
                rate,
                burst: config.rate_burst,
                tokens: config.rate_burst,
                last: started,
            })
        });
        let state = Arc::new(State {
            workers: Arc::new(Semaphore::new(config.workers)),
            waiting: AtomicUsize::new(0),
            rng: Rng(AtomicU64::new(config.seed)),
            demo: crate::grpc::demo::Demo::new().map_err(ServeError::Invalid)?,
            bucket,
            counters: Counters::new(),
            started,
            config,
        });
        let stop = CancellationToken::new();
        let accept = tokio::spawn(accept_loop(listener, state.clone(), stop.clone()));
        Ok(Server {
            addr,
            state,
            stop,
            accept,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> ServeStats {
        self.state.counters.snapshot()
    }

    /// Requests received per 100 ms slot since the start, trimmed after the last non-zero slot.
    pub fn received_timeline(&self) -> Vec<u64> {
        let t = &self.state.counters.timeline;
        let last = t.iter().rposition(|a| a.load(Ordering::Relaxed) > 0);
        match last {
            Some(i) => t[..=i].iter().map(|a| a.load(Ordering::Relaxed)).collect(),
            None => Vec::new(),
        }
    }

    /// Requests received per path and query, in first-seen order (at most [`MAX_PATHS`] entries
    /// plus `(other)`).
    pub fn received_by_path(&self) -> Vec<(String, u64)> {
        self.state
            .counters
            .paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn started_at(&self) -> Instant {
        self.state.started
    }

    /// Stops accepting, closes every connection, and returns the final counts.
    pub async fn shutdown(self) -> ServeStats {
        self.stop.cancel();
        let _ = self.accept.await;
        self.state.counters.snapshot()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Drained {
    /// Read to its end (or the client broke off: the connection is gone either way).
    Done,
    /// Longer than the cap, declared or sent; the rest is left unread.
    TooLarge,
    /// No bytes for the idle timeout: a body that stops would hold its connection forever.
    Stalled,
}

/// Reads the request body frame by frame, keeping none of it (its content is ignored), so that
/// the connection stays usable; stops at `max` bytes. A declared `Content-Length` above `max`
/// is refused before reading anything; a body that stops for `idle` gives up.
async fn drain(mut body: Incoming, max: u64, idle: Duration) -> Drained {
    if body.size_hint().lower() > max {
        return Drained::TooLarge;
    }
    let mut seen: u64 = 0;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Drained::Stalled,
            Ok(None) => return Drained::Done,
            Ok(Some(frame)) => frame,
        };
        let Ok(frame) = frame else {
            return Drained::Done;
        };
        if let Some(data) = frame.data_ref() {
            seen = seen.saturating_add(data.len() as u64);
            if seen > max {
                return Drained::TooLarge;
            }
        }
    }
}

/// Refuses every setting that could panic, hang or exhaust the server, in one line each: what,
/// the limit, how to fix. The CLI parses the same limits for `--service-time` and `--stall`;
/// checking again here covers configurations built in code.
fn validate(c: &ServeConfig) -> Result<(), ServeError> {
    let bad = |m: String| Err(ServeError::Invalid(m));
    if !(1..=MAX_WORKERS).contains(&c.workers) {
        return bad(format!(
            "--workers {} is out of range: give 1 to {MAX_WORKERS}",
            c.workers
        ));
    }
    if c.queue > MAX_QUEUE {
        return bad(format!(
            "--queue {} is out of range: give 0 to {MAX_QUEUE}",
            c.queue
        ));
    }
    if let Some(r) = c.rate_limit {
        if !(MIN_RATE_LIMIT..=MAX_RATE_LIMIT).contains(&r) {
            return bad(format!(
                "--rate-limit {r:?}/s is out of range: give 1/h to {MAX_RATE_LIMIT:.0}/s (e.g. 500, 30000/m), or leave it out for no limit"
            ));
        }
    }
    if !(1.0..=MAX_BURST).contains(&c.rate_burst) {
        return bad(format!(
            "--burst {:?} is out of range: give 1 to {MAX_BURST:.0} tokens",
            c.rate_burst
        ));
    }
    if !(0.0..=1.0).contains(&c.error_rate) {
        return bad(format!(
            "--error-rate {:?} is out of range: give a share from 0.0 to 1.0 (0.01 for 1 %)",
            c.error_rate
        ));
    }
    for (flag, t) in [
        ("--header-timeout", c.header_timeout),
        ("--idle-timeout", c.idle_timeout),
    ] {
        if t.is_zero() || t > MAX_TIMEOUT {
            return bad(format!(
                "{flag} {} is out of range: give above 0 and at most 1day (e.g. 30s)",
                humantime::format_duration(t)
            ));
        }
    }
    if let Err(e) = c.service_time.check() {
        return bad(format!("--service-time: {e}"));
    }
    for s in &c.stalls {
        if let Err(e) = s.check() {
            return bad(format!("--stall: {e}"));
        }
    }
    Ok(())
}

/// How long a closing connection (idle or slow) may take to say goodbye (an h2 GOAWAY) before
/// its socket is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// One connection, HTTP/1.1 or h2c, until it ends, the server stops, or its client is too slow.
///
/// hyper closes an HTTP/1.1 connection whose request head takes longer than `header_timeout`
/// (its timer runs whenever hyper waits for a head, so it also ends idle keep-alive
/// connections). hyper has no such timer before it knows the protocol (it waits for the h2
/// preface's 24 bytes), nor for idle h2 connections, so a watchdog here closes the connection
/// when it has started no request within `header_timeout` of opening, or when it has no
/// request in hand and has moved no bytes for `idle_timeout`. The watchdog sleeps on one timer,
/// re-armed only when it fires (at most once an idle period); the I/O wrapper only stores a
/// timestamp.
async fn serve_connection(tcp: tokio::net::TcpStream, state: Arc<State>, stop: CancellationToken) {
    let accepted = Instant::now();
    let activity = Arc::new(Activity::new(accepted));
    let io = TokioIo::new(Watched {
        inner: tcp,
        activity: activity.clone(),
    });
    let (header_timeout, idle_timeout) = (state.config.header_timeout, state.config.idle_timeout);
    let counters_state = state.clone();
    let svc_activity = activity.clone();
    let svc = service_fn(move |req| {
        let state = state.clone();
        let busy = svc_activity.begin();
        async move {
            let r = state.handle(req).await;
            drop(busy);
            Ok::<_, Infallible>(r)
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder.http2().max_concurrent_streams(10_000);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let timed_out = || {
        counters_state
            .counters
            .timed_out
            .fetch_add(1, Ordering::Relaxed)
    };
    loop {
        // Wake at least once an idle period: a request may have started and ended since the
        // deadline was computed, moving it earlier (idle after a first request, instead of the
        // header timeout counted from the opening). Between wake-ups nothing but a timestamp
        // is written per read or write.
        let deadline = activity.deadline(accepted, header_timeout, idle_timeout);
        let wake = deadline.min(Instant::now().checked_add(idle_timeout).unwrap_or(deadline));
        tokio::select! {
            ended = conn.as_mut() => {
                let hyper_timeout = ended.as_ref().err().and_then(|e| e.downcast_ref::<hyper::Error>()).is_some_and(hyper::Error::is_timeout);
                if hyper_timeout {
                    timed_out();
                }
                return;
            }
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(wake.into()) => {
                if activity.deadline(accepted, header_timeout, idle_timeout) > Instant::now() {
                    continue; // bytes moved or a request started meanwhile
                }
                timed_out();
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = tokio::time::sleep(CLOSE_GRACE) => {}
                    _ = stop.cancelled() => {}
                }
                return;
            }
        }
    }
}

/// What a connection's watchdog looks at, updated by the I/O wrapper and the service.
struct Activity {
    /// When bytes last moved either way, in ms since `origin`.
    last_io_ms: AtomicU64,
    origin: Instant,
    /// Requests being handled (h2 may have many).
    in_flight: AtomicUsize,
    /// Requests started on this connection.
    started: AtomicU64,
}

/// Marks a request in hand for as long as it lives (dropped also when hyper drops the handler).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

impl Activity {
    fn new(origin: Instant) -> Self {
        Activity {
            last_io_ms: AtomicU64::new(0),
            origin,
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// When the connection may be closed, as things stand. Timeouts are validated (at most a
    /// day), and the sums saturate anyway.
    fn deadline(&self, accepted: Instant, header: Duration, idle: Duration) -> Instant {
        let after = |t: Instant, d: Duration| t.checked_add(d).unwrap_or(t);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // Busy (a long service time, a stall): look again one idle period later.
            return after(Instant::now(), idle);
        }
        if self.started.load(Ordering::Relaxed) == 0 {
            return after(accepted, header);
        }
        let last = Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
        after(after(self.origin, last), idle)
    }
}

/// The TCP stream, noting in [`Activity`] every read or write that moves bytes.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Pause after `accept` fails for want of resources: short enough that a freed descriptor is
/// used within a blink, long enough that the retries cost nothing (50 a second).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Errors that concern only the connection being accepted, after which the next `accept` may
/// well succeed at once.
fn accept_error_is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            // The one connection went away before it was accepted: try the next.
            Err(e) if accept_error_is_per_connection(&e) => continue,
            // EMFILE, ENFILE, ENOBUFS, ENOMEM (or anything unknown): the listener stays
            // readable, so retrying at once spins a core until resources come back (measured:
            // 1.08 s of CPU per second with the fd limit reached). Pause instead, as Go's net/http and hyper's
            // old AddrIncoming do, and count it.
            Err(_) => {
                state
                    .counters
                    .accept_backoffs
                    .fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        state.counters.connections.fetch_add(1, Ordering::Relaxed);
        conns.spawn(serve_connection(tcp, state.clone(), stop.clone()));
    }
    // Dropping the set aborts every connection task, closing its socket.
    conns.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_summary_names_each_outcome_in_http_and_grpc() {
        let line = ServeStats {
            shed: 3,
            limited: 2,
            errors: 1,
            ..ServeStats::default()
        }
        .summary_line();
        for part in [
            "shed 3 (503 / UNAVAILABLE)",
            "limited 2 (429 / RESOURCE_EXHAUSTED)",
            "errors 1 (500 / INTERNAL)",
            "too large 0 (413 / RESOURCE_EXHAUSTED)",
        ] {
            assert!(line.contains(part), "{part}: {line}");
        }
    }

    #[test]
    fn parses_service_times_and_stalls() {
        let ms = Duration::from_millis;
        assert_eq!("5ms".parse(), Ok(ServiceTime::Fixed(ms(5))));
        assert_eq!("2ms..8ms".parse(), Ok(ServiceTime::Uniform(ms(2), ms(8))));
        assert_eq!("0s".parse(), Ok(ServiceTime::Fixed(ms(0))));
        for bad in [
            "",
            "5",
            "8ms..2ms",
            "x..y",
            "5 parsecs",
            "2h",
            "0s..18446744073709551615s",
        ] {
            assert!(bad.parse::<ServiceTime>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "5s+2s".parse(),
            Ok(Stall {
                at: ms(5000),
                duration: ms(2000)
            })
        );
        for bad in [
            "5s",
            "5s+0s",
            "+2s",
            "a+b",
            "0s+18446744073709551615s",
            "366d+1s",
        ] {
            assert!(bad.parse::<Stall>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        for bad in ["", "MiB", "-1", "1.5M", "1TiB", "18446744073709551615G"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn invalid_settings_are_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cases = [
            ServeConfig {
                workers: 0,
                ..Default::default()
            },
            ServeConfig {
                rate_limit: Some(0.0),
                ..Default::default()
            },
            ServeConfig {
                rate_burst: 0.5,
                ..Default::default()
            },
            ServeConfig {
                error_rate: 1.5,
                ..Default::default()
            },
            ServeConfig {
                error_rate: f64::NAN,
                ..Default::default()
            },
            ServeConfig {
                workers: usize::MAX,
                ..Default::default()
            },
            ServeConfig {
                queue: usize::MAX,
                ..Default::default()
            },
            ServeConfig {
                rate_limit: Some(1e-300),
                ..Default::default()
            },
            ServeConfig {
                rate_burst: f64::INFINITY,
                ..Default::default()
            },
            ServeConfig {
                service_time: ServiceTime::Uniform(Duration::ZERO, Duration::MAX),
                ..Default::default()
            },
            ServeConfig {
                header_timeout: Duration::ZERO,
                ..Default::default()
            },
            ServeConfig {
                idle_timeout: Duration::MAX,
                ..Default::default()
            },
            // Built in code, past the parser: `at + duration` overflows.
            ServeConfig {
                stalls: vec![Stall {
                    at: Duration::from_secs(1),
                    duration: Duration::MAX,
                }],
                ..Default::default()
            },
        ];
        for c in cases {
            let r = rt.block_on(Server::start(ServeConfig {
                addr: ([127, 0, 0, 1], 0).into(),
                ..c
            }));
            assert!(matches!(r, Err(ServeError::Invalid(_))));
        }
    }

    async fn start(config: ServeConfig) -> Server {
        Server::start(ServeConfig {
            addr: ([127, 0, 0, 1], 0).into(),
            ..config
        })
        .await
        .unwrap()
    }

    /// One raw HTTP/1.1 request on a fresh connection; returns the response head and body.
    async fn get(addr: SocketAddr) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_200_and_counts() {
        let server = start(ServeConfig::default()).await;
        let r = get(server.local_addr()).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.ends_with("ok\n"));
        let stats = server.shutdown().await;
        assert_eq!((stats.received, stats.served, stats.connections), (1, 1, 1));
    }

    #[tokio::test]
    async fn full_queue_sheds_with_503() {
        let server = start(ServeConfig {
            workers: 1,
            queue: 0,
            service_time: ServiceTime::Fixed(Duration::from_millis(300)),
            ..Default::default()
        })
        .await;
        let addr = server.local_addr();
        let slow = tokio::spawn(get(addr));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let shed = get(addr).await;
        assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
        assert!(slow.await.unwrap().starts_with("HTTP/1.1 200"));
        let stats = server.shutdown().await;
        assert_eq!((stats.served, stats.shed), (1, 1));
    }

    #[tokio::test]
    async fn rate_limit_answers_429_with_retry_after() {
        let server = start(ServeConfig {
            rate_limit: Some(1.0),
            rate_burst: 1.0,
            ..Default::default()
        })
        .await;
        let addr = server.local_addr();
        assert!(get(addr).await.starts_with("HTTP/1.1 200"));
        let limited = get(addr).await;
        assert!(limited.starts_with("HTTP/1.1 429"), "{limited}");
        assert!(
            limited.to_ascii_lowercase().contains("retry-after: 1"),
            "{limited}"
        );
        let stats = server.shutdown().await;
        assert_eq!((stats.served, stats.limited), (1, 1));
    }

    #[tokio::test]
    async fn stall_holds_answers_until_the_window_ends() {
        let server = start(ServeConfig {
            stalls: vec![Stall {
                at: Duration::ZERO,
                duration: Duration::from_millis(400),
            }],
            ..Default::default()
        })
        .await;
        let r = get(server.local_addr()).await;
        assert!(r.starts_with("HTTP/1.1 200"));
        let waited = server.started_at().elapsed();
        assert!(waited >= Duration::from_millis(400), "{waited:?}");
        // After the stall, answers are immediate again.
        let t = Instant::now();
        get(server.local_addr()).await;
        assert!(t.elapsed() < Duration::from_millis(300));
        let timeline = server.received_timeline();
        assert_eq!(timeline.iter().sum::<u64>(), 2);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn injected_errors_are_500() {
        let server = start(ServeConfig {
            error_rate: 1.0,
            ..Default::default()
        })
        .await;
        assert!(get(server.local_addr()).await.starts_with("HTTP/1.1 500"));
        assert_eq!(server.shutdown().await.errors, 1);
    }

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let huge = ServiceTime::Uniform(Duration::ZERO, Duration::MAX);
        for x in [0.0, 0.5, 0.999_999_999] {
            assert!(huge.pick(x) <= Duration::MAX);
        }
        let mut bucket = Bucket {
            rate: 1e-300,
            burst: 1.0,
            tokens: 0.0,
            last: Instant::now(),
        };
        assert_eq!(bucket.take(Instant::now()), Err(Duration::MAX));
    }

    #[test]
    fn path_counts_stay_bounded_whatever_the_paths() {
        let c = Counters::new();
        let long = "x".repeat(100_000);
        for i in 0..10_000 {
            c.count_path(&format!("/{i}/{long}"));
            c.count_path(&format!("/é{i}"));
        }
        let paths = c.paths.lock().unwrap();
        assert_eq!(paths.len(), MAX_PATHS + 1);
        assert!(paths.iter().all(|(p, _)| p.len() <= MAX_PATH_KEY));
        assert_eq!(paths.iter().map(|(_, n)| n).sum::<u64>(), 20_000);
        assert_eq!(paths.last().unwrap().0, "(other)");
    }

    #[test]
    fn rng_is_uniform_enough() {
        let rng = Rng(AtomicU64::new(7));
        let n = 100_000;
        let mean = (0..n).map(|_| rng.next_f64()).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
    }
}
