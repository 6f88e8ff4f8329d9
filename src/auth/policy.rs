//! The authorization policy: one file that says which principals (or token scopes) may do
//! what on which topics, holds the API keys (as hashes), and per-principal address
//! allowlists. Anything not granted is denied.
//!
//! ```toml
//! [[api_keys]]
//! principal = "partner-a"
//! sha256 = "<hex of sha256(key)>"
//! scopes = ["orders:write"]
//! enabled = true
//!
//! [[grants]]
//! principals = ["partner-a"]      # principal ids: API key principals or JWT `sub`s
//! scopes = ["orders:write"]       # or any principal holding one of these scopes
//! topics = ["orders", "orders.eu.*"]   # exact names, or prefixes ending in `*`
//! operations = ["produce", "describe"]
//!
//! [principals.partner-a]
//! allow_cidrs = ["203.0.113.0/24", "2001:db8::/32"]
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
use crate::domain::TopicPattern;

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
}

#[derive(Debug, Clone)]
struct Grant {
    principals: Vec<String>,
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
    allow_cidrs: HashMap<String, Vec<IpNet>>,
    api_keys: ApiKeys,
    principal_ids: Vec<String>,
}

impl Policy {
    /// Loads and checks the policy file.
    ///
    /// # Errors
    /// [`ConfigError`] on `auth.policy_file`, naming the file and the offending key.
    pub fn load(path: &Path) -> Result<Policy, ConfigError> {
        let fail = |why: String| ConfigError::invalid("auth.policy_file", why);
        if !path.is_file() {
            return Err(fail(format!("{} is not a readable file", path.display())));
        }
        let file: PolicyFile = Figment::from(Toml::file(path))
            .extract()
            .map_err(|e| fail(format!("invalid policy file {}: {e}", path.display())))?;
        Policy::from_file(file)
            .map_err(|e| fail(format!("invalid policy file {}: {e}", path.display())))
    }

    fn from_file(file: PolicyFile) -> Result<Policy, String> {
        let mut principal_ids: Vec<String> = Vec::new();
        let mut keys = Vec::new();
        for (i, key) in file.api_keys.into_iter().enumerate() {
            principal_ids.push(key.principal.clone());
            keys.push(
                ApiKey::new(key.principal, &key.sha256, key.scopes, key.enabled)
                    .map_err(|e| format!("api_keys[{i}]: {e}"))?,
            );
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
            principal_ids.extend(grant.principals.iter().cloned());
            grants.push(Grant {
                principals: grant.principals,
                scopes: grant.scopes,
                topics: grant
                    .topics
                    .iter()
                    .map(|t| TopicPattern::parse(t))
                    .collect(),
                operations: grant.operations,
            });
        }
        let allow_cidrs: HashMap<String, Vec<IpNet>> = file
            .principals
            .into_iter()
            .map(|(id, p)| (id, p.allow_cidrs))
            .collect();
        principal_ids.extend(allow_cidrs.keys().cloned());
        principal_ids.sort();
        principal_ids.dedup();
        Ok(Policy {
            grants,
            allow_cidrs,
            api_keys: ApiKeys::new(keys),
            principal_ids,
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

    pub fn api_keys(&self) -> &ApiKeys {
        &self.api_keys
    }

    /// Every principal the file names: the bounded set of principal metric labels.
    pub fn principal_ids(&self) -> &[String] {
        &self.principal_ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMethod;

    fn policy(toml: &str) -> Result<Policy, String> {
        let file: PolicyFile = Figment::from(Toml::string(toml))
            .extract()
            .map_err(|e| e.to_string())?;
        Policy::from_file(file)
    }

    fn principal(id: &str, scopes: &[&str]) -> Principal {
        Principal {
            id: id.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            method: AuthMethod::Jwt,
        }
    }

    const POLICY: &str = r#"
        [[grants]]
        principals = ["partner-a"]
        topics = ["orders", "orders.eu.*"]
        operations = ["produce", "describe"]

        [[grants]]
        scopes = ["audit:read"]
        topics = ["audit"]
        operations = ["describe"]

        [principals.partner-a]
        allow_cidrs = ["203.0.113.0/24"]
    "#;

    #[test]
    fn grants_by_principal_and_scope_with_exact_and_prefix_topics() {
        let p = policy(POLICY).unwrap();
        let a = principal("partner-a", &[]);
        assert!(p.allows(&a, Operation::Produce, "orders"));
        assert!(p.allows(&a, Operation::Produce, "orders.eu.fr"));
        assert!(!p.allows(&a, Operation::Produce, "orders2"));
        assert!(!p.allows(&a, Operation::Produce, "audit"));
        let auditor = principal("someone", &["audit:read"]);
        assert!(p.allows(&auditor, Operation::Describe, "audit"));
        assert!(!p.allows(&auditor, Operation::Produce, "audit"));
        assert!(!p.allows(&principal("nobody", &[]), Operation::Describe, "orders"));
    }

    #[test]
    fn per_principal_allowlists() {
        let p = policy(POLICY).unwrap();
        assert!(p.address_allowed(&principal("partner-a", &[]), "203.0.113.5".parse().unwrap()));
        assert!(!p.address_allowed(
            &principal("partner-a", &[]),
            "198.51.100.5".parse().unwrap()
        ));
        assert!(p.address_allowed(&principal("other", &[]), "198.51.100.5".parse().unwrap()));
        assert_eq!(p.principal_ids(), ["partner-a"]);
    }

    #[test]
    fn bad_files_are_refused_with_the_place() {
        let err = policy("[[grants]]\ntopics = [\"a\"]\noperations = [\"produce\"]\n").unwrap_err();
        assert!(err.contains("grants[0]"), "{err}");
        let err = policy(
            "[[grants]]\nprincipals = [\"a\"]\ntopics = [\"a\"]\noperations = [\"write\"]\n",
        )
        .unwrap_err();
        assert!(err.contains("write"), "{err}");
        let err = policy("[[api_keys]]\nprincipal = \"k\"\nsha256 = \"00\"\n").unwrap_err();
        assert!(err.contains("\"k\""), "{err}");
        let err = policy("[principals.a]\nallow_cidrs = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(err.contains("allow_cidrs"), "{err}");
    }
}
