//! One typed settings tree, layered from defaults, a TOML file and the environment.
//!
//! Precedence, lowest first (a later layer overrides an earlier one key by key):
//!
//! 1. built-in defaults (the `Default` impls below, mirrored in `config/default.toml`);
//! 2. the TOML file given with `--config`;
//! 3. the Confluent REST Proxy image's variables, so a migrated task definition keeps working:
//!    `KAFKA_REST_BOOTSTRAP_SERVERS`, `KAFKA_REST_CLIENT_SECURITY_PROTOCOL`,
//!    `KAFKA_REST_CLIENT_SASL_MECHANISM`, `KAFKA_REST_CLIENT_SASL_JAAS_CONFIG`;
//! 4. `KAFKA_CREDS`, one JSON object as ECS injects a whole Secrets Manager secret
//!    (`SASL_USERNAME`, `SASL_PASSWORD`, `BOOTSTRAP_SERVERS`; other keys are ignored);
//! 5. `KRP_<SECTION>__<KEY>` variables, e.g. `KRP_KAFKA__LINGER_MS=10`;
//! 6. the `--listen` command-line flag.
//!
//! Unknown keys and bad values fail startup with a message naming the key. Secrets are
//! [`SecretString`]s: they never reach a log line, an error or a `Debug` print.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::TopicPattern;

/// Why the settings could not be loaded; the message names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("invalid configuration: {key}: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    /// A bad value of `key`, and why.
    pub fn invalid(key: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The whole configuration of the service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The HTTP server.
    pub server: ServerSettings,
    /// The Kafka cluster and the producer.
    pub kafka: KafkaSettings,
    /// Topic metadata cache and readiness probing.
    pub metadata: MetadataSettings,
    /// Application logs.
    pub log: LogSettings,
    /// The embedded development cluster used when no bootstrap servers are configured.
    pub dev: DevSettings,
    /// Prometheus metrics.
    pub metrics: MetricsSettings,
    /// Partner authentication and the authorization policy.
    pub auth: AuthSettings,
    /// Request limits, rate limits and overload shedding.
    pub limits: LimitSettings,
    /// Per-topic JSON Schema validation of json-format records.
    pub validation: ValidationSettings,
}

/// Request limits, rate limits and overload shedding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Most records in one produce request (422 above).
    pub max_records_per_request: usize,
    /// Largest key + value of one record after conversion (422 above). Keep it at or below
    /// the topic's `max.message.bytes` (Kafka's default is about 1 MiB).
    pub max_record_bytes: usize,
    /// Requests served at once; more get 503 with `Retry-After`.
    pub max_in_flight_requests: usize,
    /// Request-body bytes held at once; more get 503 with `Retry-After`.
    pub max_in_flight_bytes: usize,
    /// Open connections per HTTP worker thread.
    pub max_connections_per_worker: usize,
    /// Time a client has to send the request headers (408 and close after).
    pub header_read_timeout_ms: u64,
    /// Time a client has to send the whole body (408 and close after).
    pub body_read_timeout_ms: u64,
    /// Per-principal and global rate limits.
    pub rate: RateLimitSettings,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_records_per_request: 1_000,
            max_record_bytes: 1_000_000,
            max_in_flight_requests: 4_096,
            max_in_flight_bytes: 256 * 1024 * 1024,
            max_connections_per_worker: 2_048,
            header_read_timeout_ms: 5_000,
            body_read_timeout_ms: 30_000,
            rate: RateLimitSettings::default(),
        }
    }
}

/// A rate: records and bytes per second, each with a burst. `0` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rate {
    pub records_per_second: u32,
    /// Records allowed at once; defaults to one second's worth.
    pub records_burst: Option<u32>,
    pub bytes_per_second: u32,
    /// Bytes allowed at once; defaults to one second's worth.
    pub bytes_burst: Option<u32>,
}

/// Rate limits, per instance: behind N tasks, a partner's effective limit is N times these.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Every principal's limit (by client address when authentication is off).
    pub default: Rate,
    /// The whole instance.
    pub global: Rate,
    /// Limits for named principals, replacing the default.
    pub principals: BTreeMap<String, Rate>,
    /// Limits for principals holding a scope (a policy group), replacing the default; a
    /// principal's own entry wins.
    pub scopes: BTreeMap<String, Rate>,
}

/// Per-topic JSON Schema validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationSettings {
    /// Topic patterns (exact, or prefix ending in `*`) to schema files; the first match wins.
    pub schemas: Vec<TopicSchema>,
    /// Violations listed in one 422 answer at most; the rest are counted.
    pub max_violations: usize,
}

impl Default for ValidationSettings {
    fn default() -> Self {
        ValidationSettings {
            schemas: Vec::new(),
            max_violations: 100,
        }
    }
}

/// The schemas of the topics matching `topics`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSchema {
    /// Exact topic names, or prefixes ending in `*`.
    pub topics: Vec<TopicPattern>,
    /// JSON Schema (draft 7 or 2020-12, from `$schema`) for record values.
    pub value_schema: Option<PathBuf>,
    /// JSON Schema for record keys.
    pub key_schema: Option<PathBuf>,
}

/// Partner authentication (network allowlist, API keys, JWT) and authorization.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Authenticate and authorize every request except the health probes and
    /// `anonymous_paths`. Off, everything is open (dev mode default).
    pub enabled: bool,
    /// The policy file: API keys (as hashes), grants of topics to principals and scopes,
    /// per-principal address allowlists. Required when enabled.
    pub policy_file: Option<PathBuf>,
    /// Header carrying an API key.
    pub api_key_header: String,
    /// CIDRs allowed to call at all (IPv4 and IPv6); empty allows any address.
    pub allow_cidrs: Vec<ipnet::IpNet>,
    /// CIDRs of proxies whose `X-Forwarded-For` is believed (API Gateway's VPC link, the
    /// NLB); from anyone else the header is ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Paths open without credentials besides `/healthz` and `/readyz` (e.g. `/metrics`).
    pub anonymous_paths: Vec<String>,
    /// A verified client certificate (mutual TLS) authenticates its subject's common name
    /// as the principal, when the request carries no token or API key.
    pub client_certificates: bool,
    /// JWT bearer tokens; off unless `issuer` is set.
    pub jwt: JwtSettings,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            enabled: false,
            policy_file: None,
            api_key_header: "X-API-Key".to_owned(),
            allow_cidrs: Vec::new(),
            trusted_proxies: Vec::new(),
            anonymous_paths: Vec::new(),
            client_certificates: false,
            jwt: JwtSettings::default(),
        }
    }
}

/// JWT bearer-token validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtSettings {
    /// Expected `iss`; setting it turns JWT authentication on.
    pub issuer: Option<String>,
    /// Accepted `aud` values; a token must name at least one. Empty skips the check.
    pub audiences: Vec<String>,
    /// Where the signing keys are; unset means OIDC discovery from the issuer
    /// (`<issuer>/.well-known/openid-configuration`).
    pub jwks_url: Option<String>,
    /// Accepted signature algorithms; the token's `alg` must be one of them. `none` never is.
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Claim holding the principal id.
    pub principal_claim: String,
    /// Claims holding scopes (a space-separated string or an array), merged.
    pub scope_claims: Vec<String>,
    /// Claims a token must carry.
    pub required_claims: Vec<String>,
    /// Background refresh period of the signing keys.
    pub refresh_interval_ms: u64,
    /// Shortest interval between refreshes triggered by an unknown `kid`.
    pub unknown_kid_refresh_interval_ms: u64,
    /// Timeout of one JWKS or discovery request.
    pub fetch_timeout_ms: u64,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            issuer: None,
            audiences: Vec::new(),
            jwks_url: None,
            algorithms: vec!["RS256".to_owned(), "ES256".to_owned()],
            leeway_secs: 30,
            principal_claim: "sub".to_owned(),
            scope_claims: vec!["scope".to_owned(), "scp".to_owned()],
            required_claims: vec!["exp".to_owned()],
            refresh_interval_ms: 300_000,
            unknown_kid_refresh_interval_ms: 10_000,
            fetch_timeout_ms: 5_000,
        }
    }
}

/// Prometheus metrics.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve `/metrics` on this address instead of the API port (keeps it off the
    /// partner-facing listener).
    pub listen: Option<SocketAddr>,
    /// Topics that get their own `topic` label; all others are counted as `_other`, so the
    /// label stays bounded.
    pub topics: Vec<String>,
    /// How often librdkafka reports statistics (queue depth, broker round trips); 0 turns
    /// the broker metrics off.
    pub statistics_interval_ms: u64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            listen: None,
            topics: Vec::new(),
            statistics_interval_ms: 5_000,
        }
    }
}

/// The HTTP server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on; Confluent's REST Proxy port by default.
    pub listen: SocketAddr,
    /// HTTP worker threads; defaults to the number of cores.
    pub workers: Option<usize>,
    /// Largest accepted request body, checked from `Content-Length` before reading.
    pub max_body_bytes: usize,
    /// The answer time promised to clients (API Gateway gives up after 29 s). Not a timer:
    /// startup checks that the producer's delivery timeout plus its queue wait fit inside it,
    /// which bounds every produce request.
    pub request_timeout_ms: u64,
    /// Budget from SIGTERM to exit: drain in-flight requests, then flush the producer.
    /// Keep it below ECS's `stopTimeout` (30 s by default).
    pub shutdown_timeout_ms: u64,
    /// An HTTPS listener, beside the plaintext one.
    pub tls: TlsSettings,
}

/// The HTTPS listener (OpenSSL): TLS 1.2 and 1.3 only, optional client certificates.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// Address of the HTTPS listener; setting it turns HTTPS on.
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the certificate.
    pub key_file: Option<PathBuf>,
    /// PEM CA bundle for client certificates; setting it requires every HTTPS client to
    /// present a certificate it signed (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([0, 0, 0, 0], 8082)),
            workers: None,
            max_body_bytes: 8 * 1024 * 1024,
            request_timeout_ms: 25_000,
            shutdown_timeout_ms: 25_000,
            tls: TlsSettings::default(),
        }
    }
}

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

    fn uses_sasl(self) -> bool {
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

/// The Kafka cluster and the producer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list. Unset means the embedded dev cluster.
    pub bootstrap_servers: Option<String>,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: SecurityProtocol,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; required with a SASL protocol.
    pub sasl_mechanism: Option<SaslMechanism>,
    /// SASL user name.
    pub sasl_username: Option<String>,
    /// SASL password (redacted everywhere).
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
    /// Raw librdkafka properties applied last (values redacted in `Debug`); keys the service
    /// relies on (acks, idempotence, partitioner) are rejected.
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
            librdkafka: RawProperties::default(),
        }
    }
}

/// librdkafka properties passed through verbatim; `Debug` shows keys only, since values may
/// be secrets (`ssl.key.password`, `sasl.oauthbearer.client.secret`).
#[derive(Default, Deserialize)]
#[serde(transparent)]
pub struct RawProperties(pub BTreeMap<String, String>);

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
    (
        "partitioner",
        "keys land where Java's murmur2 partitioner puts them",
    ),
    ("message.timeout.ms", "use kafka.message_timeout_ms"),
    ("delivery.timeout.ms", "use kafka.message_timeout_ms"),
];

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
            request_timeout_ms: 5_000,
            unknown_topic_ttl_ms: 1_000,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON with a dev cluster off, text in dev mode.
    Auto,
    Json,
    Text,
}

/// Application logs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A `tracing` filter, e.g. `info` or `kafka_rest_proxy=debug,info`.
    pub level: String,
    /// `auto`, `json` or `text`.
    pub format: LogFormat,
    /// One line per request on stdout.
    pub access_log: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".to_owned(),
            format: LogFormat::Auto,
            access_log: true,
        }
    }
}

/// The embedded development cluster (librdkafka's in-process mock cluster).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevSettings {
    /// Brokers of the mock cluster.
    pub brokers: i32,
    /// Partitions of a topic created on first use.
    pub topic_partitions: i32,
}

impl Default for DevSettings {
    fn default() -> Self {
        DevSettings {
            brokers: 3,
            topic_partitions: 3,
        }
    }
}

impl Settings {
    /// Loads the layered settings from an optional file and the process environment.
    ///
    /// # Errors
    /// A message naming the key for unknown keys, bad values and conflicting settings.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, |name| std::env::var(name).ok())
    }

    /// [`Settings::load`] with an injectable environment, for tests.
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::invalid(
                    "--config",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = merge_confluent_env(figment, &env)?;
        figment = merge_kafka_creds(figment, &env)?;
        // KRP_CONFIG names the file (a CLI flag's variable), not a setting.
        figment = figment.merge(Env::prefixed("KRP_").split("__").ignore(&["config"]));
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Cross-field checks that serde cannot express.
    fn validate(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        if k.security_protocol.uses_sasl() {
            if k.sasl_mechanism.is_none() {
                return Err(ConfigError::invalid(
                    "kafka.sasl_mechanism",
                    "required with a SASL security_protocol",
                ));
            }
            if k.sasl_username.as_deref().is_none_or(str::is_empty) {
                return Err(ConfigError::invalid(
                    "kafka.sasl_username",
                    "required with a SASL security_protocol",
                ));
            }
            if k.sasl_password
                .as_ref()
                .is_none_or(|p| p.expose_secret().is_empty())
            {
                return Err(ConfigError::invalid(
                    "kafka.sasl_password",
                    "required with a SASL security_protocol",
                ));
            }
        } else if k.sasl_mechanism.is_some() {
            return Err(ConfigError::invalid(
                "kafka.sasl_mechanism",
                format!(
                    "set, but kafka.security_protocol is {:?}, which does not use SASL",
                    k.security_protocol
                ),
            ));
        }
        if let Some(servers) = &k.bootstrap_servers {
            if servers.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "kafka.bootstrap_servers",
                    "empty; leave it unset for the embedded dev cluster",
                ));
            }
        }
        for (key, why) in GUARDED_LIBRDKAFKA_KEYS {
            if k.librdkafka.0.contains_key(*key) {
                return Err(ConfigError::invalid(
                    &format!("kafka.librdkafka.\"{key}\""),
                    format!("may not be overridden: {why}"),
                ));
            }
        }
        if k.message_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "kafka.message_timeout_ms",
                "must be positive",
            ));
        }
        if k.message_timeout_ms + k.queue_full_wait_ms >= self.server.request_timeout_ms {
            return Err(ConfigError::invalid(
                "kafka.message_timeout_ms",
                format!(
                    "message_timeout_ms + queue_full_wait_ms ({} ms) must stay below \
                     server.request_timeout_ms ({} ms) so a request always gets an answer",
                    k.message_timeout_ms + k.queue_full_wait_ms,
                    self.server.request_timeout_ms
                ),
            ));
        }
        if self.server.max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "server.max_body_bytes",
                "must be positive",
            ));
        }
        if self.server.workers == Some(0) {
            return Err(ConfigError::invalid("server.workers", "must be positive"));
        }
        if self.dev.brokers < 1 || self.dev.topic_partitions < 1 {
            return Err(ConfigError::invalid(
                "dev",
                "brokers and topic_partitions must be at least 1",
            ));
        }
        if self.auth.enabled && self.auth.policy_file.is_none() {
            return Err(ConfigError::invalid(
                "auth.policy_file",
                "required when auth.enabled is true (without grants, everything is denied)",
            ));
        }
        for alg in &self.auth.jwt.algorithms {
            if alg.eq_ignore_ascii_case("none") {
                return Err(ConfigError::invalid(
                    "auth.jwt.algorithms",
                    "\"none\" would accept unsigned tokens",
                ));
            }
            if alg.parse::<jsonwebtoken::Algorithm>().is_err() {
                return Err(ConfigError::invalid(
                    "auth.jwt.algorithms",
                    format!("unknown algorithm {alg:?}"),
                ));
            }
        }
        self.validate_limits()?;
        let tls = &self.server.tls;
        if tls.listen.is_some() && (tls.cert_file.is_none() || tls.key_file.is_none()) {
            return Err(ConfigError::invalid(
                "server.tls.cert_file",
                "server.tls.listen needs cert_file and key_file",
            ));
        }
        if self.auth.client_certificates && tls.client_ca_file.is_none() {
            return Err(ConfigError::invalid(
                "auth.client_certificates",
                "needs server.tls.client_ca_file: only verified certificates can name a principal",
            ));
        }
        if self.metadata.refresh_interval_ms == 0 || self.metadata.request_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "metadata",
                "refresh_interval_ms and request_timeout_ms must be positive",
            ));
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        for (key, value) in [
            ("limits.max_records_per_request", l.max_records_per_request),
            ("limits.max_record_bytes", l.max_record_bytes),
            ("limits.max_in_flight_requests", l.max_in_flight_requests),
            ("limits.max_in_flight_bytes", l.max_in_flight_bytes),
            (
                "limits.max_connections_per_worker",
                l.max_connections_per_worker,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be positive"));
            }
        }
        if l.max_in_flight_bytes < self.server.max_body_bytes {
            return Err(ConfigError::invalid(
                "limits.max_in_flight_bytes",
                "must be at least server.max_body_bytes, or a largest request could never run",
            ));
        }
        let rates = [
            ("limits.rate.default".to_owned(), &l.rate.default),
            ("limits.rate.global".to_owned(), &l.rate.global),
        ]
        .into_iter()
        .chain(
            l.rate
                .principals
                .iter()
                .map(|(k, r)| (format!("limits.rate.principals.{k}"), r)),
        )
        .chain(
            l.rate
                .scopes
                .iter()
                .map(|(k, r)| (format!("limits.rate.scopes.\"{k}\""), r)),
        );
        for (key, rate) in rates {
            let records_burst = rate.records_burst.unwrap_or(rate.records_per_second);
            if rate.records_per_second > 0 && (records_burst as usize) < l.max_records_per_request {
                return Err(ConfigError::invalid(
                    &format!("{key}.records_burst"),
                    format!(
                        "{records_burst} is below limits.max_records_per_request ({}): a full \
                         request could never pass",
                        l.max_records_per_request
                    ),
                ));
            }
            let bytes_burst = rate.bytes_burst.unwrap_or(rate.bytes_per_second);
            if rate.bytes_per_second > 0 && (bytes_burst as usize) < self.server.max_body_bytes {
                return Err(ConfigError::invalid(
                    &format!("{key}.bytes_burst"),
                    format!(
                        "{bytes_burst} is below server.max_body_bytes ({}): a full request \
                         could never pass",
                        self.server.max_body_bytes
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether logs are JSON lines (else human-readable text).
    pub fn json_logs(&self) -> bool {
        match self.log.format {
            LogFormat::Json => true,
            LogFormat::Text => false,
            LogFormat::Auto => !self.dev_mode(),
        }
    }

    /// True when no cluster is configured and the embedded mock cluster is used.
    pub fn dev_mode(&self) -> bool {
        self.kafka.bootstrap_servers.is_none()
    }
}

/// Layer 3: the Confluent REST Proxy image's environment variables.
fn merge_confluent_env(
    mut figment: Figment,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Figment, ConfigError> {
    if let Some(v) = env("KAFKA_REST_BOOTSTRAP_SERVERS") {
        figment = figment.merge(("kafka.bootstrap_servers", strip_listener_prefixes(&v)));
    }
    if let Some(v) = env("KAFKA_REST_CLIENT_SECURITY_PROTOCOL") {
        figment = figment.merge(("kafka.security_protocol", v.to_ascii_uppercase()));
    }
    if let Some(v) = env("KAFKA_REST_CLIENT_SASL_MECHANISM") {
        figment = figment.merge(("kafka.sasl_mechanism", v.to_ascii_uppercase()));
    }
    if let Some(v) = env("KAFKA_REST_CLIENT_SASL_JAAS_CONFIG") {
        let creds = parse_jaas(&v).ok_or_else(|| {
            ConfigError::invalid(
                "KAFKA_REST_CLIENT_SASL_JAAS_CONFIG",
                "expected a PlainLoginModule or ScramLoginModule line with \
                 username=\"...\" and password=\"...\"",
            )
        })?;
        figment = figment
            .merge(("kafka.sasl_username", creds.username))
            .merge(("kafka.sasl_password", creds.password));
    }
    Ok(figment)
}

/// Confluent's image accepts `SASL_SSL://host:9096` style entries; librdkafka wants `host:port`.
fn strip_listener_prefixes(servers: &str) -> String {
    servers
        .split(',')
        .map(|s| {
            let s = s.trim();
            s.split_once("://").map_or(s, |(_, rest)| rest)
        })
        .collect::<Vec<_>>()
        .join(",")
}

struct JaasCredentials {
    username: String,
    password: String,
}

/// Extracts username and password from a Kafka JAAS line such as
/// `org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";`.
fn parse_jaas(line: &str) -> Option<JaasCredentials> {
    let module = line.split_whitespace().next()?;
    if !(module.ends_with("PlainLoginModule") || module.ends_with("ScramLoginModule")) {
        return None;
    }
    Some(JaasCredentials {
        username: jaas_option(line, "username")?,
        password: jaas_option(line, "password")?,
    })
}

/// The value of `name="value"` in a JAAS line, honouring `\"` and `\\` escapes.
fn jaas_option(line: &str, name: &str) -> Option<String> {
    let mut rest = line;
    loop {
        let at = rest.find(name)?;
        let preceded_ok = at == 0
            || rest[..at]
                .chars()
                .next_back()
                .is_some_and(char::is_whitespace);
        let after = rest[at + name.len()..].trim_start();
        if preceded_ok {
            if let Some(quoted) = after.strip_prefix('=').map(str::trim_start) {
                let quoted = quoted.strip_prefix('"')?;
                let mut value = String::new();
                let mut chars = quoted.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next()?),
                        '"' => return Some(value),
                        c => value.push(c),
                    }
                }
                return None;
            }
        }
        rest = &rest[at + name.len()..];
    }
}

/// Layer 4: `KAFKA_CREDS`, a Secrets Manager secret injected whole by ECS.
fn merge_kafka_creds(
    mut figment: Figment,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Figment, ConfigError> {
    let Some(raw) = env("KAFKA_CREDS") else {
        return Ok(figment);
    };
    // The error deliberately omits serde's detail: it could quote part of the secret.
    let creds: BTreeMap<String, serde_json::Value> = serde_json::from_str(&raw)
        .map_err(|_| ConfigError::invalid("KAFKA_CREDS", "not a JSON object of strings"))?;
    for (secret_key, setting) in [
        ("BOOTSTRAP_SERVERS", "kafka.bootstrap_servers"),
        ("SASL_USERNAME", "kafka.sasl_username"),
        ("SASL_PASSWORD", "kafka.sasl_password"),
    ] {
        match creds.get(secret_key) {
            None => {}
            Some(serde_json::Value::String(v)) => {
                let v = if secret_key == "BOOTSTRAP_SERVERS" {
                    strip_listener_prefixes(v)
                } else {
                    v.clone()
                };
                figment = figment.merge((setting, v));
            }
            Some(_) => {
                return Err(ConfigError::invalid(
                    &format!("KAFKA_CREDS.{secret_key}"),
                    "must be a string",
                ))
            }
        }
    }
    Ok(figment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(toml.as_bytes()).unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Env::prefixed reads the real process environment; the tests only use KRP_ keys
        // through the file, so the injected map covers the other layers.
        Settings::load_from(Some(file.path()), |k| env.get(k).cloned())
    }

    #[test]
    fn defaults_are_dev_mode_on_confluents_port() {
        let s = load("", &[]).unwrap();
        assert!(s.dev_mode());
        assert_eq!(s.server.listen.port(), 8082);
        assert_eq!(s.kafka.security_protocol, SecurityProtocol::Plaintext);
    }

    #[test]
    fn the_documented_defaults_file_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let from_file = Settings::load_from(Some(&path), |_| None).unwrap();
        assert_eq!(
            format!("{from_file:?}"),
            format!("{:?}", Settings::default())
        );
    }

    #[test]
    fn the_production_example_loads_with_the_ecs_secret() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/production.toml");
        let creds =
            r#"{"SASL_USERNAME":"svc","SASL_PASSWORD":"pw","BOOTSTRAP_SERVERS":"b-1:9096"}"#;
        let s = Settings::load_from(Some(&path), |k| (k == "KAFKA_CREDS").then(|| creds.into()))
            .unwrap();
        assert_eq!(s.kafka.security_protocol, SecurityProtocol::SaslSsl);
        assert!(!s.dev_mode());
    }

    #[test]
    fn the_example_policy_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policy.example.toml");
        let policy = crate::auth::Policy::load(&path).unwrap();
        assert_eq!(policy.principal_ids(), ["partner-acme"]);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load("[kafka]\nbootstrap_server = \"x:9092\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bootstrap_server"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let err = load("[kafka]\nsecurity_protocol = \"TLS\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("security_protocol"), "{err}");
        assert!(err.contains("TLS"), "{err}");
    }

    #[test]
    fn sasl_requires_mechanism_and_credentials() {
        let err = load(
            "[kafka]\nbootstrap_servers = \"b:9096\"\nsecurity_protocol = \"SASL_SSL\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("kafka.sasl_mechanism"), "{err}");
    }

    #[test]
    fn guarded_librdkafka_keys_are_rejected() {
        let err = load(
            "[kafka.librdkafka]\npartitioner = \"consistent_random\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("partitioner"), "{err}");
    }

    #[test]
    fn timeouts_must_fit_the_request() {
        let err = load("[kafka]\nmessage_timeout_ms = 30000\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("kafka.message_timeout_ms"), "{err}");
    }

    #[test]
    fn kafka_creds_secret_fills_the_credentials() {
        let creds = r#"{"SASL_USERNAME":"svc","SASL_PASSWORD":"s3cr3t","BOOTSTRAP_SERVERS":"SASL_SSL://b-1:9096,b-2:9096","OTHER":1}"#;
        let s = load(
            "[kafka]\nsecurity_protocol = \"SASL_SSL\"\nsasl_mechanism = \"SCRAM-SHA-512\"\n",
            &[("KAFKA_CREDS", creds)],
        )
        .unwrap();
        assert_eq!(
            s.kafka.bootstrap_servers.as_deref(),
            Some("b-1:9096,b-2:9096")
        );
        assert_eq!(s.kafka.sasl_username.as_deref(), Some("svc"));
        assert_eq!(s.kafka.sasl_password.unwrap().expose_secret(), "s3cr3t");
    }

    #[test]
    fn kafka_creds_errors_do_not_quote_the_secret() {
        let err = load("", &[("KAFKA_CREDS", "{\"SASL_PASSWORD\": hunter2")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("KAFKA_CREDS"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn kafka_creds_override_the_file_and_confluent_vars() {
        let s = load(
            "[kafka]\nbootstrap_servers = \"file:9092\"\n",
            &[
                ("KAFKA_REST_BOOTSTRAP_SERVERS", "confluent:9092"),
                ("KAFKA_CREDS", r#"{"BOOTSTRAP_SERVERS":"secret:9092"}"#),
            ],
        )
        .unwrap();
        assert_eq!(s.kafka.bootstrap_servers.as_deref(), Some("secret:9092"));
    }

    #[test]
    fn confluent_image_variables_work() {
        let s = load(
            "",
            &[
                ("KAFKA_REST_BOOTSTRAP_SERVERS", "SASL_SSL://b-1:9096"),
                ("KAFKA_REST_CLIENT_SECURITY_PROTOCOL", "SASL_SSL"),
                ("KAFKA_REST_CLIENT_SASL_MECHANISM", "SCRAM-SHA-512"),
                (
                    "KAFKA_REST_CLIENT_SASL_JAAS_CONFIG",
                    r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="partner-gw" password="p\"w;d";"#,
                ),
            ],
        )
        .unwrap();
        assert_eq!(s.kafka.bootstrap_servers.as_deref(), Some("b-1:9096"));
        assert_eq!(s.kafka.security_protocol, SecurityProtocol::SaslSsl);
        assert_eq!(s.kafka.sasl_mechanism, Some(SaslMechanism::ScramSha512));
        assert_eq!(s.kafka.sasl_username.as_deref(), Some("partner-gw"));
        assert_eq!(s.kafka.sasl_password.unwrap().expose_secret(), "p\"w;d");
    }

    #[test]
    fn jaas_for_an_unsupported_module_is_rejected() {
        let err = load(
            "",
            &[(
                "KAFKA_REST_CLIENT_SASL_JAAS_CONFIG",
                "com.sun.security.auth.module.Krb5LoginModule required;",
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("KAFKA_REST_CLIENT_SASL_JAAS_CONFIG"), "{err}");
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let s = load(
            "[kafka]\nsecurity_protocol = \"SASL_PLAINTEXT\"\nsasl_mechanism = \"PLAIN\"\n\
             bootstrap_servers = \"b:9092\"\nsasl_username = \"u\"\nsasl_password = \"pa55word\"\n\
             [kafka.librdkafka]\n\"ssl.key.password\" = \"keypa55\"\n",
            &[],
        )
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("pa55word"), "{debug}");
        assert!(!debug.contains("keypa55"), "{debug}");
        assert!(debug.contains("ssl.key.password"), "{debug}");
    }
}
