//! The latency histogram as an artifact stores it: HdrHistogram's V2 deflate format,
//! base64-encoded, so that runs can be merged and percentiles read again later.

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};

/// Why a stored histogram cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    /// The text is not base64.
    #[error("histogram is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The bytes are not an HdrHistogram.
    #[error("histogram does not deserialize: {0:?}")]
    Deserialize(hdrhistogram::serialization::DeserializeError),
}

/// `histogram` as [`crate::artifact::load::LoadReport::histogram`] stores it.
pub fn encode(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .expect("serializing into memory does not fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Reads a histogram written by [`encode`] (surrounding whitespace ignored).
pub fn decode(encoded: &str) -> Result<Histogram<u64>, HistogramError> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim())?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(HistogramError::Deserialize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_round_trips_through_base64() {
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for us in [10, 200, 3000, 40_000] {
            histogram.record(us).unwrap();
        }
        let decoded = decode(&encode(&histogram)).unwrap();
        assert_eq!(decoded.len(), 4);
        assert_eq!(decoded.max(), histogram.max());
        assert!(decode("not base64!").is_err());
    }
}
