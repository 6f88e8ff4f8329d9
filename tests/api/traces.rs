//! OpenTelemetry traces, end to end: the real binary exports its spans to an OTLP receiver
//! in this process (HTTP/protobuf or gRPC), and the `traceparent` read back from the records
//! in Kafka continues the same trace.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::otlp::{Collector, ReceivedSpan};
use crate::helpers::registry::Registry;
use crate::helpers::{sample, wait_until, Binary, Cluster, Policy, JSON_V2};

const PARTNER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARTNER_SPAN: &str = "00f067aa0ba902b7";
const XRAY_TRACE: &str = "5759e988bd862e3fe1be46a994272793";
const XRAY_PARENT: &str = "53995c3f42cd8ad8";

/// The binary with tracing on, exporting to `collector`, authenticating one API key.
fn start(cluster: &Cluster, collector: &Collector, extra: &[(&str, &str)]) -> Binary {
    let policy = Policy::default().api_key("acme", "acme-key").grant(
        &["api_key:acme"],
        &["*"],
        &["produce", "describe"],
    );
    let mut envs = vec![
        ("KRP_KAFKA__BOOTSTRAP_SERVERS", cluster.bootstrap.as_str()),
        ("KRP_AUTH__ENABLED", "true"),
        ("KRP_AUTH__POLICY", policy.toml()),
        ("KRP_LOG__FORMAT", "json"),
        ("KRP_TRACING__ENABLED", "true"),
        ("KRP_TRACING__ENDPOINT", collector.endpoint.as_str()),
        ("KRP_TRACING__SCHEDULED_DELAY_MS", "100"),
        ("OTEL_SERVICE_NAME", "krp-under-test"),
    ];
    envs.extend_from_slice(extra);
    let owned: Vec<(String, String)> = envs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let borrowed: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Binary::start(&borrowed)
}

/// A topic of its own, one partition, on the shared broker.
async fn topic() -> (Cluster, String) {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    (cluster, topic)
}

/// Stops the binary with SIGTERM: it exits 0. Its stdout.
async fn stop(binary: Binary) -> String {
    let (status, stdout, stderr) = binary.terminate().await;
    assert!(status.success(), "{stderr}");
    stdout
}

/// POSTs two json records to `topic` with `headers`; the status and the response's
/// `traceparent`.
async fn produce(binary: &Binary, topic: &str, headers: &[(&str, &str)]) -> (u16, Option<String>) {
    let mut request = awc::Client::default()
        .post(format!("{}/topics/{topic}", binary.base))
        .insert_header(("content-type", JSON_V2))
        .insert_header(("x-api-key", "acme-key"));
    for header in headers {
        request = request.insert_header(*header);
    }
    let mut response = request
        .send_body(r#"{"records":[{"value":{"n":1}},{"value":{"n":2}}]}"#)
        .await
        .unwrap();
    let body = response.body().await.unwrap();
    let traceparent = response
        .headers()
        .get("traceparent")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(response.status().is_success(), "{body:?}");
    (response.status().as_u16(), traceparent)
}

fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let named: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(named.len(), 1, "one {name} span in {spans:#?}");
    named[0]
}

/// The trace id and span id of a `traceparent`.
fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00");
    (parts[1].to_owned(), parts[2].to_owned())
}

#[actix_web::test]
async fn a_partners_trace_continues_through_the_proxy_into_the_records() {
    let (cluster, topic) = topic().await;
    let collector = Collector::http();
    let binary = start(&cluster, &collector, &[]);
    binary.wait_ready().await;

    let partner = format!("00-{PARTNER_TRACE}-{PARTNER_SPAN}-01");
    let (_, traceparent) = produce(
        &binary,
        &topic,
        &[("traceparent", &partner), ("tracestate", "acme=1")],
    )
    .await;
    let (trace, server_id) = ids(&traceparent.expect("the response carries a traceparent"));
    assert_eq!(trace, PARTNER_TRACE);

    let spans = collector.trace(PARTNER_TRACE, 4).await;
    let server = one(&spans, "POST /topics/{topic}");
    assert_eq!(server.span_id, server_id);
    assert_eq!(
        server.parent_span_id, PARTNER_SPAN,
        "the partner's span is the parent"
    );
    assert_eq!(server.kind, 2, "server");
    assert_eq!(server.service, "krp-under-test");
    assert_eq!(server.attribute("http.route"), Some("/topics/{topic}"));
    assert_eq!(server.attribute("http.request.method"), Some("POST"));
    assert_eq!(server.attribute("http.response.status_code"), Some("200"));
    assert_eq!(server.attribute("enduser.id"), Some("api_key:acme"));
    assert_eq!(
        server.attribute("messaging.destination.name"),
        Some(topic.as_str())
    );
    assert_eq!(server.attribute("messaging.batch.message_count"), Some("2"));
    for child in ["authenticate", "validate"] {
        assert_eq!(one(&spans, child).parent_span_id, server.span_id, "{child}");
    }
    let produce = one(&spans, &format!("send {topic}"));
    assert_eq!(produce.parent_span_id, server.span_id);
    assert_eq!(produce.kind, 4, "producer");
    assert_eq!(produce.attribute("messaging.system"), Some("kafka"));
    assert_eq!(
        produce.attribute("messaging.destination.name"),
        Some(topic.as_str())
    );
    assert_eq!(
        produce.attribute("messaging.batch.message_count"),
        Some("2")
    );
    assert_eq!(produce.status, 0, "nothing failed");

    // Each record names the produce span: a consumer continues the partner's trace there.
    let records = cluster.consume(&topic, 1, 2).await;
    assert_eq!(records.len(), 2);
    for record in &records {
        let (name, value) = &record.headers[0];
        assert_eq!(name, "traceparent");
        let value = String::from_utf8(value.clone().unwrap()).unwrap();
        assert_eq!(
            ids(&value),
            (PARTNER_TRACE.to_owned(), produce.span_id.clone())
        );
    }

    // A refusal: the server span carries its Confluent code, the authenticate span fails.
    let refused_trace = "0af7651916cd43dd8448eb211c80319c";
    let r = awc::Client::default()
        .post(format!("{}/topics/{topic}", binary.base))
        .insert_header(("content-type", JSON_V2))
        .insert_header(("x-api-key", "not-a-key"))
        .insert_header((
            "traceparent",
            format!("00-{refused_trace}-b7ad6b7169203331-01"),
        ))
        .send_body(r#"{"records":[{"value":1}]}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let spans = collector.trace(refused_trace, 2).await;
    // Refused before routing, the span still names the route the path matches.
    let server = one(&spans, "POST /topics/{topic}");
    assert_eq!(server.kind, 2, "server");
    assert_eq!(server.attribute("error.type"), Some("40101"));
    assert_eq!(server.attribute("kafka_rest.error_code"), Some("40101"));
    assert_eq!(server.status, 0, "a 4xx is not the server's error");
    let authenticate = one(&spans, "authenticate");
    assert_eq!(authenticate.status, 2, "error");
    assert!(
        authenticate.attribute("error.type").is_some(),
        "{authenticate:?}"
    );

    // The access log line names the trace.
    let stdout = stop(binary).await;
    let access: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "access" && l["path"] == format!("/topics/{topic}"))
        .collect();
    assert_eq!(access.len(), 2, "{stdout}");
    assert_eq!(access[0]["trace_id"], PARTNER_TRACE);
    assert_eq!(access[1]["trace_id"], refused_trace);
    assert_eq!(access[1]["route"], "/topics/{topic}");
}

#[actix_web::test]
async fn api_gateway_trace_ids_are_continued_and_a_request_without_context_starts_a_trace() {
    let (cluster, topic) = topic().await;
    let collector = Collector::http();
    let binary = start(&cluster, &collector, &[]);
    binary.wait_ready().await;

    // X-Ray with a parent segment: the trace and the parent are API Gateway's.
    let xray = format!("Root=1-5759e988-bd862e3fe1be46a994272793;Parent={XRAY_PARENT};Sampled=1");
    let (_, traceparent) = produce(&binary, &topic, &[("x-amzn-trace-id", &xray)]).await;
    assert_eq!(ids(&traceparent.unwrap()).0, XRAY_TRACE);
    let spans = collector.trace(XRAY_TRACE, 4).await;
    let server = one(&spans, "POST /topics/{topic}");
    assert_eq!(server.parent_span_id, XRAY_PARENT);

    // Root alone (API Gateway without X-Ray tracing): the trace id is kept, as a new root.
    let root_only = "Root=1-6759e988-bd862e3fe1be46a994272793";
    let (_, traceparent) = produce(&binary, &topic, &[("x-amzn-trace-id", root_only)]).await;
    let expected = "6759e988bd862e3fe1be46a994272793";
    assert_eq!(ids(&traceparent.unwrap()).0, expected);
    let spans = collector.trace(expected, 4).await;
    assert_eq!(one(&spans, "POST /topics/{topic}").parent_span_id, "");

    // A W3C traceparent wins over X-Amzn-Trace-Id.
    let partner = format!("00-{PARTNER_TRACE}-{PARTNER_SPAN}-01");
    let (_, traceparent) = produce(
        &binary,
        &topic,
        &[("x-amzn-trace-id", &xray), ("traceparent", &partner)],
    )
    .await;
    assert_eq!(ids(&traceparent.unwrap()).0, PARTNER_TRACE);

    // Neither: a new trace, whose server span is a root.
    let (_, traceparent) = produce(&binary, &topic, &[]).await;
    let (trace, _) = ids(&traceparent.unwrap());
    assert!(![PARTNER_TRACE, XRAY_TRACE, expected].contains(&trace.as_str()));
    let spans = collector.trace(&trace, 4).await;
    assert_eq!(one(&spans, "POST /topics/{topic}").parent_span_id, "");
    stop(binary).await;
}

/// API v3: the partner's own record headers stay beside the trace header, and a record that
/// carries its own `traceparent` keeps it as sent.
#[actix_web::test]
async fn v3_records_keep_the_partners_headers_beside_the_trace_header() {
    let (cluster, topic) = topic().await;
    let cluster_id = cluster.cluster_id().await;
    let collector = Collector::http();
    let binary = start(&cluster, &collector, &[]);
    binary.wait_ready().await;
    let own = "00-11111111111111111111111111111111-2222222222222222-01";
    let body = format!(
        "{}{}",
        r#"{"value":{"type":"JSON","data":1},"headers":[{"name":"source","value":"YQ=="}]}"#,
        format_args!(
            r#"{{"value":{{"type":"JSON","data":2}},"headers":[{{"name":"traceparent","value":"{}"}}]}}"#,
            base64_of(own)
        )
    );
    let mut response = awc::Client::default()
        .post(format!(
            "{}/v3/clusters/{cluster_id}/topics/{topic}/records",
            binary.base
        ))
        .insert_header(("content-type", "application/json"))
        .insert_header(("x-api-key", "acme-key"))
        .insert_header((
            "traceparent",
            format!("00-{PARTNER_TRACE}-{PARTNER_SPAN}-01"),
        ))
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let lines = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    assert_eq!(lines.matches("\"error_code\":200").count(), 2, "{lines}");

    let records = cluster.consume(&topic, 1, 2).await;
    assert_eq!(records.len(), 2);
    let names = |i: usize| {
        records[i]
            .headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(0), ["source", "traceparent"]);
    let ours = String::from_utf8(records[0].headers[1].1.clone().unwrap()).unwrap();
    assert_eq!(ids(&ours).0, PARTNER_TRACE);
    assert_eq!(names(1), ["traceparent"], "no second traceparent");
    assert_eq!(records[1].headers[0].1.as_deref(), Some(own.as_bytes()));

    // The stream's produce spans are children of its server span.
    let spans = collector.trace(PARTNER_TRACE, 3).await;
    let server = one(
        &spans,
        "POST /v3/clusters/{cluster_id}/topics/{topic_name}/records",
    );
    let produced: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.name == format!("send {topic}"))
        .collect();
    assert!(!produced.is_empty(), "{spans:#?}");
    assert!(produced.iter().all(|s| s.parent_span_id == server.span_id));
    assert_eq!(ids(&ours).1, produced[0].span_id);
    stop(binary).await;
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Sampling 0: a new trace exports nothing, yet its context still travels (flags 00) in the
/// response and in the records; a partner's sampled trace is followed all the same
/// (parent-based sampling).
#[actix_web::test]
async fn unsampled_traces_export_nothing_and_still_propagate_and_a_sampled_parent_wins() {
    let (cluster, topic) = topic().await;
    let collector = Collector::http();
    let binary = start(
        &cluster,
        &collector,
        &[("KRP_TRACING__SAMPLING_RATIO", "0.0")],
    );
    binary.wait_ready().await;
    let (_, traceparent) = produce(&binary, &topic, &[]).await;
    let traceparent = traceparent.expect("a traceparent, unsampled");
    assert!(traceparent.ends_with("-00"), "{traceparent}");
    let records = cluster.consume(&topic, 1, 2).await;
    for record in &records {
        assert_eq!(record.headers[0].0, "traceparent");
        // No produce span was made: the records name the server span.
        assert_eq!(record.headers[0].1.as_deref(), Some(traceparent.as_bytes()));
    }

    let partner = format!("00-{PARTNER_TRACE}-{PARTNER_SPAN}-01");
    produce(&binary, &topic, &[("traceparent", &partner)]).await;
    let spans = collector.trace(PARTNER_TRACE, 4).await;
    assert_eq!(
        one(&spans, "POST /topics/{topic}").parent_span_id,
        PARTNER_SPAN
    );
    let (unsampled, _) = ids(&traceparent);
    assert!(
        collector.spans().iter().all(|s| s.trace_id != unsampled),
        "nothing of the unsampled trace: {:#?}",
        collector.spans()
    );
    stop(binary).await;
}

/// A schema format's request: one `resolve schema` span per side, a registry round trip
/// the first time and a cache hit the next.
#[actix_web::test]
async fn schema_resolution_has_a_span_per_side() {
    let (cluster, topic) = topic().await;
    let registry = Registry::start();
    let collector = Collector::http();
    let binary = start(
        &cluster,
        &collector,
        &[("KRP_SCHEMA_REGISTRY__URLS", registry.url())],
    );
    binary.wait_ready().await;
    let traces = [
        "1bf92f3577b34da6a3ce929d0e0e4736",
        "2bf92f3577b34da6a3ce929d0e0e4736",
    ];
    for trace in traces {
        let mut r = awc::Client::default()
            .post(format!("{}/topics/{topic}", binary.base))
            .insert_header(("content-type", "application/vnd.kafka.avro.v2+json"))
            .insert_header(("x-api-key", "acme-key"))
            .insert_header(("traceparent", format!("00-{trace}-{PARTNER_SPAN}-01")))
            .send_body(
                r#"{"key_schema":"\"string\"","value_schema":"\"long\"","records":[{"key":"k","value":7}]}"#,
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.body().await);
    }
    for (trace, cache) in traces.iter().zip(["miss", "hit"]) {
        let spans = collector.trace(trace, 6).await;
        let server = one(&spans, "POST /topics/{topic}");
        let resolved: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| s.name == "resolve schema")
            .collect();
        assert_eq!(resolved.len(), 2, "{spans:#?}");
        let mut sides: Vec<&str> = resolved
            .iter()
            .map(|s| s.attribute("kafka_rest.schema.side").unwrap())
            .collect();
        sides.sort_unstable();
        assert_eq!(sides, ["key", "value"]);
        for span in resolved {
            assert_eq!(span.parent_span_id, server.span_id);
            assert_eq!(span.attribute("kafka_rest.schema.cache"), Some(cache));
            assert!(span.attribute("kafka_rest.schema.id").is_some(), "{span:?}");
        }
    }
    stop(binary).await;
}

/// Where `[tracing]` says nothing, the standard variables do: OTEL_EXPORTER_OTLP_PROTOCOL,
/// OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES;
/// `tracing.headers` are sent beside them.
#[actix_web::test]
async fn the_standard_otel_variables_configure_the_export() {
    let (cluster, topic) = topic().await;
    let collector = Collector::grpc();
    let binary = start(
        &cluster,
        &collector,
        &[
            // Empty: the setting is cleared, so the variables below decide.
            ("KRP_TRACING__ENDPOINT", ""),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-collector-token=from-the-variable",
            ),
            ("KRP_TRACING__HEADERS__X_TEAM", "from-the-settings"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging"),
        ],
    );
    binary.wait_ready().await;
    let partner = format!("00-{PARTNER_TRACE}-{PARTNER_SPAN}-01");
    produce(&binary, &topic, &[("traceparent", &partner)]).await;
    let spans = collector.trace(PARTNER_TRACE, 4).await;
    let server = one(&spans, "POST /topics/{topic}");
    assert_eq!(
        server
            .resource
            .get("deployment.environment")
            .map(String::as_str),
        Some("staging")
    );
    assert_eq!(server.service, "krp-under-test", "OTEL_SERVICE_NAME");
    assert_eq!(
        collector.header("x-collector-token").as_deref(),
        Some("from-the-variable")
    );
    assert_eq!(
        collector.header("x_team").as_deref(),
        Some("from-the-settings")
    );
    stop(binary).await;
}

/// Spans still queued when the service stops are exported on the way out.
#[actix_web::test]
async fn spans_queued_at_shutdown_are_exported() {
    let (cluster, topic) = topic().await;
    let collector = Collector::http();
    let binary = start(
        &cluster,
        &collector,
        &[("KRP_TRACING__SCHEDULED_DELAY_MS", "600000")],
    );
    binary.wait_ready().await;
    let partner = format!("00-{PARTNER_TRACE}-{PARTNER_SPAN}-01");
    produce(&binary, &topic, &[("traceparent", &partner)]).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert!(
        collector.spans().is_empty(),
        "nothing exported before the delay"
    );
    stop(binary).await;
    let spans = collector.trace(PARTNER_TRACE, 4).await;
    assert_eq!(
        one(&spans, "POST /topics/{topic}").parent_span_id,
        PARTNER_SPAN
    );
}

#[actix_web::test]
async fn spans_reach_a_grpc_collector() {
    let (cluster, topic) = topic().await;
    let collector = Collector::grpc();
    let binary = start(&cluster, &collector, &[("KRP_TRACING__PROTOCOL", "grpc")]);
    binary.wait_ready().await;
    let partner = format!("00-{PARTNER_TRACE}-{PARTNER_SPAN}-01");
    produce(&binary, &topic, &[("traceparent", &partner)]).await;
    let spans = collector.trace(PARTNER_TRACE, 4).await;
    assert_eq!(
        one(&spans, "POST /topics/{topic}").parent_span_id,
        PARTNER_SPAN
    );
    binary
        .wait_for_sample(r#"kafka_rest_trace_spans_total{outcome="exported"}"#, 4.0)
        .await;
    stop(binary).await;
}

/// A collector that hangs costs spans, counted, and nothing else: every request is answered
/// as without tracing, and its records still carry the trace header.
#[actix_web::test]
async fn with_the_collector_hanging_requests_are_unaffected_and_lost_spans_are_counted() {
    let (cluster, topic) = topic().await;
    let collector = Collector::black_hole();
    // One export of 4 spans waits its 2 s while at most 8 more queue: the 80 spans of 20
    // requests cannot all wait.
    let binary = start(
        &cluster,
        &collector,
        &[
            ("KRP_TRACING__MAX_QUEUE_SIZE", "8"),
            ("KRP_TRACING__MAX_EXPORT_BATCH_SIZE", "4"),
            ("KRP_TRACING__TIMEOUT_MS", "2000"),
        ],
    );
    binary.wait_ready().await;
    let requests = 20;
    for _ in 0..requests {
        let (status, traceparent) = produce(&binary, &topic, &[]).await;
        assert_eq!(status, 200);
        assert!(traceparent.is_some());
    }
    let records = cluster.consume(&topic, 1, 2 * requests).await;
    assert_eq!(records.len(), 2 * requests);
    assert!(records.iter().all(|r| r.headers[0].0 == "traceparent"));
    // Each request made 4 spans (server, authenticate, validate, produce): all lost, each
    // counted as failed in an export or dropped from the full queue.
    let metrics = async || {
        let url = format!("{}/metrics", binary.metrics_base);
        let mut r = awc::Client::default().get(&url).send().await.unwrap();
        String::from_utf8(r.body().await.unwrap().to_vec()).unwrap()
    };
    let outcome = |m: &str, outcome: &str| {
        sample(
            m,
            &format!(r#"kafka_rest_trace_spans_total{{outcome="{outcome}"}}"#),
        )
    };
    wait_until(Duration::from_secs(30), async || {
        let m = metrics().await;
        let lost = outcome(&m, "export_failed") + outcome(&m, "dropped_queue_full");
        if lost >= (4 * requests) as f64 {
            Ok(())
        } else {
            Err(format!("lost {lost}"))
        }
    })
    .await;
    let m = metrics().await;
    assert_eq!(outcome(&m, "exported"), 0.0, "{m}");
    assert!(outcome(&m, "export_failed") > 0.0, "{m}");
    assert!(outcome(&m, "dropped_queue_full") > 0.0, "{m}");
    stop(binary).await;
}
