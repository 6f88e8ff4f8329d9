//! The command line: help, configuration errors at startup, the healthcheck subcommand.

use crate::helpers::{free_port, Binary, Cluster, TestApp};

#[test]
fn help_documents_serving_and_the_healthcheck() {
    let out = Binary::command().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in ["--config", "--listen", "healthcheck"] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    let out = Binary::command()
        .args(["healthcheck", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--url"), "{help}");
}

#[test]
fn a_bad_setting_fails_startup_naming_the_key() {
    let out = Binary::command()
        .env("KRP_KAFKA__LINGER_MS", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Figment names an environment key in the variable's case: KAFKA.LINGER_MS.
    let stderr = String::from_utf8(out.stderr).unwrap().to_lowercase();
    assert!(stderr.contains("kafka.linger_ms"), "{stderr}");

    let out = Binary::command()
        .env("KRP_KAFKA__LINGERMS", "5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap().to_lowercase();
    assert!(stderr.contains("lingerms"), "{stderr}");
}

#[test]
fn a_secret_in_a_bad_kafka_creds_never_reaches_stderr() {
    let out = Binary::command()
        .env("KAFKA_CREDS", r#"{"SASL_PASSWORD": "hunter2", "#)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("KAFKA_CREDS"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[actix_web::test]
async fn healthcheck_exits_0_for_a_live_service_and_1_otherwise() {
    let app = TestApp::spawn(Cluster::plaintext().settings()).await;
    let url = format!("{}/healthz", app.address);
    let status = tokio::task::spawn_blocking(move || {
        Binary::command()
            .args(["healthcheck", "--url", &url])
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(status.success());
    let url = format!("http://127.0.0.1:{}/healthz", free_port());
    let status = tokio::task::spawn_blocking(move || {
        Binary::command()
            .args(["healthcheck", "--url", &url])
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(1));
    app.stop().await.unwrap();
}
