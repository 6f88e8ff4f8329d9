//! The HTTP API: one module per surface, one route table.

pub mod authenticate;
pub mod health;
pub mod metadata;
pub mod observe;
pub mod produce_v2;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::domain::{Partition, TopicName};
use crate::error::ApiError;
use crate::formats;

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
        .default_service(web::to(route_not_found));
}

/// A resource whose unmatched methods get 405 in the Confluent envelope.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn route_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// Shared state of the handlers.
pub struct AppState {
    pub kafka: std::sync::Arc<crate::kafka::Kafka>,
    pub lifecycle: std::sync::Arc<crate::shutdown::Lifecycle>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
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

/// Reads the body, refusing it from `Content-Length` before reading a byte when it is too
/// large, and stopping as soon as a chunked body passes the limit.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.map_or(0, |l| l as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::UnreadableBody(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    observe::with_facts(req, |f| f.bytes_in = Some(body.len() as u64));
    Ok(body.freeze())
}

/// A `200 OK` JSON response in the v2 Content-Type.
fn v2_json(body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(crate::error::V2_CONTENT_TYPE)
        .body(serde_json::to_vec(body).expect("response bodies always serialize"))
}
