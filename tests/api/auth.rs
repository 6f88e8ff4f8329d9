//! Authentication and authorization: JWTs from a local JWKS server with keys made here,
//! API keys, address allowlists, trusted proxies, and the topic policy.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::helpers::{Cluster, TestApp, JSON_V2};
use actix_web::{web, App, HttpResponse, HttpServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const ISSUER: &str = "https://idp.test/";
const AUDIENCE: &str = "kafka-rest-proxy";

/// A signing key made for the test, with its public JWK.
struct SigningKey {
    kid: String,
    alg: Algorithm,
    private_pem: Vec<u8>,
    public_pem: Vec<u8>,
    jwk: Value,
}

fn rsa_key(kid: &str) -> SigningKey {
    let rsa = Rsa::generate(2048).unwrap();
    let b64 = |b: Vec<u8>| URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": b64(rsa.n().to_vec()), "e": b64(rsa.e().to_vec())});
    SigningKey {
        kid: kid.into(),
        alg: Algorithm::RS256,
        private_pem: rsa.private_key_to_pem().unwrap(),
        public_pem: rsa.public_key_to_pem().unwrap(),
        jwk,
    }
}

fn ec_key(kid: &str) -> SigningKey {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let ec = EcKey::generate(&group).unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let mut x = openssl::bn::BigNum::new().unwrap();
    let mut y = openssl::bn::BigNum::new().unwrap();
    ec.public_key()
        .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
        .unwrap();
    let b64 = |b: Vec<u8>| URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
        "x": b64(x.to_vec_padded(32).unwrap()), "y": b64(y.to_vec_padded(32).unwrap())});
    let pkey = PKey::from_ec_key(ec).unwrap();
    SigningKey {
        kid: kid.into(),
        alg: Algorithm::ES256,
        private_pem: pkey.private_key_to_pem_pkcs8().unwrap(),
        public_pem: pkey.public_key_to_pem().unwrap(),
        jwk,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(sub: &str, scope: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "scope": scope,
        "iat": now(), "exp": now() + 600})
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    let encoding = match key.alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&key.private_pem).unwrap(),
        _ => EncodingKey::from_ec_pem(&key.private_pem).unwrap(),
    };
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

/// A local IdP: serves OIDC discovery and a JWKS that the test can change or take down.
struct Idp {
    base: String,
    keys: Arc<Mutex<Vec<Value>>>,
    up: Arc<AtomicBool>,
    jwks_fetches: Arc<AtomicUsize>,
}

impl Idp {
    fn start(keys: &[&SigningKey]) -> Idp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let jwks: Arc<Mutex<Vec<Value>>> =
            Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()));
        let up = Arc::new(AtomicBool::new(true));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (j, u, f, b) = (jwks.clone(), up.clone(), fetches.clone(), base.clone());
        let server = HttpServer::new(move || {
            let (j, u, f, b) = (j.clone(), u.clone(), f.clone(), b.clone());
            let (u2, b2) = (u.clone(), b.clone());
            App::new()
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(move || {
                        let (u, b) = (u2.clone(), b2.clone());
                        async move {
                            if !u.load(Ordering::SeqCst) {
                                return HttpResponse::ServiceUnavailable().finish();
                            }
                            HttpResponse::Ok().json(
                                json!({"issuer": ISSUER, "jwks_uri": format!("{b}/jwks.json")}),
                            )
                        }
                    }),
                )
                .route(
                    "/jwks.json",
                    web::get().to(move || {
                        let (j, u, f) = (j.clone(), u.clone(), f.clone());
                        async move {
                            f.fetch_add(1, Ordering::SeqCst);
                            if !u.load(Ordering::SeqCst) {
                                return HttpResponse::ServiceUnavailable().finish();
                            }
                            HttpResponse::Ok().json(json!({"keys": *j.lock().unwrap()}))
                        }
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Idp {
            base,
            keys: jwks,
            up,
            jwks_fetches: fetches,
        }
    }

    fn fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }
}

fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An app with auth on: JWTs from `idp` (discovery unless `jwks_url`), the API keys and
/// grants below, and `extra` settings applied last.
async fn app_with_auth(
    idp: Option<&Idp>,
    topic_a: &str,
    _topic_b: &str,
    extra: impl FnOnce(&mut kafka_rest_proxy::config::Settings),
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        r#"
[[api_keys]]
principal = "key-partner"
sha256 = "{good}"
scopes = []

[[api_keys]]
principal = "retired-partner"
sha256 = "{disabled}"
enabled = false

[[api_keys]]
principal = "fenced-partner"
sha256 = "{fenced}"

[[grants]]
principals = ["key-partner", "fenced-partner"]
topics = ["{topic_a}"]
operations = ["produce", "describe"]

[[grants]]
scopes = ["orders:write"]
topics = ["{topic_a}"]
operations = ["produce", "describe"]

[principals.fenced-partner]
allow_cidrs = ["203.0.113.0/24"]
"#,
        good = sha256_hex("good-key"),
        disabled = sha256_hex("disabled-key"),
        fenced = sha256_hex("fenced-key"),
    );
    std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
    let mut settings = Cluster::plaintext().settings();
    settings.auth.enabled = true;
    settings.auth.policy_file = Some(dir.path().join("policy.toml"));
    if let Some(idp) = idp {
        settings.auth.jwt.issuer = Some(ISSUER.into());
        settings.auth.jwt.audiences = vec![AUDIENCE.into()];
        settings.auth.jwt.jwks_url = Some(format!("{}/jwks.json", idp.base));
        settings.auth.jwt.leeway_secs = 5;
        settings.auth.jwt.unknown_kid_refresh_interval_ms = 60_000;
    }
    extra(&mut settings);
    let app = TestApp::spawn(settings).await;
    app.wait_ready().await;
    (app, dir)
}

async fn produce_with(
    app: &TestApp,
    topic: &str,
    headers: &[(&str, &str)],
) -> crate::helpers::Response {
    let mut all = vec![("content-type", JSON_V2)];
    all.extend_from_slice(headers);
    app.request(
        "POST",
        &format!("/topics/{topic}"),
        &all,
        r#"{"records":[{"value":"authenticated"}]}"#,
    )
    .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[track_caller]
fn assert_401(r: &crate::helpers::Response, message: &str) {
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
    let r = produce_with(
        &app,
        &a,
        &[(
            "authorization",
            &bearer(&sign(&old, &claims("p", "orders:write"))),
        )],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    // A kid nobody published: one refetch, then 401; a second try within the interval
    // does not refetch. (Wait out the interval in case the first request, racing the
    // startup fetch, used it.)
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
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
    idp.keys.lock().unwrap().push(new.jwk.clone());
    let r = produce_with(
        &app,
        &a,
        &[(
            "authorization",
            &bearer(&sign(&new, &claims("p", "orders:write"))),
        )],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
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
    idp.up.store(false, Ordering::SeqCst);
    let fetches = idp.fetches();
    // Several failed background refreshes later, the cached key still validates.
    while idp.fetches() < fetches + 3 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = produce_with(&app, &a, &[("authorization", &bearer(&token))]).await;
    assert_eq!(r.status, 200, "{r:?}");
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn no_keys_ever_fetched_is_401_not_500() {
    let (_cluster, a, b) = topics().await;
    let rsa = rsa_key("rsa-1");
    let idp = Idp::start(&[&rsa]);
    idp.up.store(false, Ordering::SeqCst);
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
    let m = app
        .request("GET", "/metrics", &[("x-api-key", "good-key")], "")
        .await
        .body;
    assert_eq!(
        crate::helpers::sample(
            &m,
            r#"kafka_rest_auth_failures_total{reason="invalid_api_key"}"#
        ),
        1.0
    );
    assert_eq!(
        crate::helpers::sample(
            &m,
            r#"kafka_rest_records_produced_total{format="json",outcome="ok",principal="key-partner",topic="_other"}"#
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
