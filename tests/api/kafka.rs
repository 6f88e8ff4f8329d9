//! The Kafka layer on its own, below any API: what the producer writes and how its outcomes
//! come back.

use std::sync::Arc;

use actix_web::web::Bytes;
use futures_util::StreamExt;
use kafka_rest_proxy::domain::{Header, Record, TopicName};
use kafka_rest_proxy::kafka::{Delivered, Kafka};
use kafka_rest_proxy::metrics::Metrics;

use crate::helpers::Cluster;

/// v2 sends neither headers nor timestamps, but the records the pipeline hands to Kafka
/// carry both (v3 will fill them): headers keep their order, repeated names and null
/// values; a record without a timestamp gets the request's. Outcomes come back in request
/// order as a stream.
#[actix_web::test]
async fn records_keep_their_headers_and_timestamps_and_outcomes_stream_in_order() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let metrics = Arc::new(Metrics::new(&[], &[], "test"));
    let kafka = Kafka::connect(&cluster.settings(), metrics).unwrap();
    let header = |name: &str, value: Option<&[u8]>| Header {
        name: name.to_owned(),
        value: value.map(<[u8]>::to_vec),
    };
    let records = [
        Record {
            value: Some(Bytes::from_static(b"a")),
            timestamp_ms: Some(1_600_000_000_123),
            headers: vec![
                header("trace", Some(b"1")),
                header("trace", Some(b"2")),
                header("empty", None),
            ],
            ..Record::default()
        },
        Record {
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"b")),
            ..Record::default()
        },
    ];
    let request_time = 1_700_000_000_456;
    let mut outcomes = kafka
        .produce(&TopicName::parse(&topic).unwrap(), &records, request_time)
        .await;
    // The delivery report carries the timestamp Kafka stored (v3 answers it).
    let delivered = |offset, timestamp_ms| {
        Some(Ok(Delivered {
            partition: 0,
            offset,
            timestamp_ms: Some(timestamp_ms),
        }))
    };
    assert_eq!(outcomes.next().await, delivered(0, 1_600_000_000_123));
    assert_eq!(outcomes.next().await, delivered(1, request_time));
    assert_eq!(outcomes.next().await, None);

    let consumed = cluster.consume(&topic, 1, 2).await;
    assert_eq!(consumed.len(), 2, "{consumed:?}");
    assert_eq!(consumed[0].timestamp_ms, Some(1_600_000_000_123));
    assert_eq!(
        consumed[0].headers,
        vec![
            ("trace".to_owned(), Some(b"1".to_vec())),
            ("trace".to_owned(), Some(b"2".to_vec())),
            ("empty".to_owned(), None),
        ]
    );
    assert_eq!(consumed[1].timestamp_ms, Some(request_time));
    assert!(consumed[1].headers.is_empty(), "{consumed:?}");
    assert_eq!(consumed[1].key.as_deref(), Some(&b"k"[..]));
}
