//! The run's histograms, carried losslessly in the JSON report (schema 4) so that `compare` and
//! `run --baseline` work on the recorded values, never on rounded percentiles.
//!
//! Encoding: the HdrHistogram V2 format, deflate-compressed, base64 (the form HdrHistogram's
//! interval logs use in every language), so other tools can read them too.

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::ser::SerializeMap;
use serde::Serialize;

/// The name written as `histograms.encoding`.
pub const ENCODING: &str = "hdrhistogram-v2-deflate-base64";

/// Every clock's whole-run histogram (µs).
#[derive(Clone, Debug)]
pub struct Histograms {
    pub latency: Histogram<u64>,
    pub service_time: Histogram<u64>,
    pub send_lag: Histogram<u64>,
    /// Latency of successful requests (2 significant digits).
    pub latency_ok: Histogram<u64>,
}

impl Histograms {
    /// The clocks by name, as written in the report.
    pub fn named(&self) -> [(&'static str, &Histogram<u64>); 4] {
        [
            ("latency", &self.latency),
            ("service_time", &self.service_time),
            ("send_lag", &self.send_lag),
            ("latency_ok", &self.latency_ok),
        ]
    }
}

impl Serialize for Histograms {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("encoding", ENCODING)?;
        for (name, h) in self.named() {
            map.serialize_entry(name, &encode(h))?;
        }
        map.end()
    }
}

/// V2 + deflate + base64. Serialising into memory cannot fail for a valid histogram; an empty
/// string stands for the impossible case (and decodes as an error, never as wrong figures).
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut bytes) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => String::new(),
    }
}

/// The inverse of [`encode`]; the error says what was wrong with the text.
pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an HdrHistogram V2 histogram: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_lossless() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in [1u64, 17, 250, 250, 99_999, 3_600_000_000] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert!(decode("not base64!").is_err());
        assert!(decode("aGVsbG8=").is_err());
    }
}
