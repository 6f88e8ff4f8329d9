//! Parsing the API v2 produce request body at the edge, into a [`V2Request`] whose keys and
//! values are still the partner's JSON, to be encoded once their format is resolved.
//!
//! ```json
//! {"key_schema": "...", "key_schema_id": 1, "value_schema": "...", "value_schema_id": 2,
//!  "records": [{"key": <json|null>, "value": <json|null>, "partition": <int|null>}]}
//! ```

use std::fmt;

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::raw::Kind;
use super::{FormatError, SchemaRef};
use crate::domain::Partition;

/// A parsed v2 produce body: the schema references of keys and values, and the records in
/// request order (never empty).
#[derive(Debug)]
pub struct V2Request<'a> {
    pub key_schema: SchemaRef,
    pub value_schema: SchemaRef,
    pub records: Vec<RawRecord<'a>>,
}

/// One record as the partner wrote it; `None` for an absent key or value.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub key: Option<&'a RawValue>,
    pub value: Option<&'a RawValue>,
    pub partition: Option<Partition>,
}

impl<'a> V2Request<'a> {
    /// Parses a v2 produce body, borrowing keys and values from it. At most `max_records`
    /// records are kept: past that the rest are only counted, for the message, so an
    /// oversized request costs no memory per record.
    ///
    /// # Errors
    /// [`FormatError`] naming the field and record index at fault, or
    /// [`FormatError::TooManyRecords`].
    pub fn parse(body: &'a [u8], max_records: usize) -> Result<V2Request<'a>, FormatError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(FormatError::Envelope(
                "Request body is empty. Data is required.".to_owned(),
            ));
        }
        let top = parse_object(body, || "the request body".to_owned())?;
        let mut records_raw = None;
        let mut key_schema = SchemaRef::default();
        let mut value_schema = SchemaRef::default();
        for (name, value) in &top {
            match name.as_ref() {
                "records" => records_raw = Some(*value),
                "key_schema" => key_schema.text = expect_string("key_schema", value)?,
                "value_schema" => value_schema.text = expect_string("value_schema", value)?,
                "key_schema_id" => {
                    key_schema.id = expect_integer(|| "key_schema_id".into(), value)?
                }
                "value_schema_id" => {
                    value_schema.id = expect_integer(|| "value_schema_id".into(), value)?;
                }
                other => return Err(unrecognized(other)),
            }
        }
        let records_raw = records_raw
            .filter(|r| r.get() != "null")
            .ok_or_else(|| FormatError::Envelope("Field 'records' is required.".to_owned()))?;
        expect_kind("records", records_raw, &[Kind::Array])?;
        let records = serde_json::Deserializer::from_str(records_raw.get())
            .deserialize_seq(RecordsVisitor { max_records })
            .map_err(|e| FormatError::Malformed(e.to_string()))??;
        Ok(V2Request {
            key_schema,
            value_schema,
            records,
        })
    }
}

/// Reads the `records` array one element at a time: the first `max_records` become
/// [`RawRecord`]s (the first shape error among them wins), the rest are skipped and counted.
struct RecordsVisitor {
    max_records: usize,
}

impl<'de> Visitor<'de> for RecordsVisitor {
    type Value = Result<Vec<RawRecord<'de>>, FormatError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut records = Vec::new();
        let mut refused = None;
        let mut count = 0;
        loop {
            // Kept and checked while within the limit and valid; past that, skipped (the
            // deserializer must still reach the end of the array).
            if refused.is_none() && count < self.max_records {
                let Some(item) = seq.next_element::<&'de RawValue>()? else {
                    break;
                };
                match parse_record(count, item) {
                    Ok(record) => records.push(record),
                    Err(e) => refused = Some(e),
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            count += 1;
        }
        Ok(match refused {
            Some(e) => Err(e),
            None if count == 0 => Err(FormatError::Envelope(
                "Field 'records' must not be empty.".to_owned(),
            )),
            None if count > self.max_records => Err(FormatError::TooManyRecords {
                count,
                limit: self.max_records,
            }),
            None => Ok(records),
        })
    }
}

fn parse_record(index: usize, item: &RawValue) -> Result<RawRecord<'_>, FormatError> {
    // Field names for messages are built only when there is an error to report.
    let at = || format!("records[{index}]");
    if Kind::of(item) != Kind::Object {
        return Err(FormatError::Envelope(format!(
            "Field '{}' must be an object, found {}.",
            at(),
            Kind::of(item).name()
        )));
    }
    let fields = parse_object(item.get().as_bytes(), at)?;
    let mut record = RawRecord {
        key: None,
        value: None,
        partition: None,
    };
    for (name, value) in &fields {
        match name.as_ref() {
            "key" => record.key = Some(*value),
            "value" => record.value = Some(*value),
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

fn unrecognized(name: &str) -> FormatError {
    FormatError::Envelope(format!("Unrecognized field: {name}"))
}

/// The fields of a JSON object in document order, values left unparsed.
pub(super) fn parse_object<'a>(
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
pub(super) struct FieldName<'de>(Cow<'de, str>);

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

/// `null` or a string.
fn expect_string(name: &str, value: &RawValue) -> Result<Option<String>, FormatError> {
    expect_kind(name, value, &[Kind::Str])?;
    if Kind::of(value) == Kind::Null {
        return Ok(None);
    }
    serde_json::from_str(value.get())
        .map(Some)
        .map_err(|e| FormatError::Malformed(format!("Malformed JSON: {e}")))
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

    fn parse(body: &str) -> Result<V2Request<'_>, FormatError> {
        V2Request::parse(body.as_bytes(), 1000)
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
        assert_eq!(batch.records[0].key.map(RawValue::get), Some("\"k\""));
        assert_eq!(
            batch.records[0].value.map(RawValue::get),
            Some(r#"{"a":1}"#)
        );
        assert_eq!(batch.records[1].value.map(RawValue::get), Some("null"));
        assert!(batch.records[1].key.is_none());
        assert_eq!(batch.records[1].partition.map(Partition::id), Some(2));
    }

    #[test]
    fn schema_fields_are_kept_as_typed_references() {
        let request =
            parse(r#"{"key_schema":"\"string\"","value_schema_id":3,"records":[{"value":1}]}"#)
                .unwrap();
        assert_eq!(
            request.key_schema,
            SchemaRef {
                text: Some("\"string\"".into()),
                id: None
            }
        );
        assert_eq!(
            request.value_schema,
            SchemaRef {
                text: None,
                id: Some(3)
            }
        );
        let request = parse(r#"{"key_schema":null,"records":[{"value":1}]}"#).unwrap();
        assert_eq!(request.key_schema, SchemaRef::default());
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
    fn too_many_records_are_counted_not_kept() {
        let body = r#"{"records":[{"value":1},{"value":2},{"value":3},1,{"value":5}]}"#;
        assert_eq!(
            V2Request::parse(body.as_bytes(), 2).unwrap_err(),
            FormatError::TooManyRecords { count: 5, limit: 2 }
        );
        // A shape error within the limit still wins.
        let body = r#"{"records":[{"value":1},2,{"value":3}]}"#;
        assert_eq!(
            V2Request::parse(body.as_bytes(), 2).unwrap_err(),
            FormatError::Envelope("Field 'records[1]' must be an object, found a number.".into())
        );
        assert_eq!(
            V2Request::parse(br#"{"records":[{},{}]}"#, 2)
                .unwrap()
                .records
                .len(),
            2
        );
    }

    #[test]
    fn negative_partition_names_no_partition() {
        assert!(matches!(
            parse(r#"{"records":[{"value":1,"partition":-1}]}"#),
            Err(FormatError::NegativePartition)
        ));
    }
}
