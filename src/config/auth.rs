//! `[auth]`: partner authentication (network allowlist, API keys, JWT) and the policy file.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// Partner authentication (network allowlist, API keys, JWT) and authorization.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Authenticate and authorize every request except the health probes and
    /// `anonymous_paths`. Off, everything is open (dev mode default).
    pub enabled: bool,
    /// The policy file: API keys (as hashes), grants of topics to principals and scopes,
    /// per-principal address allowlists. This or `policy` is required when enabled.
    pub policy_file: Option<PathBuf>,
    /// How often the policy file is checked for a change (reloaded when its content
    /// changed); 0 reloads on SIGHUP only. An invalid new file keeps the policy in force.
    pub policy_reload_interval_ms: u64,
    /// The policy inline, as TOML text (the environment variable `KRP_AUTH__POLICY`, e.g.
    /// a Secrets Manager secret injected by ECS); instead of `policy_file`.
    pub policy: Option<PolicyText>,
    /// Header carrying an API key.
    pub api_key_header: String,
    /// CIDRs allowed to call at all (IPv4 and IPv6); empty allows any address.
    pub allow_cidrs: Vec<ipnet::IpNet>,
    /// CIDRs of proxies whose `X-Forwarded-For` is believed (API Gateway's VPC link, the
    /// NLB); from anyone else the header is ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Paths open without credentials besides `/healthz` and `/readyz`.
    pub anonymous_paths: Vec<String>,
    /// A verified client certificate (mutual TLS) authenticates its subject's common name
    /// as the principal, when the request carries no token or API key.
    pub client_certificates: bool,
    /// Serve beyond loopback with authentication off, on purpose (e.g. behind an API
    /// Gateway authorizer that is the only way in). Without it, that configuration refuses
    /// to start: anyone who reached the port could produce to every topic.
    pub allow_unauthenticated: bool,
    /// JWT bearer tokens; off unless `issuer` is set.
    pub jwt: JwtSettings,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            enabled: false,
            policy_file: None,
            policy_reload_interval_ms: 5_000,
            policy: None,
            api_key_header: "X-API-Key".to_owned(),
            allow_cidrs: Vec::new(),
            trusted_proxies: Vec::new(),
            anonymous_paths: Vec::new(),
            client_certificates: false,
            allow_unauthenticated: false,
            jwt: JwtSettings::default(),
        }
    }
}

/// JWT bearer-token validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtSettings {
    /// Expected `iss`; setting it turns JWT authentication on.
    pub issuer: Option<String>,
    /// Accepted `aud` values; a token must name at least one. Empty refuses to start unless
    /// `allow_any_audience` is set.
    pub audiences: Vec<String>,
    /// Accept tokens for any audience (no `aud` check) when `audiences` is empty: any token
    /// the issuer signs for any application would be accepted. Off by default.
    pub allow_any_audience: bool,
    /// Where the signing keys are; unset means OIDC discovery from the issuer
    /// (`<issuer>/.well-known/openid-configuration`).
    pub jwks_url: Option<String>,
    /// Accepted signature algorithms; the token's `alg` must be one of them. `none` never is.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Claim holding the principal id.
    pub principal_claim: String,
    /// Claims holding scopes (a space-separated string or an array), merged.
    pub scope_claims: Vec<String>,
    /// Claims a token must carry, besides `exp`, `iss` (and `aud` with `audiences`), which
    /// are always required.
    pub required_claims: Vec<String>,
    /// Background refresh period of the signing keys.
    pub refresh_interval_ms: u64,
    /// Shortest interval between refreshes triggered by an unknown `kid`.
    pub unknown_kid_refresh_interval_ms: u64,
    /// Bound on one whole key fetch: discovery and JWKS, connect, headers and body.
    pub fetch_timeout_ms: u64,
    /// Development only: accept an `http://` issuer and JWKS URL. Without it both must be
    /// `https://`, or anyone on the path could serve their own signing keys.
    pub allow_http: bool,
    /// Verified tokens remembered, so that a token's signature is checked once per
    /// `cache_ttl_ms` rather than on every request; 0 turns the cache off.
    pub cache_max_entries: u64,
    /// How long a verification is remembered at most (never past the token's `exp`).
    pub cache_ttl_ms: u64,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            issuer: None,
            audiences: Vec::new(),
            allow_any_audience: false,
            jwks_url: None,
            algorithms: vec![JwtAlgorithm::Rs256, JwtAlgorithm::Es256],
            leeway_secs: 30,
            principal_claim: "sub".to_owned(),
            scope_claims: vec!["scope".to_owned(), "scp".to_owned()],
            required_claims: vec!["exp".to_owned()],
            refresh_interval_ms: 300_000,
            unknown_kid_refresh_interval_ms: 10_000,
            fetch_timeout_ms: 2_000,
            allow_http: false,
            cache_max_entries: 10_000,
            cache_ttl_ms: 300_000,
        }
    }
}

/// A JWT signature algorithm, by its JOSE name. `none` is not one: unsigned tokens are
/// never accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum JwtAlgorithm {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl JwtAlgorithm {
    const ALL: [JwtAlgorithm; 12] = [
        JwtAlgorithm::Hs256,
        JwtAlgorithm::Hs384,
        JwtAlgorithm::Hs512,
        JwtAlgorithm::Rs256,
        JwtAlgorithm::Rs384,
        JwtAlgorithm::Rs512,
        JwtAlgorithm::Ps256,
        JwtAlgorithm::Ps384,
        JwtAlgorithm::Ps512,
        JwtAlgorithm::Es256,
        JwtAlgorithm::Es384,
        JwtAlgorithm::EdDsa,
    ];

    /// The JOSE name (`RS256`...), as in a token's `alg`.
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::Hs384 => "HS384",
            JwtAlgorithm::Hs512 => "HS512",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Rs384 => "RS384",
            JwtAlgorithm::Rs512 => "RS512",
            JwtAlgorithm::Ps256 => "PS256",
            JwtAlgorithm::Ps384 => "PS384",
            JwtAlgorithm::Ps512 => "PS512",
            JwtAlgorithm::Es256 => "ES256",
            JwtAlgorithm::Es384 => "ES384",
            JwtAlgorithm::EdDsa => "EdDSA",
        }
    }
}

impl TryFrom<String> for JwtAlgorithm {
    type Error = String;

    fn try_from(name: String) -> Result<JwtAlgorithm, String> {
        if name.eq_ignore_ascii_case("none") {
            return Err("\"none\" would accept unsigned tokens".to_owned());
        }
        JwtAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .ok_or_else(|| format!("unknown algorithm {name:?}"))
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy's TOML text. It holds API key hashes: its `Debug` print shows only its size.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct PolicyText(pub String);

impl fmt::Debug for PolicyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyText({} bytes)", self.0.len())
    }
}

impl AuthSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match (&self.policy_file, &self.policy) {
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                "auth.policy",
                "set together with auth.policy_file: choose one (KRP_AUTH__POLICY sets \
                 auth.policy)",
            )),
            (None, None) if self.enabled => Err(ConfigError::invalid(
                "auth.policy_file",
                "auth.policy_file or auth.policy (KRP_AUTH__POLICY) is required when \
                 auth.enabled is true (without grants, everything is denied)",
            )),
            _ => Ok(()),
        }
    }
}
