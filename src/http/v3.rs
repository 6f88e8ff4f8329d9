//! What API v3 answers look like: `application/json` for bodies and errors, the error
//! envelope of SPEC §1 with the same headers as v2 (`Retry-After`, `RateLimit-*`,
//! `WWW-Authenticate`), since one [`ApiError`] mapping serves both.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::error::ApiError;

/// The Content-Type of every API v3 response.
pub const V3_CONTENT_TYPE: &str = "application/json";

/// A JSON response in the v3 Content-Type.
pub fn json(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(V3_CONTENT_TYPE)
        .body(serde_json::to_vec(body).expect("response bodies always serialize"))
}

/// Whether a path belongs to API v3, whose errors are `application/json`: the refusals of
/// the middleware (authentication, draining, overload) and of the route table (404, 405)
/// follow the API of the path they answer.
pub fn is_v3_path(path: &str) -> bool {
    path == "/v3" || path.starts_with("/v3/")
}

/// `error` in the Content-Type of the API that `path` belongs to.
pub fn error_response_for(path: &str, error: &ApiError) -> HttpResponse {
    let response = error.error_response();
    if is_v3_path(path) {
        in_v3_content_type(response)
    } else {
        response
    }
}

fn in_v3_content_type(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(V3_CONTENT_TYPE),
    );
    response
}

/// An [`ApiError`] answered the v3 way; v3 handlers return `Result<_, V3Error>` and `?`
/// anything that converts into an [`ApiError`].
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct V3Error(pub ApiError);

impl<E: Into<ApiError>> From<E> for V3Error {
    fn from(error: E) -> V3Error {
        V3Error(error.into())
    }
}

impl ResponseError for V3Error {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        in_v3_content_type(self.0.error_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn errors_are_the_envelope_in_application_json() {
        let response = V3Error::from(ApiError::PartitionNotFound).error_response();
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            V3_CONTENT_TYPE
        );
        let body = response.into_body().try_into_bytes().unwrap();
        assert_eq!(
            &body[..],
            br#"{"error_code":40402,"message":"Partition not found."}"#
        );
    }

    #[test]
    fn refusals_follow_the_api_of_their_path() {
        let content_type = |path| {
            error_response_for(path, &ApiError::ShuttingDown)
                .headers()
                .get(header::CONTENT_TYPE)
                .unwrap()
                .clone()
        };
        assert_eq!(
            content_type("/v3/clusters/c/topics/t/records"),
            V3_CONTENT_TYPE
        );
        assert_eq!(content_type("/v3"), V3_CONTENT_TYPE);
        assert_eq!(content_type("/topics/t"), "application/vnd.kafka.v2+json");
        assert_eq!(content_type("/v3x"), "application/vnd.kafka.v2+json");
    }
}
