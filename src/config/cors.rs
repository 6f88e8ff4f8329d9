//! `[cors]`: cross-origin requests from browser clients, as Confluent's
//! `access.control.allow.origin`, `access.control.allow.methods` and
//! `access.control.allow.headers` allow them. Off while `allowed_origins` is empty.

use serde::{Deserialize, Deserializer};

use super::ConfigError;

/// Cross-origin requests from browser clients (CORS).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSettings {
    /// Origins whose pages may call the API, as browsers write them in `Origin`
    /// (`https://app.example.com`, `http://localhost:3000`), or `*` for any. A TOML list or
    /// one comma-separated string (Confluent's form). Empty, the default, turns CORS off.
    #[serde(deserialize_with = "origins")]
    pub allowed_origins: Vec<CorsOrigin>,
    /// Methods a cross-origin request may use.
    #[serde(deserialize_with = "tokens")]
    pub allowed_methods: Vec<String>,
    /// Request headers a cross-origin request may send besides the CORS-safelisted ones;
    /// the API key header (`auth.api_key_header`) is always allowed too.
    #[serde(deserialize_with = "tokens")]
    pub allowed_headers: Vec<String>,
    /// Let pages send credentials (cookies, TLS client certificates) and read the answers.
    /// Refused at startup with the origin `*`: any site could then call the API as its
    /// visitors. Bearer tokens and API keys are headers, not credentials in this sense.
    pub allow_credentials: bool,
    /// How long a browser may reuse a preflight's answer (Jetty's default, which Confluent's
    /// proxy inherits).
    pub max_age_secs: u32,
}

impl Default for CorsSettings {
    fn default() -> Self {
        CorsSettings {
            allowed_origins: Vec::new(),
            allowed_methods: vec!["GET".to_owned(), "POST".to_owned()],
            allowed_headers: ["Authorization", "Content-Type", "Accept", "X-Request-Id"]
                .map(str::to_owned)
                .to_vec(),
            allow_credentials: false,
            max_age_secs: 1_800,
        }
    }
}

/// An origin allowed to call: any, or one exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigin {
    /// `*`.
    Any,
    /// `scheme://host[:port]`, lower case, as browsers serialize an origin.
    Exact(String),
}

impl TryFrom<&str> for CorsOrigin {
    type Error = String;

    fn try_from(text: &str) -> Result<CorsOrigin, String> {
        if text == "*" {
            return Ok(CorsOrigin::Any);
        }
        let bad = || {
            format!(
                "{text:?} is not an origin: expected `*` or scheme://host[:port] such as \
                 https://app.example.com (no path, no wildcard inside)"
            )
        };
        let (scheme, authority) = text.split_once("://").ok_or_else(bad)?;
        // An IPv6 literal keeps its colons inside the brackets.
        let split_at = authority.rfind(']').unwrap_or(0);
        let (host, port) = match authority[split_at..].find(':') {
            Some(colon) => {
                let (host, port) = authority.split_at(split_at + colon);
                (host, Some(&port[1..]))
            }
            None => (authority, None),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
        if !matches!(scheme, "http" | "https") || !host_ok || !port_ok {
            return Err(bad());
        }
        let origin = match port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        Ok(CorsOrigin::Exact(origin.to_ascii_lowercase()))
    }
}

impl CorsSettings {
    /// Whether cross-origin requests are answered at all.
    pub fn enabled(&self) -> bool {
        !self.allowed_origins.is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        let any = self.allowed_origins.contains(&CorsOrigin::Any);
        if any && self.allowed_origins.len() > 1 {
            return Err(ConfigError::invalid(
                "cors.allowed_origins",
                "`*` allows every origin: list origins or give `*` alone",
            ));
        }
        if any && self.allow_credentials {
            return Err(ConfigError::invalid(
                "cors.allow_credentials",
                "cannot be true while cors.allowed_origins is `*`: any web site could then \
                 call the API with its visitors' credentials. List the allowed origins",
            ));
        }
        if self.allowed_methods.is_empty() {
            return Err(ConfigError::invalid(
                "cors.allowed_methods",
                "must name at least one method while cors.allowed_origins is set",
            ));
        }
        Ok(())
    }
}

/// A TOML list of strings, or one comma-separated string; blanks dropped.
fn comma_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Joined(String),
        List(Vec<String>),
    }
    let items = match OneOrMany::deserialize(deserializer)? {
        OneOrMany::Joined(joined) => joined.split(',').map(str::to_owned).collect(),
        OneOrMany::List(list) => list,
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

fn origins<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<CorsOrigin>, D::Error> {
    comma_list(deserializer)?
        .iter()
        .map(|origin| CorsOrigin::try_from(origin.as_str()).map_err(serde::de::Error::custom))
        .collect()
}

/// Method and header names are HTTP tokens (RFC 9110 §5.6.2).
fn tokens<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let items = comma_list(deserializer)?;
    let is_token = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    match items.iter().find(|item| !is_token(item)) {
        Some(bad) => Err(serde::de::Error::custom(format!(
            "{bad:?} is not a method or header name"
        ))),
        None => Ok(items),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_as_browsers_write_them() {
        let ok = [
            ("*", CorsOrigin::Any),
            (
                "https://App.Example.com",
                CorsOrigin::Exact("https://app.example.com".into()),
            ),
            (
                "http://localhost:3000",
                CorsOrigin::Exact("http://localhost:3000".into()),
            ),
            (
                "http://[::1]:8080",
                CorsOrigin::Exact("http://[::1]:8080".into()),
            ),
            ("http://[::1]", CorsOrigin::Exact("http://[::1]".into())),
        ];
        for (text, origin) in ok {
            assert_eq!(CorsOrigin::try_from(text), Ok(origin), "{text}");
        }
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://*.example.com",
            "ftp://app.example.com",
            "https://",
            "https://host:port",
            "null",
        ] {
            let err = CorsOrigin::try_from(bad).unwrap_err();
            assert!(err.contains("is not an origin"), "{bad}: {err}");
        }
    }

    #[test]
    fn off_by_default() {
        let settings = CorsSettings::default();
        assert!(!settings.enabled());
        settings.validate().unwrap();
    }
}
