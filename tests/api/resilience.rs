//! Failure modes beyond Kafka's answers (those are `faults`): a record librdkafka refuses to
//! enqueue, a real broker killed, draining and SIGTERM.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    mock_cluster, wait_until, Binary, Cluster, OwnBroker, TestApp, JSON_V2, PRODUCED_OK,
};

/// Once a record of a request fails to enqueue (a full queue after the bounded wait, or
/// here, deterministically, a record librdkafka refuses as larger than `message.max.bytes`),
/// the later records of the request fail with it: enqueueing them would write them before
/// the failed one, reordering records of a key when the partner retries.
#[actix_web::test]
async fn records_after_one_that_failed_to_enqueue_fail_with_it() {
    let (_mock, mut settings) = mock_cluster(1, "ordered", 1);
    settings
        .kafka
        .librdkafka
        .0
        .insert("message.max.bytes".into(), "2000".into());
    let app = TestApp::spawn_ready(settings).await;
    let big = "x".repeat(5_000);
    let body = format!(
        r#"{{"records":[{{"key":"k","value":1}},{{"key":"k","value":"{big}"}},{{"key":"k","value":3}}]}}"#
    );
    let r = app.post("/topics/ordered", JSON_V2, &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    let offsets = r.json()["offsets"].as_array().unwrap().clone();
    assert_eq!(offsets[0]["offset"], 0, "{offsets:?}");
    assert_eq!(offsets[1]["error_code"], 50002, "{offsets:?}");
    assert_eq!(
        offsets[2], offsets[1],
        "the record after the failed one was not enqueued"
    );
    // The next request starts afresh: nothing of the third record was written before it.
    let r = app
        .post(
            "/topics/ordered",
            JSON_V2,
            r#"{"records":[{"key":"k","value":4}]}"#,
        )
        .await;
    assert_eq!(r.json()["offsets"][0]["offset"], 1, "{r:?}");
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn a_stopped_broker_gets_no_200_and_readiness_drops() {
    let mut broker = OwnBroker::start();
    let cluster = broker.cluster();
    let topic = cluster.create_topic(1).await;
    let mut settings = cluster.settings();
    settings.kafka.message_timeout_ms = 3_000;
    let app = TestApp::spawn_ready(settings).await;
    let path = format!("/topics/{topic}");
    let r = app
        .post(&path, JSON_V2, r#"{"records":[{"value":"before"}]}"#)
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    broker.kill();
    let r = app
        .post(&path, JSON_V2, r#"{"records":[{"value":"after"}]}"#)
        .await;
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.json()["offsets"][0]["error_code"], 50003, "{r:?}");
    assert!(r.json()["offsets"][0]["offset"].is_null());
    assert_eq!(r.header("retry-after"), Some("1"));

    wait_until(Duration::from_secs(20), async || {
        let r = app.get("/readyz").await;
        if r.status == 503 {
            assert!(r.body.contains("unreachable"), "{r:?}");
            Ok(())
        } else {
            Err("still ready without a broker".to_owned())
        }
    })
    .await;
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn draining_refuses_new_requests_and_finishes_in_flight_ones() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let mut app = TestApp::spawn_ready(cluster.settings()).await;

    // A request in flight: headers sent, body only half.
    let body = r#"{"records":[{"value":"in flight"}]}"#;
    let (first, rest) = body.split_at(10);
    let mut slow = app
        .raw(&format!(
            "POST /topics/{topic} HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON_V2}\r\nContent-Length: {}\r\n\r\n{first}",
            body.len()
        ))
        .await;
    app.wait_for_in_flight(1).await;

    let stopping = app.begin_stop();
    // The stop signal reaches the app on its own task; /readyz says when it has.
    wait_until(Duration::from_secs(10), async || {
        let r = app.get("/readyz").await;
        if r.body.contains("draining") {
            Ok(())
        } else {
            Err(format!("not draining: {r:?}"))
        }
    })
    .await;
    let r = app.produce(&topic, body).await;
    r.assert_exact(
        503,
        r#"{"error_code":50302,"message":"The service is shutting down; retry the request."}"#,
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = app.get("/readyz").await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (503, r#"{"status":"draining"}"#)
    );

    slow.write_all(rest.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&response).contains("value_schema_id") {
        let n = slow.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&response)
        );
        response.extend_from_slice(&buf[..n]);
    }
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    stopping.await.unwrap().unwrap();
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![1]);
}

#[actix_web::test]
async fn sigterm_during_a_stream_of_requests_loses_no_acknowledged_record() {
    let cluster = Cluster::plaintext();
    let partitions = 2;
    let topic = cluster.create_topic(partitions).await;
    let binary = Binary::start(&[
        ("KRP_KAFKA__BOOTSTRAP_SERVERS", &cluster.bootstrap),
        ("KRP_SERVER__SHUTDOWN_TIMEOUT_MS", "20000"),
        ("KRP_LOG__LEVEL", "warn"),
    ]);
    binary.wait_ready().await;
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();

    // Four clients produce as fast as they can until the service goes away.
    let mut writers = Vec::new();
    for w in 0..4 {
        let client = client.clone();
        let url = format!("{}/topics/{topic}", binary.base);
        writers.push(actix_web::rt::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut refused = 0;
            for i in 0.. {
                let value = format!("w{w}-{i}");
                let body = format!(r#"{{"records":[{{"value":"{value}"}}]}}"#);
                let Ok(mut response) = client
                    .post(&url)
                    .insert_header(("content-type", JSON_V2))
                    .send_body(body)
                    .await
                else {
                    break; // the listener has closed
                };
                let status = response.status().as_u16();
                let body: serde_json::Value =
                    serde_json::from_slice(&response.body().await.unwrap()).unwrap();
                match status {
                    200 => acknowledged.push((
                        body["offsets"][0]["partition"].as_i64().unwrap() as i32,
                        body["offsets"][0]["offset"].as_i64().unwrap(),
                        format!("\"{value}\""),
                    )),
                    503 => {
                        assert_eq!(body["error_code"], 50302, "{body}");
                        refused += 1;
                        if refused > 50 {
                            break;
                        }
                    }
                    other => panic!("unexpected {other}: {body}"),
                }
            }
            acknowledged
        }));
    }
    // SIGTERM once the stream is flowing: dozens of records acknowledged, more on the way.
    binary.wait_for_sample(PRODUCED_OK, 40.0).await;
    let (exit, _, _) = binary.terminate().await;
    assert!(exit.success(), "exit status {exit:?}");

    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(
        acknowledged.len() > 10,
        "only {} records acknowledged",
        acknowledged.len()
    );
    let consumed = cluster
        .consume(&topic, partitions, acknowledged.len())
        .await;
    for (partition, offset, value) in &acknowledged {
        let found = consumed
            .iter()
            .find(|c| c.partition == *partition && c.offset == *offset)
            .unwrap_or_else(|| panic!("acknowledged {value} at {partition}/{offset} is missing"));
        assert_eq!(found.value.as_deref(), Some(value.as_bytes()));
    }
}
