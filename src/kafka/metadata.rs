//! Cluster and topic metadata: owned copies of librdkafka's answers, and the topic cache that
//! gives unknown topics and partitions a fast 404 instead of a delivery timeout.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::metadata::Metadata;
use rdkafka::producer::{Producer as _, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::context::ProxyContext;

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

/// Brokers and the topics that answered without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub brokers: Vec<i32>,
    pub topics: Vec<TopicMetadata>,
}

/// Why topic metadata could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("Topic not found.")]
    UnknownTopic,
    #[error("Partition not found.")]
    UnknownPartition,
    #[error("Kafka authentication failed: {0}")]
    Authentication(String),
    #[error("Not authorized to access the topic: {0}")]
    Authorization(String),
    #[error("No Kafka broker is available: {0}")]
    Unavailable(String),
    #[error("The Kafka producer failed and cannot recover: {0}")]
    Fatal(String),
}

pub(super) type Producer = ThreadedProducer<ProxyContext>;

/// What one metadata request returned: the brokers, and each topic or its error.
pub(super) struct Fetched {
    pub brokers: Vec<i32>,
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
        producer
            .client()
            .fetch_metadata(topic.as_deref(), timeout)
            .map(|m| convert(&m))
            .map_err(|e| match e.rdkafka_error_code() {
                Some(code) => code.to_string(),
                None => e.to_string(),
            })
    })
    .await
    .map_err(|e| format!("metadata task failed: {e}"))?
}

fn convert(metadata: &Metadata) -> Fetched {
    let mut brokers: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
    brokers.sort_unstable();
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
    Fetched { brokers, topics }
}

/// What the cache knows of a topic name.
pub(super) enum Cached {
    Known {
        topic: Arc<TopicMetadata>,
        age: Duration,
    },
    Unknown {
        age: Duration,
    },
    Miss,
}

enum Entry {
    Known {
        topic: Arc<TopicMetadata>,
        at: Instant,
    },
    Unknown {
        at: Instant,
    },
}

/// Topic name to metadata, refreshed on a miss and by the periodic full refresh.
#[derive(Default)]
pub(super) struct MetadataCache {
    entries: RwLock<HashMap<String, Entry>>,
}

impl MetadataCache {
    pub fn get(&self, name: &str) -> Cached {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        match entries.get(name) {
            Some(Entry::Known { topic, at }) => Cached::Known {
                topic: Arc::clone(topic),
                age: at.elapsed(),
            },
            Some(Entry::Unknown { at }) => Cached::Unknown { age: at.elapsed() },
            None => Cached::Miss,
        }
    }

    pub fn put_known(&self, topic: TopicMetadata) -> Arc<TopicMetadata> {
        let topic = Arc::new(topic);
        let entry = Entry::Known {
            topic: Arc::clone(&topic),
            at: Instant::now(),
        };
        self.write().insert(topic.name.clone(), entry);
        topic
    }

    pub fn put_unknown(&self, name: &str) {
        let entry = Entry::Unknown { at: Instant::now() };
        self.write().insert(name.to_owned(), entry);
    }

    /// Replaces the cache with a full listing: new and changed topics are known, deleted
    /// ones are forgotten.
    pub fn replace_all(&self, topics: Vec<TopicMetadata>, unknown_ttl: Duration) {
        let now = Instant::now();
        let mut entries = self.write();
        // Unknown names are kept only while they still answer 40401 by themselves, so that
        // made-up topic names cannot grow the cache without bound.
        entries.retain(|_, e| matches!(e, Entry::Unknown { at } if at.elapsed() < unknown_ttl));
        for topic in topics {
            let name = topic.name.clone();
            entries.insert(
                name,
                Entry::Known {
                    topic: Arc::new(topic),
                    at: now,
                },
            );
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32) -> TopicMetadata {
        TopicMetadata {
            name: name.into(),
            partitions: (0..partitions)
                .map(|id| PartitionMetadata {
                    id,
                    leader: 1,
                    replicas: vec![1],
                    in_sync_replicas: vec![1],
                })
                .collect(),
        }
    }

    #[test]
    fn full_refresh_forgets_deleted_topics_and_keeps_negative_entries() {
        let cache = MetadataCache::default();
        cache.put_known(topic("a", 1));
        cache.put_known(topic("gone", 1));
        cache.put_unknown("typo");
        cache.replace_all(vec![topic("a", 3), topic("b", 1)], Duration::from_secs(60));
        assert!(
            matches!(cache.get("a"), Cached::Known { topic, .. } if topic.partitions.len() == 3)
        );
        assert!(matches!(cache.get("b"), Cached::Known { .. }));
        assert!(matches!(cache.get("gone"), Cached::Miss));
        assert!(matches!(cache.get("typo"), Cached::Unknown { .. }));
        cache.replace_all(Vec::new(), Duration::ZERO);
        assert!(
            matches!(cache.get("typo"), Cached::Miss),
            "stale unknown names go"
        );
    }

    #[test]
    fn partition_lookup() {
        let t = topic("a", 2);
        assert!(t.partition(1).is_some());
        assert!(t.partition(2).is_none());
    }
}
