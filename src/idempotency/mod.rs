//! Safe retries: the `Idempotency-Key` request header (IETF
//! `draft-ietf-httpapi-idempotency-key-header`).
//!
//! A key scopes a request to (principal, method, route, topic). The first request with a
//! key claims it in the store for a lease ([`Idempotency::begin`]), runs, and then either
//! keeps its outcome for `idempotency.ttl_ms` (when at least one record was written) or
//! gives the key back (nothing was written: the retry must run for real)
//! ([`Claim::settle`]). A later request with the same key gets:
//!
//! - the stored status, body and `Content-Type` when its fingerprint (SHA-256 over method,
//!   path, `Content-Type` and body) is the first one's: nothing is produced again;
//! - a refusal (422) when the fingerprint differs: the key was used for another request;
//! - a refusal (409, `Retry-After`) while the first one still runs.
//!
//! The claim is one atomic step in each store (`SET NX PX` in Redis), so two tasks racing
//! on one key cannot both produce. What is left: a task that dies mid-request leaves its
//! key claimed until the lease ends, and a retry after that produces again, duplicating
//! whatever the dead task had written.

mod memory;
mod redis;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, IdempotencySettings, OnStoreError, StoreKind};
use crate::metrics::Metrics;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The response header of a replayed outcome.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// The response header of a keyed request that ran without the guarantee
/// (`on_store_error = "proceed"`), or whose outcome could not be kept.
pub const STORE_HEADER: &str = "idempotency-store";

/// A valid `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// Why an `Idempotency-Key` header is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("The Idempotency-Key header must be 1 to 255 visible ASCII characters.")]
    Malformed,
    #[error("Send the Idempotency-Key header only once.")]
    Repeated,
    #[error("This principal must send an Idempotency-Key header with each produce request.")]
    Required,
    #[error(
        "Idempotency-Key is not supported on a stream of records; send the records with \
         POST .../records:batch or API v2 to retry them safely."
    )]
    NotOnStreams,
    #[error(
        "This principal must produce with an Idempotency-Key, which a stream of records cannot \
         carry; use POST .../records:batch or API v2."
    )]
    RequiredNotOnStreams,
}

impl IdempotencyKey {
    /// Reads the header's values: none is `None`, more than one is refused. The draft's
    /// key is a Structured Field string (`"..."`); a bare token is taken as well, as the
    /// clients in the wild send it. Quotes, when present, are not part of the key.
    ///
    /// # Errors
    /// [`KeyError`] when the value is empty, too long, not visible ASCII, or repeated.
    pub fn from_values<'a>(
        mut values: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Option<IdempotencyKey>, KeyError> {
        let Some(raw) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(KeyError::Repeated);
        }
        let inner = match raw {
            [b'"', inner @ .., b'"'] => inner,
            other => other,
        };
        let visible = |b: &u8| (0x21..=0x7e).contains(b);
        if inner.is_empty() || inner.len() > 255 || !inner.iter().all(visible) {
            return Err(KeyError::Malformed);
        }
        let key = std::str::from_utf8(inner).expect("visible ASCII is UTF-8");
        Ok(Some(IdempotencyKey(key.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short, stable, non-reversible name of the key for logs: the first 16 hex digits
    /// of its SHA-256.
    pub fn log_name(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))[..16].to_owned()
    }
}

/// What a key is scoped to: keys of different principals, routes or topics never meet.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The principal's qualified id, or the client address without authentication.
    pub caller: &'a str,
    pub method: &'a str,
    /// The route template (`/topics/{topic}`).
    pub route: &'a str,
    pub topic: &'a str,
}

impl Scope<'_> {
    /// The store's name for `key` in this scope: a hash, so no partner data (nor the key)
    /// is written to the store in clear and every name has the same length.
    fn entry_name(&self, key: &IdempotencyKey) -> String {
        let mut hash = Sha256::new();
        for part in [
            self.caller,
            self.method,
            self.route,
            self.topic,
            key.as_str(),
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        hex(&hash.finalize())
    }
}

/// SHA-256 over method, path, `Content-Type` and body, in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn of(method: &str, path: &str, content_type: Option<&[u8]>, body: &[u8]) -> Self {
        let mut hash = Sha256::new();
        let content_type = content_type.unwrap_or_default();
        for part in [method.as_bytes(), path.as_bytes(), content_type, body] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        Fingerprint(hex(&hash.finalize()))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    #[serde(with = "body_text")]
    pub body: Vec<u8>,
}

/// Bodies are JSON text in practice; kept as base64 so any bytes survive.
mod body_text {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(body))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// What the store holds under a key's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Entry {
    /// A request holds the key; `token` names that request, so only it can settle it.
    Running {
        fingerprint: Fingerprint,
        token: String,
    },
    /// The outcome of the request that held the key.
    Done {
        fingerprint: Fingerprint,
        response: StoredResponse,
    },
}

impl Entry {
    fn fingerprint(&self) -> &Fingerprint {
        match self {
            Entry::Running { fingerprint, .. } | Entry::Done { fingerprint, .. } => fingerprint,
        }
    }

    /// Bytes the entry takes in the memory store, its name excepted: what it holds plus
    /// what holding it costs (the cache's own node, timer and deque entries, the `Arc`, the
    /// allocations' headers). [`ENTRY_OVERHEAD`] was measured (memory.rs, `bytes_per_entry`).
    fn weight(&self) -> usize {
        ENTRY_OVERHEAD
            + match self {
                Entry::Running { .. } => 0,
                Entry::Done { response, .. } => {
                    response.body.len() + response.content_type.as_ref().map_or(0, String::len)
                }
            }
    }
}

/// The memory store's cost of an entry beyond its name, body and `Content-Type`, in bytes:
/// 200,000 entries of 120-byte bodies took 958 bytes each of resident memory (glibc, x86_64),
/// 213 of them name, body and type.
const ENTRY_OVERHEAD: usize = 760;

/// The store cannot be reached, timed out, or answered something unreadable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Where entries are kept.
pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl Store {
    /// Puts `entry` (a [`Entry::Running`]) under `name` for `lease`, unless the name holds
    /// something: then that is returned and nothing changes. One atomic step.
    async fn claim(
        &self,
        name: &str,
        entry: &Entry,
        lease: Duration,
    ) -> Result<Option<Entry>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.claim(name, entry)),
            Store::Redis(r) => r.claim(name, entry, lease).await,
        }
    }

    /// Replaces the running entry of `token` with `done` for `ttl`; false when the name no
    /// longer holds that entry (the lease ended).
    async fn complete(
        &self,
        name: &str,
        running: &Entry,
        done: &Entry,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.complete(name, running, done)),
            Store::Redis(r) => r.complete(name, running, done, ttl).await,
        }
    }

    /// Removes the running entry of `token`, if it is still there.
    async fn release(&self, name: &str, running: &Entry) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.release(name, running);
                Ok(())
            }
            Store::Redis(r) => r.release(name, running).await,
        }
    }
}

/// What a keyed request does next.
pub enum Begin {
    /// It holds the key: run, then [`Claim::settle`].
    Claimed(Claim),
    /// An earlier request with this key and fingerprint ran: answer its outcome.
    Replay(StoredResponse),
    /// The store is unreachable and `on_store_error = "proceed"`: run without the guarantee.
    Unguarded,
}

/// Why a keyed request is refused before it runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "This Idempotency-Key was already used for a different request (another body, path or \
         Content-Type); use a new key for a new request."
    )]
    Mismatch,
    #[error(
        "A request with this Idempotency-Key is still being processed; retry after it completes."
    )]
    InProgress,
    #[error("The idempotency store is unavailable; retry the request.")]
    StoreUnavailable,
}

/// The key-holding request's right to settle it.
pub struct Claim {
    service: Arc<Idempotency>,
    name: String,
    running: Entry,
}

impl Claim {
    /// Keeps `outcome` for replay when at least one record was written (`Some`), else gives
    /// the key back so that a retry runs for real. Returns false when the outcome could not
    /// be kept (the store failed, or the lease had ended): the key then stays held until
    /// its lease ends, and the caller should say the guarantee was not kept.
    pub async fn settle(self, outcome: Option<StoredResponse>) -> bool {
        let service = &self.service;
        match outcome {
            Some(response) => {
                let done = Entry::Done {
                    fingerprint: self.running.fingerprint().clone(),
                    response,
                };
                let call = service
                    .store
                    .complete(&self.name, &self.running, &done, service.ttl);
                match service.timed("complete", call).await {
                    Ok(true) => {
                        service.count_settled("stored");
                        true
                    }
                    Ok(false) => {
                        tracing::warn!(
                            "the idempotency lease ended before the request did: its outcome \
                             is not kept"
                        );
                        service.count_settled("lease_lost");
                        false
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the idempotency store failed to keep an outcome");
                        service.count_settled("store_failed");
                        false
                    }
                }
            }
            None => {
                let call = service.store.release(&self.name, &self.running);
                match service.timed("release", call).await {
                    Ok(()) => {
                        service.count_settled("released");
                        true
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the idempotency store failed to release a key");
                        service.count_settled("store_failed");
                        false
                    }
                }
            }
        }
    }
}

/// The idempotency service: the store and its settings.
pub struct Idempotency {
    store: Store,
    ttl: Duration,
    lease: Duration,
    on_store_error: OnStoreError,
    record_header: Option<String>,
    metrics: Arc<Metrics>,
}

impl Idempotency {
    /// # Errors
    /// [`ConfigError`] when the Redis settings do not make a client.
    pub fn new(
        settings: &IdempotencySettings,
        metrics: Arc<Metrics>,
    ) -> Result<Idempotency, ConfigError> {
        let store = match settings.store {
            StoreKind::Memory => Store::Memory(MemoryStore::new(
                settings.memory_max_bytes,
                Duration::from_millis(settings.lease_ms),
                Duration::from_millis(settings.ttl_ms),
                metrics.idempotency_evictions.clone(),
            )),
            StoreKind::Redis => Store::Redis(RedisStore::new(&settings.redis)?),
        };
        Ok(Idempotency {
            store,
            ttl: Duration::from_millis(settings.ttl_ms),
            lease: Duration::from_millis(settings.lease_ms),
            on_store_error: settings.on_store_error,
            record_header: settings.record_header.clone(),
            metrics,
        })
    }

    /// `idempotency.record_header`: the record header that carries the key, when set.
    pub fn record_header(&self) -> Option<&str> {
        self.record_header.as_deref()
    }

    /// Claims `key` in `scope` for a request with `fingerprint`, or says why not.
    ///
    /// # Errors
    /// [`Refusal`]: the key was used for another request, is held by a running one, or
    /// the store is unavailable with `on_store_error = "reject"`.
    pub async fn begin(
        self: &Arc<Self>,
        scope: Scope<'_>,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
    ) -> Result<Begin, Refusal> {
        let name = scope.entry_name(key);
        let running = Entry::Running {
            fingerprint,
            token: uuid::Uuid::new_v4().simple().to_string(),
        };
        let claimed = self
            .timed("claim", self.store.claim(&name, &running, self.lease))
            .await;
        let outcome = match claimed {
            Ok(None) => Ok(Begin::Claimed(Claim {
                service: Arc::clone(self),
                name,
                running,
            })),
            Ok(Some(held)) if held.fingerprint() != running.fingerprint() => Err(Refusal::Mismatch),
            Ok(Some(Entry::Running { .. })) => Err(Refusal::InProgress),
            Ok(Some(Entry::Done { response, .. })) => Ok(Begin::Replay(response)),
            Err(error) => {
                tracing::warn!(%error, "the idempotency store is unavailable");
                match self.on_store_error {
                    OnStoreError::Reject => Err(Refusal::StoreUnavailable),
                    OnStoreError::Proceed => Ok(Begin::Unguarded),
                }
            }
        };
        let label = match &outcome {
            Ok(Begin::Claimed(_)) => "first",
            Ok(Begin::Replay(_)) => "replayed",
            Ok(Begin::Unguarded) => "unguarded",
            Err(Refusal::Mismatch) => "mismatch",
            Err(Refusal::InProgress) => "conflict",
            Err(Refusal::StoreUnavailable) => "store_unavailable",
        };
        self.metrics
            .idempotency_requests
            .with_label_values(&[label])
            .inc();
        outcome
    }

    /// Runs one store call, timing it and counting its failure.
    async fn timed<T>(
        &self,
        operation: &str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .idempotency_store_duration
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.metrics
                .idempotency_store_errors
                .with_label_values(&[operation])
                .inc();
        }
        result
    }

    fn count_settled(&self, result: &str) {
        self.metrics
            .idempotency_settled
            .with_label_values(&[result])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &[u8]) -> Result<Option<IdempotencyKey>, KeyError> {
        IdempotencyKey::from_values([raw].into_iter())
    }

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert_eq!(key(b"a").unwrap().unwrap().as_str(), "a");
        assert_eq!(
            key(b"\"8e03978e-40d5\"").unwrap().unwrap().as_str(),
            "8e03978e-40d5"
        );
        let longest = vec![b'k'; 255];
        assert!(key(&longest).unwrap().is_some());
        for bad in [
            &b""[..],
            b"\"\"",
            &[b'k'; 256],
            b"with space",
            b"tab\there",
            "caf\u{e9}".as_bytes(),
            b"nul\0",
        ] {
            assert_eq!(key(bad), Err(KeyError::Malformed), "{bad:?}");
        }
        let none: [&[u8]; 0] = [];
        assert_eq!(IdempotencyKey::from_values(none.into_iter()), Ok(None));
        let twice: [&[u8]; 2] = [b"a", b"b"];
        assert_eq!(
            IdempotencyKey::from_values(twice.into_iter()),
            Err(KeyError::Repeated)
        );
    }

    #[test]
    fn scopes_and_fingerprints_separate_their_parts() {
        let k = key(b"k1").unwrap().unwrap();
        let scope = |caller, topic| Scope {
            caller,
            method: "POST",
            route: "/topics/{topic}",
            topic,
        };
        let a = scope("api_key:a", "orders").entry_name(&k);
        assert_eq!(a, scope("api_key:a", "orders").entry_name(&k));
        assert_ne!(a, scope("api_key:b", "orders").entry_name(&k));
        assert_ne!(a, scope("api_key:a", "orders2").entry_name(&k));
        // Length prefixes: moving a character from one part to the next changes the name.
        assert_ne!(
            scope("api_key:ab", "c").entry_name(&k),
            scope("api_key:a", "bc").entry_name(&k)
        );
        let f = |ct: Option<&[u8]>, body: &[u8]| Fingerprint::of("POST", "/topics/t", ct, body);
        let json = Some(&b"application/vnd.kafka.json.v2+json"[..]);
        assert_eq!(f(json, b"{}"), f(json, b"{}"));
        assert_ne!(f(json, b"{}"), f(json, b"{} "));
        assert_ne!(f(json, b"{}"), f(None, b"{}"));
        assert_ne!(
            Fingerprint::of("POST", "/topics/t", json, b"{}"),
            Fingerprint::of("POST", "/topics/u", json, b"{}")
        );
    }

    #[test]
    fn entries_survive_their_text_form() {
        let done = Entry::Done {
            fingerprint: Fingerprint("ab".into()),
            response: StoredResponse {
                status: 200,
                content_type: Some("application/json".into()),
                body: b"{\"offsets\":[]}\xff".to_vec(),
            },
        };
        let text = serde_json::to_string(&done).unwrap();
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), done);
    }
}
