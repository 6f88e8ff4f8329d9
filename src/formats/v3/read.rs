//! One API v3 record read in a single pass: serde visitors over the record's fields that
//! read its `key` and `value` objects where they lie, rather than collecting each object's
//! fields first and reading the key and value objects a second time
//! ([`V3Record::parse_by_fields`]). A stream reads one record per line, so this is its hot
//! path.
//!
//! The answers are those of the field-by-field reading, which the `v3_stream` fuzz target
//! holds them to: fields are read in document order and the first error is the answer, but
//! only once the rest of the record has been read (as raw values, which checks their JSON
//! and UTF-8), so that a record whose text goes wrong after a bad field is still malformed
//! JSON.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{not_an_object, SideFields, SideSpec, V3Record};
use crate::formats::envelope::FieldName;
use crate::formats::raw::Kind;
use crate::formats::schema::Side;
use crate::formats::FormatError;

/// The record `bytes` holds, or the first error of its fields; `None` when serde_json does
/// not read it as an object in one pass (not JSON, not an object, a number it cannot hold
/// where a key or value goes): the field-by-field reading then says why.
pub(super) fn record(bytes: &[u8]) -> Option<Result<V3Record<'_>, FormatError>> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let read = de.deserialize_map(RecordVisitor).ok()?;
    de.end().ok()?;
    Some(read)
}

/// A record's fields, its key and value read in place.
struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Result<V3Record<'de>, FormatError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut record = V3Record::default();
        let mut first_error = None;
        while let Some(name) = map.next_key::<FieldName<'de>>()? {
            let side = match name.as_ref() {
                "key" => Some(Side::Key),
                "value" => Some(Side::Value),
                _ => None,
            };
            let read = match side {
                Some(side) if first_error.is_none() => {
                    map.next_value_seed(SideSeed(side))?.map(|spec| match side {
                        Side::Key => record.key = spec,
                        Side::Value => record.value = spec,
                    })
                }
                _ => {
                    let value = map.next_value::<&'de RawValue>()?;
                    if first_error.is_some() {
                        continue;
                    }
                    record.set(name.as_ref(), value, &[])
                }
            };
            if let Err(e) = read {
                first_error = Some(e);
            }
        }
        Ok(match first_error {
            Some(e) => Err(e),
            None => Ok(record),
        })
    }
}

/// A `key` or `value`: `null`, or an object read field by field where it lies.
struct SideSeed(Side);

impl<'de> DeserializeSeed<'de> for SideSeed {
    type Value = Result<Option<SideSpec<'de>>, FormatError>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(SideVisitor(self.0))
    }
}

struct SideVisitor(Side);

impl SideVisitor {
    fn not_an_object<'de, E>(
        &self,
        kind: Kind,
    ) -> Result<Result<Option<SideSpec<'de>>, FormatError>, E> {
        Ok(Err(not_an_object(self.0, kind)))
    }
}

impl<'de> Visitor<'de> for SideVisitor {
    type Value = Result<Option<SideSpec<'de>>, FormatError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the record's {}", self.0.as_str())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Ok(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        self.not_an_object(Kind::Bool)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        self.not_an_object(Kind::Number)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        self.not_an_object(Kind::Number)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        self.not_an_object(Kind::Number)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        self.not_an_object(Kind::Str)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Read to its end, as the record's other values.
        while seq.next_element::<&'de RawValue>()?.is_some() {}
        self.not_an_object(Kind::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = SideFields::default();
        let mut first_error = None;
        while let Some(name) = map.next_key::<FieldName<'de>>()? {
            let value = map.next_value::<&'de RawValue>()?;
            if first_error.is_none() {
                first_error = fields.set(self.0, name.as_ref(), value).err();
            }
        }
        Ok(match first_error {
            Some(e) => Err(e),
            None => fields.spec(self.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both readings, as `Debug` text (a record borrows raw values: no `PartialEq`).
    fn both(bytes: &[u8]) -> (Option<String>, String) {
        (
            record(bytes).map(|read| format!("{read:?}")),
            format!("{:?}", V3Record::parse_by_fields(bytes)),
        )
    }

    #[test]
    fn the_single_pass_answers_as_the_field_by_field_reading() {
        for text in [
            r#"{}"#,
            r#" { "value" : { "type" : "JSON" , "data" : {"a": [1, 2]} } } "#,
            r#"{"key":{"type":"BINARY","data":"Zm9v"},"value":{"type":"STRING","data":"x"},
                "partition_id":"1","timestamp":"2021-02-05T19:14:42Z",
                "headers":[{"name":"h","value":null},{"name":"h","value":"AA=="}]}"#,
            r#"{"value":{"type":"JSON","data":1},"value":null}"#,
            r#"{"key":{"type":"JSON","data":1},"key":{"type":"JSON","type":"STRING","data":"s"}}"#,
            r#"{"k\u0065y":{"typ\u0065":"JSON","data":1}}"#,
            r#"{"value":{"subject":"s","schema_version":2,"data":{"a":1}}}"#,
            r#"{"value":{"type":"AVRO","schema":"\"int\"","data":1}}"#,
            // Refused, each by its first bad field.
            r#"{"value":[1,{"a":2}]}"#,
            r#"{"value":5}"#,
            r#"{"value":-1.5e3}"#,
            r#"{"key":"x"}"#,
            r#"{"key":"\u00e9"}"#,
            r#"{"key":true}"#,
            r#"{"partition_id":-1,"value":{"nope":1}}"#,
            r#"{"value":{"nope":1},"partition_id":-1}"#,
            r#"{"x":1,"key":{"type":"JSON","data":1}}"#,
            r#"{"key":{"type":"JSON","data":1},"key":5}"#,
            r#"{"value":{"type":"AVRO","data":1}}"#,
            r#"{"value":{"type":"JSON","subject":"s"}}"#,
            r#"{"value":{"schema_id":1,"schema_version":2}}"#,
            r#"{"value":{"type":"avro"},"key":{"nope":1}}"#,
            r#"{"value":{"type":"JSON","schema_id":"x"}}"#,
        ] {
            let (single, reference) = both(text.as_bytes());
            assert_eq!(single.as_deref(), Some(reference.as_str()), "{text}");
        }
    }

    #[test]
    fn what_the_single_pass_does_not_take_is_read_field_by_field() {
        for (bytes, reference) in [
            (
                &b"{\"value\":{\"type\":\"JSON\",\"data\":1}"[..],
                "Malformed",
            ),
            // A bad field first, then text that is not JSON: malformed.
            (
                br#"{"partition_id":-1,"value":{"type":"JSON","data":tru}}"#,
                "Malformed",
            ),
            (b"{\"x\":1,\"y\":\"\xff\"}", "Malformed"),
            (br#"{"value":{"type":"JSON"}} x"#, "Malformed"),
            // serde_json reads no lone surrogate as a string; as a raw value it passes.
            (br#"{"value":"\ud800"}"#, "Record"),
            (br#"[1]"#, "Record"),
            (br#"{"value":1e999}"#, "Record"),
        ] {
            let (single, reference_read) = both(bytes);
            let text = String::from_utf8_lossy(bytes);
            assert_eq!(single, None, "{text}");
            assert!(
                reference_read.starts_with(&format!("Err({reference}(")),
                "{text}: {reference_read}"
            );
            assert_eq!(
                format!("{:?}", V3Record::parse_bytes(bytes)),
                reference_read,
                "{text}"
            );
        }
    }
}
