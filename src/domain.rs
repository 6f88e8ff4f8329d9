//! Values that are valid by construction: everything past the HTTP edge takes these, never
//! raw strings.

use std::fmt;

use bytes::Bytes;

/// A syntactically valid Kafka topic name: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.`
/// or `..` (the rules of Kafka's `Topic.validate`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicName(String);

/// Why a string is not a topic name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTopicName {
    #[error("a topic name cannot be empty")]
    Empty,
    #[error("a topic name cannot be longer than 249 characters")]
    TooLong,
    #[error("a topic name cannot be \".\" or \"..\"")]
    Dots,
    #[error("a topic name may contain only ASCII letters, digits, '.', '_' and '-'")]
    IllegalCharacter,
}

impl TopicName {
    /// The longest name Kafka accepts.
    pub const MAX_LEN: usize = 249;

    /// Validates a topic name.
    ///
    /// # Errors
    /// The Kafka rule that the name breaks.
    pub fn parse(name: &str) -> Result<TopicName, InvalidTopicName> {
        if name.is_empty() {
            return Err(InvalidTopicName::Empty);
        }
        if name.len() > Self::MAX_LEN {
            return Err(InvalidTopicName::TooLong);
        }
        if name == "." || name == ".." {
            return Err(InvalidTopicName::Dots);
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(InvalidTopicName::IllegalCharacter);
        }
        Ok(TopicName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names topics in configuration: an exact name, or a prefix when it ends in `*`. Parsed
/// once, where the configuration is read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "String")]
pub enum TopicPattern {
    Exact(String),
    Prefix(String),
}

impl From<String> for TopicPattern {
    fn from(pattern: String) -> TopicPattern {
        TopicPattern::parse(&pattern)
    }
}

impl From<&str> for TopicPattern {
    fn from(pattern: &str) -> TopicPattern {
        TopicPattern::parse(pattern)
    }
}

impl TopicPattern {
    pub fn parse(pattern: &str) -> TopicPattern {
        match pattern.strip_suffix('*') {
            Some(prefix) => TopicPattern::Prefix(prefix.to_owned()),
            None => TopicPattern::Exact(pattern.to_owned()),
        }
    }

    pub fn matches(&self, topic: &str) -> bool {
        match self {
            TopicPattern::Exact(name) => name == topic,
            TopicPattern::Prefix(prefix) => topic.starts_with(prefix.as_str()),
        }
    }
}

/// How a principal proved who it is: the method part of its [`PrincipalId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthMethod {
    ApiKey,
    Jwt,
    /// A client certificate verified by the HTTPS listener (mutual TLS).
    ClientCertificate,
}

impl AuthMethod {
    const ALL: [AuthMethod; 3] = [
        AuthMethod::ApiKey,
        AuthMethod::Jwt,
        AuthMethod::ClientCertificate,
    ];

    /// The method's prefix in a principal id: `api_key`, `jwt` or `cert`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Jwt => "jwt",
            AuthMethod::ClientCertificate => "cert",
        }
    }
}

/// A principal id qualified by how the principal authenticates, `<method>:<name>`:
/// `api_key:partner-a` (the principal of an API key), `jwt:<sub>` (a token's principal
/// claim), `cert:<CN>` (a client certificate's common name). Each method has its own
/// namespace: a token whose `sub` is `partner-a` is `jwt:partner-a`, never the API-key
/// principal `api_key:partner-a`. Grants, allowlists, rate limits, metric labels and logs
/// all use this form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrincipalId {
    method: AuthMethod,
    /// `<method>:<name>`, kept whole: it is what labels and logs show.
    qualified: String,
}

/// Why a configured principal id is not usable: it does not say its method.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "principal {given:?} does not say how it authenticates: write \"api_key:{name}\" (an API \
     key's principal), \"jwt:{name}\" (a token's subject) or \"cert:{name}\" (a client \
     certificate's CN)"
)]
pub struct UnqualifiedPrincipal {
    given: String,
    name: String,
}

impl PrincipalId {
    /// The id of the principal `name` authenticated by `method`.
    pub fn new(method: AuthMethod, name: &str) -> PrincipalId {
        PrincipalId {
            method,
            qualified: format!("{}:{name}", method.as_str()),
        }
    }

    /// Parses a configured id, which must be qualified (`api_key:partner-a`).
    ///
    /// # Errors
    /// [`UnqualifiedPrincipal`], showing the qualified forms, when the method prefix is
    /// missing or unknown or the name is empty.
    pub fn parse(id: &str) -> Result<PrincipalId, UnqualifiedPrincipal> {
        let unqualified = || UnqualifiedPrincipal {
            given: id.to_owned(),
            name: if id.is_empty() { "NAME" } else { id }.to_owned(),
        };
        let (prefix, name) = id.split_once(':').ok_or_else(unqualified)?;
        let method = AuthMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == prefix)
            .ok_or_else(unqualified)?;
        if name.is_empty() {
            return Err(unqualified());
        }
        Ok(PrincipalId::new(method, name))
    }

    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// The name without the method.
    pub fn name(&self) -> &str {
        &self.qualified[self.method.as_str().len() + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.qualified
    }
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.qualified)
    }
}

/// One record as Kafka will store it: what the formats encode, the produce pipeline checks
/// and the producer writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// `None` is a null key. Often a slice of the request body (see [`bytes::Bytes`]).
    pub key: Option<Bytes>,
    /// `None` is a null value (a tombstone).
    pub value: Option<Bytes>,
    /// An explicit partition; `None` lets the partitioner choose (murmur2 of the key, or any
    /// partition without one).
    pub partition: Option<Partition>,
    /// Milliseconds since the epoch; `None` is the time of the request (v2 has no
    /// timestamps).
    pub timestamp_ms: Option<i64>,
    /// Kafka record headers, in order; a name may repeat.
    pub headers: Vec<Header>,
}

/// One Kafka record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    /// `None` is a null header value.
    pub value: Option<Vec<u8>>,
}

impl Record {
    /// Key plus value bytes.
    pub fn size_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, Bytes::len) + self.value.as_ref().map_or(0, Bytes::len)
    }
}

/// A partition number: a non-negative `i32`, as in the Kafka protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition(i32);

impl Partition {
    /// `None` for negative numbers, which name no partition.
    pub fn new(id: i64) -> Option<Partition> {
        i32::try_from(id).ok().filter(|p| *p >= 0).map(Partition)
    }

    pub fn id(self) -> i32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_ids_are_qualified_by_method() {
        let id = PrincipalId::parse("api_key:partner-a").unwrap();
        assert_eq!(id, PrincipalId::new(AuthMethod::ApiKey, "partner-a"));
        assert_ne!(id, PrincipalId::new(AuthMethod::Jwt, "partner-a"));
        assert_eq!(id.name(), "partner-a");
        assert_eq!(
            PrincipalId::parse("jwt:https://idp/x").unwrap().name(),
            "https://idp/x"
        );
        assert_eq!(
            PrincipalId::parse("cert:svc.example.com").unwrap().method(),
            AuthMethod::ClientCertificate
        );
        for bad in ["partner-a", "apikey:partner-a", "jwt:", "", "https://idp/x"] {
            let err = PrincipalId::parse(bad).unwrap_err().to_string();
            assert!(err.contains("\"jwt:"), "{bad}: {err}");
            assert!(err.contains("\"api_key:"), "{bad}: {err}");
        }
        let err = PrincipalId::parse("partner-a").unwrap_err().to_string();
        assert!(err.contains("\"api_key:partner-a\""), "{err}");
    }

    #[test]
    fn kafka_topic_rules() {
        assert!(TopicName::parse("orders.v1_EU-2").is_ok());
        assert!(TopicName::parse(&"a".repeat(249)).is_ok());
        assert_eq!(
            TopicName::parse(&"a".repeat(250)),
            Err(InvalidTopicName::TooLong)
        );
        assert_eq!(TopicName::parse(""), Err(InvalidTopicName::Empty));
        assert_eq!(TopicName::parse(".."), Err(InvalidTopicName::Dots));
        for bad in ["a b", "a/b", "a$b", "é", "a:b"] {
            assert_eq!(
                TopicName::parse(bad),
                Err(InvalidTopicName::IllegalCharacter),
                "{bad}"
            );
        }
    }

    #[test]
    fn topic_patterns() {
        assert!(TopicPattern::parse("orders").matches("orders"));
        assert!(!TopicPattern::parse("orders").matches("orders.eu"));
        assert!(TopicPattern::parse("orders.*").matches("orders.eu"));
        assert!(!TopicPattern::parse("orders.*").matches("orders"));
        assert!(TopicPattern::parse("*").matches("anything"));
    }

    #[test]
    fn partitions_are_non_negative_i32() {
        assert_eq!(Partition::new(0).map(Partition::id), Some(0));
        assert_eq!(Partition::new(-1), None);
        assert_eq!(Partition::new(i64::from(i32::MAX) + 1), None);
    }
}
