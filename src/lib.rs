//! A Confluent REST Proxy compatible HTTP produce service for Kafka.
//!
//! Layout:
//! - `auth`: network allowlist, API keys, JWT, the authorization policy;
//! - `config`: the typed settings tree (file + environment layering);
//! - `startup`: builds the app (producer, middleware, routes) and owns shutdown;
//! - `error`: the one mapping to Confluent error codes and HTTP statuses;
//! - `http`: handlers per API surface (`produce_v2`, `produce_v3`, `metadata`,
//!   `resources_v3`, `health`, `openapi`) and the middleware (request id and metrics, CORS,
//!   draining, authentication);
//! - `formats`: embedded formats (json, binary, and avro, jsonschema, protobuf through the
//!   Schema Registry with their caches), request envelope, media negotiation;
//! - `idempotency`: `Idempotency-Key` claims and stored outcomes (memory or Redis);
//! - `schema_registry`: the only code that calls the Schema Registry;
//! - `kafka`: the only code that imports rdkafka (producer, health, metadata cache, dev
//!   cluster);
//! - `domain`: values valid by construction (`TopicName`, `Partition`);
//! - `limits`: rate limits and overload shedding;
//! - `metrics`: the metric catalogue; `http::observe`: request metrics and access log;
//! - `shutdown`: draining and signals; `telemetry`: logs; `tls`: the HTTPS listener;
//! - `fuzzing`: the bodies of the fuzz targets (`fuzz/`), not used by the service.

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod formats;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod idempotency;
pub mod kafka;
pub mod limits;
pub mod metrics;
pub mod produce;
pub mod schema_registry;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod validation;
