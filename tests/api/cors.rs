//! CORS for browser clients: off by default; preflights answered before authentication;
//! refused preflights in the Confluent envelope; the headers of real requests.

use std::collections::BTreeSet;

use kafka_rest_proxy::config::{CorsOrigin, Settings};

use crate::helpers::{Cluster, Policy, Response, TestApp, JSON_V2};

const ORIGIN: &str = "https://app.example.com";
const API_KEY: &str = "browser-key";

/// The app with authentication on (one API key, granted `topic`) and `cors` settings.
async fn spawn(topic: &str, cors: impl FnOnce(&mut Settings)) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Cluster::plaintext().settings();
    Policy::default()
        .api_key("browser", API_KEY)
        .grant(&["api_key:browser"], &[topic], &["produce", "describe"])
        .apply(&mut settings, dir.path());
    cors(&mut settings);
    (TestApp::spawn_ready(settings).await, dir)
}

fn allowing(origin: CorsOrigin) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| s.cors.allowed_origins = vec![origin]
}

async fn preflight(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Response {
    app.request("OPTIONS", path, headers, "").await
}

/// The names in a comma-separated header, lower case.
fn names(r: &Response, header: &str) -> BTreeSet<String> {
    r.header(header)
        .unwrap_or_else(|| panic!("no {header}: {r:?}"))
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[actix_web::test]
async fn cors_is_off_by_default() {
    let topic = Cluster::plaintext().create_topic(1).await;
    let (app, _dir) = spawn(&topic, |_| {}).await;
    let r = preflight(
        &app,
        &format!("/topics/{topic}"),
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    // No CORS layer: an OPTIONS request like any other, refused without credentials, and
    // one the resource does not serve with them.
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");
    let r = preflight(
        &app,
        &format!("/topics/{topic}"),
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
            ("x-api-key", API_KEY),
        ],
    )
    .await;
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow"), Some("GET, POST"));
    assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");
    let r = app
        .request("GET", "/openapi.json", &[("origin", ORIGIN)], "")
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");
}

#[actix_web::test]
async fn a_preflight_from_an_allowed_origin_is_answered_without_credentials() {
    let topic = Cluster::plaintext().create_topic(1).await;
    let origin = CorsOrigin::Exact(ORIGIN.into());
    let (app, _dir) = spawn(&topic, allowing(origin)).await;
    let r = preflight(
        &app,
        &format!("/topics/{topic}"),
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type, x-api-key"),
        ],
    )
    .await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, ""), "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        names(&r, "access-control-allow-methods"),
        set(&["get", "post"])
    );
    assert_eq!(
        names(&r, "access-control-allow-headers"),
        set(&[
            "accept",
            "authorization",
            "content-type",
            "x-api-key",
            "x-request-id"
        ])
    );
    assert_eq!(r.header("access-control-max-age"), Some("1800"));
    assert!(r.header("access-control-allow-credentials").is_none());
    assert!(names(&r, "vary").contains("origin"), "{r:?}");
    assert!(r.header("x-request-id").is_some());
}

#[actix_web::test]
async fn preflights_for_another_origin_method_or_header_are_refused_in_the_envelope() {
    let topic = Cluster::plaintext().create_topic(1).await;
    let origin = CorsOrigin::Exact(ORIGIN.into());
    let (app, _dir) = spawn(&topic, allowing(origin)).await;
    let path = format!("/topics/{topic}");
    let refused = [
        (
            vec![
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
            403,
            "CORS preflight refused: origin 'https://evil.example' is not allowed.",
        ),
        (
            vec![("origin", ORIGIN), ("access-control-request-method", "PUT")],
            403,
            "CORS preflight refused: method 'PUT' is not allowed.",
        ),
        (
            vec![
                ("origin", ORIGIN),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "x-custom"),
            ],
            403,
            "CORS preflight refused: a requested header is not allowed (requested: x-custom).",
        ),
        (
            vec![("access-control-request-method", "POST")],
            400,
            "CORS preflight refused: the preflight has no Origin header.",
        ),
    ];
    for (headers, status, message) in refused {
        let r = preflight(&app, &path, &headers).await;
        let body = serde_json::json!({"error_code": status, "message": message}).to_string();
        r.assert_exact(status, &body);
        assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");
    }
    // Under /v3, in v3's Content-Type.
    let r = preflight(
        &app,
        "/v3/openapi.json",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[actix_web::test]
async fn answers_to_an_allowed_origin_carry_the_headers_a_page_needs() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let origin = CorsOrigin::Exact(ORIGIN.into());
    let (app, _dir) = spawn(&topic, allowing(origin)).await;
    let body = r#"{"records":[{"value":"from a browser"}]}"#;
    let path = format!("/topics/{topic}");
    let r = app
        .request(
            "POST",
            &path,
            &[
                ("origin", ORIGIN),
                ("content-type", JSON_V2),
                ("x-api-key", API_KEY),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        names(&r, "access-control-expose-headers"),
        set(&[
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "retry-after",
            "traceparent",
            "www-authenticate",
            "x-request-id"
        ])
    );
    assert!(names(&r, "vary").contains("origin"), "{r:?}");
    // Errors too: the page can read the envelope and the challenge.
    let r = app
        .request(
            "POST",
            &path,
            &[("origin", ORIGIN), ("content-type", JSON_V2)],
            body,
        )
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    // Another origin is served (a server-side caller may send Origin) without the headers
    // that would let a page read the answer.
    let r = app
        .request(
            "POST",
            &path,
            &[
                ("origin", "https://evil.example"),
                ("content-type", JSON_V2),
                ("x-api-key", API_KEY),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![2]);
}

#[actix_web::test]
async fn any_origin_is_a_wildcard_and_credentials_name_the_origin() {
    let topic = Cluster::plaintext().create_topic(1).await;
    let (app, _dir) = spawn(&topic, allowing(CorsOrigin::Any)).await;
    let r = preflight(
        &app,
        "/topics",
        &[
            ("origin", "https://anywhere.example"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("access-control-allow-credentials").is_none());

    let (app, _dir) = spawn(&topic, |s: &mut Settings| {
        s.cors.allowed_origins = vec![CorsOrigin::Exact(ORIGIN.into())];
        s.cors.allow_credentials = true;
    })
    .await;
    let r = app
        .request(
            "GET",
            "/topics",
            &[("origin", ORIGIN), ("x-api-key", API_KEY)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
}
