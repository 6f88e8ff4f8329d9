//! Guard rails: body and record limits, rate limits, overload shedding, slow clients, a
//! full producer queue, and per-topic JSON Schema validation.

use std::time::{Duration, Instant};

use kafka_rest_proxy::config::{Rate, Settings, TopicSchema};
use tokio::io::AsyncWriteExt;

use crate::helpers::{
    body_of, mock_cluster, read_response, Cluster, Policy, Response, TestApp, BINARY_V2, JSON_V2,
    V2,
};

#[actix_web::test]
async fn a_huge_content_length_is_refused_before_the_body_is_sent() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let mut settings = cluster.settings();
    settings.server.max_body_bytes = 1000;
    settings.limits.max_in_flight_bytes = 1000;
    let app = TestApp::spawn_ready(settings).await;
    let started = Instant::now();
    let mut stream = app
        .raw(&format!(
            "POST /topics/{topic} HTTP/1.1\r\nHost: t\r\nContent-Type: {JSON_V2}\r\nContent-Length: 5000000000\r\n\r\n"
        ),
    )
    .await;
    let response = read_response(&mut stream, Duration::from_secs(5)).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        body_of(&response),
        r#"{"error_code":413,"message":"Request body is larger than the limit of 1000 bytes."}"#
    );
    assert!(response
        .to_ascii_lowercase()
        .contains(&format!("content-type: {V2}")));
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn a_chunked_body_over_the_limit_is_cut_off() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let mut settings = cluster.settings();
    settings.server.max_body_bytes = 1000;
    settings.limits.max_in_flight_bytes = 1000;
    let app = TestApp::spawn_ready(settings).await;
    let mut stream = app
        .raw(&format!(
            "POST /topics/{topic} HTTP/1.1\r\nHost: t\r\nContent-Type: {JSON_V2}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
    )
    .await;
    let chunk = "x".repeat(400);
    for _ in 0..3 {
        let _ = stream
            .write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
            .await;
    }
    let response = read_response(&mut stream, Duration::from_secs(5)).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![0]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn too_many_records_and_too_large_records_are_422_and_produce_nothing() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let mut settings = cluster.settings();
    settings.limits.max_records_per_request = 3;
    settings.limits.max_record_bytes = 20;
    let app = TestApp::spawn_ready(settings).await;
    let path = format!("/topics/{topic}");
    let r = app
        .post(
            &path,
            JSON_V2,
            r#"{"records":[{"value":1},{"value":2},{"value":3},{"value":4}]}"#,
        )
        .await;
    r.assert_exact(
        422,
        r#"{"error_code":422,"message":"Too many records: 4 in the request, the limit is 3."}"#,
    );
    let r = app
        .post(
            &path,
            JSON_V2,
            r#"{"records":[{"value":"small"},{"key":"0123456789","value":"0123456789"}]}"#,
        )
        .await;
    r.assert_exact(
        422,
        r#"{"error_code":422,"message":"Record 1 is 24 bytes (key + value), the limit is 20 bytes."}"#,
    );
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![0]);
    app.stop().await.unwrap();
}

/// Auth on with two API keys ("key-a", "key-b") granted every topic.
/// Opens a produce request that announces 800 body bytes and sends one, and waits until it
/// is in flight and holds those 800 bytes of the budget (taken from `Content-Length` just
/// after the request is counted in flight, before the first read of the body).
async fn hold_800_bytes(app: &TestApp, topic: &str, headers: &str) -> tokio::net::TcpStream {
    let slow = app
        .raw(&format!(
            "POST /topics/{topic} HTTP/1.1\r\nHost: t\r\n{headers}Content-Type: {JSON_V2}\r\nContent-Length: 800\r\n\r\n{{"
        ))
        .await;
    app.wait_for_in_flight(1).await;
    app.wait_for_sample("kafka_rest_in_flight_body_bytes", 800.0)
        .await;
    slow
}

fn two_partners(settings: &mut Settings, dir: &std::path::Path) {
    Policy::default()
        .api_key("partner-a", "key-a")
        .api_key("partner-b", "key-b")
        .grant(
            &["api_key:partner-a", "api_key:partner-b"],
            &["*"],
            &["produce"],
        )
        .apply(settings, dir);
}

async fn produce_as(app: &TestApp, topic: &str, key: &str, records: usize) -> Response {
    produce_values(app, topic, key, records, "0123456789").await
}

/// `records` records whose value is the JSON string `value` (its length + 2 bytes each).
async fn produce_values(
    app: &TestApp,
    topic: &str,
    key: &str,
    records: usize,
    value: &str,
) -> Response {
    let record = format!(r#"{{"value":"{value}"}}"#);
    let body = format!(r#"{{"records":[{}]}}"#, vec![record; records].join(","));
    app.produce_with(topic, &[("x-api-key", key)], &body).await
}

#[actix_web::test]
async fn a_partner_over_its_record_rate_gets_429_and_others_do_not() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = cluster.settings();
    two_partners(&mut settings, dir.path());
    settings.limits.max_records_per_request = 10;
    settings.limits.rate.default = Rate {
        records_per_second: 5,
        records_burst: Some(10),
        ..Rate::default()
    };
    let app = TestApp::spawn_ready(settings).await;

    assert_eq!(produce_as(&app, &topic, "key-a", 10).await.status, 200);
    let r = produce_as(&app, &topic, "key-a", 4).await;
    r.assert_exact(
        429,
        r#"{"error_code":429,"message":"Rate limit exceeded: 5 records/s (for principal)."}"#,
    );
    let retry_after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{r:?}");
    assert_eq!(r.header("ratelimit-limit"), Some("10"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(
        r.header("ratelimit-reset"),
        Some(retry_after.to_string().as_str())
    );

    // Another partner is unaffected.
    assert_eq!(produce_as(&app, &topic, "key-b", 10).await.status, 200);
    // Nothing of the refused request was written: 10 + 10.
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![20]);

    // A sleep, because what must pass is time itself: the bucket refills at 5 records/s,
    // and Retry-After says when the 4 records fit.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(produce_as(&app, &topic, "key-a", 4).await.status, 200);
    let m = app.metrics().await;
    assert!(
        m.contains(r#"kafka_rest_rate_limited_total{scope="principal",unit="records"} 1"#),
        "{m}"
    );
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn a_partner_over_its_byte_rate_gets_429() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = cluster.settings();
    two_partners(&mut settings, dir.path());
    settings.server.max_body_bytes = 4000;
    settings.limits.rate.principals.insert(
        "api_key:partner-a".into(),
        Rate {
            bytes_per_second: 100,
            bytes_burst: Some(4000),
            ..Rate::default()
        },
    );
    let app = TestApp::spawn_ready(settings).await;
    // Each record's value is 100 characters plus quotes: 102 bytes. 30 records: 3060 bytes
    // of the 4000-byte burst; 10 more (1020 bytes) do not fit.
    let value = "v".repeat(100);
    let r = produce_values(&app, &topic, "key-a", 30, &value).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = produce_values(&app, &topic, "key-a", 10, &value).await;
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(
        r.json()["message"],
        "Rate limit exceeded: 100 bytes/s (for principal)."
    );
    assert_eq!(r.header("ratelimit-limit"), Some("4000"));
    let r = produce_values(&app, &topic, "key-b", 30, &value).await;
    assert_eq!(r.status, 200, "{r:?}");
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn a_full_producer_queue_is_503_within_the_bound() {
    let (mock, mut settings) = mock_cluster(1, "slow", 1);
    settings.kafka.message_timeout_ms = 8_000;
    settings.kafka.queue_full_wait_ms = 500;
    settings
        .kafka
        .librdkafka
        .0
        .insert("queue.buffering.max.messages".into(), "5".into());
    // Queue depth reaches the metrics with librdkafka's statistics: report them often.
    settings.metrics.statistics_interval_ms = 100;
    let app = TestApp::spawn_ready(settings).await;
    let r = app
        .post("/topics/slow", JSON_V2, r#"{"records":[{"value":0}]}"#)
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    // The broker stops answering: five records fill the queue and wait for it.
    mock.broker_down(1).unwrap();
    let filler = {
        let body = format!(r#"{{"records":[{}]}}"#, [r#"{"value":1}"#; 5].join(","));
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        let url = format!("{}/topics/slow", app.address);
        actix_web::rt::spawn(async move {
            client
                .post(url)
                .insert_header(("content-type", JSON_V2))
                .send_body(body)
                .await
                .map(|r| r.status().as_u16())
        })
    };
    app.wait_for_sample("kafka_rest_producer_queue_messages", 5.0)
        .await;
    let started = Instant::now();
    let r = app
        .post(
            "/topics/slow",
            JSON_V2,
            r#"{"records":[{"value":2},{"value":3}]}"#,
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"));
    for entry in r.json()["offsets"].as_array().unwrap() {
        assert_eq!(entry["error_code"], 50302, "{r:?}");
    }
    // The bounded wait (500 ms), not the delivery timeout (8 s).
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    mock.broker_up(1).unwrap();
    assert_eq!(filler.await.unwrap().unwrap(), 200);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn slow_clients_are_cut_off() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let mut settings = cluster.settings();
    settings.limits.header_read_timeout_ms = 500;
    settings.limits.body_read_timeout_ms = 500;
    let app = TestApp::spawn_ready(settings).await;

    // Headers that never finish.
    let mut stream = app
        .raw("POST /topics/x HTTP/1.1\r\nHost: t\r\nContent-Ty")
        .await;
    let response = read_response(&mut stream, Duration::from_secs(5)).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response:?}");

    // A body that never finishes.
    let started = Instant::now();
    let mut stream = app
        .raw(&format!(
            "POST /topics/{topic} HTTP/1.1\r\nHost: t\r\nContent-Type: {JSON_V2}\r\nContent-Length: 100\r\n\r\n{{\"records\":"
        ),
    )
    .await;
    let response = read_response(&mut stream, Duration::from_secs(5)).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert_eq!(
        body_of(&response),
        r#"{"error_code":408,"message":"The request body did not arrive within 500 ms."}"#
    );
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![0]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn in_flight_requests_and_bytes_are_bounded() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let mut settings = cluster.settings();
    settings.limits.max_in_flight_requests = 1;
    settings.server.max_body_bytes = 1000;
    settings.limits.max_in_flight_bytes = 1000;
    let app = TestApp::spawn_ready(settings).await;
    let overloaded =
        r#"{"error_code":50302,"message":"The service is overloaded; retry the request."}"#;

    // One request in flight (its body half sent) holds the only slot.
    let mut slow = hold_800_bytes(&app, &topic, "").await;
    let r = app.produce(&topic, r#"{"records":[{"value":1}]}"#).await;
    r.assert_exact(503, overloaded);
    assert_eq!(r.header("retry-after"), Some("1"));
    drop(slow.shutdown().await);
    drop(slow);
    app.stop().await.unwrap();

    // Bytes: 800 announced bytes held, 500 more do not fit in 1000.
    let mut settings = cluster.settings();
    settings.server.max_body_bytes = 1000;
    settings.limits.max_in_flight_bytes = 1000;
    // The held request times out soon after the checks, so shutdown need not wait long.
    settings.limits.body_read_timeout_ms = 2_000;
    let app = TestApp::spawn_ready(settings).await;
    let _slow = hold_800_bytes(&app, &topic, "").await;
    let body = format!(r#"{{"records":[{{"value":"{}"}}]}}"#, "x".repeat(474));
    assert_eq!(body.len(), 500);
    let r = app.produce(&topic, &body).await;
    r.assert_exact(503, overloaded);
    // A smaller one still fits.
    let r = app.produce(&topic, r#"{"records":[{"value":1}]}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    let m = app.metrics().await;
    assert!(
        m.contains(r#"kafka_rest_shed_total{reason="bytes"} 1"#),
        "{m}"
    );
    app.stop().await.unwrap();
}

/// One partner's slow bodies hold at most its share of the in-flight bytes: past it that
/// partner is shed (503), while another partner still produces.
#[actix_web::test]
async fn a_partner_holding_its_share_of_in_flight_bytes_does_not_block_others() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = cluster.settings();
    two_partners(&mut settings, dir.path());
    settings.server.max_body_bytes = 1000;
    settings.limits.max_in_flight_bytes = 4000;
    settings.limits.max_in_flight_bytes_per_principal = 1000;
    // The held request times out soon after the checks, so shutdown need not wait long.
    settings.limits.body_read_timeout_ms = 2_000;
    let app = TestApp::spawn_ready(settings).await;

    // Partner A's slow body holds 800 of its 1000 bytes.
    let _slow = hold_800_bytes(&app, &topic, "X-API-Key: key-a\r\n").await;
    let body = format!(r#"{{"records":[{{"value":"{}"}}]}}"#, "x".repeat(474));
    assert_eq!(body.len(), 500);

    let r = app
        .produce_with(&topic, &[("x-api-key", "key-a")], &body)
        .await;
    r.assert_exact(
        503,
        r#"{"error_code":50302,"message":"The service is overloaded; retry the request."}"#,
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = app
        .produce_with(&topic, &[("x-api-key", "key-b")], &body)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![1]);
    let m = app.metrics().await;
    assert!(
        m.contains(r#"kafka_rest_shed_total{reason="principal_bytes"} 1"#),
        "{m}"
    );
    app.stop().await.unwrap();
}

const ORDER_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["id", "user"],
  "properties": {
    "id": {"type": "integer"},
    "user": {"type": "object", "properties": {"id": {"type": "string"}}},
    "amount": {"type": "number", "maximum": 1000}
  }
}"#;

/// The pipeline charges a request to its rate limit only once the checks before the rate
/// limit (record limits, JSON Schema validation) have passed: a refused request costs
/// nothing, so a partner fixing its payload is not then told to slow down.
#[actix_web::test]
async fn a_request_refused_before_the_rate_limit_is_not_charged() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("order.json"), ORDER_SCHEMA).unwrap();
    let mut settings = cluster.settings();
    settings.validation.schemas = vec![TopicSchema {
        topics: vec![topic.as_str().into()],
        value_schema: Some(dir.path().join("order.json")),
        key_schema: None,
        allow_binary: false,
    }];
    settings.limits.max_records_per_request = 10;
    // One full request per 10 s: a second charge within the test would be refused.
    settings.limits.rate.default = Rate {
        records_per_second: 1,
        records_burst: Some(10),
        ..Rate::default()
    };
    let app = TestApp::spawn_ready(settings).await;
    let batch = |value: &str| format!(r#"{{"records":[{}]}}"#, [value; 10].join(","));

    let invalid = app.produce(&topic, &batch(r#"{"value":{"id":"x"}}"#)).await;
    assert_eq!(invalid.json()["error_code"], 42203, "{invalid:?}");
    let too_many = app
        .produce(
            &topic,
            &batch(r#"{"value":{"id":1,"user":{}}}"#).replacen('[', "[{\"value\":null},", 1),
        )
        .await;
    assert_eq!(too_many.status, 422, "{too_many:?}");
    assert!(too_many.body.contains("Too many records"), "{too_many:?}");

    let valid = app
        .produce(&topic, &batch(r#"{"value":{"id":1,"user":{}}}"#))
        .await;
    assert_eq!(
        valid.status, 200,
        "the refused requests were charged: {valid:?}"
    );
    let again = app
        .produce(&topic, &batch(r#"{"value":{"id":1,"user":{}}}"#))
        .await;
    assert_eq!(again.status, 429, "the accepted one was: {again:?}");
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![10]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn json_schema_violations_are_listed_and_nothing_is_produced() {
    let cluster = Cluster::plaintext();
    let validated = cluster.create_topic(1).await;
    let free = cluster.create_topic(1).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("order.json"), ORDER_SCHEMA).unwrap();
    let mut settings = cluster.settings();
    settings.validation.schemas = vec![TopicSchema {
        topics: vec![validated.as_str().into()],
        value_schema: Some(dir.path().join("order.json")),
        key_schema: None,
        allow_binary: false,
    }];
    let app = TestApp::spawn_ready(settings).await;

    let r = app.produce(&validated, r#"{"records":[{"value":{"id":1,"user":{"id":"u1"},"amount":10}},{"value":{"id":2,"user":{"id":"u2"}}}]}"#).await;
    assert_eq!(r.status, 200, "valid records pass: {r:?}");

    let r = app.produce(&validated, r#"{"records":[{"value":{"id":3,"user":{"id":"ok"}}},{"value":{"id":"four","user":{"id":4}}},{"value":{"user":{},"amount":5000}},{"value":null}]}"#).await;
    assert_eq!(r.status, 422, "{r:?}");
    assert_eq!(r.header("content-type"), Some(V2));
    let body = r.json();
    assert_eq!(body["error_code"], 42203);
    assert_eq!(
        body["message"],
        format!(
            "2 of 4 records do not match the JSON Schema of topic '{validated}' (4 violations)."
        )
    );
    assert_eq!(body["violations_omitted"], 0);
    let mut got: Vec<(u64, String, String, String)> = body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
            (
                v["record"].as_u64().unwrap(),
                v["field"].as_str().unwrap().to_owned(),
                v["pointer"].as_str().unwrap().to_owned(),
                v["keyword"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let expected = [
        (1, "value", "/id", "type"),
        (1, "value", "/user/id", "type"),
        (2, "value", "", "required"),
        (2, "value", "/amount", "maximum"),
    ];
    let mut expected: Vec<(u64, String, String, String)> = expected
        .iter()
        .map(|(i, f, p, k)| (*i, f.to_string(), p.to_string(), k.to_string()))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(
        cluster.high_watermarks(&validated, 1).await,
        vec![2],
        "nothing more"
    );

    // A topic no schema covers takes anything.
    let r = app
        .produce(&free, r#"{"records":[{"value":"anything"}]}"#)
        .await;
    assert_eq!(r.status, 200);
    app.stop().await.unwrap();
}

/// A topic validating its values with [`ORDER_SCHEMA`], and the settings for it.
fn order_topic_settings(cluster: &Cluster, topic: &str, dir: &std::path::Path) -> Settings {
    std::fs::write(dir.join("order.json"), ORDER_SCHEMA).unwrap();
    let mut settings = cluster.settings();
    settings.validation.schemas = vec![TopicSchema {
        topics: vec![topic.into()],
        value_schema: Some(dir.join("order.json")),
        key_schema: None,
        allow_binary: false,
    }];
    settings
}

/// Values serde_json cannot hold as a `Value` used to skip validation and be written.
#[actix_web::test]
async fn values_that_cannot_be_validated_are_refused_and_nothing_is_produced() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_ready(order_topic_settings(&cluster, &topic, dir.path())).await;
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let cases = [
        (
            r#"{"id":1e400,"user":{}}"#.to_owned(),
            "a number beyond the range of a 64-bit float",
        ),
        (
            format!(r#"{{"id":1,"user":{{}},"x":{deep}}}"#),
            "nested deeper than 128 levels",
        ),
        (
            r#"{"id":1,"user":{"id":"\ud800"}}"#.to_owned(),
            "lone UTF-16 surrogate",
        ),
    ];
    for (value, why) in cases {
        let body =
            format!(r#"{{"records":[{{"value":{{"id":1,"user":{{}}}}}},{{"value":{value}}}]}}"#);
        let r = app.produce(&topic, &body).await;
        assert_eq!(r.status, 422, "{value}: {r:?}");
        let json = r.json();
        assert_eq!(json["error_code"], 42203, "{r:?}");
        let violation = &json["violations"][0];
        assert_eq!(violation["record"], 1, "{r:?}");
        assert_eq!(violation["field"], "value", "{r:?}");
        assert_eq!(violation["keyword"], "unvalidatable", "{r:?}");
        let message = violation["message"].as_str().unwrap();
        assert!(message.starts_with("cannot be validated: "), "{r:?}");
        assert!(message.contains(why), "{r:?}");
    }
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![0]);
    app.stop().await.unwrap();
}

/// Binary records cannot be validated: refused on a topic with a schema, unless its entry
/// sets `allow_binary`.
#[actix_web::test]
async fn binary_records_to_a_schema_topic_are_refused_unless_allowed() {
    let cluster = Cluster::plaintext();
    let strict = cluster.create_topic(1).await;
    let lenient = cluster.create_topic(1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = order_topic_settings(&cluster, &strict, dir.path());
    settings.validation.schemas.push(TopicSchema {
        topics: vec![lenient.as_str().into()],
        value_schema: Some(dir.path().join("order.json")),
        key_schema: None,
        allow_binary: true,
    });
    let app = TestApp::spawn_ready(settings).await;
    // "not an order" in base64.
    let body = r#"{"records":[{"value":"bm90IGFuIG9yZGVy"}]}"#;

    let r = app
        .post(&format!("/topics/{strict}"), BINARY_V2, body)
        .await;
    r.assert_exact(
        422,
        &format!(
            r#"{{"error_code":422,"message":"Topic '{strict}' validates its records against a JSON Schema, and binary-format records cannot be validated: send them in the json format."}}"#
        ),
    );
    assert_eq!(cluster.high_watermarks(&strict, 1).await, vec![0]);

    let r = app
        .post(&format!("/topics/{lenient}"), BINARY_V2, body)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(cluster.high_watermarks(&lenient, 1).await, vec![1]);
    app.stop().await.unwrap();
}

/// A violation's message quotes the offending value: each is cut, and the list stops at a
/// size cap, so five 900 kB values make an answer of a few kB, not 4.5 MB.
#[actix_web::test]
async fn violations_of_huge_values_make_a_small_answer() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_ready(order_topic_settings(&cluster, &topic, dir.path())).await;
    let huge = "x".repeat(900_000);
    let record = format!(r#"{{"value":{{"id":"{huge}","user":{{}}}}}}"#);
    let body = format!(r#"{{"records":[{}]}}"#, vec![record; 5].join(","));

    let r = app.produce(&topic, &body).await;
    assert_eq!(r.status, 422);
    assert!(r.body.len() < 40 * 1024, "{} bytes", r.body.len());
    let json = r.json();
    assert_eq!(json["error_code"], 42203);
    let violations = json["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 5, "{json}");
    for v in violations {
        let message = v["message"].as_str().unwrap();
        assert!(message.chars().count() <= 257, "{message}");
        assert!(
            message.starts_with(r#""xxxx"#) && message.ends_with('…'),
            "{message}"
        );
    }
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![0]);
    app.stop().await.unwrap();
}

#[test]
fn a_bad_schema_file_fails_startup_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.json"), r#"{"type": "objekt"}"#).unwrap();
    let mut settings = Cluster::at("127.0.0.1:1").settings();
    settings.validation.schemas = vec![TopicSchema {
        topics: vec!["t".into()],
        value_schema: Some(dir.path().join("broken.json")),
        key_schema: None,
        allow_binary: false,
    }];
    let err = kafka_rest_proxy::startup::Application::build(&settings)
        .err()
        .expect("startup fails")
        .to_string();
    assert!(err.contains("validation.schemas[0].value_schema"), "{err}");
    assert!(err.contains("broken.json"), "{err}");
}
