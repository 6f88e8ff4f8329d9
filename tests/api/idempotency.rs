//! `Idempotency-Key` end to end: real `redis-server`s as the shared store, the tansu broker
//! (or librdkafka's mock cluster where a fault or a slow broker is needed), and what lands
//! in Kafka read back with an independent consumer.

use std::time::Duration;

use futures_util::future::join_all;
use kafka_rest_proxy::config::OnStoreError;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::helpers::{
    mock_cluster, sample, wait_until, Cluster, Policy, RedisServer, Response, TestApp,
};

const KEY: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";
const STORE_UNAVAILABLE: &str =
    r#"{"error_code":50304,"message":"The idempotency store is unavailable; retry the request."}"#;

async fn keyed(app: &TestApp, topic: &str, key: &str, body: &str) -> Response {
    app.produce_with(topic, &[(KEY, key)], body).await
}

fn values(records: &[crate::helpers::Consumed]) -> Vec<String> {
    let mut values: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    values.sort();
    values
}

#[track_caller]
fn assert_replay_of(first: &Response, retry: &Response) {
    assert_eq!(first.header(REPLAYED), None, "{first:?}");
    assert_eq!(retry.header(REPLAYED), Some("true"), "{retry:?}");
    assert_eq!(
        (
            retry.status,
            retry.body.as_str(),
            retry.header("content-type")
        ),
        (
            first.status,
            first.body.as_str(),
            first.header("content-type")
        ),
    );
}

#[actix_web::test]
async fn a_retry_on_any_task_gets_the_first_answer_and_each_record_is_in_kafka_once() {
    let redis = RedisServer::start();
    let cluster = Cluster::plaintext();
    let mut settings = redis.store_for(cluster.settings());
    settings.idempotency.record_header = Some("Idempotency-Key".into());
    let a = TestApp::spawn_ready(settings).await;
    let b = TestApp::spawn_ready(redis.store_for(cluster.settings())).await;
    let topic = cluster.create_topic(2).await;
    let body = r#"{"records":[{"key":"k1","value":"first"},{"key":"k2","value":"second"}]}"#;

    let first = keyed(&a, &topic, "order-7781", body).await;
    assert_eq!(first.status, 200, "{first:?}");
    let same_task = keyed(&a, &topic, "order-7781", body).await;
    assert_replay_of(&first, &same_task);
    // Behind the load balancer a retry usually reaches another task.
    let other_task = keyed(&b, &topic, "order-7781", body).await;
    assert_replay_of(&first, &other_task);

    let records = cluster.consume(&topic, 2, 2).await;
    assert_eq!(values(&records), [r#""first""#, r#""second""#]);
    for record in &records {
        assert_eq!(
            record.headers,
            [("Idempotency-Key".to_owned(), Some(b"order-7781".to_vec()))]
        );
    }
    // One entry, under the prefix, named by a hash: the key is not in the store in clear.
    let entries = redis.keys("*");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].starts_with("krp:idempotency:"), "{entries:?}");
    assert!(!entries[0].contains("order-7781"), "{entries:?}");
    let m = a.metrics().await;
    assert_eq!(
        sample(
            &m,
            r#"kafka_rest_idempotency_requests_total{outcome="replayed"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            r#"kafka_rest_idempotency_settled_total{result="stored"}"#
        ),
        1.0
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[actix_web::test]
async fn a_key_used_for_another_request_is_422_and_keys_are_scoped() {
    let redis = RedisServer::start();
    let cluster = Cluster::plaintext();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = redis.store_for(cluster.settings());
    let topic = cluster.create_topic(1).await;
    let other_topic = cluster.create_topic(1).await;
    Policy::default()
        .api_key("partner-a", "key-a")
        .api_key("partner-b", "key-b")
        .grant(
            &["api_key:partner-a", "api_key:partner-b"],
            &[&topic, &other_topic],
            &["produce"],
        )
        .apply(&mut settings, dir.path());
    let app = TestApp::spawn_ready(settings).await;
    let send = |who: &'static str, topic: String, body: &'static str| {
        let app = &app;
        async move {
            app.produce_with(&topic, &[("x-api-key", who), (KEY, "k-1")], body)
                .await
        }
    };
    let body = r#"{"records":[{"value":1}]}"#;
    assert_eq!(send("key-a", topic.clone(), body).await.status, 200);

    let other_body = send("key-a", topic.clone(), r#"{"records":[{"value":2}]}"#).await;
    other_body.assert_exact(
        422,
        r#"{"error_code":422,"message":"This Idempotency-Key was already used for a different request (another body, path or Content-Type); use a new key for a new request."}"#,
    );
    // A Content-Type that changes nothing of the body is still another request.
    let other_type = app
        .request(
            "POST",
            &format!("/topics/{topic}"),
            &[
                (
                    "content-type",
                    "application/vnd.kafka.json.v2+json; charset=utf-8",
                ),
                ("x-api-key", "key-a"),
                (KEY, "k-1"),
            ],
            body,
        )
        .await;
    assert_eq!(other_type.status, 422, "{other_type:?}");
    // Another principal, or another topic, with the same key and body: its own request.
    let b = send("key-b", topic.clone(), body).await;
    assert_eq!(
        (b.status.as_u16(), b.header(REPLAYED)),
        (200, None),
        "{b:?}"
    );
    let t = send("key-a", other_topic.clone(), body).await;
    assert_eq!(
        (t.status.as_u16(), t.header(REPLAYED)),
        (200, None),
        "{t:?}"
    );

    assert_eq!(values(&cluster.consume(&topic, 1, 2).await), ["1", "1"]);
    assert_eq!(values(&cluster.consume(&other_topic, 1, 1).await), ["1"]);
    assert_eq!(
        sample(
            &app.metrics().await,
            r#"kafka_rest_idempotency_requests_total{outcome="mismatch"}"#
        ),
        2.0
    );
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn malformed_keys_are_400_and_the_policy_can_require_one() {
    let cluster = Cluster::plaintext();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = cluster.settings();
    let topic = cluster.create_topic(1).await;
    let policy = Policy::default()
        .api_key("strict", "key-s")
        .api_key("lax", "key-l")
        .grant(&["api_key:strict", "api_key:lax"], &[&topic], &["produce"]);
    let policy = format!(
        "{}\n[principals.\"api_key:strict\"]\nrequire_idempotency_key = true\n",
        policy.toml()
    );
    std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
    settings.auth.enabled = true;
    settings.auth.policy_file = Some(dir.path().join("policy.toml"));
    let app = TestApp::spawn_ready(settings).await;
    let body = r#"{"records":[{"value":1}]}"#;
    let malformed = r#"{"error_code":400,"message":"The Idempotency-Key header must be 1 to 255 visible ASCII characters."}"#;
    let long = "k".repeat(256);
    for bad in ["has space", "\"\"", long.as_str()] {
        app.produce_with(&topic, &[("x-api-key", "key-l"), (KEY, bad)], body)
            .await
            .assert_exact(400, malformed);
    }
    app.produce_with(
        &topic,
        &[("x-api-key", "key-l"), (KEY, "a"), (KEY, "b")],
        body,
    )
    .await
    .assert_exact(
        400,
        r#"{"error_code":400,"message":"Send the Idempotency-Key header only once."}"#,
    );
    app.produce_with(&topic, &[("x-api-key", "key-s")], body)
        .await
        .assert_exact(
            400,
            r#"{"error_code":400,"message":"This principal must send an Idempotency-Key header with each produce request."}"#,
        );
    let ok = app
        .produce_with(
            &topic,
            &[("x-api-key", "key-s"), (KEY, "\"quoted-1\"")],
            body,
        )
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    // The quotes of a Structured Field string are not part of the key.
    let same = app
        .produce_with(&topic, &[("x-api-key", "key-s"), (KEY, "quoted-1")], body)
        .await;
    assert_replay_of(&ok, &same);
    assert_eq!(
        app.produce_with(&topic, &[("x-api-key", "key-l")], body)
            .await
            .status,
        200
    );
    // A stream has no single outcome to keep: a key there is refused, not ignored.
    let cluster_id = cluster.cluster_id().await;
    let stream = app
        .request(
            "POST",
            &format!("/v3/clusters/{cluster_id}/topics/{topic}/records"),
            &[
                ("content-type", "application/json"),
                ("x-api-key", "key-l"),
                (KEY, "s-1"),
            ],
            r#"{"value":{"type":"JSON","data":1}}"#,
        )
        .await;
    stream.assert_v3(
        400,
        r#"{"error_code":400,"message":"Idempotency-Key is not supported on a stream of records; send the records with POST .../records:batch or API v2 to retry them safely."}"#,
    );
    assert_eq!(values(&cluster.consume(&topic, 1, 2).await), ["1", "1"]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn a_v3_batch_is_replayed_whole() {
    let redis = RedisServer::start();
    let cluster = Cluster::plaintext();
    let app = TestApp::spawn_ready(redis.store_for(cluster.settings())).await;
    let topic = cluster.create_topic(1).await;
    let cluster_id = cluster.cluster_id().await;
    let path = format!("/v3/clusters/{cluster_id}/topics/{topic}/records:batch");
    let body = r#"{"entries":[{"id":"1","value":{"type":"JSON","data":"a"}},{"id":"2","value":{"type":"JSON","data":"b"}}]}"#;
    let send = || {
        app.request(
            "POST",
            &path,
            &[("content-type", "application/json"), (KEY, "batch-1")],
            body,
        )
    };
    let first = send().await;
    assert_eq!(first.status, 207, "{first:?}");
    let retry = send().await;
    assert_replay_of(&first, &retry);
    assert_eq!(
        values(&cluster.consume(&topic, 1, 2).await),
        [r#""a""#, r#""b""#]
    );
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn parallel_requests_with_one_key_produce_once_and_the_others_get_409() {
    let redis = RedisServer::start();
    let (mock, settings) = mock_cluster(1, "slow", 1);
    // Two tasks sharing one store.
    let a = TestApp::spawn_ready(redis.store_for(settings)).await;
    let b = TestApp::spawn_ready(redis.store_for(Cluster::at(mock.bootstrap_servers()).settings()))
        .await;
    let body = r#"{"records":[{"value":"once"}]}"#;
    // Warm the topic's metadata, then hold every produce for a while.
    assert_eq!(
        a.produce("slow", r#"{"records":[{"value":"warm"}]}"#)
            .await
            .status,
        200
    );
    assert_eq!(
        b.produce("slow", r#"{"records":[{"value":"warm"}]}"#)
            .await
            .status,
        200
    );
    mock.broker_round_trip_time(1, Duration::from_millis(1_500))
        .unwrap();
    let requests = (0..8).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        keyed(app, "slow", "same-key", body)
    });
    let responses = join_all(requests).await;
    let first: Vec<&Response> = responses
        .iter()
        .filter(|r| r.status == 200 && r.header(REPLAYED).is_none())
        .collect();
    assert_eq!(first.len(), 1, "{responses:#?}");
    for r in &responses {
        match r.status.as_u16() {
            200 => assert_eq!(r.body, first[0].body),
            409 => {
                r.assert_exact(
                    409,
                    r#"{"error_code":409,"message":"A request with this Idempotency-Key is still being processed; retry after it completes."}"#,
                );
                assert_eq!(r.header("retry-after"), Some("1"));
            }
            _ => panic!("{r:?}"),
        }
    }
    assert!(
        responses.iter().any(|r| r.status == 409),
        "the broker's delay held the first request: {responses:#?}"
    );
    mock.broker_round_trip_time(1, Duration::ZERO).unwrap();
    let retry = keyed(&b, "slow", "same-key", body).await;
    assert_replay_of(first[0], &retry);
    let records = Cluster::at(mock.bootstrap_servers())
        .consume("slow", 1, 3)
        .await;
    assert_eq!(
        values(&records),
        [r#""once""#, r#""warm""#, r#""warm""#],
        "one copy of the keyed record"
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[actix_web::test]
async fn a_partial_failure_is_replayed_and_a_whole_failure_runs_again() {
    let redis = RedisServer::start();
    let (mock, settings) = mock_cluster(2, "faulty", 2);
    let mut settings = redis.store_for(settings);
    settings.kafka.message_timeout_ms = 2_000;
    let app = TestApp::spawn_ready(settings).await;
    // Partitions 0 and 1 have different leaders: two produce requests, the first fails.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD],
    );
    let two = r#"{"records":[{"value":"p0","partition":0},{"value":"p1","partition":1}]}"#;
    let partial = keyed(&app, "faulty", "partial", two).await;
    assert_eq!(partial.status, 200, "{partial:?}");
    let failed = partial.json()["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["error_code"] == 50002)
        .count();
    assert_eq!(failed, 1, "{partial:?}");
    // The retry must not write the record that succeeded again: it gets the first answer,
    // failed record included.
    let retry = keyed(&app, "faulty", "partial", two).await;
    assert_replay_of(&partial, &retry);

    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD],
    );
    let one = r#"{"records":[{"value":"whole","partition":0}]}"#;
    let whole = keyed(&app, "faulty", "whole", one).await;
    assert_eq!(whole.status, 500, "nothing written: {whole:?}");
    // Nothing was written, so nothing was kept: the retry runs for real.
    let retry = keyed(&app, "faulty", "whole", one).await;
    assert_eq!(
        (retry.status.as_u16(), retry.header(REPLAYED)),
        (200, None),
        "{retry:?}"
    );

    let records = Cluster::at(mock.bootstrap_servers())
        .consume("faulty", 2, 2)
        .await;
    assert_eq!(values(&records).len(), 2, "{records:?}");
    assert!(values(&records).contains(&r#""whole""#.to_owned()));
    let m = app.metrics().await;
    assert_eq!(
        sample(
            &m,
            r#"kafka_rest_idempotency_settled_total{result="released"}"#
        ),
        1.0
    );
    app.stop().await.unwrap();
}

/// A record that timed out may be in Kafka (the broker appended it, the answer came too
/// late), so a request whose every record timed out is kept like a written one: its retry
/// gets the 500 back instead of writing the record a second time.
#[actix_web::test]
async fn a_request_that_timed_out_is_kept_because_its_records_may_be_written() {
    let redis = RedisServer::start();
    let (mock, settings) = mock_cluster(1, "late", 1);
    let mut settings = redis.store_for(settings);
    settings.kafka.message_timeout_ms = 2_000;
    let app = TestApp::spawn_ready(settings).await;
    assert_eq!(
        app.produce("late", r#"{"records":[{"value":"warm"}]}"#)
            .await
            .status,
        200
    );
    // The broker appends, but answers after the delivery timeout.
    mock.broker_round_trip_time(1, Duration::from_millis(4_500))
        .unwrap();
    let body = r#"{"records":[{"value":"late"}]}"#;
    let first = keyed(&app, "late", "timed-out", body).await;
    assert_eq!(first.status, 500, "{first:?}");
    assert_eq!(first.json()["offsets"][0]["error_code"], 50003, "{first:?}");
    mock.broker_round_trip_time(1, Duration::ZERO).unwrap();
    let retry = keyed(&app, "late", "timed-out", body).await;
    assert_replay_of(&first, &retry);
    let records = Cluster::at(mock.bootstrap_servers())
        .consume("late", 1, 2)
        .await;
    assert_eq!(
        values(&records),
        [r#""late""#, r#""warm""#],
        "written once, by the first request"
    );
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn without_its_store_a_keyed_request_is_refused_and_produces_nothing() {
    let mut redis = RedisServer::start();
    let cluster = Cluster::plaintext();
    let app = TestApp::spawn_ready(redis.store_for(cluster.settings())).await;
    let mut proceed = redis.store_for(cluster.settings());
    proceed.idempotency.on_store_error = OnStoreError::Proceed;
    let unguarded = TestApp::spawn_ready(proceed).await;
    let topic = cluster.create_topic(1).await;
    assert_eq!(
        keyed(
            &app,
            &topic,
            "before",
            r#"{"records":[{"value":"before"}]}"#
        )
        .await
        .status,
        200
    );

    redis.stop();
    let r = keyed(&app, &topic, "k", r#"{"records":[{"value":"refused"}]}"#).await;
    r.assert_exact(503, STORE_UNAVAILABLE);
    assert_eq!(r.header("retry-after"), Some("1"));
    // Requests without a key do not need the store.
    assert_eq!(
        app.produce(&topic, r#"{"records":[{"value":"unkeyed"}]}"#)
            .await
            .status,
        200
    );
    // on_store_error = "proceed": produced, and the response says it was without the guarantee.
    let r = keyed(
        &unguarded,
        &topic,
        "p",
        r#"{"records":[{"value":"unguarded"}]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("idempotency-store"), Some("unavailable"));

    redis.resume();
    // The connection comes back by itself; until it has, keyed requests are refused (and
    // produce nothing).
    let mut attempt = 0;
    wait_until(Duration::from_secs(10), async || {
        attempt += 1;
        let r = keyed(
            &app,
            &topic,
            &format!("after-{attempt}"),
            r#"{"records":[{"value":"after"}]}"#,
        )
        .await;
        match r.status.as_u16() {
            200 => Ok(()),
            503 => Err(format!("still refused: {r:?}")),
            _ => panic!("{r:?}"),
        }
    })
    .await;
    let retry = keyed(
        &app,
        &topic,
        &format!("after-{attempt}"),
        r#"{"records":[{"value":"after"}]}"#,
    )
    .await;
    assert_eq!(retry.header(REPLAYED), Some("true"), "{retry:?}");

    assert_eq!(
        values(&cluster.consume(&topic, 1, 4).await),
        [
            r#""after""#,
            r#""before""#,
            r#""unguarded""#,
            r#""unkeyed""#
        ]
    );
    let m = app.metrics().await;
    assert!(
        sample(
            &m,
            r#"kafka_rest_idempotency_store_errors_total{operation="claim"}"#
        ) >= 1.0
    );
    assert_eq!(
        sample(
            &unguarded.metrics().await,
            r#"kafka_rest_idempotency_requests_total{outcome="unguarded"}"#
        ),
        1.0
    );
    app.stop().await.unwrap();
    unguarded.stop().await.unwrap();
}

#[actix_web::test]
async fn a_kept_outcome_expires_after_its_time_to_live() {
    let redis = RedisServer::start();
    let cluster = Cluster::plaintext();
    let mut settings = redis.store_for(cluster.settings());
    // Short enough to wait for: every bound of a request shrinks with the lease.
    settings.kafka.message_timeout_ms = 1_000;
    settings.kafka.queue_full_wait_ms = 100;
    settings.metadata.request_timeout_ms = 500;
    settings.server.request_timeout_ms = 2_500;
    settings.idempotency.lease_ms = 3_000;
    settings.idempotency.ttl_ms = 3_000;
    let app = TestApp::spawn_ready(settings).await;
    let topic = cluster.create_topic(1).await;
    let body = r#"{"records":[{"value":"v"}]}"#;
    let first = keyed(&app, &topic, "short-lived", body).await;
    assert_eq!(first.status, 200);
    assert_replay_of(&first, &keyed(&app, &topic, "short-lived", body).await);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let late = keyed(&app, &topic, "short-lived", body).await;
    assert_eq!(
        (late.status.as_u16(), late.header(REPLAYED)),
        (200, None),
        "{late:?}"
    );
    assert_eq!(
        values(&cluster.consume(&topic, 1, 2).await),
        [r#""v""#, r#""v""#]
    );
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn the_redis_store_speaks_tls_with_an_auth_token() {
    let pki = crate::tls::pki();
    let dir = pki.dir.path();
    let redis = RedisServer::start_tls(
        &dir.join("server.pem"),
        &dir.join("server.key"),
        "s3cr3t-t0ken",
    );
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let store = |token: &str, ca: bool| {
        let mut settings = redis.store_for(cluster.settings());
        settings.idempotency.redis.auth_token = Some(token.to_owned().into());
        settings.idempotency.redis.ca_file = ca.then(|| dir.join("ca.pem"));
        settings
    };
    let good = TestApp::spawn_ready(store("s3cr3t-t0ken", true)).await;
    let body = r#"{"records":[{"value":"tls"}]}"#;
    let first = keyed(&good, &topic, "over-tls", body).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_replay_of(&first, &keyed(&good, &topic, "over-tls", body).await);
    // A wrong token, or a server certificate the service does not trust: no store.
    let wrong_token = TestApp::spawn_ready(store("not-the-token", true)).await;
    keyed(&wrong_token, &topic, "k", body)
        .await
        .assert_exact(503, STORE_UNAVAILABLE);
    let untrusted = TestApp::spawn_ready(store("s3cr3t-t0ken", false)).await;
    keyed(&untrusted, &topic, "k", body)
        .await
        .assert_exact(503, STORE_UNAVAILABLE);
    assert_eq!(values(&cluster.consume(&topic, 1, 1).await), [r#""tls""#]);
    for app in [good, wrong_token, untrusted] {
        app.stop().await.unwrap();
    }
}
