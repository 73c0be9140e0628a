//! gRPC calls on the HTTP/2 connections of [`super::http`].
//!
//! gRPC is a second way of reading an answer, not a second engine: the call is an HTTP/2 POST
//! built once (the request message pre-encoded, see [`crate::grpc::schema`]) and sent on the same
//! owned, on-demand connections with the same stream limits as `--http2`, so the schedule,
//! the three clocks, the recorder and the reports are the ones HTTP uses. What differs is here:
//! the outcome is the `grpc-status` (in the trailers, or in the headers of a trailers-only
//! answer), response messages are counted from their length prefixes and never decoded, and the
//! time the first one was complete is kept for server streaming.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Response;

use crate::grpc::{Code, MessageCounter, CODE_SLOTS};
use crate::record::{Class, Completion};

/// How gRPC answers are judged and read.
#[derive(Clone, Debug)]
pub struct Wire {
    /// Codes counted as shed (rejected) rather than errors, indexed by code.
    rejected: [bool; CODE_SLOTS],
    /// Pause after each response message: a slow reader, to show the server's side of flow
    /// control on a stream.
    read_delay: Option<Duration>,
}

impl Wire {
    pub fn new(rejected: &[Code], read_delay: Option<Duration>) -> Wire {
        let mut table = [false; CODE_SLOTS];
        for c in rejected {
            if let Some(slot) = table.get_mut(usize::from(c.0)) {
                *slot = true;
            }
        }
        Wire {
            rejected: table,
            read_delay: read_delay.filter(|d| !d.is_zero()),
        }
    }

    /// OK is ok; the rejected codes (RESOURCE_EXHAUSTED and UNAVAILABLE by default) are shed;
    /// DEADLINE_EXCEEDED is a timeout, whoever's deadline it was; every other code is an error
    /// status (the `http_error` class), counted per code in the report.
    pub fn classify(&self, code: Code) -> Class {
        if code == Code::OK {
            Class::Ok
        } else if self
            .rejected
            .get(usize::from(code.0))
            .copied()
            .unwrap_or(false)
        {
            Class::Rejected
        } else if code == Code::DEADLINE_EXCEEDED {
            Class::Timeout
        } else {
            Class::HttpError
        }
    }

    /// Reads a whole answer: headers, every DATA frame (counting messages), the trailers.
    /// Returns the completion and whether the connection is still fit for another call.
    ///
    /// What was received is kept in `progress`, outside this future, so that a call cut by its
    /// deadline (the future dropped) still reports its messages and its time to first message.
    ///
    /// With `--read-delay`, each message but the last is followed by a pause before the next is
    /// read: the pause owed for a message is taken when the next DATA frame arrives, so that the
    /// trailers, once every message is in, are read at once. A pause after the last message
    /// would hold back no sending of the server's (it has sent everything) and only add the
    /// client's own delay to every call, a unary one included.
    pub async fn read(
        &self,
        resp: Response<Incoming>,
        progress: &mut Progress,
    ) -> (Completion, bool) {
        let status = resp.status().as_u16();
        let head = resp.headers();
        let mut code = head
            .get("grpc-status")
            .map(|v| Code::from_header(v.as_bytes()));
        let mut message = head.get("grpc-message").map(|v| v.as_bytes().to_vec());
        let mut pushback = head
            .get("grpc-retry-pushback-ms")
            .map(|v| v.as_bytes().to_vec());
        let mut body = resp.into_body();
        // Pauses owed for messages already complete, taken before reading on.
        let mut owed = 0u32;
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    return (
                        Completion::failed(Class::TransportError, format!("the stream broke: {e}"))
                            .with_messages(progress.counter.messages, progress.first),
                        false,
                    )
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    if let (Some(d), true) = (self.read_delay, owed > 0) {
                        tokio::time::sleep(d.saturating_mul(owed)).await;
                        owed = 0;
                    }
                    let completed = progress.counter.feed(&data);
                    if completed > 0 {
                        progress.first.get_or_insert_with(Instant::now);
                        // Once per message, even when a frame carried several: those between
                        // them now, the one after the last of them if another frame follows.
                        if let Some(d) = self.read_delay {
                            if completed > 1 {
                                tokio::time::sleep(d.saturating_mul(completed - 1)).await;
                            }
                            owed = 1;
                        }
                    }
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        code = t
                            .get("grpc-status")
                            .map(|v| Code::from_header(v.as_bytes()))
                            .or(code);
                        message = t
                            .get("grpc-message")
                            .map(|v| v.as_bytes().to_vec())
                            .or(message);
                        pushback = t
                            .get("grpc-retry-pushback-ms")
                            .map(|v| v.as_bytes().to_vec())
                            .or(pushback);
                    }
                }
            }
        }
        let (counter, first) = (&progress.counter, progress.first);
        let code = match code {
            Some(c) => c,
            None if status != 200 => Code::from_http(status),
            None => {
                return (
                    Completion::failed(
                        Class::TransportError,
                        "the answer ended without a grpc-status (is this a gRPC server?)",
                    )
                    .with_messages(counter.messages, first),
                    true,
                )
            }
        };
        let class = self.classify(code);
        let mut c = Completion::status(class, status).with_messages(counter.messages, first);
        c.grpc = Some(code);
        if class != Class::Ok {
            match pushback.as_deref().map(parse_pushback) {
                Some(Some(d)) => c.retry_after = Some(d),
                Some(None) => c.no_retry = true,
                None => {}
            }
            c.error = Some(describe(code, message.as_deref()));
        } else if counter.partial() {
            c.class = Class::TransportError;
            c.error = Some("the answer ended inside a message".into());
        }
        (c, true)
    }
}

/// What a gRPC call's answer has shown so far: its messages and when the first was complete.
/// Lent to [`Wire::read`] by the caller that keeps the call's deadline, so that it outlives the
/// read when the deadline cuts it.
#[derive(Debug, Default)]
pub struct Progress {
    pub counter: MessageCounter,
    pub first: Option<Instant>,
}

/// `grpc-retry-pushback-ms`: a whole number of milliseconds to wait before retrying, or `None`
/// for a negative or unparsable value, which gRPC's retry design (A6) reads as the server
/// asking the client not to retry at all.
fn parse_pushback(v: &[u8]) -> Option<Duration> {
    std::str::from_utf8(v)
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

/// `RESOURCE_EXHAUSTED: rate limited`, the message percent-decoded as far as it is ASCII.
fn describe(code: Code, message: Option<&[u8]>) -> String {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{}: {}", code.name(), percent_decode(m)),
        None => code.name().to_string(),
    }
}

fn percent_decode(m: &[u8]) -> String {
    let mut out = Vec::with_capacity(m.len());
    let mut i = 0;
    while i < m.len() {
        if m[i] == b'%' && i + 2 < m.len() {
            if let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&m[i + 1..i + 3]), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(m[i]);
        i += 1;
    }
    crate::error::clip(&String::from_utf8_lossy(&out)).into_owned()
}

/// A request body: whole (HTTP, unary and server-streaming gRPC), or a client stream's messages
/// handed to hyper one frame each, so that the time each waited for HTTP/2 flow control shows.
pub enum ReqBody {
    Whole(http_body_util::Full<bytes::Bytes>),
    Messages(Messages),
}

/// The messages of one client-streaming call, pre-encoded and shared by every call.
pub struct Messages {
    chunks: std::sync::Arc<[bytes::Bytes]>,
    tally: std::sync::Arc<FlowTally>,
}

/// How long each of a call's request messages waited for HTTP/2 flow control.
///
/// hyper asks the body for its next frame only once the stream has send capacity again, so the
/// gap between two asks is the time the message waited on a full stream or connection window
/// (plus the microsecond it takes to hand a frame over): backpressure from the server, kept
/// apart from its answer's latency. A message still waiting when the call is cut (a server
/// that stopped reading the stream) is counted with the wait it had so far.
#[derive(Debug)]
pub struct FlowTally {
    /// Locked once per message by the body and once at the end of the call: uncontended.
    state: std::sync::Mutex<FlowState>,
}

#[derive(Debug)]
struct FlowState {
    /// When the previous message was taken.
    last: Instant,
    /// Messages taken so far (the first goes with the headers and never waits).
    taken: usize,
    total: usize,
    waits_us: Vec<u32>,
}

/// What a client stream's request messages waited for HTTP/2 flow control, per message after
/// the first (µs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowWaits {
    pub waits_us: Vec<u32>,
    /// The call was cut (by `--timeout`) while a request message waited for send capacity: the
    /// server had stopped reading. Its wait so far is the last of `waits_us`.
    pub stuck: bool,
}

impl FlowTally {
    fn state(&self) -> std::sync::MutexGuard<'_, FlowState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The waits measured; `cut_at` is when the call was cut without an answer, so that a
    /// message still waiting counts.
    pub fn finish(&self, cut_at: Option<Instant>) -> FlowWaits {
        let mut st = self.state();
        let mut stuck = false;
        if let Some(at) = cut_at {
            if st.taken > 0 && st.taken < st.total {
                let waited = at.saturating_duration_since(st.last);
                st.waits_us.push(micros(waited));
                stuck = true;
            }
        }
        FlowWaits {
            waits_us: std::mem::take(&mut st.waits_us),
            stuck,
        }
    }

    /// Which message (1-based) was waiting and of how many, when the call was cut.
    pub fn position(&self) -> (usize, usize) {
        let st = self.state();
        (st.taken + 1, st.total)
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl ReqBody {
    /// A body sending `chunks` (framed messages) one by one, and the tally of their waits.
    pub fn messages(
        chunks: std::sync::Arc<[bytes::Bytes]>,
    ) -> (ReqBody, std::sync::Arc<FlowTally>) {
        let tally = std::sync::Arc::new(FlowTally {
            state: std::sync::Mutex::new(FlowState {
                last: Instant::now(),
                taken: 0,
                total: chunks.len(),
                waits_us: Vec::with_capacity(chunks.len().saturating_sub(1)),
            }),
        });
        let body = ReqBody::Messages(Messages {
            chunks,
            tally: tally.clone(),
        });
        (body, tally)
    }
}

impl hyper::body::Body for ReqBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        match self.get_mut() {
            ReqBody::Whole(b) => std::pin::Pin::new(b).poll_frame(cx),
            ReqBody::Messages(m) => {
                let mut st = m.tally.state();
                let Some(chunk) = m.chunks.get(st.taken).cloned() else {
                    return std::task::Poll::Ready(None);
                };
                let now = Instant::now();
                // The first message is taken with the headers; from then on every gap is a
                // wait for send capacity.
                if st.taken > 0 {
                    let waited = micros(now.saturating_duration_since(st.last));
                    st.waits_us.push(waited);
                }
                st.last = now;
                st.taken += 1;
                std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Whole(b) => b.is_end_stream(),
            ReqBody::Messages(m) => m.tally.state().taken >= m.chunks.len(),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            ReqBody::Whole(b) => b.size_hint(),
            ReqBody::Messages(m) => {
                let taken = m.tally.state().taken;
                let left: usize = m.chunks.iter().skip(taken).map(bytes::Bytes::len).sum();
                hyper::body::SizeHint::with_exact(left as u64)
            }
        }
    }
}

/// For a gRPC plan whose schema comes from reflection: asks the server (on a throw-away
/// connection, before the run's connections are opened), checks the body against the method and
/// returns the plan with the request encoded. `None` when there is nothing to resolve.
pub async fn resolve(plan: &crate::plan::Plan) -> Result<Option<crate::plan::Plan>, crate::Error> {
    use crate::grpc::schema::{encode_n, find, SchemaError};
    use crate::plan::GrpcSchema;
    let Some(g) = &plan.grpc else {
        return Ok(None);
    };
    let GrpcSchema::Reflection = &g.schema else {
        return Ok(None);
    };
    let target = &plan.target;
    let fail = |reason: String| SchemaError::Unreachable {
        target: target.url.clone(),
        reason,
    };
    if !target.tls {
        super::http::probe_plaintext(plan).await?;
    }
    let tx = tokio::time::timeout(plan.limits.connect_timeout, connect_h2(plan))
        .await
        .map_err(|_| {
            fail(format!(
                "connect timed out after {} (--connect-timeout)",
                humantime::format_duration(plan.limits.connect_timeout)
            ))
        })?
        .map_err(fail)?;
    let mut session = crate::grpc::reflect::Session {
        tx,
        base: format!(
            "{}://{}",
            if target.tls { "https" } else { "http" },
            target.absolute.authority().map_or("", |a| a.as_str())
        ),
        target: target.url.clone(),
        timeout: plan.limits.connect_timeout.max(Duration::from_secs(1)),
    };
    let mut resolved = plan.clone();
    let mut pools: Vec<(String, prost_reflect::DescriptorPool)> = Vec::new();
    let source = format!("the server's reflection ({})", target.url);
    for (i, c) in g.calls.iter().enumerate() {
        let service = &c.call.service;
        let pool = match pools.iter().find(|(s, _)| s == service) {
            Some((_, p)) => p.clone(),
            None => {
                let p = session.fetch(service).await?;
                pools.push((service.clone(), p.clone()));
                p
            }
        };
        let here = |e: SchemaError| e.in_request(c.place.as_deref());
        let method = find(&pool, &c.call, &source).map_err(here)?;
        let body = encode_n(&method, &c.json, g.messages).map_err(here)?;
        if let Some(r) = resolved.requests.get_mut(i) {
            r.body = body;
        }
        if let Some(rc) = resolved.grpc.as_mut().and_then(|rg| rg.calls.get_mut(i)) {
            rc.server_streaming = method.is_server_streaming();
            rc.client_streaming = method.is_client_streaming();
        }
    }
    Ok(Some(resolved))
}

/// One HTTP/2 connection (TLS with ALPN h2 for grpcs://), for reflection.
async fn connect_h2(
    plan: &crate::plan::Plan,
) -> Result<hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>, String> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let t = &plan.target;
    let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    if t.tls {
        let config = super::tls::client_config(&plan.tls, crate::plan::Protocol::Http2)
            .map_err(|e| e.to_string())?;
        let name = super::tls::server_name(&t.host).map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| super::tls::for_grpc(super::tls::describe(&e)))?;
        let (tx, conn) = builder
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| crate::grpc::reflect::chain(&e))?;
        tokio::spawn(conn);
        Ok(tx)
    } else {
        let (tx, conn) = builder
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| crate::grpc::reflect::chain(&e))?;
        tokio::spawn(conn);
        Ok(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        let w = Wire::new(&[Code::RESOURCE_EXHAUSTED, Code::UNAVAILABLE], None);
        assert_eq!(w.classify(Code::OK), Class::Ok);
        assert_eq!(w.classify(Code::RESOURCE_EXHAUSTED), Class::Rejected);
        assert_eq!(w.classify(Code::UNAVAILABLE), Class::Rejected);
        assert_eq!(w.classify(Code::DEADLINE_EXCEEDED), Class::Timeout);
        assert_eq!(w.classify(Code::INTERNAL), Class::HttpError);
        assert_eq!(w.classify(Code::OTHER), Class::HttpError);
        let none = Wire::new(&[], None);
        assert_eq!(none.classify(Code::UNAVAILABLE), Class::HttpError);
        assert_eq!(parse_pushback(b"250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_pushback(b"-1"), None, "do not retry");
        assert_eq!(parse_pushback(b"soon"), None, "do not retry");
        assert_eq!(describe(Code::INTERNAL, Some(b"a%20b")), "INTERNAL: a b");
        assert_eq!(describe(Code::INTERNAL, Some(b"100%")), "INTERNAL: 100%");
    }

    #[tokio::test]
    async fn a_message_still_waiting_when_the_call_is_cut_counts_as_stuck() {
        let chunks: std::sync::Arc<[bytes::Bytes]> =
            vec![bytes::Bytes::from_static(b"m"); 3].into();
        // All three taken: nothing stuck, two waits (the first goes with the headers).
        let (mut body, tally) = ReqBody::messages(chunks.clone());
        while body.frame().await.is_some() {}
        let done = tally.finish(Some(Instant::now()));
        assert_eq!((done.waits_us.len(), done.stuck), (2, false));
        // One taken, the second waiting 30 ms when the call is cut.
        let (mut body, tally) = ReqBody::messages(chunks);
        assert!(body.frame().await.is_some());
        let cut = Instant::now() + Duration::from_millis(30);
        let waits = tally.finish(Some(cut));
        assert!(waits.stuck);
        assert_eq!(waits.waits_us.len(), 1);
        assert!(waits.waits_us[0] >= 30_000, "{waits:?}");
        assert_eq!(tally.position(), (2, 3));
        // Ended with an answer, a message not taken is no wait.
        assert!(
            !ReqBody::messages(vec![bytes::Bytes::new(); 2].into())
                .1
                .finish(None)
                .stuck
        );
    }
}
