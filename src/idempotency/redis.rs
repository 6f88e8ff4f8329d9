//! The store shared by every task: Redis (Amazon ElastiCache), over one multiplexed
//! connection that reconnects by itself (redis-rs's `ConnectionManager`), with TLS and an
//! AUTH token when configured. Entries are JSON text under `key_prefix` + the entry's name.
//!
//! - claim: `SET name running NX PX lease`, then `GET` of what holds the name when that
//!   refused. One atomic step decides between two racing tasks.
//! - complete and release: Lua scripts that change the entry only while it is still the
//!   caller's running entry, so a request whose lease ended cannot overwrite the entry of
//!   the request that claimed the key after it.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, Script, TlsCertificates};
use secrecy::ExposeSecret;

use super::{Entry, StoreError};
use crate::config::{ConfigError, RedisSettings};

/// Replaces KEYS[1] with ARGV[2] for ARGV[3] ms while it holds ARGV[1]; 1 if it did.
const COMPLETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 1
end
return 0";

/// Deletes KEYS[1] while it holds ARGV[1].
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0";

pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    complete: Script,
    release: Script,
}

impl RedisStore {
    /// Makes the client; the connection opens on first use, so a Redis that is down at
    /// startup fails keyed requests (per `on_store_error`), not the service.
    ///
    /// # Errors
    /// [`ConfigError`] when the address does not parse or the connection cannot be set up.
    pub fn new(settings: &RedisSettings) -> Result<RedisStore, ConfigError> {
        let invalid = |e: redis::RedisError| {
            // The URL is not quoted: it may carry what was meant for the token.
            ConfigError::invalid(
                "idempotency.redis",
                format!("not a usable address ({:?})", e.kind()),
            )
        };
        let info = match (&settings.url, &settings.host) {
            (Some(url), _) => url.as_str().into_connection_info().map_err(invalid)?,
            (None, Some(host)) => {
                let addr = if settings.tls {
                    ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port: settings.port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host.clone(), settings.port)
                };
                addr.into_connection_info().map_err(invalid)?
            }
            (None, None) => {
                return Err(ConfigError::invalid(
                    "idempotency.redis.url",
                    "required with idempotency.store = \"redis\"",
                ))
            }
        };
        let mut redis_settings = info.redis_settings().clone();
        if let Some(username) = &settings.username {
            redis_settings = redis_settings.set_username(username);
        }
        if let Some(token) = &settings.auth_token {
            redis_settings = redis_settings.set_password(token.expose_secret());
        }
        let info = info.set_redis_settings(redis_settings);
        let client = match &settings.ca_file {
            None => Client::open(info),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    ConfigError::invalid(
                        "idempotency.redis.ca_file",
                        format!("{} is not a readable file: {e}", path.display()),
                    )
                })?;
                let certificates = TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                Client::build_with_tls(info, certificates)
            }
        }
        .map_err(invalid)?;
        let timeout = Duration::from_millis(settings.timeout_ms);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // Reconnection is retried in the background on the next call; a call never
            // waits for more than `timeout` anyway.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(invalid)?;
        Ok(RedisStore {
            connection,
            prefix: settings.key_prefix.clone(),
            timeout,
            complete: Script::new(COMPLETE),
            release: Script::new(RELEASE),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs one call within the timeout.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError(format!("Redis: {e}"))),
            Err(_) => Err(StoreError(format!(
                "Redis did not answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    pub(super) async fn claim(
        &self,
        name: &str,
        running: &Entry,
        lease: Duration,
    ) -> Result<Option<Entry>, StoreError> {
        let key = self.key(name);
        let value = text(running);
        let mut connection = self.connection.clone();
        // The entry that refused the claim may expire before it is read: claim again then.
        for _ in 0..3 {
            let set: Option<String> = self
                .bounded(
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&value)
                        .arg("NX")
                        .arg("PX")
                        .arg(millis(lease))
                        .query_async(&mut connection),
                )
                .await?;
            if set.is_some() {
                return Ok(None);
            }
            let held: Option<String> = self
                .bounded(redis::cmd("GET").arg(&key).query_async(&mut connection))
                .await?;
            if let Some(held) = held {
                return serde_json::from_str(&held)
                    .map(Some)
                    .map_err(|e| StoreError(format!("an unreadable entry in Redis: {e}")));
            }
        }
        Err(StoreError(
            "the key's entry kept expiring while it was claimed".into(),
        ))
    }

    pub(super) async fn complete(
        &self,
        name: &str,
        running: &Entry,
        done: &Entry,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let replaced: i64 = self
            .bounded(
                self.complete
                    .key(self.key(name))
                    .arg(text(running))
                    .arg(text(done))
                    .arg(millis(ttl))
                    .invoke_async(&mut connection),
            )
            .await?;
        Ok(replaced == 1)
    }

    pub(super) async fn release(&self, name: &str, running: &Entry) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: i64 = self
            .bounded(
                self.release
                    .key(self.key(name))
                    .arg(text(running))
                    .invoke_async(&mut connection),
            )
            .await?;
        Ok(())
    }
}

fn text(entry: &Entry) -> String {
    serde_json::to_string(entry).expect("entries serialize")
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
