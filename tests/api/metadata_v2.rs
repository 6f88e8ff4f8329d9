//! API v2 metadata endpoints (SPEC §3) against a real broker.

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::helpers::{
    assert_rate_limited, mock_cluster, sample, two_calls_then_429, Cluster, OwnBroker, Policy,
    TestApp, JSON_V2, V2,
};

#[actix_web::test]
async fn metadata_endpoints() {
    let cluster = Cluster::plaintext();
    let app = TestApp::spawn_ready(cluster.settings()).await;
    let topic = cluster.create_topic(3).await;

    app.get("/").await.assert_exact(200, "{}");

    let r = app.get("/topics").await;
    assert_eq!(r.status, 200);
    let names: Vec<String> = serde_json::from_str(&r.body).unwrap();
    assert!(names.contains(&topic), "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with("__")), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    // tansu is one broker, id 111; replicas are empty because tansu reports none.
    app.get("/brokers")
        .await
        .assert_exact(200, r#"{"brokers":[111]}"#);

    let r = app.get(&format!("/topics/{topic}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    assert_eq!(body["name"], topic.as_str());
    assert_eq!(body["configs"], serde_json::json!({}));
    let partitions = body["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3);
    for (i, p) in partitions.iter().enumerate() {
        assert_eq!(p["partition"], i);
        assert_eq!(p["leader"], 111);
        assert!(p["replicas"].is_array());
    }

    let r = app.get(&format!("/topics/{topic}/partitions")).await;
    assert_eq!(r.json(), body["partitions"]);

    let r = app.get(&format!("/topics/{topic}/partitions/2")).await;
    assert_eq!(r.json(), body["partitions"][2]);

    app.get(&format!("/topics/{topic}/partitions/3"))
        .await
        .assert_exact(
            404,
            r#"{"error_code":40402,"message":"Partition not found."}"#,
        );
    app.get("/topics/missing-topic-xyz")
        .await
        .assert_exact(404, r#"{"error_code":40401,"message":"Topic not found."}"#);
    app.get("/topics/missing-topic-xyz/partitions")
        .await
        .assert_exact(404, r#"{"error_code":40401,"message":"Topic not found."}"#);
    app.stop().await.unwrap();
}

/// The metadata endpoints are served from the caches: fifty calls make one listing request
/// and at most one topic request to the cluster, not one each.
#[actix_web::test]
async fn metadata_endpoints_do_not_ask_the_cluster_each_time() {
    let cluster = Cluster::plaintext();
    let app = TestApp::spawn_ready(cluster.settings()).await;
    let topic = cluster.create_topic(2).await;
    for _ in 0..10 {
        for path in [
            "/topics".to_owned(),
            "/brokers".to_owned(),
            format!("/topics/{topic}"),
            format!("/topics/{topic}/partitions"),
            format!("/topics/{topic}/partitions/1"),
        ] {
            let r = app.get(&path).await;
            assert_eq!(r.status, 200, "{path}: {r:?}");
        }
    }
    let m = app.metrics().await;
    let requests = |reason: &str| {
        sample(
            &m,
            &format!(r#"kafka_rest_metadata_requests_total{{reason="{reason}"}}"#),
        )
    };
    assert_eq!(requests("listing"), 1.0, "{m}");
    assert!(requests("topic") <= 1.0, "{m}");
    app.stop().await.unwrap();
}

/// Metadata calls count against the caller's rate limit, one record each.
#[actix_web::test]
async fn a_caller_over_its_rate_gets_429_on_metadata_endpoints() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let mut settings = cluster.settings();
    two_calls_then_429(&mut settings);
    let app = TestApp::spawn_ready(settings).await;
    assert_eq!(app.get("/topics").await.status, 200);
    assert_eq!(app.get(&format!("/topics/{topic}")).await.status, 200);
    let r = app.get("/brokers").await;
    assert_rate_limited(&r);
    app.stop().await.unwrap();
}

/// `GET /topics/{t}/partitions/{p}/offsets`: the low and high watermarks, asked of the
/// partition's leader on every call, in Confluent's shape and with its errors.
#[actix_web::test]
async fn partition_offsets_are_the_watermarks() {
    let cluster = Cluster::plaintext();
    let app = TestApp::spawn_ready(cluster.settings()).await;
    let topic = cluster.create_topic(3).await;
    let offsets = |p: &str| format!("/topics/{topic}/partitions/{p}/offsets");

    let r = app.get(&offsets("1")).await;
    r.assert_exact(200, r#"{"beginning_offset":0,"end_offset":0}"#);
    assert_eq!(r.header("content-type"), Some(V2));

    let records = [r#"{"value":1}"#; 5].join(",");
    let r = app
        .post(
            &format!("/topics/{topic}/partitions/1"),
            JSON_V2,
            &format!(r#"{{"records":[{records}]}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    app.get(&offsets("1"))
        .await
        .assert_exact(200, r#"{"beginning_offset":0,"end_offset":5}"#);
    app.get(&offsets("0"))
        .await
        .assert_exact(200, r#"{"beginning_offset":0,"end_offset":0}"#);

    let m = app.metrics().await;
    assert_eq!(
        sample(
            &m,
            r#"kafka_rest_metadata_requests_total{reason="offsets"}"#
        ),
        3.0,
        "{m}"
    );
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn partition_offsets_of_what_does_not_exist_are_404() {
    let cluster = Cluster::plaintext();
    let app = TestApp::spawn_ready(cluster.settings()).await;
    let topic = cluster.create_topic(3).await;
    let partition_not_found = r#"{"error_code":40402,"message":"Partition not found."}"#;
    for p in ["3", "-1", "2147483648"] {
        app.get(&format!("/topics/{topic}/partitions/{p}/offsets"))
            .await
            .assert_exact(404, partition_not_found);
    }
    app.get(&format!("/topics/{topic}/partitions/x/offsets"))
        .await
        .assert_exact(404, r#"{"error_code":404,"message":"HTTP 404 Not Found"}"#);
    app.get("/topics/missing-topic-xyz/partitions/0/offsets")
        .await
        .assert_exact(404, r#"{"error_code":40401,"message":"Topic not found."}"#);
    app.get("/topics/bad$name/partitions/0/offsets").await.assert_exact(
        404,
        r#"{"error_code":40401,"message":"Topic not found: invalid topic name: a topic name may contain only ASCII letters, digits, '.', '_' and '-'."}"#,
    );
    app.post(
        &format!("/topics/{topic}/partitions/0/offsets"),
        JSON_V2,
        r#"{"records":[{"value":1}]}"#,
    )
    .await
    .assert_exact(
        405,
        r#"{"error_code":405,"message":"HTTP 405 Method Not Allowed"}"#,
    );
    app.request(
        "GET",
        &format!("/topics/{topic}/partitions/0/offsets"),
        &[("accept", "text/html")],
        "",
    )
    .await
    .assert_exact(
        406,
        r#"{"error_code":406,"message":"HTTP 406 Not Acceptable"}"#,
    );
    assert_eq!(cluster.high_watermarks(&topic, 3).await, vec![0, 0, 0]);
    app.stop().await.unwrap();
}

/// Offsets need the describe grant on the topic, like every metadata endpoint.
#[actix_web::test]
async fn partition_offsets_need_the_describe_grant() {
    let cluster = Cluster::plaintext();
    let (a, b) = (cluster.create_topic(1).await, cluster.create_topic(1).await);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = cluster.settings();
    Policy::default()
        .api_key("describer", "describe-key")
        .api_key("writer", "write-key")
        .grant(&["api_key:describer"], &[&a], &["describe"])
        .grant(&["api_key:writer"], &[&a, &b], &["produce"])
        .apply(&mut settings, dir.path());
    let app = TestApp::spawn_ready(settings).await;
    let get = |topic: &str, key: &'static str| {
        let path = format!("/topics/{topic}/partitions/0/offsets");
        let app = &app;
        async move { app.request("GET", &path, &[("x-api-key", key)], "").await }
    };
    get(&a, "describe-key")
        .await
        .assert_exact(200, r#"{"beginning_offset":0,"end_offset":0}"#);
    for (topic, key) in [(&b, "describe-key"), (&a, "write-key")] {
        get(topic, key).await.assert_exact(
            403,
            &format!(
                r#"{{"error_code":40301,"message":"Not authorized to describe topic '{topic}'."}}"#
            ),
        );
    }
    let r = app.get(&format!("/topics/{a}/partitions/0/offsets")).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["error_code"], 40101);
    app.stop().await.unwrap();
}

/// Each offsets call is charged to the caller's rate limit as one record, as the other
/// metadata calls.
#[actix_web::test]
async fn partition_offsets_are_charged_to_the_rate_limit() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let mut settings = cluster.settings();
    two_calls_then_429(&mut settings);
    let app = TestApp::spawn_ready(settings).await;
    let path = format!("/topics/{topic}/partitions/0/offsets");
    assert_eq!(app.get(&path).await.status, 200);
    assert_eq!(app.get(&path).await.status, 200);
    let r = app.get(&path).await;
    assert_rate_limited(&r);
    app.stop().await.unwrap();
}

/// The cluster's refusal is 403/40301; a cluster that does not answer within
/// `metadata.request_timeout_ms` is 503/50302 with Retry-After.
#[actix_web::test]
async fn partition_offsets_when_kafka_refuses_or_is_gone() {
    let (mock, settings) = mock_cluster(1, "guarded", 1);
    let app = TestApp::spawn_ready(settings).await;
    let path = "/topics/guarded/partitions/0/offsets";
    app.get(path)
        .await
        .assert_exact(200, r#"{"beginning_offset":0,"end_offset":0}"#);
    // One error for each of the two ListOffsets requests (earliest, latest).
    mock.request_errors(
        RDKafkaApiKey::ListOffsets,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 2],
    );
    app.get(path).await.assert_exact(
        403,
        r#"{"error_code":40301,"message":"Not authorized to access the topic."}"#,
    );
    app.stop().await.unwrap();

    let mut broker = OwnBroker::start();
    let cluster = broker.cluster();
    let topic = cluster.create_topic(1).await;
    let mut settings = cluster.settings();
    settings.metadata.request_timeout_ms = 1_000;
    let app = TestApp::spawn_ready(settings).await;
    let path = format!("/topics/{topic}/partitions/0/offsets");
    assert_eq!(app.get(&path).await.status, 200);
    broker.kill();
    let started = std::time::Instant::now();
    let r = app.get(&path).await;
    r.assert_exact(
        503,
        r#"{"error_code":50302,"message":"No Kafka broker is available."}"#,
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "bounded by the metadata timeout: {:?}",
        started.elapsed()
    );
    app.stop().await.unwrap();
}
