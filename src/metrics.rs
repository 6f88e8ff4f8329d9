//! Every metric of the service, declared once, named `kafka_rest_<what>_<unit>`.
//!
//! Labels come from bounded sets: route templates (never raw paths), methods, statuses,
//! Confluent error codes, embedded formats, broker ids. Topic and principal labels are only
//! the names an operator listed (`metrics.topics`) or the principals the policy file knows;
//! anything else is counted under `_other`.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The label for topics and principals outside the configured bounded set.
pub const OTHER: &str = "_other";

/// Request-latency buckets: from half a millisecond (a cached 404) to the request timeout.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What librdkafka's statistics say about the producer, reduced to what is exported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProducerStats {
    /// Messages in the producer's local queue, waiting or in flight.
    pub queue_messages: u64,
    /// Bytes of those messages.
    pub queue_bytes: u64,
    /// Configured maximum of `queue_messages`.
    pub queue_max_messages: u64,
    pub brokers: Vec<BrokerStats>,
}

/// One broker's connection statistics (cumulative counters since the client started).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokerStats {
    pub id: i32,
    pub up: bool,
    pub rtt_avg_us: Option<i64>,
    pub rtt_p99_us: Option<i64>,
    pub request_errors: u64,
    pub retries: u64,
    pub request_timeouts: u64,
}

/// The service's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_request_duration: HistogramVec,
    pub http_request_bytes: IntCounterVec,
    pub http_response_bytes: IntCounterVec,
    pub http_requests_in_flight: IntGauge,
    /// API v3 streams open now; they outlive `http_requests_in_flight`, which counts a
    /// request until its response starts.
    pub streams_open: IntGauge,
    /// Records of open API v3 streams read and not yet answered.
    pub stream_records_in_flight: IntGauge,
    pub records_produced: IntCounterVec,
    pub record_bytes: IntCounterVec,
    pub producer_queue_messages: IntGauge,
    pub producer_queue_bytes: IntGauge,
    pub producer_queue_max_messages: IntGauge,
    pub broker_rtt: GaugeVec,
    pub broker_request_errors: IntCounterVec,
    pub broker_retries: IntCounterVec,
    pub broker_request_timeouts: IntCounterVec,
    pub broker_up: IntGaugeVec,
    pub kafka_ready: IntGauge,
    pub metadata_requests: IntCounterVec,
    pub auth_failures: IntCounterVec,
    pub jwt_cache_lookups: IntCounterVec,
    pub policy_denials: IntCounterVec,
    pub policy_reloads: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub shed: IntCounterVec,
    pub schema_registry_requests: IntCounterVec,
    pub schema_registry_request_duration: HistogramVec,
    pub schema_cache_lookups: IntCounterVec,
    pub idempotency_requests: IntCounterVec,
    pub idempotency_settled: IntCounterVec,
    pub idempotency_store_errors: IntCounterVec,
    pub idempotency_store_duration: HistogramVec,
    pub idempotency_evictions: IntCounter,
    pub build_info: IntGaugeVec,
    /// Log lines (application and access log) dropped because the log writer's queue was
    /// full: stdout was not being read fast enough.
    pub log_lines_dropped: IntCounter,
    /// Spans by what became of them (`tracing.enabled`): exported, export_failed (the
    /// collector refused or could not be reached) or dropped_queue_full.
    pub trace_spans: IntCounterVec,
    topics: HashSet<String>,
    /// Replaced when the policy is reloaded.
    principals: RwLock<HashSet<String>>,
    /// Last cumulative broker counters seen, to turn librdkafka's totals into increments.
    broker_totals: Mutex<HashMap<i32, (u64, u64, u64)>>,
}

/// A gauge whose value is read when Prometheus scrapes, from the state it reports on.
struct Sampled {
    gauge: IntGauge,
    read: Box<dyn Fn() -> i64 + Send + Sync>,
}

impl prometheus::core::Collector for Sampled {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.gauge.set((self.read)());
        self.gauge.collect()
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

impl Metrics {
    /// Creates the catalogue. `topics` and `principals` are the names that get a label of
    /// their own.
    pub fn new(topics: &[String], principals: &[String], librdkafka_version: &str) -> Metrics {
        let r = Registry::new();
        let http_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "kafka_rest_http_request_duration_seconds",
                "Time from request start to response, by route template and method.",
            )
            .buckets(LATENCY_BUCKETS_SECONDS.to_vec()),
            &["route", "method"],
        )
        .expect("valid metric");
        r.register(Box::new(http_request_duration.clone()))
            .expect("unique metric");
        let schema_registry_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "kafka_rest_schema_registry_request_duration_seconds",
                "Time of one Schema Registry call (every URL tried), by operation.",
            )
            .buckets(LATENCY_BUCKETS_SECONDS.to_vec()),
            &["operation"],
        )
        .expect("valid metric");
        r.register(Box::new(schema_registry_request_duration.clone()))
            .expect("unique metric");
        let idempotency_store_duration = HistogramVec::new(
            HistogramOpts::new(
                "kafka_rest_idempotency_store_duration_seconds",
                "Time of one idempotency store call, by operation (claim, complete, release).",
            )
            .buckets(LATENCY_BUCKETS_SECONDS.to_vec()),
            &["operation"],
        )
        .expect("valid metric");
        r.register(Box::new(idempotency_store_duration.clone()))
            .expect("unique metric");
        let broker_rtt = GaugeVec::new(
            Opts::new(
                "kafka_rest_broker_rtt_seconds",
                "Broker round-trip time over librdkafka's last statistics window.",
            ),
            &["broker", "stat"],
        )
        .expect("valid metric");
        r.register(Box::new(broker_rtt.clone()))
            .expect("unique metric");
        let broker_up = IntGaugeVec::new(
            Opts::new(
                "kafka_rest_broker_up",
                "1 when the producer's connection to the broker is up.",
            ),
            &["broker"],
        )
        .expect("valid metric");
        r.register(Box::new(broker_up.clone()))
            .expect("unique metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "kafka_rest_build_info",
                "Always 1; labels carry the versions.",
            ),
            &["version", "librdkafka_version"],
        )
        .expect("valid metric");
        r.register(Box::new(build_info.clone()))
            .expect("unique metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), librdkafka_version])
            .set(1);

        Metrics {
            http_requests: counter(
                &r,
                "kafka_rest_http_requests_total",
                "HTTP requests by route template, method and status.",
                &["route", "method", "status"],
            ),
            http_request_duration,
            http_request_bytes: counter(
                &r,
                "kafka_rest_http_request_bytes_total",
                "Request body bytes received, by route template.",
                &["route"],
            ),
            http_response_bytes: counter(
                &r,
                "kafka_rest_http_response_bytes_total",
                "Response body bytes sent, by route template.",
                &["route"],
            ),
            http_requests_in_flight: gauge(
                &r,
                "kafka_rest_http_requests_in_flight",
                "Requests being served now.",
            ),
            streams_open: gauge(
                &r,
                "kafka_rest_streams_open",
                "API v3 record streams open now (each a request whose response is streaming).",
            ),
            stream_records_in_flight: gauge(
                &r,
                "kafka_rest_stream_records_in_flight",
                "Records of open API v3 streams read and not yet answered; at most \
                 streaming.max_in_flight_records per stream.",
            ),
            records_produced: counter(
                &r,
                "kafka_rest_records_produced_total",
                "Records by outcome (ok, or the Confluent error code), embedded format, topic \
                 and principal.",
                &["outcome", "format", "topic", "principal"],
            ),
            record_bytes: counter(
                &r,
                "kafka_rest_record_bytes_total",
                "Key plus value bytes of records written to Kafka.",
                &["format", "topic", "principal"],
            ),
            producer_queue_messages: gauge(
                &r,
                "kafka_rest_producer_queue_messages",
                "Messages in the producer's local queue (waiting or in flight).",
            ),
            producer_queue_bytes: gauge(
                &r,
                "kafka_rest_producer_queue_bytes",
                "Bytes of the messages in the producer's local queue.",
            ),
            producer_queue_max_messages: gauge(
                &r,
                "kafka_rest_producer_queue_max_messages",
                "Capacity of the producer's local queue, in messages.",
            ),
            broker_rtt,
            broker_request_errors: counter(
                &r,
                "kafka_rest_broker_request_errors_total",
                "Requests to the broker that failed to be sent.",
                &["broker"],
            ),
            broker_retries: counter(
                &r,
                "kafka_rest_broker_retries_total",
                "Requests to the broker that were retried.",
                &["broker"],
            ),
            broker_request_timeouts: counter(
                &r,
                "kafka_rest_broker_request_timeouts_total",
                "Requests to the broker that timed out.",
                &["broker"],
            ),
            broker_up,
            kafka_ready: gauge(
                &r,
                "kafka_rest_kafka_ready",
                "1 when the latest metadata request to the cluster succeeded.",
            ),
            metadata_requests: counter(
                &r,
                "kafka_rest_metadata_requests_total",
                "Metadata requests sent to the cluster, by reason (probe, topic: a topic cache \
                 miss, listing: the metadata endpoints' cluster listing, offsets: a partition's \
                 watermarks).",
                &["reason"],
            ),
            auth_failures: counter(
                &r,
                "kafka_rest_auth_failures_total",
                "Requests refused by authentication, by reason.",
                &["reason"],
            ),
            jwt_cache_lookups: counter(
                &r,
                "kafka_rest_jwt_cache_lookups_total",
                "Requests authenticated by a bearer token, by whether the token's verification \
                 came from the verified-token cache (hit) or its signature was checked (miss).",
                &["result"],
            ),
            policy_denials: counter(
                &r,
                "kafka_rest_policy_denials_total",
                "Requests refused by the authorization policy or the network allowlist, by \
                 reason.",
                &["reason"],
            ),
            policy_reloads: counter(
                &r,
                "kafka_rest_policy_reloads_total",
                "Policy file reloads (SIGHUP or a change of the file), by result (ok or \
                 error: the previous policy stays).",
                &["result"],
            ),
            rate_limited: counter(
                &r,
                "kafka_rest_rate_limited_total",
                "Produce requests refused by a rate limit, by scope (principal or global) and \
                 unit (records or bytes).",
                &["scope", "unit"],
            ),
            shed: counter(
                &r,
                "kafka_rest_shed_total",
                "Requests refused with 503 to shed load, by reason.",
                &["reason"],
            ),
            schema_registry_requests: counter(
                &r,
                "kafka_rest_schema_registry_requests_total",
                "Schema Registry calls, by operation (by_id, lookup, register, version) and \
                 outcome (ok; rejected: a 4xx answer; forbidden: 401/403; unavailable: no URL \
                 answered, timed out or 5xx).",
                &["operation", "outcome"],
            ),
            schema_registry_request_duration,
            schema_cache_lookups: counter(
                &r,
                "kafka_rest_schema_cache_lookups_total",
                "Schema resolutions of produce requests, by result (hit: served from memory; \
                 miss: the Schema Registry was asked).",
                &["result"],
            ),
            idempotency_requests: counter(
                &r,
                "kafka_rest_idempotency_requests_total",
                "Requests with an Idempotency-Key, by outcome (first: ran and held the key; \
                 replayed: answered with a stored outcome; conflict: 409, the key is held by a \
                 running request; mismatch: 422, the key was used for another request; \
                 store_unavailable: 503; unguarded: ran without the guarantee, the store being \
                 unavailable with on_store_error = proceed).",
                &["outcome"],
            ),
            idempotency_settled: counter(
                &r,
                "kafka_rest_idempotency_settled_total",
                "Keyed requests that ran, by what became of their key (stored: the outcome is \
                 kept for replay; released: nothing was written, the key is free again; \
                 lease_lost: the lease ended first; store_failed: the store failed).",
                &["result"],
            ),
            idempotency_store_errors: counter(
                &r,
                "kafka_rest_idempotency_store_errors_total",
                "Idempotency store calls that failed or timed out, by operation.",
                &["operation"],
            ),
            idempotency_store_duration,
            idempotency_evictions: {
                let metric = IntCounter::new(
                    "kafka_rest_idempotency_evictions_total",
                    "Entries the memory idempotency store evicted to stay within \
                     idempotency.memory_max_bytes before their time.",
                )
                .expect("valid metric");
                r.register(Box::new(metric.clone())).expect("unique metric");
                metric
            },
            build_info,
            log_lines_dropped: {
                let metric = IntCounter::new(
                    "kafka_rest_log_lines_dropped_total",
                    "Log lines dropped because stdout did not keep up (the log writer's queue \
                     was full).",
                )
                .expect("valid metric");
                r.register(Box::new(metric.clone())).expect("unique metric");
                metric
            },
            trace_spans: counter(
                &r,
                "kafka_rest_trace_spans_total",
                "Trace spans by outcome: exported, export_failed (the OTLP endpoint refused or \
                 could not be reached) or dropped_queue_full (tracing.max_queue_size spans were \
                 waiting already).",
                &["outcome"],
            ),
            topics: topics.iter().cloned().collect(),
            principals: RwLock::new(principals.iter().cloned().collect()),
            broker_totals: Mutex::default(),
            registry: r,
        }
    }

    /// The label for a topic: its name when configured, else [`OTHER`].
    pub fn topic_label<'a>(&self, topic: &'a str) -> &'a str {
        if self.topics.contains(topic) {
            topic
        } else {
            OTHER
        }
    }

    /// The label for a principal: its id when the policy names it, else [`OTHER`].
    pub fn principal_label<'a>(&self, principal: Option<&'a str>) -> &'a str {
        let known = |p: &str| {
            self.principals
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(p)
        };
        match principal {
            Some(p) if known(p) => p,
            Some(_) => OTHER,
            None => "anonymous",
        }
    }

    /// Replaces the principals that get a label of their own (after a policy reload).
    pub fn set_principals(&self, principals: &[String]) {
        *self.principals.write().unwrap_or_else(|e| e.into_inner()) =
            principals.iter().cloned().collect();
    }

    /// Applies a librdkafka statistics snapshot.
    pub fn observe_producer(&self, stats: &ProducerStats) {
        self.producer_queue_messages
            .set(i64::try_from(stats.queue_messages).unwrap_or(i64::MAX));
        self.producer_queue_bytes
            .set(i64::try_from(stats.queue_bytes).unwrap_or(i64::MAX));
        self.producer_queue_max_messages
            .set(i64::try_from(stats.queue_max_messages).unwrap_or(i64::MAX));
        let mut totals = self.broker_totals.lock().unwrap_or_else(|p| p.into_inner());
        for broker in &stats.brokers {
            let id = broker.id.to_string();
            self.broker_up
                .with_label_values(&[&id])
                .set(i64::from(broker.up));
            for (stat, value) in [("avg", broker.rtt_avg_us), ("p99", broker.rtt_p99_us)] {
                if let Some(us) = value {
                    self.broker_rtt
                        .with_label_values(&[id.as_str(), stat])
                        .set(us as f64 / 1e6);
                }
            }
            let now = (
                broker.request_errors,
                broker.retries,
                broker.request_timeouts,
            );
            let before = totals.insert(broker.id, now).unwrap_or((0, 0, 0));
            // A reset (a new client) restarts the totals: count from zero again.
            let delta = |now: u64, before: u64| now.checked_sub(before).unwrap_or(now);
            self.broker_request_errors
                .with_label_values(&[&id])
                .inc_by(delta(now.0, before.0));
            self.broker_retries
                .with_label_values(&[&id])
                .inc_by(delta(now.1, before.1));
            self.broker_request_timeouts
                .with_label_values(&[&id])
                .inc_by(delta(now.2, before.2));
        }
    }

    /// Brings the dropped-log-lines counter up to `total`, the log writer's own count.
    pub fn observe_dropped_log_lines(&self, total: u64) {
        let counted = self.log_lines_dropped.get();
        self.log_lines_dropped.inc_by(total.saturating_sub(counted));
    }

    /// Brings `kafka_rest_trace_spans_total` up to the exporter's own totals.
    pub fn observe_trace_spans(&self, totals: &[(&str, u64)]) {
        for (outcome, total) in totals {
            let counter = self.trace_spans.with_label_values(&[outcome]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// Registers `kafka_rest_in_flight_body_bytes`, read at scrape time with `read`: the
    /// request-body bytes held against `limits.max_in_flight_bytes` (v2 bodies and API v3
    /// stream records), as the budget's own count says, so it cannot drift from it.
    pub fn register_in_flight_body_bytes(&self, read: impl Fn() -> i64 + Send + Sync + 'static) {
        let gauge = IntGauge::new(
            "kafka_rest_in_flight_body_bytes",
            "Request-body bytes held against limits.max_in_flight_bytes (v2 bodies being read \
             or produced, API v3 stream records not yet answered).",
        )
        .expect("valid metric");
        self.registry
            .register(Box::new(Sampled {
                gauge,
                read: Box::new(read),
            }))
            .expect("unique metric");
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("the text encoder writes to memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        let m = Metrics::new(&["orders".into()], &["api_key:partner-a".into()], "2.12.1");
        assert_eq!(m.topic_label("orders"), "orders");
        assert_eq!(m.topic_label("random-topic-123"), OTHER);
        assert_eq!(
            m.principal_label(Some("api_key:partner-a")),
            "api_key:partner-a"
        );
        assert_eq!(m.principal_label(Some("jwt:partner-a")), OTHER);
        assert_eq!(m.principal_label(Some("someone")), OTHER);
        assert_eq!(m.principal_label(None), "anonymous");
        m.set_principals(&["jwt:partner-a".into()]);
        assert_eq!(m.principal_label(Some("jwt:partner-a")), "jwt:partner-a");
        assert_eq!(m.principal_label(Some("api_key:partner-a")), OTHER);
    }

    #[test]
    fn broker_totals_become_increments() {
        let m = Metrics::new(&[], &[], "2.12.1");
        let snapshot = |errors| ProducerStats {
            queue_messages: 3,
            queue_bytes: 300,
            queue_max_messages: 100_000,
            brokers: vec![BrokerStats {
                id: 1,
                up: true,
                rtt_avg_us: Some(1500),
                rtt_p99_us: Some(4000),
                request_errors: errors,
                retries: 0,
                request_timeouts: 0,
            }],
        };
        m.observe_producer(&snapshot(2));
        m.observe_producer(&snapshot(5));
        assert_eq!(m.broker_request_errors.with_label_values(&["1"]).get(), 5);
        assert_eq!(m.producer_queue_messages.get(), 3);
        let text = m.render();
        assert!(
            text.contains(r#"kafka_rest_broker_rtt_seconds{broker="1",stat="avg"} 0.0015"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kafka_rest_build_info{librdkafka_version="2.12.1",version="#),
            "{text}"
        );
    }
}
