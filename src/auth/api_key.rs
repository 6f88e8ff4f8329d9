//! API keys: stored only as SHA-256 hashes, compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A configured key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The principal the key authenticates.
    pub principal: String,
    pub scopes: Vec<String>,
    pub enabled: bool,
    sha256: [u8; 32],
}

/// Why a key from the policy file is unusable.
#[derive(Debug, thiserror::Error)]
#[error("api key {principal:?}: sha256 must be 64 hexadecimal digits")]
pub struct BadKeyHash {
    pub principal: String,
}

impl ApiKey {
    /// A key from its hex SHA-256 (`echo -n KEY | sha256sum`).
    ///
    /// # Errors
    /// When `sha256_hex` is not 32 hex-encoded bytes.
    pub fn new(
        principal: String,
        sha256_hex: &str,
        scopes: Vec<String>,
        enabled: bool,
    ) -> Result<ApiKey, BadKeyHash> {
        let bad = || BadKeyHash {
            principal: principal.clone(),
        };
        if sha256_hex.len() != 64 || !sha256_hex.is_ascii() {
            return Err(bad());
        }
        let mut sha256 = [0u8; 32];
        for (i, byte) in sha256.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&sha256_hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(ApiKey {
            principal,
            scopes,
            enabled,
            sha256,
        })
    }
}

/// The configured keys.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<ApiKey>,
}

impl ApiKeys {
    pub fn new(keys: Vec<ApiKey>) -> ApiKeys {
        ApiKeys { keys }
    }

    /// The key matching `presented`. Every configured hash is compared, in constant time, so
    /// timing tells nothing about which (or whether a) key matched.
    pub fn find(&self, presented: &str) -> Option<&ApiKey> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.sha256.ct_eq(&digest)) {
                found = Some(key);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // echo -n 'partner-a-secret' | sha256sum
    const HASH: &str = "3ba2af8d6cfa76fd10e1fea5b3a70b2a9c7b53e5d8bcb7a4b1ae3ba0ef5c1cdc";

    fn hash_of(key: &str) -> String {
        Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn keys_match_by_hash() {
        let keys = ApiKeys::new(vec![
            ApiKey::new("a".into(), &hash_of("key-a"), vec![], true).unwrap(),
            ApiKey::new("b".into(), &hash_of("key-b"), vec!["s".into()], false).unwrap(),
        ]);
        assert_eq!(keys.find("key-a").unwrap().principal, "a");
        assert!(!keys.find("key-b").unwrap().enabled);
        assert!(keys.find("key-c").is_none());
        assert!(keys.find("").is_none());
    }

    #[test]
    fn bad_hashes_are_refused() {
        assert!(ApiKey::new("a".into(), "abc", vec![], true).is_err());
        assert!(ApiKey::new("a".into(), &"zz".repeat(32), vec![], true).is_err());
        assert!(ApiKey::new("a".into(), &"é".repeat(32), vec![], true).is_err());
        assert!(ApiKey::new("a".into(), HASH, vec![], true).is_ok());
    }
}
