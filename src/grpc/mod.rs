//! gRPC: everything about the protocol that is not a connection.
//!
//! metronome speaks gRPC over the same HTTP/2 connections it owns for `--http2` (see
//! [`crate::transport::grpc`]): a call is a POST of a length-prefixed message, and its outcome is
//! the `grpc-status` trailer. This module holds what turns `--call`, `--proto` and `-b` into
//! bytes on the wire, once, before the clock starts:
//!
//! - [`schema`]: the method's descriptors, from `.proto` files compiled at run time (protox, no
//!   `protoc`) or from the server's reflection service ([`reflect`]);
//! - the JSON body checked against the request message and encoded once ([`frame`]);
//! - [`Code`]: the status codes, by name, for flags and reports;
//! - [`demo`]: the built-in service that `metronome serve` answers.

pub mod demo;
pub mod reflect;
pub mod schema;

use bytes::{BufMut, Bytes, BytesMut};

/// A gRPC status code (0..=16). Codes outside the table are kept as [`Code::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub u8);

/// The canonical names, indexed by code.
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

impl Code {
    pub const OK: Code = Code(0);
    pub const CANCELLED: Code = Code(1);
    pub const UNKNOWN: Code = Code(2);
    pub const INVALID_ARGUMENT: Code = Code(3);
    pub const DEADLINE_EXCEEDED: Code = Code(4);
    pub const NOT_FOUND: Code = Code(5);
    pub const RESOURCE_EXHAUSTED: Code = Code(8);
    pub const UNIMPLEMENTED: Code = Code(12);
    pub const INTERNAL: Code = Code(13);
    pub const UNAVAILABLE: Code = Code(14);
    /// Any code above 16: counted together, named `OTHER`.
    pub const OTHER: Code = Code(17);

    /// The code in a `grpc-status` value; an unparsable value is UNKNOWN, as the spec says.
    pub fn from_header(value: &[u8]) -> Code {
        std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .map_or(Code::UNKNOWN, |n| {
                Code(u8::try_from(n.min(17)).unwrap_or(17))
            })
    }

    /// The canonical name (`RESOURCE_EXHAUSTED`), or `OTHER` beyond the table.
    pub fn name(self) -> &'static str {
        CODE_NAMES
            .get(usize::from(self.0))
            .copied()
            .unwrap_or("OTHER")
    }

    /// A name (any case, `resource_exhausted`) or a number (`8`).
    pub fn parse(text: &str) -> Option<Code> {
        let t = text.trim();
        if let Ok(n) = t.parse::<u8>() {
            return (usize::from(n) < CODE_NAMES.len()).then_some(Code(n));
        }
        CODE_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(t))
            .and_then(|i| u8::try_from(i).ok())
            .map(Code)
    }

    /// The code a gRPC client must assume when the HTTP status is not 200 and there is no
    /// `grpc-status` (the gRPC over HTTP/2 spec's table).
    pub fn from_http(status: u16) -> Code {
        match status {
            400 => Code::INTERNAL,
            401 => Code(16),
            403 => Code(7),
            404 => Code::UNIMPLEMENTED,
            429 | 502..=504 => Code::UNAVAILABLE,
            _ => Code::UNKNOWN,
        }
    }
}

/// Number of per-code counters: 0..=16 and [`Code::OTHER`].
pub const CODE_SLOTS: usize = 18;

/// A comma-separated list of codes (`RESOURCE_EXHAUSTED,UNAVAILABLE` or `8,14`).
pub fn parse_codes(raw: &str) -> Result<Vec<Code>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            Code::parse(s).ok_or_else(|| {
                format!(
                    "'{}' is not a gRPC status code (give names such as RESOURCE_EXHAUSTED,UNAVAILABLE or numbers 0-16)",
                    crate::error::clip(s)
                )
            })
        })
        .collect()
}

/// One message in gRPC's length-prefixed framing: flag 0 (not compressed), 4-byte big-endian
/// length, the message.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// Splits a body of length-prefixed messages into their payloads; `None` if it is cut short.
pub fn unframe(body: &[u8]) -> Option<Vec<&[u8]>> {
    unframe_flagged(body).map(|parts| parts.into_iter().map(|(_, p)| p).collect())
}

/// [`unframe`], with each message's compressed flag (the prefix's first byte is 1), for the
/// answers metronome decodes (reflection): a compressed one must be inflated first.
pub fn unframe_flagged(mut body: &[u8]) -> Option<Vec<(bool, &[u8])>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        if body.len() < 5 {
            return None;
        }
        let compressed = body[0] == 1;
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let rest = &body[5..];
        if rest.len() < len {
            return None;
        }
        out.push((compressed, &rest[..len]));
        body = &rest[len..];
    }
    Some(out)
}

/// Counts the messages of a response as its DATA frames arrive, without keeping them: only the
/// 5-byte prefixes are read, so a large or long stream costs no copies.
#[derive(Debug, Default)]
pub struct MessageCounter {
    /// Bytes of the current prefix seen so far (0..5).
    head: [u8; 5],
    head_len: usize,
    /// Payload bytes still to skip in the current message.
    left: u64,
    /// Complete messages seen.
    pub messages: u32,
}

impl MessageCounter {
    /// Feeds one DATA frame; returns how many messages it completed.
    pub fn feed(&mut self, mut data: &[u8]) -> u32 {
        let before = self.messages;
        while !data.is_empty() {
            if self.left > 0 {
                let skip = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                data = &data[skip..];
                self.left -= skip as u64;
                if self.left == 0 {
                    self.messages = self.messages.saturating_add(1);
                }
                continue;
            }
            let take = (5 - self.head_len).min(data.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
            self.head_len += take;
            data = &data[take..];
            if self.head_len == 5 {
                self.head_len = 0;
                let h = self.head;
                self.left = u64::from(u32::from_be_bytes([h[1], h[2], h[3], h[4]]));
                if self.left == 0 {
                    self.messages = self.messages.saturating_add(1);
                }
            }
        }
        self.messages - before
    }

    /// True when the stream stopped inside a message.
    pub fn partial(&self) -> bool {
        self.left > 0 || self.head_len > 0
    }
}

/// `grpc-timeout` for a deadline: at most 8 digits, in the coarsest unit that keeps it exact
/// enough (milliseconds up to ~27 h).
pub fn timeout_header(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 100_000_000 {
        format!("{}m", ms.max(1))
    } else {
        format!("{}S", d.as_secs().min(99_999_999))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_by_name_and_number() {
        assert_eq!(
            Code::parse("resource_exhausted"),
            Some(Code::RESOURCE_EXHAUSTED)
        );
        assert_eq!(Code::parse("14"), Some(Code::UNAVAILABLE));
        assert_eq!(Code::parse("17"), None);
        assert_eq!(Code::parse("NOPE"), None);
        assert_eq!(Code::from_header(b"8"), Code::RESOURCE_EXHAUSTED);
        assert_eq!(Code::from_header(b"x"), Code::UNKNOWN);
        assert_eq!(Code::from_header(b"99").name(), "OTHER");
        assert_eq!(Code::from_http(503), Code::UNAVAILABLE);
        assert!(parse_codes("8, UNAVAILABLE").is_ok());
        assert!(parse_codes("8,bogus").unwrap_err().contains("bogus"));
    }

    #[test]
    fn messages_are_counted_across_frame_boundaries() {
        let mut body = Vec::new();
        for m in [&b"abc"[..], b"", b"0123456789"] {
            body.extend_from_slice(&frame(m));
        }
        assert_eq!(unframe(&body).unwrap().len(), 3);
        for cut in 0..body.len() {
            let mut c = MessageCounter::default();
            c.feed(&body[..cut]);
            c.feed(&body[cut..]);
            assert_eq!(c.messages, 3, "cut at {cut}");
            assert!(!c.partial());
        }
        let mut c = MessageCounter::default();
        c.feed(&body[..7]);
        assert!(c.partial());
        assert!(unframe(&body[..7]).is_none());
    }

    #[test]
    fn timeouts() {
        assert_eq!(timeout_header(std::time::Duration::from_secs(10)), "10000m");
        assert_eq!(timeout_header(std::time::Duration::from_micros(10)), "1m");
    }
}
