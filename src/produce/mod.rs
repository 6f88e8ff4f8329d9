//! The one produce pipeline behind every API. An adapter (v2 today) negotiates, parses and
//! encodes; this runs every step that decides whether and how records reach Kafka, in this
//! order:
//!
//! 1. record limits: records per request, bytes per record (422);
//! 2. validation: per-topic JSON Schemas of json-format records (42203); binary records
//!    refused where a schema applies, unless allowed there (422); records in a Schema
//!    Registry format were checked against their registered schema by their encoder;
//! 3. rate limits (429), charged only for requests that passed the checks above, and before
//!    any call to the cluster;
//! 4. metadata: the topic exists, explicit partitions are in range (404 at once, from the
//!    cache);
//! 5. enqueue, in request order;
//! 6. metrics, as outcomes settle.
//!
//! The result is one outcome per record, in request order, each handed out as soon as that
//! record and every record before it are settled ([`Outcomes`]).

mod outcomes;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::Principal;
use crate::config::ConfigError;
use crate::config::Settings;
use crate::domain::{Record, TopicName};
use crate::error::ApiError;
use crate::formats::EmbeddedFormat;
use crate::kafka::{Kafka, MetadataError};
use crate::limits::{RateLimited, RateLimits, RecordLimitError, RecordLimits};
use crate::metrics::Metrics;
use crate::validation::{BinaryNotValidated, SchemaReport, TopicSchemas};

pub use outcomes::Outcomes;

/// Who is producing: the authenticated principal, else the client address (the rate-limit
/// key without authentication).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub principal: Option<&'a Principal>,
    pub client_ip: Option<IpAddr>,
}

impl<'a> Caller<'a> {
    /// The key of the caller's rate-limit bucket and in-flight byte share: the principal's
    /// qualified id (`api_key:partner-a`), else the client address. The two cannot meet: a
    /// qualified id names its method, an address has only digits, hex and separators.
    pub fn key(&self) -> Cow<'a, str> {
        match self.principal {
            Some(p) => Cow::Borrowed(p.id.as_str()),
            None => Cow::Owned(self.client_ip.map(|ip| ip.to_string()).unwrap_or_default()),
        }
    }
}

/// Records to produce to one topic, already encoded.
#[derive(Debug)]
pub struct ProduceRequest<'a> {
    pub caller: Caller<'a>,
    pub topic: &'a TopicName,
    /// How the partner wrote the records: decides validation, labels the metrics.
    pub format: EmbeddedFormat,
    pub records: Vec<Record>,
}

/// Why a request was refused as a whole; nothing of it was produced.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    RecordLimit(#[from] RecordLimitError),
    #[error("the records do not match the topic's JSON Schema")]
    Invalid(SchemaReport),
    #[error(transparent)]
    BinaryNotValidated(#[from] BinaryNotValidated),
    #[error("the caller's rate limit is exceeded")]
    RateLimited(RateLimited),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

impl From<RateLimited> for Refused {
    fn from(limited: RateLimited) -> Refused {
        Refused::RateLimited(limited)
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> ApiError {
        match refused {
            Refused::RecordLimit(e) => e.into(),
            Refused::Invalid(report) => report.into(),
            Refused::BinaryNotValidated(e) => e.into(),
            Refused::RateLimited(limited) => limited.into(),
            Refused::Metadata(e) => e.into(),
        }
    }
}

/// The pipeline and what its steps need.
pub struct ProduceService {
    kafka: Arc<Kafka>,
    record_limits: RecordLimits,
    schemas: TopicSchemas,
    rate_limits: Arc<RateLimits>,
    metrics: Arc<Metrics>,
}

impl ProduceService {
    /// # Errors
    /// [`ConfigError`] when a configured JSON Schema cannot be loaded.
    pub fn new(
        settings: &Settings,
        kafka: Arc<Kafka>,
        rate_limits: Arc<RateLimits>,
        metrics: Arc<Metrics>,
    ) -> Result<ProduceService, ConfigError> {
        Ok(ProduceService {
            kafka,
            record_limits: RecordLimits::new(&settings.limits),
            schemas: TopicSchemas::new(&settings.validation)?,
            rate_limits,
            metrics,
        })
    }

    /// `limits.max_records_per_request`, for adapters that stop parsing past it.
    pub fn max_records(&self) -> usize {
        self.record_limits.max_records
    }

    /// Runs the pipeline for one request.
    ///
    /// # Errors
    /// [`Refused`] by a step before anything was enqueued.
    pub async fn produce<'a>(
        &'a self,
        request: ProduceRequest<'a>,
    ) -> Result<Outcomes<'a>, Refused> {
        let ProduceRequest {
            caller,
            topic,
            format,
            records,
        } = request;
        self.record_limits.check(&records)?;
        match format {
            EmbeddedFormat::Json => self
                .schemas
                .validate(topic.as_str(), &records)
                .map_err(Refused::Invalid)?,
            EmbeddedFormat::Binary => self.schemas.check_binary(topic.as_str())?,
            // Checked against their registered schema while they were encoded.
            EmbeddedFormat::Avro | EmbeddedFormat::JsonSchema | EmbeddedFormat::Protobuf => {}
        }
        self.charge(caller, &records)?;
        // Partitions are numbered from 0, so checking the highest one named checks them all.
        let highest = records.iter().filter_map(|r| r.partition).max();
        self.kafka.topic(topic, highest).await?;
        let deliveries = self.kafka.produce(topic, &records, now_ms()).await;
        let principal = caller.principal.map(|p| p.id.as_str());
        Ok(Outcomes::new(
            deliveries,
            records,
            &self.metrics,
            topic,
            principal,
            format,
        ))
    }

    /// Charges a metadata request to the caller's rate limits and the global ones, as one
    /// record of no bytes: metadata endpoints cost the cluster too, and are not free to
    /// call in a loop.
    ///
    /// # Errors
    /// [`RateLimited`] when the caller or the service is over its record rate.
    pub fn charge_lookup(&self, caller: Caller<'_>) -> Result<(), RateLimited> {
        self.charge_counts(caller, 1, 0)
    }

    /// Charges the records to the caller's rate limits and the global ones.
    fn charge(&self, caller: Caller<'_>, records: &[Record]) -> Result<(), RateLimited> {
        let bytes: usize = records.iter().map(Record::size_bytes).sum();
        self.charge_counts(caller, records.len(), bytes)
    }

    fn charge_counts(
        &self,
        caller: Caller<'_>,
        records: usize,
        bytes: usize,
    ) -> Result<(), RateLimited> {
        if !self.rate_limits.enabled() {
            return Ok(());
        }
        let scopes = caller.principal.map_or(&[][..], |p| p.scopes.as_slice());
        let key = caller.key();
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.rate_limits
            .check(&key, scopes, clamp(records), clamp(bytes))
            .inspect_err(|limited| {
                self.metrics
                    .rate_limited
                    .with_label_values(&[limited.scope, limited.unit.as_str()])
                    .inc();
            })
    }
}

/// The time of the request: the timestamp of records that carry none.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
