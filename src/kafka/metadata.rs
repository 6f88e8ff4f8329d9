//! Cluster and topic metadata: owned copies of librdkafka's answers, and the one call that
//! asks the cluster for them.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::metadata::Metadata;
use rdkafka::producer::Producer as _;
use rdkafka::types::RDKafkaErrorCode;

use super::context::Producer;

/// One partition as the cluster describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub id: i32,
    /// Broker id of the leader, -1 when there is none.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub in_sync_replicas: Vec<i32>,
}

/// A topic and its partitions, sorted by partition id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    /// The partition with this id, if the topic has it.
    pub fn partition(&self, id: i32) -> Option<&PartitionMetadata> {
        self.partitions.iter().find(|p| p.id == id)
    }
}

/// One broker as the cluster advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    pub id: i32,
    pub host: String,
    pub port: i32,
}

/// Brokers and the topics that answered without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// The Kafka cluster's own id (the v3 API's `cluster_id`); `None` when the cluster
    /// did not name one.
    pub cluster_id: Option<String>,
    /// Sorted by id.
    pub brokers: Vec<BrokerMetadata>,
    pub topics: Vec<TopicMetadata>,
}

/// What one metadata request returned: the brokers, and each topic or its error.
pub(super) struct Fetched {
    /// Asked for with the listing of all topics only.
    pub cluster_id: Option<String>,
    pub brokers: Vec<BrokerMetadata>,
    pub topics: Vec<(String, Result<TopicMetadata, RDKafkaErrorCode>)>,
}

/// Asks the cluster for metadata of one topic, or of all topics, off the async runtime
/// (librdkafka's call blocks).
pub(super) async fn fetch(
    producer: &Arc<Producer>,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<Fetched, String> {
    let producer = Arc::clone(producer);
    let topic = topic.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let client = producer.client();
        let mut fetched = client
            .fetch_metadata(topic.as_deref(), timeout)
            .map(|m| convert(&m))
            .map_err(|e| match e.rdkafka_error_code() {
                Some(code) => code.to_string(),
                None => e.to_string(),
            })?;
        if topic.is_none() {
            fetched.cluster_id = client.fetch_cluster_id(timeout);
        }
        Ok(fetched)
    })
    .await
    .map_err(|e| format!("metadata task failed: {e}"))?
}

fn convert(metadata: &Metadata) -> Fetched {
    let mut brokers: Vec<BrokerMetadata> = metadata
        .brokers()
        .iter()
        .map(|b| BrokerMetadata {
            id: b.id(),
            host: b.host().to_owned(),
            port: b.port(),
        })
        .collect();
    brokers.sort_unstable_by_key(|b| b.id);
    let topics = metadata
        .topics()
        .iter()
        .map(|t| {
            let result = match t.error() {
                Some(err) => Err(RDKafkaErrorCode::from(err)),
                None => {
                    let mut partitions: Vec<PartitionMetadata> = t
                        .partitions()
                        .iter()
                        .map(|p| PartitionMetadata {
                            id: p.id(),
                            leader: p.leader(),
                            replicas: p.replicas().to_vec(),
                            in_sync_replicas: p.isr().to_vec(),
                        })
                        .collect();
                    partitions.sort_by_key(|p| p.id);
                    Ok(TopicMetadata {
                        name: t.name().to_owned(),
                        partitions,
                    })
                }
            };
            (t.name().to_owned(), result)
        })
        .collect();
    Fetched {
        cluster_id: None,
        brokers,
        topics,
    }
}
