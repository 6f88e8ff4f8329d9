//! Middleware that decides, before anything else runs, whether a request may start: not
//! while the service drains (`shutdown`), not past the in-flight request budget
//! (`limits::in_flight`). Probes always pass, so a draining or overloaded task still
//! reports its state.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error};

use crate::error::ApiError;
use crate::limits::InFlightRequests;
use crate::shutdown::Lifecycle;

/// What the guard consults.
pub struct Gate {
    pub lifecycle: Arc<Lifecycle>,
    pub in_flight: Arc<InFlightRequests>,
}

pub async fn admit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let gate = Arc::clone(
        req.app_data::<web::Data<Gate>>()
            .expect("the gate is registered as app data"),
    );
    let is_probe = matches!(req.path(), "/healthz" | "/readyz");
    let in_flight = gate.in_flight.enter();
    let refusal = if is_probe {
        Ok(in_flight)
    } else if gate.lifecycle.is_draining() {
        Err(ApiError::ShuttingDown)
    } else {
        in_flight.within_budget().map_err(ApiError::from)
    };
    match refusal {
        Ok(_in_flight) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(error) => {
            let response = super::v3::error_response_for(req.path(), &error);
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}
