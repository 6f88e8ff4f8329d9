//! The HTTP edge: one route table, one thin adapter per API surface (`produce_v2`,
//! `produce_v3`, `metadata`, `health`), the v2 and v3 renderings (`v2`, `v3`), and the
//! middleware that wraps them all:
//! `observe` (request id, span, metrics, access log), `guard` (draining and the in-flight
//! budget) and `authenticate`.

pub mod authenticate;
pub mod guard;
pub mod health;
pub mod metadata;
pub mod observe;
pub mod produce_v2;
pub mod produce_v3;
pub mod v2;
pub mod v3;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::config::{BatchSettings, StreamingSettings};
use crate::domain::{Partition, TopicName};
use crate::error::ApiError;
use crate::formats::{self, SchemaFormats};
use crate::kafka::Kafka;
use crate::limits::{Body, BodyLimits};
use crate::produce::{Caller, ProduceService};
use crate::shutdown::Lifecycle;

/// The route table of the whole service; `/metrics` is here unless it has its own listener.
pub fn routes(cfg: &mut web::ServiceConfig, serve_metrics: bool) {
    if serve_metrics {
        cfg.service(resource("/metrics").route(web::get().to(observe::metrics)));
    }
    cfg.service(resource("/").route(web::get().to(metadata::root)))
        .service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .service(resource("/brokers").route(web::get().to(metadata::list_brokers)))
        .service(resource("/topics").route(web::get().to(metadata::list_topics)))
        .service(
            resource("/topics/{topic}")
                .route(web::get().to(metadata::get_topic))
                .route(web::post().to(produce_v2::produce_to_topic)),
        )
        .service(
            resource("/topics/{topic}/partitions").route(web::get().to(metadata::list_partitions)),
        )
        .service(
            resource("/topics/{topic}/partitions/{partition}")
                .route(web::get().to(metadata::get_partition))
                .route(web::post().to(produce_v2::produce_to_partition)),
        )
        .service(
            resource("/v3/clusters/{cluster_id}/topics/{topic_name}/records")
                .route(web::post().to(produce_v3::produce_records)),
        )
        .service(
            resource("/v3/clusters/{cluster_id}/topics/{topic_name}/records:batch")
                .route(web::post().to(produce_v3::produce_batch)),
        )
        .default_service(web::to(route_not_found));
}

/// A resource whose unmatched methods get 405 in the Confluent envelope, carrying its
/// route template for the metrics and the access log.
fn resource(path: &'static str) -> actix_web::Resource {
    web::resource(path)
        .app_data(observe::RouteTemplate(path))
        .default_service(web::to(method_not_allowed))
}

async fn route_not_found(req: HttpRequest) -> HttpResponse {
    v3::error_response_for(req.path(), &ApiError::RouteNotFound)
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    v3::error_response_for(req.path(), &ApiError::MethodNotAllowed)
}

/// Shared state of the handlers.
pub struct AppState {
    pub kafka: Arc<Kafka>,
    pub produce: ProduceService,
    pub body_limits: BodyLimits,
    pub lifecycle: Arc<Lifecycle>,
    /// The Schema Registry formats' resolver; `None` without a registry (they answer 42206).
    pub schemas: Option<SchemaFormats>,
    /// API v3 streams of records.
    pub streaming: StreamingSettings,
    /// API v3 batches of records.
    pub batch: BatchSettings,
}

/// Checks the `Accept` header of a v2 request.
fn check_accept(req: &HttpRequest) -> Result<(), ApiError> {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    formats::check_accept(accept).map_err(ApiError::from)
}

/// The topic named in the path.
fn parse_topic(raw: &str) -> Result<TopicName, ApiError> {
    TopicName::parse(raw).map_err(ApiError::InvalidTopicName)
}

/// The partition named in the path: not a number is an unknown route (as in Confluent),
/// a negative number names no partition.
fn parse_partition(raw: &str) -> Result<Partition, ApiError> {
    let id: i64 = raw.parse().map_err(|_| ApiError::RouteNotFound)?;
    Partition::new(id).ok_or(ApiError::PartitionNotFound)
}

/// Reads the request body within the body guard rails (`limits::body`).
async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Body, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let principal = authenticate::principal(req);
    let caller = Caller {
        principal: principal.as_ref(),
        client_ip: observe::client_ip(req),
    };
    let caller = caller.key().into_owned();
    Ok(state.body_limits.read(declared, payload, caller).await?)
}
