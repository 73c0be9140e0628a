//! The called method's schema, and the request message encoded once.
//!
//! Descriptors come from `.proto` files compiled at run time by protox (no `protoc` needed), or
//! from the server's reflection service ([`super::reflect`]). Either way the result is a
//! [`DescriptorPool`] in which `--call` must name a method; the `-b` JSON is then checked
//! against the method's input message (proto3 JSON mapping: an unknown field or a wrong type is
//! refused) and encoded a single time, so the hot path only clones bytes.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor};

use crate::error::clip;

/// Why the call cannot be prepared. Each says what, where, and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("invalid --call '{}': {reason} (expected package.Service/Method, e.g. --call metronome.demo.v1.Demo/Ping)", clip(call))]
    Call { call: String, reason: String },

    #[error("cannot compile the .proto files: {detail} (check the file, and give the directories its imports are under with --import-path)")]
    Compile { detail: String },

    #[error(
        "unknown service '{}' in {source_name}; it has: {known} (check --call)",
        clip(service)
    )]
    UnknownService {
        service: String,
        source_name: String,
        known: String,
    },

    #[error(
        "service {service} has no method '{}'; it has: {known} (check --call)",
        clip(method)
    )]
    UnknownMethod {
        service: String,
        method: String,
        known: String,
    },

    /// `hint` says where the body came from and how to write it: `-b`, or a profile request's
    /// `body` (see [`SchemaError::in_request`]).
    #[error("the request body does not match {message}: {reason} ({hint})")]
    Body {
        message: String,
        reason: String,
        hint: &'static str,
    },

    /// An error about one `[[request]]` of a profile's mix, which `place` names (its name or
    /// position, and the file), so that a mix of many calls says which one is wrong.
    #[error("{place}: {inner}")]
    InRequest {
        place: String,
        inner: Box<SchemaError>,
    },

    #[error("--messages {count} for {path}: a unary or server-streaming method takes exactly one request message (drop --messages, or call a client-streaming or bidirectional method)")]
    Messages { path: String, count: u32 },

    #[error("--messages {count} × {each} bytes is {total} bytes per call, above the {limit}-byte limit of a request stream (send fewer or smaller messages)")]
    TooLarge {
        count: usize,
        each: usize,
        total: u128,
        limit: u64,
    },

    #[error("server reflection at {target} failed: {reason} (give the schema with --proto FILE, or enable reflection on the server)")]
    Reflection { target: String, reason: String },

    /// Before reflection could be asked: the target itself is out of reach, so `--proto` would
    /// not help; the reason says what would.
    #[error("cannot reach {target} to ask its reflection service for the schema: {reason}")]
    Unreachable { target: String, reason: String },
}

/// How to write `-b`, for a body that does not match its message.
const BODY_FLAG_HINT: &str =
    "-b takes the message as JSON in the proto3 mapping, e.g. -b '{\"message\":\"hi\"}'";
/// How to write a profile request's `body`, for one that does not match its message.
const BODY_KEY_HINT: &str = "the request's body takes the message as JSON in the proto3 mapping, e.g. body = '{\"message\": \"hi\"}'";

impl SchemaError {
    /// This error, about the profile request `place` (`[[request]] "ping" of mix.toml`), or
    /// unchanged when the call came from `--call` and `-b` (`place` is `None`). A body error
    /// then points at the request's `body`, not at `-b`.
    pub fn in_request(self, place: Option<&str>) -> SchemaError {
        let Some(place) = place else {
            return self;
        };
        let inner = match self {
            SchemaError::Body {
                message, reason, ..
            } => SchemaError::Body {
                message,
                reason,
                hint: BODY_KEY_HINT,
            },
            other => other,
        };
        SchemaError::InRequest {
            place: place.to_string(),
            inner: Box::new(inner),
        }
    }
}

/// `package.Service/Method` (or ghz's `package.Service.Method`), split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallName {
    pub service: String,
    pub method: String,
}

impl CallName {
    pub fn parse(raw: &str) -> Result<CallName, SchemaError> {
        let bad = |reason: &str| SchemaError::Call {
            call: raw.to_string(),
            reason: reason.to_string(),
        };
        let t = raw.trim().trim_start_matches('/');
        let (service, method) = match t.split_once('/') {
            Some(pair) => pair,
            None => t
                .rsplit_once('.')
                .ok_or_else(|| bad("no '/' between the service and the method"))?,
        };
        let ident = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|part| {
                    part.chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
        };
        if !ident(service) {
            return Err(bad("the service is not a dotted protobuf name"));
        }
        if !ident(method) || method.contains('.') {
            return Err(bad("the method is not a protobuf identifier"));
        }
        Ok(CallName {
            service: service.to_string(),
            method: method.to_string(),
        })
    }

    /// The HTTP/2 `:path` of the call.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.service, self.method)
    }
}

/// Compiles `protos` with the `imports` directories (and each file's own directory) on the
/// include path. Well-known types (`google/protobuf/*.proto`) need no files.
pub fn compile(protos: &[PathBuf], imports: &[PathBuf]) -> Result<DescriptorPool, SchemaError> {
    for p in protos {
        if !p.is_file() {
            return Err(SchemaError::Compile {
                detail: format!("'{}' is not a readable file", crate::error::clip_path(p)),
            });
        }
    }
    let mut includes: Vec<PathBuf> = imports.to_vec();
    for p in protos {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !includes.iter().any(|i| i == dir) {
            includes.push(dir.to_path_buf());
        }
    }
    let failed = |e: protox::Error| SchemaError::Compile {
        detail: describe(&e),
    };
    let mut compiler = protox::Compiler::new(&includes).map_err(failed)?;
    compiler.include_imports(true);
    compiler.open_files(protos).map_err(failed)?;
    Ok(compiler.descriptor_pool())
}

/// A protox error with its place: the Debug form carries `file:line:column` for parse and check
/// errors, the Display form only the message.
fn describe(e: &protox::Error) -> String {
    let shown = e.to_string();
    let debug = format!("{e:?}");
    let first = debug.lines().next().unwrap_or("").trim();
    if first.contains(':') && first.len() > shown.len() && !first.starts_with("Error") {
        clip(first).into_owned()
    } else {
        match e.file() {
            Some(f) if !shown.contains(f) => format!("{f}: {shown}"),
            _ => shown,
        }
    }
}

/// The method `call` names in `pool`; `source_name` says where the pool came from, for errors.
pub fn find(
    pool: &DescriptorPool,
    call: &CallName,
    source_name: &str,
) -> Result<MethodDescriptor, SchemaError> {
    let Some(service) = pool.get_service_by_name(&call.service) else {
        let known: Vec<String> = pool.services().map(|s| s.full_name().to_string()).collect();
        return Err(SchemaError::UnknownService {
            service: call.service.clone(),
            source_name: source_name.to_string(),
            known: list(&known),
        });
    };
    let found = service.methods().find(|m| m.name() == call.method);
    found.ok_or_else(|| SchemaError::UnknownMethod {
        service: service.full_name().to_string(),
        method: call.method.clone(),
        known: list(
            &service
                .methods()
                .map(|m| m.name().to_string())
                .collect::<Vec<_>>(),
        ),
    })
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_string()
    } else {
        clip(&names.join(", ")).into_owned()
    }
}

/// The request message from JSON, checked against the method's input type, encoded and framed.
pub fn encode(method: &MethodDescriptor, json: &[u8]) -> Result<Bytes, SchemaError> {
    encode_n(method, json, None)
}

/// [`encode`], `messages` times over for a client-streaming or bidirectional method (default
/// 1): the whole request stream of one call, built once.
pub fn encode_n(
    method: &MethodDescriptor,
    json: &[u8],
    messages: Option<u32>,
) -> Result<Bytes, SchemaError> {
    if let Some(count) = messages.filter(|&n| n != 1 && !method.is_client_streaming()) {
        return Err(SchemaError::Messages {
            path: format!("/{}/{}", method.parent_service().full_name(), method.name()),
            count,
        });
    }
    let input = method.input();
    let bad = |reason: String| SchemaError::Body {
        message: input.full_name().to_string(),
        reason,
        hint: BODY_FLAG_HINT,
    };
    let text = if json.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        json
    };
    let mut de = serde_json::Deserializer::from_slice(text);
    let msg =
        DynamicMessage::deserialize(input.clone(), &mut de).map_err(|e| bad(e.to_string()))?;
    de.end().map_err(|e| bad(e.to_string()))?;
    let one = super::frame(&msg.encode_to_vec());
    let n = messages.unwrap_or(1) as usize;
    let total = one.len() as u128 * n as u128;
    if total > u128::from(crate::input::MAX_BODY) {
        return Err(SchemaError::TooLarge {
            count: n,
            each: one.len(),
            total,
            limit: crate::input::MAX_BODY,
        });
    }
    Ok(if n == 1 { one } else { one.repeat(n).into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> DescriptorPool {
        super::super::demo::pool().unwrap()
    }

    #[test]
    fn call_names() {
        let c = CallName::parse("metronome.demo.v1.Demo/Ping").unwrap();
        assert_eq!(c.path(), "/metronome.demo.v1.Demo/Ping");
        assert_eq!(CallName::parse("a.B.C").unwrap().path(), "/a.B/C");
        for bad in ["", "Ping", "a.B/", "/x", "a b/C", "a.B/C.D"] {
            assert!(CallName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn methods_and_bodies() {
        let pool = demo();
        let call = CallName::parse("metronome.demo.v1.Demo/Ping").unwrap();
        let m = find(&pool, &call, "test").unwrap();
        let framed = encode(&m, br#"{"message":"hi"}"#).unwrap();
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 4]);
        assert_eq!(encode(&m, b"").unwrap().len(), 5);
        let e = encode(&m, br#"{"mesage":"hi"}"#).unwrap_err().to_string();
        assert!(e.contains("mesage"), "{e}");
        let e = encode(&m, br#"{"message":5}"#).unwrap_err().to_string();
        assert!(e.contains("PingRequest"), "{e}");
        let e = find(&pool, &CallName::parse("x.Y/Z").unwrap(), "test")
            .unwrap_err()
            .to_string();
        assert!(e.contains("metronome.demo.v1.Demo"), "{e}");
        let e = find(
            &pool,
            &CallName::parse("metronome.demo.v1.Demo/Pong").unwrap(),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("Ping, Stream, Collect, Chat"), "{e}");
        let c = find(
            &pool,
            &CallName::parse("metronome.demo.v1.Demo/Collect").unwrap(),
            "t",
        )
        .unwrap();
        assert_eq!(encode_n(&c, b"{}", Some(3)).unwrap().len(), 15);
        assert!(encode_n(&m, b"{}", Some(3)).is_err());
        let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(1 << 20));
        let e = encode_n(&c, big.as_bytes(), Some(100))
            .unwrap_err()
            .to_string();
        assert!(e.contains("above the 67108864-byte limit"), "{e}");
    }

    #[test]
    fn compile_errors_name_the_file_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let f = dir.join("broken.proto");
        std::fs::write(&f, "syntax = \"proto3\";\nmessage A {\n  strin x = 1;\n}\n").unwrap();
        let e = compile(&[f], &[]).unwrap_err().to_string();
        assert!(e.contains("broken.proto:3"), "{e}");
        let e = compile(&[dir.join("missing.proto")], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.proto"), "{e}");
    }
}
