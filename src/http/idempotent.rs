//! The `Idempotency-Key` step of the adapters that produce a whole request at once (v2
//! produce, v3 `records:batch`): read the key, claim it, run the adapter's work, keep or
//! release the outcome ([`crate::idempotency`]).
//!
//! A claimed request's work runs in a task of its own: when the client goes away, or the
//! response is dropped for any other reason, the records already handed to Kafka are still
//! settled and the outcome still kept, so the retry is answered from it instead of
//! producing again.

use std::future::Future;

use actix_web::body::BoxBody;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use tracing::Instrument;

use super::authenticate::{principal, AuthState};
use super::observe::{client_ip, with_facts, RouteTemplate};
use super::AppState;
use crate::domain::Header;
use crate::error::ApiError;
use crate::idempotency::{
    Begin, Fingerprint, IdempotencyKey, KeyError, Scope, StoredResponse, HEADER, REPLAYED_HEADER,
    STORE_HEADER,
};
use crate::produce::Caller;

/// What an adapter's work produced: its response, and how many records Kafka took or may
/// have taken ([`crate::kafka::ProduceError::may_have_been_written`]: a record that timed
/// out may be in Kafka, so its outcome is kept too, lest a retry write it again).
pub struct Produced {
    pub response: HttpResponse,
    pub possibly_written: usize,
}

/// The request's `Idempotency-Key`, checked before the body is read.
///
/// # Errors
/// [`ApiError::IdempotencyKey`] (400): malformed, repeated, or missing where the policy
/// requires one.
pub fn request_key(
    req: &HttpRequest,
    auth: &AuthState,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let values = req.headers().get_all(HEADER).map(HeaderValue::as_bytes);
    let key = IdempotencyKey::from_values(values)?;
    if key.is_none()
        && auth
            .authenticator
            .requires_idempotency_key(principal(req).as_ref())
    {
        return Err(KeyError::Required.into());
    }
    if let Some(key) = &key {
        with_facts(req, |f| f.idempotency_key = Some(key.log_name()));
    }
    Ok(key)
}

/// API v3 streams take no key: their records are answered one by one as they settle, so
/// there is no one outcome to keep. A key, or a principal that must send one, is refused
/// (400) rather than ignored.
///
/// # Errors
/// [`ApiError::IdempotencyKey`] (400).
pub fn refuse_on_stream(req: &HttpRequest, auth: &AuthState) -> Result<(), ApiError> {
    if req.headers().contains_key(HEADER) {
        return Err(KeyError::NotOnStreams.into());
    }
    if auth
        .authenticator
        .requires_idempotency_key(principal(req).as_ref())
    {
        return Err(KeyError::RequiredNotOnStreams.into());
    }
    Ok(())
}

/// The record header that carries `key`, when `idempotency.record_header` is set.
pub fn record_header(state: &AppState, key: Option<&IdempotencyKey>) -> Option<Header> {
    let name = state.idempotency.record_header()?;
    Some(Header {
        name: name.to_owned(),
        value: Some(key?.as_str().as_bytes().to_vec()),
    })
}

/// Runs `work` once per key: the first request with `key` runs it and its outcome is
/// kept; a retry gets that outcome back without running it.
///
/// # Errors
/// The work's own errors, and [`ApiError::Idempotency`]: the key was used for another
/// request (422), is held by a running one (409), or the store is unavailable (503).
pub async fn run<Work>(
    req: &HttpRequest,
    state: &AppState,
    topic: &str,
    key: IdempotencyKey,
    body: &[u8],
    work: Work,
) -> Result<HttpResponse, ApiError>
where
    Work: Future<Output = Result<Produced, ApiError>> + 'static,
{
    let fingerprint = Fingerprint::of(
        req.method().as_str(),
        req.path(),
        req.headers()
            .get(header::CONTENT_TYPE)
            .map(HeaderValue::as_bytes),
        body,
    );
    let principal = principal(req);
    let caller = Caller {
        principal: principal.as_ref(),
        client_ip: client_ip(req),
    }
    .key();
    let route = req.app_data::<RouteTemplate>().map_or("", |r| r.0);
    let scope = Scope {
        caller: &caller,
        method: req.method().as_str(),
        route,
        topic,
    };
    let claim = match state.idempotency.begin(scope, &key, fingerprint).await? {
        Begin::Replay(stored) => {
            with_facts(req, |f| f.idempotent_replayed = true);
            return Ok(replay(stored));
        }
        Begin::Unguarded => {
            let mut response = work.await?.response;
            say_unguarded(&mut response);
            return Ok(response);
        }
        Begin::Claimed(claim) => claim,
    };
    // Its own task: settled and kept even if this request's future is dropped; in the
    // request's span, as the work was before (log lines, trace spans).
    let span = tracing::Span::current();
    let task = actix_web::rt::spawn(
        async move {
            match work.await {
                Ok(Produced {
                    response,
                    possibly_written,
                }) if possibly_written > 0 => {
                    let (response, stored) = snapshot(response).await;
                    let kept = claim.settle(Some(stored)).await;
                    Ok((response, kept))
                }
                Ok(Produced { response, .. }) => {
                    claim.settle(None).await;
                    Ok((response, true))
                }
                Err(error) => {
                    claim.settle(None).await;
                    Err(error)
                }
            }
        }
        .instrument(span),
    );
    let (mut response, kept) = match task.await {
        Ok(done) => done?,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // The worker is stopping; its lease will end on its own.
        Err(_) => return Err(ApiError::ShuttingDown),
    };
    if !kept {
        say_unguarded(&mut response);
    }
    Ok(response)
}

/// The response of a replayed outcome.
fn replay(stored: StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::with_body(status, stored.body).map_into_boxed_body();
    let headers = response.headers_mut();
    if let Some(value) = stored
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(
        HeaderName::from_static(REPLAYED_HEADER),
        HeaderValue::from_static("true"),
    );
    response
}

/// The response, whole, and what is kept of it: status, `Content-Type` and body.
async fn snapshot(response: HttpResponse) -> (HttpResponse, StoredResponse) {
    let (head, body) = response.into_parts();
    // Produce responses are rendered whole: this does not wait.
    let bytes = actix_web::body::to_bytes(body).await.unwrap_or_default();
    let stored = StoredResponse {
        status: head.status().as_u16(),
        content_type: head
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: bytes.to_vec(),
    };
    (head.set_body(BoxBody::new(bytes)), stored)
}

fn say_unguarded(response: &mut HttpResponse) {
    response.headers_mut().insert(
        HeaderName::from_static(STORE_HEADER),
        HeaderValue::from_static("unavailable"),
    );
}
