//! CORS for browser clients, off unless `cors.allowed_origins` is set.
//!
//! `actix-cors` answers preflights before authentication runs (a browser sends no
//! credentials on a preflight) and adds the `Access-Control-*` headers to every answer to
//! an allowed origin, errors included, exposing the headers a page needs to act on them
//! (`Retry-After`, `RateLimit-*`, `WWW-Authenticate`, `X-Request-Id`). A request from an
//! origin that is not allowed is still served, without those headers: the browser keeps
//! the answer from the page, and server-side callers that happen to send `Origin` are not
//! refused. A refused preflight is answered in the Confluent envelope
//! ([`ApiError::CorsPreflight`]) rather than actix-cors' plain text.

use actix_cors::{Cors, CorsError};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Condition, Next};
use actix_web::Error;

use crate::config::{CorsOrigin, CorsSettings};
use crate::error::ApiError;

/// Response headers a page may read besides the CORS-safelisted ones (`traceparent`: the
/// server span's, when tracing is on).
const EXPOSED_HEADERS: [&str; 7] = [
    "x-request-id",
    "traceparent",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "www-authenticate",
];

/// What the CORS middleware allows, from the settings; plain data, so each worker can build
/// its own (not `Send`) middleware from a copy.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    origins: Vec<CorsOrigin>,
    methods: Vec<String>,
    headers: Vec<String>,
    credentials: bool,
    max_age_secs: u32,
}

impl CorsPolicy {
    /// The `[cors]` settings, with the API key header allowed too: a page cannot
    /// authenticate with an API key it may not send.
    pub fn new(settings: &CorsSettings, api_key_header: &str) -> CorsPolicy {
        let mut headers = settings.allowed_headers.clone();
        if !headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case(api_key_header))
        {
            headers.push(api_key_header.to_owned());
        }
        CorsPolicy {
            origins: settings.allowed_origins.clone(),
            methods: settings.allowed_methods.clone(),
            headers,
            credentials: settings.allow_credentials,
            max_age_secs: settings.max_age_secs,
        }
    }

    /// The middleware, or a pass-through while no origin is allowed.
    pub fn middleware(&self) -> Condition<Cors> {
        let mut cors = Cors::default()
            .allowed_methods(self.methods.iter().map(String::as_str))
            .allowed_headers(self.headers.iter().map(String::as_str))
            .expose_headers(EXPOSED_HEADERS)
            .max_age(self.max_age_secs as usize);
        for origin in &self.origins {
            cors = match origin {
                // Validated: `*` comes alone and without credentials.
                CorsOrigin::Any => cors.allow_any_origin().send_wildcard(),
                CorsOrigin::Exact(origin) => cors.allowed_origin(origin),
            };
        }
        if self.credentials {
            cors = cors.supports_credentials();
        }
        Condition::new(!self.origins.is_empty(), cors)
    }
}

/// Middleware outside the CORS middleware: its refusals become the Confluent envelope, in
/// the Content-Type of the API the path belongs to.
pub async fn render_refusals(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let response = next.call(req).await?;
    let Some(refusal) = response
        .response()
        .error()
        .and_then(|e| e.as_error::<CorsError>())
    else {
        return Ok(response.map_into_boxed_body());
    };
    let error = refused(refusal, response.request());
    let rendered = super::v3::error_response_for(response.request().path(), &error);
    Ok(response.into_response(rendered).map_into_boxed_body())
}

/// What the preflight asked that is not allowed, in the partner's terms.
fn refused(error: &CorsError, req: &actix_web::HttpRequest) -> ApiError {
    let asked = |name: header::HeaderName| {
        let value = req
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        // Quoted back to the caller: bounded.
        value.chars().take(200).collect::<String>()
    };
    let (reason, malformed) = match error {
        CorsError::OriginNotAllowed => (
            format!("origin '{}' is not allowed.", asked(header::ORIGIN)),
            false,
        ),
        CorsError::MethodNotAllowed => (
            format!(
                "method '{}' is not allowed.",
                asked(header::ACCESS_CONTROL_REQUEST_METHOD)
            ),
            false,
        ),
        CorsError::HeadersNotAllowed => (
            format!(
                "a requested header is not allowed (requested: {}).",
                asked(header::ACCESS_CONTROL_REQUEST_HEADERS)
            ),
            false,
        ),
        CorsError::MissingOrigin => ("the preflight has no Origin header.".to_owned(), true),
        CorsError::BadRequestHeaders => (
            "Access-Control-Request-Headers is not a list of header names.".to_owned(),
            true,
        ),
        other => (format!("{other}."), true),
    };
    ApiError::CorsPreflight { reason, malformed }
}
