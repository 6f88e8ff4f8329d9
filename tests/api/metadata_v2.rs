//! API v2 metadata endpoints (SPEC §3) against a real broker.

use crate::helpers::{Cluster, TestApp};

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
