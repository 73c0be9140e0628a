//! HTTP/1.1 and HTTP/2 over connections we own (`hyper::client::conn`), opened on demand.
//!
//! HTTP/1.1: one request at a time per connection (hyper has no pipelining); idle connections wait
//! in a LIFO stack, and a request that finds none opens a new one. HTTP/2: each connection carries
//! up to `--max-streams` requests; a request that finds every connection full opens a new one
//! (which later requests may share while it is still being set up). Either way at most
//! `--max-connections` are open at once, enforced by the lease semaphore: at that cap a request
//! waits for a free connection, which is send lag. `-c` connections are opened before the clock
//! starts so that set-up is not charged to the first requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OnceCell, Semaphore};
use tokio_rustls::TlsConnector;

use super::peer::{PeerStreams, Tap};
use super::{Classifier, Client, Lease};
use crate::error::Error;
use crate::plan::{with_host, Plan, Protocol, RequestSpec, Target};
use crate::record::{lock, Class, Completion, ConnStats};
use crate::retry::parse_retry_after;

type Body = super::grpc::ReqBody;

/// Everything needed to connect and build a request, shared read-only.
struct Origin {
    addr: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    protocol: Protocol,
    connect_timeout: Duration,
    /// `--timeout`, for the words of a timeout the transport keeps itself.
    timeout: Duration,
    /// The request mix, indexed by [`crate::schedule::Ticket::request`]; never empty.
    requests: Vec<Prepared>,
    classifier: Classifier,
    /// Set for gRPC targets: answers are read as gRPC calls.
    grpc: Option<super::grpc::Wire>,
    stats: Arc<ConnStats>,
    /// HTTP/2: what the server's first SETTINGS frame on each connection says about its stream
    /// limit (read by a [`Tap`] under hyper).
    peer: Arc<PeerStreams>,
}

/// One request of the mix, with its URI already in the form the protocol wants (origin form and
/// a Host header on HTTP/1.1, absolute form on HTTP/2), so building it per send is clones only.
struct Prepared {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    /// gRPC client streaming: the body's messages, sent one frame each so that the wait of each
    /// on HTTP/2 flow control can be timed.
    messages: Option<Arc<[Bytes]>>,
}

impl Prepared {
    fn new(spec: &RequestSpec, target: &Target, protocol: Protocol) -> Prepared {
        let (uri, headers) = match protocol {
            Protocol::Http1 => (
                spec.path.clone().unwrap_or_else(|| target.origin.clone()),
                with_host(&spec.headers, target),
            ),
            Protocol::Http2 => (
                spec.path
                    .as_ref()
                    .and_then(|p| target.absolute_with(p))
                    .unwrap_or_else(|| target.absolute.clone()),
                spec.headers.clone(),
            ),
        };
        Prepared {
            method: spec.method.clone(),
            uri,
            headers,
            body: spec.body.clone(),
            messages: None,
        }
    }
}

/// Why a connection could not be made, classified: the target's fault or our own host's.
#[derive(Clone, Debug)]
struct ConnectFailure {
    class: Class,
    message: String,
}

impl ConnectFailure {
    fn target(message: impl Into<String>) -> Self {
        ConnectFailure {
            class: Class::ConnectError,
            message: message.into(),
        }
    }

    fn io(e: &std::io::Error) -> Self {
        match local_limit(e) {
            Some(message) => ConnectFailure {
                class: Class::LocalError,
                message,
            },
            None => ConnectFailure::target(short_io(e)),
        }
    }

    fn completion(&self) -> Completion {
        Completion::failed(self.class, self.message.clone())
    }
}

/// Names a local resource limit (the generator's host, not the target) and how to raise it.
pub fn local_limit(e: &std::io::Error) -> Option<String> {
    let code = e.raw_os_error()?;
    let what = match code {
        libc::EMFILE => "too many open files (EMFILE): the generator reached its file-descriptor limit; raise `ulimit -n` or lower --max-connections",
        libc::ENFILE => "too many open files in the system (ENFILE): raise fs.file-max or lower --max-connections",
        libc::EADDRNOTAVAIL => "no free local address or port (EADDRNOTAVAIL): ephemeral ports are exhausted; widen net.ipv4.ip_local_port_range or lower --max-connections",
        libc::EADDRINUSE => "local address in use (EADDRINUSE): ephemeral ports are exhausted; widen net.ipv4.ip_local_port_range or lower --max-connections",
        libc::ENOBUFS => "no buffer space (ENOBUFS): the generator's host is out of socket buffers; lower --max-connections or the rate",
        libc::ENOMEM => "out of memory (ENOMEM) in the generator's host",
        _ => return None,
    };
    Some(what.to_string())
}

/// An I/O error in words, without the `(os error N)` suffix.
fn short_io(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A hyper error with its causes, e.g. `connection error: Connection reset by peer`.
fn describe(e: &hyper::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = match s.downcast_ref::<std::io::Error>() {
            Some(io) => short_io(io),
            None => s.to_string(),
        };
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    if e.is_parse() {
        out.push_str(" (the reply was not HTTP/1.x: is this a TLS port? use https://)");
    }
    out
}

/// Decrements the open-connection count when a connection (or its last handle) goes away.
struct Open(Arc<ConnStats>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.closed();
    }
}

enum Connected {
    H1(http1::SendRequest<Body>, Open),
    H2(http2::SendRequest<Body>, Open),
}

impl Origin {
    /// The request, and for a client-streaming gRPC call the tally of its flow-control waits.
    fn request(&self, index: u32) -> (Request<Body>, Option<Arc<super::grpc::FlowTally>>) {
        let p = self
            .requests
            .get(index as usize)
            .unwrap_or(&self.requests[0]);
        let (body, flow) = match &p.messages {
            None => (super::grpc::ReqBody::Whole(Full::new(p.body.clone())), None),
            Some(m) => {
                let (body, tally) = super::grpc::ReqBody::messages(m.clone());
                (body, Some(tally))
            }
        };
        let mut req = Request::new(body);
        *req.method_mut() = p.method.clone();
        *req.uri_mut() = p.uri.clone();
        *req.headers_mut() = p.headers.clone();
        if self.protocol == Protocol::Http2 {
            *req.version_mut() = Version::HTTP_2;
        }
        (req, flow)
    }

    /// Opens one connection (TCP, TLS, HTTP handshake) within the connect timeout.
    async fn connect(&self) -> Result<Connected, ConnectFailure> {
        let attempt = async {
            let tcp = TcpStream::connect(self.addr)
                .await
                .map_err(|e| ConnectFailure::io(&e))?;
            tcp.set_nodelay(true).map_err(|e| ConnectFailure::io(&e))?;
            match &self.tls {
                None if self.protocol == Protocol::Http2 => {
                    handshake(Tap::new(tcp, self.peer.clone()), self.protocol).await
                }
                None => handshake(tcp, self.protocol).await,
                Some((connector, name)) => {
                    let tls = connector.connect(name.clone(), tcp).await.map_err(|e| {
                        let why = super::tls::describe(&e);
                        ConnectFailure::target(if self.grpc.is_some() {
                            super::tls::for_grpc(why)
                        } else {
                            why
                        })
                    })?;
                    if self.protocol == Protocol::Http2
                        && tls.get_ref().1.alpn_protocol() != Some(b"h2".as_slice())
                    {
                        return Err(ConnectFailure::target("the server did not agree to HTTP/2 in ALPN (drop --http2 to use HTTP/1.1)"));
                    }
                    if self.protocol == Protocol::Http2 {
                        handshake(Tap::new(tls, self.peer.clone()), self.protocol).await
                    } else {
                        handshake(tls, self.protocol).await
                    }
                }
            }
        };
        let result = match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(ConnectFailure::target(format!(
                "connect timed out after {}",
                humantime::format_duration(self.connect_timeout)
            ))),
        };
        match result {
            Ok(tx) => {
                self.stats.opened();
                let open = Open(self.stats.clone());
                Ok(match tx {
                    Handshaken::H1(t) => Connected::H1(t, open),
                    Handshaken::H2(t) => Connected::H2(t, open),
                })
            }
            Err(f) => {
                self.stats.failed();
                Err(f)
            }
        }
    }

    /// Sends and reads the whole response. Returns the completion and whether the connection is
    /// still fit for another request.
    ///
    /// A gRPC call keeps the run's `deadline` itself (the dispatcher's timeout, at the same
    /// instant, is polled after it and never fires first), so that a call cut by `--timeout`
    /// keeps what it got: the response messages received and the time to the first (a server
    /// stream cut halfway), the waits its request messages had on HTTP/2 flow control (a client
    /// stream the server stopped reading), and the code a gRPC client reports for its own
    /// deadline, DEADLINE_EXCEEDED. HTTP requests are left to the dispatcher's timeout.
    async fn exchange(
        &self,
        fut: impl std::future::Future<Output = hyper::Result<hyper::Response<hyper::body::Incoming>>>,
        flow: Option<Arc<super::grpc::FlowTally>>,
        deadline: tokio::time::Instant,
    ) -> (Completion, bool) {
        let Some(wire) = &self.grpc else {
            return self.answer(fut).await;
        };
        let mut progress = super::grpc::Progress::default();
        let read = async {
            match fut.await {
                Ok(resp) => wire.read(resp, &mut progress).await,
                Err(e) => (
                    Completion::failed(Class::TransportError, describe(&e)),
                    false,
                ),
            }
        };
        match tokio::time::timeout_at(deadline, read).await {
            Ok((c, fit)) => match flow {
                Some(tally) => (c.with_flow(tally.finish(None)), fit),
                None => (c, fit),
            },
            Err(_) => {
                let mut why = format!(
                    "no complete answer within {} (--timeout)",
                    humantime::format_duration(self.timeout)
                );
                let waits = flow.map(|tally| {
                    let waits = tally.finish(Some(std::time::Instant::now()));
                    if waits.stuck {
                        let (k, n) = tally.position();
                        why.push_str(&format!(
                            ": request message {k} of {n} was still waiting for HTTP/2 flow control (the server stopped reading the stream)"
                        ));
                    }
                    waits
                });
                let mut c = Completion::failed(Class::Timeout, why)
                    .with_messages(progress.counter.messages, progress.first);
                c.grpc = Some(crate::grpc::Code::DEADLINE_EXCEEDED);
                if let Some(w) = waits {
                    c = c.with_flow(w);
                }
                (c, false)
            }
        }
    }

    /// An HTTP answer, read whole (the body's frames are drained, not kept).
    async fn answer(
        &self,
        fut: impl std::future::Future<Output = hyper::Result<hyper::Response<hyper::body::Incoming>>>,
    ) -> (Completion, bool) {
        let resp = match fut.await {
            Ok(r) => r,
            Err(e) => {
                return (
                    Completion::failed(Class::TransportError, describe(&e)),
                    false,
                )
            }
        };
        let status = resp.status().as_u16();
        // Only answers that are not a success can ask the client to come back later; a header
        // lookup on those alone keeps the hot path of a healthy run untouched.
        let retry_after = if (200..300).contains(&status) {
            None
        } else {
            resp.headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| parse_retry_after(v.as_bytes(), std::time::SystemTime::now()))
        };
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            if let Err(e) = frame {
                return (
                    Completion::failed(Class::TransportError, describe(&e)),
                    false,
                );
            }
        }
        (
            self.classifier
                .completion(status)
                .with_retry_after(retry_after),
            true,
        )
    }
}

enum Handshaken {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

async fn handshake<T>(io: T, protocol: Protocol) -> Result<Handshaken, ConnectFailure>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let failed = |e: hyper::Error| {
        ConnectFailure::target(format!("HTTP handshake failed: {}", describe(&e)))
    };
    match protocol {
        Protocol::Http1 => {
            // A 4 KiB read buffer instead of hyper's adaptive 8 KiB start: with thousands of
            // connections open (a stall met open-loop) memory per connection matters more than
            // one extra read for a large response.
            let (tx, conn) = http1::Builder::new()
                .read_buf_exact_size(Some(4096))
                .handshake(io)
                .await
                .map_err(failed)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Handshaken::H1(tx))
        }
        Protocol::Http2 => {
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(1 << 20)
                .initial_connection_window_size(8 << 20)
                .handshake(io)
                .await
                .map_err(failed)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Handshaken::H2(tx))
        }
    }
}

/// An idle or busy HTTP/1.1 connection.
struct H1Conn {
    tx: http1::SendRequest<Body>,
    _open: Open,
}

/// One HTTP/2 connection, possibly still being opened by the request that created it.
struct H2Entry {
    live: OnceCell<(http2::SendRequest<Body>, Open)>,
    /// Streams in use (requests holding this entry).
    active: AtomicUsize,
    /// The connection failed to open, or the peer closed it: take no new streams.
    dead: AtomicBool,
    /// Why it failed to open, for requests that were waiting on it.
    failure: Mutex<Option<ConnectFailure>>,
}

impl H2Entry {
    fn new(live: Option<(http2::SendRequest<Body>, Open)>) -> Self {
        H2Entry {
            live: OnceCell::new_with(live),
            active: AtomicUsize::new(0),
            dead: AtomicBool::new(false),
            failure: Mutex::new(None),
        }
    }

    fn closed(&self) -> bool {
        self.dead.load(Ordering::Relaxed) || self.live.get().is_some_and(|(tx, _)| tx.is_closed())
    }
}

/// Gives a stream back to its connection however the request ended.
struct Stream(Arc<H2Entry>);

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

enum Pool {
    H1 {
        idle: Mutex<Vec<H1Conn>>,
    },
    H2 {
        conns: Mutex<Vec<Arc<H2Entry>>>,
        max_streams: usize,
        max_conns: usize,
    },
}

/// HTTP/1.1 or HTTP/2 to one origin, connections opened on demand.
pub struct HttpClient {
    shared: Arc<Origin>,
    permits: Arc<Semaphore>,
    pool: Pool,
}

impl Client for HttpClient {
    async fn lease(&self) -> Lease {
        // The semaphore is never closed, so acquiring cannot fail; if it ever did, an unbounded
        // lease is better than a panic on the hot path.
        match self.permits.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => Arc::new(Semaphore::new(1))
                .acquire_owned()
                .await
                .expect("a fresh semaphore has a permit"),
        }
    }

    async fn call(&self, lease: Lease, request: u32, deadline: tokio::time::Instant) -> Completion {
        let completion = match &self.pool {
            Pool::H1 { idle } => self.call_h1(idle, request, deadline).await,
            Pool::H2 {
                conns,
                max_streams,
                max_conns,
            } => {
                self.call_h2(conns, *max_streams, *max_conns, request, deadline)
                    .await
            }
        };
        drop(lease);
        completion
    }
}

impl HttpClient {
    /// A live idle connection, discarding those the peer closed while they were idle.
    fn take_idle(&self, idle: &Mutex<Vec<H1Conn>>) -> Option<H1Conn> {
        let mut idle = lock(idle);
        while let Some(c) = idle.pop() {
            if !c.tx.is_closed() {
                return Some(c);
            }
            self.shared.stats.lost();
        }
        None
    }

    async fn open_h1(&self) -> Result<(H1Conn, Duration), ConnectFailure> {
        let t0 = Instant::now();
        match self.shared.connect().await? {
            Connected::H1(tx, open) => Ok((H1Conn { tx, _open: open }, t0.elapsed())),
            Connected::H2(..) => Err(ConnectFailure::target(
                "internal: expected an HTTP/1.1 connection",
            )),
        }
    }

    async fn call_h1(
        &self,
        idle: &Mutex<Vec<H1Conn>>,
        request: u32,
        deadline: tokio::time::Instant,
    ) -> Completion {
        let shared = &*self.shared;
        let mut connect = None;
        // A kept-alive connection the server closed while idle is not a failed request: try
        // once more on a fresh connection.
        for _ in 0..2 {
            let (mut conn, reused) = match self.take_idle(idle) {
                Some(c) => (c, true),
                // Boxed: opening a connection is rare next to reusing one, and its future (TCP,
                // TLS, handshake) would otherwise make every worker's state several KiB larger.
                None => match Box::pin(self.open_h1()).await {
                    Ok((c, took)) => {
                        connect = Some(connect.unwrap_or(Duration::ZERO) + took);
                        (c, false)
                    }
                    Err(f) => return f.completion().with_connect(connect),
                },
            };
            if conn.tx.ready().await.is_err() {
                shared.stats.lost();
                if reused {
                    continue;
                }
                return Completion::failed(
                    Class::TransportError,
                    "the connection was closed before the request could be sent",
                )
                .with_connect(connect);
            }
            let (req, flow) = shared.request(request);
            let (completion, fit) = shared
                .exchange(conn.tx.send_request(req), flow, deadline)
                .await;
            if fit && !conn.tx.is_closed() {
                lock(idle).push(conn);
            } else if !fit {
                shared.stats.lost();
            }
            return completion.with_connect(connect);
        }
        Completion::failed(
            Class::TransportError,
            "the connection was closed before the request could be sent",
        )
        .with_connect(connect)
    }

    /// A stream on a connection with room, or a new connection entry (up to the cap).
    fn pick_h2(
        &self,
        conns: &Mutex<Vec<Arc<H2Entry>>>,
        max_streams: usize,
        max_conns: usize,
    ) -> Stream {
        let mut conns = lock(conns);
        conns.retain(|e| {
            let closed = e.closed();
            if closed && e.live.get().is_some() {
                self.shared.stats.lost();
            }
            !closed
        });
        // The server's own limit, when it is lower: above it hyper would queue the request
        // inside its pending-open queue, where the wait would pass for the server's time.
        let max_streams = self.shared.peer.limit().map_or(max_streams, |n| {
            max_streams.min(usize::try_from(n).unwrap_or(usize::MAX))
        });
        let room = conns
            .iter()
            .find(|e| e.active.load(Ordering::Relaxed) < max_streams)
            .cloned();
        let entry = match room {
            Some(e) => e,
            None if conns.len() < max_conns => {
                let e = Arc::new(H2Entry::new(None));
                conns.push(e.clone());
                e
            }
            // Only while a closed connection is still counted: share the least busy one.
            None => match conns
                .iter()
                .min_by_key(|e| e.active.load(Ordering::Relaxed))
                .cloned()
            {
                Some(e) => e,
                None => {
                    let e = Arc::new(H2Entry::new(None));
                    conns.push(e.clone());
                    e
                }
            },
        };
        entry.active.fetch_add(1, Ordering::Relaxed);
        Stream(entry)
    }

    async fn call_h2(
        &self,
        conns: &Mutex<Vec<Arc<H2Entry>>>,
        max_streams: usize,
        max_conns: usize,
        request: u32,
        deadline: tokio::time::Instant,
    ) -> Completion {
        let shared = &*self.shared;
        let stream = self.pick_h2(conns, max_streams, max_conns);
        let entry = &stream.0;
        let took_ns = AtomicU64::new(0);
        let live = entry
            .live
            .get_or_try_init(|| async {
                if entry.dead.load(Ordering::Relaxed) {
                    let earlier = lock(&entry.failure).clone();
                    return Err(
                        earlier.unwrap_or_else(|| ConnectFailure::target("connection failed"))
                    );
                }
                let t0 = Instant::now();
                let result = match Box::pin(shared.connect()).await {
                    Ok(Connected::H2(tx, open)) => Ok((tx, open)),
                    Ok(Connected::H1(..)) => Err(ConnectFailure::target(
                        "internal: expected an HTTP/2 connection",
                    )),
                    Err(f) => Err(f),
                };
                took_ns.store(
                    u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                if let Err(f) = &result {
                    entry.dead.store(true, Ordering::Relaxed);
                    *lock(&entry.failure) = Some(f.clone());
                }
                result
            })
            .await;
        let took = took_ns.load(Ordering::Relaxed);
        let connect = (took > 0).then(|| Duration::from_nanos(took));
        let mut tx = match live {
            Ok((tx, _)) => tx.clone(),
            Err(f) => return f.completion().with_connect(connect),
        };
        if tx.ready().await.is_err() {
            entry.dead.store(true, Ordering::Relaxed);
            return Completion::failed(
                Class::TransportError,
                "the HTTP/2 connection was closed before the request could be sent",
            )
            .with_connect(connect);
        }
        let (req, flow) = shared.request(request);
        let (completion, _) = shared.exchange(tx.send_request(req), flow, deadline).await;
        completion.with_connect(connect)
    }
}

/// Limits for [`client`]: how many connections to warm and how many may be open at once.
#[derive(Clone, Copy, Debug)]
pub struct Pooling {
    pub warm: usize,
    pub max_connections: usize,
    pub max_streams: usize,
}

/// Resolves the target, checks it speaks the protocol asked for, opens `warm` connections before
/// the clock starts, and returns the client.
///
/// Fails with [`Error::Unreachable`] if the first connection cannot be made, and with
/// [`Error::Protocol`] if the target does not speak the protocol: nothing is sent.
pub async fn client(
    plan: &Plan,
    pooling: Pooling,
    stats: Arc<ConnStats>,
) -> Result<HttpClient, Error> {
    let target = &plan.target;
    let addr = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| Error::Resolve {
            host: target.host.clone(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| Error::Resolve {
            host: target.host.clone(),
            reason: "no address found".into(),
        })?;
    let tls = if target.tls {
        let config = super::tls::client_config(&plan.tls, plan.protocol)?;
        Some((
            TlsConnector::from(config),
            super::tls::server_name(&target.host)?,
        ))
    } else {
        None
    };
    let streaming = |i: usize| {
        plan.grpc
            .as_ref()
            .and_then(|g| g.calls.get(i))
            .is_some_and(|c| c.client_streaming)
    };
    let requests = plan
        .requests
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut p = Prepared::new(spec, target, plan.protocol);
            if streaming(i) {
                p.messages = crate::grpc::unframe(&p.body).map(|parts| {
                    parts
                        .into_iter()
                        .map(crate::grpc::frame)
                        .collect::<Vec<_>>()
                        .into()
                });
            }
            p
        })
        .collect();
    let shared = Arc::new(Origin {
        addr,
        tls,
        protocol: plan.protocol,
        connect_timeout: plan.limits.connect_timeout,
        timeout: plan.limits.timeout,
        requests,
        classifier: Classifier::new(&plan.rejected),
        grpc: plan
            .grpc
            .as_ref()
            .map(|g| super::grpc::Wire::new(&g.rejected, g.read_delay)),
        peer: Arc::new(PeerStreams::new(stats.clone())),
        stats,
    });
    let unreachable = |reason: String| Error::Unreachable {
        target: target.url.clone(),
        reason,
    };
    if plan.protocol == Protocol::Http2 && !target.tls {
        probe_h2c(addr, plan.limits.connect_timeout)
            .await
            .map_err(|fail| match fail {
                Probe::Unreachable(reason) => unreachable(reason),
                Probe::NotH2(reason) => not_h2(target, reason),
            })?;
    }
    let warm = pooling.warm.clamp(1, pooling.max_connections.max(1));
    let first = shared.connect().await.map_err(|f| unreachable(f.message))?;
    let mut opened = vec![first];
    let mut set = tokio::task::JoinSet::new();
    for _ in 1..warm {
        let s = shared.clone();
        set.spawn(async move { s.connect().await.ok() });
    }
    while let Some(joined) = set.join_next().await {
        if let Ok(Some(c)) = joined {
            opened.push(c);
        }
    }
    let per_conn = match plan.protocol {
        Protocol::Http1 => 1,
        // The server's first SETTINGS frame is on its way once the connection is up; a server
        // that sends none within the wait is taken to set no limit.
        Protocol::Http2 => {
            let wait = plan.limits.connect_timeout.min(PEER_SETTINGS_WAIT);
            let peer = shared.peer.wait(wait).await;
            peer.map_or(pooling.max_streams, |n| {
                pooling
                    .max_streams
                    .min(usize::try_from(n).unwrap_or(usize::MAX))
            })
            .max(1)
        }
    };
    let permits = pooling
        .max_connections
        .max(1)
        .saturating_mul(per_conn)
        .min(Semaphore::MAX_PERMITS);
    let pool = match plan.protocol {
        Protocol::Http1 => Pool::H1 {
            idle: Mutex::new(
                opened
                    .into_iter()
                    .filter_map(|c| match c {
                        Connected::H1(tx, open) => Some(H1Conn { tx, _open: open }),
                        Connected::H2(..) => None,
                    })
                    .collect(),
            ),
        },
        Protocol::Http2 => Pool::H2 {
            conns: Mutex::new(
                opened
                    .into_iter()
                    .filter_map(|c| match c {
                        Connected::H2(tx, open) => Some(Arc::new(H2Entry::new(Some((tx, open))))),
                        Connected::H1(..) => None,
                    })
                    .collect(),
            ),
            max_streams: per_conn,
            max_conns: pooling.max_connections.max(1),
        },
    };
    Ok(HttpClient {
        shared,
        permits: Arc::new(Semaphore::new(permits)),
        pool,
    })
}

/// How long the start waits for an HTTP/2 server's first SETTINGS frame (its stream limit)
/// after the first connection is up: it comes in the first round trip.
const PEER_SETTINGS_WAIT: Duration = Duration::from_secs(2);

/// What listens does not speak HTTP/2 with prior knowledge, in the words of the target's scheme.
fn not_h2(target: &Target, reason: String) -> Error {
    Error::Protocol {
        target: target.url.clone(),
        reason: if target.grpc {
            grpc_hint(&reason)
        } else {
            reason
        },
    }
}

/// For a plaintext gRPC target whose schema comes from reflection: checks, before reflection is
/// asked, that the port speaks HTTP/2 with prior knowledge, so that a TLS port is told as such
/// ("use grpcs://") rather than as a reflection failure. A target that cannot be reached is
/// left to reflection's own error.
pub async fn probe_plaintext(plan: &Plan) -> Result<(), Error> {
    let target = &plan.target;
    let Ok(Some(addr)) = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map(|mut a| a.next())
    else {
        return Ok(());
    };
    match probe_h2c(addr, plan.limits.connect_timeout).await {
        Err(Probe::NotH2(reason)) => Err(not_h2(target, reason)),
        Ok(()) | Err(Probe::Unreachable(_)) => Ok(()),
    }
}

/// A probe failure reworded for a gRPC target, where dropping `--http2` is no option.
fn grpc_hint(reason: &str) -> String {
    let cut = reason.find(" (drop --http2").unwrap_or(reason.len());
    let reason = reason[..cut].replace("use https://", "use grpcs://");
    format!("{reason} (gRPC needs HTTP/2: is this the server's gRPC port? for TLS use grpcs://)")
}

/// Why the h2c probe failed: nothing listens (the target is unreachable), or what listens does
/// not speak HTTP/2 with prior knowledge.
enum Probe {
    Unreachable(String),
    NotH2(String),
}

/// The HTTP/2 client connection preface followed by an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Checks, on a throw-away connection and without sending a request, that the target speaks
/// HTTP/2 with prior knowledge: an h2 server answers the preface with a SETTINGS frame, an
/// HTTP/1.1 server with a status line (or by closing).
async fn probe_h2c(addr: SocketAddr, timeout: Duration) -> Result<(), Probe> {
    let probe = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| Probe::Unreachable(short_io(&e)))?;
        tcp.write_all(H2_PREFACE)
            .await
            .map_err(|e| Probe::NotH2(short_io(&e)))?;
        let mut head = [0u8; 9];
        let mut got = 0;
        while got < head.len() {
            match tcp.read(&mut head[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
            if head[..got].starts_with(b"HTTP/") {
                break;
            }
        }
        Ok::<_, Probe>(head[..got].to_vec())
    };
    let head = match tokio::time::timeout(timeout, probe).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Probe::NotH2(format!(
            "no HTTP/2 reply to the connection preface within {} (drop --http2 to use HTTP/1.1)",
            humantime::format_duration(timeout)
        )))
        }
    };
    if head.len() == 9 && head[3] == 0x4 {
        return Ok(());
    }
    if head.starts_with(b"HTTP/") {
        return Err(Probe::NotH2("HTTP/2 handshake failed: the server answered the HTTP/2 preface as an HTTP/1.1 server (drop --http2, or use https:// if it negotiates h2 with TLS)".into()));
    }
    if head.first() == Some(&0x15) || head.first() == Some(&0x16) {
        return Err(Probe::NotH2("the port speaks TLS: use https://".into()));
    }
    Err(Probe::NotH2("HTTP/2 handshake failed: the server closed the connection or replied with something other than HTTP/2 settings (drop --http2 to use HTTP/1.1)".into()))
}
