//! SASL/SCRAM-SHA-512 against a real broker that requires it.

use std::time::{Duration, Instant};

use crate::helpers::{wait_until, Binary, Cluster, TestApp, JSON_V2};

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

/// librdkafka's error text names the brokers: partners' answers and the unauthenticated
/// `/readyz` carry a generic message, and the detail goes to the log line of the request.
#[actix_web::test]
async fn kafka_error_detail_goes_to_the_log_not_to_partners() {
    let cluster = Cluster::scram();
    let (user, _) = cluster.scram.clone().unwrap();
    let topic = cluster.create_topic(1).await;
    let binary = Binary::start(&[
        ("KRP_KAFKA__BOOTSTRAP_SERVERS", &cluster.bootstrap),
        ("KRP_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        ("KRP_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512"),
        ("KRP_KAFKA__SASL_USERNAME", &user),
        ("KRP_KAFKA__SASL_PASSWORD", "not-the-password"),
        ("KRP_LOG__FORMAT", "json"),
    ]);
    let (host, port) = cluster.bootstrap.rsplit_once(':').unwrap();
    let assert_generic = |what: &str, body: &str| {
        for leak in [host, &format!(":{port}"), "sasl_plaintext://"] {
            assert!(
                !body.contains(leak),
                "{what} names the broker ({leak}): {body}"
            );
        }
    };
    let client = awc::Client::default();
    let get = async |path: &str, id: &str| {
        let mut r = client
            .get(format!("{}{path}", binary.base))
            .insert_header(("x-request-id", id.to_owned()))
            .send()
            .await
            .unwrap();
        let body = r.body().await.unwrap();
        (
            r.status().as_u16(),
            String::from_utf8(body.to_vec()).unwrap(),
        )
    };
    wait_until(Duration::from_secs(30), async || {
        let (status, body) = get("/readyz", "req-readyz").await;
        if body.contains("rejects the producer's credentials") {
            assert_eq!(status, 503);
            assert_generic("/readyz", &body);
            Ok(())
        } else {
            Err(format!(
                "readiness never blamed credentials: {status} {body}"
            ))
        }
    })
    .await;

    let mut r = client
        .post(format!("{}/topics/{topic}", binary.base))
        .insert_header(("content-type", JSON_V2))
        .insert_header(("x-request-id", "req-produce-auth"))
        .send_body(r#"{"records":[{"value":1}]}"#)
        .await
        .unwrap();
    let body = String::from_utf8(r.body().await.unwrap().to_vec()).unwrap();
    assert_eq!(r.status(), 401, "{body}");
    assert_generic("the produce answer", &body);
    let (status, body) = get("/topics", "req-topics-auth").await;
    assert_eq!(status, 401, "{body}");
    assert_generic("the metadata answer", &body);

    let (status, stdout, stderr) = binary.terminate().await;
    assert!(status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for id in ["req-produce-auth", "req-topics-auth"] {
        let line = lines
            .iter()
            .find(|l| l["span"]["request_id"] == id && l["detail"].is_string())
            .unwrap_or_else(|| panic!("no log line with the detail for {id}: {stdout}"));
        assert!(
            line["detail"].as_str().unwrap().contains(host),
            "the detail names the broker: {line}"
        );
    }
}
