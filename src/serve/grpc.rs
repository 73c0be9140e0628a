//! The gRPC side of `metronome serve`, on the same port as HTTP: a POST with a gRPC content type
//! is a call to the demo service (`metronome.demo.v1.Demo`, see [`crate::grpc::demo`]) or to
//! server reflection. Calls go through the very same arrival counting, rate limit, admission,
//! service time, stalls and error injection as HTTP requests ([`State::admit`]); only the
//! answer's form differs:
//!
//! | verdict | HTTP | gRPC |
//! |---|---|---|
//! | rate limited | 429 + Retry-After | RESOURCE_EXHAUSTED + `grpc-retry-pushback-ms` |
//! | queue full (shed) | 503 (+ Retry-After) | UNAVAILABLE (+ `grpc-retry-pushback-ms`) |
//! | injected error | 500 | INTERNAL |
//! | served | 200 | OK: one `PingReply`, or `count` `StreamReply`s |
//!
//! Failures are "trailers-only" answers (the status in the headers, no body), as gRPC servers
//! send them. Request messages are read whole (up to `max_body`) and never decoded for `Ping`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::sync::mpsc;

use super::{Out, Reply, State, Verdict};
use crate::grpc::demo::{CHAT, COLLECT, PING, STREAM};
use crate::grpc::{reflect, Code};

/// A gRPC call: HTTP/2 with a `application/grpc` (or `application/grpc+proto`) content type.
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.version() == http::Version::HTTP_2
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Headers of every gRPC answer.
fn head() -> http::response::Builder {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/grpc")
}

/// A trailers-only answer: the status (and message, and a retry hint) in the headers.
fn trailers_only(code: Code, message: &str, pushback: Option<Duration>) -> Reply {
    let mut r = Response::new(Out::Whole(Full::new(Bytes::new())));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from(u16::from(code.0)));
    if let Ok(v) = HeaderValue::from_str(message) {
        h.insert("grpc-message", v);
    }
    if let Some(p) = pushback {
        h.insert(
            "grpc-retry-pushback-ms",
            HeaderValue::from(u64::try_from(p.as_millis()).unwrap_or(u64::MAX)),
        );
    }
    r
}

fn invalid(message: &str) -> Reply {
    trailers_only(Code::INVALID_ARGUMENT, message, None)
}

/// Trailers closing a stream with `code`.
fn status_trailers(code: Code) -> Frame<Bytes> {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from(u16::from(code.0)));
    Frame::trailers(t)
}

/// An answer whose frames come from `rx`.
fn streamed(rx: mpsc::Receiver<Frame<Bytes>>) -> Reply {
    head()
        .body(Out::Frames(rx))
        .unwrap_or_else(|_| trailers_only(Code::INTERNAL, "cannot build the answer", None))
}

/// A request message read whole, or why not.
enum Read {
    Done(Bytes),
    TooLarge,
    Stalled,
}

async fn read_bounded(mut body: Incoming, max: u64, idle: Duration) -> Read {
    if body.size_hint().lower() > max {
        return Read::TooLarge;
    }
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Read::Stalled,
            Ok(None) | Ok(Some(Err(_))) => return Read::Done(buf.freeze()),
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if (buf.len() + data.len()) as u64 > max {
                        return Read::TooLarge;
                    }
                    buf.extend_from_slice(data);
                }
            }
        }
    }
}

/// What a demo call asks for, known before admission.
enum Shape {
    Ping,
    Stream(crate::grpc::demo::StreamAsk),
    /// Client streaming: this many requests, one reply.
    Collect(usize),
    /// Bidirectional: one reply per request.
    Chat(usize),
}

impl State {
    pub(super) async fn handle_grpc(self: &Arc<Self>, req: Request<Incoming>) -> Reply {
        let path = req.uri().path().to_string();
        if reflect::PATHS.contains(&path.as_str()) {
            self.counters.reflection.fetch_add(1, Ordering::Relaxed);
            return self.reflection(req.into_body());
        }
        let arrived = self.arrival(&req);
        let c = &self.counters;
        let body = match read_bounded(
            req.into_body(),
            self.config.max_body,
            self.config.idle_timeout,
        )
        .await
        {
            Read::Done(b) => b,
            Read::TooLarge => {
                c.too_large.fetch_add(1, Ordering::Relaxed);
                return trailers_only(
                    Code::RESOURCE_EXHAUSTED,
                    "request message above the server's max-body",
                    None,
                );
            }
            Read::Stalled => {
                c.timed_out.fetch_add(1, Ordering::Relaxed);
                return trailers_only(Code::CANCELLED, "request stalled", None);
            }
        };
        let stream = match path.as_str() {
            PING => Shape::Ping,
            STREAM => match self.demo.stream_ask(&body) {
                Some(ask) => Shape::Stream(ask),
                None => return invalid("expected one StreamRequest"),
            },
            COLLECT | CHAT => match crate::grpc::unframe(&body) {
                Some(parts) if path == COLLECT => Shape::Collect(parts.len()),
                Some(parts) => Shape::Chat(parts.len()),
                None => return invalid("a request message was cut short"),
            },
            _ => return trailers_only(Code::UNIMPLEMENTED, "unknown method", None),
        };
        match self.admit(arrived).await {
            Verdict::Limited(wait) => {
                trailers_only(Code::RESOURCE_EXHAUSTED, "rate limited", Some(wait))
            }
            Verdict::Shed => {
                trailers_only(Code::UNAVAILABLE, "overloaded", self.config.retry_after)
            }
            Verdict::Failed => trailers_only(Code::INTERNAL, "injected error", None),
            Verdict::Lost => trailers_only(Code::UNAVAILABLE, "shutting down", None),
            Verdict::Served => match stream {
                Shape::Ping => self.replies(self.demo.ping_reply.clone(), 1),
                Shape::Collect(n) => match self.demo.collect_reply(n) {
                    Some(reply) => self.replies(reply, 1),
                    None => trailers_only(Code::INTERNAL, "no PingReply in the schema", None),
                },
                Shape::Chat(n) => self.replies(self.demo.ping_reply.clone(), n),
                Shape::Stream(ask) => {
                    let (tx, rx) = mpsc::channel(16);
                    let state = self.clone();
                    tokio::spawn(async move {
                        for i in 0..ask.count {
                            if i > 0 && ask.interval_ms > 0 {
                                tokio::time::sleep(Duration::from_millis(u64::from(
                                    ask.interval_ms,
                                )))
                                .await;
                            }
                            // A full channel is the client's flow control pushing back.
                            if tx
                                .send(Frame::data(state.demo.stream_reply(i)))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        let _ = tx.send(status_trailers(Code::OK)).await;
                    });
                    streamed(rx)
                }
            },
        }
    }

    /// `n` copies of one framed reply, then OK.
    fn replies(self: &Arc<Self>, reply: Bytes, n: usize) -> Reply {
        if n < 16 {
            // Few enough to queue at once: no task needed (the unary hot path).
            let (tx, rx) = mpsc::channel(n + 1);
            for _ in 0..n {
                let _ = tx.try_send(Frame::data(reply.clone()));
            }
            let _ = tx.try_send(status_trailers(Code::OK));
            return streamed(rx);
        }
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            for _ in 0..n {
                if tx.send(Frame::data(reply.clone())).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(status_trailers(Code::OK)).await;
        });
        streamed(rx)
    }

    /// Server reflection (v1 and v1alpha): each request message is answered as it arrives, so
    /// clients that wait for one answer before asking the next are served too.
    fn reflection(self: &Arc<Self>, mut body: Incoming) -> Reply {
        let (tx, rx) = mpsc::channel(4);
        let state = self.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::new();
            let idle = state.config.idle_timeout;
            while let Ok(Some(Ok(frame))) = tokio::time::timeout(idle, body.frame()).await {
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                buf.extend_from_slice(data);
                if buf.len() as u64 > state.config.max_body {
                    let _ = tx.send(status_trailers(Code::RESOURCE_EXHAUSTED)).await;
                    return;
                }
                while buf.len() >= 5 {
                    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                    if buf.len() < 5 + len {
                        break;
                    }
                    let msg = buf.split_to(5 + len);
                    let answer = reflect::answer(&state.demo.pool, &msg[5..]);
                    let framed = crate::grpc::frame(&prost::Message::encode_to_vec(&answer));
                    if tx.send(Frame::data(framed)).await.is_err() {
                        return;
                    }
                }
            }
            let _ = tx.send(status_trailers(Code::OK)).await;
        });
        streamed(rx)
    }
}
