//! The API v2 produce request body, parsed into a [`ProduceBatch`] at the edge.
//!
//! ```json
//! {"key_schema": "...", "key_schema_id": 1, "value_schema": "...", "value_schema_id": 2,
//!  "records": [{"key": <json|null>, "value": <json|null>, "partition": <int|null>}]}
//! ```
//!
//! Every record is converted before anything is produced, so one bad record fails the
//! whole request and nothing is written.

use std::fmt;

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{binary, json, EmbeddedFormat};
use crate::domain::Partition;

pub use crate::domain::Record;

/// The records of one produce request, in request order; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceBatch {
    pub records: Vec<Record>,
}

/// Why a request body is not a valid produce request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not JSON at all (400).
    #[error("{0}")]
    Malformed(String),
    /// JSON, but not the shape of a produce request (422).
    #[error("{0}")]
    Envelope(String),
    /// A key or value that the embedded format cannot convert (400).
    #[error("{0}")]
    Data(String),
    /// A negative explicit partition (40402).
    #[error("Partition not found.")]
    NegativePartition,
}

impl ProduceBatch {
    /// Parses and converts a v2 produce body.
    ///
    /// # Errors
    /// [`FormatError`] naming the field and record index at fault.
    pub fn parse(body: &[u8], format: EmbeddedFormat) -> Result<ProduceBatch, FormatError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(FormatError::Envelope(
                "Request body is empty. Data is required.".to_owned(),
            ));
        }
        let top = parse_object(body, || "the request body".to_owned())?;
        let mut records_raw = None;
        for (name, value) in &top {
            match name.as_ref() {
                "records" => records_raw = Some(*value),
                "key_schema" | "value_schema" => {
                    expect_kind(name.as_ref(), value, &[Kind::Str])?;
                }
                "key_schema_id" | "value_schema_id" => {
                    expect_integer(|| name.as_ref().to_owned(), value)?;
                }
                other => return Err(unrecognized(other)),
            }
        }
        let records_raw = records_raw
            .filter(|r| r.get() != "null")
            .ok_or_else(|| FormatError::Envelope("Field 'records' is required.".to_owned()))?;
        expect_kind("records", records_raw, &[Kind::Array])?;
        let items: Vec<&RawValue> = serde_json::from_str(records_raw.get())
            .map_err(|e| FormatError::Malformed(e.to_string()))?;
        if items.is_empty() {
            return Err(FormatError::Envelope(
                "Field 'records' must not be empty.".to_owned(),
            ));
        }
        let records = items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_record(i, item, format))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProduceBatch { records })
    }
}

fn parse_record(
    index: usize,
    item: &RawValue,
    format: EmbeddedFormat,
) -> Result<Record, FormatError> {
    // Field names for messages are built only when there is an error to report.
    let at = || format!("records[{index}]");
    if Kind::of(item) != Kind::Object {
        return Err(FormatError::Envelope(format!(
            "Field '{}' must be an object, found {}.",
            at(),
            json_type_name(item)
        )));
    }
    let fields = parse_object(item.get().as_bytes(), at)?;
    let mut record = Record {
        key: None,
        value: None,
        partition: None,
    };
    for (name, value) in &fields {
        match name.as_ref() {
            "key" => record.key = convert(format, value, index, "key")?,
            "value" => record.value = convert(format, value, index, "value")?,
            "partition" => {
                if let Some(p) = expect_integer(|| format!("{}.partition", at()), value)? {
                    record.partition =
                        Some(Partition::new(p).ok_or(FormatError::NegativePartition)?);
                }
            }
            other => return Err(unrecognized(other)),
        }
    }
    Ok(record)
}

fn convert(
    format: EmbeddedFormat,
    value: &RawValue,
    index: usize,
    field: &str,
) -> Result<Option<Vec<u8>>, FormatError> {
    match format {
        EmbeddedFormat::Json => Ok(json::encode(value)),
        EmbeddedFormat::Binary => binary::decode(value)
            .map_err(|e| FormatError::Data(format!("Field 'records[{index}].{field}': {e}."))),
    }
}

fn unrecognized(name: &str) -> FormatError {
    FormatError::Envelope(format!("Unrecognized field: {name}"))
}

/// The fields of a JSON object in document order, values left unparsed.
fn parse_object<'a>(
    text: &'a [u8],
    what: impl Fn() -> String,
) -> Result<Vec<(FieldName<'a>, &'a RawValue)>, FormatError> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let fields = de.deserialize_map(FieldsVisitor).and_then(|f| {
        de.end()?;
        Ok(f)
    });
    fields.map_err(|e| {
        if e.is_data() {
            FormatError::Envelope(format!("Expected {} to be a JSON object.", what()))
        } else {
            FormatError::Malformed(format!("Malformed JSON: {e}"))
        }
    })
}

/// An object key, borrowed from the body unless it contains escapes.
struct FieldName<'de>(Cow<'de, str>);

impl AsRef<str> for FieldName<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Vec<(FieldName<'de>, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::new();
        while let Some(entry) = map.next_entry::<FieldName<'de>, &'de RawValue>()? {
            fields.push(entry);
        }
        Ok(fields)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    Str,
    Array,
    Object,
}

impl Kind {
    /// The kind of an already validated JSON value, from its first byte.
    fn of(raw: &RawValue) -> Kind {
        match raw.get().as_bytes().first() {
            Some(b'n') => Kind::Null,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'"') => Kind::Str,
            Some(b'[') => Kind::Array,
            Some(b'{') => Kind::Object,
            _ => Kind::Number,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::Str => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// "a string", "an object"…, for messages about a value's type.
pub(crate) fn json_type_name(raw: &RawValue) -> &'static str {
    Kind::of(raw).name()
}

/// Accepts `null` or one of `kinds`.
fn expect_kind(name: &str, value: &RawValue, kinds: &[Kind]) -> Result<(), FormatError> {
    let kind = Kind::of(value);
    if kind == Kind::Null || kinds.contains(&kind) {
        return Ok(());
    }
    let wanted = kinds
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(" or ");
    Err(FormatError::Envelope(format!(
        "Field '{name}' must be {wanted}, found {}.",
        kind.name()
    )))
}

/// `null` or an integer that fits an `i64`; `name` is built only for the error.
fn expect_integer(name: impl Fn() -> String, value: &RawValue) -> Result<Option<i64>, FormatError> {
    if Kind::of(value) == Kind::Null {
        return Ok(None);
    }
    value.get().parse::<i64>().map(Some).map_err(|_| {
        FormatError::Envelope(format!(
            "Field '{}' must be an integer, found {}.",
            name(),
            match Kind::of(value) {
                Kind::Number => "a non-integer number",
                kind => kind.name(),
            }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<ProduceBatch, FormatError> {
        ProduceBatch::parse(body.as_bytes(), EmbeddedFormat::Json)
    }

    fn envelope_error(body: &str) -> String {
        match parse(body) {
            Err(FormatError::Envelope(m)) => m,
            other => panic!("{body}: expected an envelope error, got {other:?}"),
        }
    }

    #[test]
    fn parses_records_in_order() {
        let batch =
            parse(r#"{"records":[{"key":"k","value":{"a":1}},{"value":null,"partition":2}]}"#)
                .unwrap();
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.records[0].key.as_deref(), Some(&b"\"k\""[..]));
        assert_eq!(batch.records[0].value.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert_eq!(batch.records[1].value, None);
        assert_eq!(batch.records[1].partition.map(Partition::id), Some(2));
    }

    #[test]
    fn schema_fields_are_ignored_for_json() {
        assert!(parse(r#"{"key_schema":"x","value_schema_id":3,"records":[{"value":1}]}"#).is_ok());
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(
            envelope_error(""),
            "Request body is empty. Data is required."
        );
        assert_eq!(envelope_error("{}"), "Field 'records' is required.");
        assert_eq!(
            envelope_error(r#"{"records":null}"#),
            "Field 'records' is required."
        );
        assert_eq!(
            envelope_error(r#"{"records":[]}"#),
            "Field 'records' must not be empty."
        );
        assert_eq!(
            envelope_error(r#"{"records":[{"value":1}],"foo":1}"#),
            "Unrecognized field: foo"
        );
        assert_eq!(
            envelope_error(r#"{"records":[{"value":1,"timestamp":1}]}"#),
            "Unrecognized field: timestamp"
        );
        assert_eq!(
            envelope_error(r#"{"records":{"value":1}}"#),
            "Field 'records' must be an array, found an object."
        );
        assert_eq!(
            envelope_error(r#"{"records":[1]}"#),
            "Field 'records[0]' must be an object, found a number."
        );
        assert_eq!(
            envelope_error(r#"{"records":[{"value":1,"partition":"1"}]}"#),
            "Field 'records[0].partition' must be an integer, found a string."
        );
        assert_eq!(
            envelope_error(r#"{"records":[{"value":1,"partition":1.5}]}"#),
            "Field 'records[0].partition' must be an integer, found a non-integer number."
        );
        assert_eq!(
            envelope_error(r#"{"key_schema_id":"a","records":[{"value":1}]}"#),
            "Field 'key_schema_id' must be an integer, found a string."
        );
        assert_eq!(
            envelope_error("[1]"),
            "Expected the request body to be a JSON object."
        );
    }

    #[test]
    fn malformed_json_is_400() {
        for body in [r#"{"records":["#, "{records:[]}", "{\"records\":[]} x"] {
            assert!(
                matches!(parse(body), Err(FormatError::Malformed(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn negative_partition_names_no_partition() {
        assert_eq!(
            parse(r#"{"records":[{"value":1,"partition":-1}]}"#),
            Err(FormatError::NegativePartition)
        );
    }

    #[test]
    fn binary_errors_name_the_record() {
        let err = ProduceBatch::parse(
            br#"{"records":[{"value":"Zm9v"},{"value":"!!"}]}"#,
            EmbeddedFormat::Binary,
        )
        .unwrap_err();
        match err {
            FormatError::Data(m) => assert!(
                m.starts_with("Field 'records[1].value': not valid base64"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
