//! Graceful shutdown: on SIGTERM or SIGINT the service stops taking new work (answering 503
//! with `Retry-After`), lets in-flight requests finish, then flushes the producer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, ResponseError};
use tokio::sync::Notify;

use crate::error::ApiError;
use crate::http::observe::Observability;

/// Whether the service is draining, and how many requests are in flight.
#[derive(Debug)]
pub struct Lifecycle {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    /// Requests beyond this many at once are shed with 503.
    max_in_flight: usize,
    idle: Notify,
}

impl Lifecycle {
    pub fn new(max_in_flight: usize) -> Lifecycle {
        Lifecycle {
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            max_in_flight,
            idle: Notify::new(),
        }
    }

    /// From now on, new requests are refused with 503.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.idle.notify_waiters();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Resolves once no request is in flight.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }

    fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }
}

/// Counts one request as in flight until dropped.
struct InFlight(Arc<Lifecycle>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Middleware: refuses new work while draining or when `limits.max_in_flight_requests`
/// are already being served (probes excepted), counts the rest.
pub async fn track_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let lifecycle = req
        .app_data::<web::Data<Arc<Lifecycle>>>()
        .map(|l| Arc::clone(l.get_ref()))
        .expect("the lifecycle is registered as app data");
    let is_probe = matches!(req.path(), "/healthz" | "/readyz");
    // Counted before the draining check, so that shutdown, which sets draining and then
    // waits for the count to reach zero, cannot miss a request that passed the check.
    let in_flight = lifecycle.enter();
    if lifecycle.is_draining() && !is_probe {
        drop(in_flight);
        let response = ApiError::ShuttingDown.error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    if lifecycle.in_flight() > lifecycle.max_in_flight && !is_probe {
        drop(in_flight);
        if let Some(observability) = req.app_data::<web::Data<Observability>>() {
            observability
                .metrics
                .shed
                .with_label_values(&["requests"])
                .inc();
        }
        let response = ApiError::Overloaded.error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    let _in_flight = in_flight;
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Resolves on SIGTERM (ECS stopping the task) or SIGINT (Ctrl-C).
pub async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
