//! Resolving the schema of one side (keys or values) of a request in the Schema Registry,
//! as Confluent's REST proxy does (`SchemaManagerImpl`), and the cache of what was resolved.
//!
//! - by id: the schema is fetched by its global id, then it must be registered under the
//!   subject (a look-up gives its version there); else 42207;
//! - by text: the text is parsed (else 42205), looked up under the subject, and registered
//!   there when absent;
//! - by version, or the latest version (API v3): the subject's version is fetched; its type
//!   is the registry's.
//!
//! The subject is the request's own (v3's `subject`), or follows a strategy: Confluent's
//! default TopicNameStrategy (`<topic>-key`, `<topic>-value`, the only one of API v2),
//! RecordNameStrategy (the schema's name) or TopicRecordNameStrategy (`<topic>-<name>`);
//! the two that name the schema need it first, so not with a version or the latest.
//! A resolution is cached with its parsed encoder, keyed by (format, subject or strategy,
//! selector): the registry sees one resolution per distinct schema, not one per request,
//! and a registry outage does not touch what is cached. A subject's latest version is
//! cached for `schema_registry.latest_ttl_ms` only, so that a new version is picked up.
//! Concurrent requests for a key not yet cached share one resolution. Failures are not
//! cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;
use serde_json::value::RawValue;
use tracing::Instrument;

use super::avro::AvroSchema;
use super::json_schema::JsonSchema;
use super::protobuf::ProtobufSchema;
use super::{DataError, EmbeddedFormat};
use crate::metrics::Metrics;
use crate::schema_registry::{
    RegistryError, SchemaRegistry, SchemaText, SchemaType, SubjectSchema, Version,
};
use crate::telemetry::traces;

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
    /// A version of the subject (API v3's `schema_version`).
    Version(i32),
    /// The subject's latest version (API v3, when a record names no schema).
    Latest,
}

/// How the subject of a side's schema is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubjectChoice {
    /// The request names it (API v3's `subject`).
    Named(String),
    /// A strategy derives it (API v3's `subject_name_strategy`; API v2 always uses
    /// TopicName).
    Strategy(SubjectNameStrategy),
}

/// Confluent's subject name strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` or `<topic>-value`.
    TopicName,
    /// The schema's name (an Avro record's full name, the first Protobuf message's, a JSON
    /// Schema's `title`).
    RecordName,
    /// `<topic>-<schema name>`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// The name API v3 gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectNameStrategy::TopicName => "TOPIC_NAME",
            SubjectNameStrategy::RecordName => "RECORD_NAME",
            SubjectNameStrategy::TopicRecordName => "TOPIC_RECORD_NAME",
        }
    }
}

/// What one side of an API v3 record asks of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaRequest {
    /// The format the record names (with a schema's text); `None` when the registry's
    /// type of the schema decides.
    pub format: Option<EmbeddedFormat>,
    pub subject: SubjectChoice,
    pub selector: Selector,
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
    /// A strategy that names the schema, with nothing to name (a version, the latest), in
    /// Confluent's words (400).
    #[error(
        "Cannot use schema_subject_strategy={} without schema_id or schema.",
        .0.as_str()
    )]
    StrategyNeedsSchema(SubjectNameStrategy),
    /// A strategy that names the schema, and a schema without a name (400).
    #[error(
        "Cannot use schema_subject_strategy={}: the schema has no name (a JSON Schema needs \
         a \"title\").",
        .0.as_str()
    )]
    Nameless(SubjectNameStrategy),
    /// No such version of the subject, in Confluent's words (400).
    #[error("Schema does not exist for subject: {subject}, version: {version}")]
    NoSuchVersion { subject: String, version: i32 },
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
    /// The format of the schema (AVRO, JSONSCHEMA or PROTOBUF), whatever the request named.
    pub format: EmbeddedFormat,
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

impl SchemaEncoder {
    /// The schema's name for the strategies that use it.
    fn name(&self) -> Option<&str> {
        match self {
            SchemaEncoder::Avro(schema) => Some(schema.name()),
            SchemaEncoder::Json(schema) => schema.title(),
            SchemaEncoder::Protobuf(schema) => Some(schema.name()),
        }
    }
}

/// The embedded format of a registry schema type.
fn format_of(schema_type: SchemaType) -> EmbeddedFormat {
    match schema_type {
        SchemaType::Avro => EmbeddedFormat::Avro,
        SchemaType::Json => EmbeddedFormat::JsonSchema,
        SchemaType::Protobuf => EmbeddedFormat::Protobuf,
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

/// The subject of a cache key: known before the schema is (a name, TopicName), or to be
/// derived from the schema by a strategy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SubjectKey {
    Subject(String),
    Derived {
        strategy: SubjectNameStrategy,
        topic: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The format the request named; `None` when the registry's type decides.
    format: Option<EmbeddedFormat>,
    side: Side,
    subject: SubjectKey,
    selector: Selector,
}

impl Key {
    /// The subject, once the schema (when the strategy needs it) is known.
    fn subject(&self, schema: Option<&SchemaEncoder>) -> Result<String, SchemaError> {
        let (strategy, topic) = match &self.subject {
            SubjectKey::Subject(subject) => return Ok(subject.clone()),
            SubjectKey::Derived { strategy, topic } => (*strategy, topic),
        };
        let schema = schema.ok_or(SchemaError::StrategyNeedsSchema(strategy))?;
        let name = schema.name().ok_or(SchemaError::Nameless(strategy))?;
        Ok(match strategy {
            SubjectNameStrategy::TopicRecordName => format!("{topic}-{name}"),
            _ => name.to_owned(),
        })
    }
}

/// Latest versions expire after their TTL; everything else stays until evicted.
struct LatestExpires(Duration);

impl Expiry<Key, Arc<Resolved>> for LatestExpires {
    fn expire_after_create(
        &self,
        key: &Key,
        _value: &Arc<Resolved>,
        _created_at: Instant,
    ) -> Option<Duration> {
        (key.selector == Selector::Latest).then_some(self.0)
    }
}

/// The registry client and the cache of resolved schemas.
pub struct SchemaFormats {
    registry: SchemaRegistry,
    resolved: Cache<Key, Arc<Resolved>>,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl SchemaFormats {
    /// Keeps at most `max_cached` resolutions, a subject's latest version for `latest_ttl`;
    /// `timeout` bounds the registry calls of one request.
    pub fn new(
        registry: SchemaRegistry,
        max_cached: u64,
        latest_ttl: Duration,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> SchemaFormats {
        SchemaFormats {
            registry,
            resolved: Cache::builder()
                .max_capacity(max_cached)
                .expire_after(LatestExpires(latest_ttl))
                .build(),
            timeout,
            metrics,
        }
    }

    /// The bound on all registry calls of one request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Resolves `selector` under the TopicNameStrategy subject of `topic`'s `side` (API v2).
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
        if schema_type(format).is_none() {
            return Err(SchemaError::Serialization(format!(
                "the {} format does not use schemas",
                format.as_str()
            )));
        }
        let request = SchemaRequest {
            format: Some(format),
            subject: SubjectChoice::Strategy(SubjectNameStrategy::TopicName),
            selector,
        };
        self.resolve_request(topic, side, request).await
    }

    /// Resolves what one side of an API v3 record asks for (`SchemaManagerImpl`'s rules).
    ///
    /// # Errors
    /// [`SchemaError`]: invalid text, a strategy without a schema to name, a version or
    /// subject the registry does not have, a registry refusal, the registry unavailable.
    pub async fn resolve_request(
        &self,
        topic: &str,
        side: Side,
        request: SchemaRequest,
    ) -> Result<Arc<Resolved>, SchemaError> {
        // A trace's child span (nothing with tracing off): a registry round trip, or not.
        let span = traces::child_span!(
            "resolve schema",
            kafka_rest.schema.side = side.as_str(),
            kafka_rest.schema.cache = tracing::field::Empty,
            kafka_rest.schema.subject = tracing::field::Empty,
            kafka_rest.schema.id = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty
        );
        let result = self
            .resolve_traced(topic, side, request, &span)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(resolved) => {
                span.record("kafka_rest.schema.subject", resolved.subject.as_str());
                span.record("kafka_rest.schema.id", resolved.id);
            }
            Err(e) => {
                span.record("otel.status_code", "error");
                span.record("otel.status_description", e.to_string());
            }
        }
        result
    }

    async fn resolve_traced(
        &self,
        topic: &str,
        side: Side,
        request: SchemaRequest,
        span: &tracing::Span,
    ) -> Result<Arc<Resolved>, SchemaError> {
        let subject = match request.subject {
            SubjectChoice::Named(subject) => SubjectKey::Subject(subject),
            SubjectChoice::Strategy(SubjectNameStrategy::TopicName) => {
                SubjectKey::Subject(format!("{topic}-{}", side.as_str()))
            }
            SubjectChoice::Strategy(strategy) => SubjectKey::Derived {
                strategy,
                topic: topic.to_owned(),
            },
        };
        let key = Key {
            format: request.format,
            side,
            subject,
            selector: request.selector,
        };
        if let Some(hit) = self.resolved.get(&key).await {
            self.count("hit");
            span.record("kafka_rest.schema.cache", "hit");
            return Ok(hit);
        }
        self.count("miss");
        span.record("kafka_rest.schema.cache", "miss");
        let load = async {
            let expected = key.format.and_then(schema_type);
            let resolved = match &key.selector {
                Selector::Id(id) => self.by_id(expected, &key, *id).await?,
                Selector::Text(text) => {
                    let schema_type = expected.ok_or_else(|| {
                        SchemaError::Serialization("a schema's text needs its format".into())
                    })?;
                    self.by_text(schema_type, &key, text).await?
                }
                Selector::Version(version) => {
                    self.by_version(&key, Version::Number(*version)).await?
                }
                Selector::Latest => self.by_version(&key, Version::Latest).await?,
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

    /// A schema by its global id; with `expected`, it must be of that type (API v2's format).
    async fn by_id(
        &self,
        expected: Option<SchemaType>,
        key: &Key,
        id: i32,
    ) -> Result<Resolved, SchemaError> {
        let text = self.registry.schema_by_id(id).await.map_err(|e| {
            SchemaError::registry(
                format!("Error when fetching schema by id. schemaId = {id}"),
                e,
            )
        })?;
        if let Some(schema_type) = expected.filter(|t| *t != text.schema_type) {
            return Err(SchemaError::Serialization(format!(
                "Schema {id} is a {} schema; this request's format needs {}.",
                text.schema_type.as_str(),
                schema_type.as_str()
            )));
        }
        let encoder =
            parse_encoder(text.schema_type, &text.schema).map_err(SchemaError::Invalid)?;
        let subject = key.subject(Some(&encoder))?;
        let registered = self.registry.lookup(&subject, &text).await.map_err(|e| {
            let context = if e.is_not_found() {
                format!("Schema {id} is not registered under subject '{subject}'.")
            } else {
                format!("Error when fetching schema version. subject = {subject}, schemaId = {id}")
            };
            SchemaError::registry(context, e)
        })?;
        Ok(Resolved {
            format: format_of(text.schema_type),
            subject,
            id,
            version: registered.version,
            encoder,
        })
    }

    /// A version of the subject, or its latest; the schema's type is the registry's.
    async fn by_version(&self, key: &Key, version: Version) -> Result<Resolved, SchemaError> {
        let subject = key.subject(None)?;
        let found: SubjectSchema = self
            .registry
            .version(&subject, version)
            .await
            .map_err(|e| match (version, &e) {
                (Version::Number(version), RegistryError::Rejected { .. }) => {
                    SchemaError::NoSuchVersion {
                        subject: subject.clone(),
                        version,
                    }
                }
                (Version::Number(version), _) => SchemaError::registry(
                    format!(
                        "Error when fetching schema by version. subject = {subject}, version = \
                         {version}"
                    ),
                    e,
                ),
                (Version::Latest, _) => SchemaError::registry(
                    format!("Error when fetching latest schema version. subject = {subject}"),
                    e,
                ),
            })?;
        let encoder = parse_encoder(found.text.schema_type, &found.text.schema)
            .map_err(SchemaError::Invalid)?;
        Ok(Resolved {
            format: format_of(found.text.schema_type),
            subject: found.subject,
            id: found.id,
            version: found.version,
            encoder,
        })
    }

    async fn by_text(
        &self,
        schema_type: SchemaType,
        key: &Key,
        text: &str,
    ) -> Result<Resolved, SchemaError> {
        let encoder = parse_encoder(schema_type, text).map_err(SchemaError::Invalid)?;
        let subject = key.subject(Some(&encoder))?;
        let subject = subject.as_str();
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
            format: format_of(schema_type),
            subject: registered.subject,
            id: registered.id,
            version: registered.version,
            encoder,
        })
    }
}
