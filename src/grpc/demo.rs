//! The built-in gRPC service (`metronome.demo.v1.Demo`) that `metronome serve` answers beside
//! HTTP, so `demo` and the tests need no files. Its schema is the checked-in
//! `proto/metronome/demo/v1/demo.proto`, embedded and compiled at start-up with protox: the same
//! path a user's `--proto` takes, and no build script.

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};

/// The schema's file name, as imports and reflection see it.
pub const FILE: &str = "metronome/demo/v1/demo.proto";
/// The schema's text.
pub const SOURCE: &str = include_str!("../../proto/metronome/demo/v1/demo.proto");
pub const SERVICE: &str = "metronome.demo.v1.Demo";
/// `:path` of the unary method.
pub const PING: &str = "/metronome.demo.v1.Demo/Ping";
/// `:path` of the server-streaming method.
pub const STREAM: &str = "/metronome.demo.v1.Demo/Stream";
/// `:path` of the client-streaming method.
pub const COLLECT: &str = "/metronome.demo.v1.Demo/Collect";
/// `:path` of the bidirectional method.
pub const CHAT: &str = "/metronome.demo.v1.Demo/Chat";
/// Most replies one `Stream` call may ask for: a bound on the work one request can cause.
pub const MAX_STREAM_REPLIES: u32 = 100_000;

/// Resolves only the embedded demo file.
struct Embedded;

impl protox::file::FileResolver for Embedded {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        if name == FILE {
            protox::file::File::from_source(name, SOURCE)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

/// The demo's descriptors.
pub fn pool() -> Result<DescriptorPool, String> {
    let mut c = protox::Compiler::with_file_resolver(Embedded);
    c.open_file(FILE).map_err(|e| format!("{e:?}"))?;
    Ok(c.descriptor_pool())
}

/// What a `Stream` call asked for: how many replies, and how far apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamAsk {
    pub count: u32,
    pub interval_ms: u32,
}

/// The demo's schema and its answers, encoded once.
#[derive(Debug)]
pub struct Demo {
    pub pool: DescriptorPool,
    /// The framed `PingReply`.
    pub ping_reply: Bytes,
    stream_request: prost_reflect::MessageDescriptor,
    stream_reply: prost_reflect::MessageDescriptor,
}

impl Demo {
    pub fn new() -> Result<Demo, String> {
        let pool = pool()?;
        let get = |name: &str| {
            pool.get_message_by_name(name)
                .ok_or_else(|| format!("the demo schema has no {name}"))
        };
        let mut reply = DynamicMessage::new(get("metronome.demo.v1.PingReply")?);
        reply.set_field_by_name("message", Value::String("pong".into()));
        Ok(Demo {
            ping_reply: super::frame(&reply.encode_to_vec()),
            stream_request: get("metronome.demo.v1.StreamRequest")?,
            stream_reply: get("metronome.demo.v1.StreamReply")?,
            pool,
        })
    }

    /// Reads a `StreamRequest` (one framed message); `None` if it is not one.
    pub fn stream_ask(&self, body: &[u8]) -> Option<StreamAsk> {
        let parts = super::unframe(body)?;
        let [one] = parts.as_slice() else {
            return None;
        };
        let msg = DynamicMessage::decode(self.stream_request.clone(), *one).ok()?;
        let int = |name: &str| match msg.get_field_by_name(name).as_deref() {
            Some(Value::U32(n)) => *n,
            _ => 0,
        };
        Some(StreamAsk {
            count: int("count").min(MAX_STREAM_REPLIES),
            interval_ms: int("interval_ms").min(60_000),
        })
    }

    /// The framed `PingReply` whose message is `n`, the count a `Collect` call sent.
    pub fn collect_reply(&self, n: usize) -> Option<Bytes> {
        let desc = self
            .pool
            .get_message_by_name("metronome.demo.v1.PingReply")?;
        let mut m = DynamicMessage::new(desc);
        m.set_field_by_name("message", Value::String(n.to_string()));
        Some(super::frame(&m.encode_to_vec()))
    }

    /// The framed `StreamReply` number `index`.
    pub fn stream_reply(&self, index: u32) -> Bytes {
        let mut m = DynamicMessage::new(self.stream_reply.clone());
        m.set_field_by_name("index", Value::U32(index));
        super::frame(&m.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_schema_compiles_and_reads_its_requests() {
        let d = Demo::new().unwrap();
        assert!(d.pool.get_service_by_name(SERVICE).is_some());
        let m = d.pool.get_service_by_name(SERVICE).unwrap();
        let stream = m.methods().find(|m| m.name() == "Stream").unwrap();
        assert!(stream.is_server_streaming());
        let body = crate::grpc::schema::encode(&stream, br#"{"count":3,"intervalMs":2}"#).unwrap();
        assert_eq!(
            d.stream_ask(&body),
            Some(StreamAsk {
                count: 3,
                interval_ms: 2
            })
        );
        assert_eq!(d.stream_ask(b"\0\0\0\0\x09xx"), None);
    }
}
