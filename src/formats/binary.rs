//! The binary embedded format: a record's key or value is a base64 string (standard
//! alphabet), written to Kafka as the bytes it encodes.
//!
//! Decoded as Confluent's proxy decodes it (Guava's `BaseEncoding.base64()`), so partners'
//! existing clients keep working: padding is optional and any run of trailing `=` is
//! dropped, and the unused low bits of the last character are ignored rather than refused.
//! The URL-safe alphabet and whitespace are refused, as there.
//!
//! A refusal names the first offending character and its offset (counted in characters of
//! the decoded JSON string, from 0), so a partner can find it without a base64 decoder of
//! its own.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::{DecodeError, DecodeSliceError, Engine};
use serde_json::value::RawValue;

use super::raw::Kind;

/// Guava's leniency: the text arrives without its trailing `=` (see [`decode`]), and bits
/// past the end of the data are ignored.
const GUAVA_LIKE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Why a binary key or value was refused. The messages end without a period: the caller
/// puts the field in front and ends the sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    #[error("expected a base64 string, found {0}")]
    NotAString(&'static str),
    /// What is wrong with the text, in words (see [`decode`]).
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
    // serde_json accepts an unpaired surrogate escape (`"\ud800"`) in a raw value, but no
    // Rust string can hold it.
    let encoded: String = serde_json::from_str(text).map_err(|_| {
        BinaryError::InvalidBase64("the string holds an unpaired surrogate escape".to_owned())
    })?;
    // Checked here rather than read from the decoder's error: the decoder works in blocks
    // and may report a later bad byte (the middle of a multi-byte character) first. Every
    // byte before the first bad one is ASCII, so its byte offset is its character offset
    // and a character boundary.
    if let Some(offset) = encoded.bytes().position(|b| !is_base64_symbol(b)) {
        let c = encoded[offset..].chars().next().unwrap_or_default();
        return Err(BinaryError::InvalidBase64(not_in_alphabet(c, offset)));
    }
    let symbols = encoded.trim_end_matches('=').as_bytes();
    // Exactly as long as the bytes it holds: a record's bytes become a `bytes::Bytes`,
    // which costs one more allocation for a vector with spare capacity.
    let mut bytes = vec![0; symbols.len() / 4 * 3 + [0, 0, 1, 2][symbols.len() % 4]];
    match GUAVA_LIKE.decode_slice(symbols, &mut bytes) {
        Ok(written) => {
            bytes.truncate(written);
            Ok(Some(bytes))
        }
        Err(DecodeSliceError::DecodeError(e)) => Err(BinaryError::InvalidBase64(explain(&e))),
        // Not with the length above (one symbol too many is a decode error first).
        Err(DecodeSliceError::OutputSliceTooSmall) => GUAVA_LIKE
            .decode(symbols)
            .map(Some)
            .map_err(|e| BinaryError::InvalidBase64(explain(&e))),
    }
}

/// The standard alphabet and the padding character.
fn is_base64_symbol(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

fn not_in_alphabet(c: char, offset: usize) -> String {
    let hint = match c {
        '-' | '_' => " (the URL-safe alphabet is not accepted)",
        c if c.is_whitespace() => " (spaces and line breaks are not accepted)",
        _ => "",
    };
    format!(
        "{} at offset {offset} is not a base64 character{hint}",
        describe(c)
    )
}

/// The decoder's refusals of text made only of base64 symbols, in words. Offsets are the
/// decoder's byte offsets, which are character offsets here: the text is ASCII.
fn explain(error: &DecodeError) -> String {
    match *error {
        DecodeError::InvalidByte(offset, b'=') => {
            format!("'=' at offset {offset} is padding, which may only end the text")
        }
        DecodeError::InvalidByte(offset, byte) => not_in_alphabet(char::from(byte), offset),
        DecodeError::InvalidLength(symbols) => format!(
            "{symbols} character{} (without padding) cannot be base64: one is missing or one \
             is too many",
            if symbols == 1 { "" } else { "s" }
        ),
        // Not raised with trailing bits allowed and trailing padding trimmed; worded anyway.
        DecodeError::InvalidLastSymbol(offset, byte) => format!(
            "{} at offset {offset} cannot be the last character",
            describe(char::from(byte))
        ),
        DecodeError::InvalidPadding => "the padding does not fit the text's length".to_owned(),
    }
}

/// A character as a partner can read it in a message: printable ones quoted, with their
/// code point when not ASCII; spaces, control and invisible characters by name or code
/// point.
fn describe(c: char) -> String {
    match c {
        '\'' => "\"'\"".to_owned(),
        c if c.is_ascii_graphic() => format!("'{c}'"),
        ' ' => "a space".to_owned(),
        '\t' => "a tab (U+0009)".to_owned(),
        '\n' => "a line feed (U+000A)".to_owned(),
        '\r' => "a carriage return (U+000D)".to_owned(),
        // `escape_debug` leaves exactly the printable characters as they are.
        c if !c.is_whitespace() && c.escape_debug().count() == 1 => {
            format!("'{c}' (U+{:04X})", u32::from(c))
        }
        c => format!("U+{:04X}", u32::from(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Result<Option<Vec<u8>>, BinaryError> {
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        decode(&raw)
    }

    fn refusal(text: &str) -> String {
        match dec(text) {
            Err(BinaryError::InvalidBase64(why)) => why,
            other => panic!("{text}: expected a refusal, got {other:?}"),
        }
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
    fn the_bytes_fill_their_allocation() {
        for text in [
            r#""Zm8""#,
            r#""Zm9vYmFy""#,
            r#""Zm8=""#,
            r#""Zh==""#,
            r#""Zm9vYg===""#,
        ] {
            let bytes = dec(text).unwrap().unwrap();
            assert_eq!(bytes.len(), bytes.capacity(), "{text}");
        }
    }

    /// What Guava's decoder, and so Confluent's proxy, lets through.
    #[test]
    fn is_as_lenient_as_confluents_decoder() {
        assert_eq!(dec(r#""Zm9vYg===""#), Ok(Some(b"foob".to_vec())));
        assert_eq!(dec(r#""Zh==""#), Ok(Some(b"f".to_vec())));
        assert_eq!(dec(r#""Zm9""#), Ok(Some(b"fo".to_vec())));
        assert_eq!(dec(r#""====""#), Ok(Some(Vec::new())));
    }

    #[test]
    fn refuses_non_strings() {
        assert_eq!(dec("12"), Err(BinaryError::NotAString("a number")));
        assert_eq!(dec("{}"), Err(BinaryError::NotAString("an object")));
    }

    #[test]
    fn refusals_name_the_character_and_its_offset() {
        let table = [
            (r#""Zm9v!""#, "'!' at offset 4 is not a base64 character"),
            (
                r#""a-_b""#,
                "'-' at offset 1 is not a base64 character (the URL-safe alphabet is not accepted)",
            ),
            (
                r#""Zm 8=""#,
                "a space at offset 2 is not a base64 character (spaces and line breaks are not accepted)",
            ),
            (
                r#""Zm9v\nYmFy""#,
                "a line feed (U+000A) at offset 4 is not a base64 character (spaces and line \
                 breaks are not accepted)",
            ),
            (r#""Zm\u0007""#, "U+0007 at offset 2 is not a base64 character"),
            // The decoder alone would report the second byte of 'é' here, not the space.
            (
                r#""Zm é""#,
                "a space at offset 2 is not a base64 character (spaces and line breaks are not accepted)",
            ),
            (r#""Zmé""#, "'é' (U+00E9) at offset 2 is not a base64 character"),
            (r#""Zm9v😀""#, "'😀' (U+1F600) at offset 4 is not a base64 character"),
            (r#""Zm9v\u200b""#, "U+200B at offset 4 is not a base64 character"),
            (r#""Zm'9""#, "\"'\" at offset 2 is not a base64 character"),
            (
                r#""Zm=9""#,
                "'=' at offset 2 is padding, which may only end the text",
            ),
            (
                r#""Zg==Zg==""#,
                "'=' at offset 2 is padding, which may only end the text",
            ),
            (
                r#""Z""#,
                "1 character (without padding) cannot be base64: one is missing or one is too many",
            ),
            (
                r#""Zm9vY""#,
                "5 characters (without padding) cannot be base64: one is missing or one is too many",
            ),
            (
                r#""\ud800""#,
                "the string holds an unpaired surrogate escape",
            ),
        ];
        for (text, why) in table {
            assert_eq!(refusal(text), why, "{text}");
            assert!(!why.ends_with('.'), "the caller ends the sentence: {why}");
        }
    }
}
