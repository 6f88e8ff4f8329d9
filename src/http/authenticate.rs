//! Middleware: resolves the client address, authenticates the caller, and puts the
//! [`Principal`] in the request's extensions for the handlers' policy checks.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpRequest};

use tracing::Instrument;

use super::observe::with_facts;
use super::openapi::is_document;
use crate::auth::{AuthError, Authenticated, Authenticator, Credentials, Operation, Principal};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::telemetry::traces;
use crate::tls::ClientCertificate;

/// The authentication chain and the metrics it reports to.
pub struct AuthState {
    pub authenticator: Arc<Authenticator>,
    pub metrics: Arc<Metrics>,
}

pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let state = Arc::clone(
        req.app_data::<web::Data<AuthState>>()
            .expect("the auth state is registered as app data"),
    );
    let auth = &state.authenticator;
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    // Every X-Forwarded-For header, in order and as raw bytes: a proxy may append its own
    // header after one the client wrote, the right-most entries are the trustworthy ones,
    // and a client's non-ASCII bytes must not make the proxy's entries disappear.
    let forwarded_for: Vec<&[u8]> = req
        .headers()
        .get_all("x-forwarded-for")
        .map(|v| v.as_bytes())
        .collect();
    let client = auth.client_ip(peer, &forwarded_for);
    with_facts(req.request(), |f| f.client_ip = Some(client));

    // The API description needs no credentials (see `openapi`), but only reachable
    // addresses may read it.
    let open_document = is_document(req.path()) && auth.address_allowed(client);
    if auth.is_open(req.path()) || open_document {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let certificate = req.conn_data::<ClientCertificate>().cloned();
    let credentials = Credentials {
        authorization: header("authorization"),
        api_key: header(auth.api_key_header()),
        client_certificate: certificate.as_ref().map(|c| c.common_name.as_str()),
    };
    // A trace's child span (nothing with tracing off): the JWKS fetch of an unknown key
    // shows here.
    let span = traces::child_span!(
        "authenticate",
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty
    );
    let authenticated = auth
        .authenticate(client, credentials)
        .instrument(span.clone())
        .await;
    if let Err(error) = &authenticated {
        span.record("otel.status_code", "error");
        span.record("error.type", error.reason());
    }
    drop(span);
    match authenticated {
        Ok(Authenticated {
            principal,
            token_cache,
        }) => {
            if let Some(cache) = token_cache {
                state
                    .metrics
                    .jwt_cache_lookups
                    .with_label_values(&[cache.label()])
                    .inc();
            }
            tracing::Span::current().record("principal", principal.id.as_str());
            with_facts(req.request(), |f| {
                f.principal = Some(principal.id.to_string())
            });
            req.extensions_mut().insert(principal);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(error) => {
            let counter = if error == AuthError::AddressNotAllowed {
                &state.metrics.policy_denials
            } else {
                &state.metrics.auth_failures
            };
            counter.with_label_values(&[error.reason()]).inc();
            tracing::info!(reason = error.reason(), %client, "request refused by authentication");
            let response =
                super::v3::error_response_for(req.path(), &ApiError::Unauthenticated(error));
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

/// The caller's principal, when authentication is on.
pub fn principal(req: &HttpRequest) -> Option<Principal> {
    req.extensions().get::<Principal>().cloned()
}

/// Refuses the request unless the policy lets the caller perform `operation` on `topic`.
///
/// # Errors
/// [`ApiError::Forbidden`] (403, 40301), counted as a policy denial.
pub fn authorize(
    req: &HttpRequest,
    state: &AuthState,
    operation: Operation,
    topic: &str,
) -> Result<(), ApiError> {
    if state
        .authenticator
        .authorize(principal(req).as_ref(), operation, topic)
    {
        return Ok(());
    }
    state
        .metrics
        .policy_denials
        .with_label_values(&["topic"])
        .inc();
    Err(ApiError::Forbidden {
        operation,
        topic: topic.to_owned(),
    })
}

/// Whether the caller may describe `topic` (to filter listings).
pub fn may_describe(req: &HttpRequest, state: &AuthState, topic: &str) -> bool {
    state
        .authenticator
        .authorize(principal(req).as_ref(), Operation::Describe, topic)
}
