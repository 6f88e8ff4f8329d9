//! Authentication and authorization: JWTs from a local JWKS server with keys made here,
//! API keys, address allowlists, trusted proxies, and the topic policy.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kafka_rest_proxy::config::{Rate, Settings};
use serde_json::{json, Value};

use crate::helpers::idp::{
    claims, ec_key, jwks_document, now, rsa_key, sign, Idp, SigningKey, AUDIENCE, ISSUER,
};
use crate::helpers::{
    read_response, sample, wait_until, Binary, Cluster, Policy, Response, TestApp, JSON_V2,
};

/// An app with auth on: JWTs from `idp` (discovery unless `jwks_url`), the API keys and
/// grants below, and `extra` settings applied last.
async fn app_with_auth(
    idp: Option<&Idp>,
    topic_a: &str,
    _topic_b: &str,
    extra: impl FnOnce(&mut Settings),
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Cluster::plaintext().settings();
    Policy::default()
        .api_key("key-partner", "good-key")
        .disabled_api_key("retired-partner", "disabled-key")
        .api_key("fenced-partner", "fenced-key")
        .grant(
            &["api_key:key-partner", "api_key:fenced-partner"],
            &[topic_a],
            &["produce", "describe"],
        )
        .grant_scopes(&["orders:write"], &[topic_a], &["produce", "describe"])
        .allow_cidrs("api_key:fenced-partner", &["203.0.113.0/24"])
        .apply(&mut settings, dir.path());
    if let Some(idp) = idp {
        settings.auth.jwt.issuer = Some(ISSUER.into());
        settings.auth.jwt.audiences = vec![AUDIENCE.into()];
        settings.auth.jwt.jwks_url = Some(format!("{}/jwks.json", idp.base));
        // The local IdP speaks plain http.
        settings.auth.jwt.allow_http = true;
        settings.auth.jwt.leeway_secs = 5;
        settings.auth.jwt.unknown_kid_refresh_interval_ms = 60_000;
    }
    extra(&mut settings);
    (TestApp::spawn_ready(settings).await, dir)
}

async fn produce_with(app: &TestApp, topic: &str, headers: &[(&str, &str)]) -> Response {
    app.produce_with(topic, headers, r#"{"records":[{"value":"authenticated"}]}"#)
        .await
}

/// A 1-record produce with a token that `key` signed for principal `p` with the scope
/// `orders:write` (granted topic a).
async fn produce_signed(app: &TestApp, topic: &str, key: &SigningKey) -> Response {
    let token = bearer(&sign(key, &claims("p", "orders:write")));
    produce_with(app, topic, &[("authorization", &token)]).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[track_caller]
fn assert_401(r: &Response, message: &str) {
    r.assert_exact(
        401,
        &json!({"error_code": 40101, "message": message}).to_string(),
    );
    let challenge = r
        .header("www-authenticate")
        .expect("a WWW-Authenticate header");
    assert!(
        challenge.starts_with("Bearer realm=\"kafka-rest-proxy\""),
        "{challenge}"
    );
}

async fn topics() -> (Cluster, String, String) {
    let cluster = Cluster::plaintext();
    let a = cluster.create_topic(1).await;
    let b = cluster.create_topic(1).await;
    (cluster, a, b)
}

#[actix_web::test]
async fn valid_rs256_and_es256_tokens_are_accepted() {
    let (cluster, a, b) = topics().await;
    let rsa = rsa_key("rsa-1");
    let ec = ec_key("ec-1");
    let idp = Idp::start(&[&rsa, &ec]);
    let (app, _dir) = app_with_auth(Some(&idp), &a, &b, |_| {}).await;
    for key in [&rsa, &ec] {
        let token = sign(key, &claims("partner-jwt", "openid orders:write"));
        let r = produce_with(&app, &a, &[("authorization", &bearer(&token))]).await;
        assert_eq!(r.status, 200, "{:?}: {r:?}", key.alg);
    }
    // Scopes as an array in `scp` work too.
    let token = sign(
        &rsa,
        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "scp": ["orders:write"], "exp": now() + 60}),
    );
    let r = produce_with(&app, &a, &[("authorization", &bearer(&token))]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(cluster.high_watermarks(&a, 1).await, vec![3]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn invalid_tokens_get_401_with_the_reason_and_nothing_is_written() {
    let (cluster, a, b) = topics().await;
    let rsa = rsa_key("rsa-1");
    let idp = Idp::start(&[&rsa]);
    let (app, _dir) = app_with_auth(Some(&idp), &a, &b, |_| {}).await;
    let base = claims("partner-jwt", "orders:write");
    let with = |patch: Value| {
        let mut c = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let expired = sign(&rsa, &with(json!({"exp": now() - 60})));
    let future = sign(&rsa, &with(json!({"nbf": now() + 600})));
    let wrong_issuer = sign(&rsa, &with(json!({"iss": "https://evil.test/"})));
    let wrong_audience = sign(&rsa, &with(json!({"aud": "another-api"})));
    let no_aud = sign(
        &rsa,
        &json!({"iss": ISSUER, "sub": "p", "scope": "orders:write", "exp": now() + 60}),
    );
    let no_iss = sign(
        &rsa,
        &json!({"aud": AUDIENCE, "sub": "p", "scope": "orders:write", "exp": now() + 60}),
    );
    let no_sub = sign(
        &rsa,
        &json!({"iss": ISSUER, "aud": AUDIENCE, "scope": "orders:write", "exp": now() + 60}),
    );
    // alg "none": a header and payload with an empty signature.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(base.to_string())
    );
    // HS256 with the RSA public key as the shared secret (the classic confusion attack).
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("rsa-1".into());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &base,
        &EncodingKey::from_secret(&rsa.public_pem),
    )
    .unwrap();
    // A payload changed after signing.
    let good = sign(&rsa, &base);
    let parts: Vec<&str> = good.split('.').collect();
    let tampered_claims = with(json!({"sub": "admin"}));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(tampered_claims.to_string()),
        parts[2]
    );
    let cases = [
        (expired, "The token has expired."),
        (future, "The token is not valid yet."),
        (wrong_issuer, "The token's issuer is not accepted."),
        (wrong_audience, "The token's audience is not accepted."),
        (no_sub, "The token lacks the required claim 'sub'."),
        (no_aud, "The token lacks the required claim 'aud'."),
        (no_iss, "The token lacks the required claim 'iss'."),
        (none, "The token's signing algorithm is not accepted."),
        (hs256, "The token's signing algorithm is not accepted."),
        (tampered, "The token's signature is invalid."),
        ("not-a-jwt".to_owned(), "The token is malformed."),
    ];
    for (token, message) in &cases {
        let r = produce_with(&app, &a, &[("authorization", &bearer(token))]).await;
        assert_401(&r, message);
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("error=\"invalid_token\""),
            "{r:?}"
        );
        assert!(!r.body.contains(token.as_str()), "the token is echoed");
    }
    // Missing and malformed Authorization headers.
    let r = produce_with(&app, &a, &[]).await;
    assert_401(
        &r,
        "Authentication required: send a bearer token or an API key.",
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"kafka-rest-proxy\"")
    );
    let r = produce_with(&app, &a, &[("authorization", "Basic dXNlcjpwYXNz")]).await;
    assert_401(&r, "The Authorization header is not a bearer token.");
    assert_eq!(cluster.high_watermarks(&a, 1).await, vec![0]);

    let m = app.get("/metrics").await;
    assert_eq!(m.status, 401, "metrics are not anonymous unless configured");
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn unknown_kid_refetches_once_and_rotation_needs_no_restart() {
    let (_cluster, a, b) = topics().await;
    let old = rsa_key("old");
    let idp = Idp::start(&[&old]);
    let (app, _dir) = app_with_auth(Some(&idp), &a, &b, |s| {
        s.auth.jwt.unknown_kid_refresh_interval_ms = 2_000;
    })
    .await;
    let r = produce_signed(&app, &a, &old).await;
    assert_eq!(r.status, 200, "{r:?}");

    // A kid nobody published: one refetch, then 401; a second try within the interval
    // does not refetch. (Wait out the interval in case the first request, racing the
    // startup fetch, used it: a sleep, because what must pass is time itself.)
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let stranger = rsa_key("stranger");
    let token = sign(&stranger, &claims("p", "orders:write"));
    let before = idp.fetches();
    let r = produce_with(&app, &a, &[("authorization", &bearer(&token))]).await;
    assert_401(&r, "The token is signed by an unknown key.");
    assert_eq!(idp.fetches(), before + 1);
    let r = produce_with(&app, &a, &[("authorization", &bearer(&token))]).await;
    assert_401(&r, "The token is signed by an unknown key.");
    assert_eq!(idp.fetches(), before + 1, "rate-limited: no second refetch");
    app.stop().await.unwrap();

    // Rotation: the IdP publishes a new key; tokens signed by it work at once.
    let (app, _dir) = app_with_auth(Some(&idp), &a, &b, |s| {
        s.auth.jwt.unknown_kid_refresh_interval_ms = 0;
    })
    .await;
    let new = ec_key("new");
    idp.publish(&new);
    let r = produce_signed(&app, &a, &new).await;
    assert_eq!(r.status, 200, "{r:?}");
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn a_token_is_verified_once_and_stops_working_when_its_key_is_withdrawn() {
    let (_cluster, a, b) = topics().await;
    let (old, new) = (ec_key("old"), rsa_key("new"));
    let idp = Idp::start(&[&old]);
    let (app, _dir) = app_with_auth(Some(&idp), &a, &b, |s| {
        s.auth.jwt.unknown_kid_refresh_interval_ms = 0;
    })
    .await;
    let token = bearer(&sign(&old, &claims("p", "orders:write")));
    for _ in 0..3 {
        let r = produce_with(&app, &a, &[("authorization", &token)]).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let m = app.metrics().await;
    let lookups = |m: &str, result: &str| {
        sample(
            m,
            &format!(r#"kafka_rest_jwt_cache_lookups_total{{result="{result}"}}"#),
        )
    };
    assert_eq!((lookups(&m, "miss"), lookups(&m, "hit")), (1.0, 2.0), "{m}");

    // The issuer rotates: "old" is withdrawn, "new" published. The first token signed by
    // "new" makes the proxy fetch the JWKS, after which the cached "old" token is refused.
    idp.withdraw(&old);
    idp.publish(&new);
    let r = produce_signed(&app, &a, &new).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = produce_with(&app, &a, &[("authorization", &token)]).await;
    assert_401(&r, "The token is signed by an unknown key.");
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn an_idp_outage_keeps_cached_keys_working() {
    let (_cluster, a, b) = topics().await;
    let rsa = rsa_key("rsa-1");
    let idp = Idp::start(&[&rsa]);
    let (app, _dir) = app_with_auth(Some(&idp), &a, &b, |s| {
        s.auth.jwt.refresh_interval_ms = 200;
    })
    .await;
    let token = sign(&rsa, &claims("p", "orders:write"));
    let r = produce_with(&app, &a, &[("authorization", &bearer(&token))]).await;
    assert_eq!(r.status, 200, "{r:?}");
    idp.go_down();
    let fetches = idp.fetches();
    // Several failed background refreshes later, the cached key still validates.
    wait_until(Duration::from_secs(30), async || {
        if idp.fetches() >= fetches + 3 {
            Ok(())
        } else {
            Err(format!("{} failed refreshes", idp.fetches() - fetches))
        }
    })
    .await;
    let r = produce_with(&app, &a, &[("authorization", &bearer(&token))]).await;
    assert_eq!(r.status, 200, "{r:?}");
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn no_keys_ever_fetched_is_401_not_500() {
    let (_cluster, a, b) = topics().await;
    let rsa = rsa_key("rsa-1");
    let idp = Idp::start(&[&rsa]);
    idp.go_down();
    let (app, _dir) = app_with_auth(Some(&idp), &a, &b, |s| {
        // Discovery this time: the issuer's well-known document is down too.
        s.auth.jwt.jwks_url = None;
        s.auth.jwt.issuer = Some(format!("{}/", idp.base));
    })
    .await;
    let token = sign(&rsa, &claims("p", "orders:write"));
    let r = produce_with(&app, &a, &[("authorization", &bearer(&token))]).await;
    assert_401(
        &r,
        "The signing keys of the token issuer are unavailable; retry later.",
    );
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn oidc_discovery_finds_the_keys() {
    let (_cluster, a, b) = topics().await;
    let rsa = rsa_key("rsa-1");
    let idp = Idp::start(&[&rsa]);
    let issuer = format!("{}/", idp.base);
    let (app, _dir) = app_with_auth(Some(&idp), &a, &b, |s| {
        s.auth.jwt.jwks_url = None;
        s.auth.jwt.issuer = Some(issuer.clone());
    })
    .await;
    let mut c = claims("p", "orders:write");
    c["iss"] = json!(issuer);
    let r = produce_with(&app, &a, &[("authorization", &bearer(&sign(&rsa, &c)))]).await;
    assert_eq!(r.status, 200, "{r:?}");
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn api_keys_valid_wrong_and_disabled() {
    let (cluster, a, b) = topics().await;
    let (app, _dir) = app_with_auth(None, &a, &b, |_| {}).await;
    let r = produce_with(&app, &a, &[("x-api-key", "good-key")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = produce_with(&app, &a, &[("x-api-key", "wrong-key")]).await;
    assert_401(&r, "Invalid API key.");
    let r = produce_with(&app, &a, &[("x-api-key", "disabled-key")]).await;
    assert_401(&r, "The API key is disabled.");
    assert!(!r.body.contains("disabled-key"));
    assert_eq!(cluster.high_watermarks(&a, 1).await, vec![1]);
    let m = app.metrics().await;
    assert_eq!(
        sample(
            &m,
            r#"kafka_rest_auth_failures_total{reason="invalid_api_key"}"#
        ),
        1.0
    );
    // Refused before routing, yet counted under the route the path names.
    assert_eq!(
        sample(
            &m,
            r#"kafka_rest_http_requests_total{method="POST",route="/topics/{topic}",status="401"}"#
        ),
        2.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"kafka_rest_records_produced_total{format="json",outcome="ok",principal="api_key:key-partner",topic="_other"}"#
        ),
        1.0,
        "{m}"
    );
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn a_principal_granted_topic_a_cannot_write_b() {
    let (cluster, a, b) = topics().await;
    let (app, _dir) = app_with_auth(None, &a, &b, |_| {}).await;
    let r = produce_with(&app, &b, &[("x-api-key", "good-key")]).await;
    r.assert_exact(
        403,
        &json!({"error_code": 40301, "message": format!("Not authorized to produce to topic '{b}'.")})
            .to_string(),
    );
    assert!(r.header("www-authenticate").is_none());
    let r = produce_with(&app, &a, &[("x-api-key", "good-key")]).await;
    assert_eq!(r.status, 200, "A still works: {r:?}");
    assert_eq!(cluster.high_watermarks(&b, 1).await, vec![0]);
    assert_eq!(cluster.high_watermarks(&a, 1).await, vec![1]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn metadata_is_filtered_by_grants() {
    let (_cluster, a, b) = topics().await;
    let (app, _dir) = app_with_auth(None, &a, &b, |_| {}).await;
    let key = [("x-api-key", "good-key")];
    let r = app.request("GET", "/topics", &key, "").await;
    let names: Vec<String> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(names, vec![a.clone()], "only what the key may describe");
    let r = app.request("GET", &format!("/topics/{b}"), &key, "").await;
    assert_eq!(r.json()["error_code"], 40301);
    let r = app.request("GET", &format!("/topics/{a}"), &key, "").await;
    assert_eq!(r.status, 200);
    // Without credentials, nothing at all; the probes stay open.
    assert_eq!(app.get("/topics").await.status, 401);
    assert_eq!(app.get("/healthz").await.status, 200);
    assert_eq!(app.get("/readyz").await.status, 200);
    app.stop().await.unwrap();
}

/// `X-Forwarded-For` entries are read one by one from trusted proxies: ports are allowed,
/// and a client's non-ASCII bytes in one header do not hide the entries a proxy wrote.
#[actix_web::test]
async fn forwarded_for_entries_with_ports_or_garbled_neighbours_are_read() {
    let (_cluster, a, b) = topics().await;
    // fenced-partner may call only from 203.0.113.0/24; loopback is the trusted proxy.
    let (app, _dir) = app_with_auth(None, &a, &b, |s| {
        s.auth.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    for (forwarded, status) in [
        ("203.0.113.7:5678", 200),
        ("[2001:db8::1]:443, 203.0.113.7:5678", 200),
        ("203.0.113.7:5678, [2001:db8::1]:443", 403),
        ("203.0.113.7, garbage, 127.0.0.9", 403),
    ] {
        let headers = [("x-api-key", "fenced-key"), ("x-forwarded-for", forwarded)];
        let r = produce_with(&app, &a, &headers).await;
        assert_eq!(r.status, status, "{forwarded}: {r:?}");
    }
    // Non-ASCII bytes (which no client library sends) need a raw request.
    let body = r#"{"records":[{"value":"authenticated"}]}"#;
    for (forwarded, status) in [
        (
            "X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-For: caf\u{e9}, 203.0.113.7",
            200,
        ),
        (
            "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 127.0.0.9, caf\u{e9}",
            403,
        ),
    ] {
        let mut stream = app
            .raw(&format!(
                "POST /topics/{a} HTTP/1.1\r\nHost: t\r\nContent-Type: {JSON_V2}\r\n\
                 X-API-Key: fenced-key\r\n{forwarded}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ))
            .await;
        let response = read_response(&mut stream, Duration::from_secs(10)).await;
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status} ")),
            "{forwarded}: {response}"
        );
    }
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn addresses_outside_the_allowlists_get_403() {
    let (_cluster, a, b) = topics().await;
    // Global allowlist without loopback.
    let (app, _dir) = app_with_auth(None, &a, &b, |s| {
        s.auth.allow_cidrs = vec!["203.0.113.0/24".parse().unwrap()];
    })
    .await;
    let r = produce_with(&app, &a, &[("x-api-key", "good-key")]).await;
    r.assert_exact(
        403,
        r#"{"error_code":40301,"message":"Requests from this address are not allowed."}"#,
    );
    app.stop().await.unwrap();

    // Per-principal allowlist: fenced-partner only from 203.0.113.0/24.
    let (app, _dir) = app_with_auth(None, &a, &b, |_| {}).await;
    let r = produce_with(&app, &a, &[("x-api-key", "fenced-key")]).await;
    assert_eq!(r.json()["error_code"], 40301, "{r:?}");
    // X-Forwarded-For from an untrusted peer is ignored.
    let r = produce_with(
        &app,
        &a,
        &[
            ("x-api-key", "fenced-key"),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    )
    .await;
    assert_eq!(r.json()["error_code"], 40301, "{r:?}");
    app.stop().await.unwrap();

    // The same header from a trusted proxy (loopback here) is believed.
    let (app, _dir) = app_with_auth(None, &a, &b, |s| {
        s.auth.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let r = produce_with(
        &app,
        &a,
        &[
            ("x-api-key", "fenced-key"),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = produce_with(
        &app,
        &a,
        &[
            ("x-api-key", "fenced-key"),
            ("x-forwarded-for", "198.51.100.7"),
        ],
    )
    .await;
    assert_eq!(r.json()["error_code"], 40301, "{r:?}");
    // A client-written header followed by the one a proxy appended: the proxy's wins.
    let r = produce_with(
        &app,
        &a,
        &[
            ("x-api-key", "fenced-key"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "198.51.100.7"),
        ],
    )
    .await;
    assert_eq!(r.json()["error_code"], 40301, "{r:?}");
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn the_empty_key_hash_is_refused_at_load_and_empty_keys_get_401() {
    let (cluster, a, b) = topics().await;
    // A policy holding SHA-256("") would let an empty header authenticate: refused.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Cluster::plaintext().settings();
    Policy::default()
        .api_key("key-partner", "good-key")
        .api_key("blank-partner", "")
        .grant(
            &["api_key:key-partner", "api_key:blank-partner"],
            &[&a],
            &["produce"],
        )
        .apply(&mut settings, dir.path());
    let err = kafka_rest_proxy::startup::Application::build(&settings)
        .err()
        .expect("a policy with the empty key's hash is refused")
        .to_string();
    assert!(err.contains("auth.policy_file"), "{err}");
    assert!(err.contains("api_keys[1]"), "{err}");
    assert!(err.contains("\"blank-partner\""), "{err}");
    assert!(err.contains("empty"), "{err}");

    // An empty header is refused whatever the policy holds.
    let (app, _dir) = app_with_auth(None, &a, &b, |_| {}).await;
    let r = produce_with(&app, &a, &[("x-api-key", "")]).await;
    assert_401(&r, "Invalid API key.");
    assert_eq!(cluster.high_watermarks(&a, 1).await, vec![0]);
    app.stop().await.unwrap();
}

/// The API-key principal `partner-a` with a tight rate limit of its own (3 records, then
/// 1/s), granted topic a; whoever else is called `partner-a` is granted topic b.
fn same_name_policy(settings: &mut Settings, dir: &std::path::Path, a: &str, b: &str) {
    Policy::default()
        .api_key("partner-a", "key-a")
        .grant(&["api_key:partner-a"], &[a], &["produce"])
        .grant(&["jwt:partner-a", "cert:partner-a"], &[b], &["produce"])
        .apply(settings, dir);
    settings.limits.rate.principals.insert(
        "api_key:partner-a".into(),
        Rate {
            records_per_second: 1,
            records_burst: Some(3),
            ..Rate::default()
        },
    );
}

pub const THREE_RECORDS: &str = r#"{"records":[{"value":1},{"value":2},{"value":3}]}"#;

#[actix_web::test]
async fn a_token_whose_sub_is_an_api_key_principal_gets_nothing_of_it() {
    let (cluster, a, b) = topics().await;
    let rsa = rsa_key("rsa-1");
    let idp = Idp::start(&[&rsa]);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Cluster::plaintext().settings();
    same_name_policy(&mut settings, dir.path(), &a, &b);
    settings.auth.jwt.issuer = Some(ISSUER.into());
    settings.auth.jwt.audiences = vec![AUDIENCE.into()];
    settings.auth.jwt.jwks_url = Some(format!("{}/jwks.json", idp.base));
    settings.auth.jwt.allow_http = true;
    let app = TestApp::spawn_ready(settings).await;
    let token = bearer(&sign(&rsa, &claims("partner-a", "")));
    let as_jwt = [("authorization", token.as_str())];

    // The token is jwt:partner-a: not granted api_key:partner-a's topic...
    let r = app.produce_with(&a, &as_jwt, THREE_RECORDS).await;
    r.assert_exact(
        403,
        &json!({"error_code": 40301, "message": format!("Not authorized to produce to topic '{a}'.")})
            .to_string(),
    );
    // ...and what it may write is not charged to api_key:partner-a's bucket.
    let r = app.produce_with(&b, &as_jwt, THREE_RECORDS).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = app
        .produce_with(&a, &[("x-api-key", "key-a")], THREE_RECORDS)
        .await;
    assert_eq!(r.status, 200, "the key's bucket is whole: {r:?}");
    assert_eq!(cluster.high_watermarks(&a, 1).await, vec![3]);
    assert_eq!(cluster.high_watermarks(&b, 1).await, vec![3]);

    let m = app.metrics().await;
    let produced = |principal: &str| {
        sample(
            &m,
            &format!(
                r#"kafka_rest_records_produced_total{{format="json",outcome="ok",principal="{principal}",topic="_other"}}"#
            ),
        )
    };
    assert_eq!(produced("api_key:partner-a"), 3.0, "{m}");
    assert_eq!(produced("jwt:partner-a"), 3.0, "{m}");
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn an_unqualified_principal_is_refused_at_startup_showing_the_forms() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Cluster::plaintext().settings();
    Policy::default()
        .api_key("partner-a", "key-a")
        .grant(&["partner-a"], &["orders"], &["produce"])
        .apply(&mut settings, dir.path());
    let err = kafka_rest_proxy::startup::Application::build(&settings)
        .err()
        .expect("an unqualified principal is refused")
        .to_string();
    assert!(err.contains("grants[0].principals"), "{err}");
    for form in ["api_key:partner-a", "jwt:partner-a", "cert:partner-a"] {
        assert!(err.contains(&format!("\"{form}\"")), "{err}");
    }
}

/// Why the app with these JWT settings refuses to start.
fn jwt_startup_error(jwt: impl FnOnce(&mut kafka_rest_proxy::config::JwtSettings)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Cluster::plaintext().settings();
    Policy::default()
        .grant_scopes(&["orders:write"], &["orders"], &["produce"])
        .apply(&mut settings, dir.path());
    settings.auth.jwt.issuer = Some(ISSUER.into());
    settings.auth.jwt.audiences = vec![AUDIENCE.into()];
    jwt(&mut settings.auth.jwt);
    match kafka_rest_proxy::startup::Application::build(&settings) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[actix_web::test]
async fn jwt_without_an_audience_refuses_to_start_unless_allowed() {
    let err = jwt_startup_error(|jwt| jwt.audiences.clear());
    assert!(err.contains("auth.jwt.audiences"), "{err}");
    assert!(err.contains("auth.jwt.allow_any_audience"), "{err}");
    let err = jwt_startup_error(|jwt| {
        jwt.audiences.clear();
        jwt.allow_any_audience = true;
    });
    assert_eq!(err, "", "allowed explicitly");
}

#[actix_web::test]
async fn http_issuers_and_jwks_urls_refuse_to_start_unless_allowed() {
    let err = jwt_startup_error(|jwt| jwt.issuer = Some("http://idp.test/".into()));
    assert!(err.contains("auth.jwt.issuer"), "{err}");
    assert!(err.contains("https://"), "{err}");
    assert!(err.contains("auth.jwt.allow_http"), "{err}");
    let err = jwt_startup_error(|jwt| jwt.jwks_url = Some("http://idp.test/jwks.json".into()));
    assert!(err.contains("auth.jwt.jwks_url"), "{err}");
    let err = jwt_startup_error(|jwt| {
        jwt.issuer = Some("http://idp.test/".into());
        jwt.jwks_url = Some("http://idp.test/jwks.json".into());
        jwt.allow_http = true;
    });
    assert_eq!(err, "", "allowed explicitly");
}

#[actix_web::test]
async fn a_token_without_exp_is_refused_even_when_required_claims_omit_it() {
    let (cluster, a, b) = topics().await;
    let rsa = rsa_key("rsa-1");
    let idp = Idp::start(&[&rsa]);
    let (app, _dir) = app_with_auth(Some(&idp), &a, &b, |s| {
        s.auth.jwt.required_claims = vec!["sub".into()];
    })
    .await;
    let forever = sign(
        &rsa,
        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "p", "scope": "orders:write"}),
    );
    let r = produce_with(&app, &a, &[("authorization", &bearer(&forever))]).await;
    assert_401(&r, "The token lacks the required claim 'exp'.");
    let r = produce_signed(&app, &a, &rsa).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(cluster.high_watermarks(&a, 1).await, vec![1]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn a_discovery_document_naming_another_issuer_gives_no_keys() {
    let (cluster, a, b) = topics().await;
    let rsa = rsa_key("rsa-1");
    let idp = Idp::start(&[&rsa]);
    idp.claim_issuer("https://evil.test/");
    let issuer = format!("{}/", idp.base);
    let (app, _dir) = app_with_auth(Some(&idp), &a, &b, |s| {
        s.auth.jwt.jwks_url = None;
        s.auth.jwt.issuer = Some(issuer.clone());
    })
    .await;
    let mut c = claims("p", "orders:write");
    c["iss"] = json!(issuer);
    let r = produce_with(&app, &a, &[("authorization", &bearer(&sign(&rsa, &c)))]).await;
    assert_401(
        &r,
        "The signing keys of the token issuer are unavailable; retry later.",
    );
    assert_eq!(idp.fetches(), 0, "the JWKS it names is never fetched");
    assert_eq!(cluster.high_watermarks(&a, 1).await, vec![0]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn a_jwks_url_that_redirects_is_not_followed() {
    let (cluster, a, b) = topics().await;
    let rsa = rsa_key("rsa-1");
    let idp = Idp::start(&[&rsa]);
    let (app, _dir) = app_with_auth(Some(&idp), &a, &b, |s| {
        s.auth.jwt.jwks_url = Some(format!("{}/moved/jwks.json", idp.base));
    })
    .await;
    let token = sign(&rsa, &claims("p", "orders:write"));
    let r = produce_with(&app, &a, &[("authorization", &bearer(&token))]).await;
    assert_401(
        &r,
        "The signing keys of the token issuer are unavailable; retry later.",
    );
    assert_eq!(idp.fetches(), 0, "the redirect's target is never fetched");
    assert_eq!(cluster.high_watermarks(&a, 1).await, vec![0]);
    app.stop().await.unwrap();
}

/// A JWKS endpoint on a raw socket: it serves `document` when one is set, else sends the
/// headers and half a body, then stalls with the connection open.
struct StallingJwks {
    url: String,
    document: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl StallingJwks {
    async fn start() -> StallingJwks {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let document = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let serving = document.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let document = serving.lock().unwrap().clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = |len: usize| {
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                             content-length: {len}\r\n\r\n"
                        )
                    };
                    match document {
                        Some(body) => {
                            let _ = stream
                                .write_all(format!("{}{body}", head(body.len())).as_bytes())
                                .await;
                        }
                        None => {
                            let _ = stream
                                .write_all(format!("{}{{\"keys\":[", head(200)).as_bytes())
                                .await;
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                    }
                });
            }
        });
        StallingJwks { url, document }
    }

    fn serve(&self, document: String) {
        *self.document.lock().unwrap() = Some(document);
    }
}

#[actix_web::test]
async fn a_jwks_endpoint_that_stalls_mid_body_costs_one_timeout_not_forever() {
    let (_cluster, a, b) = topics().await;
    let jwks = StallingJwks::start().await;
    let fetch_timeout = Duration::from_millis(1_000);
    let (app, _dir) = app_with_auth(None, &a, &b, |s| {
        s.auth.jwt.issuer = Some(ISSUER.into());
        s.auth.jwt.audiences = vec![AUDIENCE.into()];
        s.auth.jwt.jwks_url = Some(jwks.url.clone());
        s.auth.jwt.allow_http = true;
        s.auth.jwt.fetch_timeout_ms = fetch_timeout.as_millis() as u64;
        s.auth.jwt.unknown_kid_refresh_interval_ms = 0;
    })
    .await;
    let key = rsa_key("rotated-in");
    let token = sign(&key, &claims("p", "orders:write"));
    let authorization = bearer(&token);
    let headers = [("authorization", authorization.as_str())];
    // Every fetch stalls mid-body. The request waits for the fetch in progress (the
    // startup one) or makes its own, and answers once that gives up: within one timeout
    // plus a margin, not never.
    let bound = fetch_timeout + Duration::from_secs(3);
    let r = tokio::time::timeout(bound, produce_with(&app, &a, &headers))
        .await
        .unwrap_or_else(|_| panic!("no answer within {bound:?}: the JWKS fetch hangs"));
    assert_401(
        &r,
        "The signing keys of the token issuer are unavailable; retry later.",
    );
    // The IdP answers again, with the key: the fetch lock was released, the next unknown
    // kid fetches, and the token is accepted.
    jwks.serve(jwks_document(&[&key]));
    let r = tokio::time::timeout(bound, produce_with(&app, &a, &headers))
        .await
        .expect("an answer");
    assert_eq!(r.status, 200, "{r:?}");
    app.stop().await.unwrap();
}

/// The policy as TOML text in `KRP_AUTH__POLICY` (how ECS injects a Secrets Manager
/// secret), read by the real binary: the text starts with `[[api_keys]]`, which the `KRP_`
/// layer would have parsed as an array.
#[actix_web::test]
async fn an_inline_policy_from_krp_auth_policy_authenticates() {
    let policy = Policy::default().api_key("partner-env", "env-key").grant(
        &["api_key:partner-env"],
        &["*"],
        &["produce"],
    );
    assert!(policy.toml().starts_with("[[api_keys]]"));
    let binary = Binary::start(&[
        ("KRP_DEV__ENABLED", "true"),
        ("KRP_AUTH__ENABLED", "true"),
        ("KRP_AUTH__POLICY", policy.toml()),
    ]);
    binary.wait_ready().await;
    let client = awc::Client::default();
    let produce = |key: Option<&'static str>| {
        let mut request = client
            .post(format!("{}/topics/inline-policy", binary.base))
            .insert_header(("content-type", JSON_V2));
        if let Some(key) = key {
            request = request.insert_header(("x-api-key", key));
        }
        request.send_body(r#"{"records":[{"value":1}]}"#)
    };
    let r = produce(Some("env-key")).await.unwrap();
    assert_eq!(r.status(), 200);
    let mut r = produce(None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.body().await.unwrap(),
        r#"{"error_code":40101,"message":"Authentication required: send a bearer token or an API key."}"#
    );
    let (status, _, stderr) = binary.terminate().await;
    assert!(status.success(), "{stderr}");
}

/// Replaces `path` the way an operator (or a config agent) should: write aside, rename.
fn replace_file(path: &std::path::Path, text: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// A policy whose only key is `key`, for the principal `name`, granted `topic`.
fn one_key_policy(name: &str, key: &str, topic: &str) -> Policy {
    Policy::default().api_key(name, key).grant(
        &[&format!("api_key:{name}")],
        &[topic],
        &["produce"],
    )
}

const RELOADS_OK: &str = r#"kafka_rest_policy_reloads_total{result="ok"}"#;
const RELOADS_FAILED: &str = r#"kafka_rest_policy_reloads_total{result="error"}"#;

#[actix_web::test]
async fn a_changed_policy_file_is_swapped_in_and_an_invalid_one_keeps_the_old() {
    let (cluster, a, _b) = topics().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Cluster::plaintext().settings();
    one_key_policy("old-partner", "old-key", &a).apply(&mut settings, dir.path());
    let path = settings.auth.policy_file.clone().unwrap();
    settings.auth.policy_reload_interval_ms = 100;
    let app = TestApp::spawn_ready(settings).await;
    let status = async |key: &str| produce_with(&app, &a, &[("x-api-key", key)]).await.status;
    assert_eq!(status("old-key").await, 200);
    assert_eq!(status("new-key").await, 401);

    replace_file(&path, one_key_policy("new-partner", "new-key", &a).toml());
    wait_until(Duration::from_secs(10), async || {
        match (
            status("new-key").await.as_u16(),
            status("old-key").await.as_u16(),
        ) {
            (200, 401) => Ok(()),
            other => Err(format!("new key, old key: {other:?}")),
        }
    })
    .await;
    app.wait_for_sample(RELOADS_OK, 1.0).await;

    // An unqualified principal: the file is refused whole, the policy in force stays.
    let failed = sample(&app.metrics().await, RELOADS_FAILED);
    replace_file(
        &path,
        "[[grants]]\nprincipals = [\"new-partner\"]\ntopics = [\"*\"]\noperations = [\"produce\"]\n",
    );
    app.wait_for_sample(RELOADS_FAILED, failed + 1.0).await;
    assert_eq!(status("new-key").await, 200, "the old policy still works");
    assert_eq!(status("old-key").await, 401);
    let m = app.metrics().await;
    assert_eq!(sample(&m, RELOADS_FAILED), failed + 1.0, "tried once: {m}");
    assert!(
        sample(
            &m,
            r#"kafka_rest_records_produced_total{format="json",outcome="ok",principal="api_key:new-partner",topic="_other"}"#
        ) >= 2.0,
        "the reloaded policy's principals are labels: {m}"
    );
    assert!(cluster.high_watermarks(&a, 1).await[0] >= 3);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn sighup_reloads_the_policy_file_of_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, one_key_policy("old-partner", "old-key", "*").toml()).unwrap();
    let binary = Binary::start(&[
        ("KRP_DEV__ENABLED", "true"),
        ("KRP_AUTH__ENABLED", "true"),
        ("KRP_AUTH__POLICY_FILE", path.to_str().unwrap()),
        // No polling: only the signal reloads.
        ("KRP_AUTH__POLICY_RELOAD_INTERVAL_MS", "0"),
    ]);
    binary.wait_ready().await;
    let client = awc::Client::default();
    let status = async |key: &str| {
        client
            .post(format!("{}/topics/reloaded", binary.base))
            .insert_header(("content-type", JSON_V2))
            .insert_header(("x-api-key", key))
            .send_body(r#"{"records":[{"value":1}]}"#)
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status("new-key").await, 401);
    replace_file(&path, one_key_policy("new-partner", "new-key", "*").toml());
    assert_eq!(
        status("new-key").await,
        401,
        "not reloaded without the signal"
    );
    binary.hang_up();
    wait_until(Duration::from_secs(10), async || {
        match status("new-key").await {
            200 => Ok(()),
            other => Err(format!("the new key still gets {other}")),
        }
    })
    .await;
    assert_eq!(status("old-key").await, 401);
    let (exit, stdout, stderr) = binary.terminate().await;
    assert!(exit.success(), "{stderr}");
    assert!(stdout.contains("policy reloaded"), "{stdout}");
}
