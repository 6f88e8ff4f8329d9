//! The one place that knows Confluent error codes: every layer's error becomes an
//! [`ApiError`], whose code comes from one `match`; the code gives the HTTP status (the code
//! itself below 600, else the code divided by 100: 40401 -> 404, 50003 -> 500); the
//! envelope is `{"error_code": <int>, "message": "<text>"}`. Nothing here is specific to
//! one API: each adapter in `http/` renders these in its own Content-Type.

use actix_web::http::StatusCode;
use serde::Serialize;

use crate::auth::{AuthError, Operation};
use crate::domain::InvalidTopicName;
use crate::formats::schema::Side;
use crate::formats::v3::batch::{BatchError, BatchRefused};
use crate::formats::{FormatError, NegotiationError, SchemaError};
use crate::idempotency::{KeyError, Refusal};
use crate::kafka::{MetadataError, ProduceError};
use crate::limits::{BodyError, Overloaded, RateLimited, RecordLimitError};
use crate::validation::{BinaryNotValidated, SchemaReport};

/// A Confluent `error_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const BAD_REQUEST: ErrorCode = ErrorCode(400);
    pub const FORBIDDEN: ErrorCode = ErrorCode(403);
    /// No such route; in v3 also no such cluster or partition, as Confluent answers them.
    pub const ROUTE_NOT_FOUND: ErrorCode = ErrorCode(404);
    pub const METHOD_NOT_ALLOWED: ErrorCode = ErrorCode(405);
    pub const NOT_ACCEPTABLE: ErrorCode = ErrorCode(406);
    pub const REQUEST_TIMEOUT: ErrorCode = ErrorCode(408);
    /// Ours: a request with this `Idempotency-Key` is still running.
    pub const CONFLICT: ErrorCode = ErrorCode(409);
    pub const PAYLOAD_TOO_LARGE: ErrorCode = ErrorCode(413);
    pub const UNSUPPORTED_MEDIA_TYPE: ErrorCode = ErrorCode(415);
    pub const UNPROCESSABLE: ErrorCode = ErrorCode(422);
    pub const TOO_MANY_REQUESTS: ErrorCode = ErrorCode(429);
    pub const SCHEMA_VIOLATION: ErrorCode = ErrorCode(42203);
    pub const KAFKA_AUTHENTICATION: ErrorCode = ErrorCode(40101);
    pub const KAFKA_AUTHORIZATION: ErrorCode = ErrorCode(40301);
    pub const TOPIC_NOT_FOUND: ErrorCode = ErrorCode(40401);
    pub const PARTITION_NOT_FOUND: ErrorCode = ErrorCode(40402);
    /// v3: Kafka's UNKNOWN_TOPIC_OR_PARTITION, for a topic that does not exist.
    pub const UNKNOWN_TOPIC_OR_PARTITION: ErrorCode = ErrorCode(40403);
    pub const KEY_SCHEMA_MISSING: ErrorCode = ErrorCode(42201);
    pub const VALUE_SCHEMA_MISSING: ErrorCode = ErrorCode(42202);
    pub const INVALID_SCHEMA: ErrorCode = ErrorCode(42205);
    pub const SCHEMA_REGISTRY_NOT_CONFIGURED: ErrorCode = ErrorCode(42206);
    /// Confluent's "Payload error." code, also for an API v3 stream without a record.
    pub const INVALID_PAYLOAD: ErrorCode = ErrorCode(42206);
    pub const SCHEMA_SERIALIZATION: ErrorCode = ErrorCode(42207);
    /// An API v3 batch that breaks the batch rules (ids, count).
    pub const PRODUCE_BATCH: ErrorCode = ErrorCode(42208);
    pub const KAFKA_ERROR: ErrorCode = ErrorCode(50002);
    pub const KAFKA_RETRIABLE_ERROR: ErrorCode = ErrorCode(50003);
    pub const NO_BROKER_AVAILABLE: ErrorCode = ErrorCode(50302);
    /// Ours: the Schema Registry is unreachable, timed out or failing.
    pub const SCHEMA_REGISTRY_UNAVAILABLE: ErrorCode = ErrorCode(50303);
    /// Ours: the idempotency store is unreachable (`on_store_error = "reject"`).
    pub const IDEMPOTENCY_STORE_UNAVAILABLE: ErrorCode = ErrorCode(50304);

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
            ErrorCode::KAFKA_RETRIABLE_ERROR
            | ErrorCode::NO_BROKER_AVAILABLE
            | ErrorCode::SCHEMA_REGISTRY_UNAVAILABLE
            | ErrorCode::IDEMPOTENCY_STORE_UNAVAILABLE
            | ErrorCode::CONFLICT => Some(1),
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
    /// Too many records, or a record too large (422).
    #[error(transparent)]
    RecordLimit(#[from] RecordLimitError),
    /// Some records do not match their topic's JSON Schema; the body lists the violations.
    #[error(
        "{} of {} records do not match the JSON Schema of topic '{}' ({} violations).",
        .0.invalid_records, .0.records, .0.topic, .0.violations.len() + .0.omitted
    )]
    SchemaViolations(Box<SchemaReport>),
    /// Binary records to a topic with a JSON Schema that does not allow them.
    #[error("{0}")]
    BinaryNotValidated(#[from] BinaryNotValidated),
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
    /// v3: the path names a cluster other than the one this service serves.
    #[error("Cluster {0} cannot be found.")]
    ClusterNotFound(String),
    /// v3: the topic does not exist (Confluent relays Kafka's UNKNOWN_TOPIC_OR_PARTITION),
    /// naming the partition when one was asked for, in Confluent's words.
    #[error("{}", match .partition {
        None => "This server does not host this topic-partition.".to_owned(),
        Some(p) => format!("This server does not host topic-partition {p} for topic {}", .topic),
    })]
    TopicNotHosted {
        topic: String,
        partition: Option<i32>,
    },
    /// v3: a topic's partition that does not exist: JAX-RS's bare not-found, as Confluent
    /// answers it.
    #[error("HTTP 404 Not Found")]
    ResourceNotFound,
    /// A Schema Registry format's schema cannot be resolved or used.
    #[error("{0}")]
    Schema(SchemaError),
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
    /// A CORS preflight that the `[cors]` settings do not allow (403), or that is not a
    /// well-formed preflight (400).
    #[error("CORS preflight refused: {reason}")]
    CorsPreflight { reason: String, malformed: bool },
    /// An API v3 body in another charset than UTF-8 (JSON is UTF-8, RFC 8259).
    #[error("Unsupported charset '{0}': the request body must be UTF-8.")]
    UnsupportedCharset(String),
    /// An API v3 stream without a record, in Confluent's words.
    #[error("Payload error. Request body is empty. Data is required.")]
    EmptyStream,
    /// An API v3 record that is not of the record's shape (a line of its own in a stream).
    #[error("{0}")]
    InvalidRecord(String),
    /// A record of an API v3 stream larger than `server.max_body_bytes`: the stream ends.
    #[error("A record is larger than the limit of {limit} bytes.")]
    RecordTooLarge { limit: usize },
    /// A record read after `streaming.max_duration_ms`, in Confluent's words.
    #[error("Streaming connection open for longer than allowed: Connection will be closed.")]
    StreamExpired,
    /// An API v3 batch that breaks the batch rules (42208).
    #[error("{0}")]
    Batch(#[from] BatchError),
    /// A malformed `Idempotency-Key`, or none where the policy requires one.
    #[error("{0}")]
    IdempotencyKey(#[from] KeyError),
    /// The `Idempotency-Key` cannot be used for this request now (409, 422, 503).
    #[error("{0}")]
    Idempotency(#[from] Refusal),
    /// One record that Kafka did not take (an API v3 record's result; v2 writes these in
    /// `offsets`).
    #[error("{0}")]
    RecordFailed(ProduceError),
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
            ApiError::RecordLimit(_) => ErrorCode::UNPROCESSABLE,
            ApiError::SchemaViolations(_) => ErrorCode::SCHEMA_VIOLATION,
            ApiError::BinaryNotValidated(_) => ErrorCode::UNPROCESSABLE,
            ApiError::RateLimited(_) => ErrorCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded => ErrorCode::NO_BROKER_AVAILABLE,
            ApiError::MalformedJson(_) | ApiError::InvalidData(_) | ApiError::UnreadableBody(_) => {
                ErrorCode::BAD_REQUEST
            }
            ApiError::InvalidEnvelope(_) => ErrorCode::UNPROCESSABLE,
            ApiError::InvalidTopicName(_) => ErrorCode::TOPIC_NOT_FOUND,
            ApiError::PartitionNotFound => ErrorCode::PARTITION_NOT_FOUND,
            ApiError::ClusterNotFound(_) | ApiError::ResourceNotFound => ErrorCode::ROUTE_NOT_FOUND,
            ApiError::TopicNotHosted { .. } => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            ApiError::Schema(e) => schema_error_code(e),
            ApiError::Metadata(e) => metadata_error_code(e),
            ApiError::Unauthenticated(AuthError::AddressNotAllowed)
            | ApiError::Forbidden { .. } => ErrorCode::KAFKA_AUTHORIZATION,
            ApiError::Unauthenticated(_) => ErrorCode::KAFKA_AUTHENTICATION,
            ApiError::ShuttingDown => ErrorCode::NO_BROKER_AVAILABLE,
            ApiError::CorsPreflight {
                malformed: true, ..
            } => ErrorCode::BAD_REQUEST,
            ApiError::CorsPreflight {
                malformed: false, ..
            } => ErrorCode::FORBIDDEN,
            ApiError::UnsupportedCharset(_) | ApiError::InvalidRecord(_) => ErrorCode::BAD_REQUEST,
            ApiError::EmptyStream => ErrorCode::INVALID_PAYLOAD,
            ApiError::RecordTooLarge { .. } => ErrorCode::PAYLOAD_TOO_LARGE,
            ApiError::StreamExpired => ErrorCode::REQUEST_TIMEOUT,
            ApiError::Batch(_) => ErrorCode::PRODUCE_BATCH,
            ApiError::IdempotencyKey(_) => ErrorCode::BAD_REQUEST,
            ApiError::Idempotency(Refusal::Mismatch) => ErrorCode::UNPROCESSABLE,
            ApiError::Idempotency(Refusal::InProgress) => ErrorCode::CONFLICT,
            ApiError::Idempotency(Refusal::StoreUnavailable) => {
                ErrorCode::IDEMPOTENCY_STORE_UNAVAILABLE
            }
            ApiError::RecordFailed(e) => record_error_code(e),
        }
    }
}

impl From<BatchRefused> for ApiError {
    fn from(refused: BatchRefused) -> Self {
        match refused {
            BatchRefused::Batch(e) => e.into(),
            BatchRefused::Format(e) => e.into(),
        }
    }
}

impl From<NegotiationError> for ApiError {
    fn from(error: NegotiationError) -> Self {
        match error {
            NegotiationError::UnsupportedMediaType => ApiError::UnsupportedMediaType,
            NegotiationError::NotAcceptable => ApiError::NotAcceptable,
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
            BodyError::Timeout { timeout_ms } => ApiError::RequestTimeout { timeout_ms },
            BodyError::Unreadable(why) => ApiError::UnreadableBody(why),
            BodyError::Shed => ApiError::Overloaded,
        }
    }
}

impl From<Overloaded> for ApiError {
    fn from(_: Overloaded) -> Self {
        ApiError::Overloaded
    }
}

impl From<RateLimited> for ApiError {
    fn from(limited: RateLimited) -> Self {
        ApiError::RateLimited(limited)
    }
}

impl From<SchemaReport> for ApiError {
    fn from(report: SchemaReport) -> Self {
        ApiError::SchemaViolations(Box::new(report))
    }
}

impl From<FormatError> for ApiError {
    fn from(error: FormatError) -> Self {
        match error {
            FormatError::Malformed(m) => ApiError::MalformedJson(m),
            FormatError::Envelope(m) => ApiError::InvalidEnvelope(m),
            FormatError::Data(m) => ApiError::InvalidData(m),
            FormatError::TooManyRecords { count, limit } => {
                ApiError::RecordLimit(RecordLimitError::TooMany { count, limit })
            }
            FormatError::NegativePartition => ApiError::PartitionNotFound,
            FormatError::Schema(e) => ApiError::Schema(e),
            FormatError::Record(m) => ApiError::InvalidRecord(m),
        }
    }
}

/// The code of a schema resolution failure.
fn schema_error_code(error: &SchemaError) -> ErrorCode {
    match error {
        SchemaError::NotConfigured => ErrorCode::SCHEMA_REGISTRY_NOT_CONFIGURED,
        SchemaError::Missing(Side::Key) => ErrorCode::KEY_SCHEMA_MISSING,
        SchemaError::Missing(Side::Value) => ErrorCode::VALUE_SCHEMA_MISSING,
        SchemaError::TextAndId(_) | SchemaError::IdOutOfRange(_) => ErrorCode::UNPROCESSABLE,
        SchemaError::StrategyNeedsSchema(_)
        | SchemaError::Nameless(_)
        | SchemaError::NoSuchVersion { .. } => ErrorCode::BAD_REQUEST,
        SchemaError::Invalid(_) => ErrorCode::INVALID_SCHEMA,
        SchemaError::Serialization(_) => ErrorCode::SCHEMA_SERIALIZATION,
        SchemaError::Forbidden(_) => ErrorCode::KAFKA_AUTHORIZATION,
        SchemaError::Unavailable(_) => ErrorCode::SCHEMA_REGISTRY_UNAVAILABLE,
    }
}

/// The code of a metadata lookup failure.
fn metadata_error_code(error: &MetadataError) -> ErrorCode {
    match error {
        MetadataError::UnknownTopic => ErrorCode::TOPIC_NOT_FOUND,
        MetadataError::UnknownPartition => ErrorCode::PARTITION_NOT_FOUND,
        MetadataError::Authentication(_) => ErrorCode::KAFKA_AUTHENTICATION,
        MetadataError::Authorization(_) => ErrorCode::KAFKA_AUTHORIZATION,
        MetadataError::Unavailable(_) => ErrorCode::NO_BROKER_AVAILABLE,
        MetadataError::Fatal(_) | MetadataError::NoClusterId => ErrorCode::KAFKA_ERROR,
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

impl ErrorBody<'_> {
    /// The envelope's JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the error envelope always serializes")
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
            (
                ApiError::BinaryNotValidated(BinaryNotValidated { topic: "t".into() }),
                422,
                422,
                None,
            ),
            (ApiError::UnreadableBody(String::new()), 400, 400, None),
            (
                ApiError::InvalidTopicName(InvalidTopicName::Dots),
                40401,
                404,
                None,
            ),
            (ApiError::PartitionNotFound, 40402, 404, None),
            (ApiError::ClusterNotFound("c".into()), 404, 404, None),
            (
                ApiError::TopicNotHosted {
                    topic: "t".into(),
                    partition: None,
                },
                40403,
                404,
                None,
            ),
            (ApiError::ResourceNotFound, 404, 404, None),
            (
                ApiError::Metadata(MetadataError::NoClusterId),
                50002,
                500,
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
            (
                ApiError::Schema(SchemaError::NotConfigured),
                42206,
                422,
                None,
            ),
            (
                ApiError::Schema(SchemaError::Missing(Side::Key)),
                42201,
                422,
                None,
            ),
            (
                ApiError::Schema(SchemaError::Missing(Side::Value)),
                42202,
                422,
                None,
            ),
            (
                ApiError::Schema(SchemaError::TextAndId(Side::Key)),
                422,
                422,
                None,
            ),
            (
                ApiError::Schema(SchemaError::Invalid(String::new())),
                42205,
                422,
                None,
            ),
            (
                ApiError::Schema(SchemaError::Serialization(String::new())),
                42207,
                422,
                None,
            ),
            (
                ApiError::Schema(SchemaError::Forbidden(String::new())),
                40301,
                403,
                None,
            ),
            (
                ApiError::Schema(SchemaError::Unavailable(String::new())),
                50303,
                503,
                Some(1),
            ),
            (ApiError::Overloaded, 50302, 503, Some(1)),
            (
                ApiError::UnsupportedCharset("latin1".into()),
                400,
                400,
                None,
            ),
            (ApiError::EmptyStream, 42206, 422, None),
            (ApiError::InvalidRecord(String::new()), 400, 400, None),
            (ApiError::StreamExpired, 408, 408, None),
            (ApiError::RecordTooLarge { limit: 1 }, 413, 413, None),
            (ApiError::Batch(BatchError::TooMany), 42208, 422, None),
            (
                ApiError::RecordFailed(ProduceError::QueueFull),
                50302,
                503,
                Some(1),
            ),
            (
                ApiError::Schema(SchemaError::NoSuchVersion {
                    subject: "s".into(),
                    version: 2,
                }),
                400,
                400,
                None,
            ),
            (ApiError::RequestTimeout { timeout_ms: 1 }, 408, 408, None),
            (
                ApiError::RecordLimit(RecordLimitError::TooMany { count: 2, limit: 1 }),
                422,
                422,
                None,
            ),
            (
                ApiError::RecordLimit(RecordLimitError::TooLarge {
                    index: 0,
                    size: 2,
                    limit: 1,
                }),
                422,
                422,
                None,
            ),
            (
                ApiError::CorsPreflight {
                    reason: String::new(),
                    malformed: false,
                },
                403,
                403,
                None,
            ),
            (
                ApiError::CorsPreflight {
                    reason: String::new(),
                    malformed: true,
                },
                400,
                400,
                None,
            ),
        ];
        for (error, code, status, retry) in table {
            assert_eq!(error.code(), ErrorCode(code), "{error:?}");
            assert_eq!(error.code().status().as_u16(), status, "{error:?}");
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
    fn v3_not_found_messages_are_confluents() {
        let messages = [
            (
                ApiError::ClusterNotFound("foo".into()),
                "Cluster foo cannot be found.",
            ),
            (
                ApiError::TopicNotHosted {
                    topic: "t".into(),
                    partition: None,
                },
                "This server does not host this topic-partition.",
            ),
            (
                ApiError::TopicNotHosted {
                    topic: "t".into(),
                    partition: Some(3),
                },
                "This server does not host topic-partition 3 for topic t",
            ),
            (ApiError::ResourceNotFound, "HTTP 404 Not Found"),
        ];
        for (error, message) in messages {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn envelope_bytes() {
        let body = ErrorBody {
            error_code: ErrorCode::TOPIC_NOT_FOUND,
            message: "Topic not found.",
        }
        .to_vec();
        assert_eq!(
            body,
            br#"{"error_code":40401,"message":"Topic not found."}"#
        );
    }
}
