//! The authorization policy: one file that says which principals (or token scopes) may do
//! what on which topics, holds the API keys (as hashes), and per-principal address
//! allowlists. Anything not granted is denied.
//!
//! Principals are named with their method ([`PrincipalId`]): `api_key:<name>`, `jwt:<sub>`,
//! `cert:<CN>`; an unqualified name is refused when the file loads.
//!
//! ```toml
//! [[api_keys]]
//! principal = "partner-a"         # the key's principal is api_key:partner-a
//! sha256 = "<hex of sha256(key)>"
//! scopes = ["orders:write"]
//! enabled = true
//!
//! [[grants]]
//! principals = ["api_key:partner-a", "jwt:client-42"]
//! scopes = ["orders:write"]       # or any principal holding one of these scopes
//! topics = ["orders", "orders.eu.*"]   # exact names, or prefixes ending in `*`
//! operations = ["produce", "describe"]
//!
//! [principals."api_key:partner-a"]
//! allow_cidrs = ["203.0.113.0/24", "2001:db8::/32"]
//! require_idempotency_key = true  # produce requests without Idempotency-Key: 400
//!
//! [scopes."orders:write"]
//! require_idempotency_key = true  # the same, for every principal holding the scope
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use figment::providers::{Format, Toml};
use figment::Figment;
use ipnet::IpNet;
use serde::Deserialize;

use super::api_key::{ApiKey, ApiKeys};
use super::network::cidrs_allow;
use super::Principal;
use crate::config::ConfigError;
use crate::domain::{AuthMethod, PrincipalId, TopicPattern};

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// `POST` records to the topic.
    Produce,
    /// See the topic in `GET /topics` and read its metadata.
    Describe,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantFile {
    #[serde(default)]
    principals: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    topics: Vec<String>,
    operations: Vec<Operation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyFile {
    principal: String,
    sha256: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalFile {
    #[serde(default)]
    allow_cidrs: Vec<IpNet>,
    #[serde(default)]
    require_idempotency_key: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeFile {
    #[serde(default)]
    require_idempotency_key: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    api_keys: Vec<ApiKeyFile>,
    #[serde(default)]
    grants: Vec<GrantFile>,
    #[serde(default)]
    principals: HashMap<String, PrincipalFile>,
    #[serde(default)]
    scopes: HashMap<String, ScopeFile>,
}

#[derive(Debug, Clone)]
struct Grant {
    principals: Vec<PrincipalId>,
    scopes: Vec<String>,
    topics: Vec<TopicPattern>,
    operations: Vec<Operation>,
}

impl Grant {
    fn applies_to(&self, principal: &Principal) -> bool {
        self.principals.contains(&principal.id)
            || self
                .scopes
                .iter()
                .any(|s| principal.scopes.iter().any(|held| held == s))
    }
}

/// The loaded policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    grants: Vec<Grant>,
    allow_cidrs: HashMap<PrincipalId, Vec<IpNet>>,
    api_keys: ApiKeys,
    principal_ids: Vec<String>,
    /// Principals and scopes whose produce requests must carry an `Idempotency-Key`.
    keys_required_by: Vec<PrincipalId>,
    keys_required_with: Vec<String>,
}

impl Policy {
    /// Loads and checks the policy file.
    ///
    /// # Errors
    /// [`ConfigError`] on `auth.policy_file`, naming the file and the offending key.
    pub fn load(path: &Path) -> Result<Policy, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::invalid(
                "auth.policy_file",
                format!("{} is not a readable file: {e}", path.display()),
            )
        })?;
        Policy::from_text(
            &text,
            "auth.policy_file",
            &format!("policy file {}", path.display()),
        )
    }

    /// Parses and checks an inline policy (`auth.policy`).
    ///
    /// # Errors
    /// [`ConfigError`] on `auth.policy`, naming the offending entry.
    pub fn parse(text: &str) -> Result<Policy, ConfigError> {
        Policy::from_text(text, "auth.policy", "inline policy")
    }

    /// Parses and checks policy TOML; errors are on `key` and name `origin`.
    ///
    /// # Errors
    /// [`ConfigError`] on `key`.
    pub fn from_text(text: &str, key: &str, origin: &str) -> Result<Policy, ConfigError> {
        let fail = |why: String| ConfigError::invalid(key, format!("invalid {origin}: {why}"));
        let file: PolicyFile = Figment::from(Toml::string(text))
            .extract()
            .map_err(|e| fail(e.to_string()))?;
        Policy::from_file(file).map_err(fail)
    }

    fn from_file(file: PolicyFile) -> Result<Policy, String> {
        let mut principal_ids: Vec<PrincipalId> = Vec::new();
        let mut keys = Vec::new();
        for (i, key) in file.api_keys.into_iter().enumerate() {
            let name = api_key_name(&key.principal)
                .map_err(|e| format!("api_keys[{i}].principal: {e}"))?;
            let key = ApiKey::new(name, &key.sha256, key.scopes, key.enabled)
                .map_err(|e| format!("api_keys[{i}]: {e}"))?;
            principal_ids.push(key.principal.clone());
            keys.push(key);
        }
        let mut grants = Vec::new();
        for (i, grant) in file.grants.into_iter().enumerate() {
            if grant.principals.is_empty() && grant.scopes.is_empty() {
                return Err(format!("grants[{i}]: names neither principals nor scopes"));
            }
            if grant.topics.is_empty() || grant.operations.is_empty() {
                return Err(format!(
                    "grants[{i}]: topics and operations must not be empty"
                ));
            }
            let principals = grant
                .principals
                .iter()
                .map(|p| PrincipalId::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("grants[{i}].principals: {e}"))?;
            principal_ids.extend(principals.iter().cloned());
            grants.push(Grant {
                principals,
                scopes: grant.scopes,
                topics: grant
                    .topics
                    .iter()
                    .map(|t| TopicPattern::parse(t))
                    .collect(),
                operations: grant.operations,
            });
        }
        let mut allow_cidrs = HashMap::new();
        let mut keys_required_by = Vec::new();
        for (id, p) in file.principals {
            let id = PrincipalId::parse(&id).map_err(|e| format!("principals.{id:?}: {e}"))?;
            principal_ids.push(id.clone());
            if p.require_idempotency_key {
                keys_required_by.push(id.clone());
            }
            allow_cidrs.insert(id, p.allow_cidrs);
        }
        let keys_required_with = file
            .scopes
            .into_iter()
            .filter(|(_, s)| s.require_idempotency_key)
            .map(|(scope, _)| scope)
            .collect();
        let mut principal_ids: Vec<String> = principal_ids
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect();
        principal_ids.sort();
        principal_ids.dedup();
        Ok(Policy {
            grants,
            allow_cidrs,
            api_keys: ApiKeys::new(keys),
            principal_ids,
            keys_required_by,
            keys_required_with,
        })
    }

    /// Whether `principal` may perform `operation` on `topic`.
    pub fn allows(&self, principal: &Principal, operation: Operation, topic: &str) -> bool {
        self.grants.iter().any(|g| {
            g.applies_to(principal)
                && g.operations.contains(&operation)
                && g.topics.iter().any(|t| t.matches(topic))
        })
    }

    /// Whether the principal's own allowlist (if any) admits `ip`.
    pub fn address_allowed(&self, principal: &Principal, ip: IpAddr) -> bool {
        self.allow_cidrs
            .get(&principal.id)
            .is_none_or(|cidrs| cidrs_allow(cidrs, ip))
    }

    /// Whether `principal`'s produce requests must carry an `Idempotency-Key`: the
    /// principal, or one of its scopes, says so.
    pub fn requires_idempotency_key(&self, principal: &Principal) -> bool {
        self.keys_required_by.contains(&principal.id)
            || principal
                .scopes
                .iter()
                .any(|held| self.keys_required_with.contains(held))
    }

    pub fn api_keys(&self) -> &ApiKeys {
        &self.api_keys
    }

    /// Every principal the file names, qualified: the bounded set of principal metric
    /// labels.
    pub fn principal_ids(&self) -> &[String] {
        &self.principal_ids
    }
}

/// The name of an API key's principal: `partner-a`, or `api_key:partner-a` written out.
fn api_key_name(principal: &str) -> Result<String, String> {
    match PrincipalId::parse(principal) {
        Ok(id) if id.method() == AuthMethod::ApiKey => Ok(id.name().to_owned()),
        Ok(id) => Err(format!(
            "{principal:?} names a {} principal; an API key's principal is \"{}\" \
             (api_key:{} in grants)",
            id.method().as_str(),
            id.name(),
            id.name()
        )),
        Err(_) if principal.is_empty() => Err("must not be empty".to_owned()),
        Err(_) => Ok(principal.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(toml: &str) -> Result<Policy, String> {
        let file: PolicyFile = Figment::from(Toml::string(toml))
            .extract()
            .map_err(|e| e.to_string())?;
        Policy::from_file(file)
    }

    fn principal(id: &str, scopes: &[&str]) -> Principal {
        Principal {
            id: PrincipalId::parse(id).unwrap(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    const POLICY: &str = r#"
        [[grants]]
        principals = ["api_key:partner-a"]
        topics = ["orders", "orders.eu.*"]
        operations = ["produce", "describe"]

        [[grants]]
        scopes = ["audit:read"]
        topics = ["audit"]
        operations = ["describe"]

        [principals."api_key:partner-a"]
        allow_cidrs = ["203.0.113.0/24"]
    "#;

    #[test]
    fn grants_by_principal_and_scope_with_exact_and_prefix_topics() {
        let p = policy(POLICY).unwrap();
        let a = principal("api_key:partner-a", &[]);
        assert!(p.allows(&a, Operation::Produce, "orders"));
        assert!(p.allows(&a, Operation::Produce, "orders.eu.fr"));
        assert!(!p.allows(&a, Operation::Produce, "orders2"));
        assert!(!p.allows(&a, Operation::Produce, "audit"));
        let auditor = principal("jwt:someone", &["audit:read"]);
        assert!(p.allows(&auditor, Operation::Describe, "audit"));
        assert!(!p.allows(&auditor, Operation::Produce, "audit"));
        assert!(!p.allows(&principal("jwt:nobody", &[]), Operation::Describe, "orders"));
    }

    #[test]
    fn idempotency_keys_are_required_by_principal_or_by_scope() {
        let p = policy(
            r#"
            [principals."api_key:strict"]
            require_idempotency_key = true
            [principals."api_key:lax"]
            allow_cidrs = ["203.0.113.0/24"]
            [scopes."orders:write"]
            require_idempotency_key = true
            [scopes."audit:read"]
            require_idempotency_key = false
            "#,
        )
        .unwrap();
        assert!(p.requires_idempotency_key(&principal("api_key:strict", &[])));
        assert!(!p.requires_idempotency_key(&principal("api_key:lax", &[])));
        assert!(!p.requires_idempotency_key(&principal("jwt:strict", &[])));
        assert!(p.requires_idempotency_key(&principal("jwt:x", &["a", "orders:write"])));
        assert!(!p.requires_idempotency_key(&principal("jwt:x", &["audit:read"])));
        assert!(!policy(POLICY)
            .unwrap()
            .requires_idempotency_key(&principal("api_key:partner-a", &[])));
        assert!(policy("[scopes.\"s\"]\nrequire_key = true").is_err());
    }

    #[test]
    fn an_entry_for_one_method_never_matches_another() {
        let p = policy(POLICY).unwrap();
        for other in ["jwt:partner-a", "cert:partner-a"] {
            let impostor = principal(other, &[]);
            assert!(
                !p.allows(&impostor, Operation::Produce, "orders"),
                "{other}"
            );
            assert!(
                p.address_allowed(&impostor, "198.51.100.5".parse().unwrap()),
                "{other}: api_key:partner-a's allowlist is not {other}'s"
            );
        }
    }

    #[test]
    fn unqualified_principals_are_refused_showing_the_forms() {
        let grant = "[[grants]]\nprincipals = [\"partner-a\"]\ntopics = [\"a\"]\n\
                     operations = [\"produce\"]\n";
        let err = policy(grant).unwrap_err();
        assert!(err.contains("grants[0].principals"), "{err}");
        for form in ["api_key:partner-a", "jwt:partner-a", "cert:partner-a"] {
            assert!(err.contains(&format!("\"{form}\"")), "{err}");
        }
        let err = policy("[principals.partner-a]\nallow_cidrs = []\n").unwrap_err();
        assert!(err.contains("principals.\"partner-a\""), "{err}");
        assert!(err.contains("\"api_key:partner-a\""), "{err}");
        // An API key's own principal is an API-key principal: bare or written out.
        let key = |p: &str| {
            format!(
                "[[api_keys]]\nprincipal = \"{p}\"\nsha256 = \"{}\"\n",
                "ab".repeat(32)
            )
        };
        assert_eq!(
            policy(&key("partner-a")).unwrap().principal_ids(),
            ["api_key:partner-a"]
        );
        assert_eq!(
            policy(&key("api_key:partner-a")).unwrap().principal_ids(),
            ["api_key:partner-a"]
        );
        let err = policy(&key("jwt:partner-a")).unwrap_err();
        assert!(err.contains("api_keys[0].principal"), "{err}");
    }

    #[test]
    fn per_principal_allowlists() {
        let p = policy(POLICY).unwrap();
        let a = principal("api_key:partner-a", &[]);
        assert!(p.address_allowed(&a, "203.0.113.5".parse().unwrap()));
        assert!(!p.address_allowed(&a, "198.51.100.5".parse().unwrap()));
        let other = principal("api_key:other", &[]);
        assert!(p.address_allowed(&other, "198.51.100.5".parse().unwrap()));
        assert_eq!(p.principal_ids(), ["api_key:partner-a"]);
    }

    #[test]
    fn bad_files_are_refused_with_the_place() {
        let err = policy("[[grants]]\ntopics = [\"a\"]\noperations = [\"produce\"]\n").unwrap_err();
        assert!(err.contains("grants[0]"), "{err}");
        let err = policy(
            "[[grants]]\nprincipals = [\"jwt:a\"]\ntopics = [\"a\"]\noperations = [\"write\"]\n",
        )
        .unwrap_err();
        assert!(err.contains("write"), "{err}");
        let err = policy("[[api_keys]]\nprincipal = \"k\"\nsha256 = \"00\"\n").unwrap_err();
        assert!(err.contains("\"k\""), "{err}");
        let err = policy("[principals.\"jwt:a\"]\nallow_cidrs = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(err.contains("allow_cidrs"), "{err}");
    }
}
