//! HTTP/1.1 and HTTP/2 over connections we own (`hyper::client::conn`), never a pool: the
//! number of connections is exactly what the user asked for, and a reconnect is a visible event.
//!
//! HTTP/1.1: one slot per connection (hyper has no pipelining). HTTP/2: each connection is
//! shared by several slots, one stream each; the connection is re-established by whichever slot
//! first finds it closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

use super::{Classifier, Slot};
use crate::error::Error;
use crate::plan::{with_host, Plan, Protocol, RequestSpec, Target};
use crate::record::{Class, Completion};

type Body = Full<Bytes>;

enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

/// Everything a slot needs to connect and build a request, shared read-only.
struct Shared {
    addr: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    protocol: Protocol,
    connect_timeout: Duration,
    /// The request mix, indexed by [`crate::schedule::Ticket::request`]; never empty.
    requests: Vec<Prepared>,
    classifier: Classifier,
}

/// One request of the mix, with its URI already in the form the protocol wants (origin form and
/// a Host header on HTTP/1.1, absolute form on HTTP/2), so building it per send is clones only.
struct Prepared {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
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
        }
    }
}

impl Shared {
    fn request(&self, index: u32) -> Request<Body> {
        let p = self
            .requests
            .get(index as usize)
            .unwrap_or(&self.requests[0]);
        let mut req = Request::new(Full::new(p.body.clone()));
        *req.method_mut() = p.method.clone();
        *req.uri_mut() = p.uri.clone();
        *req.headers_mut() = p.headers.clone();
        if self.protocol == Protocol::Http2 {
            *req.version_mut() = Version::HTTP_2;
        }
        req
    }

    async fn connect(&self) -> Result<Sender, String> {
        let attempt = async {
            let tcp = TcpStream::connect(self.addr)
                .await
                .map_err(|e| e.to_string())?;
            tcp.set_nodelay(true).map_err(|e| e.to_string())?;
            match &self.tls {
                None => handshake(tcp, self.protocol).await,
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| super::tls::describe(&e))?;
                    if self.protocol == Protocol::Http2
                        && tls.get_ref().1.alpn_protocol() != Some(b"h2".as_slice())
                    {
                        return Err("the server did not agree to HTTP/2 in ALPN (drop --http2 to use HTTP/1.1)".into());
                    }
                    handshake(tls, self.protocol).await
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "connect timed out after {}",
                humantime::format_duration(self.connect_timeout)
            )),
        }
    }

    async fn exchange(
        &self,
        fut: impl std::future::Future<Output = hyper::Result<hyper::Response<hyper::body::Incoming>>>,
    ) -> Completion {
        let resp = match fut.await {
            Ok(r) => r,
            Err(_) => return Completion::failed(Class::TransportError),
        };
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                return Completion::failed(Class::TransportError);
            }
        }
        self.classifier.completion(status)
    }
}

async fn handshake<T>(io: T, protocol: Protocol) -> Result<Sender, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    match protocol {
        Protocol::Http1 => {
            let (tx, conn) = http1::handshake(io).await.map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Sender::H1(tx))
        }
        Protocol::Http2 => {
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(1 << 20)
                .initial_connection_window_size(8 << 20)
                .handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Sender::H2(tx))
        }
    }
}

/// An HTTP/2 connection shared by several slots, with a generation number so that only one slot
/// reconnects after a failure.
struct H2Conn {
    current: Mutex<(u64, Option<http2::SendRequest<Body>>)>,
}

impl H2Conn {
    /// Returns a live sender, reconnecting if the one of generation `stale` is the current one.
    async fn sender(
        &self,
        shared: &Shared,
        stale: Option<u64>,
    ) -> Result<(u64, http2::SendRequest<Body>), String> {
        let mut cur = self.current.lock().await;
        let usable = matches!(&cur.1, Some(tx) if !tx.is_closed()) && stale != Some(cur.0);
        if !usable {
            match shared.connect().await? {
                Sender::H2(tx) => *cur = (cur.0 + 1, Some(tx)),
                Sender::H1(_) => return Err("internal: expected an HTTP/2 connection".into()),
            }
        }
        match &cur.1 {
            Some(tx) => Ok((cur.0, tx.clone())),
            None => Err("no connection".into()),
        }
    }
}

/// One request at a time on HTTP/1.1, or one stream of a shared HTTP/2 connection.
pub struct HttpSlot {
    shared: Arc<Shared>,
    kind: SlotKind,
}

enum SlotKind {
    H1(Option<http1::SendRequest<Body>>),
    H2 {
        conn: Arc<H2Conn>,
        cached: Option<(u64, http2::SendRequest<Body>)>,
    },
}

impl Slot for HttpSlot {
    async fn call(&mut self, request: u32) -> Completion {
        let shared = &*self.shared;
        match &mut self.kind {
            SlotKind::H1(tx) => {
                // A kept-alive connection the server closed while idle is not a failed request:
                // reconnect once and send on the fresh connection.
                for _ in 0..2 {
                    if !matches!(tx, Some(t) if !t.is_closed()) {
                        *tx = None;
                        match shared.connect().await {
                            Ok(Sender::H1(t)) => *tx = Some(t),
                            _ => return Completion::failed(Class::ConnectError),
                        }
                    }
                    let Some(t) = tx.as_mut() else {
                        return Completion::failed(Class::ConnectError);
                    };
                    if t.ready().await.is_err() {
                        *tx = None;
                        continue;
                    }
                    let completion = shared
                        .exchange(t.send_request(shared.request(request)))
                        .await;
                    if completion.class == Class::TransportError {
                        *tx = None;
                    }
                    return completion;
                }
                Completion::failed(Class::TransportError)
            }
            SlotKind::H2 { conn, cached } => {
                let live = matches!(cached, Some((_, t)) if !t.is_closed());
                if !live {
                    let stale = cached.as_ref().map(|(g, _)| *g);
                    match conn.sender(shared, stale).await {
                        Ok(s) => *cached = Some(s),
                        Err(_) => {
                            *cached = None;
                            return Completion::failed(Class::ConnectError);
                        }
                    }
                }
                let Some((_, t)) = cached.as_mut() else {
                    return Completion::failed(Class::ConnectError);
                };
                if t.ready().await.is_err() {
                    return Completion::failed(Class::TransportError);
                }
                shared
                    .exchange(t.send_request(shared.request(request)))
                    .await
            }
        }
    }

    fn abandon(&mut self) {
        if let SlotKind::H1(tx) = &mut self.kind {
            *tx = None;
        }
    }
}

/// Resolves the target, connects every connection before the clock starts (so connection setup
/// is not charged to the first requests), and returns one slot per allowed in-flight request.
///
/// Fails with [`Error::Unreachable`] if the first connection cannot be made: nothing is sent.
pub async fn slots(plan: &Plan) -> Result<Vec<HttpSlot>, Error> {
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
    let requests = plan
        .requests
        .iter()
        .map(|spec| Prepared::new(spec, target, plan.protocol))
        .collect();
    let shared = Arc::new(Shared {
        addr,
        tls,
        protocol: plan.protocol,
        connect_timeout: plan.limits.connect_timeout,
        requests,
        classifier: Classifier::new(&plan.rejected),
    });

    let slots_wanted = plan.concurrency();
    let conns_wanted = match plan.protocol {
        Protocol::Http1 => slots_wanted,
        Protocol::Http2 => plan.limits.connections.min(slots_wanted),
    };
    let first = shared
        .connect()
        .await
        .map_err(|reason| Error::Unreachable {
            target: target.url.clone(),
            reason,
        })?;
    let mut senders = vec![Some(first)];
    let mut set = tokio::task::JoinSet::new();
    for i in 1..conns_wanted {
        let s = shared.clone();
        set.spawn(async move { (i, s.connect().await.ok()) });
    }
    senders.resize_with(conns_wanted, || None);
    while let Some(joined) = set.join_next().await {
        if let Ok((i, sender)) = joined {
            senders[i] = sender;
        }
    }

    let slots = match plan.protocol {
        Protocol::Http1 => senders
            .into_iter()
            .map(|s| HttpSlot {
                shared: shared.clone(),
                kind: SlotKind::H1(match s {
                    Some(Sender::H1(t)) => Some(t),
                    _ => None,
                }),
            })
            .collect(),
        Protocol::Http2 => {
            let conns: Vec<Arc<H2Conn>> = senders
                .into_iter()
                .map(|s| {
                    let tx = match s {
                        Some(Sender::H2(t)) => Some(t),
                        _ => None,
                    };
                    Arc::new(H2Conn {
                        current: Mutex::new((1, tx)),
                    })
                })
                .collect();
            (0..slots_wanted)
                .map(|i| HttpSlot {
                    shared: shared.clone(),
                    kind: SlotKind::H2 {
                        conn: conns[i % conns.len()].clone(),
                        cached: None,
                    },
                })
                .collect()
        }
    };
    Ok(slots)
}
