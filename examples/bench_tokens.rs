//! Benchmark helper: makes an RS256 and an ES256 signing key, writes their JWKS to a file
//! (served locally by `scripts/bench.sh`, as an IdP would serve it), and prints one token
//! per key for `--sub`, valid for `--lifetime-secs`: `RS256 <token>` and `ES256 <token>`.
//!
//! ```sh
//! cargo run --release --example bench_tokens -- --jwks /tmp/jwks.json \
//!     --issuer http://127.0.0.1:8000/ --audience kafka-rest-proxy --sub bench
//! ```

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Parser;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(about = "Signing keys, their JWKS and one token per key (benchmark helper)")]
struct Args {
    /// Where to write the JWKS.
    #[arg(long)]
    jwks: PathBuf,
    #[arg(long)]
    issuer: String,
    #[arg(long)]
    audience: String,
    /// The tokens' subject (the principal `jwt:<sub>`).
    #[arg(long)]
    sub: String,
    #[arg(long, default_value_t = 3_600)]
    lifetime_secs: u64,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An RSA 2048 key: the encoding key and its public JWK.
fn rsa(kid: &str) -> (EncodingKey, Value) {
    let rsa = Rsa::generate(2048).expect("RSA key");
    let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())});
    let pem = rsa.private_key_to_pem().expect("PEM");
    (EncodingKey::from_rsa_pem(&pem).expect("RSA PEM"), jwk)
}

/// A P-256 key: the encoding key and its public JWK.
fn ec(kid: &str) -> (EncodingKey, Value) {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    let ec = EcKey::generate(&group).expect("EC key");
    let (mut x, mut y) = (BigNum::new().expect("bn"), BigNum::new().expect("bn"));
    ec.public_key()
        .affine_coordinates(
            &group,
            &mut x,
            &mut y,
            &mut BigNumContext::new().expect("ctx"),
        )
        .expect("coordinates");
    let jwk = json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
        "x": b64(&x.to_vec_padded(32).expect("x")), "y": b64(&y.to_vec_padded(32).expect("y"))});
    let pem = PKey::from_ec_key(ec)
        .and_then(|k| k.private_key_to_pem_pkcs8())
        .expect("PEM");
    (EncodingKey::from_ec_pem(&pem).expect("EC PEM"), jwk)
}

fn main() {
    let args = Args::parse();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let claims = json!({"iss": args.issuer, "aud": args.audience, "sub": args.sub,
        "iat": now, "exp": now + args.lifetime_secs});
    let (rsa_key, rsa_jwk) = rsa("bench-rs256");
    let (ec_key, ec_jwk) = ec("bench-es256");
    std::fs::write(&args.jwks, json!({"keys": [rsa_jwk, ec_jwk]}).to_string())
        .expect("JWKS written");
    for (alg, kid, key) in [
        (Algorithm::RS256, "bench-rs256", &rsa_key),
        (Algorithm::ES256, "bench-es256", &ec_key),
    ] {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, key).expect("signed");
        println!("{alg:?} {token}");
    }
}
