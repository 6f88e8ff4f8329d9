//! The resolve and encode steps: an embedded format and the request's schema references
//! become an encoder for keys and one for values, which turn each raw JSON key and value
//! into the bytes Kafka stores.

use serde_json::value::RawValue;

use super::envelope::RawRecord;
use super::{binary, json, EmbeddedFormat, FormatError, SchemaRef};
use crate::domain::Record;

/// How one side (keys or values) of a request is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoder {
    Json,
    Binary,
}

impl Encoder {
    fn encode(self, raw: &RawValue) -> Result<Option<Vec<u8>>, String> {
        match self {
            Encoder::Json => Ok(json::encode(raw)),
            Encoder::Binary => binary::decode(raw).map_err(|e| e.to_string()),
        }
    }
}

/// The encoders of a request's keys and values, and the schema ids they resolved to (what
/// the v2 response reports as `key_schema_id` / `value_schema_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoders {
    key: Encoder,
    value: Encoder,
    pub key_schema_id: Option<i32>,
    pub value_schema_id: Option<i32>,
}

/// Resolves the encoders of a request, once per request. The schema references are ignored
/// by json and binary, as in Confluent's proxy.
///
/// # Errors
/// [`FormatError::RegistryNotConfigured`] for the Schema Registry formats.
pub async fn resolve(
    format: EmbeddedFormat,
    _key_schema: &SchemaRef,
    _value_schema: &SchemaRef,
) -> Result<Encoders, FormatError> {
    let encoder = match format {
        EmbeddedFormat::Json => Encoder::Json,
        EmbeddedFormat::Binary => Encoder::Binary,
        EmbeddedFormat::Avro | EmbeddedFormat::JsonSchema | EmbeddedFormat::Protobuf => {
            return Err(FormatError::RegistryNotConfigured(format))
        }
    };
    Ok(Encoders {
        key: encoder,
        value: encoder,
        key_schema_id: None,
        value_schema_id: None,
    })
}

impl Encoders {
    /// Encodes every record, in order.
    ///
    /// # Errors
    /// [`FormatError::Data`] naming the first record and field that cannot be encoded.
    pub fn encode(&self, records: &[RawRecord<'_>]) -> Result<Vec<Record>, FormatError> {
        records
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                let side = |encoder: Encoder, field: &str, value: Option<&RawValue>| {
                    value.map_or(Ok(None), |v| {
                        encoder.encode(v).map_err(|e| {
                            FormatError::Data(format!("Field 'records[{index}].{field}': {e}."))
                        })
                    })
                };
                Ok(Record {
                    key: side(self.key, "key", raw.key)?,
                    value: side(self.value, "value", raw.value)?,
                    partition: raw.partition,
                    ..Record::default()
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::V2Request;

    async fn encode(body: &str, format: EmbeddedFormat) -> Result<Vec<Record>, FormatError> {
        let request = V2Request::parse(body.as_bytes(), 1000)?;
        resolve(format, &request.key_schema, &request.value_schema)
            .await?
            .encode(&request.records)
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
            FormatError::Data(m) => assert!(
                m.starts_with("Field 'records[1].value': not valid base64"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    /// A 1 MiB body of `{}` records is refused for its record count while allocating
    /// far less than the body's size, not ~30 times it.
    #[tokio::test]
    async fn too_many_records_are_refused_before_they_cost_memory() {
        let records = vec!["{}"; 349_000].join(",");
        let body = format!(r#"{{"records":[{records}]}}"#);
        assert!(body.len() > 1_000_000);
        let encoders = resolve(
            EmbeddedFormat::Json,
            &SchemaRef::default(),
            &SchemaRef::default(),
        )
        .await
        .unwrap();
        let (refused, peak) = crate::formats::counting_alloc::peak_during(|| {
            V2Request::parse(body.as_bytes(), 1000)
                .and_then(|r| encoders.encode(&r.records))
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
            "the avro embedded format needs a Schema Registry, and none is configured"
        );
    }
}
