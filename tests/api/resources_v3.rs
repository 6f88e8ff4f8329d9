//! API v3 resources (issue 13 item 3) against a real broker: Confluent's exact bodies with
//! this test's own host and port in the links, the 404s of an unknown cluster, topic or
//! partition, the policy's filter and refusals, the rate-limit charge, and where links
//! point behind a proxy.

use kafka_rest_proxy::config::{AdvertisedUrl, Settings};

use crate::helpers::{
    assert_rate_limited, sample, two_calls_then_429, Cluster, Policy, Response, TestApp,
};

const V3: &str = "application/json";
const KEY: (&str, &str) = ("x-api-key", "reader-key");

/// Asserts status, the v3 Content-Type and the exact body bytes.
#[track_caller]
fn assert_v3(r: &Response, status: u16, body: &str) {
    r.assert_v3(status, body);
}

/// A cluster, as Confluent renders it; the controller is unknown to librdkafka's metadata.
fn cluster_body(base: &str, id: &str) -> String {
    let c = format!("{base}/v3/clusters/{id}");
    format!(
        concat!(
            r#"{{"kind":"KafkaCluster","metadata":{{"self":"{c}","resource_name":"crn:///kafka={id}"}},"#,
            r#""cluster_id":"{id}","controller":null,"acls":{{"related":"{c}/acls"}},"#,
            r#""brokers":{{"related":"{c}/brokers"}},"broker_configs":{{"related":"{c}/broker-configs"}},"#,
            r#""consumer_groups":{{"related":"{c}/consumer-groups"}},"topics":{{"related":"{c}/topics"}},"#,
            r#""partition_reassignments":{{"related":"{c}/topics/-/partitions/-/reassignment"}}}}"#
        ),
        c = c,
        id = id
    )
}

/// A topic on tansu's one broker: one replica per partition.
fn topic_body(base: &str, id: &str, topic: &str, partitions: usize) -> String {
    let t = format!("{base}/v3/clusters/{id}/topics/{topic}");
    format!(
        concat!(
            r#"{{"kind":"KafkaTopic","metadata":{{"self":"{t}","resource_name":"crn:///kafka={id}/topic={topic}"}},"#,
            r#""cluster_id":"{id}","topic_name":"{topic}","is_internal":false,"replication_factor":1,"#,
            r#""partitions_count":{n},"partitions":{{"related":"{t}/partitions"}},"configs":{{"related":"{t}/configs"}},"#,
            r#""partition_reassignments":{{"related":"{t}/partitions/-/reassignment"}},"authorized_operations":[]}}"#
        ),
        t = t,
        id = id,
        topic = topic,
        n = partitions
    )
}

/// A partition led by tansu's one broker, 111.
fn partition_body(base: &str, id: &str, topic: &str, partition: i32) -> String {
    let p = format!("{base}/v3/clusters/{id}/topics/{topic}/partitions/{partition}");
    format!(
        concat!(
            r#"{{"kind":"KafkaPartition","metadata":{{"self":"{p}","resource_name":"crn:///kafka={id}/topic={topic}/partition={partition}"}},"#,
            r#""cluster_id":"{id}","topic_name":"{topic}","partition_id":{partition},"#,
            r#""leader":{{"related":"{p}/replicas/111"}},"replicas":{{"related":"{p}/replicas"}},"reassignment":{{"related":"{p}/reassignment"}}}}"#
        ),
        p = p,
        id = id,
        topic = topic,
        partition = partition
    )
}

fn broker_body(base: &str, id: &str, host: &str, port: &str) -> String {
    let b = format!("{base}/v3/clusters/{id}/brokers/111");
    format!(
        concat!(
            r#"{{"kind":"KafkaBroker","metadata":{{"self":"{b}","resource_name":"crn:///kafka={id}/broker=111"}},"#,
            r#""cluster_id":"{id}","broker_id":111,"host":"{host}","port":{port},"rack":null,"#,
            r#""configs":{{"related":"{b}/configs"}},"partition_replicas":{{"related":"{b}/partition-replicas"}}}}"#
        ),
        b = b,
        id = id,
        host = host,
        port = port
    )
}

fn list_body(kind: &str, self_url: &str, items: &[String]) -> String {
    format!(
        r#"{{"kind":"{kind}","metadata":{{"self":"{self_url}","next":null}},"data":[{}]}}"#,
        items.join(",")
    )
}

/// An app with auth on: the key `reader-key` may describe `readable` only.
async fn app_with_reader(
    cluster: &Cluster,
    readable: &str,
    extra: impl FnOnce(&mut Settings),
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = cluster.settings();
    Policy::default()
        .api_key("reader", KEY.1)
        .grant(&["api_key:reader"], &[readable], &["describe"])
        .apply(&mut settings, dir.path());
    extra(&mut settings);
    (TestApp::spawn_ready(settings).await, dir)
}

#[actix_web::test]
async fn each_resource_has_confluents_exact_body() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(2).await;
    let (app, _dir) = app_with_reader(&cluster, &topic, |_| {}).await;
    let id = cluster.cluster_id().await;
    let base = app.address.as_str();
    let get = async |path: &str| app.request("GET", path, &[KEY], "").await;

    assert_v3(
        &get("/v3/clusters").await,
        200,
        &list_body(
            "KafkaClusterList",
            &format!("{base}/v3/clusters"),
            &[cluster_body(base, &id)],
        ),
    );
    assert_v3(
        &get(&format!("/v3/clusters/{id}")).await,
        200,
        &cluster_body(base, &id),
    );
    // The listing holds what the key may describe: this test's topic, among all of tansu's.
    assert_v3(
        &get(&format!("/v3/clusters/{id}/topics")).await,
        200,
        &list_body(
            "KafkaTopicList",
            &format!("{base}/v3/clusters/{id}/topics"),
            &[topic_body(base, &id, &topic, 2)],
        ),
    );
    assert_v3(
        &get(&format!("/v3/clusters/{id}/topics/{topic}")).await,
        200,
        &topic_body(base, &id, &topic, 2),
    );
    assert_v3(
        &get(&format!("/v3/clusters/{id}/topics/{topic}/partitions")).await,
        200,
        &list_body(
            "KafkaPartitionList",
            &format!("{base}/v3/clusters/{id}/topics/{topic}/partitions"),
            &[
                partition_body(base, &id, &topic, 0),
                partition_body(base, &id, &topic, 1),
            ],
        ),
    );
    assert_v3(
        &get(&format!("/v3/clusters/{id}/topics/{topic}/partitions/1")).await,
        200,
        &partition_body(base, &id, &topic, 1),
    );
    let (host, port) = cluster.bootstrap.rsplit_once(':').unwrap();
    assert_v3(
        &get(&format!("/v3/clusters/{id}/brokers")).await,
        200,
        &list_body(
            "KafkaBrokerList",
            &format!("{base}/v3/clusters/{id}/brokers"),
            &[broker_body(base, &id, host, port)],
        ),
    );
    // Forwarded headers from a peer that is not a trusted proxy change nothing.
    let r = app
        .request(
            "GET",
            &format!("/v3/clusters/{id}"),
            &[
                KEY,
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.example"),
                ("forwarded", "proto=https;host=evil.example"),
            ],
            "",
        )
        .await;
    assert_v3(&r, 200, &cluster_body(base, &id));
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn unknown_clusters_topics_and_partitions_are_404s_in_confluents_words() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(2).await;
    let app = TestApp::spawn_ready(cluster.settings()).await;
    let id = cluster.cluster_id().await;

    let cluster_not_found =
        r#"{"error_code":404,"message":"Cluster not-this-one cannot be found."}"#;
    for path in [
        "/v3/clusters/not-this-one".to_owned(),
        "/v3/clusters/not-this-one/topics".to_owned(),
        "/v3/clusters/not-this-one/brokers".to_owned(),
        format!("/v3/clusters/not-this-one/topics/{topic}"),
        format!("/v3/clusters/not-this-one/topics/{topic}/partitions"),
        format!("/v3/clusters/not-this-one/topics/{topic}/partitions/0"),
    ] {
        assert_v3(&app.get(&path).await, 404, cluster_not_found);
    }

    let not_hosted =
        r#"{"error_code":40403,"message":"This server does not host this topic-partition."}"#;
    for path in [
        format!("/v3/clusters/{id}/topics/missing-topic-xyz"),
        format!("/v3/clusters/{id}/topics/missing-topic-xyz/partitions"),
        // A name Kafka refuses names no topic either.
        format!("/v3/clusters/{id}/topics/bad!name"),
    ] {
        assert_v3(&app.get(&path).await, 404, not_hosted);
    }
    assert_v3(
        &app.get(&format!(
            "/v3/clusters/{id}/topics/missing-topic-xyz/partitions/0"
        ))
        .await,
        404,
        r#"{"error_code":40403,"message":"This server does not host topic-partition 0 for topic missing-topic-xyz"}"#,
    );
    for partition in ["2", "-1", "x", "2147483648"] {
        assert_v3(
            &app.get(&format!(
                "/v3/clusters/{id}/topics/{topic}/partitions/{partition}"
            ))
            .await,
            404,
            r#"{"error_code":404,"message":"HTTP 404 Not Found"}"#,
        );
    }
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn the_policy_filters_the_listing_and_refuses_the_rest_in_v3_shape() {
    let cluster = Cluster::plaintext();
    let readable = cluster.create_topic(1).await;
    let hidden = cluster.create_topic(1).await;
    let (app, _dir) = app_with_reader(&cluster, &readable, |_| {}).await;
    let id = cluster.cluster_id().await;

    let r = app
        .request("GET", &format!("/v3/clusters/{id}/topics"), &[KEY], "")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [readable.as_str()]);

    let forbidden = format!(
        r#"{{"error_code":40301,"message":"Not authorized to describe topic '{hidden}'."}}"#
    );
    for path in [
        format!("/v3/clusters/{id}/topics/{hidden}"),
        format!("/v3/clusters/{id}/topics/{hidden}/partitions"),
        format!("/v3/clusters/{id}/topics/{hidden}/partitions/0"),
    ] {
        assert_v3(
            &app.request("GET", &path, &[KEY], "").await,
            403,
            &forbidden,
        );
    }
    // A topic the caller may not describe is refused whether it exists or not.
    assert_v3(
        &app.request(
            "GET",
            &format!("/v3/clusters/{id}/topics/missing-topic-xyz"),
            &[KEY],
            "",
        )
        .await,
        403,
        r#"{"error_code":40301,"message":"Not authorized to describe topic 'missing-topic-xyz'."}"#,
    );
    // Without credentials, the refusal is in the v3 Content-Type too.
    let r = app.get("/v3/clusters").await;
    assert_v3(
        &r,
        401,
        r#"{"error_code":40101,"message":"Authentication required: send a bearer token or an API key."}"#,
    );
    assert!(r.header("www-authenticate").is_some(), "{r:?}");
    app.stop().await.unwrap();
}

/// Links point where the client reached the service: `server.advertised_url` when set,
/// else what a trusted proxy forwarded.
#[actix_web::test]
async fn links_follow_the_advertised_url_or_a_trusted_proxy() {
    let cluster = Cluster::plaintext();
    let id = cluster.cluster_id().await;

    let mut settings = cluster.settings();
    settings.server.advertised_url =
        Some(AdvertisedUrl::try_from("https://api.example.com/kafka/".to_owned()).unwrap());
    let app = TestApp::spawn_ready(settings).await;
    assert_v3(
        &app.get(&format!("/v3/clusters/{id}")).await,
        200,
        &cluster_body("https://api.example.com/kafka", &id),
    );
    app.stop().await.unwrap();

    let mut settings = cluster.settings();
    settings.auth.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let app = TestApp::spawn_ready(settings).await;
    let forwarded = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "gw.example.com"),
    ];
    assert_v3(
        &app.request("GET", &format!("/v3/clusters/{id}"), &forwarded, "")
            .await,
        200,
        &cluster_body("https://gw.example.com", &id),
    );
    app.stop().await.unwrap();
}

/// Served from the caches: the path's cluster id costs no request, and fifty calls make at
/// most one listing and one topic request.
#[actix_web::test]
async fn v3_resources_do_not_ask_the_cluster_each_time() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(2).await;
    let mut settings = cluster.settings();
    // No periodic refresh during the test: every request counted below is the endpoints'.
    settings.metadata.refresh_interval_ms = 600_000;
    let app = TestApp::spawn_ready(settings).await;
    let id = cluster.cluster_id().await;
    let get_all = async |paths: &[String]| {
        for _ in 0..7 {
            for path in paths {
                let r = app.get(path).await;
                assert_eq!(r.status, 200, "{path}: {r:?}");
            }
        }
        app.metrics().await
    };
    let requests = |m: &str, reason: &str| {
        sample(
            m,
            &format!(r#"kafka_rest_metadata_requests_total{{reason="{reason}"}}"#),
        )
    };
    // The cluster id comes from the startup probe's listing.
    let m = get_all(&[
        "/v3/clusters".to_owned(),
        format!("/v3/clusters/{id}"),
        format!("/v3/clusters/{id}/topics/{topic}"),
        format!("/v3/clusters/{id}/topics/{topic}/partitions"),
        format!("/v3/clusters/{id}/topics/{topic}/partitions/1"),
    ])
    .await;
    assert_eq!(requests(&m, "listing"), 0.0, "{m}");
    assert!(requests(&m, "topic") <= 1.0, "{m}");
    // The listings come from one cluster listing.
    let m = get_all(&[
        format!("/v3/clusters/{id}/topics"),
        format!("/v3/clusters/{id}/brokers"),
    ])
    .await;
    assert_eq!(requests(&m, "listing"), 1.0, "{m}");
    app.stop().await.unwrap();
}

/// Each call counts against the caller's rate limit, one record, as in v2.
#[actix_web::test]
async fn a_caller_over_its_rate_gets_429_in_v3_shape() {
    let cluster = Cluster::plaintext();
    let mut settings = cluster.settings();
    two_calls_then_429(&mut settings);
    let app = TestApp::spawn_ready(settings).await;
    let id = cluster.cluster_id().await;
    assert_eq!(app.get("/v3/clusters").await.status, 200);
    assert_eq!(app.get(&format!("/v3/clusters/{id}")).await.status, 200);
    let r = app.get(&format!("/v3/clusters/{id}/brokers")).await;
    assert_rate_limited(&r);
    assert_eq!(r.header("content-type"), Some(V3), "{r:?}");
    app.stop().await.unwrap();
}

/// What no v3 handler answers is still answered the v3 way.
#[actix_web::test]
async fn unknown_v3_routes_and_methods_answer_in_application_json() {
    let app = TestApp::spawn_ready(Cluster::plaintext().settings()).await;
    assert_v3(
        &app.get("/v3/nothing-here").await,
        404,
        r#"{"error_code":404,"message":"HTTP 404 Not Found"}"#,
    );
    assert_v3(
        &app.request("DELETE", "/v3/clusters", &[], "").await,
        405,
        r#"{"error_code":405,"message":"HTTP 405 Method Not Allowed"}"#,
    );
    app.stop().await.unwrap();
}
