//! Parsing the API v2 produce request body at the edge, into a [`V2Request`] whose keys and
//! values are still the partner's JSON, to be encoded once their format is resolved.
//!
//! ```json
//! {"key_schema": "...", "key_schema_id": 1, "value_schema": "...", "value_schema_id": 2,
//!  "records": [{"key": <json|null>, "value": <json|null>, "partition": <int|null>}]}
//! ```

use std::borrow::Cow;
use std::fmt;
use std::num::IntErrorKind;

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

/// `null` or a string; a number or a boolean is taken as its JSON text, as Jackson's
/// `String` reader takes it (`"key_schema": 5` is the schema text `5`).
fn expect_string(name: &str, value: &RawValue) -> Result<Option<String>, FormatError> {
    match Kind::of(value) {
        Kind::Null => Ok(None),
        Kind::Number | Kind::Bool => Ok(Some(value.get().to_owned())),
        Kind::Str => serde_json::from_str(value.get())
            .map(Some)
            .map_err(|e| FormatError::Malformed(format!("Malformed JSON: {e}"))),
        Kind::Array | Kind::Object => expect_kind(name, value, &[Kind::Str]).map(|()| None),
    }
}

/// `null` or an integer, read as Jackson reads an `Integer` field (see [`jackson_integer`]);
/// `name` is built only for the error.
fn expect_integer(name: impl Fn() -> String, value: &RawValue) -> Result<Option<i64>, FormatError> {
    jackson_integer(value).map_err(|refused| {
        let found = match refused {
            NotAnInteger::Fraction => "a non-integer number",
            NotAnInteger::OutOfRange => "a number out of range",
            NotAnInteger::String => "a string that is not an integer",
            NotAnInteger::Kind(kind) => kind.name(),
        };
        FormatError::Envelope(format!(
            "Field '{}' must be an integer, found {found}.",
            name()
        ))
    })
}

/// Why a value is not an integer field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotAnInteger {
    /// A number with a non-zero fraction.
    Fraction,
    /// A number, or a string of digits, beyond `i64`.
    OutOfRange,
    /// A string that is not an integer after Jackson's trimming.
    String,
    /// A boolean, an array or an object.
    Kind(Kind),
}

/// Reads an integer field the way Confluent's proxy does: Jackson's `Integer` reader with
/// its defaults (`ALLOW_COERCION_OF_SCALARS`, `ACCEPT_FLOAT_AS_INT`), so a partner's client
/// that sends `"partition": "1"` keeps working. `Ok(None)` is "not given".
///
/// - `null`, `""`, a string of only spaces and control characters, and the string
///   `"null"` (after trimming) are not given.
/// - A string is trimmed of the characters up to U+0020 at both ends (Java's
///   `String.trim`), then must be an optional `+` or `-` and ASCII digits: `" 7 "`, `"+7"`,
///   `"007"` are 7; `"1.0"`, `"1e2"`, `"0x1"`, `"1_000"` are refused.
/// - A number with a fraction or an exponent is accepted when its value is a whole number
///   (`1.0`, `1e2`).
/// - Booleans, arrays and objects are refused.
///
/// Two differences, both refusing what Jackson would let through: a number with a
/// non-zero fraction (`1.5`) is refused where Jackson truncates it (to 1), since writing
/// to a partition the partner did not name is worse than an error; and only ASCII digits
/// count, where Java's `Integer.parseInt` also reads other scripts' digits (`"١"`).
///
/// Range is left to the caller (a partition or schema id beyond `i32` has its own error);
/// only values beyond `i64` are refused here.
///
/// # Errors
/// [`NotAnInteger`]: what was found instead.
pub(crate) fn jackson_integer(value: &RawValue) -> Result<Option<i64>, NotAnInteger> {
    let text = value.get();
    match Kind::of(value) {
        Kind::Null => Ok(None),
        Kind::Number => match text.parse::<i64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => whole_number(text).map(Some),
        },
        Kind::Str => {
            let string: String = serde_json::from_str(text).map_err(|_| NotAnInteger::String)?;
            let trimmed = string.trim_matches(|c: char| c <= ' ');
            if trimmed.is_empty() || trimmed == "null" {
                return Ok(None);
            }
            // `i64::from_str` takes exactly an optional sign and ASCII digits.
            trimmed
                .parse::<i64>()
                .map(Some)
                .map_err(|e| match e.kind() {
                    IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => {
                        NotAnInteger::OutOfRange
                    }
                    _ => NotAnInteger::String,
                })
        }
        kind => Err(NotAnInteger::Kind(kind)),
    }
}

/// The value of a JSON number written with a fraction or an exponent, or too large for an
/// `i64`, when it is a whole number within `i64`. Read as an `f64`, as Jackson reads it: a
/// fraction below its precision (`1.0000000000000001`) reads as whole there too, and
/// integers are exact up to 2^53, far past any partition or schema id.
fn whole_number(text: &str) -> Result<i64, NotAnInteger> {
    // 2^63: the first power of two an i64 cannot hold.
    const I64_END: f64 = 9_223_372_036_854_775_808.0;
    let number: f64 = text.parse().map_err(|_| NotAnInteger::OutOfRange)?;
    if !(-I64_END..I64_END).contains(&number) {
        Err(NotAnInteger::OutOfRange)
    } else if number.fract() != 0.0 {
        Err(NotAnInteger::Fraction)
    } else {
        // Whole and within range: the conversion is exact.
        Ok(number as i64)
    }
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
            envelope_error(r#"{"records":[{"value":1,"partition":"1.0"}]}"#),
            "Field 'records[0].partition' must be an integer, found a string that is not an \
             integer."
        );
        assert_eq!(
            envelope_error(r#"{"records":[{"value":1,"partition":true}]}"#),
            "Field 'records[0].partition' must be an integer, found a boolean."
        );
        assert_eq!(
            envelope_error(r#"{"records":[{"value":1,"partition":1e30}]}"#),
            "Field 'records[0].partition' must be an integer, found a number out of range."
        );
        assert_eq!(
            envelope_error(r#"{"records":[{"value":1,"partition":1.5}]}"#),
            "Field 'records[0].partition' must be an integer, found a non-integer number."
        );
        assert_eq!(
            envelope_error(r#"{"key_schema_id":"a","records":[{"value":1}]}"#),
            "Field 'key_schema_id' must be an integer, found a string that is not an integer."
        );
        assert_eq!(
            envelope_error(r#"{"key_schema":{},"records":[{"value":1}]}"#),
            "Field 'key_schema' must be a string, found an object."
        );
        assert_eq!(
            envelope_error("[1]"),
            "Expected the request body to be a JSON object."
        );
    }

    #[test]
    fn integers_in_any_json_notation() {
        let table = [
            ("7", Some(7)),
            ("-7", Some(-7)),
            ("7.0", Some(7)),
            ("7.000", Some(7)),
            ("-0.0", Some(0)),
            ("7e0", Some(7)),
            ("7E2", Some(700)),
            ("7e+2", Some(700)),
            ("700e-2", Some(7)),
            ("7.5e1", Some(75)),
            ("1e+16", Some(10_000_000_000_000_000)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808.0", Some(i64::MIN)),
            ("0e999999", Some(0)),
            ("0.0e-999999", Some(0)),
            ("7.5", None),
            ("75e-1", None),
            ("9223372036854775808", None),
            ("9223372036854775808.0", None),
            ("1e19", None),
            ("1e999999", None),
            // Read as a double, as Jackson reads it: this underflows to 0.
            ("1e-999999", Some(0)),
        ];
        for (number, expected) in table {
            let raw: Box<RawValue> = serde_json::from_str(number).unwrap();
            assert_eq!(jackson_integer(&raw).ok().flatten(), expected, "{number}");
        }
        let request =
            parse(r#"{"value_schema_id":3.0,"records":[{"value":1,"partition":2e0}]}"#).unwrap();
        assert_eq!(request.value_schema.id, Some(3));
        assert_eq!(request.records[0].partition.map(Partition::id), Some(2));
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

    fn integer(json: &str) -> Result<Option<i64>, NotAnInteger> {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        jackson_integer(&raw)
    }

    /// Jackson's `Integer` coercions (databind 2.13 and later, Confluent's defaults), and
    /// the two places this service is stricter.
    #[test]
    fn integers_are_coerced_as_jackson_coerces_them() {
        let table: &[(&str, Result<Option<i64>, NotAnInteger>)] = &[
            ("1", Ok(Some(1))),
            ("-3", Ok(Some(-3))),
            ("null", Ok(None)),
            (r#""1""#, Ok(Some(1))),
            (r#""+7""#, Ok(Some(7))),
            (r#""007""#, Ok(Some(7))),
            (r#""-2""#, Ok(Some(-2))),
            (r#"" 1 ""#, Ok(Some(1))),
            (r#""\t1\n""#, Ok(Some(1))),
            (r#""\u00011""#, Ok(Some(1))),
            (r#""""#, Ok(None)),
            (r#""   ""#, Ok(None)),
            (r#""null""#, Ok(None)),
            (r#"" null ""#, Ok(None)),
            ("1.0", Ok(Some(1))),
            ("-0.0", Ok(Some(0))),
            ("1e2", Ok(Some(100))),
            ("1.5E1", Ok(Some(15))),
            ("12345678901", Ok(Some(12_345_678_901))),
            (r#""12345678901""#, Ok(Some(12_345_678_901))),
            // Jackson truncates these (to 1 and 0); refused here.
            ("1.5", Err(NotAnInteger::Fraction)),
            ("-0.5", Err(NotAnInteger::Fraction)),
            (r#""1.0""#, Err(NotAnInteger::String)),
            (r#""1e2""#, Err(NotAnInteger::String)),
            (r#""0x1""#, Err(NotAnInteger::String)),
            (r#""1_000""#, Err(NotAnInteger::String)),
            (r#""1 2""#, Err(NotAnInteger::String)),
            (r#""+""#, Err(NotAnInteger::String)),
            (r#""NULL""#, Err(NotAnInteger::String)),
            (r#""\u00a01""#, Err(NotAnInteger::String)),
            // Java reads other scripts' digits; refused here.
            (r#""\u0661""#, Err(NotAnInteger::String)),
            (r#""\ud800""#, Err(NotAnInteger::String)),
            ("99999999999999999999", Err(NotAnInteger::OutOfRange)),
            (r#""99999999999999999999""#, Err(NotAnInteger::OutOfRange)),
            (r#""-99999999999999999999""#, Err(NotAnInteger::OutOfRange)),
            ("1e400", Err(NotAnInteger::OutOfRange)),
            ("true", Err(NotAnInteger::Kind(Kind::Bool))),
            ("[1]", Err(NotAnInteger::Kind(Kind::Array))),
            ("[]", Err(NotAnInteger::Kind(Kind::Array))),
            (r#"{"a":1}"#, Err(NotAnInteger::Kind(Kind::Object))),
        ];
        for (json, expected) in table {
            assert_eq!(&integer(json), expected, "{json}");
        }
    }

    #[test]
    fn coerced_partitions_and_schema_ids_and_schema_texts() {
        let request = parse(
            r#"{"key_schema_id":"5","value_schema_id":" 6 ","records":[{"value":1,"partition":"1"},{"value":2,"partition":""},{"value":3,"partition":2.0}]}"#,
        )
        .unwrap();
        assert_eq!(request.key_schema.id, Some(5));
        assert_eq!(request.value_schema.id, Some(6));
        let partitions: Vec<Option<i32>> = request
            .records
            .iter()
            .map(|r| r.partition.map(Partition::id))
            .collect();
        assert_eq!(partitions, [Some(1), None, Some(2)]);
        assert!(matches!(
            parse(r#"{"records":[{"value":1,"partition":"-1"}]}"#),
            Err(FormatError::NegativePartition)
        ));
        // Jackson's String reader takes a number or a boolean as its text.
        let request =
            parse(r#"{"key_schema":1.50,"value_schema":true,"records":[{"value":1}]}"#).unwrap();
        assert_eq!(request.key_schema.text.as_deref(), Some("1.50"));
        assert_eq!(request.value_schema.text.as_deref(), Some("true"));
    }

    #[test]
    fn negative_partition_names_no_partition() {
        assert!(matches!(
            parse(r#"{"records":[{"value":1,"partition":-1}]}"#),
            Err(FormatError::NegativePartition)
        ));
    }
}
