//! `[schema_registry]`: the Confluent Schema Registry that the avro, jsonschema and protobuf
//! embedded formats resolve their schemas in.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use super::ConfigError;

/// The Schema Registry; the schema formats answer 42206 while `urls` is empty.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaRegistrySettings {
    /// Base URLs of the registry (`https://psrc-xxxx.region.aws.confluent.cloud`), tried in
    /// turn while one is unreachable or answers 5xx. A TOML list, or one comma-separated
    /// string as Confluent's `schema.registry.url` and environment variables give it.
    #[serde(deserialize_with = "url_list")]
    pub urls: Vec<String>,
    /// HTTP basic credentials as `user:password` (a Confluent Cloud API key and secret).
    /// Redacted everywhere.
    #[serde(deserialize_with = "super::kafka::some_secret")]
    pub basic_auth_user_info: Option<SecretString>,
    /// PEM file of CA certificates for an HTTPS registry; system CAs when unset.
    pub ca_file: Option<PathBuf>,
    /// Bound on opening a connection to one URL.
    pub connect_timeout_ms: u64,
    /// Bound on all the registry calls of one request's schema resolution together (a
    /// look-up then a registration, key and value, every URL tried). Part of the sum that
    /// must fit inside `server.request_timeout_ms`.
    pub request_timeout_ms: u64,
    /// Resolved schemas kept in memory (each with its parsed encoder); least recently used
    /// ones go first.
    pub max_cached_schemas: u64,
    /// How long the latest version of a subject stays cached (API v3 records that name no
    /// schema use it): a version registered since is used after at most this long.
    pub latest_ttl_ms: u64,
}

impl Default for SchemaRegistrySettings {
    fn default() -> Self {
        SchemaRegistrySettings {
            urls: Vec::new(),
            basic_auth_user_info: None,
            ca_file: None,
            connect_timeout_ms: 1_000,
            // With JWT on, the other defaults leave 2,999 ms of server.request_timeout_ms.
            request_timeout_ms: 2_500,
            max_cached_schemas: 1_000,
            latest_ttl_ms: 30_000,
        }
    }
}

impl SchemaRegistrySettings {
    /// Whether a registry is configured at all.
    pub fn enabled(&self) -> bool {
        !self.urls.is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for url in &self.urls {
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok || url.contains('@') {
                // The URL is not quoted: a mistyped one may carry credentials.
                return Err(ConfigError::invalid(
                    "schema_registry.urls",
                    "each URL must start with http:// or https:// and carry no credentials \
                     (put them in schema_registry.basic_auth_user_info)",
                ));
            }
        }
        if let Some(user_info) = &self.basic_auth_user_info {
            if !user_info.expose_secret().contains(':') {
                return Err(ConfigError::invalid(
                    "schema_registry.basic_auth_user_info",
                    "expected user:password",
                ));
            }
        }
        if self.enabled() && self.connect_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "schema_registry.connect_timeout_ms",
                "must be positive",
            ));
        }
        if self.enabled() && self.request_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "schema_registry.request_timeout_ms",
                "must be positive",
            ));
        }
        if self.max_cached_schemas == 0 {
            return Err(ConfigError::invalid(
                "schema_registry.max_cached_schemas",
                "must be positive",
            ));
        }
        Ok(())
    }
}

/// A list of URLs, or one string of comma-separated URLs.
fn url_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Joined(String),
        List(Vec<String>),
    }
    let urls = match OneOrMany::deserialize(deserializer)? {
        OneOrMany::Joined(joined) => joined.split(',').map(str::to_owned).collect(),
        OneOrMany::List(list) => list,
    };
    Ok(urls
        .into_iter()
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
        .collect())
}
