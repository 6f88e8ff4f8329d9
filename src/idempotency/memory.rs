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

#[cfg(test)]
mod measure {
    use super::super::{Fingerprint, StoredResponse};
    use super::*;

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The weigher's bound is the memory the entries really take: within 15% of the resident
    /// memory 200,000 typical entries add. Measures the whole process's memory, so it runs
    /// alone, on demand: `cargo test --release --lib bytes_per_entry -- --ignored`.
    #[test]
    #[ignore = "measures the process's RSS: run alone"]
    fn bytes_per_entry() {
        let evictions = IntCounter::new("evictions", "test").unwrap();
        let store = MemoryStore::new(
            1 << 40,
            Duration::from_secs(60),
            Duration::from_secs(3600),
            evictions,
        );
        let body = br#"{"offsets":[{"partition":0,"offset":123456,"error_code":null,"error":null}],"key_schema_id":null,"value_schema_id":null}"#;
        let n = 200_000;
        let before = rss_kib();
        for i in 0..n {
            let name = format!("{i:064x}");
            let fingerprint = Fingerprint(format!("{:064x}", i + 1));
            let running = Entry::Running {
                fingerprint: fingerprint.clone(),
                token: format!("{i:032x}"),
            };
            store.claim(&name, &running);
            let done = Entry::Done {
                fingerprint,
                response: StoredResponse {
                    status: 200,
                    content_type: Some("application/vnd.kafka.v2+json".into()),
                    body: body.to_vec(),
                },
            };
            assert!(store.complete(&name, &running, &done));
        }
        store.settle_evictions();
        let measured = (rss_kib() - before) * 1024 / n;
        let weighed = store.entries.weighted_size() / n;
        println!("{measured} bytes/entry resident, {weighed} weighed");
        assert!(
            weighed.abs_diff(measured) * 100 <= measured * 15,
            "{measured} bytes/entry resident, {weighed} weighed"
        );
    }
}
