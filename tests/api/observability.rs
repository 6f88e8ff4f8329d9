//! Metrics, a real Prometheus scraping them, alert rules, and the JSON access log.

use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use sha2::{Digest, Sha256};

use crate::helpers::{
    free_port, mock_cluster, read_response, sample, tool, wait_until, Binary, Cluster, Policy,
    TestApp, JSON_V2, PRODUCED_OK,
};

fn promtool_accepts_metrics(exposition: &str) {
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[actix_web::test]
async fn metrics_follow_traffic_and_pass_promtool() {
    let cluster = Cluster::plaintext();
    let app = TestApp::spawn_ready(cluster.settings()).await;
    let topic = cluster.create_topic(1).await;
    let path = format!("/topics/{topic}");
    let before = app.metrics().await;

    let r = app
        .post(
            &path,
            JSON_V2,
            r#"{"records":[{"value":1},{"value":2},{"value":3}]}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app.post(&path, "text/plain", "x").await;
    assert_eq!(r.status, 415);
    let r = app
        .post(
            "/topics/no-such-topic-metrics",
            JSON_V2,
            r#"{"records":[{"value":1}]}"#,
        )
        .await;
    assert_eq!(r.status, 404);

    let r = app.metrics_response().await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let after = r.body;
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(delta(PRODUCED_OK), 3.0, "{after}");
    let route = r#"route="/topics/{topic}""#;
    assert_eq!(
        delta(&format!(
            r#"kafka_rest_http_requests_total{{method="POST",{route},status="200"}}"#
        )),
        1.0
    );
    assert_eq!(
        delta(&format!(
            r#"kafka_rest_http_requests_total{{method="POST",{route},status="415"}}"#
        )),
        1.0
    );
    assert_eq!(
        delta(&format!(
            r#"kafka_rest_http_requests_total{{method="POST",{route},status="404"}}"#
        )),
        1.0
    );
    assert_eq!(
        delta(&format!(
            r#"kafka_rest_http_request_duration_seconds_count{{method="POST",{route}}}"#
        )),
        3.0
    );
    assert!(
        delta(
            r#"kafka_rest_record_bytes_total{format="json",principal="anonymous",topic="_other"}"#
        ) == 3.0
    );
    assert_eq!(sample(&after, "kafka_rest_kafka_ready"), 1.0);
    assert!(after.contains("kafka_rest_build_info{librdkafka_version=\"2.12.1\""));
    promtool_accepts_metrics(&after);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn failed_records_are_counted_by_error_code() {
    let (mock, mut settings) = mock_cluster(1, "metered", 1);
    settings.kafka.message_timeout_ms = 1_500;
    settings.metrics.topics = vec!["metered".into()];
    settings.metrics.statistics_interval_ms = 200;
    let app = TestApp::spawn_ready(settings).await;
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 300],
    );
    let r = app
        .post(
            "/topics/metered",
            JSON_V2,
            r#"{"records":[{"value":1},{"value":2}]}"#,
        )
        .await;
    assert_eq!(r.status, 500, "{r:?}");
    let m = app.metrics().await;
    assert_eq!(
        sample(
            &m,
            r#"kafka_rest_records_produced_total{format="json",outcome="50003",principal="anonymous",topic="metered"}"#
        ),
        2.0,
        "{m}"
    );
    // librdkafka's statistics reached the broker metrics. (Error responses to produce
    // requests are retried per message and do not count as broker transmit retries.)
    assert!(m.contains(r#"kafka_rest_broker_up{broker="1"} 1"#), "{m}");
    assert!(
        m.contains(r#"kafka_rest_broker_rtt_seconds{broker="1",stat="avg"}"#),
        "{m}"
    );
    assert!(
        m.contains(r#"kafka_rest_broker_retries_total{broker="1"}"#),
        "{m}"
    );
    promtool_accepts_metrics(&m);
    app.stop().await.unwrap();
}

/// Kills the child when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_web::test]
async fn a_real_prometheus_scrapes_the_produced_record_count() {
    let cluster = Cluster::plaintext();
    let app = TestApp::spawn_ready(cluster.settings()).await;
    let metrics_address = app.metrics_address.clone().unwrap();
    // /metrics lives on its own listener, not on the API port.
    assert_eq!(app.get("/metrics").await.status, 404);

    let dir = tempfile::tempdir().unwrap();
    let target = metrics_address.trim_start_matches("http://");
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kafka-rest-proxy\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Killed(
        Command::new(tool("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let topic = cluster.create_topic(2).await;
    let path = format!("/topics/{topic}");
    let mut produced = 0;
    for batch in [1, 2, 4] {
        let records = vec![r#"{"value":"x"}"#; batch].join(",");
        let r = app
            .post(&path, JSON_V2, &format!(r#"{{"records":[{records}]}}"#))
            .await;
        assert_eq!(r.status, 200);
        produced += batch;
    }

    let client = awc::Client::default();
    let query = "sum(kafka_rest_records_produced_total{outcome=\"ok\"})";
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}",
        query
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace('=', "%3D")
    );
    let mut last = String::new();
    wait_until(Duration::from_secs(60), async || {
        // Until Prometheus is up (and has scraped), its answers are errors or plain text.
        if let Ok(mut response) = client.get(&url).send().await {
            let bytes = response.body().await.unwrap_or_default();
            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(body) => {
                    if body["data"]["result"][0]["value"][1].as_str()
                        == Some(produced.to_string().as_str())
                    {
                        return Ok(());
                    }
                    last = body.to_string();
                }
                Err(_) => last = String::from_utf8_lossy(&bytes).into_owned(),
            }
        }
        Err(format!("Prometheus never saw {produced} records: {last}"))
    })
    .await;
    app.stop().await.unwrap();
}

#[test]
fn alert_rules_pass_promtool() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/alerts.yml");
    let out = Command::new(tool("promtool"))
        .args(["check", "rules", rules])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_dashboard_is_grafana_json_over_our_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/kafka-rest-proxy.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            assert!(expr.contains("kafka_rest_"), "{expr}");
        }
    }
}

#[actix_web::test]
async fn access_log_lines_are_json_with_every_field_and_no_secret() {
    let cluster = Cluster::scram();
    let (user, password) = cluster.scram.clone().unwrap();
    let topic = cluster.create_topic(1).await;
    let binary = Binary::start(&[
        ("KRP_KAFKA__BOOTSTRAP_SERVERS", &cluster.bootstrap),
        ("KRP_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        ("KRP_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512"),
        ("KRP_KAFKA__SASL_USERNAME", &user),
        ("KRP_KAFKA__SASL_PASSWORD", &password),
        ("KRP_LOG__FORMAT", "json"),
        ("KRP_LOG__LEVEL", "debug"),
    ]);
    binary.wait_ready().await;
    let client = awc::Client::default();
    let token = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.c2lnbmF0dXJl";
    let send = |method: &str, path: &str, content_type: &str, body: &str, id: &str| {
        client
            .request(method.parse().unwrap(), format!("{}{path}", binary.base))
            .insert_header(("content-type", content_type.to_owned()))
            .insert_header(("x-request-id", id.to_owned()))
            .insert_header(("user-agent", "partner-client/1.0"))
            .insert_header(("authorization", format!("Bearer {token}")))
            .send_body(body.to_owned())
    };
    let path = format!("/topics/{topic}");
    let cases = [
        (
            "POST",
            path.as_str(),
            JSON_V2,
            r#"{"records":[{"value":1},{"value":2}]}"#,
            "req-ok",
            200,
            None,
        ),
        (
            "POST",
            "/topics/missing-topic-log",
            JSON_V2,
            r#"{"records":[{"value":1}]}"#,
            "req-404",
            404,
            Some(40401),
        ),
        (
            "POST",
            path.as_str(),
            "text/plain",
            "x",
            "req-415",
            415,
            Some(415),
        ),
        (
            "POST",
            path.as_str(),
            JSON_V2,
            r#"{"records":[]}"#,
            "req-422",
            422,
            Some(422),
        ),
        (
            "POST",
            path.as_str(),
            JSON_V2,
            r#"{"records":"#,
            "req-400",
            400,
            Some(400),
        ),
        ("PUT", path.as_str(), JSON_V2, "", "req-405", 405, Some(405)),
    ];
    for (method, path, content_type, body, id, status, _) in &cases {
        let response = send(method, path, content_type, body, id).await.unwrap();
        assert_eq!(response.status().as_u16(), *status, "{id}");
        assert_eq!(response.headers().get("x-request-id").unwrap(), *id);
    }
    // A keyed request and its retry.
    for id in ["req-key-1", "req-key-2"] {
        let response = client
            .post(format!("{}{path}", binary.base))
            .insert_header(("content-type", JSON_V2))
            .insert_header(("x-request-id", id))
            .insert_header(("idempotency-key", "order-key-4411"))
            .send_body(r#"{"records":[{"value":3}]}"#)
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{id}");
    }
    let generated = client
        .get(format!("{}/readyz", binary.base))
        .send()
        .await
        .unwrap();
    let generated_id = generated
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated_id.len(), 36, "a generated UUID");

    let (status, stdout, stderr) = binary.terminate().await;
    assert!(status.success(), "{stderr}");
    for secret in [password.as_str(), token, "c2VjcmV0LXRva2Vu"] {
        assert!(!stdout.contains(secret), "a secret reached stdout");
        assert!(!stderr.contains(secret), "a secret reached stderr");
    }
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access: Vec<&serde_json::Value> = lines.iter().filter(|l| l["type"] == "access").collect();
    for (method, path, _, body, id, status, error_code) in &cases {
        let line = access
            .iter()
            .find(|l| l["request_id"] == *id)
            .unwrap_or_else(|| panic!("no access line for {id}"));
        assert_eq!(line["method"], *method);
        assert_eq!(line["path"], *path);
        assert_eq!(
            line["route"],
            if path.starts_with("/topics/") {
                "/topics/{topic}"
            } else {
                ""
            }
        );
        assert_eq!(line["status"], *status);
        assert_eq!(line["error_code"], serde_json::json!(error_code));
        assert_eq!(line["source_ip"], "127.0.0.1");
        assert_eq!(line["user_agent"], "partner-client/1.0");
        // The bytes read: a body refused by its media type is never read.
        let read = if *status == 415 { 0 } else { body.len() };
        assert_eq!(line["bytes_in"], read, "{line}");
        assert!(line["bytes_out"].as_u64().unwrap() > 0, "{line}");
        assert!(line["latency_ms"].as_f64().unwrap() >= 0.0);
        assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
        for field in ["principal", "topic", "records"] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
    }
    let ok = access.iter().find(|l| l["request_id"] == "req-ok").unwrap();
    assert_eq!(ok["topic"], topic.as_str());
    assert_eq!(ok["records"], 2);
    assert_eq!(ok["records_failed"], 0);
    assert!(access
        .iter()
        .any(|l| l["request_id"] == generated_id.as_str()));
    // The key is logged hashed, never as sent; the retry is marked replayed.
    assert!(
        !stdout.contains("order-key-4411"),
        "the key reached the log"
    );
    let hashed: String = Sha256::digest(b"order-key-4411")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for (id, replayed) in [("req-key-1", false), ("req-key-2", true)] {
        let line = access.iter().find(|l| l["request_id"] == id).unwrap();
        assert_eq!(line["idempotency_key"], &hashed[..16], "{line}");
        assert_eq!(line["idempotent_replayed"], replayed, "{line}");
    }
    assert_eq!(ok["idempotency_key"], serde_json::Value::Null);
    assert_eq!(ok["idempotent_replayed"], false);
    // Application log lines are JSON too (every stdout line parsed above).
    assert!(lines
        .iter()
        .any(|l| l["fields"]["message"].is_string() || l["message"].is_string()));
}

/// Every log line written while a request is handled carries its request id and, once
/// authenticated, its principal, whichever module writes it: here the Kafka layer's line
/// about creating a topic in the dev cluster, written during a produce.
#[actix_web::test]
async fn log_lines_written_for_a_request_carry_its_id_and_principal() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = kafka_rest_proxy::config::Settings::default();
    Policy::default()
        .api_key("partner-a", "key-a")
        .grant(&["api_key:partner-a"], &["*"], &["produce"])
        .apply(&mut settings, dir.path());
    let policy = settings.auth.policy_file.unwrap();
    let binary = Binary::start(&[
        ("KRP_DEV__ENABLED", "true"),
        ("KRP_LOG__FORMAT", "json"),
        ("KRP_AUTH__ENABLED", "true"),
        ("KRP_AUTH__POLICY_FILE", policy.to_str().unwrap()),
    ]);
    binary.wait_ready().await;
    let r = awc::Client::default()
        .post(format!("{}/topics/span-demo", binary.base))
        .insert_header(("content-type", JSON_V2))
        .insert_header(("x-request-id", "req-span-1"))
        .insert_header(("x-api-key", "key-a"))
        .send_body(r#"{"records":[{"value":1}]}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, stdout, stderr) = binary.terminate().await;
    assert!(status.success(), "{stderr}");
    let line = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "created topic in the dev cluster")
        .unwrap_or_else(|| panic!("no topic-creation line in: {stdout}"));
    assert_eq!(line["span"]["request_id"], "req-span-1", "{line}");
    assert_eq!(line["span"]["principal"], "api_key:partner-a", "{line}");
}

/// The request line's method is the client's to invent, before any authentication: only the
/// standard methods get their own `method` label value.
#[actix_web::test]
async fn invented_methods_share_one_label_value() {
    let cluster = Cluster::plaintext();
    let app = TestApp::spawn_ready(cluster.settings()).await;
    let padding = "X".repeat(200);
    for i in 0..2_000 {
        let r = app
            .request(&format!("INVENTED{i}{padding}"), "/", &[], "")
            .await;
        assert_eq!(r.status, 405, "{r:?}");
    }
    let m = app.metrics().await;
    let methods: std::collections::BTreeSet<&str> = m
        .lines()
        .filter(|l| l.starts_with("kafka_rest_http_request"))
        .filter_map(|l| l.split_once("method=\"")?.1.split_once('"'))
        .map(|(method, _)| method)
        .collect();
    assert!(methods.len() <= 5, "{methods:?}");
    assert!(methods.contains("_other"), "{methods:?}");
    assert!(
        m.len() < 100_000,
        "the exposition grew to {} bytes",
        m.len()
    );
    app.stop().await.unwrap();
}

/// `kafka_rest_http_request_bytes_total` counts the body bytes read, not what
/// `Content-Length` claims: a body refused unread adds nothing.
#[actix_web::test]
async fn request_bytes_count_what_was_read() {
    let cluster = Cluster::plaintext();
    let app = TestApp::spawn_ready(cluster.settings()).await;
    let topic = cluster.create_topic(1).await;
    let series = r#"kafka_rest_http_request_bytes_total{route="/topics/{topic}"}"#;
    let before = sample(&app.metrics().await, series);
    for length in ["18446744073709551615", "100000000"] {
        let mut stream = app
            .raw(&format!(
                "POST /topics/{topic} HTTP/1.1\r\nHost: t\r\nContent-Type: {JSON_V2}\r\nContent-Length: {length}\r\n\r\n{{}}"
            ))
            .await;
        let response = read_response(&mut stream, Duration::from_secs(10)).await;
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    }
    let body = r#"{"records":[{"value":1}]}"#;
    assert_eq!(app.produce(&topic, body).await.status, 200);
    let after = sample(&app.metrics().await, series);
    assert_eq!(after - before, body.len() as f64);
    app.stop().await.unwrap();
}

/// By default `/metrics` is on its own listener (0.0.0.0:9102), never on the partner-facing
/// API listener; only an explicit setting puts it there.
#[actix_web::test]
async fn metrics_are_off_the_api_listener_unless_asked() {
    let cluster = Cluster::plaintext();
    let api = format!("127.0.0.1:{}", free_port());
    let _binary = Killed(
        crate::helpers::Binary::command()
            .env_remove("KRP_METRICS__LISTEN")
            .env("KRP_KAFKA__BOOTSTRAP_SERVERS", &cluster.bootstrap)
            .args(["--listen", &api])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = awc::Client::default();
    let status = async |url: String| match client.get(url).send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(e.to_string()),
    };
    wait_until(Duration::from_secs(30), async || {
        match status(format!("http://{api}/healthz")).await {
            Ok(200) => Ok(()),
            other => Err(format!("the binary never started: {other:?}")),
        }
    })
    .await;
    assert_eq!(status(format!("http://{api}/metrics")).await, Ok(404));
    assert_eq!(
        status("http://127.0.0.1:9102/metrics".to_owned()).await,
        Ok(200)
    );

    let mut settings = cluster.settings();
    settings.metrics.serve_on_api_listener = true;
    let app = TestApp::spawn_ready(settings).await;
    assert_eq!(app.metrics_address, None);
    assert!(app
        .get("/metrics")
        .await
        .body
        .contains("kafka_rest_build_info"));
    app.stop().await.unwrap();
}

/// Log lines are written by a thread of their own through a bounded queue: with a stdout
/// that nobody reads (a stalled log driver), requests keep being answered and the lines
/// that did not fit are counted.
#[actix_web::test]
async fn a_stalled_stdout_costs_log_lines_not_requests() {
    let api = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut child = Killed(
        crate::helpers::Binary::command()
            .env("KRP_DEV__ENABLED", "true")
            .env("KRP_LOG__FORMAT", "json")
            .env("KRP_LOG__MAX_BUFFERED_LINES", "100")
            .env("KRP_METRICS__LISTEN", &metrics)
            .args(["--listen", &api])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Held open and never read: once the pipe's buffer is full, every write to it blocks.
    let _stdout = child.0.stdout.take().unwrap();
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    wait_until(Duration::from_secs(30), async || {
        match client.get(format!("http://{api}/healthz")).send().await {
            Ok(r) if r.status() == 200 => Ok(()),
            other => Err(format!("the binary never started: {other:?}")),
        }
    })
    .await;
    // Each request writes an access-log line of a few hundred bytes: in all far more than
    // a pipe holds (64 KiB) plus the queue (100 lines).
    for i in 0..2_000 {
        let r = client
            .get(format!("http://{api}/healthz"))
            .insert_header(("x-request-id", format!("req-{i}")))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} got no answer: {e}"));
        assert_eq!(r.status(), 200, "request {i}");
    }
    let mut r = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    let exposition = String::from_utf8(r.body().await.unwrap().to_vec()).unwrap();
    assert!(
        sample(&exposition, "kafka_rest_log_lines_dropped_total") > 0.0,
        "{exposition}"
    );
}
