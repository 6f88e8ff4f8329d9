//! The shared producer: topic lookups through the metadata cache, ordered enqueueing with a
//! bounded wait for queue space, per-record delivery results, flushing on shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;

use super::client_config::producer_config;
use super::context::ProxyContext;
use super::delivery::{Batch, Opaque};
use super::dev::DevCluster;
use super::health::Health;
use super::metadata::{
    self, Cached, ClusterMetadata, MetadataCache, MetadataError, Producer, TopicMetadata,
};
use crate::config::Settings;
use crate::domain::{Partition, Record, TopicName};
use crate::metrics::Metrics;

/// Where Kafka stored a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// Why one record was not written. The message is what the partner reads in `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    /// Worth retrying: timeouts, leader elections, too few in-sync replicas.
    #[error("{0}")]
    Retriable(String),
    #[error("{0}")]
    NonRetriable(String),
    /// The local queue stayed full for the whole bounded wait.
    #[error("The producer's queue is full; retry later.")]
    QueueFull,
    #[error("Kafka authentication failed: {0}")]
    Authentication(String),
    #[error("Not authorized to write to the topic: {0}")]
    Authorization(String),
    #[error("Topic not found.")]
    UnknownTopic,
    #[error("Partition not found.")]
    UnknownPartition,
}

impl ProduceError {
    pub(super) fn from_kafka(error: &KafkaError) -> ProduceError {
        let Some(code) = error.rdkafka_error_code() else {
            return ProduceError::NonRetriable(error.to_string());
        };
        use RDKafkaErrorCode as C;
        match code {
            C::QueueFull => ProduceError::QueueFull,
            C::Authentication | C::SaslAuthenticationFailed => {
                ProduceError::Authentication(code.to_string())
            }
            C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed => {
                ProduceError::Authorization(code.to_string())
            }
            C::UnknownTopic | C::UnknownTopicOrPartition => ProduceError::UnknownTopic,
            C::UnknownPartition => ProduceError::UnknownPartition,
            C::MessageTimedOut
            | C::OperationTimedOut
            | C::RequestTimedOut
            | C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::NetworkException
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::BrokerNotAvailable
            | C::ReplicaNotAvailable
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::KafkaStorageError
            | C::FencedLeaderEpoch
            | C::UnknownLeaderEpoch
            | C::PurgeQueue
            | C::PurgeInflight => ProduceError::Retriable(code.to_string()),
            _ => ProduceError::NonRetriable(code.to_string()),
        }
    }
}

/// Why the producer could not be created.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("cannot start the embedded dev cluster: {0}")]
    DevCluster(String),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] KafkaError),
}

/// The service's one connection to Kafka.
pub struct Kafka {
    producer: Arc<Producer>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    cache: MetadataCache,
    dev: Option<DevCluster>,
    queue_full_wait: Duration,
    metadata_timeout: Duration,
    unknown_topic_ttl: Duration,
    refresh_interval: Duration,
}

impl Kafka {
    /// Creates the producer for the configured cluster, or for a fresh embedded dev cluster
    /// when no bootstrap servers are configured.
    ///
    /// # Errors
    /// When librdkafka rejects the configuration or the dev cluster cannot start.
    pub fn connect(settings: &Settings, metrics: Arc<Metrics>) -> Result<Kafka, KafkaSetupError> {
        let dev = match &settings.kafka.bootstrap_servers {
            Some(_) => None,
            None => Some(
                DevCluster::start(settings.dev.brokers, settings.dev.topic_partitions)
                    .map_err(KafkaSetupError::DevCluster)?,
            ),
        };
        let bootstrap = match (&dev, &settings.kafka.bootstrap_servers) {
            (Some(dev), _) => dev.bootstrap_servers().to_owned(),
            (None, Some(servers)) => servers.clone(),
            (None, None) => unreachable!("either a dev cluster or bootstrap servers"),
        };
        let health = Arc::new(Health::default());
        let producer: Producer = producer_config(
            &settings.kafka,
            &bootstrap,
            settings.metrics.statistics_interval_ms,
        )
        .create_with_context(ProxyContext {
            health: Arc::clone(&health),
            metrics: Arc::clone(&metrics),
        })?;
        Ok(Kafka {
            producer: Arc::new(producer),
            health,
            metrics,
            cache: MetadataCache::default(),
            dev,
            queue_full_wait: Duration::from_millis(settings.kafka.queue_full_wait_ms),
            metadata_timeout: Duration::from_millis(settings.metadata.request_timeout_ms),
            unknown_topic_ttl: Duration::from_millis(settings.metadata.unknown_topic_ttl_ms),
            refresh_interval: Duration::from_millis(settings.metadata.refresh_interval_ms),
        })
    }

    /// True when running against the embedded dev cluster.
    pub fn is_dev_cluster(&self) -> bool {
        self.dev.is_some()
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The topic's metadata, checking that `partition` (when given) exists.
    ///
    /// Served from the cache; a miss, or a partition beyond the cached count, asks the
    /// cluster once. Unknown topics are remembered for `unknown_topic_ttl_ms` so that a
    /// partner retrying a typo does not turn into a metadata request per call.
    ///
    /// # Errors
    /// [`MetadataError`]: unknown topic or partition, or why the cluster could not answer.
    pub async fn topic(
        &self,
        name: &TopicName,
        partition: Option<Partition>,
    ) -> Result<Arc<TopicMetadata>, MetadataError> {
        self.fail_fast()?;
        let has = |t: &TopicMetadata| partition.is_none_or(|p| t.partition(p.id()).is_some());
        match self.cache.get(name.as_str()) {
            Cached::Known { topic, .. } if has(&topic) => return Ok(topic),
            Cached::Known { age, .. } if age < self.unknown_topic_ttl => {
                return Err(MetadataError::UnknownPartition)
            }
            Cached::Unknown { age } if age < self.unknown_topic_ttl => {
                return Err(MetadataError::UnknownTopic)
            }
            _ => {}
        }
        let topic = self.refresh_topic(name).await?;
        if has(&topic) {
            Ok(topic)
        } else {
            Err(MetadataError::UnknownPartition)
        }
    }

    async fn refresh_topic(&self, name: &TopicName) -> Result<Arc<TopicMetadata>, MetadataError> {
        match self.fetch_topic(name).await? {
            Some(topic) => Ok(self.cache.put_known(topic)),
            None => match &self.dev {
                Some(dev) => {
                    dev.create_topic(name.as_str())
                        .await
                        .map_err(MetadataError::Unavailable)?;
                    tracing::info!(
                        topic = %name,
                        partitions = dev.topic_partitions(),
                        "created topic in the dev cluster"
                    );
                    match self.fetch_topic(name).await? {
                        Some(topic) => Ok(self.cache.put_known(topic)),
                        None => Err(MetadataError::Unavailable(
                            "the dev cluster did not create the topic".into(),
                        )),
                    }
                }
                None => {
                    self.cache.put_unknown(name.as_str());
                    Err(MetadataError::UnknownTopic)
                }
            },
        }
    }

    /// `Ok(None)` when the cluster says the topic does not exist.
    async fn fetch_topic(&self, name: &TopicName) -> Result<Option<TopicMetadata>, MetadataError> {
        let fetched = metadata::fetch(&self.producer, Some(name.as_str()), self.metadata_timeout)
            .await
            .map_err(|e| self.unavailable(e))?;
        let found = fetched.topics.into_iter().find(|(n, _)| n == name.as_str());
        match found.map(|(_, result)| result) {
            Some(Ok(topic)) => Ok(Some(topic)),
            Some(Err(
                RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic,
            ))
            | None => Ok(None),
            Some(Err(RDKafkaErrorCode::TopicAuthorizationFailed)) => {
                Err(MetadataError::Authorization(
                    RDKafkaErrorCode::TopicAuthorizationFailed.to_string(),
                ))
            }
            Some(Err(code)) => Err(MetadataError::Unavailable(code.to_string())),
        }
    }

    /// Brokers and all topics, straight from the cluster (for the metadata endpoints).
    ///
    /// # Errors
    /// Why the cluster could not answer.
    pub async fn cluster(&self) -> Result<ClusterMetadata, MetadataError> {
        self.fail_fast()?;
        let fetched = metadata::fetch(&self.producer, None, self.metadata_timeout)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(ClusterMetadata {
            brokers: fetched.brokers,
            topics: fetched
                .topics
                .into_iter()
                .filter_map(|(_, t)| t.ok())
                .collect(),
        })
    }

    /// Fails at once when the producer is known to be unusable, instead of letting the
    /// partner wait for a timeout.
    fn fail_fast(&self) -> Result<(), MetadataError> {
        if let Some(reason) = self.health.fatal() {
            return Err(MetadataError::Fatal(reason));
        }
        if let Some(reason) = self.health.authentication_failure() {
            return Err(MetadataError::Authentication(reason));
        }
        Ok(())
    }

    fn unavailable(&self, error: String) -> MetadataError {
        match self.health.authentication_failure() {
            Some(reason) => MetadataError::Authentication(reason),
            None => MetadataError::Unavailable(error),
        }
    }

    /// Produces `records` to `topic`, in order, and waits for every delivery report.
    ///
    /// Records are enqueued in request order; when the local queue is full the request waits
    /// up to `queue_full_wait_ms` for room, and the records still not enqueued then fail with
    /// [`ProduceError::QueueFull`]. The result has one entry per record, in order.
    pub async fn produce(
        &self,
        topic: &TopicName,
        records: &[Record],
        timestamp_ms: i64,
    ) -> Vec<Result<Delivered, ProduceError>> {
        if let Err(e) = self.fail_fast() {
            let error = match e {
                MetadataError::Authentication(reason) => ProduceError::Authentication(reason),
                other => ProduceError::NonRetriable(other.to_string()),
            };
            return vec![Err(error); records.len()];
        }
        let deadline = Instant::now() + self.queue_full_wait;
        let (batch, all_done) = Batch::new(records.len());
        for (index, record) in records.iter().enumerate() {
            let opaque: Opaque = Box::new((Arc::clone(&batch), index));
            if let Err(error) = self
                .enqueue(topic, record, timestamp_ms, deadline, opaque)
                .await
            {
                batch.complete(index, Err(error));
            }
        }
        // The sender lives in the batch, which librdkafka's opaques keep alive until every
        // record is reported: the wait ends with the last report.
        let _ = all_done.await;
        batch.outcomes()
    }

    /// Hands one record to librdkafka, waiting (until `deadline`) while its queue is full.
    async fn enqueue(
        &self,
        topic: &TopicName,
        record: &Record,
        timestamp_ms: i64,
        deadline: Instant,
        opaque: Opaque,
    ) -> Result<(), ProduceError> {
        let mut base_record =
            BaseRecord::<[u8], [u8], Opaque>::with_opaque_to(topic.as_str(), opaque)
                .timestamp(timestamp_ms);
        if let Some(key) = &record.key {
            base_record = base_record.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            base_record = base_record.payload(value.as_slice());
        }
        if let Some(partition) = record.partition {
            base_record = base_record.partition(partition.id());
        }
        loop {
            match self.producer.send(base_record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    base_record = back;
                    tokio::time::sleep(QUEUE_FULL_POLL).await;
                }
                Err((error, _)) => return Err(ProduceError::from_kafka(&error)),
            }
        }
    }

    /// Runs the periodic metadata probe until the future is dropped: it decides readiness
    /// and refreshes the topic cache. Runs sooner when the error callback asks for it.
    pub async fn run_probe(self: Arc<Self>) {
        loop {
            self.probe().await;
            tokio::select! {
                () = tokio::time::sleep(self.refresh_interval) => {}
                () = self.health.probe_requested() => {
                    // A burst of callbacks (one per broker) needs one probe, not many.
                    tokio::time::sleep(PROBE_DEBOUNCE).await;
                }
            }
        }
    }

    async fn probe(&self) {
        match metadata::fetch(&self.producer, None, self.metadata_timeout).await {
            Ok(fetched) => {
                let topics = fetched
                    .topics
                    .into_iter()
                    .filter_map(|(_, t)| t.ok())
                    .collect();
                self.cache.replace_all(topics, self.unknown_topic_ttl);
                if self.health.readiness().is_err() {
                    tracing::info!("the Kafka cluster answers metadata requests");
                }
                self.health.probe_succeeded();
            }
            Err(error) => {
                tracing::warn!(%error, "metadata request to the Kafka cluster failed");
                self.health.probe_failed(&error);
            }
        }
        self.metrics
            .kafka_ready
            .set(i64::from(self.health.readiness().is_ok()));
    }

    /// Waits up to `timeout` for every enqueued record to be delivered or to fail.
    ///
    /// # Errors
    /// The number of records still in flight when the deadline passed.
    pub async fn flush(&self, timeout: Duration) -> Result<(), usize> {
        let producer = Arc::clone(&self.producer);
        let result = tokio::task::spawn_blocking(move || {
            let result = producer.flush(timeout);
            (result, producer.in_flight_count())
        })
        .await;
        match result {
            Ok((Ok(()), _)) => Ok(()),
            Ok((Err(_), in_flight)) => Err(usize::try_from(in_flight).unwrap_or(0)),
            Err(_) => Err(0),
        }
    }
}

/// The version of the librdkafka linked in, e.g. `2.12.1`.
pub fn librdkafka_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}

/// How often a request waiting for queue space retries.
const QUEUE_FULL_POLL: Duration = Duration::from_millis(5);
/// Pause after an early probe request, so a burst of callbacks yields one probe.
const PROBE_DEBOUNCE: Duration = Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_are_classified() {
        let classify = |code| ProduceError::from_kafka(&KafkaError::MessageProduction(code));
        assert_eq!(
            classify(RDKafkaErrorCode::QueueFull),
            ProduceError::QueueFull
        );
        assert!(matches!(
            classify(RDKafkaErrorCode::MessageTimedOut),
            ProduceError::Retriable(_)
        ));
        assert!(matches!(
            classify(RDKafkaErrorCode::NotEnoughReplicas),
            ProduceError::Retriable(_)
        ));
        assert!(matches!(
            classify(RDKafkaErrorCode::MessageSizeTooLarge),
            ProduceError::NonRetriable(_)
        ));
        assert!(matches!(
            classify(RDKafkaErrorCode::TopicAuthorizationFailed),
            ProduceError::Authorization(_)
        ));
        assert!(matches!(
            classify(RDKafkaErrorCode::SaslAuthenticationFailed),
            ProduceError::Authentication(_)
        ));
        assert_eq!(
            classify(RDKafkaErrorCode::UnknownPartition),
            ProduceError::UnknownPartition
        );
    }
}
