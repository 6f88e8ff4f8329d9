//! The HTTPS listener: TLS 1.2 and 1.3 only, mutual TLS, the certificate subject as the
//! principal, and the plaintext listener beside it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};

use kafka_rest_proxy::config::Rate;

use crate::auth::THREE_RECORDS;
use crate::helpers::{Cluster, Policy, TestApp, JSON_V2};

struct Issued {
    cert: X509,
    key: PKey<Private>,
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn certificate(cn: &str, issuer: Option<&Issued>, ca: bool, server: bool) -> Issued {
    let key = key();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut builder = X509::builder().unwrap();
    builder.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    builder
        .set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    builder.set_subject_name(&name).unwrap();
    builder
        .set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name()))
        .unwrap();
    builder.set_pubkey(&key).unwrap();
    builder
        .set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    if ca {
        builder
            .append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        builder
            .append_extension(KeyUsage::new().key_cert_sign().crl_sign().build().unwrap())
            .unwrap();
    }
    if server {
        let san = SubjectAlternativeName::new()
            .ip("127.0.0.1")
            .build(&builder.x509v3_context(issuer.map(|i| i.cert.as_ref()), None))
            .unwrap();
        builder.append_extension(san).unwrap();
    }
    let signer = issuer.map_or(&key, |i| &i.key);
    builder.sign(signer, MessageDigest::sha256()).unwrap();
    Issued {
        cert: builder.build(),
        key,
    }
}

fn write(dir: &Path, name: &str, pem: Vec<u8>) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

pub(crate) struct Pki {
    pub(crate) dir: tempfile::TempDir,
    ca: Issued,
    client: Issued,
    stranger: Issued,
}

/// A CA, a server certificate for 127.0.0.1 signed by it (`ca.pem`, `server.pem`,
/// `server.key` in `dir`), and client certificates from it and from another CA.
pub(crate) fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = certificate("krp test CA", None, true, false);
    let server = certificate("127.0.0.1", Some(&ca), false, true);
    let client = certificate("partner-mtls", Some(&ca), false, false);
    let other_ca = certificate("someone else's CA", None, true, false);
    let stranger = certificate("partner-mtls", Some(&other_ca), false, false);
    write(dir.path(), "ca.pem", ca.cert.to_pem().unwrap());
    write(dir.path(), "server.pem", server.cert.to_pem().unwrap());
    write(
        dir.path(),
        "server.key",
        server.key.private_key_to_pem_pkcs8().unwrap(),
    );
    Pki {
        dir,
        ca,
        client,
        stranger,
    }
}

fn tls_settings(pki: &Pki, mutual: bool) -> kafka_rest_proxy::config::Settings {
    let mut settings = Cluster::plaintext().settings();
    settings.server.tls.listen = Some("127.0.0.1:0".parse().unwrap());
    settings.server.tls.cert_file = Some(pki.dir.path().join("server.pem"));
    settings.server.tls.key_file = Some(pki.dir.path().join("server.key"));
    if mutual {
        settings.server.tls.client_ca_file = Some(pki.dir.path().join("ca.pem"));
    }
    settings
}

/// One HTTPS request with a client limited to `versions`, presenting `identity`; the
/// negotiated version and the response, or the error.
fn https(
    port: u16,
    pki: &Pki,
    versions: (SslVersion, SslVersion),
    identity: Option<&Issued>,
    request: &str,
) -> Result<(String, String), String> {
    let mut connector = SslConnector::builder(SslMethod::tls_client()).unwrap();
    // Let the client offer old protocols, so that a refusal is the server's doing.
    connector.set_cipher_list("DEFAULT:@SECLEVEL=0").unwrap();
    connector.set_security_level(0);
    connector.set_min_proto_version(Some(versions.0)).unwrap();
    connector.set_max_proto_version(Some(versions.1)).unwrap();
    connector
        .set_ca_file(pki.dir.path().join("ca.pem"))
        .unwrap();
    connector.set_verify(SslVerifyMode::PEER);
    if let Some(identity) = identity {
        connector.set_certificate(&identity.cert).unwrap();
        connector.set_private_key(&identity.key).unwrap();
    }
    let connector = connector.build();
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut tls = connector
        .connect("127.0.0.1", tcp)
        .map_err(|e| format!("handshake: {e}"))?;
    let version = tls.ssl().version_str().to_owned();
    tls.write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    tls.read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    if response.is_empty() {
        return Err("no response".into());
    }
    Ok((version, response))
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[actix_web::test]
async fn only_tls_1_2_and_1_3_are_accepted_and_plaintext_stays() {
    let pki = std::sync::Arc::new(pki());
    let app = TestApp::spawn(tls_settings(&pki, false)).await;
    let port = app.tls_port.unwrap();
    for (version, name) in [
        (SslVersion::TLS1, "TLS 1.0"),
        (SslVersion::TLS1_1, "TLS 1.1"),
    ] {
        let pki = pki.clone();
        let result = blocking(move || https(port, &pki, (version, version), None, HEALTHZ)).await;
        assert!(result.is_err(), "{name} was accepted: {result:?}");
    }
    for (version, name) in [
        (SslVersion::TLS1_2, "TLSv1.2"),
        (SslVersion::TLS1_3, "TLSv1.3"),
    ] {
        let pki = pki.clone();
        let (negotiated, response) =
            blocking(move || https(port, &pki, (version, version), None, HEALTHZ))
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(negotiated, name);
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    assert_eq!(app.get("/healthz").await.status, 200, "plaintext listener");
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn mutual_tls_refuses_clients_without_a_trusted_certificate() {
    let pki = std::sync::Arc::new(pki());
    let app = TestApp::spawn(tls_settings(&pki, true)).await;
    let port = app.tls_port.unwrap();
    let any = (SslVersion::TLS1_2, SslVersion::TLS1_3);
    let p = pki.clone();
    let result = blocking(move || https(port, &p, any, None, HEALTHZ)).await;
    assert!(
        result.is_err(),
        "no client certificate was accepted: {result:?}"
    );
    let p = pki.clone();
    let result = blocking(move || https(port, &p, any, Some(&p.stranger), HEALTHZ)).await;
    assert!(
        result.is_err(),
        "an untrusted certificate was accepted: {result:?}"
    );
    let p = pki.clone();
    let (_, response) = blocking(move || https(port, &p, any, Some(&p.client), HEALTHZ))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let _ = &pki.ca;
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn the_certificate_subject_is_the_principal() {
    let cluster = Cluster::plaintext();
    let granted = cluster.create_topic(1).await;
    let other = cluster.create_topic(1).await;
    let pki = std::sync::Arc::new(pki());
    let mut settings = tls_settings(&pki, true);
    Policy::default()
        .grant(&["cert:partner-mtls"], &[&granted], &["produce"])
        .apply(&mut settings, pki.dir.path());
    settings.auth.client_certificates = true;
    let app = TestApp::spawn_ready(settings).await;
    let port = app.tls_port.unwrap();
    let body = r#"{"records":[{"value":"over mTLS"}]}"#;
    let request = |topic: &str| {
        format!(
            "POST /topics/{topic} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {JSON_V2}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let any = (SslVersion::TLS1_2, SslVersion::TLS1_3);
    let (p, r) = (pki.clone(), request(&granted));
    let (_, response) = blocking(move || https(port, &p, any, Some(&p.client), &r))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (p, r) = (pki.clone(), request(&other));
    let (_, response) = blocking(move || https(port, &p, any, Some(&p.client), &r))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    // Over plaintext there is no certificate, so no principal.
    let r = app.produce(&granted, body).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(cluster.high_watermarks(&granted, 1).await, vec![1]);
    assert_eq!(cluster.high_watermarks(&other, 1).await, vec![0]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn a_certificate_whose_cn_is_an_api_key_principal_gets_nothing_of_it() {
    let cluster = Cluster::plaintext();
    let a = cluster.create_topic(1).await;
    let b = cluster.create_topic(1).await;
    let pki = std::sync::Arc::new(pki());
    let mut settings = tls_settings(&pki, true);
    // The client certificate's CN is partner-mtls: the API-key principal of the same name
    // is granted a and has its own tight bucket; cert:partner-mtls is granted b.
    Policy::default()
        .api_key("partner-mtls", "key-m")
        .grant(&["api_key:partner-mtls"], &[&a], &["produce"])
        .grant(&["cert:partner-mtls"], &[&b], &["produce"])
        .apply(&mut settings, pki.dir.path());
    settings.limits.rate.principals.insert(
        "api_key:partner-mtls".into(),
        Rate {
            records_per_second: 1,
            records_burst: Some(3),
            ..Rate::default()
        },
    );
    settings.auth.client_certificates = true;
    let app = TestApp::spawn_ready(settings).await;
    let port = app.tls_port.unwrap();
    let body = THREE_RECORDS;
    let request = |topic: &str| {
        format!(
            "POST /topics/{topic} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {JSON_V2}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let any = (SslVersion::TLS1_2, SslVersion::TLS1_3);
    let (p, r) = (pki.clone(), request(&a));
    let (_, response) = blocking(move || https(port, &p, any, Some(&p.client), &r))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    let (p, r) = (pki.clone(), request(&b));
    let (_, response) = blocking(move || https(port, &p, any, Some(&p.client), &r))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let r = app.produce_with(&a, &[("x-api-key", "key-m")], body).await;
    assert_eq!(r.status, 200, "the key's bucket is whole: {r:?}");
    assert_eq!(cluster.high_watermarks(&a, 1).await, vec![3]);
    assert_eq!(cluster.high_watermarks(&b, 1).await, vec![3]);
    app.stop().await.unwrap();
}
