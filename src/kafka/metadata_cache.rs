//! The topic cache: what the cluster said about each topic name, so that unknown topics and
//! partitions get a fast 404 instead of a delivery timeout and known ones cost no request;
//! and the cluster's id, which every v3 request checks its path against.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::metadata::TopicMetadata;

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

/// Topic name to metadata, refreshed on a miss and by the periodic full refresh; the
/// cluster id as the latest listing named it.
#[derive(Default)]
pub(super) struct MetadataCache {
    entries: RwLock<HashMap<String, Entry>>,
    cluster_id: RwLock<Option<Arc<str>>>,
}

impl MetadataCache {
    /// The cluster id the latest listing named, if any has.
    pub fn cluster_id(&self) -> Option<Arc<str>> {
        self.cluster_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Remembers the id a listing named; a listing that named none leaves the last one.
    pub fn put_cluster_id(&self, id: Option<&str>) {
        let Some(id) = id else { return };
        let mut slot = self.cluster_id.write().unwrap_or_else(|p| p.into_inner());
        if slot.as_deref() != Some(id) {
            *slot = Some(Arc::from(id));
        }
    }

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
    use crate::kafka::metadata::PartitionMetadata;

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
    fn cluster_id_is_kept_until_a_listing_names_another() {
        let cache = MetadataCache::default();
        assert_eq!(cache.cluster_id(), None);
        cache.put_cluster_id(Some("c1"));
        cache.put_cluster_id(None);
        assert_eq!(cache.cluster_id().as_deref(), Some("c1"));
        cache.put_cluster_id(Some("c2"));
        assert_eq!(cache.cluster_id().as_deref(), Some("c2"));
    }

    #[test]
    fn partition_lookup() {
        let t = topic("a", 2);
        assert!(t.partition(1).is_some());
        assert!(t.partition(2).is_none());
    }
}
