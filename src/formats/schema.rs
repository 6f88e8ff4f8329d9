//! Resolving the schema of one side (keys or values) of a request in the Schema Registry,
//! as Confluent's REST proxy does, and the cache of what was resolved.
//!
//! - by id: the schema is fetched by its global id, then it must be registered under the
//!   subject (a look-up gives its version there); else 42207;
//! - by text: the text is parsed (else 42205), looked up under the subject, and registered
//!   there when absent.
//!
//! Subjects follow Confluent's default TopicNameStrategy: `<topic>-key`, `<topic>-value`.
//! A resolution is cached with its parsed encoder, keyed by (format, subject, id or text):
//! the registry sees one resolution per distinct schema, not one per request, and a
//! registry outage does not touch what is cached. Concurrent requests for a key not yet
//! cached share one resolution. Failures are not cached.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use serde_json::value::RawValue;

use super::avro::AvroSchema;
use super::json_schema::JsonSchema;
use super::protobuf::ProtobufSchema;
use super::{DataError, EmbeddedFormat};
use crate::metrics::Metrics;
use crate::schema_registry::{RegistryError, SchemaRegistry, SchemaText, SchemaType};

/// The magic byte that opens the Schema Registry wire format.
const MAGIC_BYTE: u8 = 0;

/// Which side of a record a schema is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Key,
    Value,
}

impl Side {
    /// `key` or `value`, as in field names and subjects.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Key => "key",
            Side::Value => "value",
        }
    }
}

/// How a request names its schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    Id(i32),
    Text(String),
}

/// Why a side's schema cannot be resolved or used; nothing of the request is produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A schema format, and no registry configured (42206).
    #[error("Payload error. Schema Registry must be configured when using schemas.")]
    NotConfigured,
    /// Non-null data on a side without a schema (42201 for keys, 42202 for values), in
    /// Confluent's words.
    #[error("Request includes {}s but does not include {} schema", .0.as_str(), .0.as_str())]
    Missing(Side),
    /// Both the text and the id of one side's schema (422; Confluent answers 500).
    #[error(
        "Request includes both {side}_schema and {side}_schema_id: give one of them.",
        side = .0.as_str()
    )]
    TextAndId(Side),
    /// A schema id beyond what the registry can hold (422).
    #[error("Field '{}_schema_id' must be a 32-bit schema id.", .0.as_str())]
    IdOutOfRange(Side),
    /// The schema's text does not parse (42205).
    #[error("Invalid schema: {0}")]
    Invalid(String),
    /// The registry refused, or the schema is not usable here (42207).
    #[error("Error serializing message. {0}")]
    Serialization(String),
    /// The registry does not accept the proxy's credentials (40301).
    #[error("{0}")]
    Forbidden(String),
    /// The registry is unreachable, timed out or failing (503, ours).
    #[error("Schema Registry unavailable: {0}. Nothing was produced; retry later.")]
    Unavailable(String),
}

impl SchemaError {
    /// A failed registry call while doing `context`.
    fn registry(context: String, error: RegistryError) -> SchemaError {
        match error {
            RegistryError::Unavailable(why) => SchemaError::Unavailable(why),
            RegistryError::Forbidden { .. } => SchemaError::Forbidden(format!(
                "{context}: the Schema Registry refused the proxy's credentials ({error})."
            )),
            RegistryError::Rejected { .. } => {
                SchemaError::Serialization(format!("{context}\n{error}"))
            }
        }
    }
}

/// A schema resolved under a subject, with its encoder.
pub struct Resolved {
    pub subject: String,
    pub id: i32,
    pub version: i32,
    encoder: SchemaEncoder,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("subject", &self.subject)
            .field("id", &self.id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

enum SchemaEncoder {
    Avro(AvroSchema),
    Json(JsonSchema),
    Protobuf(ProtobufSchema),
}

impl Resolved {
    /// The Schema Registry wire format of `value`: the magic byte, the schema id (4 bytes,
    /// big-endian), then the encoded data (protobuf's starts with its message indexes).
    ///
    /// # Errors
    /// [`DataError`] when `value` does not fit the schema.
    pub fn encode(&self, value: &RawValue) -> Result<Vec<u8>, DataError> {
        let mut out = Vec::with_capacity(5 + value.get().len());
        out.push(MAGIC_BYTE);
        out.extend_from_slice(&self.id.to_be_bytes());
        match &self.encoder {
            SchemaEncoder::Avro(schema) => schema.encode(value, &mut out)?,
            SchemaEncoder::Json(schema) => schema.encode(value, &mut out)?,
            SchemaEncoder::Protobuf(schema) => schema.encode(value, &mut out)?,
        }
        Ok(out)
    }
}

/// The registry's schema type of an embedded format.
fn schema_type(format: EmbeddedFormat) -> Option<SchemaType> {
    match format {
        EmbeddedFormat::Avro => Some(SchemaType::Avro),
        EmbeddedFormat::JsonSchema => Some(SchemaType::Json),
        EmbeddedFormat::Protobuf => Some(SchemaType::Protobuf),
        EmbeddedFormat::Json | EmbeddedFormat::Binary => None,
    }
}

fn parse_encoder(schema_type: SchemaType, text: &str) -> Result<SchemaEncoder, String> {
    Ok(match schema_type {
        SchemaType::Avro => SchemaEncoder::Avro(AvroSchema::parse(text)?),
        SchemaType::Json => SchemaEncoder::Json(JsonSchema::parse(text)?),
        SchemaType::Protobuf => SchemaEncoder::Protobuf(ProtobufSchema::parse(text)?),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    format: EmbeddedFormat,
    subject: String,
    selector: Selector,
}

/// The registry client and the cache of resolved schemas.
pub struct SchemaFormats {
    registry: SchemaRegistry,
    resolved: Cache<Key, Arc<Resolved>>,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl SchemaFormats {
    /// Keeps at most `max_cached` resolutions; `timeout` bounds the registry calls of one
    /// request.
    pub fn new(
        registry: SchemaRegistry,
        max_cached: u64,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> SchemaFormats {
        SchemaFormats {
            registry,
            resolved: Cache::new(max_cached),
            timeout,
            metrics,
        }
    }

    /// The bound on all registry calls of one request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Resolves `selector` under the TopicNameStrategy subject of `topic`'s `side`.
    ///
    /// # Errors
    /// [`SchemaError`]: invalid text, a registry refusal, the registry unavailable.
    pub async fn resolve(
        &self,
        format: EmbeddedFormat,
        topic: &str,
        side: Side,
        selector: Selector,
    ) -> Result<Arc<Resolved>, SchemaError> {
        let Some(schema_type) = schema_type(format) else {
            return Err(SchemaError::Serialization(format!(
                "the {} format does not use schemas",
                format.as_str()
            )));
        };
        let key = Key {
            format,
            subject: format!("{topic}-{}", side.as_str()),
            selector,
        };
        if let Some(hit) = self.resolved.get(&key).await {
            self.count("hit");
            return Ok(hit);
        }
        self.count("miss");
        let load = async {
            let resolved = match &key.selector {
                Selector::Id(id) => self.by_id(schema_type, &key.subject, *id).await?,
                Selector::Text(text) => self.by_text(schema_type, &key.subject, text).await?,
            };
            Ok::<_, SchemaError>(Arc::new(resolved))
        };
        self.resolved
            .try_get_with(key.clone(), load)
            .await
            .map_err(|shared| (*shared).clone())
    }

    fn count(&self, result: &str) {
        self.metrics
            .schema_cache_lookups
            .with_label_values(&[result])
            .inc();
    }

    async fn by_id(
        &self,
        schema_type: SchemaType,
        subject: &str,
        id: i32,
    ) -> Result<Resolved, SchemaError> {
        let text = self.registry.schema_by_id(id).await.map_err(|e| {
            SchemaError::registry(
                format!("Error when fetching schema by id. schemaId = {id}"),
                e,
            )
        })?;
        if text.schema_type != schema_type {
            return Err(SchemaError::Serialization(format!(
                "Schema {id} is a {} schema; this request's format needs {}.",
                text.schema_type.as_str(),
                schema_type.as_str()
            )));
        }
        let encoder = parse_encoder(schema_type, &text.schema).map_err(SchemaError::Invalid)?;
        let registered = self.registry.lookup(subject, &text).await.map_err(|e| {
            let context = if e.is_not_found() {
                format!("Schema {id} is not registered under subject '{subject}'.")
            } else {
                format!("Error when fetching schema version. subject = {subject}, schemaId = {id}")
            };
            SchemaError::registry(context, e)
        })?;
        Ok(Resolved {
            subject: subject.to_owned(),
            id,
            version: registered.version,
            encoder,
        })
    }

    async fn by_text(
        &self,
        schema_type: SchemaType,
        subject: &str,
        text: &str,
    ) -> Result<Resolved, SchemaError> {
        let encoder = parse_encoder(schema_type, text).map_err(SchemaError::Invalid)?;
        let schema = SchemaText {
            schema_type,
            schema: text.to_owned(),
        };
        let registering = || {
            format!(
                "Error when registering schema. format = {}, subject = {subject}",
                schema_type.as_str()
            )
        };
        let registered = match self.registry.lookup(subject, &schema).await {
            Ok(found) => found,
            Err(e) if e.is_not_found() => {
                self.registry
                    .register(subject, &schema)
                    .await
                    .map_err(|e| SchemaError::registry(registering(), e))?;
                // The version, as Confluent reads it after registering.
                self.registry
                    .lookup(subject, &schema)
                    .await
                    .map_err(|e| SchemaError::registry(registering(), e))?
            }
            Err(e) => return Err(SchemaError::registry(registering(), e)),
        };
        Ok(Resolved {
            subject: registered.subject,
            id: registered.id,
            version: registered.version,
            encoder,
        })
    }
}
