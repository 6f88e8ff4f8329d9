//! The HTTPS listener (OpenSSL): TLS 1.2 minimum, 1.3 allowed, Mozilla's intermediate
//! cipher list, and optional client-certificate verification whose subject can become the
//! principal.

use std::any::Any;

use actix_tls::accept::openssl::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use openssl::nid::Nid;
use openssl::ssl::{
    SslAcceptor, SslAcceptorBuilder, SslFiletype, SslMethod, SslVerifyMode, SslVersion,
};

use crate::config::{ConfigError, TlsSettings};

/// The verified client certificate of a mutual-TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The subject's common name.
    pub common_name: String,
}

/// Builds the acceptor from the configured files.
///
/// # Errors
/// A message naming the setting whose file is missing or invalid.
pub fn acceptor(settings: &TlsSettings) -> Result<SslAcceptorBuilder, ConfigError> {
    let fail = |key: &str, e: openssl::error::ErrorStack| {
        ConfigError::invalid(&format!("server.tls.{key}"), e.to_string())
    };
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| fail("listen", e))?;
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| fail("listen", e))?;
    let cert = settings
        .cert_file
        .as_ref()
        .ok_or_else(|| ConfigError::invalid("server.tls.cert_file", "required"))?;
    let key = settings
        .key_file
        .as_ref()
        .ok_or_else(|| ConfigError::invalid("server.tls.key_file", "required"))?;
    builder
        .set_certificate_chain_file(cert)
        .map_err(|e| fail("cert_file", e))?;
    builder
        .set_private_key_file(key, SslFiletype::PEM)
        .map_err(|e| fail("key_file", e))?;
    builder
        .check_private_key()
        .map_err(|e| fail("key_file", e))?;
    if let Some(ca) = &settings.client_ca_file {
        builder
            .set_ca_file(ca)
            .map_err(|e| fail("client_ca_file", e))?;
        builder.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    Ok(builder)
}

/// `HttpServer::on_connect` hook: keeps a TLS connection's verified client certificate in
/// the connection data, for the auth middleware.
pub fn remember_client_certificate(connection: &dyn Any, data: &mut Extensions) {
    let Some(tls) = connection.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    let ssl = tls.ssl();
    if ssl.verify_result() != openssl::x509::X509VerifyResult::OK {
        return;
    }
    let common_name = ssl.peer_certificate().and_then(|cert| {
        cert.subject_name()
            .entries_by_nid(Nid::COMMONNAME)
            .next()
            .and_then(|entry| entry.data().to_string().ok())
    });
    if let Some(common_name) = common_name {
        data.insert(ClientCertificate { common_name });
    }
}
