//! The command line: help, configuration errors at startup, what the service refuses to
//! start as, settings cleared by empty variables, the healthcheck subcommand.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{free_port, wait_until, Binary, Cluster, Policy, TestApp};

/// Runs `command` for at most `within`: its output when it exited by then, `None` (and the
/// process killed) when it was still running, i.e. it started serving.
fn exits_within(command: &mut Command, within: Duration) -> Option<Output> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A task whose secret lacks BOOTSTRAP_SERVERS must not become a mock cluster that answers
/// 200 and keeps nothing: without a cluster the service stops naming the key, and the
/// embedded cluster starts only with --dev.
#[actix_web::test]
async fn no_cluster_stops_startup_and_the_dev_cluster_starts_only_when_asked() {
    let listen = format!("127.0.0.1:{}", free_port());
    let out = exits_within(
        Binary::command()
            .env(
                "KAFKA_CREDS",
                r#"{"SASL_USERNAME":"svc","SASL_PASSWORD":"pw"}"#,
            )
            .args(["--listen", &listen]),
        Duration::from_secs(10),
    )
    .expect("without bootstrap servers the service must not start");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("kafka.bootstrap_servers"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("--dev"), "{}", text(&out));

    let mut dev = Binary::command()
        .args(["--dev", "--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = awc::Client::default();
    let url = format!("http://{listen}/topics/dev-demo");
    wait_until(Duration::from_secs(30), async || {
        match client
            .post(&url)
            .insert_header(("content-type", "application/vnd.kafka.json.v2+json"))
            .send_body(r#"{"records":[{"value":1}]}"#)
            .await
        {
            Ok(r) if r.status() == 200 => Ok(()),
            other => Err(format!("--dev does not produce: {other:?}")),
        }
    })
    .await;
    let _ = dev.kill();
    let _ = dev.wait();
}

/// Authentication off and a listener beyond loopback: anyone who found the address could
/// produce to every topic, so the service refuses to start unless told that is intended.
#[actix_web::test]
async fn an_open_service_beyond_loopback_starts_only_on_purpose() {
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let out = exits_within(
        Binary::command().args(["--dev", "--listen", &listen]),
        Duration::from_secs(10),
    )
    .expect("an open service beyond loopback must not start");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("auth.allow_unauthenticated"),
        "{}",
        text(&out)
    );

    let mut open = Binary::command()
        .env("KRP_AUTH__ALLOW_UNAUTHENTICATED", "true")
        .args(["--dev", "--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = awc::Client::default();
    let url = format!("http://127.0.0.1:{port}/readyz");
    wait_until(Duration::from_secs(30), async || {
        match client.get(&url).send().await {
            Ok(r) if r.status() == 200 => Ok(()),
            other => Err(format!(
                "with auth.allow_unauthenticated it serves: {other:?}"
            )),
        }
    })
    .await;
    let _ = open.kill();
    let _ = open.wait();
}

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

/// A password that looks like a number (or a boolean) is still a password: it is read as
/// text, and no startup error quotes it.
#[actix_web::test]
async fn a_numeric_sasl_password_is_text_and_never_quoted() {
    let sasl = |password: &'static str| {
        [
            ("KRP_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ("KRP_KAFKA__SASL_USERNAME", "svc"),
            ("KRP_KAFKA__SASL_PASSWORD", password),
        ]
    };
    for password in ["9876543210", "0071.50", "true"] {
        // Another setting is wrong: the error names it, not the password.
        let out = Binary::command()
            .env("KRP_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
            .envs(sasl(password))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("kafka.sasl_mechanism"), "{stderr}");
        assert!(!stderr.contains(password), "{stderr}");
    }
    // Complete, the numeric password is accepted and the service starts.
    let bootstrap = format!("127.0.0.1:{}", free_port());
    let mut envs = vec![
        ("KRP_KAFKA__BOOTSTRAP_SERVERS", bootstrap.as_str()),
        ("KRP_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512"),
    ];
    envs.extend(sasl("9876543210"));
    let binary = Binary::start(&envs);
    let client = awc::Client::default();
    let url = format!("{}/healthz", binary.base);
    wait_until(Duration::from_secs(30), async || {
        match client.get(&url).send().await {
            Ok(r) if r.status() == 200 => Ok(()),
            other => Err(format!("the service never started: {other:?}")),
        }
    })
    .await;
    let (status, stdout, stderr) = binary.terminate().await;
    assert!(status.success(), "{stderr}");
    assert!(!stdout.contains("9876543210"), "{stdout}");
    assert!(!stderr.contains("9876543210"), "{stderr}");
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

/// The image's HEALTHCHECK runs `healthcheck` with no URL: it must probe the listener the
/// settings give the service (the file, `KRP_SERVER__LISTEN`, `--listen`), not 8082, or a
/// platform trusting it restarts a healthy task listening elsewhere.
#[actix_web::test]
async fn healthcheck_probes_the_listener_the_settings_configure() {
    let cluster = Cluster::plaintext();
    let app = TestApp::spawn(cluster.settings()).await;
    let live = app.address.trim_start_matches("http://").to_owned();
    let port = live.rsplit(':').next().unwrap().to_owned();
    let dead = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let file = |listen: &str| {
        let path = dir
            .path()
            .join(format!("{}.toml", listen.replace([':', '.'], "_")));
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = \"{listen}\"\n[kafka]\nbootstrap_servers = \"{}\"\n",
                cluster.bootstrap
            ),
        )
        .unwrap();
        path.to_str().unwrap().to_owned()
    };
    let bootstrap = ("KRP_KAFKA__BOOTSTRAP_SERVERS", cluster.bootstrap.clone());
    let cases = [
        (
            "KRP_SERVER__LISTEN",
            vec![bootstrap.clone(), ("KRP_SERVER__LISTEN", live.clone())],
            vec![],
            0,
        ),
        (
            "KRP_SERVER__LISTEN",
            vec![bootstrap.clone(), ("KRP_SERVER__LISTEN", dead.clone())],
            vec![],
            1,
        ),
        // The unspecified address a container listens on is probed on loopback.
        (
            "KRP_SERVER__LISTEN 0.0.0.0",
            vec![
                bootstrap.clone(),
                ("KRP_SERVER__LISTEN", format!("0.0.0.0:{port}")),
            ],
            vec![],
            0,
        ),
        (
            "--listen",
            vec![bootstrap.clone()],
            vec!["--listen".to_owned(), live.clone()],
            0,
        ),
        (
            "--listen",
            vec![bootstrap.clone()],
            vec!["--listen".to_owned(), dead.clone()],
            1,
        ),
        ("the file", vec![("KRP_CONFIG", file(&live))], vec![], 0),
        ("the file", vec![("KRP_CONFIG", file(&dead))], vec![], 1),
        // --listen wins over the file, as for the server.
        (
            "the file and --listen",
            vec![("KRP_CONFIG", file(&dead))],
            vec!["--listen".to_owned(), live.clone()],
            0,
        ),
    ];
    for (layer, envs, args, expected) in cases {
        let out = tokio::task::spawn_blocking(move || {
            Binary::command()
                .envs(envs)
                .arg("healthcheck")
                .args(args)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(expected), "{layer}: {}", text(&out));
    }
    // Settings the server would refuse: unhealthy, naming the key.
    let out =
        tokio::task::spawn_blocking(|| Binary::command().arg("healthcheck").output().unwrap())
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("kafka.bootstrap_servers"),
        "{}",
        text(&out)
    );
    app.stop().await.unwrap();
}

/// The image's production.toml (SASL_SSL with SCRAM) pointed at a plaintext broker by
/// variables alone: an empty `KRP_` variable clears the file's `sasl_mechanism`. A setting
/// with a default cannot be cleared, and the error says so, naming it.
#[actix_web::test]
async fn an_empty_variable_clears_an_optional_setting_of_the_file() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let policy = Policy::default().api_key("image", "image-key").grant(
        &["api_key:image"],
        &[&topic],
        &["produce"],
    );
    let production = concat!(env!("CARGO_MANIFEST_DIR"), "/config/production.toml");
    let envs = [
        ("KRP_CONFIG", production),
        ("KRP_KAFKA__BOOTSTRAP_SERVERS", cluster.bootstrap.as_str()),
        ("KRP_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT"),
        ("KRP_AUTH__POLICY", policy.toml()),
    ];
    for (extra, key, why) in [
        (None, "kafka.sasl_mechanism", "does not use SASL"),
        (
            Some(("KRP_KAFKA__LINGER_MS", "")),
            "kafka.linger_ms",
            "cannot be unset",
        ),
    ] {
        let out = Binary::command().envs(envs).envs(extra).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains(key) && text(&out).contains(why),
            "{}",
            text(&out)
        );
    }

    let mut cleared = envs.to_vec();
    cleared.push(("KRP_KAFKA__SASL_MECHANISM", ""));
    let binary = Binary::start(&cleared);
    binary.wait_ready().await;
    let mut response = awc::Client::default()
        .post(format!("{}/topics/{topic}", binary.base))
        .insert_header(("content-type", "application/vnd.kafka.json.v2+json"))
        .insert_header(("x-api-key", "image-key"))
        .send_body(r#"{"records":[{"value":"plaintext"}]}"#)
        .await
        .unwrap();
    let body = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    assert_eq!(response.status(), 200, "{body}");
    assert!(body.contains(r#""offset":0"#), "{body}");
    let (status, _, stderr) = binary.terminate().await;
    assert!(status.success(), "{stderr}");
}
