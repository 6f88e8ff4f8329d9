//! One typed settings tree, layered from defaults, a TOML file and the environment.
//!
//! Precedence, lowest first (a later layer overrides an earlier one key by key):
//!
//! 1. built-in defaults (each section's `Default`, mirrored in `config/default.toml`);
//! 2. the TOML file given with `--config`;
//! 3. the Confluent REST Proxy image's variables, so a migrated task definition keeps working:
//!    `KAFKA_REST_BOOTSTRAP_SERVERS`, `KAFKA_REST_CLIENT_SECURITY_PROTOCOL`,
//!    `KAFKA_REST_CLIENT_SASL_MECHANISM`, `KAFKA_REST_CLIENT_SASL_JAAS_CONFIG`,
//!    `KAFKA_REST_SCHEMA_REGISTRY_URL`, `KAFKA_REST_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO`
//!    (with `..._CREDENTIALS_SOURCE=USER_INFO`, the only source supported),
//!    `KAFKA_REST_ACCESS_CONTROL_ALLOW_ORIGIN`, `..._METHODS`, `..._HEADERS` (CORS);
//! 4. `KAFKA_CREDS`, one JSON object as ECS injects a whole Secrets Manager secret
//!    (`SASL_USERNAME`, `SASL_PASSWORD`, `BOOTSTRAP_SERVERS`; other keys are ignored), and
//!    `SCHEMA_REGISTRY_CREDS` likewise (`SCHEMA_REGISTRY_URL`, `BASIC_AUTH_USER_INFO`);
//! 5. `KRP_<SECTION>__<KEY>` variables, e.g. `KRP_KAFKA__LINGER_MS=10`; an empty one clears
//!    an optional setting of the layers below (`KRP_KAFKA__SASL_MECHANISM=`), and is refused
//!    for a setting with a default;
//! 6. the command line: `--listen`, and `--dev` (the embedded cluster, on loopback).
//!
//! Unknown keys and bad values fail startup with a message naming the key. Secrets are
//! [`SecretString`]s: they never reach a log line, an error or a `Debug` print.
//!
//! One file per section, each with its own checks (`server`, `kafka` with `metadata` and
//! `dev`, `auth`, `limits`, `validation`, `observability` for `log` and `metrics`); `env`
//! holds the Confluent/ECS environment compatibility; this file layers them and checks the
//! settings that span sections. Every loader of a file named in the settings (TLS, the
//! policy, schemas, the log filter) reports its failures as a [`ConfigError`] too.

mod auth;
mod cors;
mod env;
mod idempotency;
mod kafka;
mod limits;
mod observability;
mod schema_registry;
mod server;
mod traces;
mod v3;
mod validation;

use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Data, Env, Format, Toml};
use figment::value::UncasedStr;
use figment::Figment;

pub use auth::{AuthSettings, JwtAlgorithm, JwtSettings, PolicyText};
pub use cors::{CorsOrigin, CorsSettings};
pub use idempotency::{IdempotencySettings, OnStoreError, RedisSettings, StoreKind};
pub use kafka::{
    Compression, DevSettings, KafkaSettings, MetadataSettings, Partitioner, RawProperties,
    SaslMechanism, SecurityProtocol, GUARDED_LIBRDKAFKA_KEYS, GUARDED_LIBRDKAFKA_PREFIXES,
};
pub use limits::{LimitSettings, Rate, RateLimitSettings};
pub use observability::{LogFormat, LogSettings, MetricsSettings};
pub use schema_registry::SchemaRegistrySettings;
pub use server::{AdvertisedUrl, ServerSettings, TlsSettings};
pub use traces::{OtlpProtocol, TracingSettings};
pub use v3::{BatchSettings, StreamingSettings, MAX_BATCH_ENTRIES};
pub use validation::{TopicSchema, ValidationSettings};

use serde::Deserialize;

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
    /// The Schema Registry of the avro, jsonschema and protobuf formats.
    pub schema_registry: SchemaRegistrySettings,
    /// Cross-origin requests from browser clients; off by default.
    pub cors: CorsSettings,
    /// API v3 streams of records (`POST .../records`).
    pub streaming: StreamingSettings,
    /// API v3 batches of records (`POST .../records:batch`).
    pub batch: BatchSettings,
    /// `Idempotency-Key` requests and the store of their outcomes.
    pub idempotency: IdempotencySettings,
    /// OpenTelemetry traces; off by default.
    pub tracing: TracingSettings,
}

/// Layer 6: what the command line sets.
#[derive(Debug, Clone, Default)]
pub struct CommandLine {
    /// `--listen`: the API listener's address.
    pub listen: Option<SocketAddr>,
    /// `--dev`: the embedded in-memory cluster instead of Kafka, listening on loopback
    /// unless `--listen` says otherwise.
    pub dev: bool,
}

impl CommandLine {
    fn apply(&self, settings: &mut Settings) {
        if self.dev {
            settings.dev.enabled = true;
            settings
                .server
                .listen
                .set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            settings
                .metrics
                .listen
                .set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        if let Some(listen) = self.listen {
            settings.server.listen = listen;
        }
    }
}

impl Settings {
    /// Loads the layered settings from an optional file and the process environment.
    ///
    /// # Errors
    /// A message naming the key for unknown keys, bad values and conflicting settings.
    pub fn load(file: Option<&Path>, cli: &CommandLine) -> Result<Settings, ConfigError> {
        let mut settings = Self::layered(toml_file(file)?, |name| std::env::var(name).ok())?;
        cli.apply(&mut settings);
        settings.validate()?;
        Ok(settings)
    }

    /// [`Settings::load`] with an injectable environment and no command line, for tests.
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let settings = Self::layered(toml_file(file)?, env)?;
        settings.validate()?;
        Ok(settings)
    }

    /// [`Settings::load_from`] with the file's text instead of its path: for the fuzz
    /// targets (`crate::fuzzing`), which read no files.
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub(crate) fn load_from_text(
        toml: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let settings = Self::layered(Some(Toml::string(toml)), env)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Layers 1-5, not yet checked.
    fn layered(
        file: Option<Data<Toml>>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(file);
        }
        figment = env::merge_confluent_env(figment, &env)?;
        figment = env::merge_injected_secrets(figment, &env)?;
        // KRP_CONFIG names the file (a CLI flag's variable), not a setting; KRP_AUTH__POLICY
        // is TOML text, merged as a string.
        let krp = Env::prefixed("KRP_")
            .split("__")
            .ignore(&["config", "auth.policy"]);
        let cleared: Vec<String> = krp
            .iter()
            .filter(|(_, value)| value.trim().is_empty())
            .map(|(key, _)| key.into_string())
            .collect();
        let set = {
            let cleared = cleared.clone();
            move |key: &UncasedStr| !cleared.iter().any(|c| key == c.as_str())
        };
        figment = figment.merge(krp.clone().filter(move |key| {
            set(key) && !kafka::SECRET_KEYS.iter().any(|secret| key == *secret)
        }));
        // Secrets as the raw text of their variables, never parsed as numbers or booleans.
        for secret in kafka::SECRET_KEYS {
            if let Some((_, value)) = krp.clone().only(&[secret]).iter().next() {
                if !value.trim().is_empty() {
                    figment = figment.merge((*secret, value));
                }
            }
        }
        figment = clear(figment, &cleared);
        figment = env::merge_inline_policy(figment, &env);
        figment.extract().map_err(|e| cannot_clear(&cleared, e))
    }

    /// Each section's own checks, then those that span sections.
    fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.kafka.validate()?;
        self.metadata.validate()?;
        self.dev.validate()?;
        self.auth.validate()?;
        self.limits.validate(self.server.max_body_bytes)?;
        self.schema_registry.validate()?;
        self.cors.validate()?;
        self.streaming.validate()?;
        self.batch.validate()?;
        self.idempotency.validate(self.server.request_timeout_ms)?;
        self.tracing.validate()?;
        self.check_timeouts_fit_the_request()?;
        match (&self.kafka.bootstrap_servers, self.dev.enabled) {
            (None, false) => {
                return Err(ConfigError::invalid(
                    "kafka.bootstrap_servers",
                    "required: name the brokers, or run with --dev (dev.enabled) for an \
                     embedded in-memory cluster that keeps nothing",
                ))
            }
            (Some(_), true) => {
                return Err(ConfigError::invalid(
                    "dev.enabled",
                    "set together with kafka.bootstrap_servers: the embedded dev cluster \
                     replaces Kafka, choose one",
                ))
            }
            _ => {}
        }
        if self.auth.client_certificates && self.server.tls.client_ca_file.is_none() {
            return Err(ConfigError::invalid(
                "auth.client_certificates",
                "needs server.tls.client_ca_file: only verified certificates can name a principal",
            ));
        }
        Ok(())
    }

    /// Everything a produce request may wait for, one after the other, must fit inside
    /// `server.request_timeout_ms`: a JWKS fetch for a token with an unknown `kid` (one
    /// bound for the whole fetch, OIDC discovery included), a metadata request on a topic
    /// cache miss, room in a full producer queue, then the delivery timeout.
    fn check_timeouts_fit_the_request(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        let jwt = &self.auth.jwt;
        let mut parts = vec![
            ("kafka.message_timeout_ms", k.message_timeout_ms),
            ("kafka.queue_full_wait_ms", k.queue_full_wait_ms),
            (
                "metadata.request_timeout_ms",
                self.metadata.request_timeout_ms,
            ),
        ];
        if self.auth.enabled && jwt.issuer.is_some() {
            parts.push(("auth.jwt.fetch_timeout_ms", jwt.fetch_timeout_ms));
        }
        if self.schema_registry.enabled() {
            parts.push((
                "schema_registry.request_timeout_ms",
                self.schema_registry.request_timeout_ms,
            ));
        }
        if self.idempotency.store == StoreKind::Redis {
            parts.push((
                "idempotency.redis.timeout_ms (twice)",
                self.idempotency.store_time_ms(),
            ));
        }
        let total: u64 = parts.iter().map(|(_, ms)| ms).sum();
        if total < self.server.request_timeout_ms {
            return Ok(());
        }
        let sum = parts
            .iter()
            .map(|(key, ms)| format!("{key} ({ms} ms)"))
            .collect::<Vec<_>>()
            .join(" + ");
        Err(ConfigError::invalid(
            "server.request_timeout_ms",
            format!(
                "{sum} = {total} ms must stay below server.request_timeout_ms ({} ms) so a \
                 request always gets an answer",
                self.server.request_timeout_ms
            ),
        ))
    }

    /// Whether logs are JSON lines (else human-readable text).
    pub fn json_logs(&self) -> bool {
        match self.log.format {
            LogFormat::Json => true,
            LogFormat::Text => false,
            LogFormat::Auto => !self.dev_mode(),
        }
    }

    /// True when the embedded mock cluster replaces Kafka (`--dev`).
    pub fn dev_mode(&self) -> bool {
        self.dev.enabled
    }
}

/// Clears settings (dotted keys) for an empty `KRP_` variable: an empty value over every
/// lower layer, which an optional setting reads as unset. Without it an operator could not
/// undo a file's setting from the environment (the image's `kafka.sasl_mechanism` for a
/// plaintext broker) but by mounting another file. `none` does not clear: it is a value of
/// `kafka.compression`.
fn clear(figment: Figment, keys: &[String]) -> Figment {
    keys.iter().fold(figment, |figment, key| {
        figment.merge((key.as_str(), None::<()>))
    })
}

/// The extraction error, or for a cleared setting that has a default (it cannot be unset)
/// one that says so, naming the key.
fn cannot_clear(cleared: &[String], error: figment::Error) -> ConfigError {
    let key = error.clone().into_iter().find_map(|e| {
        let path = e.path.join(".").to_ascii_lowercase();
        let unset = matches!(
            e.kind,
            figment::error::Kind::InvalidType(figment::error::Actual::Option, _)
        );
        (unset && cleared.contains(&path)).then_some(path)
    });
    match key {
        Some(key) => ConfigError::invalid(
            &key,
            "cleared by an empty variable, but it has a default and cannot be unset: give it a \
             value (only optional settings can be cleared)",
        ),
        None => ConfigError::Figment(Box::new(error)),
    }
}

/// Layer 2's provider: the `--config` file, which must exist.
fn toml_file(file: Option<&Path>) -> Result<Option<Data<Toml>>, ConfigError> {
    let Some(path) = file else {
        return Ok(None);
    };
    if !path.is_file() {
        return Err(ConfigError::invalid(
            "--config",
            format!("{} is not a readable file", path.display()),
        ));
    }
    Ok(Some(Toml::file(path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
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
    fn defaults_need_a_cluster_and_listen_on_confluents_port() {
        let err = load("", &[]).unwrap_err().to_string();
        assert!(err.contains("kafka.bootstrap_servers"), "{err}");
        assert!(err.contains("--dev"), "{err}");
        let s = Settings::default();
        assert!(!s.dev_mode());
        assert_eq!(s.server.listen.port(), 8082);
        assert_eq!(s.kafka.security_protocol, SecurityProtocol::Plaintext);
    }

    #[test]
    fn the_dev_cluster_only_when_asked_for_and_on_loopback() {
        let dev = CommandLine {
            listen: None,
            dev: true,
        };
        let mut s = Settings::layered(None, |_| None).unwrap();
        dev.apply(&mut s);
        s.validate().unwrap();
        assert!(s.dev_mode());
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8082");
        let err = load(
            "[kafka]\nbootstrap_servers = \"b:9092\"\n[dev]\nenabled = true\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("dev.enabled"), "{err}");
        let err = load(
            "[kafka]\nbootstrap_servers = \"b:9092\"\n[kafka.librdkafka]\n\"test.mock.num.brokers\" = \"3\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("test.mock.num.brokers"), "{err}");
    }

    #[test]
    fn secrets_that_look_like_numbers_are_text_and_never_quoted() {
        for (value, text) in [("1234", "1234"), ("12.5", "12.5"), ("true", "true")] {
            let s = load(
                &format!(
                    "[kafka]\nbootstrap_servers = \"b:9092\"\nsecurity_protocol = \"SASL_SSL\"\n\
                     sasl_mechanism = \"PLAIN\"\nsasl_username = 42\nsasl_password = {value}\n\
                     [kafka.librdkafka]\n\"socket.keepalive.enable\" = true\n\"linger.ms\" = 5\n"
                ),
                &[],
            )
            .unwrap();
            assert_eq!(s.kafka.sasl_password.unwrap().expose_secret(), text);
            assert_eq!(s.kafka.sasl_username.as_deref(), Some("42"));
            assert_eq!(s.kafka.librdkafka.0["linger.ms"], "5");
            assert_eq!(s.kafka.librdkafka.0["socket.keepalive.enable"], "true");
        }
        let err = load(
            "[kafka]\nbootstrap_servers = \"b:9092\"\nsasl_password = [\"hunter2\"]\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sasl_password"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_bad_advertised_url_is_refused_naming_the_key() {
        let s = load(
            "[server]\nadvertised_url = \"https://api.example.com/kafka/\"\n[kafka]\nbootstrap_servers = \"b:9092\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            s.server.advertised_url.unwrap().as_str(),
            "https://api.example.com/kafka"
        );
        let err = load(
            "[server]\nadvertised_url = \"api.example.com\"\n[kafka]\nbootstrap_servers = \"b:9092\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("server.advertised_url"), "{err}");
        assert!(err.contains("absolute http(s) URL"), "{err}");
    }

    #[test]
    fn idempotency_settings_are_checked_and_the_redis_token_is_a_secret() {
        let base = "[kafka]\nbootstrap_servers = \"b:9092\"\n[idempotency]\n";
        let s = load(
            &format!(
                "{base}store = \"redis\"\n[idempotency.redis]\nhost = \"r.example\"\ntls = true\n\
                 auth_token = 123456\n"
            ),
            &[],
        )
        .unwrap();
        assert_eq!(s.idempotency.store, StoreKind::Redis);
        assert_eq!(
            s.idempotency
                .redis
                .auth_token
                .as_ref()
                .unwrap()
                .expose_secret(),
            "123456",
            "a token of digits stays text"
        );
        assert!(!format!("{s:?}").contains("123456"));
        for (toml, key, why) in [
            ("store = \"redis\"\n", "idempotency.redis.url", "required"),
            (
                "store = \"redis\"\n[idempotency.redis]\nurl = \"redis://:tok@r:6379\"\n",
                "idempotency.redis.url",
                "carry no credentials",
            ),
            (
                "store = \"redis\"\n[idempotency.redis]\nurl = \"http://r\"\n",
                "idempotency.redis.url",
                "rediss://",
            ),
            (
                "store = \"redis\"\n[idempotency.redis]\nurl = \"redis://r\"\nhost = \"r\"\n",
                "idempotency.redis.host",
                "choose one",
            ),
            (
                "lease_ms = 25000\n",
                "idempotency.lease_ms",
                "server.request_timeout_ms",
            ),
            ("ttl_ms = 1000\n", "idempotency.lease_ms", "ttl_ms"),
            (
                "record_header = \"\"\n",
                "idempotency.record_header",
                "empty",
            ),
            ("store = \"disk\"\n", "store", "memory"),
        ] {
            let err = load(&format!("{base}{toml}"), &[]).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(why), "{toml}: {err}");
        }
        // Two Redis calls join the sum that must fit in the request's time.
        let err = load(
            &format!(
                "{base}store = \"redis\"\n[idempotency.redis]\nurl = \"redis://r\"\ntimeout_ms = 4000\n"
            ),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("idempotency.redis.timeout_ms (twice) (8000 ms)"),
            "{err}"
        );
    }

    #[test]
    fn the_documented_defaults_file_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let from_file = Settings::layered(toml_file(Some(&path)).unwrap(), |_| None).unwrap();
        assert_eq!(
            format!("{from_file:?}"),
            format!("{:?}", Settings::default())
        );
    }

    #[test]
    fn the_production_example_loads_with_the_ecs_secrets_and_authenticates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/production.toml");
        let creds =
            r#"{"SASL_USERNAME":"svc","SASL_PASSWORD":"pw","BOOTSTRAP_SERVERS":"b-1:9096"}"#;
        let policy = "[[api_keys]]\nprincipal = \"p\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000001\"\n";
        let env = |k: &str| match k {
            "KAFKA_CREDS" => Some(creds.to_owned()),
            "KRP_AUTH__POLICY" => Some(policy.to_owned()),
            _ => None,
        };
        let s = Settings::load_from(Some(&path), env).unwrap();
        assert_eq!(s.kafka.security_protocol, SecurityProtocol::SaslSsl);
        assert!(!s.dev_mode());
        assert!(s.auth.enabled, "production authenticates");
        // Without the policy secret it does not start at all.
        let err = Settings::load_from(Some(&path), |k| (k == "KAFKA_CREDS").then(|| creds.into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.policy"), "{err}");
    }

    #[test]
    fn the_example_policy_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policy.example.toml");
        let policy = crate::auth::Policy::load(&path).unwrap();
        assert_eq!(policy.principal_ids(), ["api_key:partner-acme"]);
    }

    #[test]
    fn an_inline_policy_from_the_environment_is_text() {
        let text = "[[api_keys]]\nprincipal = \"p\"\nsha256 = \"ab\"\n";
        let dev_auth = "[dev]\nenabled = true\n[auth]\nenabled = true\n";
        let s = load(dev_auth, &[("KRP_AUTH__POLICY", text)]).unwrap();
        assert_eq!(s.auth.policy, Some(PolicyText(text.into())));
        assert!(
            !format!("{s:?}").contains("sha256"),
            "the text is not printed"
        );
        let err = load(
            &format!("{dev_auth}policy_file = \"/p.toml\"\n"),
            &[("KRP_AUTH__POLICY", text)],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("auth.policy"), "{err}");
        let err = load(dev_auth, &[]).unwrap_err().to_string();
        assert!(err.contains("auth.policy_file or auth.policy"), "{err}");
    }

    #[test]
    fn a_cleared_optional_setting_is_unset_and_one_with_a_default_is_refused() {
        let file = "[kafka]\nbootstrap_servers = \"b:9092\"\nsecurity_protocol = \"SASL_SSL\"\n\
                    sasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"u\"\n\
                    sasl_password = \"p\"\nlinger_ms = 5\n";
        let extract = |keys: &[&str]| {
            let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            clear(Figment::from(Toml::string(file)), &keys)
                .extract::<Settings>()
                .map_err(|e| cannot_clear(&keys, e))
        };
        let s = extract(&[
            "kafka.sasl_mechanism",
            "kafka.sasl_username",
            "kafka.sasl_password",
        ])
        .unwrap();
        assert_eq!(s.kafka.sasl_mechanism, None);
        assert_eq!(s.kafka.sasl_username, None);
        assert!(s.kafka.sasl_password.is_none());
        assert_eq!(s.kafka.linger_ms, 5, "what is not cleared stays");
        assert_eq!(s.kafka.security_protocol, SecurityProtocol::SaslSsl);
        let err = extract(&["kafka.linger_ms"]).unwrap_err().to_string();
        assert!(
            err.contains("kafka.linger_ms") && err.contains("cannot be unset"),
            "{err}"
        );
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
        assert!(err.contains("kafka.partitioner"), "{err}");
    }

    #[test]
    fn the_partitioner_is_a_typed_setting() {
        let load_partitioner = |value: &str| {
            load(
                &format!("[kafka]\nbootstrap_servers = \"b:9092\"\npartitioner = \"{value}\"\n"),
                &[],
            )
            .map(|s| s.kafka.partitioner)
            .map_err(|e| e.to_string())
        };
        assert_eq!(
            load_partitioner("consistent_random"),
            Ok(Partitioner::ConsistentRandom)
        );
        assert_eq!(
            load_partitioner("fnv1a_random"),
            Ok(Partitioner::Fnv1aRandom)
        );
        let err = load_partitioner("random").unwrap_err();
        assert!(err.contains("kafka.partitioner"), "{err}");
        assert_eq!(
            load("[kafka]\nbootstrap_servers = \"b:9092\"\n", &[])
                .unwrap()
                .kafka
                .partitioner,
            Partitioner::Murmur2Random
        );
    }

    #[test]
    fn jwt_algorithms_are_parsed_once_and_none_is_refused() {
        let s = load(
            "[kafka]\nbootstrap_servers = \"b:9092\"\n[auth.jwt]\nalgorithms = [\"ES384\", \"EdDSA\"]\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            s.auth.jwt.algorithms,
            [JwtAlgorithm::Es384, JwtAlgorithm::EdDsa]
        );
        for (bad, why) in [
            ("none", "would accept unsigned tokens"),
            ("RS999", "unknown algorithm"),
        ] {
            let err = load(&format!("[auth.jwt]\nalgorithms = [\"{bad}\"]\n"), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains("auth.jwt.algorithms"), "{err}");
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn timeouts_must_fit_the_request() {
        let err = load("[kafka]\nmessage_timeout_ms = 30000\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("kafka.message_timeout_ms"), "{err}");
    }

    #[test]
    fn the_metadata_request_counts_against_the_request_timeout() {
        // 15 000 + 2 000 + 9 000: the delivery timeout alone fits, the metadata wait does not.
        let toml =
            "[kafka]\nbootstrap_servers = \"b:9092\"\n[metadata]\nrequest_timeout_ms = 9000\n";
        let err = load(toml, &[]).unwrap_err().to_string();
        assert!(
            err.contains("metadata.request_timeout_ms (9000 ms)"),
            "{err}"
        );
        assert!(err.contains("server.request_timeout_ms"), "{err}");
    }

    #[test]
    fn the_jwks_fetch_counts_against_the_request_timeout() {
        let jwt = |extra: &str| {
            format!(
                "[kafka]\nbootstrap_servers = \"b:9092\"\n[auth]\nenabled = true\n\
                 policy_file = \"/dev/null\"\n[auth.jwt]\nissuer = \"https://idp\"\n\
                 audiences = [\"a\"]\n{extra}"
            )
        };
        // One bound for the whole fetch, discovery included: 6 000 on top of 15 000 +
        // 2 000 + 3 000 does not fit, 4 000 does.
        let err = load(&jwt("fetch_timeout_ms = 6000\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.jwt.fetch_timeout_ms (6000 ms)"), "{err}");
        load(&jwt("fetch_timeout_ms = 4000\n"), &[]).unwrap();
        // JWT off: no fetch to wait for.
        load(
            "[kafka]\nbootstrap_servers = \"b:9092\"\n[auth.jwt]\nfetch_timeout_ms = 20000\n",
            &[],
        )
        .unwrap();
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
    fn schema_registry_from_confluent_variables_and_an_injected_secret() {
        let kafka = "[kafka]\nbootstrap_servers = \"b:9092\"\n";
        let s = load(
            kafka,
            &[
                (
                    "KAFKA_REST_SCHEMA_REGISTRY_URL",
                    "https://sr-1.example/, https://sr-2.example",
                ),
                (
                    "KAFKA_REST_SCHEMA_REGISTRY_BASIC_AUTH_CREDENTIALS_SOURCE",
                    "USER_INFO",
                ),
                (
                    "KAFKA_REST_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
                    "KEY:s3cr3t",
                ),
            ],
        )
        .unwrap();
        let sr = &s.schema_registry;
        assert_eq!(sr.urls, ["https://sr-1.example", "https://sr-2.example"]);
        assert_eq!(
            sr.basic_auth_user_info.as_ref().unwrap().expose_secret(),
            "KEY:s3cr3t"
        );
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");

        // The injected secret wins over the Confluent variables.
        let s = load(
            kafka,
            &[
                ("KAFKA_REST_SCHEMA_REGISTRY_URL", "https://confluent.example"),
                (
                    "SCHEMA_REGISTRY_CREDS",
                    r#"{"SCHEMA_REGISTRY_URL":"https://secret.example","BASIC_AUTH_USER_INFO":"k:1234"}"#,
                ),
            ],
        )
        .unwrap();
        assert_eq!(s.schema_registry.urls, ["https://secret.example"]);
        assert_eq!(
            s.schema_registry
                .basic_auth_user_info
                .unwrap()
                .expose_secret(),
            "k:1234"
        );

        let err = load(
            kafka,
            &[(
                "KAFKA_REST_SCHEMA_REGISTRY_BASIC_AUTH_CREDENTIALS_SOURCE",
                "URL",
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("USER_INFO"), "{err}");
        let err = load(
            kafka,
            &[(
                "SCHEMA_REGISTRY_CREDS",
                "{\"BASIC_AUTH_USER_INFO\": k:hunter2",
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("SCHEMA_REGISTRY_CREDS") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn v3_limits_from_the_file_and_confluents_variables() {
        let kafka = "[kafka]\nbootstrap_servers = \"b:9092\"\n";
        let s = load(
            &format!("{kafka}[streaming]\nmax_in_flight_records = 64\n[batch]\nmax_entries = 20\n"),
            &[
                ("KAFKA_REST_STREAMING_CONNECTION_MAX_DURATION_MS", "60000"),
                (
                    "KAFKA_REST_STREAMING_CONNECTION_MAX_DURATION_GRACE_PERIOD_MS",
                    "100",
                ),
            ],
        )
        .unwrap();
        assert_eq!(s.streaming.max_duration_ms, 60_000);
        assert_eq!(s.streaming.max_duration_grace_ms, 100);
        assert_eq!(s.streaming.max_in_flight_records, 64);
        assert_eq!(s.batch.max_entries, 20);
        let s = load(
            kafka,
            &[("KAFKA_REST_API_V3_PRODUCE_BATCH_MAXIMUM_ENTRIES", "50")],
        )
        .unwrap();
        assert_eq!(s.batch.max_entries, 50);
        let err = load(
            kafka,
            &[("KAFKA_REST_API_V3_PRODUCE_BATCH_MAXIMUM_ENTRIES", "51")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("batch.max_entries"), "{err}");
        let err = load(
            kafka,
            &[("KAFKA_REST_STREAMING_CONNECTION_MAX_DURATION_MS", "1d")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("KAFKA_REST_STREAMING_CONNECTION_MAX_DURATION_MS"),
            "{err}"
        );
    }

    #[test]
    fn schema_registry_settings_are_checked() {
        let kafka = "[kafka]\nbootstrap_servers = \"b:9092\"\n";
        for (section, key) in [
            ("urls = [\"sr.example:8081\"]", "schema_registry.urls"),
            (
                "urls = [\"https://user:pw@sr.example\"]",
                "schema_registry.urls",
            ),
            (
                "urls = [\"https://sr.example\"]\nbasic_auth_user_info = \"no-colon\"",
                "schema_registry.basic_auth_user_info",
            ),
            (
                "urls = [\"https://sr.example\"]\nrequest_timeout_ms = 0",
                "schema_registry.request_timeout_ms",
            ),
            (
                "urls = [\"https://sr.example\"]\nrequest_timeout_ms = 20000",
                "server.request_timeout_ms",
            ),
        ] {
            let err = load(&format!("{kafka}[schema_registry]\n{section}\n"), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{section}: {err}");
            assert!(!err.contains("pw@") && !err.contains("no-colon"), "{err}");
        }
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

    #[test]
    fn cors_from_the_file_or_confluent_variables_and_no_wildcard_with_credentials() {
        let kafka = "[kafka]\nbootstrap_servers = \"b:9092\"\n";
        let s = load(
            kafka,
            &[
                (
                    "KAFKA_REST_ACCESS_CONTROL_ALLOW_ORIGIN",
                    "https://a.example, http://localhost:3000",
                ),
                (
                    "KAFKA_REST_ACCESS_CONTROL_ALLOW_METHODS",
                    "GET,POST,OPTIONS",
                ),
                ("KAFKA_REST_ACCESS_CONTROL_ALLOW_HEADERS", ""),
            ],
        )
        .unwrap();
        assert_eq!(
            s.cors.allowed_origins,
            [
                CorsOrigin::Exact("https://a.example".into()),
                CorsOrigin::Exact("http://localhost:3000".into())
            ]
        );
        assert_eq!(s.cors.allowed_methods, ["GET", "POST", "OPTIONS"]);
        // Blank, as Confluent's default, keeps ours.
        assert_eq!(
            s.cors.allowed_headers,
            CorsSettings::default().allowed_headers
        );

        let toml = format!("{kafka}[cors]\nallowed_origins = [\"*\"]\nallow_credentials = true\n");
        let err = load(&toml, &[]).unwrap_err().to_string();
        assert!(err.contains("cors.allow_credentials"), "{err}");
        let toml = format!("{kafka}[cors]\nallowed_origins = \"*,https://a.example\"\n");
        let err = load(&toml, &[]).unwrap_err().to_string();
        assert!(err.contains("cors.allowed_origins"), "{err}");
        let toml = format!("{kafka}[cors]\nallowed_origins = [\"https://*.example.com\"]\n");
        let err = load(&toml, &[]).unwrap_err().to_string();
        assert!(
            err.contains("allowed_origins") && err.contains("is not an origin"),
            "{err}"
        );
        let toml = format!(
            "{kafka}[cors]\nallowed_origins = [\"https://a.example\"]\nallowed_headers = [\"a b\"]\n"
        );
        let err = load(&toml, &[]).unwrap_err().to_string();
        assert!(err.contains("allowed_headers"), "{err}");
    }
}
