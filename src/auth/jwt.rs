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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{AuthError, AuthMethod, Principal};
use crate::config::{ConfigError, JwtAlgorithm, JwtSettings};

/// Where the signing keys come from.
#[derive(Debug, Clone)]
enum KeySource {
    Jwks(String),
    /// OIDC discovery: `<issuer>/.well-known/openid-configuration` names the JWKS.
    Discovery(String),
}

#[derive(Default)]
struct KeySet {
    /// Keys by `kid`; keys without one are under `None`.
    keys: HashMap<Option<String>, Vec<DecodingKey>>,
}

impl KeySet {
    /// The usable keys of a JWKS; the others are skipped with a warning.
    fn of(set: &JwkSet) -> KeySet {
        let mut keys = KeySet::default();
        for jwk in &set.keys {
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => keys
                    .keys
                    .entry(jwk.common.key_id.clone())
                    .or_default()
                    .push(key),
                Err(e) => {
                    tracing::warn!(kid = ?jwk.common.key_id, error = %e, "skipping a JWKS key")
                }
            }
        }
        keys
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

    /// Keys that may have signed a token with this `kid`, refetching once (rate-limited)
    /// when the `kid` is unknown.
    async fn keys_for(&self, kid: Option<&str>) -> Result<Vec<DecodingKey>, AuthError> {
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

    fn lookup(&self, kid: Option<&str>) -> Option<Vec<DecodingKey>> {
        let set = self.current()?;
        match kid {
            Some(kid) => set.keys.get(&Some(kid.to_owned())).cloned(),
            // No kid in the token: any key may have signed it.
            None => {
                let all: Vec<DecodingKey> = set.keys.values().flatten().cloned().collect();
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
        Ok(Some(JwtValidator {
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

    /// The principal a valid token names.
    ///
    /// # Errors
    /// What is wrong with the token; never the token itself.
    pub async fn validate(&self, token: &str) -> Result<Principal, AuthError> {
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
        for key in keys.iter().filter(|k| k.family() == alg.family()) {
            match jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, key, &validation) {
                Ok(data) => return self.principal(&data.claims),
                Err(e) => {
                    last_error = map_error(&e);
                    if last_error != AuthError::BadSignature {
                        // Signed by this key but invalid: no other key will do better.
                        return Err(last_error);
                    }
                }
            }
        }
        if keys.iter().all(|k| k.family() != alg.family()) {
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
