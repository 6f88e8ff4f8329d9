//! `[idempotency]`: `Idempotency-Key` requests, whose outcomes are kept in a store and
//! replayed to retries ([`crate::idempotency`]).

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::ConfigError;

/// Where outcomes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// In this process: a retry that reaches another task is not recognized. Dev mode and
    /// single-task deployments.
    Memory,
    /// In Redis (ElastiCache), shared by every task.
    Redis,
}

/// What a keyed request gets while the store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreError {
    /// 503 with `Retry-After`; nothing is produced.
    Reject,
    /// Produce without the guarantee; the response says so (`Idempotency-Store:
    /// unavailable`) and `kafka_rest_idempotency_requests_total{outcome="unguarded"}`
    /// counts it.
    Proceed,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencySettings {
    pub store: StoreKind,
    /// How long a stored outcome is replayed.
    pub ttl_ms: u64,
    /// How long a request in progress holds its key. A task that dies mid-request leaves
    /// its key held this long; a retry after it runs again.
    pub lease_ms: u64,
    pub on_store_error: OnStoreError,
    /// When set, every record of a keyed request carries the key in a header of this name.
    pub record_header: Option<String>,
    /// Bound of the memory store: the stored responses and keys, in bytes; the least
    /// recently used entries go first (`kafka_rest_idempotency_evictions_total`).
    pub memory_max_bytes: u64,
    pub redis: RedisSettings,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        IdempotencySettings {
            store: StoreKind::Memory,
            ttl_ms: 24 * 60 * 60 * 1000,
            lease_ms: 60_000,
            on_store_error: OnStoreError::Reject,
            record_header: None,
            memory_max_bytes: 64 * 1024 * 1024,
            redis: RedisSettings::default(),
        }
    }
}

/// The Redis server: `url`, or `host` with `port` and `tls` (as Compose-X hands an
/// ElastiCache endpoint over, in separate variables).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://host:port` or, with TLS, `rediss://host:port`; no credentials in it.
    pub url: Option<String>,
    pub host: Option<String>,
    pub port: u16,
    pub tls: bool,
    /// PEM bundle of the CAs that sign the server's certificate, trusted instead of the
    /// system's (which include Amazon's, for ElastiCache): for a private CA.
    pub ca_file: Option<PathBuf>,
    /// A Redis ACL user; unset with an ElastiCache AUTH token.
    pub username: Option<String>,
    /// The AUTH token (ElastiCache) or the ACL user's password. Redacted everywhere.
    #[serde(deserialize_with = "super::kafka::some_secret")]
    pub auth_token: Option<SecretString>,
    /// Bound on each store call (connecting included): a keyed request waits at most this
    /// long for its claim and again for its outcome to be kept.
    pub timeout_ms: u64,
    /// Prepended to every key the service writes, so one Redis can serve several services.
    pub key_prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: None,
            host: None,
            port: 6379,
            tls: false,
            ca_file: None,
            username: None,
            auth_token: None,
            timeout_ms: 250,
            key_prefix: "krp:idempotency:".to_owned(),
        }
    }
}

impl IdempotencySettings {
    /// Time a keyed request may spend on store calls: its claim and its outcome.
    pub fn store_time_ms(&self) -> u64 {
        match self.store {
            StoreKind::Memory => 0,
            StoreKind::Redis => 2 * self.redis.timeout_ms,
        }
    }

    pub(super) fn validate(&self, request_timeout_ms: u64) -> Result<(), ConfigError> {
        if self.ttl_ms == 0 {
            return Err(ConfigError::invalid(
                "idempotency.ttl_ms",
                "must be positive",
            ));
        }
        if self.lease_ms <= request_timeout_ms {
            return Err(ConfigError::invalid(
                "idempotency.lease_ms",
                format!(
                    "must be longer than server.request_timeout_ms ({request_timeout_ms} ms): \
                     a lease that ends while its request still runs lets a retry produce the \
                     same records again"
                ),
            ));
        }
        if self.lease_ms > self.ttl_ms {
            return Err(ConfigError::invalid(
                "idempotency.lease_ms",
                "must not be longer than idempotency.ttl_ms",
            ));
        }
        if let Some(name) = &self.record_header {
            if name.is_empty() {
                return Err(ConfigError::invalid(
                    "idempotency.record_header",
                    "must not be empty; leave it unset to copy no header",
                ));
            }
        }
        if self.memory_max_bytes == 0 {
            return Err(ConfigError::invalid(
                "idempotency.memory_max_bytes",
                "must be positive",
            ));
        }
        if self.store == StoreKind::Redis {
            self.redis.validate()?;
        }
        Ok(())
    }
}

impl RedisSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        match (&self.url, &self.host) {
            (None, None) => Err(ConfigError::invalid(
                "idempotency.redis.url",
                "required with idempotency.store = \"redis\": set url, or host (with port and \
                 tls)",
            )),
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                "idempotency.redis.host",
                "set together with idempotency.redis.url: choose one",
            )),
            (Some(url), None) => {
                let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
                if !scheme_ok || url.contains('@') {
                    // Not quoted: a mistyped URL may carry the token.
                    return Err(ConfigError::invalid(
                        "idempotency.redis.url",
                        "must start with redis:// or rediss:// (TLS) and carry no credentials \
                         (put them in idempotency.redis.auth_token)",
                    ));
                }
                self.check_timeout()
            }
            (None, Some(host)) if host.is_empty() => Err(ConfigError::invalid(
                "idempotency.redis.host",
                "must not be empty",
            )),
            (None, Some(_)) => self.check_timeout(),
        }
    }

    /// Whether the connection is TLS: a `rediss://` URL, or `tls` with `host`.
    pub fn uses_tls(&self) -> bool {
        match &self.url {
            Some(url) => url.starts_with("rediss://"),
            None => self.tls,
        }
    }

    fn check_timeout(&self) -> Result<(), ConfigError> {
        if self.ca_file.is_some() && !self.uses_tls() {
            return Err(ConfigError::invalid(
                "idempotency.redis.ca_file",
                "set without TLS: use a rediss:// URL, or tls = true",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "idempotency.redis.timeout_ms",
                "must be positive",
            ));
        }
        Ok(())
    }
}
