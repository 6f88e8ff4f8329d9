//! The one place that knows Confluent error codes and HTTP statuses.
//!
//! Every error body is `{"error_code": <int>, "message": "<text>"}`; the HTTP status is the
//! code itself below 600, else the code divided by 100 (40401 -> 404, 50003 -> 500).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::{AuthError, Operation};
use crate::domain::InvalidTopicName;
use crate::formats::json_schema::{SchemaReport, Violation};
use crate::formats::{FormatError, NegotiationError};
use crate::kafka::{MetadataError, ProduceError};
use crate::limits::RateLimited;

/// The Content-Type of every API v2 response.
pub const V2_CONTENT_TYPE: &str = "application/vnd.kafka.v2+json";

/// A Confluent `error_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const BAD_REQUEST: ErrorCode = ErrorCode(400);
    pub const ROUTE_NOT_FOUND: ErrorCode = ErrorCode(404);
    pub const METHOD_NOT_ALLOWED: ErrorCode = ErrorCode(405);
    pub const NOT_ACCEPTABLE: ErrorCode = ErrorCode(406);
    pub const REQUEST_TIMEOUT: ErrorCode = ErrorCode(408);
    pub const PAYLOAD_TOO_LARGE: ErrorCode = ErrorCode(413);
    pub const UNSUPPORTED_MEDIA_TYPE: ErrorCode = ErrorCode(415);
    pub const UNPROCESSABLE: ErrorCode = ErrorCode(422);
    pub const TOO_MANY_REQUESTS: ErrorCode = ErrorCode(429);
    pub const SCHEMA_VIOLATION: ErrorCode = ErrorCode(42203);
    pub const KAFKA_AUTHENTICATION: ErrorCode = ErrorCode(40101);
    pub const KAFKA_AUTHORIZATION: ErrorCode = ErrorCode(40301);
    pub const TOPIC_NOT_FOUND: ErrorCode = ErrorCode(40401);
    pub const PARTITION_NOT_FOUND: ErrorCode = ErrorCode(40402);
    pub const SCHEMA_REGISTRY_NOT_CONFIGURED: ErrorCode = ErrorCode(42206);
    pub const KAFKA_ERROR: ErrorCode = ErrorCode(50002);
    pub const KAFKA_RETRIABLE_ERROR: ErrorCode = ErrorCode(50003);
    pub const NO_BROKER_AVAILABLE: ErrorCode = ErrorCode(50302);

    /// The HTTP status Confluent derives from the code.
    pub fn status(self) -> StatusCode {
        let status = if self.0 < 600 { self.0 } else { self.0 / 100 };
        StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Seconds a client should wait before retrying, for the codes where retrying helps.
    ///
    /// One second: the usual causes (a full local queue, a task draining for shutdown, a
    /// leader election) clear within that, and behind a load balancer the retry may reach
    /// another task.
    pub fn retry_after_secs(self) -> Option<u32> {
        match self {
            ErrorCode::KAFKA_RETRIABLE_ERROR | ErrorCode::NO_BROKER_AVAILABLE => Some(1),
            _ => None,
        }
    }
}

/// Every way an API request can fail as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("HTTP 404 Not Found")]
    RouteNotFound,
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    #[error("HTTP 406 Not Acceptable")]
    NotAcceptable,
    #[error("HTTP 415 Unsupported Media Type")]
    UnsupportedMediaType,
    #[error("Request body is larger than the limit of {limit} bytes.")]
    PayloadTooLarge { limit: usize },
    #[error("The request body did not arrive within {timeout_ms} ms.")]
    RequestTimeout { timeout_ms: u64 },
    #[error("Too many records: {count} in the request, the limit is {limit}.")]
    TooManyRecords { count: usize, limit: usize },
    #[error("Record {index} is {size} bytes (key + value), the limit is {limit} bytes.")]
    RecordTooLarge {
        index: usize,
        size: usize,
        limit: usize,
    },
    /// Some records do not match their topic's JSON Schema; the body lists the violations.
    #[error(
        "{} of {} records do not match the JSON Schema of topic '{}' ({} violations).",
        .0.invalid_records, .0.records, .0.topic, .0.violations.len() + .0.omitted
    )]
    SchemaViolations(Box<SchemaReport>),
    #[error(
        "Rate limit exceeded: {} {}/s ({} {}).",
        .0.per_second, .0.unit.as_str(), if .0.scope == "global" { "for this service" } else { "for" }, .0.scope
    )]
    RateLimited(RateLimited),
    /// Too much work in flight: shed before reading more.
    #[error("The service is overloaded; retry the request.")]
    Overloaded,
    /// The body is not JSON; the message says where.
    #[error("{0}")]
    MalformedJson(String),
    /// A record's data cannot be converted with its embedded format (e.g. bad base64).
    #[error("{0}")]
    InvalidData(String),
    /// The JSON is well formed but not a valid produce request.
    #[error("{0}")]
    InvalidEnvelope(String),
    #[error("Could not read the request body: {0}")]
    UnreadableBody(String),
    /// The path names no possible topic; Kafka would never have it.
    #[error("Topic not found: invalid topic name: {0}.")]
    InvalidTopicName(InvalidTopicName),
    #[error("Partition not found.")]
    PartitionNotFound,
    /// A schema embedded format was used; this service has no Schema Registry client.
    #[error("{0}")]
    SchemaRegistryNotConfigured(String),
    #[error("{0}")]
    Metadata(#[from] MetadataError),
    /// Missing or invalid credentials (401), or an address outside the allowlists (403).
    #[error("{0}")]
    Unauthenticated(AuthError),
    /// The policy grants the caller nothing for this topic.
    #[error("Not authorized to {} topic '{topic}'.", match .operation {
        Operation::Produce => "produce to",
        Operation::Describe => "describe",
    })]
    Forbidden { operation: Operation, topic: String },
    #[error("The service is shutting down; retry the request.")]
    ShuttingDown,
}

impl ApiError {
    /// The Confluent code of this error: the single mapping of the whole service.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::RouteNotFound => ErrorCode::ROUTE_NOT_FOUND,
            ApiError::MethodNotAllowed => ErrorCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable => ErrorCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType => ErrorCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout { .. } => ErrorCode::REQUEST_TIMEOUT,
            ApiError::TooManyRecords { .. } | ApiError::RecordTooLarge { .. } => {
                ErrorCode::UNPROCESSABLE
            }
            ApiError::SchemaViolations(_) => ErrorCode::SCHEMA_VIOLATION,
            ApiError::RateLimited(_) => ErrorCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded => ErrorCode::NO_BROKER_AVAILABLE,
            ApiError::MalformedJson(_) | ApiError::InvalidData(_) | ApiError::UnreadableBody(_) => {
                ErrorCode::BAD_REQUEST
            }
            ApiError::InvalidEnvelope(_) => ErrorCode::UNPROCESSABLE,
            ApiError::InvalidTopicName(_) => ErrorCode::TOPIC_NOT_FOUND,
            ApiError::PartitionNotFound => ErrorCode::PARTITION_NOT_FOUND,
            ApiError::SchemaRegistryNotConfigured(_) => ErrorCode::SCHEMA_REGISTRY_NOT_CONFIGURED,
            ApiError::Metadata(e) => metadata_error_code(e),
            ApiError::Unauthenticated(AuthError::AddressNotAllowed)
            | ApiError::Forbidden { .. } => ErrorCode::KAFKA_AUTHORIZATION,
            ApiError::Unauthenticated(_) => ErrorCode::KAFKA_AUTHENTICATION,
            ApiError::ShuttingDown => ErrorCode::NO_BROKER_AVAILABLE,
        }
    }
}

impl From<NegotiationError> for ApiError {
    fn from(error: NegotiationError) -> Self {
        match error {
            NegotiationError::UnsupportedMediaType => ApiError::UnsupportedMediaType,
            NegotiationError::NotAcceptable => ApiError::NotAcceptable,
            NegotiationError::SchemaFormat(_) => {
                ApiError::SchemaRegistryNotConfigured(format!("{error}."))
            }
        }
    }
}

impl From<FormatError> for ApiError {
    fn from(error: FormatError) -> Self {
        match error {
            FormatError::Malformed(m) => ApiError::MalformedJson(m),
            FormatError::Envelope(m) => ApiError::InvalidEnvelope(m),
            FormatError::Data(m) => ApiError::InvalidData(m),
            FormatError::NegativePartition => ApiError::PartitionNotFound,
        }
    }
}

/// The HTTP status of a produce response, from each record's error code (`None` = written).
///
/// Confluent's rule: 401 if any record failed authentication, else 403 if any failed
/// authorization, else 200. Ours adds: when no record was written, the status of the first
/// failure, so a partner is never told 200 for a request that wrote nothing.
pub fn produce_status(record_codes: &[Option<ErrorCode>]) -> ErrorCodeOrOk {
    let failed = || record_codes.iter().flatten();
    if let Some(code) = failed().find(|c| **c == ErrorCode::KAFKA_AUTHENTICATION) {
        return ErrorCodeOrOk::Failed(*code);
    }
    if let Some(code) = failed().find(|c| **c == ErrorCode::KAFKA_AUTHORIZATION) {
        return ErrorCodeOrOk::Failed(*code);
    }
    if record_codes.iter().all(Option::is_some) {
        if let Some(first) = failed().next() {
            return ErrorCodeOrOk::Failed(*first);
        }
    }
    ErrorCodeOrOk::Ok
}

/// The outcome [`produce_status`] derives for a whole produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCodeOrOk {
    Ok,
    /// The status and `Retry-After` hint come from this code.
    Failed(ErrorCode),
}

/// The code of a metadata lookup failure.
fn metadata_error_code(error: &MetadataError) -> ErrorCode {
    match error {
        MetadataError::UnknownTopic => ErrorCode::TOPIC_NOT_FOUND,
        MetadataError::UnknownPartition => ErrorCode::PARTITION_NOT_FOUND,
        MetadataError::Authentication(_) => ErrorCode::KAFKA_AUTHENTICATION,
        MetadataError::Authorization(_) => ErrorCode::KAFKA_AUTHORIZATION,
        MetadataError::Unavailable(_) => ErrorCode::NO_BROKER_AVAILABLE,
        MetadataError::Fatal(_) => ErrorCode::KAFKA_ERROR,
    }
}

/// The code of one record's failure, as written into its `offsets` entry.
pub fn record_error_code(error: &ProduceError) -> ErrorCode {
    match error {
        ProduceError::Retriable(_) => ErrorCode::KAFKA_RETRIABLE_ERROR,
        ProduceError::NonRetriable(_) => ErrorCode::KAFKA_ERROR,
        ProduceError::QueueFull => ErrorCode::NO_BROKER_AVAILABLE,
        ProduceError::Authentication(_) => ErrorCode::KAFKA_AUTHENTICATION,
        ProduceError::Authorization(_) => ErrorCode::KAFKA_AUTHORIZATION,
        ProduceError::UnknownTopic => ErrorCode::TOPIC_NOT_FOUND,
        ProduceError::UnknownPartition => ErrorCode::PARTITION_NOT_FOUND,
    }
}

/// The Confluent error envelope.
#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub error_code: ErrorCode,
    pub message: &'a str,
}

/// Builds an error response in the envelope, with `Retry-After` where retrying helps.
pub fn error_response(code: ErrorCode, message: &str) -> HttpResponse {
    let mut response = HttpResponse::build(code.status());
    response.insert_header((header::CONTENT_TYPE, V2_CONTENT_TYPE));
    if let Some(secs) = code.retry_after_secs() {
        response.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
    }
    let body = serde_json::to_vec(&ErrorBody {
        error_code: code,
        message,
    })
    .expect("the error envelope always serializes");
    let mut response = response.body(body);
    // For the access log and metrics, which see responses, not errors.
    response.extensions_mut().insert(code);
    response
}

/// The 42203 envelope: `error_code` and `message` as always, plus every violation (up to
/// the configured cap) and how many were left out. Confluent clients ignore the extra
/// fields.
fn schema_violations_response(error: &ApiError, report: &SchemaReport) -> HttpResponse {
    #[derive(Serialize)]
    struct Body<'a> {
        error_code: ErrorCode,
        message: String,
        violations: &'a [Violation],
        violations_omitted: usize,
    }
    let code = error.code();
    let body = serde_json::to_vec(&Body {
        error_code: code,
        message: error.to_string(),
        violations: &report.violations,
        violations_omitted: report.omitted,
    })
    .expect("the violations envelope serializes");
    let mut response = HttpResponse::build(code.status())
        .insert_header((header::CONTENT_TYPE, V2_CONTENT_TYPE))
        .body(body);
    response.extensions_mut().insert(code);
    response
}

/// RFC 6750 §3: no error code when no credentials were sent, `invalid_token` otherwise.
fn www_authenticate(error: &AuthError) -> HeaderValue {
    let value = match error {
        AuthError::MissingCredentials => r#"Bearer realm="kafka-rest-proxy""#.to_owned(),
        other => format!(
            r#"Bearer realm="kafka-rest-proxy", error="invalid_token", error_description="{}""#,
            other.to_string().replace('"', "'")
        ),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code().status()
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::SchemaViolations(report) = self {
            return schema_violations_response(self, report);
        }
        let mut response = error_response(self.code(), &self.to_string());
        match self {
            ApiError::RateLimited(limited) => {
                let headers = response.headers_mut();
                let wait = limited.retry_after.as_secs_f64().ceil().max(1.0) as u64;
                headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
                for (name, value) in [
                    ("ratelimit-limit", u64::from(limited.burst)),
                    ("ratelimit-remaining", 0),
                    ("ratelimit-reset", wait),
                ] {
                    headers.insert(
                        header::HeaderName::from_static(name),
                        HeaderValue::from(value),
                    );
                }
            }
            ApiError::ShuttingDown | ApiError::RequestTimeout { .. } => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ApiError::Unauthenticated(e) if self.code() == ErrorCode::KAFKA_AUTHENTICATION => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, www_authenticate(e));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_statuses_and_retry_hints() {
        let table = [
            (ApiError::RouteNotFound, 404, 404, None),
            (ApiError::MethodNotAllowed, 405, 405, None),
            (ApiError::NotAcceptable, 406, 406, None),
            (ApiError::UnsupportedMediaType, 415, 415, None),
            (ApiError::PayloadTooLarge { limit: 1 }, 413, 413, None),
            (ApiError::MalformedJson(String::new()), 400, 400, None),
            (ApiError::InvalidData(String::new()), 400, 400, None),
            (ApiError::InvalidEnvelope(String::new()), 422, 422, None),
            (ApiError::UnreadableBody(String::new()), 400, 400, None),
            (
                ApiError::InvalidTopicName(InvalidTopicName::Dots),
                40401,
                404,
                None,
            ),
            (ApiError::PartitionNotFound, 40402, 404, None),
            (
                ApiError::SchemaRegistryNotConfigured(String::new()),
                42206,
                422,
                None,
            ),
            (
                ApiError::Metadata(MetadataError::UnknownTopic),
                40401,
                404,
                None,
            ),
            (
                ApiError::Metadata(MetadataError::Authentication(String::new())),
                40101,
                401,
                None,
            ),
            (
                ApiError::Metadata(MetadataError::Authorization(String::new())),
                40301,
                403,
                None,
            ),
            (
                ApiError::Metadata(MetadataError::Unavailable(String::new())),
                50302,
                503,
                Some(1),
            ),
            (
                ApiError::Metadata(MetadataError::Fatal(String::new())),
                50002,
                500,
                None,
            ),
            (
                ApiError::Unauthenticated(AuthError::TokenExpired),
                40101,
                401,
                None,
            ),
            (
                ApiError::Unauthenticated(AuthError::AddressNotAllowed),
                40301,
                403,
                None,
            ),
            (
                ApiError::Forbidden {
                    operation: Operation::Produce,
                    topic: "t".into(),
                },
                40301,
                403,
                None,
            ),
            (ApiError::ShuttingDown, 50302, 503, Some(1)),
            (ApiError::Overloaded, 50302, 503, Some(1)),
            (ApiError::RequestTimeout { timeout_ms: 1 }, 408, 408, None),
            (
                ApiError::TooManyRecords { count: 2, limit: 1 },
                422,
                422,
                None,
            ),
            (
                ApiError::RecordTooLarge {
                    index: 0,
                    size: 2,
                    limit: 1,
                },
                422,
                422,
                None,
            ),
        ];
        for (error, code, status, retry) in table {
            assert_eq!(error.code(), ErrorCode(code), "{error:?}");
            assert_eq!(error.status_code().as_u16(), status, "{error:?}");
            assert_eq!(error.code().retry_after_secs(), retry, "{error:?}");
        }
    }

    #[test]
    fn record_errors_map_to_confluent_codes() {
        let table = [
            (ProduceError::Retriable(String::new()), 50003),
            (ProduceError::NonRetriable(String::new()), 50002),
            (ProduceError::QueueFull, 50302),
            (ProduceError::Authentication(String::new()), 40101),
            (ProduceError::Authorization(String::new()), 40301),
            (ProduceError::UnknownTopic, 40401),
            (ProduceError::UnknownPartition, 40402),
        ];
        for (error, code) in table {
            assert_eq!(record_error_code(&error), ErrorCode(code), "{error:?}");
        }
    }

    #[test]
    fn produce_status_rules() {
        let ok = None;
        let timeout = Some(ErrorCode::KAFKA_RETRIABLE_ERROR);
        let auth = Some(ErrorCode::KAFKA_AUTHENTICATION);
        let denied = Some(ErrorCode::KAFKA_AUTHORIZATION);
        let full = Some(ErrorCode::NO_BROKER_AVAILABLE);
        let fatal = Some(ErrorCode::KAFKA_ERROR);
        let failed = ErrorCodeOrOk::Failed;
        let table = [
            (vec![ok, ok], ErrorCodeOrOk::Ok),
            (vec![ok, timeout], ErrorCodeOrOk::Ok),
            (vec![ok, denied], failed(ErrorCode::KAFKA_AUTHORIZATION)),
            (vec![denied, auth], failed(ErrorCode::KAFKA_AUTHENTICATION)),
            (
                vec![timeout, timeout],
                failed(ErrorCode::KAFKA_RETRIABLE_ERROR),
            ),
            (vec![full, fatal], failed(ErrorCode::NO_BROKER_AVAILABLE)),
            (vec![fatal], failed(ErrorCode::KAFKA_ERROR)),
        ];
        for (codes, expected) in table {
            assert_eq!(produce_status(&codes), expected, "{codes:?}");
        }
    }

    #[test]
    fn unauthenticated_responses_carry_www_authenticate() {
        let response = ApiError::Unauthenticated(AuthError::MissingCredentials).error_response();
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            r#"Bearer realm="kafka-rest-proxy""#
        );
        let response = ApiError::Unauthenticated(AuthError::WrongAudience).error_response();
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            r#"Bearer realm="kafka-rest-proxy", error="invalid_token", error_description="The token's audience is not accepted.""#
        );
        let response = ApiError::Unauthenticated(AuthError::AddressNotAllowed).error_response();
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn envelope_bytes() {
        let response = ApiError::Metadata(MetadataError::UnknownTopic).error_response();
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            V2_CONTENT_TYPE
        );
        let body = serde_json::to_string(&ErrorBody {
            error_code: ErrorCode::TOPIC_NOT_FOUND,
            message: "Topic not found.",
        })
        .unwrap();
        assert_eq!(body, r#"{"error_code":40401,"message":"Topic not found."}"#);
    }
}
