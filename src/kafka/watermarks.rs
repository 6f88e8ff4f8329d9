//! A partition's watermarks: the one call that asks the partition's leader for them.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::Producer as _;
use rdkafka::types::RDKafkaErrorCode;

use super::context::Producer;

/// The offsets that bound a partition's records: the first one still stored and the one
/// the next record will get (equal when the partition holds nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    pub low: i64,
    pub high: i64,
}

/// Why the watermark query failed: the cluster's or librdkafka's error code, or, when
/// there is none, librdkafka's text.
pub(super) enum Failed {
    Code(RDKafkaErrorCode),
    Other(String),
}

/// Asks the leader of `topic`'s `partition` for its watermarks, within `timeout`, off the
/// async runtime (librdkafka's call blocks).
pub(super) async fn fetch(
    producer: &Arc<Producer>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Watermarks, Failed> {
    let producer = Arc::clone(producer);
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_watermarks(&topic, partition, timeout)
            .map(|(low, high)| Watermarks { low, high })
            .map_err(|e: KafkaError| match e.rdkafka_error_code() {
                Some(code) => Failed::Code(code),
                None => Failed::Other(e.to_string()),
            })
    })
    .await
    .map_err(|e| Failed::Other(format!("watermark task failed: {e}")))?
}
