//! What API v2 answers look like: the v2 Content-Type, 200 bodies, and every error in the
//! Confluent envelope with the headers that go with it (`Retry-After`, `RateLimit-*`,
//! `WWW-Authenticate`, `Connection: close`). Every current route (v2 and the probes'
//! refusals) renders its errors here.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::AuthError;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::validation::{SchemaReport, Violation};

/// The Content-Type of every API v2 response.
pub const V2_CONTENT_TYPE: &str = "application/vnd.kafka.v2+json";

/// A `200 OK` JSON response in the v2 Content-Type.
pub fn json(body: &impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(V2_CONTENT_TYPE)
        .body(serde_json::to_vec(body).expect("response bodies always serialize"))
}

/// Builds an error response in the envelope, with `Retry-After` where retrying helps.
pub fn error_response(code: ErrorCode, message: &str) -> HttpResponse {
    let mut response = HttpResponse::build(code.status());
    response.insert_header((header::CONTENT_TYPE, V2_CONTENT_TYPE));
    if let Some(secs) = code.retry_after_secs() {
        response.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
    }
    let mut response = response.body(
        ErrorBody {
            error_code: code,
            message,
        }
        .to_vec(),
    );
    // For the access log and metrics, which see responses, not errors.
    response.extensions_mut().insert(code);
    response
}

/// The 42203 envelope: `error_code` and `message` as always, plus every violation (up to
/// the configured cap) and how many were left out. Confluent clients ignore the extra
/// fields.
fn schema_violations_response(error: &ApiError, report: &SchemaReport) -> HttpResponse {
    #[derive(Serialize)]
    struct Body<'a> {
        error_code: ErrorCode,
        message: String,
        violations: &'a [Violation],
        violations_omitted: usize,
    }
    let code = error.code();
    let body = serde_json::to_vec(&Body {
        error_code: code,
        message: error.to_string(),
        violations: &report.violations,
        violations_omitted: report.omitted,
    })
    .expect("the violations envelope serializes");
    let mut response = HttpResponse::build(code.status())
        .insert_header((header::CONTENT_TYPE, V2_CONTENT_TYPE))
        .body(body);
    response.extensions_mut().insert(code);
    response
}

/// RFC 6750 §3: no error code when no credentials were sent, `invalid_token` otherwise.
fn www_authenticate(error: &AuthError) -> HeaderValue {
    let value = match error {
        AuthError::MissingCredentials => r#"Bearer realm="kafka-rest-proxy""#.to_owned(),
        other => format!(
            r#"Bearer realm="kafka-rest-proxy", error="invalid_token", error_description="{}""#,
            other.to_string().replace('"', "'")
        ),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code().status()
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::SchemaViolations(report) = self {
            return schema_violations_response(self, report);
        }
        if let ApiError::Metadata(error) = self {
            // The partner reads a generic message; the detail goes to the log, in the
            // request span.
            if let Some(detail) = error.detail() {
                tracing::warn!(detail, %error, "topic metadata unavailable");
            }
        }
        let mut response = error_response(self.code(), &self.to_string());
        match self {
            ApiError::RateLimited(limited) => {
                let headers = response.headers_mut();
                let wait = limited.retry_after.as_secs_f64().ceil().max(1.0) as u64;
                headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
                for (name, value) in [
                    ("ratelimit-limit", u64::from(limited.burst)),
                    ("ratelimit-remaining", 0),
                    ("ratelimit-reset", wait),
                ] {
                    headers.insert(
                        header::HeaderName::from_static(name),
                        HeaderValue::from(value),
                    );
                }
            }
            ApiError::ShuttingDown | ApiError::RequestTimeout { .. } => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ApiError::Unauthenticated(e) if self.code() == ErrorCode::KAFKA_AUTHENTICATION => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, www_authenticate(e));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::MetadataError;

    #[test]
    fn unauthenticated_responses_carry_www_authenticate() {
        let response = ApiError::Unauthenticated(AuthError::MissingCredentials).error_response();
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            r#"Bearer realm="kafka-rest-proxy""#
        );
        let response = ApiError::Unauthenticated(AuthError::WrongAudience).error_response();
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            r#"Bearer realm="kafka-rest-proxy", error="invalid_token", error_description="The token's audience is not accepted.""#
        );
        let response = ApiError::Unauthenticated(AuthError::AddressNotAllowed).error_response();
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn errors_are_in_the_v2_content_type() {
        let response = ApiError::Metadata(MetadataError::UnknownTopic).error_response();
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            V2_CONTENT_TYPE
        );
    }
}
