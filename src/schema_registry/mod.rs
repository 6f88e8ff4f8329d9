//! The Confluent Schema Registry client: the only code that talks to the registry.
//!
//! Four calls, as Confluent's REST proxy makes them: a schema by its global id
//! (`GET /schemas/ids/{id}`), a schema's id and version under a subject (`POST
//! /subjects/{subject}`), a registration (`POST /subjects/{subject}/versions`) and a
//! subject's version (`GET /subjects/{subject}/versions/{version|latest}`). Each call tries
//! the configured URLs in turn while one is unreachable or answers 5xx; any other answer is
//! the registry's word. The client keeps no cache: the resolved schemas are cached by their
//! user, with their parsed encoders (`formats::schema`).
//!
//! reqwest rather than actix's awc: its futures are `Send`, so any worker can wait on the
//! registry; it speaks TLS through openssl (native-tls), as the rest of the service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, SchemaRegistrySettings};
use crate::metrics::Metrics;

/// The registry's media type, sent and accepted.
const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// What kind of schema a registered text is (`schemaType`; absent means Avro).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    #[default]
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    /// The registry's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

/// A schema as the registry stores it: its type and text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchemaText {
    #[serde(rename = "schemaType", default, skip_serializing_if = "is_avro")]
    pub schema_type: SchemaType,
    pub schema: String,
}

fn is_avro(schema_type: &SchemaType) -> bool {
    *schema_type == SchemaType::Avro
}

/// A schema registered under a subject.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubjectSchema {
    pub subject: String,
    pub id: i32,
    pub version: i32,
    #[serde(flatten)]
    pub text: SchemaText,
}

/// Which version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Latest,
    Number(i32),
}

/// Why a registry call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused the request (a 4xx other than 401/403), with its own error
    /// code and message.
    #[error("{message}; error code: {error_code}")]
    Rejected {
        status: u16,
        error_code: i64,
        message: String,
    },
    /// The registry does not accept our credentials (401 or 403).
    #[error("{message}; error code: {error_code}")]
    Forbidden { error_code: i64, message: String },
    /// No URL answered: unreachable, timed out, 5xx, or not the registry's JSON. The text
    /// says how (`timed out`, `answered 503 Service Unavailable: ...`).
    #[error("{0}")]
    Unavailable(String),
}

impl RegistryError {
    /// The registry does not have it: no such subject, version or schema under the subject.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::Rejected { status: 404, .. })
    }
}

/// A client of one registry (several URLs of it); cheap to clone, usable from any worker.
#[derive(Clone)]
pub struct SchemaRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    urls: Vec<String>,
    credentials: Option<(String, SecretString)>,
    request_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("urls", &self.inner.urls)
            .field(
                "basic_auth",
                &self.inner.credentials.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// The operations, as metric labels.
#[derive(Debug, Clone, Copy)]
enum Operation {
    ById,
    Lookup,
    Register,
    Version,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::ById => "by_id",
            Operation::Lookup => "lookup",
            Operation::Register => "register",
            Operation::Version => "version",
        }
    }
}

impl SchemaRegistry {
    /// A client of the configured registry; `None` when no URL is configured.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `schema_registry.ca_file` when it cannot be read or holds
    /// no certificate.
    pub fn new(
        settings: &SchemaRegistrySettings,
        metrics: Arc<Metrics>,
    ) -> Result<Option<SchemaRegistry>, ConfigError> {
        if !settings.enabled() {
            return Ok(None);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .user_agent(concat!("kafka-rest-proxy/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                ConfigError::invalid(
                    "schema_registry.ca_file",
                    format!("{}: {e}", path.display()),
                )
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    ConfigError::invalid(
                        "schema_registry.ca_file",
                        format!("{}: no PEM certificate in it", path.display()),
                    )
                })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|e| {
            ConfigError::invalid("schema_registry", format!("cannot build the client: {e}"))
        })?;
        let credentials = settings.basic_auth_user_info.as_ref().map(|info| {
            let (user, password) = info
                .expose_secret()
                .split_once(':')
                .unwrap_or((info.expose_secret(), ""));
            (user.to_owned(), SecretString::from(password))
        });
        Ok(Some(SchemaRegistry {
            inner: Arc::new(Inner {
                http,
                urls: settings.urls.clone(),
                credentials,
                request_timeout: Duration::from_millis(settings.request_timeout_ms),
                metrics,
            }),
        }))
    }

    /// `GET /schemas/ids/{id}`: the schema with this global id.
    ///
    /// # Errors
    /// [`RegistryError`]; an unknown id is `Rejected` with 404/40403.
    pub async fn schema_by_id(&self, id: i32) -> Result<SchemaText, RegistryError> {
        self.call(
            Operation::ById,
            Method::GET,
            &format!("/schemas/ids/{id}"),
            None,
        )
        .await
    }

    /// `POST /subjects/{subject}`: the id and version of `schema` under `subject`.
    ///
    /// # Errors
    /// [`RegistryError`]; not registered there is `Rejected` with 404 (40401 no such
    /// subject, 40403 no such schema under it).
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &SchemaText,
    ) -> Result<SubjectSchema, RegistryError> {
        let path = format!("/subjects/{}", encode_segment(subject));
        self.call(Operation::Lookup, Method::POST, &path, Some(schema))
            .await
    }

    /// `POST /subjects/{subject}/versions`: registers `schema` under `subject` (the
    /// registry's compatibility rules apply) and returns its global id.
    ///
    /// # Errors
    /// [`RegistryError`]; an incompatible or invalid schema is `Rejected` (409, 422).
    pub async fn register(&self, subject: &str, schema: &SchemaText) -> Result<i32, RegistryError> {
        #[derive(Deserialize)]
        struct Registered {
            id: i32,
        }
        let path = format!("/subjects/{}/versions", encode_segment(subject));
        let registered: Registered = self
            .call(Operation::Register, Method::POST, &path, Some(schema))
            .await?;
        Ok(registered.id)
    }

    /// `GET /subjects/{subject}/versions/{version}`.
    ///
    /// # Errors
    /// [`RegistryError`]; 404 (40401, 40402) when the subject or version does not exist.
    pub async fn version(
        &self,
        subject: &str,
        version: Version,
    ) -> Result<SubjectSchema, RegistryError> {
        let version = match version {
            Version::Latest => "latest".to_owned(),
            Version::Number(n) => n.to_string(),
        };
        let path = format!("/subjects/{}/versions/{version}", encode_segment(subject));
        self.call(Operation::Version, Method::GET, &path, None)
            .await
    }

    /// One call, each URL in turn until one gives the registry's answer.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        operation: Operation,
        method: Method,
        path: &str,
        body: Option<&SchemaText>,
    ) -> Result<T, RegistryError> {
        let started = Instant::now();
        let mut last = RegistryError::Unavailable("no URL configured".to_owned());
        for base in &self.inner.urls {
            match self.attempt(&method, base, path, body).await {
                Ok(answer) => {
                    self.observe(operation, "ok", started);
                    return Ok(answer);
                }
                Err(e @ RegistryError::Unavailable(_)) => {
                    tracing::warn!(url = %base, error = %e, "Schema Registry unavailable");
                    last = e;
                }
                Err(e) => {
                    let outcome = match e {
                        RegistryError::Forbidden { .. } => "forbidden",
                        _ => "rejected",
                    };
                    self.observe(operation, outcome, started);
                    return Err(e);
                }
            }
        }
        self.observe(operation, "unavailable", started);
        Err(last)
    }

    fn observe(&self, operation: Operation, outcome: &str, started: Instant) {
        let metrics = &self.inner.metrics;
        metrics
            .schema_registry_requests
            .with_label_values(&[operation.as_str(), outcome])
            .inc();
        metrics
            .schema_registry_request_duration
            .with_label_values(&[operation.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }

    async fn attempt<T: serde::de::DeserializeOwned>(
        &self,
        method: &Method,
        base: &str,
        path: &str,
        body: Option<&SchemaText>,
    ) -> Result<T, RegistryError> {
        let mut request = self
            .inner
            .http
            .request(method.clone(), format!("{base}{path}"))
            .header(ACCEPT, HeaderValue::from_static(MEDIA_TYPE));
        if let Some((user, password)) = &self.inner.credentials {
            request = request.basic_auth(user, Some(password.expose_secret()));
        }
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).expect("a schema serializes");
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE))
                .body(bytes);
        }
        let unavailable = |e: reqwest::Error| {
            RegistryError::Unavailable(if e.is_timeout() {
                // As the bound on the whole resolution says it.
                format!(
                    "no answer within {} ms",
                    self.inner.request_timeout.as_millis()
                )
            } else {
                without_url(&e)
            })
        };
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unavailable)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                RegistryError::Unavailable(format!("answered something that is not its JSON: {e}"))
            });
        }
        Err(refusal(status, &bytes))
    }
}

/// The error of a non-2xx answer, from the registry's `{"error_code", "message"}` body.
fn refusal(status: StatusCode, body: &[u8]) -> RegistryError {
    #[derive(Deserialize)]
    struct ErrorBody {
        error_code: i64,
        message: String,
    }
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        let message = parsed.map_or_else(String::new, |b| format!(": {}", b.message));
        return RegistryError::Unavailable(format!("answered {status}{message}"));
    }
    let (error_code, message) = parsed.map_or_else(
        || (i64::from(status.as_u16()), status.to_string()),
        |b| (b.error_code, b.message),
    );
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        RegistryError::Forbidden {
            error_code,
            message,
        }
    } else {
        RegistryError::Rejected {
            status: status.as_u16(),
            error_code,
            message,
        }
    }
}

/// A transport error's description without the URL (which a log reader already has).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

/// A subject as one path segment: subjects may hold `/`, `?` or `%`.
fn encode_segment(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for byte in subject.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_text_names_its_type_unless_avro() {
        let avro = SchemaText {
            schema_type: SchemaType::Avro,
            schema: "\"int\"".into(),
        };
        assert_eq!(
            serde_json::to_string(&avro).unwrap(),
            r#"{"schema":"\"int\""}"#
        );
        let proto = SchemaText {
            schema_type: SchemaType::Protobuf,
            schema: "message M {}".into(),
        };
        assert_eq!(
            serde_json::to_string(&proto).unwrap(),
            r#"{"schemaType":"PROTOBUF","schema":"message M {}"}"#
        );
        let read: SubjectSchema = serde_json::from_str(
            r#"{"subject":"t-value","id":3,"version":2,"schema":"{}","schemaType":"JSON"}"#,
        )
        .unwrap();
        assert_eq!(read.text.schema_type, SchemaType::Json);
        assert_eq!((read.id, read.version), (3, 2));
    }

    #[test]
    fn refusals_keep_the_registry_code_and_message() {
        let body = br#"{"error_code":40403,"message":"Schema not found"}"#;
        let e = refusal(StatusCode::NOT_FOUND, body);
        assert!(e.is_not_found());
        assert_eq!(e.to_string(), "Schema not found; error code: 40403");
        let e = refusal(
            StatusCode::UNAUTHORIZED,
            br#"{"error_code":401,"message":"Unauthorized"}"#,
        );
        assert!(matches!(
            e,
            RegistryError::Forbidden {
                error_code: 401,
                ..
            }
        ));
        let e = refusal(StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!(
            e,
            RegistryError::Unavailable("answered 502 Bad Gateway".into())
        );
        let e = refusal(StatusCode::CONFLICT, b"not json");
        assert_eq!(e.to_string(), "409 Conflict; error code: 409");
    }

    #[test]
    fn subjects_are_one_path_segment() {
        assert_eq!(encode_segment("orders-value"), "orders-value");
        assert_eq!(encode_segment("a/b c%"), "a%2Fb%20c%25");
    }
}
