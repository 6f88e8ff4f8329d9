//! `GET /healthz` (the process is alive) and `GET /readyz` (it can take produce traffic).

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::AppState;

#[derive(Serialize)]
struct Status<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn status(ok: bool, status: &str, reason: Option<String>) -> HttpResponse {
    let mut response = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response.json(Status { status, reason })
}

/// Alive unless the producer failed fatally: then only a restart helps, and the container
/// health check should say so.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    match state.kafka.health().fatal() {
        None => status(true, "ok", None),
        // librdkafka's reason names brokers; the rdkafka context logged it.
        Some(_) => status(
            false,
            "failed",
            Some("the producer failed fatally".to_owned()),
        ),
    }
}

/// Ready when the latest metadata request to the cluster succeeded, the cluster accepts the
/// producer's credentials, and the service is not shutting down.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.lifecycle.is_draining() {
        return status(false, "draining", None);
    }
    match state.kafka.health().readiness() {
        Ok(()) => status(true, "ready", None),
        Err(reason) => status(false, "not ready", Some(reason.to_string())),
    }
}
