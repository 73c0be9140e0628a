//! gRPC server reflection (`grpc.reflection.v1.ServerReflection`, and `v1alpha`, which has the
//! same messages): the client that fetches a method's schema from a live server, and the answer
//! the built-in server gives.
//!
//! The few messages involved are written out with prost's derive rather than generated, so no
//! build script or `protoc` is needed. The client asks for the file that defines the service,
//! then for any imported file the server did not send along, on one throw-away HTTP/2
//! connection, before the run's connections are opened.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use prost::Message;
use prost_reflect::prost_types::{FileDescriptorProto, FileDescriptorSet};
use prost_reflect::DescriptorPool;

use super::schema::SchemaError;
use super::{frame, unframe_flagged, Code};

/// `:path` of the reflection stream, newest version first.
pub const PATHS: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Service names of both reflection versions, as `list_services` reports them.
pub const SERVICES: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

#[derive(Clone, PartialEq, Message)]
pub struct ReflectionRequest {
    #[prost(string, tag = "1")]
    pub host: String,
    #[prost(oneof = "Ask", tags = "3, 4, 7")]
    pub ask: Option<Ask>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Ask {
    #[prost(string, tag = "3")]
    FileByFilename(String),
    #[prost(string, tag = "4")]
    FileContainingSymbol(String),
    #[prost(string, tag = "7")]
    ListServices(String),
}

#[derive(Clone, PartialEq, Message)]
pub struct ReflectionResponse {
    #[prost(string, tag = "1")]
    pub valid_host: String,
    #[prost(message, optional, tag = "2")]
    pub original_request: Option<ReflectionRequest>,
    #[prost(oneof = "Answer", tags = "4, 6, 7")]
    pub answer: Option<Answer>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Answer {
    #[prost(message, tag = "4")]
    Files(FileDescriptorResponse),
    #[prost(message, tag = "6")]
    Services(ListServiceResponse),
    #[prost(message, tag = "7")]
    Error(ErrorResponse),
}

#[derive(Clone, PartialEq, Message)]
pub struct FileDescriptorResponse {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub file_descriptor_proto: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListServiceResponse {
    #[prost(message, repeated, tag = "1")]
    pub service: Vec<ServiceResponse>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ServiceResponse {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ErrorResponse {
    #[prost(int32, tag = "1")]
    pub error_code: i32,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// Most bytes a compressed reflection answer may inflate to: a schema is kilobytes, and a
/// bound keeps a hostile or broken server from filling memory.
const MAX_INFLATED: u64 = 64 << 20;

/// A reflection answer sent compressed (its flag set) despite `grpc-accept-encoding:
/// identity`, inflated if the answer's `grpc-encoding` is gzip; any other encoding is named as
/// the problem.
fn decompress(encoding: Option<&str>, message: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    match encoding.map(str::trim) {
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(message)
                .take(MAX_INFLATED + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("the server compressed its reflection answer with gzip, and it does not inflate: {e}"))?;
            if out.len() as u64 > MAX_INFLATED {
                return Err(format!(
                    "the server's gzip-compressed reflection answer inflates beyond {} MiB",
                    MAX_INFLATED >> 20
                ));
            }
            Ok(out)
        }
        other => Err(format!(
            "the server compressed its reflection answer ({}) although metronome asked for none (grpc-accept-encoding: identity) and reads only gzip: turn compression off on the server for reflection, or give the schema with --proto",
            other.map_or_else(|| "no grpc-encoding said which way".to_string(), |e| format!("grpc-encoding: {}", crate::error::clip(e)))
        )),
    }
}

/// One HTTP/2 connection to the server, for reflection only.
pub struct Session {
    pub tx: http2::SendRequest<Full<Bytes>>,
    /// `http(s)://authority`, the base of every request's URI.
    pub base: String,
    pub target: String,
    pub timeout: Duration,
}

/// What one reflection stream answered.
enum Reply {
    /// The server has no reflection service of this version.
    Unimplemented,
    Answers(Vec<ReflectionResponse>),
}

impl Session {
    fn fail(&self, reason: impl Into<String>) -> SchemaError {
        SchemaError::Reflection {
            target: self.target.clone(),
            reason: reason.into(),
        }
    }

    /// Sends `asks` on one reflection stream of version `path` and reads every answer.
    async fn ask(&mut self, path: &str, asks: &[Ask]) -> Result<Reply, SchemaError> {
        let mut body = Vec::new();
        for a in asks {
            let req = ReflectionRequest {
                host: String::new(),
                ask: Some(a.clone()),
            };
            body.extend_from_slice(&frame(&req.encode_to_vec()));
        }
        let uri: Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|e| self.fail(format!("bad URI: {e}")))?;
        let req = Request::post(uri)
            .version(http::Version::HTTP_2)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            // Answers are decoded here: ask for them uncompressed (a server set to compress,
            // such as grpcio with gzip, then sends them plain). One that compresses anyway is
            // read below if it used gzip.
            .header("grpc-accept-encoding", "identity")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.fail(e.to_string()))?;
        let exchange = async {
            self.tx.ready().await.map_err(|e| chain(&e))?;
            let resp = self.tx.send_request(req).await.map_err(|e| chain(&e))?;
            let status = resp.status().as_u16();
            let encoding = resp
                .headers()
                .get("grpc-encoding")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let head_code = resp
                .headers()
                .get("grpc-status")
                .map(|v| Code::from_header(v.as_bytes()));
            let collected = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            let code = collected
                .trailers()
                .and_then(|t| t.get("grpc-status"))
                .map(|v| Code::from_header(v.as_bytes()))
                .or(head_code);
            let message = collected
                .trailers()
                .and_then(|t| t.get("grpc-message"))
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            Ok::<_, String>((status, code, message, encoding, collected.to_bytes()))
        };
        let (status, code, message, encoding, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.fail("no answer within the connect timeout"))?
            .map_err(|e| self.fail(e))?;
        let code = code.unwrap_or_else(|| {
            if status == 200 {
                Code::OK
            } else {
                Code::from_http(status)
            }
        });
        if code == Code::UNIMPLEMENTED {
            return Ok(Reply::Unimplemented);
        }
        if code != Code::OK {
            let why = message.map(|m| format!(": {m}")).unwrap_or_default();
            return Err(self.fail(format!(
                "the reflection call ended with {}{why}",
                code.name()
            )));
        }
        let parts = unframe_flagged(&bytes)
            .ok_or_else(|| self.fail("a reflection answer was cut short"))?;
        parts
            .into_iter()
            .map(|(compressed, p)| {
                let plain = if compressed {
                    std::borrow::Cow::Owned(
                        decompress(encoding.as_deref(), p).map_err(|e| self.fail(e))?,
                    )
                } else {
                    std::borrow::Cow::Borrowed(p)
                };
                ReflectionResponse::decode(plain.as_ref())
                    .map_err(|e| self.fail(format!("cannot decode a reflection answer: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Reply::Answers)
    }

    /// The version of reflection the server has (v1, else v1alpha), with the answers to `asks`.
    async fn first_ask(
        &mut self,
        asks: &[Ask],
    ) -> Result<(&'static str, Vec<ReflectionResponse>), SchemaError> {
        for path in PATHS {
            if let Reply::Answers(a) = self.ask(path, asks).await? {
                return Ok((path, a));
            }
        }
        Err(self.fail("the server has no reflection service (neither v1 nor v1alpha answered)"))
    }

    /// The schema of `service` and of every file it imports.
    pub async fn fetch(&mut self, service: &str) -> Result<DescriptorPool, SchemaError> {
        let (path, answers) = self
            .first_ask(&[Ask::FileContainingSymbol(service.to_string())])
            .await?;
        let mut files: Vec<FileDescriptorProto> = Vec::new();
        if let Some(err) = self.absorb(answers, &mut files)? {
            if err.error_code == i32::from(Code::NOT_FOUND.0) {
                let known = self.services(path).await.unwrap_or_default();
                return Err(SchemaError::UnknownService {
                    service: service.to_string(),
                    source_name: format!("the server's reflection ({})", self.target),
                    known: if known.is_empty() {
                        "nothing".into()
                    } else {
                        known.join(", ")
                    },
                });
            }
            return Err(self.fail(format!(
                "{} ({})",
                err.error_message,
                Code(err.error_code.clamp(0, 17) as u8).name()
            )));
        }
        // Servers usually send the imports along; ask for any that are missing, a few rounds.
        for _ in 0..16 {
            let have: HashSet<&str> = files.iter().map(|f| f.name()).collect();
            let missing: Vec<String> = files
                .iter()
                .flat_map(|f| f.dependency.iter())
                .filter(|d| !have.contains(d.as_str()))
                .cloned()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            if missing.is_empty() {
                break;
            }
            let asks: Vec<Ask> = missing.into_iter().map(Ask::FileByFilename).collect();
            let answers = match self.ask(path, &asks).await? {
                Reply::Answers(a) => a,
                Reply::Unimplemented => break,
            };
            if let Some(err) = self.absorb(answers, &mut files)? {
                return Err(self.fail(format!(
                    "an imported file is missing: {}",
                    err.error_message
                )));
            }
        }
        DescriptorPool::from_file_descriptor_set(FileDescriptorSet { file: files })
            .map_err(|e| self.fail(format!("the server's descriptors do not fit together: {e}")))
    }

    /// Adds the files of `answers` (once each); returns the first error answer, if any.
    fn absorb(
        &self,
        answers: Vec<ReflectionResponse>,
        files: &mut Vec<FileDescriptorProto>,
    ) -> Result<Option<ErrorResponse>, SchemaError> {
        for a in answers {
            match a.answer {
                Some(Answer::Files(f)) => {
                    for raw in f.file_descriptor_proto {
                        let fd = FileDescriptorProto::decode(raw.as_slice()).map_err(|e| {
                            self.fail(format!("cannot decode a file descriptor: {e}"))
                        })?;
                        if !files.iter().any(|have| have.name() == fd.name()) {
                            files.push(fd);
                        }
                    }
                }
                Some(Answer::Error(e)) => return Ok(Some(e)),
                _ => {}
            }
        }
        Ok(None)
    }

    async fn services(&mut self, path: &str) -> Result<Vec<String>, SchemaError> {
        let answers = match self.ask(path, &[Ask::ListServices(String::new())]).await? {
            Reply::Answers(a) => a,
            Reply::Unimplemented => return Ok(Vec::new()),
        };
        Ok(answers
            .into_iter()
            .filter_map(|a| match a.answer {
                Some(Answer::Services(s)) => Some(s.service.into_iter().map(|s| s.name)),
                _ => None,
            })
            .flatten()
            .collect())
    }
}

/// An error with its causes (`http2 error: connection reset`), and a hint when the server did
/// not speak HTTP/2 at all.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    if out.contains("http2 error") || out.contains("connection closed") {
        out.push_str(" (is this an HTTP/2 gRPC port? for TLS use grpcs://)");
    }
    out
}

/// The built-in server's answer to one reflection request, about the services of `pool`.
pub fn answer(pool: &DescriptorPool, request: &[u8]) -> ReflectionResponse {
    let req = ReflectionRequest::decode(request).unwrap_or_default();
    let files = |names: &dyn Fn(&FileDescriptorProto) -> bool| -> Vec<Vec<u8>> {
        pool.file_descriptor_protos()
            .filter(|f| names(f))
            .map(|f| f.encode_to_vec())
            .collect()
    };
    let not_found = |what: &str| {
        Answer::Error(ErrorResponse {
            error_code: i32::from(Code::NOT_FOUND.0),
            error_message: format!("{what} not found"),
        })
    };
    let answer = match &req.ask {
        Some(Ask::ListServices(_)) => Answer::Services(ListServiceResponse {
            service: pool
                .services()
                .map(|s| s.full_name().to_string())
                .chain(SERVICES.iter().map(|s| s.to_string()))
                .map(|name| ServiceResponse { name })
                .collect(),
        }),
        Some(Ask::FileByFilename(name)) => {
            let found = files(&|f| f.name() == name);
            if found.is_empty() {
                not_found(name)
            } else {
                Answer::Files(FileDescriptorResponse {
                    file_descriptor_proto: found,
                })
            }
        }
        Some(Ask::FileContainingSymbol(symbol)) => {
            let owner = pool
                .get_service_by_name(symbol)
                .map(|s| s.parent_file().name().to_string())
                .or_else(|| {
                    pool.get_message_by_name(symbol)
                        .map(|m| m.parent_file().name().to_string())
                })
                .or_else(|| {
                    let (svc, _) = symbol.rsplit_once('.')?;
                    pool.get_service_by_name(svc)
                        .map(|s| s.parent_file().name().to_string())
                });
            match owner {
                // The demo's files import nothing outside the pool: send them all.
                Some(_) => Answer::Files(FileDescriptorResponse {
                    file_descriptor_proto: files(&|_| true),
                }),
                None => not_found(symbol),
            }
        }
        None => Answer::Error(ErrorResponse {
            error_code: i32::from(Code::UNIMPLEMENTED.0),
            error_message:
                "only list_services, file_by_filename and file_containing_symbol are answered"
                    .into(),
        }),
    };
    ReflectionResponse {
        valid_host: req.host.clone(),
        original_request: Some(req),
        answer: Some(answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressed_answer_is_inflated_if_gzip_and_named_otherwise() {
        use std::io::Write as _;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"schema").unwrap();
        let packed = z.finish().unwrap();
        assert_eq!(decompress(Some("gzip"), &packed).unwrap(), b"schema");
        for (encoding, says) in [
            (Some("deflate"), "grpc-encoding: deflate"),
            (None, "no grpc-encoding"),
        ] {
            let err = decompress(encoding, &packed).unwrap_err();
            assert!(err.contains("compressed its reflection answer"), "{err}");
            assert!(err.contains(says), "{err}");
        }
        let err = decompress(Some("gzip"), b"not gzip").unwrap_err();
        assert!(err.contains("gzip"), "{err}");
    }
}
