//! The façade the service uses: topic lookups through the metadata cache, ordered
//! enqueueing with a bounded wait for queue space, per-record delivery results in request
//! order, flushing on shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;

use super::client_config::producer_config;
use super::context::{Producer, ProxyContext};
use super::delivery::{Deliveries, Opaque};
use super::dev::DevCluster;
use super::health::Health;
use super::metadata::{self, ClusterMetadata, TopicMetadata};
use super::metadata_cache::{Cached, MetadataCache};
use super::outcome::{MetadataError, ProduceError};
use super::watermarks::{self, Watermarks};
use crate::config::Settings;
use crate::domain::{Partition, Record, TopicName};
use crate::metrics::Metrics;

/// Why the producer could not be created.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("cannot start the embedded dev cluster: {0}")]
    DevCluster(String),
    #[error("invalid configuration: kafka.bootstrap_servers: required (or dev.enabled)")]
    NoBootstrapServers,
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
    /// The cluster listing of the metadata endpoints, at most `refresh_interval` old; the
    /// lock makes concurrent misses wait for one request instead of each making one.
    listing: tokio::sync::Mutex<Option<(Instant, Arc<ClusterMetadata>)>>,
}

impl Kafka {
    /// Creates the producer for the configured cluster, or for a fresh embedded dev cluster
    /// when `dev.enabled` asks for one.
    ///
    /// # Errors
    /// When librdkafka rejects the configuration or the dev cluster cannot start.
    pub fn connect(settings: &Settings, metrics: Arc<Metrics>) -> Result<Kafka, KafkaSetupError> {
        let dev = if settings.dev.enabled {
            Some(
                DevCluster::start(settings.dev.brokers, settings.dev.topic_partitions)
                    .map_err(KafkaSetupError::DevCluster)?,
            )
        } else {
            None
        };
        let bootstrap = match (&dev, &settings.kafka.bootstrap_servers) {
            (Some(dev), _) => dev.bootstrap_servers().to_owned(),
            (None, Some(servers)) => servers.clone(),
            (None, None) => return Err(KafkaSetupError::NoBootstrapServers),
        };
        let health = Arc::new(Health::default());
        let producer: Producer = producer_config(
            &settings.kafka,
            &bootstrap,
            settings.metrics.statistics_interval_ms,
        )
        .create_with_context(ProxyContext::new(Arc::clone(&health), Arc::clone(&metrics)))?;
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
            listing: tokio::sync::Mutex::new(None),
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
        self.count_metadata_request("topic");
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

    /// Brokers and all topics, for the metadata endpoints: a listing at most
    /// `metadata.refresh_interval_ms` old, fetched again when older, by one request however
    /// many callers ask at once.
    ///
    /// # Errors
    /// Why the cluster could not answer.
    pub async fn cluster(&self) -> Result<Arc<ClusterMetadata>, MetadataError> {
        self.fail_fast()?;
        let mut listing = self.listing.lock().await;
        if let Some((at, cluster)) = listing.as_ref() {
            if at.elapsed() < self.refresh_interval {
                return Ok(Arc::clone(cluster));
            }
        }
        self.count_metadata_request("listing");
        let fetched = metadata::fetch(&self.producer, None, self.metadata_timeout)
            .await
            .map_err(|e| self.unavailable(e))?;
        self.cache.put_cluster_id(fetched.cluster_id.as_deref());
        let cluster = Arc::new(ClusterMetadata {
            cluster_id: fetched.cluster_id,
            brokers: fetched.brokers,
            topics: fetched
                .topics
                .into_iter()
                .filter_map(|(_, t)| t.ok())
                .collect(),
        });
        *listing = Some((Instant::now(), Arc::clone(&cluster)));
        Ok(cluster)
    }

    /// The Kafka cluster's own id, the v3 API's `cluster_id`: as the latest listing (the
    /// periodic probe's, or [`Kafka::cluster`]'s) named it, so checking a v3 path costs no
    /// request; asks for a listing only before any has named it.
    ///
    /// # Errors
    /// Why the cluster could not answer, or [`MetadataError::NoClusterId`] when it names
    /// no id (a broker older than Metadata v2).
    pub async fn cluster_id(&self) -> Result<Arc<str>, MetadataError> {
        self.fail_fast()?;
        if let Some(id) = self.cache.cluster_id() {
            return Ok(id);
        }
        self.cluster().await?;
        self.cache.cluster_id().ok_or(MetadataError::NoClusterId)
    }

    /// The watermarks of `partition` of `topic` (as [`Kafka::topic`] found it), asked of
    /// the partition's leader on every call (they move with every record), within
    /// `metadata.request_timeout_ms`.
    ///
    /// # Errors
    /// [`MetadataError`]: the topic or partition is gone, the cluster refuses us, or could
    /// not answer in time.
    pub async fn watermarks(
        &self,
        topic: &TopicMetadata,
        partition: Partition,
    ) -> Result<Watermarks, MetadataError> {
        use RDKafkaErrorCode as C;
        self.fail_fast()?;
        self.count_metadata_request("offsets");
        let fetched = watermarks::fetch(
            &self.producer,
            &topic.name,
            partition.id(),
            self.metadata_timeout,
        )
        .await;
        fetched.map_err(|failed| match failed {
            watermarks::Failed::Code(C::UnknownTopicOrPartition | C::UnknownTopic) => {
                MetadataError::UnknownTopic
            }
            watermarks::Failed::Code(C::UnknownPartition) => MetadataError::UnknownPartition,
            watermarks::Failed::Code(
                code @ (C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed),
            ) => MetadataError::Authorization(code.to_string()),
            watermarks::Failed::Code(code @ (C::Authentication | C::SaslAuthenticationFailed)) => {
                MetadataError::Authentication(code.to_string())
            }
            // Timeouts, no leader, brokers down, and whatever else: the cluster did not
            // answer, as a failed metadata request.
            watermarks::Failed::Code(code) => self.unavailable(code.to_string()),
            watermarks::Failed::Other(text) => self.unavailable(text),
        })
    }

    fn count_metadata_request(&self, reason: &str) {
        self.metrics
            .metadata_requests
            .with_label_values(&[reason])
            .inc();
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

    /// Enqueues `records` to `topic`, in order, and returns their outcomes, which arrive in
    /// request order as librdkafka reports them.
    ///
    /// When the local queue is full the request waits up to `queue_full_wait_ms` for room,
    /// and the records still not enqueued then fail with [`ProduceError::QueueFull`]. Once
    /// one record fails to enqueue, every later record of the request fails with the same
    /// error without being enqueued, so a request's records are never reordered.
    /// Records without a timestamp get `default_timestamp_ms`.
    pub async fn produce(
        &self,
        topic: &TopicName,
        records: &[Record],
        default_timestamp_ms: i64,
    ) -> Deliveries {
        if let Err(e) = self.fail_fast() {
            let error = match e {
                MetadataError::Authentication(reason) => ProduceError::Authentication(reason),
                other => ProduceError::NonRetriable(other.to_string()),
            };
            return Deliveries::failed(records.len(), &error);
        }
        let deadline = Instant::now() + self.queue_full_wait;
        let (deliveries, pending) = Deliveries::new(records.len());
        let mut failed: Option<ProduceError> = None;
        for (record, pending) in records.iter().zip(pending) {
            // Once a record could not be enqueued, the rest of the request fails with it:
            // enqueueing a later record would write it before the failed one, reordering
            // records of the same key when the partner retries.
            if let Some(error) = &failed {
                pending.settle(Err(error.clone()));
                continue;
            }
            let timestamp_ms = record.timestamp_ms.unwrap_or(default_timestamp_ms);
            failed = self
                .enqueue(topic, record, timestamp_ms, deadline, Box::new(pending))
                .await
                .err();
        }
        deliveries
    }

    /// Hands one record to librdkafka, waiting (until `deadline`) while its queue is full.
    /// A record that cannot be enqueued is settled with its error at once.
    ///
    /// # Errors
    /// The error the record was settled with, when it could not be enqueued.
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
            base_record = base_record.key(&key[..]);
        }
        if let Some(value) = &record.value {
            base_record = base_record.payload(&value[..]);
        }
        if let Some(partition) = record.partition {
            base_record = base_record.partition(partition.id());
        }
        if !record.headers.is_empty() {
            let headers = record.headers.iter().fold(
                OwnedHeaders::new_with_capacity(record.headers.len()),
                |headers, h| {
                    headers.insert(Header {
                        key: &h.name,
                        value: h.value.as_deref(),
                    })
                },
            );
            base_record = base_record.headers(headers);
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
                Err((error, back)) => {
                    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
                        self.note_fatal();
                    }
                    let error = ProduceError::from_kafka(&error);
                    back.delivery_opaque.settle(Err(error.clone()));
                    return Err(error);
                }
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
        self.note_fatal();
        self.count_metadata_request("probe");
        match metadata::fetch(&self.producer, None, self.metadata_timeout).await {
            Ok(fetched) => {
                self.cache.put_cluster_id(fetched.cluster_id.as_deref());
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

    /// Marks the producer failed in [`Health`] when librdkafka says it failed fatally (an
    /// idempotent producer whose sequence numbers no longer match the broker's, or that the
    /// cluster does not authorize): it then refuses every record, and only a restart helps.
    /// librdkafka's error callback cannot tell (see `ProxyContext::error`), so this asks.
    fn note_fatal(&self) {
        if self.health.fatal().is_some() {
            return;
        }
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            tracing::error!(%code, reason, "the Kafka producer failed fatally");
            self.health.on_fatal_error(&reason);
        }
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
