//! The bodies of the fuzz targets (`fuzz/`, cargo-fuzz with libFuzzer): one function per
//! parser that reads partner bytes, and one for the settings. Each feeds its input to the
//! service's own entry points and checks what must hold whatever the input: no panic, no
//! wait (nothing here has a registry, a broker or an IdP to wait for), and the properties
//! noted on each target. The unit tests at the bottom replay the committed corpora
//! (`fuzz/corpus/<target>/`) with the same functions, so CI keeps them green without
//! libFuzzer.
//!
//! Nothing in the service calls this module; it is public only for `fuzz/`.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::OnceLock;

use bytes::Bytes;
use futures_util::FutureExt;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::network::Network;
use crate::auth::{AuthError, Authenticator, Credentials};
use crate::config::{AuthSettings, JwtAlgorithm, JwtSettings, PolicyText, Settings};
use crate::domain::TopicName;
use crate::formats::avro::AvroSchema;
use crate::formats::json_schema::JsonSchema;
use crate::formats::protobuf::ProtobufSchema;
use crate::formats::v3::split::{Scan, Splitter};
use crate::formats::v3::{self, batch, V3Record};
use crate::formats::{
    binary, check_accept, json, read_v2, request_format, resolve, EmbeddedFormat, FormatError,
    V2Request,
};
use crate::idempotency::IdempotencyKey;
use crate::telemetry::traces::{self, Incoming};

/// A target's body: what libFuzzer calls with each input.
pub type Target = fn(&[u8]);

/// Every target: its name (of `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`) and
/// its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("v2_envelope", v2_envelope),
    ("base64", base64),
    ("forwarded_for", forwarded_for),
    ("media_type", media_type),
    ("jwt", jwt),
    ("config", config),
    ("v3_stream", v3_stream),
    ("v3_batch", v3_batch),
    ("idempotency_key", idempotency_key),
    ("avro_json", avro_json),
    ("jsonschema_json", jsonschema_json),
    ("protobuf_json", protobuf_json),
    ("schema_text", schema_text),
    ("trace_context", trace_context),
];

/// The output of a future that has nothing to wait for.
fn ready<F: Future>(future: F) -> F::Output {
    future
        .now_or_never()
        .expect("finishes at once: there is no registry, broker or IdP to wait for")
}

fn topic() -> TopicName {
    TopicName::parse("fuzz").expect("a valid topic name")
}

/// A v2 produce body (`V2Request::parse`), then its records encoded in each embedded format
/// without a registry. The service's own path (`read_v2`: json and binary records encoded
/// as the body is read, in one pass) gives exactly what parsing then encoding gives, the
/// same records or the same error. A json key or value is written as the same JSON value;
/// a binary one as the bytes its base64 names (see [`check_binary`]); the schema formats
/// are refused without a registry; a record keeps its partition.
pub fn v2_envelope(data: &[u8]) {
    // Small, so that the records past the limit (counted, not kept) are reached.
    const MAX_RECORDS: usize = 8;
    const FORMATS: [EmbeddedFormat; 5] = [
        EmbeddedFormat::Json,
        EmbeddedFormat::Binary,
        EmbeddedFormat::Avro,
        EmbeddedFormat::JsonSchema,
        EmbeddedFormat::Protobuf,
    ];
    let body = Bytes::copy_from_slice(data);
    let topic = topic();
    let served = FORMATS.map(|format| {
        ready(read_v2(format, &topic, &body, MAX_RECORDS, None)).map(|(_, records)| records)
    });
    let request = match V2Request::parse(&body, MAX_RECORDS) {
        Ok(request) => request,
        Err(error) => {
            for (format, served) in FORMATS.iter().zip(&served) {
                assert_eq!(served.as_ref().err(), Some(&error), "{format:?}");
            }
            if let FormatError::TooManyRecords { count, limit } = error {
                assert!(
                    count > limit,
                    "{count} records refused with a limit of {limit}"
                );
            }
            return;
        }
    };
    assert!((1..=MAX_RECORDS).contains(&request.records.len()));
    for (format, served) in FORMATS.into_iter().zip(served) {
        let resolved = ready(resolve(
            format,
            &topic,
            &request.key_schema,
            &request.value_schema,
            None,
        ));
        let encoders = match resolved {
            Ok(encoders) => encoders,
            Err(error) => {
                assert!(
                    !matches!(format, EmbeddedFormat::Json | EmbeddedFormat::Binary),
                    "{format:?} needs no registry"
                );
                assert_eq!(served, Err(error));
                continue;
            }
        };
        let encoded = encoders.encode(&request.records, &body);
        assert_eq!(served, encoded, "{format:?}: one pass and two differ");
        let Ok(records) = encoded else {
            continue;
        };
        assert_eq!(records.len(), request.records.len());
        for (record, raw) in records.iter().zip(&request.records) {
            assert_eq!(record.partition, raw.partition);
            for (raw, written) in [(raw.key, &record.key), (raw.value, &record.value)] {
                let Some(raw) = raw else {
                    assert!(written.is_none());
                    continue;
                };
                match format {
                    EmbeddedFormat::Json => check_json(raw, written.as_deref()),
                    _ => check_binary(raw, &Ok(written.as_deref().map(<[u8]>::to_vec))),
                }
            }
        }
    }
}

/// A json key or value is written as the same JSON value, with nothing added: `null` as
/// no bytes, anything else as JSON that reads back as the same value and is no longer
/// than what was sent.
fn check_json(raw: &RawValue, written: Option<&[u8]>) {
    if raw.get() == "null" {
        assert_eq!(written, None);
        return;
    }
    let written = written.expect("a value that is not null is written");
    assert!(written.len() <= raw.get().len());
    // An unpaired surrogate escape reads as no value on both sides.
    assert_eq!(
        serde_json::from_slice::<Value>(written).ok(),
        serde_json::from_str::<Value>(raw.get()).ok(),
        "{} written as {}",
        raw.get(),
        String::from_utf8_lossy(written)
    );
}

/// The standard base64 alphabet.
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// The URL-safe alphabet, of JWTs.
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 without padding, written here independently of the decoder under test.
fn base64_encode(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(alphabet[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

/// What a binary key or value must come to (`binary::decode`): `null` is no bytes; a
/// string with a character outside the alphabet is refused naming that character's
/// offset; text that decodes is the bytes whose base64 is the same text up to its
/// padding and the unused low bits of its last character (Guava's leniency).
fn check_binary(raw: &RawValue, decoded: &Result<Option<Vec<u8>>, binary::BinaryError>) {
    if raw.get() == "null" {
        assert_eq!(decoded, &Ok(None));
        return;
    }
    let Ok(text) = serde_json::from_str::<String>(raw.get()) else {
        assert!(decoded.is_err(), "{}: not a string", raw.get());
        return;
    };
    let is_symbol = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    if let Some(offset) = text.chars().position(|c| !is_symbol(c)) {
        match decoded {
            Err(binary::BinaryError::InvalidBase64(why)) => assert!(
                why.contains(&format!(" at offset {offset} is not a base64 character")),
                "{text:?}: {why}"
            ),
            other => panic!("{text:?} has a bad character at {offset}: {other:?}"),
        }
        return;
    }
    let Ok(Some(bytes)) = decoded else {
        return;
    };
    let symbols = text.trim_end_matches('=');
    assert!(!symbols.contains('='), "{text:?}: padding inside the text");
    let again = base64_encode(bytes, BASE64);
    assert_eq!(again.len(), symbols.len(), "{text:?} -> {bytes:?}");
    let last = symbols.len().saturating_sub(1);
    assert_eq!(again[..last], symbols[..last], "{text:?} -> {bytes:?}");
}

/// The binary format's base64 (`binary::decode`), from any JSON value, and from any text as
/// the content of a JSON string; see [`check_binary`].
pub fn base64(data: &[u8]) {
    if let Ok(raw) = serde_json::from_slice::<&RawValue>(data) {
        check_binary(raw, &binary::decode(raw));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let quoted = serde_json::to_string(text).expect("a string serializes");
        let raw: &RawValue = serde_json::from_str(&quoted).expect("a JSON string");
        check_binary(raw, &binary::decode(raw));
    }
}

/// The client address behind proxies (`Network::client_ip`): the first byte picks the
/// socket peer (trusted or not, IPv4 or IPv6), the rest are `X-Forwarded-For` values, one
/// per line. An untrusted peer is always the client, whatever the headers say.
pub fn forwarded_for(data: &[u8]) {
    static NETWORK: OnceLock<Network> = OnceLock::new();
    let network = NETWORK.get_or_init(|| {
        let nets = |list: &[&str]| list.iter().map(|n| n.parse().expect("a CIDR")).collect();
        Network::new(
            nets(&["10.0.0.0/8", "fd00::/8", "192.0.2.1/32"]),
            nets(&["203.0.113.0/24", "2001:db8::/32"]),
        )
    });
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let peers = ["10.1.2.3", "198.51.100.7", "fd00::1", "2001:db8::9"];
    let peer: IpAddr = peers[usize::from(choice) % peers.len()]
        .parse()
        .expect("an address");
    let headers: Vec<&[u8]> = rest.split(|b| *b == b'\n').collect();
    let client = network.client_ip(peer, &headers);
    if !network.is_trusted(peer) {
        assert_eq!(client, peer);
    }
    network.allows(client);
}

/// The trace headers a request may carry (`telemetry::traces::Incoming::read`): the input's
/// lines are `traceparent`, `tracestate` and `X-Amzn-Trace-Id` (a line that is not a header
/// value is left out). A parent read from them is a valid context and written back, it
/// reads the same; a W3C parent is preferred to API Gateway's.
pub fn trace_context(data: &[u8]) {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use opentelemetry::trace::TraceContextExt;

    let mut headers = HeaderMap::new();
    let names = ["traceparent", "tracestate", "x-amzn-trace-id"];
    for (name, line) in names.iter().zip(data.split(|b| *b == b'\n')) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    let incoming = Incoming::read(&headers);
    if let Incoming::Parent(context) = &incoming {
        let parent = context.span().span_context().clone();
        assert!(parent.is_valid());
        let written = traces::format_traceparent(&parent);
        let mut again = HeaderMap::new();
        again.insert(
            HeaderName::from_static("traceparent"),
            HeaderValue::from_str(&written).expect("a traceparent is a header value"),
        );
        match Incoming::read(&again) {
            Incoming::Parent(read) => {
                let read = read.span().span_context().clone();
                assert_eq!(
                    (read.trace_id(), read.span_id(), read.trace_flags()),
                    (parent.trace_id(), parent.span_id(), parent.trace_flags())
                );
            }
            other => panic!("{written} read back as {other:?}"),
        }
    }
    // A valid W3C traceparent wins whatever X-Amzn-Trace-Id says.
    if let Some(w3c) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        let alone = {
            let mut only = HeaderMap::new();
            only.insert(
                HeaderName::from_static("traceparent"),
                HeaderValue::from_str(w3c).expect("it was a header value"),
            );
            Incoming::read(&only)
        };
        if let (Incoming::Parent(alone), Incoming::Parent(both)) = (&alone, &incoming) {
            assert_eq!(
                alone.span().span_context().trace_id(),
                both.span().span_context().trace_id()
            );
        }
    }
}

/// The v2 media types: `Content-Type` (`request_format`) and `Accept` (`check_accept`). A
/// range that is acceptable stays so in a list after one that is not (a blank `Accept`
/// is no `Accept`, acceptable; in a list it is no range).
pub fn media_type(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = request_format(Some(text));
    if !text.trim().is_empty() && check_accept(Some(text)).is_ok() {
        assert!(check_accept(Some(&format!("text/html, {text}"))).is_ok());
    }
}

/// The issuer, audience and signing secrets of the [`jwt`] target.
const JWT_ISSUER: &str = "https://idp.example";
const JWT_AUDIENCE: &str = "kafka-rest";
const JWT_SECRET: &[u8] = b"fuzzing-secret-with-kid";
const JWT_SECRET_WITHOUT_KID: &[u8] = b"fuzzing-secret-without-kid";
const JWT_LEEWAY_SECS: u64 = 30;
/// The one API key of the [`jwt`] target's policy.
const API_KEY: &str = "fuzz-api-key-0123456789";

/// The authenticator of the [`jwt`] target: JWTs from [`JWT_ISSUER`] for [`JWT_AUDIENCE`],
/// HS256 with [`JWT_SECRET`] under the `kid` "fuzz" and [`JWT_SECRET_WITHOUT_KID`] under
/// none (or RS256, for which there is no key), and one API key.
fn jwt_authenticator() -> Authenticator {
    let api_key_sha256: String = Sha256::digest(API_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let settings = AuthSettings {
        enabled: true,
        policy: Some(PolicyText(format!(
            "[[api_keys]]\nprincipal = \"fuzz\"\nsha256 = \"{api_key_sha256}\"\n\
             scopes = [\"s\"]\n[[grants]]\nprincipals = [\"api_key:fuzz\"]\n\
             topics = [\"fuzz\"]\noperations = [\"produce\"]\n"
        ))),
        jwt: JwtSettings {
            issuer: Some(JWT_ISSUER.to_owned()),
            audiences: vec![JWT_AUDIENCE.to_owned()],
            algorithms: vec![JwtAlgorithm::Hs256, JwtAlgorithm::Rs256],
            leeway_secs: JWT_LEEWAY_SECS,
            // Never a fetch for an unknown kid: there is no IdP.
            unknown_kid_refresh_interval_ms: u64::MAX,
            // Every input verified afresh: a cache filled by earlier inputs would make an
            // input's path (and coverage) depend on what ran before it.
            cache_max_entries: 0,
            ..JwtSettings::default()
        },
        ..AuthSettings::default()
    };
    let authenticator = Authenticator::new(&settings).expect("valid settings");
    let jwks = format!(
        r#"{{"keys":[{{"kty":"oct","kid":"fuzz","alg":"HS256","k":"{}"}},{{"kty":"oct","alg":"HS256","k":"{}"}}]}}"#,
        base64_encode(JWT_SECRET, BASE64_URL),
        base64_encode(JWT_SECRET_WITHOUT_KID, BASE64_URL),
    );
    authenticator
        .jwt()
        .expect("JWT configured")
        .install_keys(&jwks)
        .expect("a JWKS");
    authenticator
}

/// HMAC-SHA256 (RFC 2104), to sign the [`jwt`] target's tokens.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// Authentication of a request (`Authenticator::authenticate`), the first byte choosing
/// what the rest is:
/// - 0: the `Authorization` header's value (the bearer token path before any valid
///   signature: scheme, segments, the untrusted header, `alg`, `kid`);
/// - 1: a token's header and claims JSON, separated by the first line feed, which the
///   target signs with the key of `kid` "fuzz" (the claims path after a valid signature);
///   a token accepted has the issuer, the audience, an `exp` not past (with leeway) and a
///   non-empty `sub`, which is the principal;
/// - else: an API key, accepted only when it is the policy's key.
pub fn jwt(data: &[u8]) {
    static AUTHENTICATOR: OnceLock<Authenticator> = OnceLock::new();
    let authenticator = AUTHENTICATOR.get_or_init(jwt_authenticator);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let client: IpAddr = "203.0.113.5".parse().expect("an address");
    let authenticate = |authorization: Option<&str>, api_key: Option<&str>| {
        ready(authenticator.authenticate(
            client,
            Credentials {
                authorization,
                api_key,
                client_certificate: None,
            },
        ))
        .map(|authenticated| authenticated.principal)
    };
    match mode {
        0 => {
            let Ok(header) = std::str::from_utf8(rest) else {
                return;
            };
            let result = authenticate(Some(header), None);
            assert_ne!(
                result,
                Err(AuthError::KeysUnavailable),
                "the keys are installed"
            );
        }
        1 => {
            let (head, claims) = match rest.iter().position(|b| *b == b'\n') {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &b""[..]),
            };
            let signing_input = format!(
                "{}.{}",
                base64_encode(head, BASE64_URL),
                base64_encode(claims, BASE64_URL)
            );
            let signature = hmac_sha256(JWT_SECRET, signing_input.as_bytes());
            let header = format!(
                "Bearer {signing_input}.{}",
                base64_encode(&signature, BASE64_URL)
            );
            if let Ok(principal) = authenticate(Some(&header), None) {
                check_accepted_claims(claims, principal.id.as_str());
            }
        }
        _ => {
            let Ok(key) = std::str::from_utf8(rest) else {
                return;
            };
            let result = authenticate(None, Some(key));
            assert_eq!(result.is_ok(), key == API_KEY, "{result:?}");
        }
    }
}

/// What the claims of a token the [`jwt`] target's authenticator accepted must hold.
fn check_accepted_claims(claims: &[u8], principal: &str) {
    let claims: serde_json::Map<String, Value> =
        serde_json::from_slice(claims).expect("accepted claims are a JSON object");
    assert_eq!(claims["iss"], JWT_ISSUER, "{claims:?}");
    let audience_ok = match &claims["aud"] {
        Value::String(aud) => aud == JWT_AUDIENCE,
        Value::Array(auds) => auds.iter().any(|a| a == JWT_AUDIENCE),
        _ => false,
    };
    assert!(audience_ok, "{claims:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let exp = claims["exp"].as_f64().expect("a numeric exp");
    // One second of slack for the time between the check and this.
    assert!(
        exp + JWT_LEEWAY_SECS as f64 + 1.0 >= now,
        "expired: {claims:?}"
    );
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().expect("a numeric nbf");
        assert!(nbf - JWT_LEEWAY_SECS as f64 - 1.0 <= now, "{claims:?}");
    }
    let sub = claims["sub"].as_str().expect("a string sub");
    assert!(!sub.is_empty());
    assert_eq!(principal, format!("jwt:{sub}"));
}

/// Loading the settings (`Settings::load_from_text`): the input is the TOML file's text,
/// then, after each NUL, one `NAME=value` environment variable (the Confluent image's
/// variables, `KAFKA_CREDS`, `SCHEMA_REGISTRY_CREDS`, `KRP_AUTH__POLICY`). Settings that
/// load also build the authenticator (the inline policy, the JWT settings) and the
/// producer's librdkafka configuration. The `KRP_<SECTION>__<KEY>` layer reads the
/// process environment (figment's provider takes no other), so it is not fuzzed.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let toml = parts.next().unwrap_or_default();
    let env: HashMap<&str, &str> = parts.filter_map(|var| var.split_once('=')).collect();
    match Settings::load_from_text(toml, |name| env.get(name).map(|v| (*v).to_owned())) {
        Ok(settings) => {
            let _ = format!("{settings:?}");
            // A policy file would be read from disk: only the inline policy is built.
            if settings.auth.policy_file.is_none() {
                let _ = Authenticator::new(&settings.auth);
            }
            let servers = settings.kafka.bootstrap_servers.as_deref().unwrap_or("");
            let _ = crate::kafka::client_config::producer_config(&settings.kafka, servers, 0);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// How a stream of records ended: between records, or malformed (the message).
type StreamEnd = Option<String>;

/// Splits `body`, arriving in pieces of `piece` bytes, as the API v3 stream reader does
/// (`http/produce_v3/stream.rs`): the whitespace a scan lets go is dropped, a record is
/// taken out whole, and the scan resumes.
fn split_stream(body: &[u8], piece: usize) -> (Vec<Vec<u8>>, StreamEnd) {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut pieces = body.chunks(piece);
    let mut buffer = Vec::new();
    let mut eof = false;
    let mut splitter = Splitter::default();
    let mut records = Vec::new();
    loop {
        match splitter.scan(&buffer, eof) {
            Scan::Value { start, end } => {
                assert!(start < end && end <= buffer.len(), "{start}..{end}");
                assert!(buffer[..start].iter().all(is_space));
                records.push(buffer[start..end].to_vec());
                buffer.drain(..end);
                splitter.reset();
            }
            Scan::More { idle } => {
                assert!(!eof, "more bytes asked for after the end");
                assert!(buffer[..idle].iter().all(is_space));
                buffer.drain(..idle);
                splitter.dropped(idle);
                match pieces.next() {
                    Some(bytes) => buffer.extend_from_slice(bytes),
                    None => eof = true,
                }
            }
            Scan::End => {
                assert!(buffer.iter().all(is_space));
                return (records, None);
            }
            Scan::Malformed(message) => return (records, Some(message)),
        }
    }
}

/// An API v3 stream of records (`formats::v3::split::Splitter` and `V3Record::parse`,
/// then each record encoded without a registry). The first byte sets the size of the
/// pieces the body arrives in (1 to 16 bytes); the records found are the same as when the
/// body arrives whole, and, when the body is a sequence of JSON values, they are those
/// values; each record reads the same in one pass as field by field.
pub fn v3_stream(data: &[u8]) {
    let Some((&piece, body)) = data.split_first() else {
        return;
    };
    let (records, end) = split_stream(body, usize::from(piece % 16) + 1);
    let whole = split_stream(body, body.len().max(1));
    assert_eq!(
        (&records, &end),
        (&whole.0, &whole.1),
        "split differently when the body arrives in pieces"
    );
    let values: Result<Vec<&RawValue>, _> = serde_json::Deserializer::from_slice(body)
        .into_iter::<&RawValue>()
        .collect();
    if let Ok(values) = values {
        let texts: Vec<&[u8]> = values.iter().map(|v| v.get().as_bytes()).collect();
        assert_eq!(records, texts, "JSON values split wrong");
        assert_eq!(end, None);
    }
    let topic = topic();
    for record in &records {
        // As the stream reader holds it: its own `Bytes`, which JSON sides share.
        let source = Bytes::copy_from_slice(record);
        // The single pass answers as the field-by-field reading it stands in for.
        let read = V3Record::parse_bytes(&source);
        assert_eq!(
            format!("{read:?}"),
            format!("{:?}", V3Record::parse_by_fields(&source)),
            "read differently in one pass"
        );
        if let Ok(record) = read {
            let _ = ready(v3::encode(record, &source, &topic, None));
        }
    }
}

/// An API v3 batch (`formats::v3::batch::parse`, then each entry's record encoded without
/// a registry). A batch accepted has 1 to 8 entries with distinct ids of 1 to 80 of
/// `[0-9a-zA-Z_-]`.
pub fn v3_batch(data: &[u8]) {
    const MAX_ENTRIES: usize = 8;
    let body = Bytes::copy_from_slice(data);
    let Ok(entries) = batch::parse(&body, MAX_ENTRIES) else {
        return;
    };
    assert!((1..=MAX_ENTRIES).contains(&entries.len()));
    let topic = topic();
    for entry in entries {
        assert!((1..=80).contains(&entry.id.len()), "{:?}", entry.id);
        assert!(entry
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        if let Ok(record) = entry.record {
            let _ = ready(v3::encode(record, &body, &topic, None));
        }
    }
}

/// The `Idempotency-Key` header (`IdempotencyKey::from_values`), one value per line: a key
/// is taken from exactly one value of 1 to 255 visible ASCII characters, without its
/// surrounding quotes.
pub fn idempotency_key(data: &[u8]) {
    let values: Vec<&[u8]> = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|b| *b == b'\n').collect()
    };
    let Ok(Some(key)) = IdempotencyKey::from_values(values.iter().copied()) else {
        return;
    };
    assert_eq!(values.len(), 1);
    let value = values[0];
    let inner = match value {
        [b'"', inner @ .., b'"'] => inner,
        other => other,
    };
    assert_eq!(key.as_str().as_bytes(), inner);
    assert!((1..=255).contains(&inner.len()));
    assert!(inner.iter().all(|b| (0x21..=0x7e).contains(b)));
    assert_eq!(key.log_name().len(), 16);
}

/// The fixed Avro schema of [`avro_json`]: every type, named types in unions, logical
/// types, recursion.
const AVRO_SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[
 {"name":"id","type":"long"},
 {"name":"n","type":"int"},
 {"name":"f","type":"float"},
 {"name":"d","type":"double"},
 {"name":"ok","type":"boolean"},
 {"name":"s","type":"string","aliases":["str"]},
 {"name":"b","type":"bytes"},
 {"name":"fx","type":{"type":"fixed","name":"Hash","size":4}},
 {"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"attrs","type":{"type":"map","values":["null","long"]}},
 {"name":"note","type":["null","string",{"type":"record","name":"Address","fields":[{"name":"zip","type":"int"}]}]},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
 {"name":"next","type":["null","Order"],"default":null}
]}"#;

/// Avro's JSON encoding read under [`AVRO_SCHEMA`] (`AvroSchema::encode`): what is written
/// is an Avro datum of the schema (apache-avro reads it back, to its last byte); a refusal
/// leaves the output as it was.
pub fn avro_json(data: &[u8]) {
    static SCHEMAS: OnceLock<(AvroSchema, apache_avro::Schema)> = OnceLock::new();
    let (schema, reader) = SCHEMAS.get_or_init(|| {
        (
            AvroSchema::parse(AVRO_SCHEMA).expect("a valid schema"),
            apache_avro::Schema::parse_str(AVRO_SCHEMA).expect("a valid schema"),
        )
    });
    let Ok(raw) = serde_json::from_slice::<&RawValue>(data) else {
        return;
    };
    let mut out = vec![0xAA];
    match schema.encode(raw, &mut out) {
        Ok(()) => {
            let mut datum = &out[1..];
            apache_avro::reader::datum::GenericDatumReader::builder(reader)
                .build()
                .and_then(|reader| reader.read_value(&mut datum))
                .unwrap_or_else(|e| panic!("{}: written as unreadable Avro: {e}", raw.get()));
            assert!(
                datum.is_empty(),
                "{}: bytes left after the datum",
                raw.get()
            );
        }
        Err(_) => assert_eq!(out, [0xAA]),
    }
}

/// The fixed JSON Schema of [`jsonschema_json`] (draft 7).
const JSON_SCHEMA: &str = r##"{
 "title": "Order", "type": "object", "additionalProperties": false,
 "required": ["id"],
 "properties": {
  "id": {"type": "integer", "minimum": 1, "maximum": 9007199254740991},
  "price": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.01},
  "name": {"type": "string", "minLength": 1, "maxLength": 40, "pattern": "^[A-Za-z][A-Za-z0-9 _-]*$"},
  "email": {"type": "string", "format": "email"},
  "at": {"type": "string", "format": "date-time"},
  "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true, "maxItems": 8},
  "state": {"enum": ["new", "paid", 3, null]},
  "kind": {"const": "order"},
  "lines": {"type": "array", "items": {"$ref": "#/definitions/line"}},
  "meta": {"type": "object", "patternProperties": {"^x-": {"type": "string"}}, "additionalProperties": {"type": "number"}},
  "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
  "any": {"anyOf": [{"type": "boolean"}, {"type": "array", "minItems": 1}]},
  "all": {"allOf": [{"type": "integer"}, {"not": {"const": 0}}]},
  "cond": {"if": {"type": "string"}, "then": {"minLength": 2}, "else": {"type": "integer"}}
 },
 "dependencies": {"price": ["name"]},
 "definitions": {"line": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}, "sub": {"$ref": "#/definitions/line"}}}}
}"##;

/// A JSON value checked against [`JSON_SCHEMA`] (`JsonSchema::encode`): one that passes
/// is written exactly as the json format writes it.
pub fn jsonschema_json(data: &[u8]) {
    static SCHEMA: OnceLock<JsonSchema> = OnceLock::new();
    let schema = SCHEMA.get_or_init(|| JsonSchema::parse(JSON_SCHEMA).expect("a valid schema"));
    let Ok(raw) = serde_json::from_slice::<&RawValue>(data) else {
        return;
    };
    let mut out = vec![0xAA];
    if schema.encode(raw, &mut out).is_ok() {
        let mut expected = vec![0xAA];
        expected.extend(json::encode(raw).unwrap_or_default());
        assert_eq!(out, expected);
    }
}

/// The fixed Protobuf schemas of [`protobuf_json`]: proto3 with every kind of field and the
/// well-known types, and proto2 with required fields and defaults.
const PROTOBUF_SCHEMAS: [&str; 2] = [
    r#"syntax = "proto3";
package acme;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/any.proto";
import "google/protobuf/empty.proto";
message Shipment {
  string id = 1; int32 i32 = 2; int64 i64 = 3; uint32 u32 = 4; uint64 u64 = 5;
  sint32 s32 = 6; fixed64 f64 = 7; float fl = 8; double db = 9; bool ok = 10; bytes data = 11;
  enum State { UNKNOWN = 0; SENT = 1; LOST = 2; }
  State state = 12;
  repeated string tags = 13;
  map<string, int64> counts = 14;
  map<int32, Item> items = 15;
  message Item { string sku = 1; repeated Item children = 2; sfixed32 weight = 3; }
  Item first = 16;
  oneof target { string email = 17; int64 phone = 18; }
  google.protobuf.Timestamp at = 19;
  google.protobuf.Duration ttl = 20;
  google.protobuf.Struct meta = 21;
  google.protobuf.Value dynamic = 22;
  google.protobuf.Int64Value maybe = 23;
  google.protobuf.FieldMask mask = 24;
  google.protobuf.Any extra = 25;
  google.protobuf.ListValue list = 26;
  google.protobuf.BytesValue raw = 27;
  google.protobuf.Empty nothing = 28;
  optional string opt = 29;
  repeated State states = 30;
}"#,
    r#"syntax = "proto2";
message Legacy {
  required string id = 1;
  optional int32 count = 2 [default = 7];
  repeated Part parts = 3;
  message Part { required int64 n = 1; optional bytes b = 2; }
  optional group Extra = 4 { optional string note = 5; }
}"#,
];

/// Proto3 JSON read into the first message of a fixed schema (`ProtobufSchema::encode`);
/// the first byte picks the schema. What is written starts with the message-index list
/// `[0]`; a refusal writes nothing.
pub fn protobuf_json(data: &[u8]) {
    static SCHEMAS: OnceLock<Vec<ProtobufSchema>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        PROTOBUF_SCHEMAS
            .iter()
            .map(|text| ProtobufSchema::parse(text).expect("a valid schema"))
            .collect()
    });
    let Some((&choice, json)) = data.split_first() else {
        return;
    };
    let Ok(raw) = serde_json::from_slice::<&RawValue>(json) else {
        return;
    };
    let schema = &schemas[usize::from(choice) % schemas.len()];
    let mut out = vec![0xAA];
    match schema.encode(raw, &mut out) {
        Ok(()) => assert_eq!(out[..2], [0xAA, 0x00]),
        Err(_) => assert_eq!(out, [0xAA]),
    }
}

/// A schema's text as a partner sends it (`value_schema`, v3's `schema`), parsed as the
/// format the first byte picks: Avro, JSON Schema or Protobuf (`AvroSchema::parse`,
/// `JsonSchema::parse`, `ProtobufSchema::parse`), and a schema that parses is used once on
/// `null`.
pub fn schema_text(data: &[u8]) {
    let Some((&choice, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let null: &RawValue = serde_json::from_str("null").expect("JSON");
    let mut out = Vec::new();
    match choice % 3 {
        0 => {
            if let Ok(schema) = AvroSchema::parse(text) {
                let _ = schema.name();
                let _ = schema.encode(null, &mut out);
            }
        }
        1 => {
            if let Ok(schema) = JsonSchema::parse(text) {
                let _ = schema.title();
                let _ = schema.encode(null, &mut out);
            }
        }
        _ => {
            if let Ok(schema) = ProtobufSchema::parse(text) {
                let _ = schema.name();
                let _ = schema.encode(null, &mut out);
                let _ = schema.file_descriptor_bytes();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn fuzz_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
    }

    /// Every file of the target's committed corpus, run through its body.
    fn replay(name: &str) {
        let target = TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, target)| target)
            .expect("a target");
        let dir = fuzz_dir().join("corpus").join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: no corpus", dir.display());
        for file in files {
            let data = std::fs::read(&file).expect("a corpus file");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{} fails", file.display());
        }
    }

    macro_rules! replays {
        ($($name:ident),* $(,)?) => {
            $(
                #[test]
                fn $name() {
                    replay(stringify!($name));
                }
            )*

            /// A target added without its replay (or the reverse) fails here.
            #[test]
            fn every_target_is_replayed() {
                let replayed = [$(stringify!($name)),*];
                let targets: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
                assert_eq!(targets, replayed);
            }
        };
    }

    replays!(
        v2_envelope,
        base64,
        forwarded_for,
        media_type,
        jwt,
        config,
        v3_stream,
        v3_batch,
        idempotency_key,
        avro_json,
        jsonschema_json,
        protobuf_json,
        schema_text,
        trace_context,
    );

    /// Each target has its libFuzzer entry in `fuzz/fuzz_targets/` and nothing else is
    /// there.
    #[test]
    fn every_target_has_a_fuzz_target() {
        let dir = fuzz_dir().join("fuzz_targets");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                entry
                    .expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into()
            })
            .collect();
        files.sort();
        let mut expected: Vec<String> = TARGETS
            .iter()
            .map(|(name, _)| format!("{name}.rs"))
            .collect();
        expected.sort();
        assert_eq!(files, expected);
    }

    /// The `jwt` target's tokens reach the claims checks: its authenticator takes what it
    /// signs, with or without the `kid`, and nothing signed with another key.
    #[test]
    fn the_jwt_target_signs_tokens_its_authenticator_accepts() {
        let authenticator = jwt_authenticator();
        let token = |header: &str, secret: &[u8]| {
            let claims =
                r#"{"iss":"https://idp.example","aud":"kafka-rest","sub":"p","exp":4102444800}"#;
            let input = format!(
                "{}.{}",
                base64_encode(header.as_bytes(), BASE64_URL),
                base64_encode(claims.as_bytes(), BASE64_URL)
            );
            let signature = hmac_sha256(secret, input.as_bytes());
            format!("Bearer {input}.{}", base64_encode(&signature, BASE64_URL))
        };
        let authenticate = |header: &str| {
            ready(authenticator.authenticate(
                "203.0.113.5".parse().unwrap(),
                Credentials {
                    authorization: Some(header),
                    api_key: None,
                    client_certificate: None,
                },
            ))
            .map(|authenticated| authenticated.principal)
        };
        let with_kid = r#"{"alg":"HS256","kid":"fuzz"}"#;
        let principal = authenticate(&token(with_kid, JWT_SECRET)).unwrap();
        assert_eq!(principal.id.as_str(), "jwt:p");
        assert!(authenticate(&token(r#"{"alg":"HS256"}"#, JWT_SECRET)).is_ok());
        assert_eq!(
            authenticate(&token(with_kid, b"another secret")),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            authenticate(&token(r#"{"alg":"HS256","kid":"other"}"#, JWT_SECRET)),
            Err(AuthError::UnknownKey)
        );
    }

    /// The signing helper of the `jwt` target, against RFC 4231's test case 2.
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn base64_encode_matches_rfc_4648() {
        for (bytes, text) in [
            (&b""[..], ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff], "+/8"),
        ] {
            assert_eq!(base64_encode(bytes, BASE64), text);
        }
        assert_eq!(base64_encode(&[0xfb, 0xff], BASE64_URL), "-_8");
    }
}
