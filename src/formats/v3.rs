//! API v3 records, parsed at the edge and encoded: one record of a stream or of a batch
//! (Confluent's `ProduceRequest`), the rules for which schema selectors go with which type
//! (Confluent's `ProduceRequestData` and `SchemaManagerImpl`), and the Kafka bytes.
//!
//! ```json
//! {"partition_id": 1, "headers": [{"name": "h", "value": "<base64>|null"}],
//!  "key": {"type": "BINARY", "data": "Zm9v"},
//!  "value": {"type": "JSON", "data": {"a": 1}},
//!  "timestamp": "2021-02-05T19:14:42Z"}
//! ```
//!
//! Every field is optional; `{}` is a record with a null key and value. A key or value with
//! a `type` of BINARY, JSON or STRING takes no schema field; AVRO, JSONSCHEMA or PROTOBUF
//! takes the schema's text (`schema`), registered under the subject when absent; without a
//! type, the schema is the registry's: by `schema_id`, by `schema_version`, else the
//! subject's latest version. The subject is `subject`, or follows `subject_name_strategy`
//! (TOPIC_NAME by default).
//!
//! [`split`] finds where each record of a stream ends as the body arrives; [`read`] reads
//! one record of it in a single pass; [`batch`] reads the body of `records:batch`.

pub mod batch;
mod read;
pub mod split;

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::encode::encode_with_schema;
use super::envelope::{parse_object, FieldName};
use super::raw::Kind;
use super::schema::{
    Resolved, SchemaError, SchemaFormats, SchemaRequest, Selector, Side, SubjectChoice,
    SubjectNameStrategy,
};
use super::{binary, json, EmbeddedFormat, FormatError};
use crate::domain::{Header, Partition, Record, TopicName};

/// The `type` of a key or value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// A base64 string, written as the bytes it encodes.
    Binary,
    /// Any JSON value, written as compact JSON text.
    Json,
    /// A JSON string, written as its UTF-8 bytes.
    String,
    Avro,
    JsonSchema,
    Protobuf,
}

impl DataType {
    const ALL: [DataType; 6] = [
        DataType::Binary,
        DataType::Json,
        DataType::String,
        DataType::Avro,
        DataType::JsonSchema,
        DataType::Protobuf,
    ];

    /// The name API v3 gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Binary => "BINARY",
            DataType::Json => "JSON",
            DataType::String => "STRING",
            DataType::Avro => "AVRO",
            DataType::JsonSchema => "JSONSCHEMA",
            DataType::Protobuf => "PROTOBUF",
        }
    }

    /// The Schema Registry format, for the types that use one.
    fn schema_format(self) -> Option<EmbeddedFormat> {
        match self {
            DataType::Avro => Some(EmbeddedFormat::Avro),
            DataType::JsonSchema => Some(EmbeddedFormat::JsonSchema),
            DataType::Protobuf => Some(EmbeddedFormat::Protobuf),
            DataType::Binary | DataType::Json | DataType::String => None,
        }
    }

    fn of_schema(format: EmbeddedFormat) -> DataType {
        match format {
            EmbeddedFormat::Avro => DataType::Avro,
            EmbeddedFormat::JsonSchema => DataType::JsonSchema,
            EmbeddedFormat::Protobuf => DataType::Protobuf,
            EmbeddedFormat::Json => DataType::Json,
            EmbeddedFormat::Binary => DataType::Binary,
        }
    }
}

/// How one key or value is to be written.
#[derive(Debug, Clone)]
pub enum SideSpec<'a> {
    /// BINARY, JSON or STRING: no schema.
    Plain {
        data_type: DataType,
        data: &'a RawValue,
    },
    /// A schema through the Schema Registry.
    Schema {
        request: SchemaRequest,
        data: &'a RawValue,
    },
}

/// One API v3 record as the partner wrote it, checked for shape.
#[derive(Debug, Clone, Default)]
pub struct V3Record<'a> {
    pub partition: Option<Partition>,
    pub headers: Vec<Header>,
    /// `None` for an absent or null `key` (no key, and no `key` in the result).
    pub key: Option<SideSpec<'a>>,
    pub value: Option<SideSpec<'a>>,
    pub timestamp_ms: Option<i64>,
}

/// JSON `null`, for a key or value without `data`.
fn null() -> &'static RawValue {
    // A constant: `null` is always a valid JSON value.
    serde_json::from_str("null").expect("null is JSON")
}

fn invalid(message: String) -> FormatError {
    FormatError::Record(message)
}

impl<'a> V3Record<'a> {
    /// Parses one record (a JSON object).
    ///
    /// # Errors
    /// [`FormatError::Malformed`] when it is not JSON; [`FormatError::Record`] naming the
    /// field when it is not a record (an unknown field, a wrong type, a forbidden
    /// combination of schema selectors); [`FormatError::NegativePartition`].
    pub fn parse(text: &'a str) -> Result<V3Record<'a>, FormatError> {
        Self::parse_bytes(text.as_bytes())
    }

    /// [`V3Record::parse`] of bytes as a stream delivers them; not UTF-8 is
    /// [`FormatError::Malformed`].
    ///
    /// # Errors
    /// As [`V3Record::parse`].
    pub fn parse_bytes(bytes: &'a [u8]) -> Result<V3Record<'a>, FormatError> {
        // The common case in one pass: the record's fields read as they come, its key and
        // value objects where they lie (a stream reads one record per line, so this is its
        // hot path). What that pass does not take (not JSON, not an object, a number
        // serde_json cannot hold where a key or value goes) gets its message from reading
        // field by field, which finds what the one pass would have.
        read::record(bytes).unwrap_or_else(|| Self::parse_by_fields(bytes))
    }

    /// [`V3Record::parse_bytes`] by collecting each object's fields first: for the
    /// messages of what the one pass does not take, and as its reference in fuzzing.
    pub(crate) fn parse_by_fields(bytes: &'a [u8]) -> Result<V3Record<'a>, FormatError> {
        // An object, read field by field, which checks the whole text (its UTF-8 too:
        // outside strings, JSON is ASCII, and every string is checked). Anything else takes
        // the checks in their order below, for their messages; they find what this pass
        // would have.
        if let Ok(fields) = parse_object(bytes, String::new) {
            return Self::from_fields(&fields, &[]);
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| FormatError::Malformed(format!("Malformed JSON: {e}")))?;
        let raw: &RawValue = serde_json::from_str(text)
            .map_err(|e| FormatError::Malformed(format!("Malformed JSON: {e}")))?;
        Self::parse_fields(raw, &[])
    }

    /// Parses a record given as a JSON value, ignoring the fields named in `skip` (a batch
    /// entry's `id`).
    pub(crate) fn parse_fields(
        raw: &'a RawValue,
        skip: &[&str],
    ) -> Result<V3Record<'a>, FormatError> {
        if Kind::of(raw) != Kind::Object {
            return Err(invalid(format!(
                "A record must be a JSON object, found {}.",
                Kind::of(raw).name()
            )));
        }
        let fields = parse_object(raw.get().as_bytes(), || "the record".to_owned())
            .map_err(as_record_error)?;
        Self::from_fields(&fields, skip)
    }

    /// The record that an object's fields describe.
    fn from_fields(
        fields: &[(FieldName<'a>, &'a RawValue)],
        skip: &[&str],
    ) -> Result<V3Record<'a>, FormatError> {
        let mut record = V3Record::default();
        for (name, value) in fields {
            record.set(name.as_ref(), value, skip)?;
        }
        Ok(record)
    }

    /// Reads one field of the record (a later one of the same name replaces it); the
    /// fields named in `skip` are let through unread.
    fn set(&mut self, name: &str, value: &'a RawValue, skip: &[&str]) -> Result<(), FormatError> {
        match name {
            "partition_id" => {
                if let Some(p) = integer("partition_id", value)? {
                    let p = i32::try_from(p).map_err(|_| {
                        invalid("Field 'partition_id' must be a 32-bit integer.".to_owned())
                    })?;
                    self.partition =
                        Some(Partition::new(p.into()).ok_or(FormatError::NegativePartition)?);
                }
            }
            "headers" => self.headers = headers(value)?,
            "key" => self.key = side(Side::Key, value)?,
            "value" => self.value = side(Side::Value, value)?,
            "timestamp" => self.timestamp_ms = timestamp(value)?,
            other if skip.contains(&other) => {}
            other => return Err(invalid(format!("Unrecognized field: {other}"))),
        }
        Ok(())
    }
}

/// The v2 envelope parser's errors, as a record's: 400 rather than 422, as Confluent's
/// streaming reader answers a record it cannot map.
fn as_record_error(error: FormatError) -> FormatError {
    match error {
        FormatError::Envelope(m) => FormatError::Record(m),
        other => other,
    }
}

/// `null`, an integer, or a string holding one (Jackson coerces `"1"` to `1`).
fn integer(name: &str, value: &RawValue) -> Result<Option<i64>, FormatError> {
    let text = match Kind::of(value) {
        Kind::Null => return Ok(None),
        Kind::Number => value.get(),
        Kind::Str => &serde_json::from_str::<String>(value.get())
            .map_err(|e| FormatError::Malformed(format!("Malformed JSON: {e}")))?,
        kind => {
            return Err(invalid(format!(
                "Field '{name}' must be an integer, found {}.",
                kind.name()
            )))
        }
    };
    text.trim().parse::<i64>().map(Some).map_err(|_| {
        invalid(format!(
            "Field '{name}' must be an integer, found {}.",
            match Kind::of(value) {
                Kind::Str => "a string that is not one",
                _ => "a number that is not one",
            }
        ))
    })
}

/// `null` or a string.
fn string(name: &str, value: &RawValue) -> Result<Option<String>, FormatError> {
    match Kind::of(value) {
        Kind::Null => Ok(None),
        Kind::Str => serde_json::from_str(value.get())
            .map(Some)
            .map_err(|e| FormatError::Malformed(format!("Malformed JSON: {e}"))),
        kind => Err(invalid(format!(
            "Field '{name}' must be a string, found {}.",
            kind.name()
        ))),
    }
}

/// `null` or one of the names `names` gives, in upper case as Confluent's enums.
fn one_of<T: Copy>(
    name: &str,
    value: &RawValue,
    all: &[T],
    names: impl Fn(T) -> &'static str,
) -> Result<Option<T>, FormatError> {
    // The names have no escapes: a string without any is compared where it lies.
    let text = value.get();
    let given = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(plain) if !plain.contains('\\') => Cow::Borrowed(plain),
        _ => match string(name, value)? {
            Some(given) => Cow::Owned(given),
            None => return Ok(None),
        },
    };
    all.iter()
        .copied()
        .find(|t| names(*t) == given)
        .map(Some)
        .ok_or_else(|| {
            let allowed: Vec<&str> = all.iter().map(|t| names(*t)).collect();
            invalid(format!(
                "Field '{name}' must be one of {}, found \"{given}\".",
                allowed.join(", ")
            ))
        })
}

/// `[{"name": "...", "value": "<base64>" | null}]`, in order, repeated names kept.
fn headers(value: &RawValue) -> Result<Vec<Header>, FormatError> {
    match Kind::of(value) {
        Kind::Null => return Ok(Vec::new()),
        Kind::Array => {}
        kind => {
            return Err(invalid(format!(
                "Field 'headers' must be an array, found {}.",
                kind.name()
            )))
        }
    }
    let items: Vec<&RawValue> = serde_json::from_str(value.get())
        .map_err(|e| FormatError::Malformed(format!("Malformed JSON: {e}")))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let at = |field: &str| format!("headers[{i}]{field}");
            if Kind::of(item) != Kind::Object {
                return Err(invalid(format!(
                    "Field '{}' must be an object, found {}.",
                    at(""),
                    Kind::of(item).name()
                )));
            }
            let fields = parse_object(item.get().as_bytes(), || at("")).map_err(as_record_error)?;
            let mut name = None;
            let mut header_value = None;
            for (field, v) in &fields {
                match field.as_ref() {
                    "name" => name = string(&at(".name"), v)?,
                    "value" => {
                        header_value = binary::decode(v).map_err(|e| {
                            invalid(format!("Field '{}': {}.", at(".value"), sentence(&e)))
                        })?;
                    }
                    other => {
                        return Err(invalid(format!(
                            "Unrecognized field: {}",
                            at(&format!(".{other}"))
                        )))
                    }
                }
            }
            let name =
                name.ok_or_else(|| invalid(format!("Field '{}' is required.", at(".name"))))?;
            Ok(Header {
                name,
                value: header_value,
            })
        })
        .collect()
}

/// An error's text without its final period, to end a sentence of our own.
fn sentence(error: &impl std::fmt::Display) -> String {
    error.to_string().trim_end_matches('.').to_owned()
}

/// `null`, an ISO-8601 instant (`2021-02-05T19:14:42Z`, fractions and offsets allowed), or
/// a number of seconds since the epoch (Jackson reads a number so). Milliseconds since the
/// epoch, as Kafka stores them.
fn timestamp(value: &RawValue) -> Result<Option<i64>, FormatError> {
    let ms = match Kind::of(value) {
        Kind::Null => return Ok(None),
        Kind::Str => {
            let text: String = serde_json::from_str(value.get())
                .map_err(|e| FormatError::Malformed(format!("Malformed JSON: {e}")))?;
            let at =
                time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                        invalid(format!(
                            "Field 'timestamp' must be an ISO-8601 instant such as \
                     2021-02-05T19:14:42.123Z: {}.",
                            sentence(&e)
                        ))
                    })?;
            i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
        }
        Kind::Number => epoch_seconds_to_ms(value.get()),
        kind => {
            return Err(invalid(format!(
                "Field 'timestamp' must be an ISO-8601 string, found {}.",
                kind.name()
            )))
        }
    };
    match ms {
        Some(ms) if ms >= 0 => Ok(Some(ms)),
        _ => Err(invalid(
            "Field 'timestamp' must be an instant from 1970-01-01T00:00:00Z on.".to_owned(),
        )),
    }
}

/// `1612552482` or `1612552482.123` seconds as milliseconds, read from the digits (no
/// float rounding).
fn epoch_seconds_to_ms(number: &str) -> Option<i64> {
    let (seconds, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains(['e', 'E']) || seconds.contains(['e', 'E']) {
        return None;
    }
    let millis: String = fraction.chars().chain("000".chars()).take(3).collect();
    seconds
        .parse::<i64>()
        .ok()?
        .checked_mul(1000)?
        .checked_add(millis.parse::<i64>().ok()?)
}

/// One `key` or `value`; `None` when absent or null.
fn side<'a>(side: Side, raw: &'a RawValue) -> Result<Option<SideSpec<'a>>, FormatError> {
    let name = side.as_str();
    match Kind::of(raw) {
        Kind::Null => return Ok(None),
        Kind::Object => {}
        kind => return Err(not_an_object(side, kind)),
    }
    let fields =
        parse_object(raw.get().as_bytes(), || format!("'{name}'")).map_err(as_record_error)?;
    let mut given = SideFields::default();
    for (field, value) in &fields {
        given.set(side, field.as_ref(), value)?;
    }
    given.spec(side)
}

fn not_an_object(side: Side, kind: Kind) -> FormatError {
    invalid(format!(
        "Field '{}' must be an object, found {}.",
        side.as_str(),
        kind.name()
    ))
}

/// The fields of one `key` or `value` as given, each read for its type.
#[derive(Default)]
struct SideFields<'a> {
    data_type: Option<DataType>,
    subject: Option<String>,
    strategy: Option<SubjectNameStrategy>,
    schema_id: Option<i32>,
    schema_version: Option<i32>,
    schema: Option<String>,
    data: Option<&'a RawValue>,
}

impl<'a> SideFields<'a> {
    /// Reads one field (a later one of the same name replaces it).
    fn set(&mut self, side: Side, field: &str, value: &'a RawValue) -> Result<(), FormatError> {
        let at = |field: &str| format!("{}.{field}", side.as_str());
        match field {
            "type" => {
                let name = match side {
                    Side::Key => "key.type",
                    Side::Value => "value.type",
                };
                self.data_type = one_of(name, value, &DataType::ALL, DataType::as_str)?;
            }
            "subject" => self.subject = string(&at("subject"), value)?,
            "subject_name_strategy" => {
                self.strategy = one_of(
                    &at("subject_name_strategy"),
                    value,
                    &[
                        SubjectNameStrategy::TopicName,
                        SubjectNameStrategy::RecordName,
                        SubjectNameStrategy::TopicRecordName,
                    ],
                    SubjectNameStrategy::as_str,
                )?;
            }
            "schema_id" => self.schema_id = schema_number(&at("schema_id"), value)?,
            "schema_version" => self.schema_version = schema_number(&at("schema_version"), value)?,
            "schema" => self.schema = string(&at("schema"), value)?,
            "data" => self.data = Some(value),
            other => return Err(invalid(format!("Unrecognized field: {}", at(other)))),
        }
        Ok(())
    }

    /// How the side is to be written, once all its fields are read: Confluent's rules for
    /// which fields go together.
    fn spec(self, side: Side) -> Result<Option<SideSpec<'a>>, FormatError> {
        let name = side.as_str();
        let SideFields {
            data_type,
            subject,
            strategy,
            schema_id,
            schema_version,
            schema,
            data,
        } = self;
        let data: &RawValue = match data {
            Some(data) => data,
            None => null(),
        };
        let forbidden = |why: String| invalid(format!("Field '{name}': {why}"));
        // Confluent's checks, in its order.
        if strategy.is_some() && subject.is_some() {
            return Err(forbidden(
                "Only one of 'subject_name_strategy' or 'subject' can be used.".to_owned(),
            ));
        }
        let selectors = [
            schema_id.is_some(),
            schema_version.is_some(),
            schema.is_some(),
        ];
        if selectors.iter().filter(|s| **s).count() > 1 {
            return Err(forbidden(
                "Only one of 'schema_id', 'schema_version' or 'schema' can be used.".to_owned(),
            ));
        }
        let selector = match (schema_id, schema_version, schema) {
            (Some(id), _, _) => Selector::Id(id),
            (_, Some(version), _) => Selector::Version(version),
            (_, _, Some(text)) => Selector::Text(text),
            _ => Selector::Latest,
        };
        let format = match data_type {
            Some(plain) if plain.schema_format().is_none() => {
                let given = [
                    ("subject_name_strategy", strategy.is_some()),
                    ("subject", subject.is_some()),
                    ("schema_id", schema_id.is_some()),
                    ("schema_version", schema_version.is_some()),
                    ("schema", matches!(selector, Selector::Text(_))),
                ];
                if let Some((field, _)) = given.iter().find(|(_, given)| *given) {
                    return Err(forbidden(format!(
                        "'type={}' cannot be used with '{field}'.",
                        plain.as_str()
                    )));
                }
                return Ok(Some(SideSpec::Plain {
                    data_type: plain,
                    data,
                }));
            }
            Some(schema_type) => {
                let registered = match &selector {
                    Selector::Id(id) => Some(format!("'schema_id={id}'")),
                    Selector::Version(v) => Some(format!("'schema_version={v}'")),
                    Selector::Text(_) => None,
                    Selector::Latest => {
                        return Err(forbidden(format!(
                            "'type={}' needs 'schema', the schema's text; a registered schema \
                             is named by 'schema_id' or 'schema_version' without 'type'.",
                            schema_type.as_str()
                        )))
                    }
                };
                if let Some(registered) = registered {
                    return Err(forbidden(format!(
                        "{registered} cannot be used with 'type={}': a registered schema is \
                         named without 'type'.",
                        schema_type.as_str()
                    )));
                }
                schema_type.schema_format()
            }
            None if matches!(selector, Selector::Text(_)) => {
                return Err(forbidden(
                    "'schema' needs 'type' (AVRO, JSONSCHEMA or PROTOBUF).".to_owned(),
                ))
            }
            None => None,
        };
        let subject = match (subject, strategy) {
            (Some(subject), _) => SubjectChoice::Named(subject),
            (None, strategy) => {
                SubjectChoice::Strategy(strategy.unwrap_or(SubjectNameStrategy::TopicName))
            }
        };
        Ok(Some(SideSpec::Schema {
            request: SchemaRequest {
                format,
                subject,
                selector,
            },
            data,
        }))
    }
}

/// A schema id or version: a 32-bit integer, as the registry's.
fn schema_number(name: &str, value: &RawValue) -> Result<Option<i32>, FormatError> {
    integer(name, value)?
        .map(|n| {
            i32::try_from(n)
                .map_err(|_| invalid(format!("Field '{name}' must be a 32-bit integer.")))
        })
        .transpose()
}

/// How one key or value was written, for its result: its type, its schema, its size.
#[derive(Debug, Clone)]
pub struct SideResult {
    pub data_type: DataType,
    /// The schema used, for `subject`, `schema_id` and `schema_version`.
    pub schema: Option<Arc<Resolved>>,
    /// Bytes written; -1 for null, as Kafka's `RecordMetadata` says.
    pub size: i64,
}

/// A record ready for the pipeline, and what its result will say about it.
#[derive(Debug)]
pub struct Encoded {
    pub record: Record,
    pub key: Option<SideResult>,
    pub value: Option<SideResult>,
    /// How the pipeline treats the record (validation, metrics): json when a side is JSON,
    /// binary when a side is BINARY or STRING (JSON Schemas cannot check those), else the
    /// schema format; json when nothing is written.
    pub format: EmbeddedFormat,
}

/// Resolves the schemas a record names (within `schema_registry.request_timeout_ms` for
/// both sides) and encodes its key and value. `source` holds the text the record was read
/// from: a compact JSON side is a slice of it rather than a copy.
///
/// # Errors
/// [`FormatError::Schema`] for a schema that cannot be resolved (or no registry);
/// [`FormatError::Data`] naming the field that cannot be encoded.
pub async fn encode(
    record: V3Record<'_>,
    source: &Bytes,
    topic: &TopicName,
    schemas: Option<&SchemaFormats>,
) -> Result<Encoded, FormatError> {
    let request = |spec: &Option<SideSpec<'_>>| match spec {
        Some(SideSpec::Schema { request, .. }) => Some(request.clone()),
        _ => None,
    };
    let (key_request, value_request) = (request(&record.key), request(&record.value));
    let (key_schema, value_schema) = if key_request.is_none() && value_request.is_none() {
        (None, None)
    } else {
        let schemas = schemas.ok_or(SchemaError::NotConfigured)?;
        let resolve = |request: Option<SchemaRequest>, side| async move {
            match request {
                Some(request) => schemas
                    .resolve_request(topic.as_str(), side, request)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        // The key's problems first, as Confluent reports them.
        let both = async {
            let key = resolve(key_request, Side::Key).await?;
            Ok::<_, SchemaError>((key, resolve(value_request, Side::Value).await?))
        };
        // Boxed, as in `encode::resolve`: records without a schema need not carry the
        // registry look-ups' state (~5 KB) in their futures.
        tokio::time::timeout(schemas.timeout(), Box::pin(both))
            .await
            .map_err(|_| {
                SchemaError::Unavailable(format!(
                    "no answer within {} ms",
                    schemas.timeout().as_millis()
                ))
            })??
    };
    let (key, key_result) = encode_side(Side::Key, record.key.as_ref(), key_schema, source)?;
    let (value, value_result) =
        encode_side(Side::Value, record.value.as_ref(), value_schema, source)?;
    let format = pipeline_format(key_result.as_ref(), value_result.as_ref());
    Ok(Encoded {
        record: Record {
            key,
            value,
            partition: record.partition,
            timestamp_ms: record.timestamp_ms,
            headers: record.headers,
        },
        key: key_result,
        value: value_result,
        format,
    })
}

/// A side's bytes (`None` for null) and what its result says about it.
type SideBytes = (Option<Bytes>, Option<SideResult>);

fn encode_side(
    side: Side,
    spec: Option<&SideSpec<'_>>,
    schema: Option<Arc<Resolved>>,
    source: &Bytes,
) -> Result<SideBytes, FormatError> {
    let Some(spec) = spec else {
        return Ok((None, None));
    };
    let at = || format!("{}.data", side.as_str());
    let (bytes, data_type, schema) = match (spec, schema) {
        (SideSpec::Plain { data_type, data }, _) => {
            let bytes = match data_type {
                DataType::Json => json::encode_in(source, data),
                DataType::String => string(&at(), data)?.map(Bytes::from),
                _ => binary::decode(data)
                    .map_err(|e| FormatError::Data(format!("Field '{}': {}.", at(), sentence(&e))))?
                    .map(Bytes::from),
            };
            (bytes, *data_type, None)
        }
        (SideSpec::Schema { data, .. }, Some(resolved)) => {
            let bytes = encode_with_schema(&resolved, data, at)?.map(Bytes::from);
            (bytes, DataType::of_schema(resolved.format), Some(resolved))
        }
        // A schema side always resolves, or fails before.
        (SideSpec::Schema { .. }, None) => return Err(SchemaError::Missing(side).into()),
    };
    let size = bytes
        .as_ref()
        .map_or(-1, |b| i64::try_from(b.len()).unwrap_or(i64::MAX));
    Ok((
        bytes,
        Some(SideResult {
            data_type,
            schema,
            size,
        }),
    ))
}

/// How the pipeline treats a record, from the types of the sides it writes (see
/// [`Encoded::format`]).
fn pipeline_format(key: Option<&SideResult>, value: Option<&SideResult>) -> EmbeddedFormat {
    // At most two: no allocation per record.
    let written = [key, value].map(|side| {
        side.filter(|side| side.size >= 0)
            .map(|side| side.data_type)
    });
    let written: &[DataType] = match written {
        [Some(k), Some(v)] => &[k, v],
        [Some(one), None] | [None, Some(one)] => &[one],
        [None, None] => &[],
    };
    if written
        .iter()
        .any(|t| matches!(t, DataType::Binary | DataType::String))
    {
        return EmbeddedFormat::Binary;
    }
    if written.contains(&DataType::Json) {
        return EmbeddedFormat::Json;
    }
    written
        .iter()
        .rev()
        .find_map(|t| t.schema_format())
        .unwrap_or(EmbeddedFormat::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<V3Record<'_>, FormatError> {
        V3Record::parse(text)
    }

    #[test]
    fn bytes_that_are_not_utf8_are_malformed_json_wherever_they_are() {
        let utf8_error = |bytes: &[u8]| std::str::from_utf8(bytes).unwrap_err();
        for bytes in [
            &b"{\"value\":{\"type\":\"STRING\",\"data\":\"caf\xe9\"}}"[..],
            &b"{\"caf\xe9\":1}"[..],
            &b"{\"value\":{\"type\":\"JSON\",\"data\":1}}\xff"[..],
        ] {
            match V3Record::parse_bytes(bytes) {
                Err(FormatError::Malformed(message)) => {
                    assert_eq!(message, format!("Malformed JSON: {}", utf8_error(bytes)));
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
            }
        }
        let text = "{\"value\":{\"type\":\"STRING\",\"data\":\"caf\u{e9}\"}}";
        assert!(V3Record::parse_bytes(text.as_bytes()).is_ok());
    }

    fn refused(text: &str) -> String {
        match parse(text) {
            Err(FormatError::Record(m)) => m,
            other => panic!("{text}: expected a record error, got {other:?}"),
        }
    }

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn an_empty_object_is_a_record_with_nothing() {
        let record = parse("{}").unwrap();
        assert!(record.partition.is_none() && record.headers.is_empty());
        assert!(record.key.is_none() && record.value.is_none() && record.timestamp_ms.is_none());
        let record = parse(r#"{"key":null,"value":null,"headers":null,"timestamp":null}"#).unwrap();
        assert!(record.key.is_none() && record.value.is_none());
    }

    #[test]
    fn every_field() {
        let record = parse(
            r#"{"partition_id":"2","headers":[{"name":"h","value":"Zm9v"},{"name":"h","value":null},{"name":"e"}],
                "key":{"type":"BINARY","data":"Zm9v"},"value":{"type":"JSON","data":{"a":1}},
                "timestamp":"2021-02-05T19:14:42.5+01:00"}"#,
        )
        .unwrap();
        assert_eq!(record.partition, Partition::new(2));
        let names: Vec<(&str, Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_deref()))
            .collect();
        assert_eq!(names, [("h", Some(&b"foo"[..])), ("h", None), ("e", None)]);
        assert_eq!(record.timestamp_ms, Some(1_612_548_882_500));
        assert!(matches!(
            record.key,
            Some(SideSpec::Plain {
                data_type: DataType::Binary,
                ..
            })
        ));
    }

    #[test]
    fn timestamps_as_jackson_reads_them() {
        let ts = |t: &str| timestamp(raw(t));
        assert_eq!(ts(r#""2021-02-05T19:14:42Z""#), Ok(Some(1_612_552_482_000)));
        assert_eq!(
            ts(r#""2021-02-05T19:14:42.123456Z""#),
            Ok(Some(1_612_552_482_123))
        );
        assert_eq!(ts("1612552482"), Ok(Some(1_612_552_482_000)));
        assert_eq!(ts("1612552482.25"), Ok(Some(1_612_552_482_250)));
        assert!(ts(r#""yesterday""#).is_err());
        assert!(ts(r#""1969-12-31T23:59:59Z""#).is_err());
        assert!(ts("1e3").is_err());
        assert!(ts("true").is_err());
    }

    #[test]
    fn selectors_as_confluent_allows_them() {
        let spec = |text: &str| match side(Side::Value, raw(text)) {
            Ok(Some(SideSpec::Schema { request, .. })) => request,
            other => panic!("{text}: {other:?}"),
        };
        let topic_name = SubjectChoice::Strategy(SubjectNameStrategy::TopicName);
        assert_eq!(
            spec(r#"{"data":1}"#),
            SchemaRequest {
                format: None,
                subject: topic_name.clone(),
                selector: Selector::Latest
            }
        );
        assert_eq!(
            spec(r#"{"schema_id":3,"subject":"s"}"#),
            SchemaRequest {
                format: None,
                subject: SubjectChoice::Named("s".into()),
                selector: Selector::Id(3)
            }
        );
        assert_eq!(
            spec(r#"{"schema_version":2,"subject_name_strategy":"RECORD_NAME"}"#),
            SchemaRequest {
                format: None,
                subject: SubjectChoice::Strategy(SubjectNameStrategy::RecordName),
                selector: Selector::Version(2)
            }
        );
        assert_eq!(
            spec(r#"{"type":"AVRO","schema":"\"int\""}"#),
            SchemaRequest {
                format: Some(EmbeddedFormat::Avro),
                subject: topic_name,
                selector: Selector::Text("\"int\"".into())
            }
        );
    }

    #[test]
    fn forbidden_combinations_name_themselves() {
        let cases = [
            (
                r#"{"value":{"subject":"s","subject_name_strategy":"TOPIC_NAME"}}"#,
                "Field 'value': Only one of 'subject_name_strategy' or 'subject' can be used.",
            ),
            (
                r#"{"value":{"schema_id":1,"schema_version":1}}"#,
                "Field 'value': Only one of 'schema_id', 'schema_version' or 'schema' can be used.",
            ),
            (
                r#"{"key":{"type":"BINARY","subject":"s"}}"#,
                "Field 'key': 'type=BINARY' cannot be used with 'subject'.",
            ),
            (
                r#"{"key":{"type":"STRING","schema_version":1}}"#,
                "Field 'key': 'type=STRING' cannot be used with 'schema_version'.",
            ),
            (
                r#"{"key":{"type":"JSON","schema":"{}"}}"#,
                "Field 'key': 'type=JSON' cannot be used with 'schema'.",
            ),
            (
                r#"{"key":{"type":"AVRO","schema_id":1}}"#,
                "Field 'key': 'schema_id=1' cannot be used with 'type=AVRO': a registered \
                 schema is named without 'type'.",
            ),
            (
                r#"{"key":{"type":"PROTOBUF"}}"#,
                "Field 'key': 'type=PROTOBUF' needs 'schema', the schema's text; a registered \
                 schema is named by 'schema_id' or 'schema_version' without 'type'.",
            ),
            (
                r#"{"key":{"schema":"\"int\""}}"#,
                "Field 'key': 'schema' needs 'type' (AVRO, JSONSCHEMA or PROTOBUF).",
            ),
            (
                r#"{"key":{"type":"binary"}}"#,
                "Field 'key.type' must be one of BINARY, JSON, STRING, AVRO, JSONSCHEMA, \
                 PROTOBUF, found \"binary\".",
            ),
            (r#"{"records":[]}"#, "Unrecognized field: records"),
            (r#"{"key":{"foo":1}}"#, "Unrecognized field: key.foo"),
            (
                r#"{"partition_id":true}"#,
                "Field 'partition_id' must be an integer, found a boolean.",
            ),
            (
                r#"{"partition_id":"x"}"#,
                "Field 'partition_id' must be an integer, found a string that is not one.",
            ),
            (
                r#"{"partition_id":1.5}"#,
                "Field 'partition_id' must be an integer, found a number that is not one.",
            ),
            (
                r#"{"headers":[{"value":"Zm9v"}]}"#,
                "Field 'headers[0].name' is required.",
            ),
            (
                r#"{"headers":{"name":"h"}}"#,
                "Field 'headers' must be an array, found an object.",
            ),
            ("[]", "A record must be a JSON object, found an array."),
            (
                r#"{"key":"Zm9v"}"#,
                "Field 'key' must be an object, found a string.",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(refused(text), message, "{text}");
        }
        assert!(matches!(
            parse(r#"{"partition_id":-1}"#),
            Err(FormatError::NegativePartition)
        ));
        assert!(matches!(
            parse(r#"{"key":"#),
            Err(FormatError::Malformed(_))
        ));
    }

    /// A compact JSON side is a slice of the record's text, not a copy; one with
    /// whitespace to drop, and the other types, have bytes of their own.
    #[tokio::test]
    async fn a_compact_json_side_shares_the_records_bytes() {
        let topic = TopicName::parse("t").unwrap();
        let source = Bytes::from_static(
            br#"{"key":{"type":"JSON","data":[1,2]},"value":{"type":"JSON","data":{ "a" : 1 }}}"#,
        );
        let record = V3Record::parse_bytes(&source).unwrap();
        let encoded = encode(record, &source, &topic, None).await.unwrap();
        let key = encoded.record.key.unwrap();
        let value = encoded.record.value.unwrap();
        assert_eq!((&key[..], &value[..]), (&b"[1,2]"[..], &br#"{"a":1}"#[..]));
        assert!(source.as_ptr_range().contains(&key.as_ptr()));
        assert!(!source.as_ptr_range().contains(&value.as_ptr()));
    }

    #[tokio::test]
    async fn plain_types_are_encoded_without_a_registry() {
        let topic = TopicName::parse("t").unwrap();
        let record = parse(
            r#"{"key":{"type":"STRING","data":"k\u00e9"},"value":{"type":"JSON","data":{ "a" : 1 }}}"#,
        )
        .unwrap();
        let encoded = encode(record, &Bytes::new(), &topic, None).await.unwrap();
        assert_eq!(encoded.record.key.as_deref(), Some("ké".as_bytes()));
        assert_eq!(encoded.record.value.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert_eq!(encoded.key.as_ref().unwrap().size, 3);
        assert_eq!(encoded.format, EmbeddedFormat::Binary);

        let record = parse(r#"{"value":{"type":"BINARY"}}"#).unwrap();
        let encoded = encode(record, &Bytes::new(), &topic, None).await.unwrap();
        assert_eq!(encoded.record.value, None);
        assert_eq!(encoded.value.unwrap().size, -1);
        assert_eq!(encoded.format, EmbeddedFormat::Json);

        let record = parse(r#"{"value":{"type":"BINARY","data":"!!"}}"#).unwrap();
        let err = encode(record, &Bytes::new(), &topic, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("Field 'value.data': not valid base64"),
            "{err}"
        );
        assert!(!err.ends_with(".."), "{err}");

        let record = parse(r#"{"value":{"type":"STRING","data":1}}"#).unwrap();
        let err = encode(record, &Bytes::new(), &topic, None)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(err, "Field 'value.data' must be a string, found a number.");

        // No type: the registry's latest schema, and there is no registry.
        let record = parse(r#"{"value":{"data":"Zm9v"}}"#).unwrap();
        let err = encode(record, &Bytes::new(), &topic, None)
            .await
            .unwrap_err();
        assert_eq!(err, FormatError::Schema(SchemaError::NotConfigured));
    }
}
