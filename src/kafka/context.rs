//! The rdkafka client context (where librdkafka's global error callback, its statistics
//! and its delivery reports land) and the producer type built on it.

use std::sync::{Arc, Mutex};

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
    unknown_offsets: UnknownOffsets,
}

impl ProxyContext {
    pub fn new(health: Arc<Health>, metrics: Arc<Metrics>) -> ProxyContext {
        ProxyContext {
            health,
            metrics,
            unknown_offsets: UnknownOffsets::default(),
        }
    }
}

/// The offsets librdkafka invents. A batch whose retry gets DUPLICATE_SEQUENCE_NUMBER (an
/// earlier attempt was written, its answer lost: a broker killed at the wrong moment) is
/// delivered with its offset unknown, -1, but librdkafka numbers the batch's records from
/// that base anyway (`rd_kafka_msgq_set_metadata`): -1, 0, 1... and those offsets hold other
/// records. A batch's delivery reports come one after the other on the polling thread, so
/// the reports that follow an unknown offset on the same partition with offsets 0, 1...
/// are that batch's, and their offsets are unknown too (-1, as Java's producer reports
/// them). A real offset cannot continue such a run: the batch itself was written, so the
/// partition's next records lie beyond all of those numbers.
#[derive(Default)]
struct UnknownOffsets {
    /// The topic and partition of the last report, when its offset was unknown or invented,
    /// and the offset librdkafka gives the batch's next record.
    run: Mutex<Option<(String, i32, i64)>>,
}

impl UnknownOffsets {
    /// The offset to report for a record delivered at `offset` as librdkafka says.
    fn correct(&self, topic: &str, partition: i32, offset: i64) -> i64 {
        let mut run = self.run.lock().unwrap_or_else(|e| e.into_inner());
        if offset < 0 {
            *run = Some((topic.to_owned(), partition, offset + 1));
            return offset;
        }
        match run.as_mut() {
            Some((t, p, next)) if t == topic && *p == partition && *next == offset => {
                *next += 1;
                -1
            }
            Some(_) => {
                *run = None;
                offset
            }
            None => offset,
        }
    }
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
                offset: self.unknown_offsets.correct(
                    message.topic(),
                    message.partition(),
                    message.offset(),
                ),
                timestamp_ms: message.timestamp().to_millis(),
            }),
            Err((error, _)) => Err(ProduceError::from_kafka(error)),
        };
        opaque.settle(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::UnknownOffsets;

    #[test]
    fn the_records_after_an_unknown_offset_in_its_batch_are_unknown_too() {
        let offsets = UnknownOffsets::default();
        let reported: Vec<i64> = [-1, 0, 1, 2]
            .into_iter()
            .map(|o| offsets.correct("t", 0, o))
            .collect();
        assert_eq!(reported, [-1, -1, -1, -1]);
        // The next batch of the partition, beyond the rewritten one, keeps its offsets.
        assert_eq!(offsets.correct("t", 0, 40), 40);
        assert_eq!(offsets.correct("t", 0, 41), 41);
    }

    #[test]
    fn real_offsets_are_kept() {
        let offsets = UnknownOffsets::default();
        for o in [0, 1, 2] {
            assert_eq!(offsets.correct("t", 0, o), o);
        }
        // After an unknown offset, another partition or topic, or an offset that does not
        // continue the batch, ends the run.
        assert_eq!(offsets.correct("t", 0, -1), -1);
        assert_eq!(offsets.correct("t", 1, 0), 0);
        assert_eq!(offsets.correct("t", 0, 0), 0);
        assert_eq!(offsets.correct("t", 0, -1), -1);
        assert_eq!(offsets.correct("u", 0, 0), 0);
        assert_eq!(offsets.correct("t", 0, -1), -1);
        assert_eq!(offsets.correct("t", 0, 7), 7);
        assert_eq!(offsets.correct("t", 0, 0), 0);
    }
}
