//! `[kafka]`, `[metadata]` and `[dev]`: the cluster, the producer, the topic metadata cache
//! and the embedded dev cluster.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use super::ConfigError;

/// How the producer talks to the brokers (librdkafka's `security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// The librdkafka spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// SASL mechanisms the service supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The librdkafka (and Kafka) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Producer compression codec (librdkafka's `compression.codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The librdkafka spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Where a keyed record goes when the request names no partition (librdkafka's
/// `partitioner`). Each hashes the key bytes modulo the partition count; a record without a
/// key goes to any partition. Only these: the others librdkafka knows either ignore keys
/// (`random`, which breaks per-key order) or send every keyless record to one partition
/// (`murmur2`, `consistent`, `fnv1a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    /// murmur2, as Java's default partitioner (and so Confluent's proxy) places keys.
    Murmur2Random,
    /// CRC32, librdkafka's default (and so that of proxies and clients built on it).
    ConsistentRandom,
    /// FNV-1a, as Sarama's (Go) default hash partitioner places keys.
    Fnv1aRandom,
}

impl Partitioner {
    /// The librdkafka spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Partitioner::Murmur2Random => "murmur2_random",
            Partitioner::ConsistentRandom => "consistent_random",
            Partitioner::Fnv1aRandom => "fnv1a_random",
        }
    }
}

/// The Kafka cluster and the producer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list; required unless `dev.enabled` (`--dev`).
    pub bootstrap_servers: Option<String>,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: SecurityProtocol,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; required with a SASL protocol.
    pub sasl_mechanism: Option<SaslMechanism>,
    /// SASL user name.
    #[serde(deserialize_with = "some_text")]
    pub sasl_username: Option<String>,
    /// SASL password (redacted everywhere). Read as text whatever it looks like (`007`,
    /// `1.50`, `true`), and never quoted in an error.
    #[serde(deserialize_with = "some_secret")]
    pub sasl_password: Option<SecretString>,
    /// PEM file of CA certificates for verifying the brokers; system CAs when unset.
    pub ssl_ca_location: Option<PathBuf>,
    /// Kafka `client.id` of the producer.
    pub client_id: String,
    /// Producer compression codec.
    pub compression: Compression,
    /// How long the producer waits to fill a batch.
    pub linger_ms: u64,
    /// How long librdkafka keeps trying to deliver a record before the request gets 50003.
    pub message_timeout_ms: u64,
    /// How long a request waits for room when the producer's local queue is full, before 50302.
    pub queue_full_wait_ms: u64,
    /// Where keyed records go: keep what the partner's previous proxy and other producers
    /// used, so each key stays in its partition.
    pub partitioner: Partitioner,
    /// Raw librdkafka properties applied last (values redacted in `Debug`); keys the service
    /// relies on (acks, idempotence) or sets from a typed setting (partitioner, timeouts)
    /// are rejected.
    pub librdkafka: RawProperties,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            bootstrap_servers: None,
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            client_id: "kafka-rest-proxy".to_owned(),
            compression: Compression::Lz4,
            linger_ms: 1,
            message_timeout_ms: 15_000,
            queue_full_wait_ms: 2_000,
            partitioner: Partitioner::Murmur2Random,
            librdkafka: RawProperties::default(),
        }
    }
}

/// librdkafka properties passed through verbatim; `Debug` shows keys only, since values may
/// be secrets (`ssl.key.password`, `sasl.oauthbearer.client.secret`). A number or boolean
/// value is taken as its text.
#[derive(Default)]
pub struct RawProperties(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for RawProperties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, Text>::deserialize(deserializer)?;
        Ok(RawProperties(
            map.into_iter().map(|(key, value)| (key, value.0)).collect(),
        ))
    }
}

/// Settings whose environment variables are read as raw text: figment would otherwise read
/// `KRP_KAFKA__SASL_PASSWORD=007` as the integer 7 (and `1.50` as 1.5).
pub const SECRET_KEYS: &[&str] = &[
    "kafka.sasl_password",
    "schema_registry.basic_auth_user_info",
    "idempotency.redis.auth_token",
];

/// A setting that is text whatever it looks like: a TOML or environment value that parses
/// as a number or a boolean is taken as its text. Its errors never quote the value.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor).map(Text)
    }
}

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Optional text: unset when cleared by an empty `KRP_` variable.
fn some_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Option::<Text>::deserialize(deserializer).map(|t| t.map(|t| t.0))
}

/// An optional secret: unset when cleared by an empty `KRP_` variable.
pub(super) fn some_secret<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    Option::<Text>::deserialize(deserializer).map(|t| t.map(|t| t.0.into()))
}

impl fmt::Debug for RawProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "[REDACTED]")))
            .finish()
    }
}

/// Properties the service sets for correctness; overriding them through the pass-through map
/// would silently break a guarantee, so startup rejects it.
pub const GUARDED_LIBRDKAFKA_KEYS: &[(&str, &str)] = &[
    ("acks", "records are acknowledged by all in-sync replicas"),
    (
        "request.required.acks",
        "records are acknowledged by all in-sync replicas",
    ),
    (
        "enable.idempotence",
        "retries never duplicate or reorder records",
    ),
    ("partitioner", "use kafka.partitioner"),
    ("message.timeout.ms", "use kafka.message_timeout_ms"),
    ("delivery.timeout.ms", "use kafka.message_timeout_ms"),
];

/// Prefixes of librdkafka properties the pass-through map refuses: `test.mock.*` turns the
/// producer into a mock cluster client that acknowledges and loses everything.
pub const GUARDED_LIBRDKAFKA_PREFIXES: &[(&str, &str)] = &[(
    "test.mock.",
    "the embedded mock cluster is for development only: use --dev",
)];

/// Topic metadata cache and readiness probing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataSettings {
    /// Interval of the background metadata refresh that also decides readiness.
    pub refresh_interval_ms: u64,
    /// Timeout of one metadata request.
    pub request_timeout_ms: u64,
    /// How long an unknown topic is remembered before the cluster is asked again.
    pub unknown_topic_ttl_ms: u64,
}

impl Default for MetadataSettings {
    fn default() -> Self {
        MetadataSettings {
            refresh_interval_ms: 10_000,
            request_timeout_ms: 3_000,
            unknown_topic_ttl_ms: 1_000,
        }
    }
}

/// The embedded development cluster (librdkafka's in-process mock cluster).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevSettings {
    /// Produce to an embedded in-memory cluster instead of Kafka (`--dev`). Nothing written
    /// there survives the process; never set together with `kafka.bootstrap_servers`.
    pub enabled: bool,
    /// Brokers of the mock cluster.
    pub brokers: i32,
    /// Partitions of a topic created on first use.
    pub topic_partitions: i32,
}

impl Default for DevSettings {
    fn default() -> Self {
        DevSettings {
            enabled: false,
            brokers: 3,
            topic_partitions: 3,
        }
    }
}

impl KafkaSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.security_protocol.uses_sasl() {
            if self.sasl_mechanism.is_none() {
                return Err(ConfigError::invalid(
                    "kafka.sasl_mechanism",
                    "required with a SASL security_protocol",
                ));
            }
            if self.sasl_username.as_deref().is_none_or(str::is_empty) {
                return Err(ConfigError::invalid(
                    "kafka.sasl_username",
                    "required with a SASL security_protocol",
                ));
            }
            if self
                .sasl_password
                .as_ref()
                .is_none_or(|p| p.expose_secret().is_empty())
            {
                return Err(ConfigError::invalid(
                    "kafka.sasl_password",
                    "required with a SASL security_protocol",
                ));
            }
        } else if self.sasl_mechanism.is_some() {
            return Err(ConfigError::invalid(
                "kafka.sasl_mechanism",
                format!(
                    "set, but kafka.security_protocol is {:?}, which does not use SASL",
                    self.security_protocol
                ),
            ));
        }
        if let Some(servers) = &self.bootstrap_servers {
            if servers.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "kafka.bootstrap_servers",
                    "empty: name the brokers (`host:port,...`)",
                ));
            }
        }
        for (key, why) in GUARDED_LIBRDKAFKA_KEYS {
            if self.librdkafka.0.contains_key(*key) {
                return Err(ConfigError::invalid(
                    &format!("kafka.librdkafka.\"{key}\""),
                    format!("may not be overridden: {why}"),
                ));
            }
        }
        for (prefix, why) in GUARDED_LIBRDKAFKA_PREFIXES {
            if let Some(key) = self.librdkafka.0.keys().find(|k| k.starts_with(prefix)) {
                return Err(ConfigError::invalid(
                    &format!("kafka.librdkafka.\"{key}\""),
                    format!("may not be set: {why}"),
                ));
            }
        }
        if self.message_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "kafka.message_timeout_ms",
                "must be positive",
            ));
        }
        Ok(())
    }
}

impl MetadataSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.refresh_interval_ms == 0 || self.request_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "metadata",
                "refresh_interval_ms and request_timeout_ms must be positive",
            ));
        }
        Ok(())
    }
}

impl DevSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers < 1 || self.topic_partitions < 1 {
            return Err(ConfigError::invalid(
                "dev",
                "brokers and topic_partitions must be at least 1",
            ));
        }
        Ok(())
    }
}
