//! API keys: stored only as SHA-256 hashes, compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::{AuthMethod, PrincipalId};

/// A configured key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The principal the key authenticates (`api_key:<name>`).
    pub principal: PrincipalId,
    pub scopes: Vec<String>,
    pub enabled: bool,
    sha256: [u8; 32],
}

/// SHA-256 of the empty string: a policy holding it would let an empty `X-API-Key` header
/// authenticate.
const EMPTY_KEY_SHA256: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Why a key from the policy file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum BadKeyHash {
    #[error("api key {principal:?}: sha256 must be 64 hexadecimal digits")]
    NotHex { principal: String },
    #[error(
        "api key {principal:?}: sha256 is the hash of the empty string, which would let an \
         empty API key header authenticate; generate a real key"
    )]
    EmptyKey { principal: String },
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
        let bad = || BadKeyHash::NotHex {
            principal: principal.clone(),
        };
        if sha256_hex.len() != 64 || !sha256_hex.is_ascii() {
            return Err(bad());
        }
        let mut sha256 = [0u8; 32];
        for (i, byte) in sha256.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&sha256_hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        if sha256 == EMPTY_KEY_SHA256 {
            return Err(BadKeyHash::EmptyKey { principal });
        }
        Ok(ApiKey {
            principal: PrincipalId::new(AuthMethod::ApiKey, &principal),
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
    /// timing tells nothing about which (or whether a) key matched. An empty key never
    /// matches.
    pub fn find(&self, presented: &str) -> Option<&ApiKey> {
        if presented.is_empty() {
            return None;
        }
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
        assert_eq!(keys.find("key-a").unwrap().principal.as_str(), "api_key:a");
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

    #[test]
    fn the_hash_of_the_empty_key_is_refused() {
        let err = ApiKey::new("a".into(), &hash_of(""), vec![], true).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        assert!(err.to_string().contains("\"a\""), "{err}");
        assert!(ApiKey::new("a".into(), &hash_of("").to_uppercase(), vec![], true).is_err());
    }
}
