//! `[server]`: the HTTP listeners.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use actix_web::http::Uri;
use serde::Deserialize;

use super::ConfigError;

/// The HTTP server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on; Confluent's REST Proxy port by default.
    pub listen: SocketAddr,
    /// HTTP worker threads; defaults to the number of cores.
    pub workers: Option<usize>,
    /// Largest accepted request body, checked from `Content-Length` before reading.
    pub max_body_bytes: usize,
    /// The answer time promised to clients (API Gateway gives up after 29 s). Not a timer:
    /// startup checks that everything a produce may wait for (JWKS fetch, metadata request,
    /// queue wait, delivery timeout) fits inside it, which bounds every produce request.
    pub request_timeout_ms: u64,
    /// Budget from SIGTERM to exit: drain in-flight requests, then flush the producer.
    /// Keep it below ECS's `stopTimeout` (30 s by default).
    pub shutdown_timeout_ms: u64,
    /// An HTTPS listener, beside the plaintext one.
    pub tls: TlsSettings,
    /// The base of the links in API v3 bodies (`self`, `related`), e.g.
    /// `https://api.example.com/kafka` behind an API Gateway stage; unset, links use the
    /// request's scheme and host (as forwarded by a trusted proxy).
    pub advertised_url: Option<AdvertisedUrl>,
}

/// An absolute `http` or `https` URL with a host and no query or fragment, kept without
/// its trailing `/` so that paths append to it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AdvertisedUrl(String);

impl AdvertisedUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AdvertisedUrl {
    type Error = String;

    fn try_from(text: String) -> Result<AdvertisedUrl, String> {
        let expected = "an absolute http(s) URL such as https://api.example.com/kafka";
        let uri: Uri = text
            .parse()
            .map_err(|e| format!("{e}: expected {expected}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!("expected {expected}"));
        }
        if uri.query().is_some() || text.contains('#') {
            return Err("a query or fragment cannot prefix paths".to_owned());
        }
        Ok(AdvertisedUrl(text.trim_end_matches('/').to_owned()))
    }
}

impl fmt::Display for AdvertisedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The HTTPS listener (OpenSSL): TLS 1.2 and 1.3 only, optional client certificates.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// Address of the HTTPS listener; setting it turns HTTPS on.
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the certificate.
    pub key_file: Option<PathBuf>,
    /// PEM CA bundle for client certificates; setting it requires every HTTPS client to
    /// present a certificate it signed (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([0, 0, 0, 0], 8082)),
            workers: None,
            max_body_bytes: 8 * 1024 * 1024,
            request_timeout_ms: 25_000,
            shutdown_timeout_ms: 25_000,
            tls: TlsSettings::default(),
            advertised_url: None,
        }
    }
}

impl ServerSettings {
    /// Where a client on this host reaches the API listener: `listen`, with an unspecified
    /// address (`0.0.0.0`, `::`) replaced by loopback. The `healthcheck` subcommand probes
    /// it; the plaintext listener is always on, so it is the one probed even with HTTPS.
    pub fn local_address(&self) -> SocketAddr {
        let mut address = self.listen;
        match address.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => address.set_ip(Ipv4Addr::LOCALHOST.into()),
            IpAddr::V6(ip) if ip.is_unspecified() => address.set_ip(Ipv6Addr::LOCALHOST.into()),
            _ => {}
        }
        address
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "server.max_body_bytes",
                "must be positive",
            ));
        }
        if self.workers == Some(0) {
            return Err(ConfigError::invalid("server.workers", "must be positive"));
        }
        let tls = &self.tls;
        if tls.listen.is_some() && (tls.cert_file.is_none() || tls.key_file.is_none()) {
            return Err(ConfigError::invalid(
                "server.tls.cert_file",
                "server.tls.listen needs cert_file and key_file",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_address_is_loopback_for_an_unspecified_listen_address() {
        for (listen, local) in [
            ("0.0.0.0:8082", "127.0.0.1:8082"),
            ("[::]:9000", "[::1]:9000"),
            ("127.0.0.1:18082", "127.0.0.1:18082"),
            ("10.1.2.3:8082", "10.1.2.3:8082"),
        ] {
            let settings = ServerSettings {
                listen: listen.parse().unwrap(),
                ..ServerSettings::default()
            };
            assert_eq!(settings.local_address().to_string(), local, "{listen}");
        }
    }

    #[test]
    fn advertised_urls() {
        for (text, kept) in [
            (
                "https://api.example.com/kafka/",
                "https://api.example.com/kafka",
            ),
            ("http://10.0.0.1:8082", "http://10.0.0.1:8082"),
            ("https://api.example.com/", "https://api.example.com"),
        ] {
            assert_eq!(
                AdvertisedUrl::try_from(text.to_owned()).unwrap().as_str(),
                kept
            );
        }
        for bad in [
            "api.example.com",
            "/kafka",
            "ftp://api.example.com",
            "https://api.example.com/kafka?stage=prod",
            "https://api.example.com/kafka#x",
            "https:///kafka",
            "",
        ] {
            assert!(AdvertisedUrl::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }
}
