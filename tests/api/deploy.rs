//! The shipped deployment, run: the image's production configuration with the environment
//! and secrets that aws.yaml gives the ECS task.

use std::time::Duration;

use kafka_rest_proxy::config::Settings;

use crate::helpers::{free_port, wait_until, Binary, Policy, JSON_V2};

/// The proxy service's `environment` (`KEY: value` lines) and `secrets` (`- NAME` lines) in
/// aws.yaml: what ECS puts in the task's environment, the secrets under their own names.
/// Its sidecars' (the OpenTelemetry collector's) are not the proxy's.
fn aws_task_environment() -> (Vec<(String, String)>, Vec<String>) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/aws.yaml"))
        .expect("aws.yaml");
    let mut environment = Vec::new();
    let mut secrets = Vec::new();
    let mut service = "";
    let mut section = "";
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 2 {
            service = trimmed;
        }
        if indent == 4 {
            section = trimmed;
        } else if indent < 4 || service != "kafka-rest-proxy:" {
            section = "";
        } else if section == "environment:" {
            let (key, value) = trimmed.split_once(": ").expect("KEY: value");
            environment.push((key.to_owned(), deploy_value(value)));
        } else if section == "secrets:" {
            secrets.push(trimmed.trim_start_matches("- ").to_owned());
        }
    }
    (environment, secrets)
}

/// A value as the deployment resolves it: quotes dropped, `${VAR:-default}` as its default,
/// and `${REDIS_HOST}` (a deploy variable: the cache's endpoint) as a loopback address.
fn deploy_value(raw: &str) -> String {
    let value = raw.trim_matches('"');
    if let Some(inner) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        return match inner.split_once(":-") {
            Some((_, default)) => default.to_owned(),
            None if inner == "REDIS_HOST" => "127.0.0.1".to_owned(),
            None => panic!("aws.yaml needs the deploy variable {inner}: give the test a value"),
        };
    }
    value.to_owned()
}

/// The production path cannot run open by accident: config/production.toml with the
/// environment and secrets of aws.yaml authenticates every request; a partner's API key
/// from the policy secret is accepted.
#[actix_web::test]
async fn production_with_the_aws_task_environment_authenticates_every_request() {
    let (environment, secrets) = aws_task_environment();
    assert!(
        secrets.iter().any(|s| s == "KAFKA_CREDS")
            && secrets.iter().any(|s| s == "KRP_AUTH__POLICY")
            && secrets.iter().any(|s| s == "REDIS_AUTH"),
        "aws.yaml injects the Kafka, policy and Redis secrets: {secrets:?}"
    );
    // Every task shares the idempotency store, over TLS.
    for (key, value) in [
        ("KRP_IDEMPOTENCY__STORE", "redis"),
        ("KRP_IDEMPOTENCY__REDIS__TLS", "true"),
    ] {
        assert!(
            environment.iter().any(|(k, v)| k == key && v == value),
            "{key}={value}: {environment:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut scratch = Settings::default();
    Policy::default()
        .api_key("partner-a", "key-a")
        .grant(
            &["api_key:partner-a"],
            &["orders"],
            &["produce", "describe"],
        )
        .apply(&mut scratch, dir.path());
    let policy = std::fs::read_to_string(scratch.auth.policy_file.unwrap()).unwrap();
    assert!(
        policy.starts_with("[[api_keys]]"),
        "TOML text, not a value: {policy}"
    );
    // No broker answers there: authentication happens before any call to Kafka.
    let kafka_creds = format!(
        r#"{{"BOOTSTRAP_SERVERS":"127.0.0.1:{}","SASL_USERNAME":"svc","SASL_PASSWORD":"pw"}}"#,
        free_port()
    );
    let production = concat!(env!("CARGO_MANIFEST_DIR"), "/config/production.toml");
    let mut vars: Vec<(&str, &str)> = environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    vars.extend([
        ("KRP_CONFIG", production),
        ("KAFKA_CREDS", kafka_creds.as_str()),
        ("KRP_AUTH__POLICY", policy.as_str()),
        // REDIS_AUTH's AUTH_TOKEN, as ECS injects it.
        ("KRP_IDEMPOTENCY__REDIS__AUTH_TOKEN", "0123456789abcdef"),
    ]);
    let binary = Binary::start(&vars);
    let client = awc::Client::default();
    let base = binary.base.clone();
    wait_until(Duration::from_secs(30), async || {
        match client.get(format!("{base}/healthz")).send().await {
            Ok(r) if r.status() == 200 => Ok(()),
            other => Err(format!(
                "the production configuration does not start: {other:?}"
            )),
        }
    })
    .await;

    let mut r = client
        .post(format!("{base}/topics/orders"))
        .insert_header(("content-type", JSON_V2))
        .send_body(r#"{"records":[{"value":1}]}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body = r.body().await.unwrap();
    assert_eq!(
        body,
        &br#"{"error_code":40101,"message":"Authentication required: send a bearer token or an API key."}"#[..]
    );
    let r = client.get(format!("{base}/topics")).send().await.unwrap();
    assert_eq!(r.status(), 401, "metadata is not open either");

    let r = client
        .get(format!("{base}/topics"))
        .insert_header(("x-api-key", "key-a"))
        .send()
        .await
        .unwrap();
    assert!(
        ![401, 403].contains(&r.status().as_u16()),
        "the policy secret's key is accepted: {r:?}"
    );
    let (status, _, stderr) = binary.terminate().await;
    assert!(status.success(), "{stderr}");
}
