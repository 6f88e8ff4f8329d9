//! How a record's key and value are written in a request, and how they become Kafka bytes:
//! parse -> resolve -> encode.
//!
//! - parse: the v2 envelope ([`envelope`]) is read at the edge into raw JSON keys and values
//!   and typed schema references ([`SchemaRef`]);
//! - resolve ([`resolve`], async): the embedded format and the schema references become an
//!   [`Encoders`] pair. Trivial for json and binary; the Schema Registry formats (avro,
//!   jsonschema, protobuf) resolve their schemas in the registry ([`schema`], cached);
//! - encode ([`Encoders::encode`]): every record's key and value become bytes, before
//!   anything is produced, so one bad record fails the whole request.
//!
//! [`read_v2`] runs the three for a v2 body. For json and binary, which resolve to nothing,
//! they are one pass: each record is encoded as the envelope reader reaches it, and a
//! compact json value is a slice of the body ([`share`]) rather than a copy.
//!
//! [`media`] negotiates `Content-Type` and `Accept`; [`raw`] names the JSON kinds in
//! messages. The schema-directed encoders: [`avro`], [`json_schema`], [`protobuf`]. API v3
//! records, which name a type and a schema per key and value, are read and encoded by
//! [`v3`].

pub mod avro;
pub mod binary;
#[cfg(test)]
mod counting_alloc;
pub mod encode;
pub mod envelope;
pub mod json;
pub mod json_schema;
pub mod media;
pub mod protobuf;
pub mod raw;
pub mod schema;
pub mod v3;

pub use encode::{read_v2, resolve, Encoders};
pub use envelope::{RawRecord, V2Request};
pub use media::{check_accept, request_format, NegotiationError};
pub use schema::{SchemaError, SchemaFormats};

use bytes::Bytes;

/// `part` as a slice of `body` when it lies within it, sharing its memory (no copy, no
/// allocation), else a copy of its own.
pub fn share(body: &Bytes, part: &[u8]) -> Bytes {
    let within = body.as_ptr_range();
    let range = part.as_ptr_range();
    if within.start <= range.start && range.end <= within.end {
        body.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}

/// How the keys and values of a v2 produce request are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbeddedFormat {
    /// Any JSON value, written to Kafka as compact JSON bytes.
    Json,
    /// A base64 string, written as the bytes it encodes.
    Binary,
    /// Avro through a Schema Registry.
    Avro,
    /// JSON Schema through a Schema Registry.
    JsonSchema,
    /// Protobuf through a Schema Registry.
    Protobuf,
}

impl EmbeddedFormat {
    /// A bounded label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EmbeddedFormat::Json => "json",
            EmbeddedFormat::Binary => "binary",
            EmbeddedFormat::Avro => "avro",
            EmbeddedFormat::JsonSchema => "jsonschema",
            EmbeddedFormat::Protobuf => "protobuf",
        }
    }
}

/// A reference to the schema of a request's keys or of its values, as the v2 envelope
/// gives it (`key_schema` / `key_schema_id`, `value_schema` / `value_schema_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaRef {
    /// The schema's text.
    pub text: Option<String>,
    /// A Schema Registry id.
    pub id: Option<i64>,
}

/// Why a key or value does not fit its schema: where, as a path below the key or value
/// (`.address.zip`, `.items[3]`; empty for the whole value), and what (`expected int, got
/// string`). The caller puts the record in front: `records[2].value.address.zip: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    pub path: String,
    pub message: String,
}

impl DataError {
    /// An error at the top of the value.
    pub fn new(message: impl Into<String>) -> DataError {
        DataError {
            path: String::new(),
            message: message.into(),
        }
    }

    /// The same error, one level further out: `segment` is `.field` or `[index]`.
    #[must_use]
    pub fn within(mut self, segment: &str) -> DataError {
        self.path.insert_str(0, segment);
        self
    }
}

/// Why a request body cannot be turned into records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not JSON at all (400).
    #[error("{0}")]
    Malformed(String),
    /// JSON, but not the shape of a produce request (422).
    #[error("{0}")]
    Envelope(String),
    /// A key or value that the embedded format cannot convert (400).
    #[error("{0}")]
    Data(String),
    /// More records than `limits.max_records_per_request` (422), found while parsing.
    #[error("Too many records: {count} in the request, the limit is {limit}.")]
    TooManyRecords { count: usize, limit: usize },
    /// A negative explicit partition (40402).
    #[error("Partition not found.")]
    NegativePartition,
    /// A Schema Registry format's schema cannot be resolved or used.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// An API v3 record that is not of the record's shape (400: Confluent's streaming
    /// reader answers so for a record it cannot map).
    #[error("{0}")]
    Record(String),
}
