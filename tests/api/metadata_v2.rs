//! API v2 metadata endpoints (SPEC §3) against a real broker.

use kafka_rest_proxy::config::Rate;

use crate::helpers::{sample, Cluster, TestApp};

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
    settings.limits.max_records_per_request = 2;
    settings.limits.rate.default = Rate {
        records_per_second: 1,
        records_burst: Some(2),
        ..Rate::default()
    };
    let app = TestApp::spawn_ready(settings).await;
    assert_eq!(app.get("/topics").await.status, 200);
    assert_eq!(app.get(&format!("/topics/{topic}")).await.status, 200);
    let r = app.get("/brokers").await;
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.json()["error_code"], 429);
    assert!(r.header("retry-after").is_some(), "{r:?}");
    app.stop().await.unwrap();
}
