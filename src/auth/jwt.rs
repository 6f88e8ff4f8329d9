//! JWT bearer tokens (jsonwebtoken): signature by a key from the issuer's JWKS, `iss`,
//! `aud`, `exp`, `nbf` with leeway, required claims; the principal and scopes from
//! configurable claims.
//!
//! Refused at startup: no audience (unless `allow_any_audience`), an `http://` issuer or
//! JWKS URL (unless `allow_http`, for development). `exp` is always required, whatever
//! `required_claims` says. The discovery document must name the configured issuer, and
//! redirects are never followed: the keys come from exactly the configured place.
//!
//! The JWKS cache: keys are fetched at startup and every `refresh_interval_ms` in the
//! background; a token with an unknown `kid` triggers one extra fetch, at most one such
//! fetch per `unknown_kid_refresh_interval_ms`, so key rotation needs no restart and a
//! flood of bogus `kid`s cannot hammer the IdP. A failed fetch keeps the keys already held: while
//! the IdP is down, tokens signed by known keys keep working. Before any fetch has
//! succeeded, every token gets 401 ("signing keys unavailable"), never a 500.
//!
//! The verified-token cache: a partner sends the same token with every request for the
//! token's whole life, and checking its signature each time (tens to hundreds of
//! microseconds for RS256/ES256) is most of what authentication costs. A token that passed
//! every check is remembered under its SHA-256 (never the token itself) with the principal
//! it named, its `exp`/`nbf` and the key that verified it, for at most `cache_ttl_ms` and
//! never past its `exp` (plus leeway). A hit still checks `exp` and `nbf` against the clock,
//! and that the verifying key is still in the JWKS (a key the issuer withdrew stops
//! authenticating at the next refresh, as without the cache); the address allowlist is
//! checked per request after authentication, cached or not. Only tokens that passed are
//! stored, so a flood of invalid tokens cannot push valid ones out; a policy reload empties
//! the cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use moka::Expiry;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{AuthError, AuthMethod, Principal};
use crate::config::{ConfigError, JwtAlgorithm, JwtSettings};

/// Where the signing keys come from.
#[derive(Debug, Clone)]
enum KeySource {
    Jwks(String),
    /// OIDC discovery: `<issuer>/.well-known/openid-configuration` names the JWKS.
    Discovery(String),
}

/// A key's identity across JWKS fetches: the SHA-256 of its JWK as published. A refresh
/// that brings the same key keeps the tokens it verified cached; a key that left the JWKS
/// (or changed under the same `kid`) no longer vouches for them.
type KeyId = [u8; 32];

/// A signing key of the issuer.
struct SigningKey {
    key: DecodingKey,
    id: KeyId,
}

#[derive(Default)]
struct KeySet {
    /// Keys by `kid`; keys without one are under `None`.
    keys: HashMap<Option<String>, Vec<Arc<SigningKey>>>,
}

impl KeySet {
    /// The usable keys of a JWKS; the others are skipped with a warning.
    fn of(set: &JwkSet) -> KeySet {
        let mut keys = KeySet::default();
        for jwk in &set.keys {
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    let published = serde_json::to_vec(jwk).unwrap_or_default();
                    let id = Sha256::digest(&published).into();
                    keys.keys
                        .entry(jwk.common.key_id.clone())
                        .or_default()
                        .push(Arc::new(SigningKey { key, id }));
                }
                Err(e) => {
                    tracing::warn!(kid = ?jwk.common.key_id, error = %e, "skipping a JWKS key")
                }
            }
        }
        keys
    }

    fn holds(&self, id: &KeyId) -> bool {
        self.keys.values().flatten().any(|k| &k.id == id)
    }
}

/// The issuer's signing keys.
pub struct Jwks {
    source: KeySource,
    /// Whether `http://` URLs are acceptable (development only).
    allow_http: bool,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Serializes fetches; holds the time of the last one triggered by an unknown `kid`
    /// (background refreshes do not count: they must not delay picking up a rotation).
    fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Fetches finished (or given up), successful or not: a request that waited for the
    /// lock while one ran takes its result instead of starting another.
    attempts: AtomicU64,
    unknown_kid_interval: Duration,
    timeout: Duration,
}

impl Jwks {
    fn new(settings: &JwtSettings, issuer: &str) -> Jwks {
        let source = match &settings.jwks_url {
            Some(url) => KeySource::Jwks(url.clone()),
            None => KeySource::Discovery(issuer.to_owned()),
        };
        Jwks {
            source,
            allow_http: settings.allow_http,
            keys: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(None),
            attempts: AtomicU64::new(0),
            unknown_kid_interval: Duration::from_millis(settings.unknown_kid_refresh_interval_ms),
            timeout: Duration::from_millis(settings.fetch_timeout_ms),
        }
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fetches the key set and replaces the cached one; on failure the cache is kept.
    ///
    /// # Errors
    /// Why the keys could not be fetched.
    pub async fn refresh(&self) -> Result<usize, String> {
        let _serialized = self.fetch.lock().await;
        self.refresh_locked().await
    }

    /// One fetch, bounded as a whole (discovery, connect, headers, body) by
    /// `fetch_timeout_ms`: an IdP that stalls mid-body cannot hold the fetch lock, and with
    /// it every refresh and every request with an unknown `kid`.
    async fn refresh_locked(&self) -> Result<usize, String> {
        let result = tokio::time::timeout(self.timeout, self.fetch_keys())
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the JWKS fetch did not finish within {} ms",
                    self.timeout.as_millis()
                ))
            });
        self.attempts.fetch_add(1, Ordering::SeqCst);
        match &result {
            Ok(set) => {
                let count = set.keys.values().map(Vec::len).sum();
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(set));
                Ok(count)
            }
            Err(e) => Err(e.clone()),
        }
    }

    async fn fetch_keys(&self) -> Result<Arc<KeySet>, String> {
        let url = match &self.source {
            KeySource::Jwks(url) => url.clone(),
            KeySource::Discovery(issuer) => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let document = self.get_json(&discovery).await?;
                // OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it
                // was fetched for, or another issuer's keys would validate our tokens.
                if document["issuer"].as_str() != Some(issuer.as_str()) {
                    return Err(format!(
                        "{discovery} names issuer {}, not the configured {issuer:?}",
                        document["issuer"]
                    ));
                }
                let jwks_uri = document["jwks_uri"]
                    .as_str()
                    .ok_or_else(|| format!("{discovery} has no jwks_uri"))?;
                if !secure_url(jwks_uri, self.allow_http) {
                    return Err(format!("{discovery}: jwks_uri {jwks_uri:?} is not https"));
                }
                jwks_uri.to_owned()
            }
        };
        let document = self.get_json(&url).await?;
        let set: JwkSet =
            serde_json::from_value(document).map_err(|e| format!("{url}: not a JWKS: {e}"))?;
        Ok(Arc::new(KeySet::of(&set)))
    }

    /// Holds `set` as if a fetch for an unknown `kid` had just brought it: the next such
    /// fetch waits `unknown_kid_refresh_interval_ms`.
    fn install(&self, set: &JwkSet) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(KeySet::of(set)));
        if let Ok(mut last) = self.fetch.try_lock() {
            *last = Some(Instant::now());
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        // Redirects are not followed: the keys come from the configured URL or none.
        let client = awc::Client::builder()
            .timeout(self.timeout)
            .disable_redirects()
            .finish();
        let mut response = client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let body = response
            .body()
            .limit(1 << 20)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
    }

    /// Whether the key set held now has the key `id`.
    fn holds(&self, id: &KeyId) -> bool {
        self.current().is_some_and(|set| set.holds(id))
    }

    /// Keys that may have signed a token with this `kid`, refetching once (rate-limited)
    /// when the `kid` is unknown.
    async fn keys_for(&self, kid: Option<&str>) -> Result<Vec<Arc<SigningKey>>, AuthError> {
        if let Some(found) = self.lookup(kid) {
            return Ok(found);
        }
        {
            let attempts = self.attempts.load(Ordering::SeqCst);
            let mut last = self.fetch.lock().await;
            // Another request may have refreshed while we waited for the lock.
            if let Some(found) = self.lookup(kid) {
                return Ok(found);
            }
            // A fetch finished while we waited: its answer is as fresh as ours would be,
            // and a second one would double the wait behind a stalled IdP.
            let fetched_meanwhile = self.attempts.load(Ordering::SeqCst) != attempts;
            if !fetched_meanwhile && last.is_none_or(|at| at.elapsed() >= self.unknown_kid_interval)
            {
                *last = Some(Instant::now());
                if let Err(e) = self.refresh_locked().await {
                    tracing::warn!(error = %e, "JWKS refresh for an unknown kid failed");
                }
            }
        }
        match self.current() {
            None => Err(AuthError::KeysUnavailable),
            Some(_) => self.lookup(kid).ok_or(AuthError::UnknownKey),
        }
    }

    fn lookup(&self, kid: Option<&str>) -> Option<Vec<Arc<SigningKey>>> {
        let set = self.current()?;
        match kid {
            Some(kid) => set.keys.get(&Some(kid.to_owned())).cloned(),
            // No kid in the token: any key may have signed it.
            None => {
                let all: Vec<Arc<SigningKey>> = set.keys.values().flatten().cloned().collect();
                (!all.is_empty()).then_some(all)
            }
        }
    }
}

/// The jsonwebtoken algorithm of a configured one: every configured algorithm has one, so
/// none is dropped on the way.
fn algorithm(configured: JwtAlgorithm) -> Algorithm {
    match configured {
        JwtAlgorithm::Hs256 => Algorithm::HS256,
        JwtAlgorithm::Hs384 => Algorithm::HS384,
        JwtAlgorithm::Hs512 => Algorithm::HS512,
        JwtAlgorithm::Rs256 => Algorithm::RS256,
        JwtAlgorithm::Rs384 => Algorithm::RS384,
        JwtAlgorithm::Rs512 => Algorithm::RS512,
        JwtAlgorithm::Ps256 => Algorithm::PS256,
        JwtAlgorithm::Ps384 => Algorithm::PS384,
        JwtAlgorithm::Ps512 => Algorithm::PS512,
        JwtAlgorithm::Es256 => Algorithm::ES256,
        JwtAlgorithm::Es384 => Algorithm::ES384,
        JwtAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

/// Whether a valid token's verification came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCache {
    Hit,
    Miss,
}

impl TokenCache {
    /// The label of `kafka_rest_jwt_cache_lookups_total`.
    pub fn label(self) -> &'static str {
        match self {
            TokenCache::Hit => "hit",
            TokenCache::Miss => "miss",
        }
    }
}

/// A token that passed every check, as the cache remembers it.
struct Verified {
    principal: Principal,
    /// Seconds since the epoch.
    exp: u64,
    nbf: Option<u64>,
    /// The key whose signature it carries.
    key: KeyId,
}

/// A cached verification lives `ttl` at most, and never past the token's expiry.
struct UntilExpiry {
    ttl: Duration,
    leeway_secs: u64,
}

impl Expiry<[u8; 32], Arc<Verified>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _token: &[u8; 32],
        verified: &Arc<Verified>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = (verified.exp + self.leeway_secs).saturating_sub(unix_now());
        Some(self.ttl.min(Duration::from_secs(left)))
    }
}

/// Seconds since the epoch, as JWT times are.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A numeric date claim (RFC 7519 §2), when it is one.
fn numeric_date(claims: &serde_json::Map<String, Value>, name: &str) -> Option<u64> {
    let value = claims.get(name)?;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

/// Validates bearer tokens.
pub struct JwtValidator {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway_secs: u64,
    principal_claim: String,
    scope_claims: Vec<String>,
    required_claims: Vec<String>,
    refresh_interval: Duration,
    jwks: Jwks,
    /// Verified tokens by the SHA-256 of the token; `None` when `cache_max_entries` is 0.
    verified: Option<moka::sync::Cache<[u8; 32], Arc<Verified>>>,
    /// The clock a cache hit's `exp`/`nbf` are checked against (a test's own in tests).
    clock: fn() -> u64,
}

impl JwtValidator {
    /// `None` when JWT authentication is not configured (no issuer).
    ///
    /// # Errors
    /// [`ConfigError`] naming the key: no audience without `allow_any_audience`, an issuer
    /// or JWKS URL that is not https without `allow_http`.
    pub fn new(settings: &JwtSettings) -> Result<Option<JwtValidator>, ConfigError> {
        let Some(issuer) = settings.issuer.clone() else {
            return Ok(None);
        };
        if settings.audiences.is_empty() && !settings.allow_any_audience {
            return Err(ConfigError::invalid(
                "auth.jwt.audiences",
                "empty: tokens the issuer signs for any other application would be accepted. \
                 Name this API's audience, or set auth.jwt.allow_any_audience = true",
            ));
        }
        for (key, url) in [
            ("auth.jwt.issuer", Some(&issuer)),
            ("auth.jwt.jwks_url", settings.jwks_url.as_ref()),
        ] {
            if let Some(url) = url.filter(|u| !secure_url(u, settings.allow_http)) {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "{url:?} must be an https:// URL (http:// only with \
                         auth.jwt.allow_http = true, for development)"
                    ),
                ));
            }
        }
        let algorithms = settings.algorithms.iter().map(|a| algorithm(*a)).collect();
        let verified = (settings.cache_max_entries > 0 && settings.cache_ttl_ms > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(settings.cache_max_entries)
                .expire_after(UntilExpiry {
                    ttl: Duration::from_millis(settings.cache_ttl_ms),
                    leeway_secs: settings.leeway_secs,
                })
                .build()
        });
        Ok(Some(JwtValidator {
            verified,
            clock: unix_now,
            jwks: Jwks::new(settings, &issuer),
            issuer,
            audiences: settings.audiences.clone(),
            algorithms,
            leeway_secs: settings.leeway_secs,
            principal_claim: settings.principal_claim.clone(),
            scope_claims: settings.scope_claims.clone(),
            required_claims: settings.required_claims.clone(),
            refresh_interval: Duration::from_millis(settings.refresh_interval_ms),
        }))
    }

    /// Takes the signing keys from a JWKS document instead of the issuer, as a fetch for an
    /// unknown `kid` would have just taken them: for the fuzz targets (`crate::fuzzing`),
    /// which validate tokens with keys they know and no IdP.
    ///
    /// # Errors
    /// When `jwks` is not a JWKS document.
    pub(crate) fn install_keys(&self, jwks: &str) -> Result<(), String> {
        let set: JwkSet = serde_json::from_str(jwks).map_err(|e| format!("not a JWKS: {e}"))?;
        self.jwks.install(&set);
        Ok(())
    }

    /// Refreshes the keys now and then every `refresh_interval_ms`, until dropped.
    pub async fn run_key_refresh(self: Arc<Self>) {
        loop {
            match self.jwks.refresh().await {
                Ok(count) => tracing::debug!(keys = count, "JWKS refreshed"),
                Err(e) => tracing::warn!(
                    error = %e,
                    "JWKS refresh failed; keeping the keys already held"
                ),
            }
            tokio::time::sleep(self.refresh_interval).await;
        }
    }

    /// Forgets every cached verification (the policy was reloaded).
    pub fn forget_verified(&self) {
        if let Some(cache) = &self.verified {
            cache.invalidate_all();
        }
    }

    /// The principal a valid token names, and whether its verification was cached.
    ///
    /// # Errors
    /// What is wrong with the token; never the token itself.
    pub async fn validate(&self, token: &str) -> Result<(Principal, TokenCache), AuthError> {
        let Some(cache) = &self.verified else {
            return Ok((self.verify(token).await?.principal, TokenCache::Miss));
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = cache.get(&digest) {
            if self.jwks.holds(&hit.key) {
                self.check_times(&hit)?;
                return Ok((hit.principal.clone(), TokenCache::Hit));
            }
            // Its key left the JWKS: verify again, which now fails (or finds the key back).
            cache.invalidate(&digest);
        }
        let verified = Arc::new(self.verify(token).await?);
        cache.insert(digest, Arc::clone(&verified));
        Ok((verified.principal.clone(), TokenCache::Miss))
    }

    /// `exp` and `nbf` of a cached token against the clock, with the leeway, as
    /// jsonwebtoken checks them when it verifies.
    fn check_times(&self, verified: &Verified) -> Result<(), AuthError> {
        let now = (self.clock)();
        if verified.exp.saturating_add(self.leeway_secs) < now {
            return Err(AuthError::TokenExpired);
        }
        if verified
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway_secs))
        {
            return Err(AuthError::TokenNotYetValid);
        }
        Ok(())
    }

    /// Every check of the token: algorithm, signature, claims.
    async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let alg = self.allowed_algorithm(token)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::MalformedToken)?;
        let keys = self.jwks.keys_for(header.kid.as_deref()).await?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.issuer]);
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
        }
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        // jsonwebtoken compares iss and aud only when the token has them: require them, or a
        // token without an audience would pass an audience check.
        // `exp` too: setting the required claims replaces jsonwebtoken's default (`exp`), and
        // a token without an expiry would be valid forever.
        let mut required = self.required_claims.clone();
        required.push("exp".to_owned());
        required.push("iss".to_owned());
        if !self.audiences.is_empty() {
            required.push("aud".to_owned());
        }
        validation.set_required_spec_claims(&required);

        let mut last_error = AuthError::BadSignature;
        for key in keys.iter().filter(|k| k.key.family() == alg.family()) {
            match jsonwebtoken::decode::<serde_json::Map<String, Value>>(
                token,
                &key.key,
                &validation,
            ) {
                Ok(data) => {
                    let exp = numeric_date(&data.claims, "exp").ok_or(AuthError::MalformedToken)?;
                    return Ok(Verified {
                        principal: self.principal(&data.claims)?,
                        exp,
                        nbf: numeric_date(&data.claims, "nbf"),
                        key: key.id,
                    });
                }
                Err(e) => {
                    last_error = map_error(&e);
                    if last_error != AuthError::BadSignature {
                        // Signed by this key but invalid: no other key will do better.
                        return Err(last_error);
                    }
                }
            }
        }
        if keys.iter().all(|k| k.key.family() != alg.family()) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        Err(last_error)
    }

    /// The token's `alg`, read from its header before anything else, when configured.
    fn allowed_algorithm(&self, token: &str) -> Result<Algorithm, AuthError> {
        let header_b64 = token.split('.').next().ok_or(AuthError::MalformedToken)?;
        let header = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| AuthError::MalformedToken)?;
        let header: Value =
            serde_json::from_slice(&header).map_err(|_| AuthError::MalformedToken)?;
        let alg = header["alg"].as_str().ok_or(AuthError::MalformedToken)?;
        alg.parse::<Algorithm>()
            .ok()
            .filter(|a| self.algorithms.contains(a))
            .ok_or(AuthError::AlgorithmNotAllowed)
    }

    fn principal(&self, claims: &serde_json::Map<String, Value>) -> Result<Principal, AuthError> {
        let id = match claims.get(&self.principal_claim) {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => return Err(AuthError::MissingClaim(self.principal_claim.clone())),
        };
        let mut scopes = Vec::new();
        for claim in &self.scope_claims {
            match claims.get(claim) {
                Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(str::to_owned)),
                Some(Value::Array(items)) => {
                    scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_owned))
                }
                _ => {}
            }
        }
        Ok(Principal::new(AuthMethod::Jwt, &id, scopes))
    }
}

/// Whether `url` is https, or http when that is allowed (development).
fn secure_url(url: &str, allow_http: bool) -> bool {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    scheme.eq_ignore_ascii_case("https") || (allow_http && scheme.eq_ignore_ascii_case("http"))
}

fn map_error(error: &jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match error.kind() {
        K::ExpiredSignature => AuthError::TokenExpired,
        K::ImmatureSignature => AuthError::TokenNotYetValid,
        K::InvalidIssuer => AuthError::WrongIssuer,
        K::InvalidAudience => AuthError::WrongAudience,
        K::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        K::InvalidSignature => AuthError::BadSignature,
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => {
            AuthError::AlgorithmNotAllowed
        }
        _ => AuthError::MalformedToken,
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://idp.test/";
    const AUDIENCE: &str = "kafka-rest";

    /// An ES256 key pair: what signs the tokens, and its public JWK.
    struct Key {
        kid: &'static str,
        encoding: EncodingKey,
        jwk: Value,
    }

    fn key(kid: &'static str) -> Key {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let ec = EcKey::generate(&group).unwrap();
        let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
        ec.public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut BigNumContext::new().unwrap())
            .unwrap();
        let b64 = |n: &BigNum| URL_SAFE_NO_PAD.encode(n.to_vec_padded(32).unwrap());
        let jwk = json!({"kty": "EC", "kid": kid, "alg": "ES256", "crv": "P-256",
            "x": b64(&x), "y": b64(&y)});
        let pem = PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        Key {
            kid,
            encoding: EncodingKey::from_ec_pem(&pem).unwrap(),
            jwk,
        }
    }

    fn jwks(keys: &[&Key]) -> String {
        json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
    }

    fn sign(key: &Key, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
    }

    fn claims(sub: &str, exp: u64) -> Value {
        let now = unix_now();
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "nbf": now, "exp": exp})
    }

    fn validator(cache_max_entries: u64, cache_ttl_ms: u64, keys: &[&Key]) -> JwtValidator {
        let settings = JwtSettings {
            issuer: Some(ISSUER.to_owned()),
            audiences: vec![AUDIENCE.to_owned()],
            // No IdP here: a token with an unknown kid never triggers a fetch.
            unknown_kid_refresh_interval_ms: u64::MAX,
            leeway_secs: 0,
            cache_max_entries,
            cache_ttl_ms,
            ..JwtSettings::default()
        };
        let validator = JwtValidator::new(&settings).unwrap().unwrap();
        validator.install_keys(&jwks(keys)).unwrap();
        validator
    }

    fn validate(validator: &JwtValidator, token: &str) -> Result<TokenCache, AuthError> {
        futures_util::FutureExt::now_or_never(validator.validate(token))
            .expect("no fetch: the keys are installed")
            .map(|(principal, cache)| {
                assert_eq!(principal.id.as_str(), "jwt:partner-a");
                cache
            })
    }

    #[test]
    fn a_valid_token_is_verified_once_then_served_from_the_cache() {
        let a = key("a");
        let validator = validator(100, 60_000, &[&a]);
        let token = sign(&a, &claims("partner-a", unix_now() + 600));
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Miss));
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Hit));
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Hit));
    }

    #[test]
    fn with_the_cache_off_every_token_is_verified() {
        let a = key("a");
        let validator = validator(0, 60_000, &[&a]);
        let token = sign(&a, &claims("partner-a", unix_now() + 600));
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Miss));
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Miss));
    }

    #[test]
    fn a_cache_hit_still_checks_exp_and_nbf_against_the_clock() {
        let a = key("a");
        let mut validator = validator(100, 60_000, &[&a]);
        let token = sign(&a, &claims("partner-a", unix_now() + 600));
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Miss));

        validator.clock = || unix_now() + 601;
        assert_eq!(validate(&validator, &token), Err(AuthError::TokenExpired));
        validator.clock = || unix_now() - 3_600;
        assert_eq!(
            validate(&validator, &token),
            Err(AuthError::TokenNotYetValid)
        );
        validator.clock = unix_now;
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Hit));
    }

    #[test]
    fn a_token_whose_key_left_the_jwks_is_refused_even_when_cached() {
        let (a, b) = (key("a"), key("b"));
        let validator = validator(100, 60_000, &[&a, &b]);
        let token = sign(&a, &claims("partner-a", unix_now() + 600));
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Miss));
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Hit));

        // The issuer withdrew key "a".
        validator.install_keys(&jwks(&[&b])).unwrap();
        assert_eq!(validate(&validator, &token), Err(AuthError::UnknownKey));
        // And published another key under the same kid.
        validator.install_keys(&jwks(&[&key("a"), &b])).unwrap();
        assert_eq!(validate(&validator, &token), Err(AuthError::BadSignature));

        // A refresh that brings the same keys keeps the verifications.
        let token_b = sign(&b, &claims("partner-a", unix_now() + 600));
        assert_eq!(validate(&validator, &token_b), Ok(TokenCache::Miss));
        validator.install_keys(&jwks(&[&b])).unwrap();
        assert_eq!(validate(&validator, &token_b), Ok(TokenCache::Hit));
    }

    #[test]
    fn a_verification_is_kept_at_most_the_ttl() {
        let a = key("a");
        let validator = validator(100, 50, &[&a]);
        let token = sign(&a, &claims("partner-a", unix_now() + 600));
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Miss));
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Miss));
    }

    #[test]
    fn a_verification_is_not_kept_past_the_token_expiry() {
        let a = key("a");
        let validator = validator(100, 3_600_000, &[&a]);
        let token = sign(&a, &claims("partner-a", unix_now() + 1));
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Miss));
        let cache = validator.verified.as_ref().unwrap();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        assert!(cache.contains_key(&digest));
        std::thread::sleep(Duration::from_millis(2_100));
        assert!(!cache.contains_key(&digest), "kept past its exp");
    }

    #[test]
    fn invalid_tokens_are_not_cached_and_cannot_evict_valid_ones() {
        let a = key("a");
        let validator = validator(10, 60_000, &[&a]);
        let valid = sign(&a, &claims("partner-a", unix_now() + 600));
        assert_eq!(validate(&validator, &valid), Ok(TokenCache::Miss));

        // Signed by the key but expired, and signed by a stranger under the key's kid.
        let expired = sign(&a, &claims("partner-a", unix_now() - 10));
        assert_eq!(validate(&validator, &expired), Err(AuthError::TokenExpired));
        assert_eq!(validate(&validator, &expired), Err(AuthError::TokenExpired));
        let stranger = key("a");
        for n in 0..200 {
            let forged = sign(&stranger, &claims("partner-a", unix_now() + 600 + n));
            assert_eq!(validate(&validator, &forged), Err(AuthError::BadSignature));
        }
        let cache = validator.verified.as_ref().unwrap();
        cache.run_pending_tasks();
        assert_eq!(cache.entry_count(), 1);
        assert_eq!(validate(&validator, &valid), Ok(TokenCache::Hit));
    }

    #[test]
    fn forgetting_empties_the_cache() {
        let a = key("a");
        let validator = validator(100, 60_000, &[&a]);
        let token = sign(&a, &claims("partner-a", unix_now() + 600));
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Miss));
        validator.forget_verified();
        assert_eq!(validate(&validator, &token), Ok(TokenCache::Miss));
    }

    #[test]
    fn a_policy_reload_makes_every_token_be_verified_again() {
        use crate::auth::{Authenticator, Credentials, Policy};
        use crate::config::{AuthSettings, PolicyText};

        let a = key("a");
        let policy = "[[grants]]\nprincipals = [\"jwt:partner-a\"]\ntopics = [\"t\"]\n\
                      operations = [\"produce\"]\n";
        let settings = AuthSettings {
            enabled: true,
            policy: Some(PolicyText(policy.to_owned())),
            jwt: JwtSettings {
                issuer: Some(ISSUER.to_owned()),
                audiences: vec![AUDIENCE.to_owned()],
                unknown_kid_refresh_interval_ms: u64::MAX,
                ..JwtSettings::default()
            },
            ..AuthSettings::default()
        };
        let authenticator = Authenticator::new(&settings).unwrap();
        authenticator
            .jwt()
            .unwrap()
            .install_keys(&jwks(&[&a]))
            .unwrap();
        let header = format!(
            "Bearer {}",
            sign(&a, &claims("partner-a", unix_now() + 600))
        );
        let authenticate = || {
            let credentials = Credentials {
                authorization: Some(&header),
                api_key: None,
                client_certificate: None,
            };
            futures_util::FutureExt::now_or_never(
                authenticator.authenticate("192.0.2.1".parse().unwrap(), credentials),
            )
            .unwrap()
            .unwrap()
            .token_cache
        };
        assert_eq!(authenticate(), Some(TokenCache::Miss));
        assert_eq!(authenticate(), Some(TokenCache::Hit));
        authenticator.replace_policy(Policy::parse(policy).unwrap());
        assert_eq!(authenticate(), Some(TokenCache::Miss));
    }
}
