//! The store of one process: a bounded moka cache whose entries expire after the lease
//! (running) or the time to live (done), and whose compare-and-set steps are moka's atomic
//! entry operations. A retry that reaches another process is not recognized.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::ops::compute::Op;
use moka::sync::Cache;
use moka::Expiry;
use prometheus::IntCounter;

use super::Entry;

/// Each entry lives for its state's time: the lease while running, the time to live once
/// done (counted from when it was done).
struct ByState {
    lease: Duration,
    ttl: Duration,
}

impl ByState {
    fn life(&self, entry: &Entry) -> Duration {
        match entry {
            Entry::Running { .. } => self.lease,
            Entry::Done { .. } => self.ttl,
        }
    }
}

impl Expiry<String, Arc<Entry>> for ByState {
    fn expire_after_create(
        &self,
        _name: &String,
        entry: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(self.life(entry))
    }

    fn expire_after_update(
        &self,
        _name: &String,
        entry: &Arc<Entry>,
        _updated_at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.life(entry))
    }
}

pub struct MemoryStore {
    entries: Cache<String, Arc<Entry>>,
}

impl MemoryStore {
    /// A store of at most `max_bytes` (keys and stored responses); the least recently used
    /// entries are evicted past it, each counted in `evictions`.
    pub fn new(max_bytes: u64, lease: Duration, ttl: Duration, evictions: IntCounter) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|name: &String, entry: &Arc<Entry>| {
                u32::try_from(name.len() + entry.weight()).unwrap_or(u32::MAX)
            })
            .expire_after(ByState { lease, ttl })
            .eviction_listener(move |_name, _entry, cause| {
                if cause == RemovalCause::Size {
                    evictions.inc();
                }
            })
            .build();
        MemoryStore { entries }
    }

    pub(super) fn claim(&self, name: &str, running: &Entry) -> Option<Entry> {
        let entry = self
            .entries
            .entry_by_ref(name)
            .or_insert_with(|| Arc::new(running.clone()));
        if entry.is_fresh() {
            None
        } else {
            Some(Entry::clone(&entry.into_value()))
        }
    }

    pub(super) fn complete(&self, name: &str, running: &Entry, done: &Entry) -> bool {
        let mut replaced = false;
        self.entries
            .entry_by_ref(name)
            .and_compute_with(|held| match held {
                Some(held) if **held.value() == *running => {
                    replaced = true;
                    Op::Put(Arc::new(done.clone()))
                }
                _ => Op::Nop,
            });
        replaced
    }

    pub(super) fn release(&self, name: &str, running: &Entry) {
        self.entries
            .entry_by_ref(name)
            .and_compute_with(|held| match held {
                Some(held) if **held.value() == *running => Op::Remove,
                _ => Op::Nop,
            });
    }

    /// Runs moka's pending maintenance (evictions), for tests that count them.
    #[cfg(test)]
    fn settle_evictions(&self) {
        self.entries.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Fingerprint, StoredResponse};
    use super::*;

    fn running(token: &str) -> Entry {
        Entry::Running {
            fingerprint: Fingerprint("f".into()),
            token: token.into(),
        }
    }

    fn done(body: &[u8]) -> Entry {
        Entry::Done {
            fingerprint: Fingerprint("f".into()),
            response: StoredResponse {
                status: 200,
                content_type: None,
                body: body.to_vec(),
            },
        }
    }

    fn store(max_bytes: u64, lease_ms: u64, ttl_ms: u64) -> (MemoryStore, IntCounter) {
        let evictions = IntCounter::new("evictions", "test").unwrap();
        let store = MemoryStore::new(
            max_bytes,
            Duration::from_millis(lease_ms),
            Duration::from_millis(ttl_ms),
            evictions.clone(),
        );
        (store, evictions)
    }

    #[test]
    fn one_claim_wins_and_only_its_holder_settles_it() {
        let (store, _) = store(1 << 20, 60_000, 60_000);
        assert_eq!(store.claim("k", &running("a")), None);
        assert_eq!(store.claim("k", &running("b")), Some(running("a")));
        assert!(!store.complete("k", &running("b"), &done(b"x")));
        store.release("k", &running("b"));
        assert_eq!(store.claim("k", &running("c")), Some(running("a")));
        assert!(store.complete("k", &running("a"), &done(b"x")));
        assert_eq!(store.claim("k", &running("d")), Some(done(b"x")));
        // A released key can be claimed again.
        assert_eq!(store.claim("r", &running("a")), None);
        store.release("r", &running("a"));
        assert_eq!(store.claim("r", &running("b")), None);
    }

    #[test]
    fn leases_and_outcomes_expire_on_their_own_clocks() {
        let (store, _) = store(1 << 20, 50, 400);
        assert_eq!(store.claim("lease", &running("a")), None);
        assert_eq!(store.claim("kept", &running("a")), None);
        assert!(store.complete("kept", &running("a"), &done(b"x")));
        std::thread::sleep(Duration::from_millis(150));
        // The lease ended: a new request may claim the key; the outcome is still kept.
        assert_eq!(store.claim("lease", &running("b")), None);
        assert_eq!(store.claim("kept", &running("b")), Some(done(b"x")));
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(store.claim("kept", &running("c")), None);
    }

    #[test]
    fn the_store_stays_within_its_bytes_and_counts_evictions() {
        let (store, evictions) = store(10_000, 60_000, 60_000);
        let body = vec![b'x'; 1_000];
        for i in 0..50 {
            let name = format!("k{i}");
            assert_eq!(store.claim(&name, &running("a")), None);
            assert!(store.complete(&name, &running("a"), &done(&body)));
        }
        store.settle_evictions();
        assert!(
            store.entries.weighted_size() <= 10_000,
            "{}",
            store.entries.weighted_size()
        );
        assert!(evictions.get() >= 40, "{}", evictions.get());
    }
}
