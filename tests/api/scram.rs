//! SASL/SCRAM-SHA-512 against a real broker that requires it.

use std::time::{Duration, Instant};

use crate::helpers::{wait_until, Cluster, TestApp, JSON_V2};

#[actix_web::test]
async fn scram_sha_512_with_good_credentials() {
    let cluster = Cluster::scram();
    let app = TestApp::spawn_ready(cluster.settings()).await;
    let topic = cluster.create_topic(1).await;
    let r = app
        .produce(&topic, r#"{"records":[{"value":"over SASL"}]}"#)
        .await;
    r.assert_exact(
        200,
        r#"{"offsets":[{"partition":0,"offset":0,"error_code":null,"error":null}],"key_schema_id":null,"value_schema_id":null}"#,
    );
    let consumed = cluster.consume(&topic, 1, 1).await;
    assert_eq!(consumed[0].value.as_deref(), Some(&b"\"over SASL\""[..]));
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn wrong_password_is_unready_and_never_200() {
    let cluster = Cluster::scram();
    let topic = cluster.create_topic(1).await;
    let mut settings = cluster.settings();
    settings.kafka.sasl_password = Some("not-the-password".to_owned().into());
    let app = TestApp::spawn(settings).await;

    // Readiness turns 503 and says why.
    wait_until(Duration::from_secs(30), async || {
        let r = app.get("/readyz").await;
        assert_ne!(r.status, 200, "ready with a wrong password: {r:?}");
        if r.body.contains("rejects the producer's credentials") {
            assert_eq!(r.status, 503);
            Ok(())
        } else {
            Err(format!("readiness never blamed credentials: {r:?}"))
        }
    })
    .await;

    // Produce fails at once, in the envelope, as Kafka authentication failures do.
    let started = Instant::now();
    let r = app.produce(&topic, r#"{"records":[{"value":1}]}"#).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["error_code"], 40101, "{r:?}");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Kafka authentication failed"),
        "{r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!r.body.contains("not-the-password"));
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![0]);
    app.stop().await.unwrap();
}

/// tansu reports a failed re-authentication about 54 s into a SASL session although the
/// session keeps working; the service must stay ready and keep producing through it.
#[actix_web::test]
async fn a_long_sasl_session_stays_ready_through_reauthentication() {
    let cluster = Cluster::scram();
    let topic = cluster.create_topic(1).await;
    let app = TestApp::spawn_ready(cluster.settings()).await;
    let path = format!("/topics/{topic}");
    let started = Instant::now();
    let mut produced = 0;
    while started.elapsed() < Duration::from_secs(75) {
        let r = app.get("/readyz").await;
        assert_eq!(r.status, 200, "at {:?}: {r:?}", started.elapsed());
        let r = app
            .post(&path, JSON_V2, r#"{"records":[{"value":1}]}"#)
            .await;
        assert_eq!(r.status, 200, "at {:?}: {r:?}", started.elapsed());
        produced += 1;
        // Paced, not waiting for anything: the session must last 75 s to meet tansu's
        // re-authentication, and a request every half second keeps it in use meanwhile.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![produced]);
    app.stop().await.unwrap();
}
