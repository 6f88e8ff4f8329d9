//! The resolve and encode steps: an embedded format and the request's schema references
//! become an encoder for keys and one for values, which turn each raw JSON key and value
//! into the bytes Kafka stores.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::try_join;
use serde_json::value::RawValue;

use super::envelope::{self, RawRecord, V2Request};
use super::schema::{Resolved, SchemaError, SchemaFormats, Selector, Side};
use super::{binary, json, EmbeddedFormat, FormatError, SchemaRef};
use crate::domain::{Record, TopicName};

/// How one side (keys or values) of a request is encoded.
#[derive(Debug, Clone)]
enum Encoder {
    Json,
    Binary,
    /// A Schema Registry format; `None` when the request gave no schema for this side, so
    /// only null data may come.
    Schema(Option<Arc<Resolved>>),
}

impl Encoder {
    /// The bytes of one key or value; `body` is what `raw` was read from (json shares it).
    fn encode(
        &self,
        side: Side,
        raw: &RawValue,
        body: &Bytes,
        at: impl Fn() -> String,
    ) -> Result<Option<Bytes>, FormatError> {
        match self {
            Encoder::Json => Ok(json::encode_in(body, raw)),
            Encoder::Binary => binary::decode(raw)
                .map(|bytes| bytes.map(Bytes::from))
                .map_err(|e| FormatError::Data(format!("Field '{}': {e}.", at()))),
            // Without a schema, null data is a null key or tombstone, as Confluent's.
            Encoder::Schema(None) if raw.get() == "null" => Ok(None),
            Encoder::Schema(None) => Err(SchemaError::Missing(side).into()),
            Encoder::Schema(Some(resolved)) => {
                Ok(encode_with_schema(resolved, raw, at)?.map(Bytes::from))
            }
        }
    }

    fn schema_id(&self) -> Option<i32> {
        match self {
            Encoder::Schema(Some(resolved)) => Some(resolved.id),
            _ => None,
        }
    }
}

/// Encodes a key or value with its resolved schema, in the Schema Registry wire format.
/// `null` must be a value the schema allows, and is then written as a null key or tombstone
/// (Confluent's serializers write no bytes for it).
///
/// # Errors
/// [`FormatError::Data`] naming the field (`at`, then the path inside the value).
pub fn encode_with_schema(
    resolved: &Resolved,
    raw: &RawValue,
    at: impl Fn() -> String,
) -> Result<Option<Vec<u8>>, FormatError> {
    let encoded = resolved
        .encode(raw)
        .map_err(|e| FormatError::Data(format!("{}{}: {}", at(), e.path, e.message)))?;
    Ok((raw.get() != "null").then_some(encoded))
}

/// The encoders of a request's keys and values, and the schema ids they resolved to (what
/// the v2 response reports as `key_schema_id` / `value_schema_id`).
#[derive(Debug, Clone)]
pub struct Encoders {
    key: Encoder,
    value: Encoder,
    pub key_schema_id: Option<i32>,
    pub value_schema_id: Option<i32>,
}

/// Resolves the encoders of a request, once per request: json and binary at once (their
/// schema references are ignored, as in Confluent's proxy); the Schema Registry formats
/// through `schemas`, keys and values concurrently, all registry calls within
/// `schema_registry.request_timeout_ms`.
///
/// # Errors
/// [`FormatError::Schema`]: no registry configured, a bad schema reference, a registry
/// refusal or outage.
pub async fn resolve(
    format: EmbeddedFormat,
    topic: &TopicName,
    key_schema: &SchemaRef,
    value_schema: &SchemaRef,
    schemas: Option<&SchemaFormats>,
) -> Result<Encoders, FormatError> {
    if let Some(encoders) = Encoders::plain(format) {
        return Ok(encoders);
    }
    let schemas = schemas.ok_or(SchemaError::NotConfigured)?;
    let key_selector = selector(Side::Key, key_schema)?;
    let value_selector = selector(Side::Value, value_schema)?;
    let side = |side: Side, selector: Option<Selector>| async move {
        match selector {
            Some(s) => schemas
                .resolve(format, topic.as_str(), side, s)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let both = try_join(
        side(Side::Key, key_selector),
        side(Side::Value, value_selector),
    );
    // Boxed: the registry look-ups' state is ~9 KB, which would otherwise be part
    // of every produce request's future (json and binary too), allocated and
    // copied per request.
    let (key, value) = tokio::time::timeout(schemas.timeout(), Box::pin(both))
        .await
        .map_err(|_| {
            SchemaError::Unavailable(format!(
                "no answer within {} ms",
                schemas.timeout().as_millis()
            ))
        })??;
    let (key, value) = (Encoder::Schema(key), Encoder::Schema(value));
    Ok(Encoders {
        key_schema_id: key.schema_id(),
        value_schema_id: value.schema_id(),
        key,
        value,
    })
}

/// The schema a request names for one side, if any.
fn selector(side: Side, reference: &SchemaRef) -> Result<Option<Selector>, SchemaError> {
    match (&reference.text, reference.id) {
        (Some(_), Some(_)) => Err(SchemaError::TextAndId(side)),
        (Some(text), None) => Ok(Some(Selector::Text(text.clone()))),
        (None, Some(id)) => i32::try_from(id)
            .map(|id| Some(Selector::Id(id)))
            .map_err(|_| SchemaError::IdOutOfRange(side)),
        (None, None) => Ok(None),
    }
}

impl Encoders {
    /// The encoders of the formats that need no schema (json, binary): known before the
    /// body is read, so records can be encoded as they are read.
    pub fn plain(format: EmbeddedFormat) -> Option<Encoders> {
        let encoder = match format {
            EmbeddedFormat::Json => Encoder::Json,
            EmbeddedFormat::Binary => Encoder::Binary,
            EmbeddedFormat::Avro | EmbeddedFormat::JsonSchema | EmbeddedFormat::Protobuf => {
                return None
            }
        };
        Some(Encoders {
            key: encoder.clone(),
            value: encoder,
            key_schema_id: None,
            value_schema_id: None,
        })
    }

    /// Encodes every record, in order; `body` is what they were read from.
    ///
    /// # Errors
    /// [`FormatError::Data`] naming the first record and field that cannot be encoded;
    /// [`FormatError::Schema`] for data on a side that has no schema.
    pub fn encode(
        &self,
        records: &[RawRecord<'_>],
        body: &Bytes,
    ) -> Result<Vec<Record>, FormatError> {
        records
            .iter()
            .enumerate()
            .map(|(index, raw)| self.encode_one(index, raw, body))
            .collect()
    }

    /// Encodes the record at `index` of the request.
    fn encode_one(
        &self,
        index: usize,
        raw: &RawRecord<'_>,
        body: &Bytes,
    ) -> Result<Record, FormatError> {
        let side = |encoder: &Encoder, side: Side, value: Option<&RawValue>| {
            value.map_or(Ok(None), |v| {
                encoder.encode(side, v, body, || {
                    format!("records[{index}].{}", side.as_str())
                })
            })
        };
        Ok(Record {
            key: side(&self.key, Side::Key, raw.key)?,
            value: side(&self.value, Side::Value, raw.value)?,
            partition: raw.partition,
            ..Record::default()
        })
    }
}

/// A v2 produce body's records, read and encoded, with the encoders used (whose schema ids
/// the response reports). json and binary take one pass over the body, each record
/// converted as it is read ([`envelope::read`]); the Schema Registry formats read the body,
/// resolve the schemas it names, then encode.
///
/// # Errors
/// [`FormatError`]: the envelope's shape first, then a schema that cannot be resolved, then
/// the first record that cannot be encoded.
pub async fn read_v2(
    format: EmbeddedFormat,
    topic: &TopicName,
    body: &Bytes,
    max_records: usize,
    schemas: Option<&SchemaFormats>,
) -> Result<(Encoders, Vec<Record>), FormatError> {
    if let Some(encoders) = Encoders::plain(format) {
        let mut records = Vec::new();
        envelope::read(body, max_records, |index, raw| {
            if index == 0 {
                records.clear();
            }
            records.push(encoders.encode_one(index, &raw, body)?);
            Ok(())
        })?;
        return Ok((encoders, records));
    }
    let request = V2Request::parse(body, max_records)?;
    let encoders = resolve(
        format,
        topic,
        &request.key_schema,
        &request.value_schema,
        schemas,
    )
    .await?;
    let records = encoders.encode(&request.records, body)?;
    Ok((encoders, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn encode(body: &str, format: EmbeddedFormat) -> Result<Vec<Record>, FormatError> {
        let body = Bytes::copy_from_slice(body.as_bytes());
        let topic = TopicName::parse("t").unwrap();
        let (_, records) = read_v2(format, &topic, &body, 1000, None).await?;
        Ok(records)
    }

    #[tokio::test]
    async fn json_keeps_the_bytes_and_null_is_absent() {
        let records = encode(
            r#"{"records":[{"key":"k","value":{"a": 1}},{"value":null}]}"#,
            EmbeddedFormat::Json,
        )
        .await
        .unwrap();
        assert_eq!(records[0].key.as_deref(), Some(&b"\"k\""[..]));
        assert_eq!(records[0].value.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert_eq!(records[1], Record::default());
    }

    #[tokio::test]
    async fn binary_errors_name_the_record() {
        let err = encode(
            r#"{"records":[{"value":"Zm9v"},{"value":"!!"}]}"#,
            EmbeddedFormat::Binary,
        )
        .await
        .unwrap_err();
        match err {
            FormatError::Data(m) => assert_eq!(
                m,
                "Field 'records[1].value': not valid base64: '!' at offset 0 is not a base64 \
                 character."
            ),
            other => panic!("{other:?}"),
        }
    }

    /// json and binary records are converted while the body is read, yet a record that
    /// cannot be converted is only reported for a body whose shape is right: malformed
    /// JSON, a top-level field, a later record's shape and the record count all come first,
    /// wherever they are in the body.
    #[tokio::test]
    async fn a_conversion_error_is_reported_after_every_shape_error() {
        let bad = r#"{"value":"!!"}"#;
        let cases = [
            (
                format!(r#"{{"records":[{bad},1]}}"#),
                "Field 'records[1]' must be an object, found a number.",
            ),
            (
                format!(r#"{{"records":[{bad},{{"value":"Zm8","x":1}}]}}"#),
                "Unrecognized field: x",
            ),
            (
                format!(r#"{{"records":[{bad}],"foo":1}}"#),
                "Unrecognized field: foo",
            ),
            (
                format!(r#"{{"records":[{bad}],"key_schema_id":true}}"#),
                "Field 'key_schema_id' must be an integer, found a boolean.",
            ),
            (
                format!(r#"{{"records":[{bad}],"records":null}}"#),
                "Field 'records' is required.",
            ),
        ];
        for (body, message) in cases {
            assert_eq!(
                encode(&body, EmbeddedFormat::Binary).await,
                Err(FormatError::Envelope(message.to_owned())),
                "{body}"
            );
        }
        let body = format!(r#"{{"records":[{bad}],"records":[1]"#);
        assert!(matches!(
            encode(&body, EmbeddedFormat::Binary).await,
            Err(FormatError::Malformed(_))
        ));
        let records = vec![bad; 1001].join(",");
        assert_eq!(
            encode(
                &format!(r#"{{"records":[{records}]}}"#),
                EmbeddedFormat::Binary
            )
            .await,
            Err(FormatError::TooManyRecords {
                count: 1001,
                limit: 1000
            })
        );
        // The first record that cannot be converted, not a later one.
        let body = format!(r#"{{"records":[{{"value":"Zm8"}},{bad},{{"key":"?"}}]}}"#);
        assert_eq!(
            encode(&body, EmbeddedFormat::Binary).await,
            Err(FormatError::Data(
                "Field 'records[1].value': not valid base64: '!' at offset 0 is not a base64 \
                 character."
                    .to_owned()
            ))
        );
    }

    /// A body that names `records` twice is read as its last one, as Jackson reads it: the
    /// first one's records, converted already, and its errors are dropped.
    #[tokio::test]
    async fn the_last_records_field_counts() {
        let body = r#"{"records":[{"value":"!!"},{"value":"AA"}],"records":[{"value":"Zm8"}]}"#;
        let records = encode(body, EmbeddedFormat::Binary).await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].value.as_deref(), Some(&b"fo"[..]));
    }

    /// A 1 MiB body of `{}` records is refused for its record count while allocating
    /// far less than the body's size, not ~30 times it.
    #[tokio::test]
    async fn too_many_records_are_refused_before_they_cost_memory() {
        let records = vec!["{}"; 349_000].join(",");
        let body = format!(r#"{{"records":[{records}]}}"#);
        assert!(body.len() > 1_000_000);
        let body = Bytes::from(body);
        let topic = TopicName::parse("t").unwrap();
        let (refused, peak) = crate::formats::counting_alloc::peak_during(|| {
            futures_util::FutureExt::now_or_never(read_v2(
                EmbeddedFormat::Json,
                &topic,
                &body,
                1000,
                None,
            ))
            .expect("no registry to wait for")
            .unwrap_err()
            .to_string()
        });
        assert_eq!(
            refused,
            "Too many records: 349000 in the request, the limit is 1000."
        );
        assert!(
            peak < body.len(),
            "peak {peak} bytes for a body of {}",
            body.len()
        );
    }

    #[tokio::test]
    async fn schema_formats_need_a_registry() {
        let err = encode(r#"{"records":[{"value":"x"}]}"#, EmbeddedFormat::Avro)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Payload error. Schema Registry must be configured when using schemas."
        );
    }

    #[test]
    fn a_side_names_its_schema_by_text_or_by_id_not_both() {
        let text = || Some("\"int\"".to_owned());
        let cases = [
            (
                SchemaRef {
                    text: None,
                    id: None,
                },
                Ok(None),
            ),
            (
                SchemaRef {
                    text: text(),
                    id: None,
                },
                Ok(Some(Selector::Text("\"int\"".into()))),
            ),
            (
                SchemaRef {
                    text: None,
                    id: Some(7),
                },
                Ok(Some(Selector::Id(7))),
            ),
            (
                SchemaRef {
                    text: text(),
                    id: Some(7),
                },
                Err(SchemaError::TextAndId(Side::Key)),
            ),
            (
                SchemaRef {
                    text: None,
                    id: Some(1 << 40),
                },
                Err(SchemaError::IdOutOfRange(Side::Key)),
            ),
        ];
        for (reference, expected) in cases {
            assert_eq!(selector(Side::Key, &reference), expected, "{reference:?}");
        }
        assert_eq!(
            SchemaError::TextAndId(Side::Value).to_string(),
            "Request includes both value_schema and value_schema_id: give one of them."
        );
        assert_eq!(
            SchemaError::Missing(Side::Key).to_string(),
            "Request includes keys but does not include key schema"
        );
    }
}

/// Properties of what json and binary records become, over generated requests.
#[cfg(test)]
mod properties {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    use base64::Engine;
    use futures_util::FutureExt;
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    /// A JSON value as the partner's tokens: a literal's text (`null`, `true`, a number's
    /// digits, a string with its escapes) or a container of values.
    #[derive(Debug, Clone)]
    enum Json {
        Literal(String),
        Array(Vec<Json>),
        Object(Vec<(String, Json)>),
    }

    impl Json {
        /// The text, with `spaces` (taken in turn) before and after every token.
        fn render(&self, spaces: &[String]) -> String {
            let mut out = String::new();
            self.write(&mut out, &mut spaces.iter().cycle());
            out
        }

        fn write<'s>(&self, out: &mut String, spaces: &mut impl Iterator<Item = &'s String>) {
            let token =
                |out: &mut String, spaces: &mut dyn Iterator<Item = &'s String>, text: &str| {
                    out.push_str(spaces.next().map_or("", String::as_str));
                    out.push_str(text);
                    out.push_str(spaces.next().map_or("", String::as_str));
                };
            match self {
                Json::Literal(text) => token(out, spaces, text),
                Json::Array(items) => {
                    token(out, spaces, "[");
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            token(out, spaces, ",");
                        }
                        item.write(out, spaces);
                    }
                    token(out, spaces, "]");
                }
                Json::Object(members) => {
                    token(out, spaces, "{");
                    for (i, (key, value)) in members.iter().enumerate() {
                        if i > 0 {
                            token(out, spaces, ",");
                        }
                        token(out, spaces, key);
                        token(out, spaces, ":");
                        value.write(out, spaces);
                    }
                    token(out, spaces, "}");
                }
            }
        }
    }

    /// A JSON string token: any character JSON lets stand unescaped (spaces and non-ASCII
    /// included), every short escape, `\u` escapes in either case, surrogate pairs and
    /// lone surrogates (which JSON's grammar allows).
    fn string_token() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            any::<char>()
                .prop_filter("needs no escape", |c| !matches!(
                    c,
                    '"' | '\\' | '\0'..='\x1f'
                ))
                .prop_map(String::from),
            Just(" ".to_owned()),
            prop::sample::select(vec![
                "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"
            ])
            .prop_map(str::to_owned),
            any::<u16>().prop_map(|u| format!("\\u{u:04x}")),
            any::<u16>().prop_map(|u| format!("\\u{u:04X}")),
            (0xD800u16..0xDC00, 0xDC00u16..0xE000)
                .prop_map(|(high, low)| format!("\\u{high:04x}\\u{low:04X}")),
        ];
        vec(piece, 0..8).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
    }

    fn json() -> impl Strategy<Value = Json> {
        let number = "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?";
        let literal = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            number,
            string_token(),
        ]
        .prop_map(Json::Literal);
        literal.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Json::Array),
                vec((string_token(), inner), 0..6).prop_map(Json::Object),
            ]
        })
    }

    /// The records of a one-record body, encoded in `format`.
    fn encode_one(body: &str, format: EmbeddedFormat) -> Record {
        let body = Bytes::copy_from_slice(body.as_bytes());
        let topic = TopicName::parse("t").expect("a topic name");
        let (_, mut records) = read_v2(format, &topic, &body, 1000, None)
            .now_or_never()
            .expect("no registry to wait for")
            .expect("json and binary encode");
        assert_eq!(records.len(), 1);
        records.remove(0)
    }

    proptest! {
        /// Any JSON key or value, whatever whitespace surrounds its tokens, is written as
        /// the same tokens with no whitespace between them: same key order, same number
        /// digits, same string escapes; `null` is a null key or tombstone.
        #[test]
        fn json_is_written_with_the_tokens_sent(
            value in json(),
            spaces in vec("[ \t\n\r]{0,3}", 1..16),
        ) {
            let sent = value.render(&spaces);
            let compact = value.render(&[String::new()]);
            let body = format!(r#"{{"records":[{{"key":{sent},"value":{sent}}}]}}"#);
            let record = encode_one(&body, EmbeddedFormat::Json);
            let expected = (compact != "null").then(|| Bytes::from(compact));
            prop_assert_eq!(&record.key, &expected);
            prop_assert_eq!(&record.value, &expected);
        }

        /// Any bytes, sent as standard base64 with or without padding, are written as the
        /// same bytes.
        #[test]
        fn binary_bytes_round_trip(bytes in vec(any::<u8>(), 0..512), padded in any::<bool>()) {
            let text = if padded { STANDARD.encode(&bytes) } else { STANDARD_NO_PAD.encode(&bytes) };
            let body = format!(r#"{{"records":[{{"key":"{text}","value":"{text}"}}]}}"#);
            let record = encode_one(&body, EmbeddedFormat::Binary);
            prop_assert_eq!(record.key.as_deref(), Some(&bytes[..]));
            prop_assert_eq!(record.value.as_deref(), Some(&bytes[..]));
        }
    }
}
