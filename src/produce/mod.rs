//! The one produce pipeline behind every API. An adapter (v2, v3) negotiates, parses and
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
//!
//! Two ways to run it: [`ProduceService::produce`] refuses a request as a whole when a step
//! refuses any of its records (v2: nothing of it is produced); [`ProduceService::produce_each`]
//! runs the same steps on each record, so a refused record gets its own refusal and the
//! others go on (v3: a stream's or a batch's records stand alone) ([`RecordOutcomes`]).

mod outcomes;
mod records;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::Instrument;

use crate::auth::Principal;
use crate::config::ConfigError;
use crate::config::Settings;
use crate::domain::{Header, Record, TopicName};
use crate::error::ApiError;
use crate::formats::EmbeddedFormat;
use crate::kafka::{Kafka, MetadataError};
use crate::limits::{RateLimited, RateLimits, RecordLimitError, RecordLimits};
use crate::metrics::Metrics;
use crate::telemetry::traces;
use crate::validation::{BinaryNotValidated, SchemaReport, TopicSchemas};

pub use outcomes::Outcomes;
pub use records::{RecordFailure, RecordOutcomes};

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

/// Why a request was refused as a whole, or (with [`ProduceService::produce_each`]) one
/// record; nothing of it was produced.
#[derive(Debug, Clone, thiserror::Error)]
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

    /// The metric catalogue, for adapters that count what only they see (open streams).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// `limits.max_records_per_request`, for adapters that stop parsing past it.
    pub fn max_records(&self) -> usize {
        self.record_limits.max_records
    }

    /// Runs the pipeline for one request.
    ///
    /// # Errors
    /// [`Refused`] by a step before anything was enqueued.
    pub async fn produce(&self, request: ProduceRequest<'_>) -> Result<Outcomes, Refused> {
        let ProduceRequest {
            caller,
            topic,
            format,
            records,
        } = request;
        let validate = validate_span(records.len());
        validate
            .in_scope(|| self.check(topic, format, &records))
            .inspect_err(|refused| refused_in(&validate, refused))?;
        drop(validate);
        self.charge(caller, &records)?;
        // Partitions are numbered from 0, so checking the highest one named checks them all.
        let highest = records.iter().filter_map(|r| r.partition).max();
        self.kafka.topic(topic, highest).await?;
        Ok(self.enqueue(caller, topic, format, records).await)
    }

    /// Steps 1 and 2 for a whole request.
    fn check(
        &self,
        topic: &TopicName,
        format: EmbeddedFormat,
        records: &[Record],
    ) -> Result<(), Refused> {
        self.record_limits.check(records)?;
        match format {
            EmbeddedFormat::Json => self
                .schemas
                .validate(topic.as_str(), records)
                .map_err(Refused::Invalid)?,
            EmbeddedFormat::Binary => self.schemas.check_binary(topic.as_str())?,
            // Checked against their registered schema while they were encoded.
            EmbeddedFormat::Avro | EmbeddedFormat::JsonSchema | EmbeddedFormat::Protobuf => {}
        }
        Ok(())
    }

    /// The metadata step on its own, for an adapter that must refuse an unknown topic before
    /// it answers anything (a v3 stream's status line goes out before its records are read).
    ///
    /// # Errors
    /// [`Refused::Metadata`]: the topic does not exist, or the cluster cannot say.
    pub async fn check_topic(&self, topic: &TopicName) -> Result<(), Refused> {
        self.kafka.topic(topic, None).await?;
        Ok(())
    }

    /// Runs the pipeline on each record of `request` on its own: the steps and their order
    /// are [`ProduceService::produce`]'s, but a record that a step refuses (too large, not
    /// matching the topic's JSON Schema, over the rate limit, an unknown partition) gets its
    /// own refusal and the others go on. The rate limit is charged record by record. Records
    /// are numbered in messages from `first_index` (their place in a stream).
    pub async fn produce_each(
        &self,
        request: ProduceRequest<'_>,
        first_index: usize,
    ) -> RecordOutcomes {
        let ProduceRequest {
            caller,
            topic,
            format,
            records,
        } = request;
        let binary_refused = match format {
            EmbeddedFormat::Binary => self.schemas.check_binary(topic.as_str()).err(),
            _ => None,
        };
        let validate = validate_span(records.len());
        let entered = validate.enter();
        let mut refused: Vec<Option<Refused>> = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            let index = first_index + i;
            let check = || -> Result<(), Refused> {
                self.record_limits.check_size(index, record)?;
                if format == EmbeddedFormat::Json {
                    self.schemas
                        .validate(topic.as_str(), std::slice::from_ref(record))
                        .map_err(|mut report| {
                            for violation in &mut report.violations {
                                violation.record = index;
                            }
                            Refused::Invalid(report)
                        })?;
                }
                if let Some(e) = &binary_refused {
                    return Err(e.clone().into());
                }
                self.charge(caller, std::slice::from_ref(record))?;
                Ok(())
            };
            refused.push(check().err());
        }
        drop(entered);
        if let Some(first) = refused.iter().flatten().next() {
            refused_in(&validate, first);
            validate.record(
                "kafka_rest.records_refused",
                refused.iter().flatten().count(),
            );
        }
        drop(validate);
        self.check_partitions(topic, &records, &mut refused).await;
        let mut accepted = Vec::with_capacity(records.len());
        for (record, refusal) in records.into_iter().zip(&refused) {
            if refusal.is_none() {
                accepted.push(record);
            }
        }
        RecordOutcomes::new(refused, self.enqueue(caller, topic, format, accepted).await)
    }

    /// The metadata step of [`ProduceService::produce_each`]: the topic, then each record's
    /// explicit partition. Records already refused are left alone.
    async fn check_partitions(
        &self,
        topic: &TopicName,
        records: &[Record],
        refused: &mut [Option<Refused>],
    ) {
        if refused.iter().all(Option::is_some) {
            return;
        }
        let highest = records
            .iter()
            .zip(refused.iter())
            .filter(|(_, refusal)| refusal.is_none())
            .filter_map(|(record, _)| record.partition)
            .max();
        let known = match self.kafka.topic(topic, highest).await {
            Ok(_) => return,
            // Some partition is out of range: which ones, from the topic as it is.
            Err(MetadataError::UnknownPartition) => self.kafka.topic(topic, None).await,
            Err(e) => Err(e),
        };
        for (record, refusal) in records.iter().zip(refused.iter_mut()) {
            if refusal.is_some() {
                continue;
            }
            *refusal = match &known {
                Ok(metadata) => record
                    .partition
                    .filter(|p| metadata.partition(p.id()).is_none())
                    .map(|_| MetadataError::UnknownPartition.into()),
                Err(e) => Some(e.clone().into()),
            };
        }
    }

    /// The enqueue step: hands the records to Kafka in order and tracks their outcomes.
    async fn enqueue(
        &self,
        caller: Caller<'_>,
        topic: &TopicName,
        format: EmbeddedFormat,
        records: Vec<Record>,
    ) -> Outcomes {
        let mut records = records;
        // A trace's child span (nothing with tracing off), from the hand-over to Kafka to the
        // last acknowledgement: the outcomes hold it. Its traceparent goes into each record.
        let span = traces::child_span!(
            "produce",
            otel.name = %format_args!("send {topic}"),
            otel.kind = "producer",
            otel.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            messaging.system = "kafka",
            messaging.operation.type = "send",
            messaging.operation.name = "send",
            messaging.destination.name = topic.as_str(),
            messaging.batch.message_count = records.len(),
            kafka_rest.format = format.as_str(),
            kafka_rest.records_failed = tracing::field::Empty
        );
        if let Some(name) = traces::record_header() {
            // Unsampled, the request's own span context: there is no produce span.
            let traceparent = traces::traceparent(&span).or_else(traces::current_traceparent);
            if let Some(traceparent) = traceparent {
                add_trace_header(&mut records, name, &traceparent);
            }
        }
        let deliveries = self
            .kafka
            .produce(topic, &records, now_ms())
            .instrument(span.clone())
            .await;
        Outcomes::new(
            deliveries,
            &records,
            Arc::clone(&self.metrics),
            topic.clone(),
            caller.principal.map(|p| p.id.to_string()),
            format,
            span,
        )
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

/// A trace's child span of the checks (nothing with tracing off).
fn validate_span(records: usize) -> tracing::Span {
    traces::child_span!(
        "validate",
        messaging.batch.message_count = records,
        kafka_rest.records_refused = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty
    )
}

/// Marks `span` as failed by `refused`.
fn refused_in(span: &tracing::Span, refused: &Refused) {
    span.record("otel.status_code", "error");
    span.record("otel.status_description", refused.to_string());
}

/// Gives each record the trace header, unless it has one of that name already (a v3
/// partner's own, which is kept as sent).
fn add_trace_header(records: &mut [Record], name: &str, traceparent: &str) {
    for record in records {
        if !record
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
        {
            record.headers.push(Header {
                name: name.to_owned(),
                value: Some(traceparent.as_bytes().to_vec()),
            });
        }
    }
}

/// The time of the request: the timestamp of records that carry none.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
