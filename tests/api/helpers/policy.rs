//! Authorization policy files, written the way an operator writes them: API keys stored as
//! their SHA-256, grants to principals or to token scopes, per-principal allowlists.

use std::path::Path;

use kafka_rest_proxy::config::Settings;
use sha2::{Digest, Sha256};

/// A policy file under construction; [`Policy::apply`] writes it and turns auth on.
#[derive(Default)]
pub struct Policy(String);

impl Policy {
    /// An API key: clients send `key`, the file holds its SHA-256. Its principal is
    /// `api_key:<principal>` in grants and allowlists.
    pub fn api_key(self, principal: &str, key: &str) -> Policy {
        self.section(&format!(
            "[[api_keys]]\nprincipal = \"{principal}\"\nsha256 = \"{}\"\n",
            sha256_hex(key)
        ))
    }

    /// An API key that is listed but switched off.
    pub fn disabled_api_key(self, principal: &str, key: &str) -> Policy {
        self.section(&format!(
            "[[api_keys]]\nprincipal = \"{principal}\"\nsha256 = \"{}\"\nenabled = false\n",
            sha256_hex(key)
        ))
    }

    /// Lets `principals` (method-qualified: `api_key:p`, `jwt:sub`, `cert:CN`) do
    /// `operations` on `topics`.
    pub fn grant(self, principals: &[&str], topics: &[&str], operations: &[&str]) -> Policy {
        self.section(&format!(
            "[[grants]]\nprincipals = {}\ntopics = {}\noperations = {}\n",
            list(principals),
            list(topics),
            list(operations)
        ))
    }

    /// Lets any principal holding one of `scopes` do `operations` on `topics`.
    pub fn grant_scopes(self, scopes: &[&str], topics: &[&str], operations: &[&str]) -> Policy {
        self.section(&format!(
            "[[grants]]\nscopes = {}\ntopics = {}\noperations = {}\n",
            list(scopes),
            list(topics),
            list(operations)
        ))
    }

    /// Lets `principal` (method-qualified) connect only from `cidrs`.
    pub fn allow_cidrs(self, principal: &str, cidrs: &[&str]) -> Policy {
        self.section(&format!(
            "[principals.\"{principal}\"]\nallow_cidrs = {}\n",
            list(cidrs)
        ))
    }

    /// The policy's TOML text.
    pub fn toml(&self) -> &str {
        &self.0
    }

    /// Writes the file as `policy.toml` in `dir` and turns auth on with it.
    pub fn apply(self, settings: &mut Settings, dir: &Path) {
        let path = dir.join("policy.toml");
        std::fs::write(&path, self.0).unwrap();
        settings.auth.enabled = true;
        settings.auth.policy_file = Some(path);
    }

    fn section(mut self, toml: &str) -> Policy {
        if !self.0.is_empty() {
            self.0.push('\n');
        }
        self.0.push_str(toml);
        self
    }
}

/// A TOML array of strings (a JSON array of strings is one).
fn list(items: &[&str]) -> String {
    serde_json::to_string(items).unwrap()
}

fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
