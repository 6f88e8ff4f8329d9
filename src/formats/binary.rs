//! The binary embedded format: a record's key or value is a base64 string (standard
//! alphabet), written to Kafka as the bytes it encodes.
//!
//! Padding is optional, as in Confluent's proxy (Guava's decoder accepts unpadded input), so
//! partners' existing clients keep working; the URL-safe alphabet and whitespace are refused.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::value::RawValue;

use super::raw::Kind;

const STANDARD_PADDING_OPTIONAL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a binary key or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    #[error("expected a base64 string, found {0}")]
    NotAString(&'static str),
    #[error("not valid base64: {0}")]
    InvalidBase64(String),
}

/// The Kafka bytes of a binary key or value; `None` for JSON `null`.
///
/// # Errors
/// [`BinaryError`] when the value is not a string or not valid standard base64.
pub fn decode(raw: &RawValue) -> Result<Option<Vec<u8>>, BinaryError> {
    let text = raw.get();
    if text == "null" {
        return Ok(None);
    }
    if !text.starts_with('"') {
        return Err(BinaryError::NotAString(Kind::of(raw).name()));
    }
    let encoded: String =
        serde_json::from_str(text).map_err(|e| BinaryError::InvalidBase64(e.to_string()))?;
    STANDARD_PADDING_OPTIONAL
        .decode(encoded.as_bytes())
        .map(Some)
        .map_err(|e| BinaryError::InvalidBase64(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Result<Option<Vec<u8>>, BinaryError> {
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        decode(&raw)
    }

    #[test]
    fn decodes_standard_base64_padded_or_not() {
        assert_eq!(dec(r#""Zm8""#), Ok(Some(b"fo".to_vec())));
        assert_eq!(dec(r#""Zm9vYmFy""#), Ok(Some(b"foobar".to_vec())));
        assert_eq!(dec(r#""Zm8=""#), Ok(Some(b"fo".to_vec())));
        assert_eq!(dec(r#""""#), Ok(Some(Vec::new())));
        assert_eq!(dec("null"), Ok(None));
        assert_eq!(dec(r#""/+8=""#), Ok(Some(vec![0xff, 0xef])));
    }

    #[test]
    fn refuses_non_strings_and_bad_base64() {
        assert_eq!(dec("12"), Err(BinaryError::NotAString("a number")));
        assert_eq!(dec("{}"), Err(BinaryError::NotAString("an object")));
        assert!(matches!(dec(r#""Z""#), Err(BinaryError::InvalidBase64(_))));
        assert!(matches!(
            dec(r#""Zm 8=""#),
            Err(BinaryError::InvalidBase64(_))
        ));
        assert!(matches!(
            dec(r#""Zm9v!""#),
            Err(BinaryError::InvalidBase64(_))
        ));
        assert!(matches!(
            dec(r#""_-8=""#),
            Err(BinaryError::InvalidBase64(_))
        ));
    }
}
