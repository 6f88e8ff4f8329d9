//! A local identity provider: signing keys made here, tokens signed with them, and a server
//! for OIDC discovery and the JWKS that a test can change or take down.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

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

pub const ISSUER: &str = "https://idp.test/";
pub const AUDIENCE: &str = "kafka-rest-proxy";

/// A signing key made for the test, with its public JWK.
pub struct SigningKey {
    kid: String,
    pub alg: Algorithm,
    private_pem: Vec<u8>,
    pub public_pem: Vec<u8>,
    jwk: Value,
}

pub fn rsa_key(kid: &str) -> SigningKey {
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

pub fn ec_key(kid: &str) -> SigningKey {
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

/// Seconds since the epoch, as JWT times are.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims that [`ISSUER`] issues for [`AUDIENCE`], valid for ten minutes.
pub fn claims(sub: &str, scope: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "scope": scope,
        "iat": now(), "exp": now() + 600})
}

/// A JWT of `claims` signed with `key`, its kid in the header.
pub fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    let encoding = match key.alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&key.private_pem).unwrap(),
        _ => EncodingKey::from_ec_pem(&key.private_pem).unwrap(),
    };
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

/// The JWKS document publishing `keys`.
pub fn jwks_document(keys: &[&SigningKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// What the IdP serves, shared with the test.
struct State {
    base: String,
    /// The `issuer` the discovery document names.
    issuer: Mutex<String>,
    keys: Mutex<Vec<Value>>,
    up: AtomicBool,
    jwks_fetches: AtomicUsize,
}

/// The IdP: `GET /.well-known/openid-configuration` (issuer `<base>/` unless changed) and
/// `GET /jwks.json` on a free port; `GET /moved/jwks.json` redirects (302) to the JWKS.
pub struct Idp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    state: web::Data<State>,
}

impl Idp {
    /// Starts serving `keys` on the test's runtime.
    pub fn start(keys: &[&SigningKey]) -> Idp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = web::Data::from(Arc::new(State {
            base: base.clone(),
            issuer: Mutex::new(format!("{base}/")),
            keys: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            up: AtomicBool::new(true),
            jwks_fetches: AtomicUsize::new(0),
        }));
        let shared = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/jwks.json", web::get().to(jwks))
                .route("/moved/jwks.json", web::get().to(moved))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Idp { base, state }
    }

    /// Adds `key` to the JWKS (a key rotation).
    pub fn publish(&self, key: &SigningKey) {
        self.state.keys.lock().unwrap().push(key.jwk.clone());
    }

    /// Takes `key` out of the JWKS (the issuer withdrew it).
    pub fn withdraw(&self, key: &SigningKey) {
        self.state.keys.lock().unwrap().retain(|k| *k != key.jwk);
    }

    /// From now on the discovery document names `issuer`.
    pub fn claim_issuer(&self, issuer: &str) {
        *self.state.issuer.lock().unwrap() = issuer.to_owned();
    }

    /// From now on both documents answer 503.
    pub fn go_down(&self) {
        self.state.up.store(false, Ordering::SeqCst);
    }

    /// How many times the JWKS was asked for, answered or not.
    pub fn fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }
}

async fn discovery(state: web::Data<State>) -> HttpResponse {
    if !state.up.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let issuer = state.issuer.lock().unwrap().clone();
    HttpResponse::Ok()
        .json(json!({"issuer": issuer, "jwks_uri": format!("{}/jwks.json", state.base)}))
}

async fn moved(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("location", format!("{}/jwks.json", state.base)))
        .finish()
}

async fn jwks(state: web::Data<State>) -> HttpResponse {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if !state.up.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    HttpResponse::Ok().json(json!({"keys": *state.keys.lock().unwrap()}))
}
