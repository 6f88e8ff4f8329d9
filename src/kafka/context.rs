//! The rdkafka client context (where librdkafka's global error callback, its statistics
//! and its delivery reports land) and the producer type built on it.

use std::sync::Arc;

use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::delivery::Opaque;
use super::health::Health;
use super::outcome::{Delivered, ProduceError};
use crate::metrics::{BrokerStats, Metrics, ProducerStats};

/// The service's producer: librdkafka's own polling thread runs the callbacks below.
pub type Producer = ThreadedProducer<ProxyContext>;

/// Routes librdkafka's global errors into [`Health`] and its statistics into [`Metrics`].
pub struct ProxyContext {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
}

/// The exported part of a statistics snapshot. Bootstrap pseudo-brokers (node id -1) are
/// left out: their names are addresses, not a bounded label set.
fn producer_stats(statistics: &Statistics) -> ProducerStats {
    let mut brokers: Vec<BrokerStats> = statistics
        .brokers
        .values()
        .filter(|b| b.nodeid >= 0)
        .map(|b| BrokerStats {
            id: b.nodeid,
            up: b.state == "UP",
            rtt_avg_us: b.rtt.as_ref().map(|w| w.avg),
            rtt_p99_us: b.rtt.as_ref().map(|w| w.p99),
            request_errors: b.txerrs,
            retries: b.txretries,
            request_timeouts: b.req_timeouts,
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    ProducerStats {
        queue_messages: statistics.msg_cnt,
        queue_bytes: statistics.msg_size,
        queue_max_messages: statistics.msg_max,
        brokers,
    }
}

impl ClientContext for ProxyContext {
    fn stats(&self, statistics: Statistics) {
        self.metrics.observe_producer(&producer_stats(&statistics));
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
                tracing::warn!(reason, "Kafka rejected the producer's authentication");
                self.health.on_authentication_error(reason);
            }
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                tracing::warn!(reason, "all Kafka brokers are down");
                self.health.request_probe();
            }
            _ => {
                tracing::warn!(%error, reason, "Kafka client error");
                // A fatal error never arrives as `Fatal`: librdkafka's event API hands it
                // over under its underlying code (an idempotence error such as
                // OUT_OF_ORDER_SEQUENCE_NUMBER, or CLUSTER_AUTHORIZATION_FAILED), and
                // rdkafka does not pass on that the event is fatal. So any other error
                // may be one: the probe asks librdkafka (`Kafka::note_fatal`).
                self.health.request_probe();
            }
        }
    }
}

impl ProducerContext for ProxyContext {
    type DeliveryOpaque = Opaque;

    /// Runs on the producer's polling thread: hands the record's outcome to its request.
    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Opaque) {
        let outcome = match result {
            Ok(message) => Ok(Delivered {
                partition: message.partition(),
                offset: message.offset(),
                timestamp_ms: message.timestamp().to_millis(),
            }),
            Err((error, _)) => Err(ProduceError::from_kafka(error)),
        };
        opaque.settle(outcome);
    }
}
