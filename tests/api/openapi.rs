//! The OpenAPI document: it matches the route table both ways, every documented operation
//! reaches its route, it is served without credentials (within the network allowlist), and
//! schemathesis finds nothing against it, with and without credentials.

use std::collections::BTreeSet;
use std::process::Command;

use kafka_rest_proxy::http::route_list;
use serde_json::Value;

use crate::helpers::registry::python;
use crate::helpers::{Cluster, Policy, TestApp};

/// The document as written; the served copy is this, tailored to the deployment.
const SOURCE: &str = include_str!("../../openapi/openapi.json");

const API_KEY: &str = "schemathesis-key";

/// Every (METHOD, path template) the document describes.
fn documented() -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(SOURCE).unwrap();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method != "parameters" {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

/// A path template with its parameters' names erased: the route table and the document
/// may name them differently (`{topic}`, `{topic_name}`).
fn shape(path: &str) -> String {
    let mut shape = String::new();
    let mut in_parameter = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_parameter = true;
                shape.push_str("{}");
            }
            '}' => in_parameter = false,
            c if !in_parameter => shape.push(c),
            _ => {}
        }
    }
    shape
}

#[test]
fn the_document_and_the_route_table_describe_the_same_routes() {
    let documented: BTreeSet<(String, String)> = documented()
        .into_iter()
        .map(|(method, path)| (method, shape(&path)))
        .collect();
    let routed: BTreeSet<(String, String)> = route_list(true)
        .into_iter()
        .map(|(method, path)| (method.to_string(), shape(path)))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes without an operation in openapi/openapi.json: {undocumented:?}"
    );
    let missing: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "operations in openapi/openapi.json that no route answers: {missing:?}"
    );
}

#[actix_web::test]
async fn every_documented_operation_reaches_its_route() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let mut settings = cluster.settings();
    settings.metrics.serve_on_api_listener = true;
    let app = TestApp::spawn_ready(settings).await;
    let cluster_id = cluster.cluster_id().await;
    for (method, path) in documented() {
        let concrete = path
            .replace("{topic_name}", &topic)
            .replace("{partition_id}", "0")
            .replace("{cluster_id}", &cluster_id);
        let r = app.request(&method, &concrete, &[], "").await;
        let route_not_found = r.status == 404 && r.body.contains(r#""error_code":404,"#);
        assert!(
            r.status != 405 && !route_not_found,
            "{method} {path} reaches no route: {r:?}"
        );
    }
}

#[actix_web::test]
async fn other_methods_get_405_with_allow_in_the_api_s_content_type() {
    let cluster = Cluster::plaintext();
    let app = TestApp::spawn(cluster.settings()).await;
    let r = app.request("PUT", "/topics/any", &[], "").await;
    r.assert_exact(
        405,
        r#"{"error_code":405,"message":"HTTP 405 Method Not Allowed"}"#,
    );
    assert_eq!(r.header("allow"), Some("GET, POST"));
    let r = app.request("DELETE", "/v3/openapi.json", &[], "").await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (
            405,
            r#"{"error_code":405,"message":"HTTP 405 Method Not Allowed"}"#
        )
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("allow"), Some("GET"));
    let r = app.request("GET", "/v3/nothing", &[], "").await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (404, r#"{"error_code":404,"message":"HTTP 404 Not Found"}"#)
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[actix_web::test]
async fn the_document_needs_no_credentials_but_the_network_allowlist_applies() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::plaintext();
    let mut settings = cluster.settings();
    Policy::default()
        .api_key("partner", API_KEY)
        .apply(&mut settings, dir.path());
    settings.auth.api_key_header = "X-Partner-Key".into();
    let app = TestApp::spawn(settings).await;
    let r = app.get("/openapi.json").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["apiKey"]["name"],
        "X-Partner-Key"
    );
    assert_eq!(doc["security"], serde_json::json!([{"apiKey": []}]));
    assert_eq!(app.get("/v3/openapi.json").await.body, r.body);
    // Only the document is open.
    assert_eq!(app.get("/topics").await.status, 401);

    let mut settings = cluster.settings();
    Policy::default()
        .api_key("partner", API_KEY)
        .apply(&mut settings, dir.path());
    settings.auth.allow_cidrs = vec!["203.0.113.0/24".parse().unwrap()];
    let app = TestApp::spawn(settings).await;
    app.get("/openapi.json").await.assert_exact(
        403,
        r#"{"error_code":40301,"message":"Requests from this address are not allowed."}"#,
    );
}

/// Runs schemathesis with `config` against the app's served document; `None` when it finds
/// nothing, else its report.
fn schemathesis(app: &TestApp, dir: &std::path::Path, config: &str) -> Option<String> {
    let config_file = dir.join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let executable = python().with_file_name("schemathesis");
    let mut command = Command::new(&executable);
    command
        .current_dir(dir)
        .arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(format!("{}/openapi.json", app.address))
        // Every check runs (schemathesis 4's default); not `--checks all`, which as a CLI
        // option would override the per-operation settings of the config file.
        .args(["--max-examples", "25", "--seed", "13"])
        .args(["--no-color", "--generation-database", "none"]);
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", executable.display()));
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (!output.status.success()).then_some(report)
}

#[actix_web::test]
async fn schemathesis_finds_nothing_with_and_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(2).await;
    let mut settings = cluster.settings();
    settings.metrics.serve_on_api_listener = true;
    settings.log.access_log = false;
    Policy::default()
        .api_key("schemathesis", API_KEY)
        .grant(
            &["api_key:schemathesis"],
            &[&topic],
            &["produce", "describe"],
        )
        .apply(&mut settings, dir.path());
    let app = TestApp::spawn_ready(settings).await;
    // Half the generated topic names and partitions are the real ones, so produce and
    // metadata answer 200 too, not only 403 and 404.
    let config = format!(
        r#"
[dictionaries.topics]
values = ["{topic}"]

[dictionaries.partitions]
values = [0, 1]

[parameters]
"path.topic_name" = {{ dictionary = "topics", probability = 0.5 }}
"path.partition_id" = {{ dictionary = "partitions", probability = 0.5 }}

# The streaming produce answers 200 once the stream is accepted and reports each record's
# error in its own result line: a record the schema refuses still gets 200 (as Confluent's).
[[operations]]
include-operation-id = "produceRecord"
checks.negative_data_rejection.enabled = false

# A batch's ids must be distinct, which JSON Schema cannot say (42208 for a generated
# batch that repeats one), and when every entry of a batch fails the answer takes the
# first failure's status (ours: never 2xx when nothing was written), so a batch of
# entries that the schema allows and Kafka refuses (a partition beyond the topic's) is
# not a 2xx either. And an entry the schema refuses is a failure of its own, reported in
# the 207 beside the entries that were written (the stream's rule, per entry).
[[operations]]
include-operation-id = "produceRecordsBatch"
checks.positive_data_acceptance.enabled = false
checks.negative_data_rejection.enabled = false
"#
    );
    let with_key = format!("[auth.openapi.apiKey]\napi_key = \"{API_KEY}\"\n{config}");
    let reports = [
        (
            "with the API key",
            schemathesis(&app, dir.path(), &with_key),
        ),
        (
            "without credentials",
            schemathesis(&app, dir.path(), &config),
        ),
    ];
    for (how, report) in &reports {
        if let Some(report) = report {
            eprintln!("schemathesis {how}:\n{report}");
        }
    }
    assert!(
        reports.iter().all(|(_, report)| report.is_none()),
        "schemathesis found something (its reports are above)"
    );
}
