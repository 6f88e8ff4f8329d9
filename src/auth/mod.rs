//! Who is calling and what they may do: the network allowlist, API keys, JWT bearer
//! tokens, and the authorization policy. Everything downstream sees one [`Principal`].

pub mod api_key;
pub mod jwt;
pub mod network;
pub mod policy;
pub mod reload;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{AuthSettings, ConfigError};
use jwt::{JwtValidator, TokenCache};
use network::Network;
pub use policy::{Operation, Policy};

pub use crate::domain::{AuthMethod, PrincipalId};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Method-qualified: `api_key:<principal>`, `jwt:<sub>`, `cert:<CN>`.
    pub id: PrincipalId,
    pub scopes: Vec<String>,
}

impl Principal {
    pub fn new(method: AuthMethod, name: &str, scopes: Vec<String>) -> Principal {
        Principal {
            id: PrincipalId::new(method, name),
            scopes,
        }
    }
}

/// An authenticated caller, and how the credential was checked.
#[derive(Debug)]
pub struct Authenticated {
    pub principal: Principal,
    /// For a bearer token: whether its verification came from the verified-token cache.
    pub token_cache: Option<TokenCache>,
}

/// Why a request was refused before reaching a handler. The messages say what is wrong and
/// never echo the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Authentication required: send a bearer token or an API key.")]
    MissingCredentials,
    #[error("The Authorization header is not a bearer token.")]
    MalformedAuthorization,
    #[error("Invalid API key.")]
    InvalidApiKey,
    #[error("The API key is disabled.")]
    DisabledApiKey,
    #[error("The token is malformed.")]
    MalformedToken,
    #[error("The token's signing algorithm is not accepted.")]
    AlgorithmNotAllowed,
    #[error("The token's signature is invalid.")]
    BadSignature,
    #[error("The token has expired.")]
    TokenExpired,
    #[error("The token is not valid yet.")]
    TokenNotYetValid,
    #[error("The token's issuer is not accepted.")]
    WrongIssuer,
    #[error("The token's audience is not accepted.")]
    WrongAudience,
    #[error("The token lacks the required claim '{0}'.")]
    MissingClaim(String),
    #[error("The token is signed by an unknown key.")]
    UnknownKey,
    #[error("The signing keys of the token issuer are unavailable; retry later.")]
    KeysUnavailable,
    /// 403, not 401: the credentials are not the problem, the network is.
    #[error("Requests from this address are not allowed.")]
    AddressNotAllowed,
}

impl AuthError {
    /// A bounded label for `kafka_rest_auth_failures_total` / `_policy_denials_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingCredentials => "missing",
            AuthError::MalformedAuthorization => "malformed_header",
            AuthError::InvalidApiKey => "invalid_api_key",
            AuthError::DisabledApiKey => "disabled_api_key",
            AuthError::MalformedToken => "malformed_token",
            AuthError::AlgorithmNotAllowed => "algorithm",
            AuthError::BadSignature => "signature",
            AuthError::TokenExpired => "expired",
            AuthError::TokenNotYetValid => "not_yet_valid",
            AuthError::WrongIssuer => "issuer",
            AuthError::WrongAudience => "audience",
            AuthError::MissingClaim(_) => "claims",
            AuthError::UnknownKey => "unknown_key",
            AuthError::KeysUnavailable => "keys_unavailable",
            AuthError::AddressNotAllowed => "address",
        }
    }
}

/// The authentication chain, built once from the settings.
pub struct Authenticator {
    enabled: bool,
    network: Network,
    api_key_header: String,
    anonymous_paths: Vec<String>,
    /// Swapped whole when the policy file is reloaded; requests read it without a lock.
    policy: ArcSwap<Policy>,
    /// The policy file, when the policy comes from one (an inline policy is not reloaded).
    policy_file: Option<PathBuf>,
    jwt: Option<Arc<JwtValidator>>,
    client_certificates: bool,
}

/// The credentials a request carries.
pub struct Credentials<'a> {
    pub authorization: Option<&'a str>,
    pub api_key: Option<&'a str>,
    /// The common name of a verified client certificate.
    pub client_certificate: Option<&'a str>,
}

impl Authenticator {
    /// # Errors
    /// [`ConfigError`] when the policy file cannot be loaded or the JWT settings are unsafe.
    pub fn new(settings: &AuthSettings) -> Result<Authenticator, ConfigError> {
        let policy = match (&settings.policy_file, &settings.policy) {
            _ if !settings.enabled => Policy::default(),
            (Some(path), None) => Policy::load(path)?,
            (None, Some(text)) => Policy::parse(&text.0)?,
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "auth.policy",
                    "set together with auth.policy_file: choose one",
                ))
            }
            (None, None) => Policy::default(),
        };
        Ok(Authenticator {
            enabled: settings.enabled,
            network: Network::new(
                settings.trusted_proxies.clone(),
                settings.allow_cidrs.clone(),
            ),
            api_key_header: settings.api_key_header.clone(),
            anonymous_paths: settings.anonymous_paths.clone(),
            policy: ArcSwap::from_pointee(policy),
            policy_file: settings
                .enabled
                .then(|| settings.policy_file.clone())
                .flatten(),
            jwt: if settings.enabled {
                JwtValidator::new(&settings.jwt)?.map(Arc::new)
            } else {
                None
            },
            client_certificates: settings.client_certificates,
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// The policy file, when authentication is on and the policy comes from a file.
    pub fn policy_file(&self) -> Option<&Path> {
        self.policy_file.as_deref()
    }

    /// Replaces the policy; requests already past a policy check keep the answer they got.
    /// Cached token verifications are forgotten: a reload is the operator's way to make
    /// every credential be checked afresh.
    pub fn replace_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
        if let Some(jwt) = &self.jwt {
            jwt.forget_verified();
        }
    }

    pub fn api_key_header(&self) -> &str {
        &self.api_key_header
    }

    /// The JWT validator, whose key refresh must run in the background.
    pub fn jwt(&self) -> Option<Arc<JwtValidator>> {
        self.jwt.clone()
    }

    /// The client address, honouring `X-Forwarded-For` from trusted proxies only.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: &[&[u8]]) -> IpAddr {
        self.network.client_ip(peer, forwarded_for)
    }

    /// Whether `peer` is a trusted proxy, whose `X-Forwarded-*` headers are believed.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.network.is_trusted(peer)
    }

    /// Paths served without credentials: the probes, and the configured ones.
    pub fn is_open(&self, path: &str) -> bool {
        !self.enabled
            || matches!(path, "/healthz" | "/readyz")
            || self.anonymous_paths.iter().any(|p| p == path)
    }

    /// Whether `client` passes the network allowlist (`auth.allow_cidrs`), whoever it is.
    pub fn address_allowed(&self, client: IpAddr) -> bool {
        self.network.allows(client)
    }

    /// Authenticates a request from `client`.
    ///
    /// # Errors
    /// [`AuthError`]: refused address, missing or invalid credentials.
    pub async fn authenticate(
        &self,
        client: IpAddr,
        credentials: Credentials<'_>,
    ) -> Result<Authenticated, AuthError> {
        if !self.network.allows(client) {
            return Err(AuthError::AddressNotAllowed);
        }
        // One policy for the whole request, even if a reload swaps it meanwhile.
        let policy = self.policy.load_full();
        let mut token_cache = None;
        let principal = match (credentials.authorization, credentials.api_key) {
            (Some(authorization), _) => {
                let token = bearer_token(authorization)?;
                let Some(jwt) = &self.jwt else {
                    return Err(AuthError::MalformedToken);
                };
                let (principal, cache) = jwt.validate(token).await?;
                token_cache = Some(cache);
                principal
            }
            (None, Some(key)) => {
                let key = policy
                    .api_keys()
                    .find(key)
                    .ok_or(AuthError::InvalidApiKey)?;
                if !key.enabled {
                    return Err(AuthError::DisabledApiKey);
                }
                Principal {
                    id: key.principal.clone(),
                    scopes: key.scopes.clone(),
                }
            }
            (None, None) => match credentials.client_certificate {
                Some(subject) if self.client_certificates => {
                    Principal::new(AuthMethod::ClientCertificate, subject, Vec::new())
                }
                _ => return Err(AuthError::MissingCredentials),
            },
        };
        if !policy.address_allowed(&principal, client) {
            return Err(AuthError::AddressNotAllowed);
        }
        Ok(Authenticated {
            principal,
            token_cache,
        })
    }

    /// Whether `principal` may perform `operation` on `topic`; always true with auth off.
    pub fn authorize(
        &self,
        principal: Option<&Principal>,
        operation: Operation,
        topic: &str,
    ) -> bool {
        if !self.enabled {
            return true;
        }
        principal.is_some_and(|p| self.policy.load().allows(p, operation, topic))
    }

    /// Whether the policy makes `principal` send an `Idempotency-Key` with each produce
    /// request (never without authentication).
    pub fn requires_idempotency_key(&self, principal: Option<&Principal>) -> bool {
        self.enabled && principal.is_some_and(|p| self.policy.load().requires_idempotency_key(p))
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(header: &str) -> Result<&str, AuthError> {
    let (scheme, token) = header
        .split_once(' ')
        .ok_or(AuthError::MalformedAuthorization)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthError::MalformedAuthorization);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
        assert_eq!(bearer_token("bearer abc"), Ok("abc"));
        assert_eq!(
            bearer_token("Basic dXNlcjpwYXNz"),
            Err(AuthError::MalformedAuthorization)
        );
        assert_eq!(
            bearer_token("Bearer"),
            Err(AuthError::MalformedAuthorization)
        );
        assert_eq!(
            bearer_token("Bearer "),
            Err(AuthError::MalformedAuthorization)
        );
    }
}
