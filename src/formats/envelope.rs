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

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
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
        let mut records = Vec::new();
        let schemas = read(body, max_records, |index, record| {
            if index == 0 {
                records.clear();
            }
            records.push(record);
            Ok(())
        })?;
        Ok(V2Request {
            key_schema: schemas.key,
            value_schema: schemas.value,
            records,
        })
    }
}

/// The schema references of a v2 body, once [`read`] has passed every record on.
#[derive(Debug, Default)]
pub struct Schemas {
    pub key: SchemaRef,
    pub value: SchemaRef,
}

/// Reads a v2 produce body in one pass, handing each record to `sink` as soon as it is
/// read: `sink(index, record)` for the first `max_records` records, in order, while every
/// record before was well formed and accepted. A body that names `records` again starts
/// over at index 0 (the last one counts, as with Jackson).
///
/// The first error wins in this order, whatever the order of the fields: malformed JSON
/// (the whole body is read to find it); then the first top-level field that is unknown or
/// of the wrong type; `records` missing, null or not an array; a record of the wrong shape
/// among the first `max_records`; no records; too many records; and last, the first error
/// `sink` returned (a record that cannot be converted), so a data error is only reported
/// for a body whose shape is right.
///
/// # Errors
/// [`FormatError`] as above.
pub fn read<'a, F>(body: &'a [u8], max_records: usize, mut sink: F) -> Result<Schemas, FormatError>
where
    F: FnMut(usize, RawRecord<'a>) -> Result<(), FormatError>,
{
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(FormatError::Envelope(
            "Request body is empty. Data is required.".to_owned(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let top = de
        .deserialize_map(TopVisitor(RecordsSeed {
            max_records,
            sink: &mut sink,
        }))
        .and_then(|top| {
            de.end()?;
            Ok(top)
        })
        .map_err(|e| {
            if e.is_data() {
                FormatError::Envelope("Expected the request body to be a JSON object.".to_owned())
            } else {
                FormatError::Malformed(format!("Malformed JSON: {e}"))
            }
        })?;
    if let Some(error) = top.error {
        return Err(error);
    }
    match top.records {
        None | Some(RecordsRead::Null) => Err(FormatError::Envelope(
            "Field 'records' is required.".to_owned(),
        )),
        Some(RecordsRead::NotAnArray(kind)) => Err(FormatError::Envelope(format!(
            "Field 'records' must be an array, found {}.",
            kind.name()
        ))),
        Some(RecordsRead::Array(Err(error))) => Err(error),
        Some(RecordsRead::Array(Ok(()))) => Ok(top.schemas),
    }
}

/// The top-level fields, as read: the first error among them, the schema references, and
/// what the (last) `records` field came to.
struct Top {
    error: Option<FormatError>,
    schemas: Schemas,
    records: Option<RecordsRead>,
}

enum RecordsRead {
    Null,
    NotAnArray(Kind),
    /// Every record read; the first error by the precedence of [`read`].
    Array(Result<(), FormatError>),
}

/// The top-level object; each `records` field in it is read by the [`RecordsSeed`] it holds.
struct TopVisitor<'s, F>(RecordsSeed<'s, F>);

impl<'de, F> Visitor<'de> for TopVisitor<'_, F>
where
    F: FnMut(usize, RawRecord<'de>) -> Result<(), FormatError>,
{
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let TopVisitor(records) = self;
        let mut top = Top {
            error: None,
            schemas: Schemas::default(),
            records: None,
        };
        while let Some(name) = map.next_key::<FieldName<'de>>()? {
            // After the first error the rest is only read through, for malformed JSON.
            if top.error.is_some() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let checked = match name.as_ref() {
                "records" => {
                    top.records = Some(map.next_value_seed(RecordsSeed {
                        max_records: records.max_records,
                        sink: &mut *records.sink,
                    })?);
                    Ok(())
                }
                "key_schema" => expect_string("key_schema", map.next_value()?)
                    .map(|text| top.schemas.key.text = text),
                "value_schema" => expect_string("value_schema", map.next_value()?)
                    .map(|text| top.schemas.value.text = text),
                "key_schema_id" => expect_integer(|| "key_schema_id".into(), map.next_value()?)
                    .map(|id| top.schemas.key.id = id),
                "value_schema_id" => expect_integer(|| "value_schema_id".into(), map.next_value()?)
                    .map(|id| top.schemas.value.id = id),
                other => {
                    map.next_value::<IgnoredAny>()?;
                    Err(unrecognized(other))
                }
            };
            top.error = checked.err();
        }
        Ok(top)
    }
}

/// The `records` field, read in place: any JSON value, so that a wrong one is named rather
/// than failing the parse.
struct RecordsSeed<'s, F> {
    max_records: usize,
    sink: &'s mut F,
}

impl<'de, F> DeserializeSeed<'de> for RecordsSeed<'_, F>
where
    F: FnMut(usize, RawRecord<'de>) -> Result<(), FormatError>,
{
    type Value = RecordsRead;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RecordsRead, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, F> Visitor<'de> for RecordsSeed<'_, F>
where
    F: FnMut(usize, RawRecord<'de>) -> Result<(), FormatError>,
{
    type Value = RecordsRead;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_unit<E>(self) -> Result<RecordsRead, E> {
        Ok(RecordsRead::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<RecordsRead, E> {
        Ok(RecordsRead::NotAnArray(Kind::Bool))
    }

    fn visit_i64<E>(self, _: i64) -> Result<RecordsRead, E> {
        Ok(RecordsRead::NotAnArray(Kind::Number))
    }

    fn visit_u64<E>(self, _: u64) -> Result<RecordsRead, E> {
        Ok(RecordsRead::NotAnArray(Kind::Number))
    }

    fn visit_f64<E>(self, _: f64) -> Result<RecordsRead, E> {
        Ok(RecordsRead::NotAnArray(Kind::Number))
    }

    fn visit_str<E>(self, _: &str) -> Result<RecordsRead, E> {
        Ok(RecordsRead::NotAnArray(Kind::Str))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RecordsRead, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(RecordsRead::NotAnArray(Kind::Object))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RecordsRead, A::Error> {
        let mut count = 0;
        let mut refused = None;
        let mut sink_error = None;
        loop {
            // Read while within the limit and well formed; past that, skipped (the
            // deserializer must still reach the end of the array).
            if refused.is_none() && count < self.max_records {
                let Some(record) = seq.next_element_seed(RecordSeed { index: count })? else {
                    break;
                };
                match record {
                    Ok(record) if sink_error.is_none() => {
                        sink_error = (self.sink)(count, record).err();
                    }
                    Ok(_) => {}
                    Err(e) => refused = Some(e),
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            count += 1;
        }
        Ok(RecordsRead::Array(match (refused, sink_error) {
            (Some(e), _) => Err(e),
            _ if count == 0 => Err(FormatError::Envelope(
                "Field 'records' must not be empty.".to_owned(),
            )),
            _ if count > self.max_records => Err(FormatError::TooManyRecords {
                count,
                limit: self.max_records,
            }),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(()),
        }))
    }
}

/// One element of `records`: a record, or the reason it is not one.
struct RecordSeed {
    index: usize,
}

impl RecordSeed {
    /// The field name for messages, built only when there is an error to report.
    fn at(&self) -> String {
        format!("records[{}]", self.index)
    }

    fn not_an_object(&self, kind: Kind) -> Result<RawRecord<'static>, FormatError> {
        Err(FormatError::Envelope(format!(
            "Field '{}' must be an object, found {}.",
            self.at(),
            kind.name()
        )))
    }
}

impl<'de> DeserializeSeed<'de> for RecordSeed {
    type Value = Result<RawRecord<'de>, FormatError>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed {
    type Value = Result<RawRecord<'de>, FormatError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.not_an_object(Kind::Null))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(self.not_an_object(Kind::Bool))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(self.not_an_object(Kind::Number))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(self.not_an_object(Kind::Number))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(self.not_an_object(Kind::Number))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(self.not_an_object(Kind::Str))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.not_an_object(Kind::Array))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut record = RawRecord {
            key: None,
            value: None,
            partition: None,
        };
        let mut error = None;
        while let Some(name) = map.next_key::<FieldName<'de>>()? {
            if error.is_some() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            match name.as_ref() {
                "key" => record.key = Some(map.next_value()?),
                "value" => record.value = Some(map.next_value()?),
                "partition" => {
                    let at = || format!("{}.partition", self.at());
                    match expect_integer(at, map.next_value()?) {
                        Ok(None) => {}
                        Ok(Some(p)) => match Partition::new(p) {
                            Some(p) => record.partition = Some(p),
                            None => error = Some(FormatError::NegativePartition),
                        },
                        Err(e) => error = Some(e),
                    }
                }
                other => {
                    map.next_value::<IgnoredAny>()?;
                    error = Some(unrecognized(other));
                }
            }
        }
        Ok(error.map_or(Ok(record), Err))
    }
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

    /// `records` and each record are read in place, in one pass, so a scalar that
    /// serde_json cannot hold (a number beyond `f64`, a string with an unpaired surrogate
    /// escape) is malformed JSON there rather than named as the wrong type.
    #[test]
    fn scalars_that_cannot_be_read_are_malformed_where_a_record_is_expected() {
        for body in [
            r#"{"records":1e999}"#,
            r#"{"records":"\ud800"}"#,
            r#"{"records":[1e999]}"#,
            r#"{"records":[{"value":1},"\ud800"]}"#,
        ] {
            assert!(
                matches!(parse(body), Err(FormatError::Malformed(_))),
                "{body}: {:?}",
                parse(body)
            );
        }
        // Elsewhere they are values like any other: written as sent, or named.
        assert!(parse(r#"{"records":[{"value":1e999,"key":"\ud800"}]}"#).is_ok());
        assert_eq!(
            envelope_error(r#"{"records":[{"value":1}],"x":1e999}"#),
            "Unrecognized field: x"
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
