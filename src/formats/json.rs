//! The json embedded format: a record's key or value is any JSON value, written to Kafka as
//! compact JSON bytes.
//!
//! The bytes are the partner's own: the value is never parsed into numbers and maps and
//! written again, so object keys keep their order, numbers keep their digits (`1.10`,
//! integers beyond 2^53) and strings keep their escapes. Only insignificant whitespace goes.

use bytes::Bytes;
use serde_json::value::RawValue;

/// The Kafka bytes of a json key or value; `None` for JSON `null` (a null key or tombstone).
pub fn encode(raw: &RawValue) -> Option<Vec<u8>> {
    let text = raw.get();
    if text == "null" {
        return None;
    }
    Some(compact(text))
}

/// As [`encode`], but a value that is already compact is shared with `body`, which `raw`
/// was read from, rather than copied (see [`super::share`]).
pub fn encode_in(body: &Bytes, raw: &RawValue) -> Option<Bytes> {
    let text = raw.get();
    if text == "null" {
        return None;
    }
    let bytes = text.as_bytes();
    if bytes.iter().any(|b| is_json_whitespace(*b)) {
        return Some(compact(text).into());
    }
    Some(super::share(body, bytes))
}

/// Drops the whitespace between tokens of a well-formed JSON text, leaving strings untouched.
///
/// The input has been validated by serde_json, so a byte-level scan that tracks whether it
/// is inside a string (and after a backslash) is exact.
fn compact(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    if !bytes.iter().any(|b| is_json_whitespace(*b)) {
        return bytes.to_vec();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !is_json_whitespace(b) {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
    out
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(text: &str) -> Option<String> {
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        encode(&raw).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn compact_values_are_shared_with_the_body_not_copied() {
        let body =
            Bytes::from_static(br#"{"records":[{"value":{"a":[1,2]}},{"value":{ "b" : 1 }}]}"#);
        let request = crate::formats::V2Request::parse(&body, 10).unwrap();
        let values: Vec<Bytes> = request
            .records
            .iter()
            .map(|r| encode_in(&body, r.value.unwrap()).unwrap())
            .collect();
        assert_eq!(values[0], &br#"{"a":[1,2]}"#[..]);
        assert!(body.as_ptr_range().contains(&values[0].as_ptr()));
        // With whitespace to drop, a copy of its own.
        assert_eq!(values[1], &br#"{"b":1}"#[..]);
        assert!(!body.as_ptr_range().contains(&values[1].as_ptr()));
        let elsewhere: Box<RawValue> = serde_json::from_str("[3]").unwrap();
        assert_eq!(encode_in(&body, &elsewhere).unwrap(), &b"[3]"[..]);
    }

    #[test]
    fn null_is_absent() {
        assert_eq!(enc("null"), None);
        assert_eq!(enc(" null "), None);
    }

    #[test]
    fn values_survive_exactly() {
        assert_eq!(enc("1.10").as_deref(), Some("1.10"));
        assert_eq!(
            enc("123456789012345678901234567890").as_deref(),
            Some("123456789012345678901234567890")
        );
        assert_eq!(enc("-0.0e+10").as_deref(), Some("-0.0e+10"));
        assert_eq!(enc(r#"{"z":1,"a":2}"#).as_deref(), Some(r#"{"z":1,"a":2}"#));
        assert_eq!(
            enc(r#""caf\u00e9 \"q\" \\""#).as_deref(),
            Some(r#""caf\u00e9 \"q\" \\""#)
        );
    }

    #[test]
    fn whitespace_between_tokens_goes_and_inside_strings_stays() {
        assert_eq!(
            enc("{ \"a b\" : [ 1 ,\n\t2 ] , \"c\\\" d\" : \" x \" }").as_deref(),
            Some(r#"{"a b":[1,2],"c\" d":" x "}"#)
        );
    }
}
