//! Every Kafka failure a partner can meet, on librdkafka's mock cluster (errors injected per
//! produce request, brokers stopped and slowed, leaders moved): for each class, what the
//! partner receives (each record's `error_code`, the whole answer's status, `Retry-After`),
//! that the transient ones are retried inside the delivery timeout with each record written
//! once, and what the metrics count. README's "Kafka failures" table lists the same, test by
//! test.
//!
//! The mock cluster appends nothing for a request it answers with an injected error, and it
//! checks idempotent sequence numbers only for transactional producers: the read-backs here
//! prove that neither librdkafka nor the service sends a written record again, not that a
//! broker drops a batch it receives twice (the chaos run's part, on a real broker).

use std::ops::Range;
use std::time::{Duration, Instant};

use kafka_rest_proxy::config::Settings;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::json;

use crate::helpers::{mock_cluster, sample, wait_until, Cluster, Response, TestApp, JSON_V2};

const TOPIC: &str = "faults";

/// The delivery timeout (`kafka.message_timeout_ms`) of most tests here: room for a few
/// retries (librdkafka backs off 100, 200, 400 ms...), short enough for a quick module.
const DELIVERY_TIMEOUT: Duration = Duration::from_millis(2_000);

/// How late past the delivery timeout a failure may be answered: librdkafka looks for
/// timed-out records once a second, and the machine may be busy.
const ANSWER_SLACK: Duration = Duration::from_millis(2_500);

/// Errors injected for a transient fault: fewer than librdkafka retries within the delivery
/// timeout.
const TRANSIENT: usize = 3;

/// Errors injected for a lasting fault: more than librdkafka can retry within the delivery
/// timeout.
const LASTING: usize = 1_000;

/// How soon the service writes again once a fault is over: a reconnect (at most 1 s apart)
/// and a metadata probe (every second in these tests).
const RECOVERY: Duration = Duration::from_secs(5);

/// How long a broker takes to answer when it holds its answers within the delivery timeout.
const SLOW_ANSWER: Duration = Duration::from_millis(800);

/// A mock cluster with the topic, and the app in front of it.
struct Faulty {
    mock: MockCluster<'static, DefaultProducerContext>,
    app: TestApp,
}

impl Faulty {
    /// One broker, one partition, [`DELIVERY_TIMEOUT`].
    async fn start() -> Faulty {
        Faulty::start_with(1, 1, DELIVERY_TIMEOUT).await
    }

    async fn start_with(brokers: i32, partitions: i32, delivery_timeout: Duration) -> Faulty {
        let (mock, settings) = mock_cluster(brokers, TOPIC, partitions);
        let app = TestApp::spawn_ready(fault_settings(settings, delivery_timeout)).await;
        Faulty { mock, app }
    }

    /// The next `times` produce requests the cluster receives fail with `error`.
    fn inject(&self, error: RDKafkaRespErr, times: usize) {
        self.mock
            .request_errors(RDKafkaApiKey::Produce, &vec![error; times]);
    }

    fn clear(&self) {
        self.mock.clear_request_errors(RDKafkaApiKey::Produce);
    }

    /// `POST /topics/faults` with one json record per value (a JSON string).
    async fn produce(&self, values: &[&str]) -> Response {
        let records: Vec<String> = values
            .iter()
            .map(|v| format!(r#"{{"value":"{v}"}}"#))
            .collect();
        self.app
            .produce(TOPIC, &format!(r#"{{"records":[{}]}}"#, records.join(",")))
            .await
    }

    /// `POST .../records:batch` with one JSON entry per value, the entry ids the values.
    async fn batch(&self, values: &[&str]) -> Response {
        let cluster_id = self.cluster().cluster_id().await;
        let entries: Vec<String> = values
            .iter()
            .map(|v| format!(r#"{{"id":"{v}","value":{{"type":"JSON","data":"{v}"}}}}"#))
            .collect();
        self.app
            .post(
                &format!("/v3/clusters/{cluster_id}/topics/{TOPIC}/records:batch"),
                "application/json",
                &format!(r#"{{"entries":[{}]}}"#, entries.join(",")),
            )
            .await
    }

    fn cluster(&self) -> Cluster {
        Cluster::at(self.mock.bootstrap_servers())
    }

    /// What the topic's one partition holds, in offset order, as an independent consumer
    /// reads it (the values without their JSON quotes); checked against the partition's
    /// high watermark, so that no record is missed or counted twice.
    async fn written(&self, expected: usize) -> Vec<String> {
        let cluster = self.cluster();
        let high_watermark = cluster.high_watermarks(TOPIC, 1).await[0];
        let values: Vec<String> = cluster
            .consume(TOPIC, 1, expected)
            .await
            .into_iter()
            .map(|record| {
                let value = String::from_utf8(record.value.unwrap()).unwrap();
                value.trim_matches('"').to_owned()
            })
            .collect();
        assert_eq!(values.len() as i64, high_watermark, "{values:?}");
        values
    }

    /// `kafka_rest_records_produced_total` for `outcome` (`ok` or a Confluent code).
    async fn produced(&self, outcome: &str) -> f64 {
        sample(&self.app.metrics().await, &produced_series(outcome))
    }
}

fn fault_settings(mut settings: Settings, delivery_timeout: Duration) -> Settings {
    settings.kafka.message_timeout_ms = delivery_timeout.as_millis() as u64;
    // Broker gauges follow the outage closely.
    settings.metrics.statistics_interval_ms = 100;
    settings
}

fn produced_series(outcome: &str) -> String {
    format!(
        r#"kafka_rest_records_produced_total{{format="json",outcome="{outcome}",principal="anonymous",topic="_other"}}"#
    )
}

/// The v2 answer for records written at `offsets` of partition 0.
fn written_body(offsets: Range<i64>) -> String {
    let entries: Vec<String> = offsets
        .map(|o| format!(r#"{{"partition":0,"offset":{o},"error_code":null,"error":null}}"#))
        .collect();
    v2_body(&entries)
}

/// The v2 answer for `records` records that all failed with `code` and `message`.
fn failed_body(records: usize, code: u32, message: &str) -> String {
    let entry =
        format!(r#"{{"partition":null,"offset":null,"error_code":{code},"error":"{message}"}}"#);
    v2_body(&vec![entry; records])
}

fn v2_body(entries: &[String]) -> String {
    format!(
        r#"{{"offsets":[{}],"key_schema_id":null,"value_schema_id":null}}"#,
        entries.join(",")
    )
}

/// The v3 batch answer for entries `ids` that all failed with `code` and `message`.
fn failed_batch(ids: &[&str], code: u32, message: &str) -> String {
    let failures: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"id":"{id}","error_code":{code},"message":"{message}"}}"#))
        .collect();
    format!(r#"{{"successes":[],"failures":[{}]}}"#, failures.join(","))
}

#[track_caller]
fn assert_retry_after(r: &Response, expected: Option<&str>) {
    assert_eq!(r.header("retry-after"), expected, "{r:?}");
}

const TIMED_OUT: &str = "Local: Message timed out";

/// A retriable error: a few are retried inside the delivery timeout and every record is
/// written once; for longer than the delivery timeout, every record fails with 50003, the
/// answer is 500 with `Retry-After: 1` (v2, and v3's batch) once the timeout has passed, and
/// nothing of it is written.
async fn retried_within_the_delivery_timeout(error: RDKafkaRespErr) {
    let f = Faulty::start().await;

    f.inject(error, TRANSIENT);
    let r = f.produce(&["a", "b"]).await;
    r.assert_exact(200, &written_body(0..2));
    assert_retry_after(&r, None);

    f.inject(error, LASTING);
    let started = Instant::now();
    let r = f.produce(&["c", "d"]).await;
    r.assert_exact(500, &failed_body(2, 50003, TIMED_OUT));
    assert_retry_after(&r, Some("1"));
    assert!(
        started.elapsed() < DELIVERY_TIMEOUT + ANSWER_SLACK,
        "answered after {:?}",
        started.elapsed()
    );
    let r = f.batch(&["e"]).await;
    r.assert_v3(500, &failed_batch(&["e"], 50003, TIMED_OUT));
    assert_retry_after(&r, Some("1"));

    f.clear();
    let r = f.produce(&["f"]).await;
    r.assert_exact(200, &written_body(2..3));
    assert_eq!(f.written(3).await, ["a", "b", "f"]);
    assert_eq!(f.produced("ok").await, 3.0);
    assert_eq!(f.produced("50003").await, 3.0);
    f.app.stop().await.unwrap();
}

/// A permanent error: not retried, the record fails at once with `code`, the answer takes
/// the record's status without `Retry-After`, nothing is written, and the next request goes
/// through.
async fn refused_at_once(error: RDKafkaRespErr, status: u16, code: u32, message: &str) {
    let f = Faulty::start().await;
    f.inject(error, 1);
    let r = f.produce(&["a"]).await;
    r.assert_exact(status, &failed_body(1, code, message));
    assert_retry_after(&r, None);

    f.inject(error, 1);
    let r = f.batch(&["b"]).await;
    r.assert_v3(status, &failed_batch(&["b"], code, message));
    assert_retry_after(&r, None);

    let r = f.produce(&["c"]).await;
    r.assert_exact(200, &written_body(0..1));
    assert_eq!(f.written(1).await, ["c"]);
    assert_eq!(f.produced(&code.to_string()).await, 2.0);
    assert_eq!(f.produced("ok").await, 1.0);
    f.app.stop().await.unwrap();
}

#[actix_web::test]
async fn not_leader_for_partition_is_retried_and_each_record_written_once() {
    retried_within_the_delivery_timeout(RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION)
        .await;
}

/// A leader that really moved: librdkafka follows it (told by the old leader's
/// NOT_LEADER_FOR_PARTITION, which names the new one, or by the next metadata), and nothing
/// is refused or written twice.
#[actix_web::test]
async fn a_moved_leader_is_followed_and_each_record_written_once() {
    let f = Faulty::start_with(2, 1, DELIVERY_TIMEOUT).await;
    f.mock.partition_leader(TOPIC, 0, Some(1)).unwrap();
    let r = f.produce(&["a"]).await;
    r.assert_exact(200, &written_body(0..1));

    f.mock.partition_leader(TOPIC, 0, Some(2)).unwrap();
    let r = f.produce(&["b", "c"]).await;
    r.assert_exact(200, &written_body(1..3));
    assert_eq!(f.written(3).await, ["a", "b", "c"]);
    assert_eq!(f.produced("ok").await, 3.0);
    f.app.stop().await.unwrap();
}

#[actix_web::test]
async fn not_enough_replicas_is_retried_and_each_record_written_once() {
    retried_within_the_delivery_timeout(RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS)
        .await;
}

#[actix_web::test]
async fn not_enough_replicas_after_append_is_retried_and_each_record_written_once() {
    retried_within_the_delivery_timeout(
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    )
    .await;
}

#[actix_web::test]
async fn request_timed_out_is_retried_and_each_record_written_once() {
    retried_within_the_delivery_timeout(RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT).await;
}

#[actix_web::test]
async fn message_too_large_is_500_50002_at_once() {
    refused_at_once(
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
        500,
        50002,
        "Broker: Message size too large",
    )
    .await;
}

#[actix_web::test]
async fn record_list_too_large_is_500_50002_at_once() {
    refused_at_once(
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
        500,
        50002,
        "Broker: Message batch larger than configured server segment size",
    )
    .await;
}

#[actix_web::test]
async fn invalid_record_is_500_50002_at_once() {
    refused_at_once(
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD,
        500,
        50002,
        "Broker: Broker failed to validate record",
    )
    .await;
}

/// One record refused for good beside one written: 200, as Confluent answers, with the
/// failure in its `offsets` entry.
#[actix_web::test]
async fn one_refused_record_beside_a_written_one_is_200() {
    let f = Faulty::start_with(2, 2, DELIVERY_TIMEOUT).await;
    // Partitions 0 and 1 have different leaders, so the two records travel in two produce
    // requests; the first request the cluster sees fails for good.
    f.mock.partition_leader(TOPIC, 0, Some(1)).unwrap();
    f.mock.partition_leader(TOPIC, 1, Some(2)).unwrap();
    f.inject(RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD, 1);
    let r = f
        .app
        .post(
            &format!("/topics/{TOPIC}"),
            JSON_V2,
            r#"{"records":[{"value":1,"partition":0},{"value":2,"partition":1}]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_retry_after(&r, None);
    let refused = json!({"partition": null, "offset": null, "error_code": 50002,
        "error": "Broker: Broker failed to validate record"});
    let written =
        |partition| json!({"partition": partition, "offset": 0, "error_code": null, "error": null});
    let offsets = r.json()["offsets"].clone();
    assert!(
        offsets == json!([refused, written(1)]) || offsets == json!([written(0), refused]),
        "{}",
        r.body
    );
    assert_eq!(f.produced("ok").await, 1.0);
    assert_eq!(f.produced("50002").await, 1.0);
    f.app.stop().await.unwrap();
}

/// TOPIC_AUTHORIZATION_FAILED: 403/40301 with a generic message. librdkafka then refuses
/// the topic at once until metadata shows it writable again, which the service's probe
/// asks for every `metadata.refresh_interval_ms`: a granted ACL needs no restart.
#[actix_web::test]
async fn topic_authorization_failed_is_403_40301_until_metadata_clears_it() {
    let f = Faulty::start().await;
    f.inject(
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        1,
    );
    let r = f.produce(&["a"]).await;
    r.assert_exact(
        403,
        &failed_body(1, 40301, "Not authorized to write to the topic."),
    );
    assert_retry_after(&r, None);

    let started = Instant::now();
    wait_until(Duration::from_secs(15), async || {
        let r = f.produce(&["b"]).await;
        match r.status.as_u16() {
            200 => Ok(()),
            403 => Err(format!("still refused: {}", r.body)),
            _ => panic!("{r:?}"),
        }
    })
    .await;
    assert!(
        started.elapsed() < RECOVERY,
        "refused for {:?} after the error",
        started.elapsed()
    );
    assert_eq!(f.written(1).await, ["b"]);
    assert_eq!(f.produced("ok").await, 1.0);
    assert!(f.produced("40301").await >= 1.0);
    f.app.stop().await.unwrap();
}

/// CLUSTER_AUTHORIZATION_FAILED on a produce request: 403/40301, as Confluent answers any
/// Kafka authorization failure; the idempotent producer bumps its epoch and goes on.
#[actix_web::test]
async fn cluster_authorization_failed_is_403_40301() {
    refused_at_once(
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED,
        403,
        40301,
        "Not authorized to write to the topic.",
    )
    .await;
}

/// A cluster that refuses the producer id (no IdempotentWrite on the cluster, Kafka before
/// 2.8): librdkafka's idempotent producer fails fatally. `/healthz` and `/readyz` say so, so
/// the container is replaced, and every request is 500/50002 at once meanwhile.
#[actix_web::test]
async fn a_cluster_refusing_the_producer_id_fails_the_producer_and_health_says_so() {
    let (mock, settings) = mock_cluster(1, TOPIC, 1);
    mock.request_errors(
        RDKafkaApiKey::InitProducerId,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED],
    );
    let app = TestApp::spawn(fault_settings(settings, DELIVERY_TIMEOUT)).await;
    assert_producer_failed(&app).await;
    let r = app.produce(TOPIC, r#"{"records":[{"value":"a"}]}"#).await;
    r.assert_exact(
        500,
        r#"{"error_code":50002,"message":"The Kafka producer failed and cannot recover."}"#,
    );
    assert_retry_after(&r, None);
    let cluster = Cluster::at(mock.bootstrap_servers());
    assert_eq!(cluster.high_watermarks(TOPIC, 1).await, [0]);
    app.stop().await.unwrap();
}

/// Waits until `/healthz` and `/readyz` say the producer failed fatally.
async fn assert_producer_failed(app: &TestApp) {
    wait_until(Duration::from_secs(10), async || {
        let r = app.get("/healthz").await;
        if r.status == 503 {
            assert_eq!(
                r.body,
                r#"{"status":"failed","reason":"the producer failed fatally"}"#
            );
            Ok(())
        } else {
            Err(format!("/healthz still {}: {}", r.status, r.body))
        }
    })
    .await;
    let r = app.get("/readyz").await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (
            503,
            r#"{"status":"not ready","reason":"the producer failed fatally"}"#
        )
    );
}

/// THROTTLING_QUOTA_EXCEEDED, which Kafka sends for topic creation and deletion, not for
/// records (produce quotas hold the answers instead, below): librdkafka does not retry it;
/// the service answers 50003 with `Retry-After`, since waiting is the cure.
#[actix_web::test]
async fn a_quota_error_is_500_50003_with_retry_after_at_once() {
    let f = Faulty::start().await;
    f.inject(
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED,
        1,
    );
    let started = Instant::now();
    let r = f.produce(&["a"]).await;
    r.assert_exact(
        500,
        &failed_body(1, 50003, "Broker: Throttling quota has been exceeded"),
    );
    assert_retry_after(&r, Some("1"));
    assert!(started.elapsed() < DELIVERY_TIMEOUT, "it was retried");

    let r = f.produce(&["b"]).await;
    r.assert_exact(200, &written_body(0..1));
    assert_eq!(f.written(1).await, ["b"]);
    assert_eq!(f.produced("50003").await, 1.0);
    f.app.stop().await.unwrap();
}

/// Produce quota throttling: Kafka holds its answers (throttle time) instead of refusing,
/// and the mock cluster cannot send a throttle time, so a broker that answers late stands in
/// for it. Within the delivery timeout it costs latency only. Past it the records fail with
/// 50003 (500, `Retry-After`) although the broker wrote them: a timeout never tells whether
/// a record was written, which is what `Idempotency-Key` is for.
#[actix_web::test]
async fn a_broker_holding_its_answers_costs_latency_then_50003_without_saying_nothing_was_written()
{
    let f = Faulty::start().await;
    f.mock.broker_round_trip_time(1, SLOW_ANSWER).unwrap();
    let started = Instant::now();
    let r = f.produce(&["a", "b"]).await;
    r.assert_exact(200, &written_body(0..2));
    assert!(started.elapsed() >= SLOW_ANSWER, "{:?}", started.elapsed());

    f.mock
        .broker_round_trip_time(1, DELIVERY_TIMEOUT + ANSWER_SLACK)
        .unwrap();
    let started = Instant::now();
    let r = f.produce(&["c"]).await;
    r.assert_exact(500, &failed_body(1, 50003, TIMED_OUT));
    assert_retry_after(&r, Some("1"));
    assert!(
        started.elapsed() < DELIVERY_TIMEOUT + ANSWER_SLACK,
        "answered after {:?}",
        started.elapsed()
    );

    // The one metric of a broker that answers too late: a request timed out in flight.
    f.app
        .wait_for_sample(
            r#"kafka_rest_broker_request_timeouts_total{broker="1"}"#,
            1.0,
        )
        .await;

    f.mock.broker_round_trip_time(1, Duration::ZERO).unwrap();
    assert_eq!(f.written(3).await, ["a", "b", "c"]);
    assert_eq!(f.produced("ok").await, 2.0);
    assert_eq!(f.produced("50003").await, 1.0);
    f.app.stop().await.unwrap();
}

/// The broker away for less than the delivery timeout: the records wait and are written
/// once. Away for longer: 500/50003 with `Retry-After` once the timeout has passed, the
/// broker gauge and `/readyz` say it is gone, and the service recovers when it returns.
#[actix_web::test]
async fn a_broker_down_past_the_delivery_timeout_is_500_50003_and_recovers() {
    // Longer than the others': librdkafka reconnects with a growing backoff (100 ms, 200
    // ms...), which must fit inside the timeout after a short outage.
    let delivery_timeout = Duration::from_millis(4_000);
    let f = Faulty::start_with(1, 1, delivery_timeout).await;

    f.mock.broker_down(1).unwrap();
    let outage = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        f.mock.broker_up(1).unwrap();
    };
    let (r, ()) = futures_util::join!(f.produce(&["a", "b"]), outage);
    r.assert_exact(200, &written_body(0..2));

    // librdkafka notices the timed-out records of a broker it cannot reach when it next
    // tries to reconnect: each answer must still come soon after the delivery timeout.
    f.mock.broker_down(1).unwrap();
    for value in ["c", "d"] {
        let started = Instant::now();
        let r = f.produce(&[value]).await;
        r.assert_exact(500, &failed_body(1, 50003, TIMED_OUT));
        assert_retry_after(&r, Some("1"));
        assert!(
            started.elapsed() < delivery_timeout + ANSWER_SLACK,
            "answered after {:?}",
            started.elapsed()
        );
    }
    wait_until(Duration::from_secs(20), async || {
        let up = sample(
            &f.app.metrics().await,
            r#"kafka_rest_broker_up{broker="1"}"#,
        );
        let ready = f.app.get("/readyz").await;
        if up == 0.0 && ready.status == 503 {
            assert_eq!(
                ready.body,
                r#"{"status":"not ready","reason":"the cluster is unreachable"}"#
            );
            Ok(())
        } else {
            Err(format!("broker_up {up}, /readyz {}", ready.body))
        }
    })
    .await;

    f.mock.broker_up(1).unwrap();
    let back = Instant::now();
    f.app.wait_ready().await;
    let r = f.produce(&["e"]).await;
    r.assert_exact(200, &written_body(2..3));
    assert!(
        back.elapsed() < RECOVERY,
        "written {:?} after the broker came back",
        back.elapsed()
    );
    assert_eq!(f.written(3).await, ["a", "b", "e"]);
    assert_eq!(f.produced("ok").await, 3.0);
    assert_eq!(f.produced("50003").await, 2.0);
    f.app.stop().await.unwrap();
}

/// OUT_OF_ORDER_SEQUENCE_NUMBER on the oldest request in flight: the broker and the
/// idempotent producer disagree on what was written, so librdkafka fails the producer for
/// good rather than risk duplicates or reordering. The records fail with 50002; `/healthz`
/// and `/readyz` say the producer failed, so the container is replaced; every later request
/// is 500/50002 at once.
#[actix_web::test]
async fn out_of_order_sequence_fails_the_producer_and_health_says_so() {
    let f = Faulty::start().await;
    f.inject(
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
        1,
    );
    let r = f.produce(&["a", "b"]).await;
    r.assert_exact(
        500,
        &failed_body(
            2,
            50002,
            "Broker: Broker received an out of order sequence number",
        ),
    );
    assert_retry_after(&r, None);

    assert_producer_failed(&f.app).await;
    let r = f.produce(&["c"]).await;
    r.assert_exact(
        500,
        r#"{"error_code":50002,"message":"The Kafka producer failed and cannot recover."}"#,
    );
    assert_retry_after(&r, None);
    assert_eq!(f.cluster().high_watermarks(TOPIC, 1).await, [0]);
    assert_eq!(f.produced("50002").await, 2.0);
    f.app.stop().await.unwrap();
}

/// UNKNOWN_PRODUCER_ID (the broker forgot the producer, its records deleted by retention):
/// for a batch sent for the first time with nothing unacknowledged before it, librdkafka
/// bumps the epoch and sends it again, and the partner sees nothing of it. For a batch
/// already retried once, sending it again could write it twice: librdkafka fails the
/// producer for good, as for OUT_OF_ORDER_SEQUENCE_NUMBER.
#[actix_web::test]
async fn unknown_producer_id_is_recovered_unless_the_batch_was_retried() {
    let f = Faulty::start().await;
    let r = f.produce(&["a"]).await;
    r.assert_exact(200, &written_body(0..1));

    f.inject(
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID,
        TRANSIENT,
    );
    let r = f.produce(&["b", "c"]).await;
    r.assert_exact(200, &written_body(1..3));
    assert_retry_after(&r, None);
    assert_eq!(f.written(3).await, ["a", "b", "c"]);

    f.mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID,
        ],
    );
    let r = f.produce(&["d"]).await;
    r.assert_exact(500, &failed_body(1, 50002, "Broker: Unknown Producer Id"));
    assert_retry_after(&r, None);
    assert_producer_failed(&f.app).await;
    assert_eq!(f.cluster().high_watermarks(TOPIC, 1).await, [3]);
    assert_eq!(f.produced("ok").await, 3.0);
    assert_eq!(f.produced("50002").await, 1.0);
    f.app.stop().await.unwrap();
}
