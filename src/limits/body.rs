//! Reading a request body within its guard rails: the body cap (`server.max_body_bytes`),
//! the body read timeout (`limits.body_read_timeout_ms`), the in-flight byte budget
//! (`limits.max_in_flight_bytes`) and each caller's share of it
//! (`limits.max_in_flight_bytes_per_principal`), so that one partner's slow bodies cannot
//! hold the whole budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Settings;
use crate::metrics::Metrics;

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("Request body is larger than the limit of {limit} bytes.")]
    TooLarge { limit: usize },
    #[error("The request body did not arrive within {timeout_ms} ms.")]
    Timeout { timeout_ms: u64 },
    #[error("Could not read the request body: {0}")]
    Unreadable(String),
    /// The in-flight byte budget is spent: shed before reading more.
    #[error("the in-flight byte budget is spent")]
    Shed,
}

/// A request body, with its part of the in-flight byte budget and of its caller's share
/// (both released on drop).
pub struct Body {
    pub bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
    _share: Share,
}

/// The body guard rails, shared by every handler that reads a body.
pub struct BodyLimits {
    max_body_bytes: usize,
    budget: Arc<Semaphore>,
    shares: Arc<Shares>,
    read_timeout: Duration,
    metrics: Arc<Metrics>,
}

/// Body bytes held per caller. Only callers with bytes in flight have an entry, so the map
/// is bounded by the requests in flight and needs no cleanup.
struct Shares {
    held: Mutex<HashMap<String, usize>>,
    max: usize,
}

/// One request's bytes in its caller's share; given back on drop.
struct Share {
    shares: Arc<Shares>,
    caller: String,
    bytes: usize,
}

impl Share {
    /// Adds `n` bytes to the caller's share, unless that would pass its limit.
    fn take(&mut self, n: usize) -> bool {
        let mut held = self
            .shares
            .held
            .lock()
            .expect("the share map is never poisoned");
        let held_now = held.get(&self.caller).copied().unwrap_or(0);
        if held_now + n > self.shares.max {
            return false;
        }
        match held.get_mut(&self.caller) {
            Some(entry) => *entry += n,
            None => {
                held.insert(self.caller.clone(), n);
            }
        }
        self.bytes += n;
        true
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let mut held = self
            .shares
            .held
            .lock()
            .expect("the share map is never poisoned");
        if let Some(entry) = held.get_mut(&self.caller) {
            *entry = entry.saturating_sub(self.bytes);
            if *entry == 0 {
                held.remove(&self.caller);
            }
        }
    }
}

impl BodyLimits {
    pub fn new(settings: &Settings, metrics: Arc<Metrics>) -> BodyLimits {
        let max = settings.limits.max_in_flight_bytes;
        let budget = Arc::new(Semaphore::new(max));
        let sampled = Arc::clone(&budget);
        metrics.register_in_flight_body_bytes(move || {
            i64::try_from(max - sampled.available_permits()).unwrap_or(i64::MAX)
        });
        BodyLimits {
            max_body_bytes: settings.server.max_body_bytes,
            budget,
            shares: Arc::new(Shares {
                held: Mutex::new(HashMap::new()),
                max: settings.limits.max_in_flight_bytes_per_principal,
            }),
            read_timeout: Duration::from_millis(settings.limits.body_read_timeout_ms),
            metrics,
        }
    }

    /// Reads the body within the read timeout. A body larger than the limit is refused from
    /// `declared` (`Content-Length`) before a byte is read, and a chunked one as soon as it
    /// passes the limit. The bytes count against the in-flight budget and against the
    /// share of `caller` (the principal, or the client address without authentication)
    /// until the [`Body`] is dropped; when either is spent the request is shed.
    ///
    /// # Errors
    /// [`BodyError`]: too large, too slow, unreadable, or shed.
    pub async fn read<E: std::fmt::Display>(
        &self,
        declared: Option<u64>,
        mut payload: impl Stream<Item = Result<Bytes, E>> + Unpin,
        caller: String,
    ) -> Result<Body, BodyError> {
        let limit = self.max_body_bytes;
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(BodyError::TooLarge { limit });
        }
        let mut budget = None;
        let mut share = Share {
            shares: Arc::clone(&self.shares),
            caller,
            bytes: 0,
        };
        let declared = declared.map_or(0, |l| l as usize);
        self.take_budget(&mut budget, &mut share, declared)?;
        let read = async {
            let mut body = BytesMut::with_capacity(declared);
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| BodyError::Unreadable(e.to_string()))?;
                if body.len() + chunk.len() > limit {
                    return Err(BodyError::TooLarge { limit });
                }
                if declared == 0 {
                    // Chunked: no size was announced, so the budget is taken as bytes arrive.
                    self.take_budget(&mut budget, &mut share, chunk.len())?;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        };
        let bytes = tokio::time::timeout(self.read_timeout, read)
            .await
            .map_err(|_| BodyError::Timeout {
                timeout_ms: self.read_timeout.as_millis() as u64,
            })??;
        Ok(Body {
            bytes,
            _budget: budget,
            _share: share,
        })
    }

    /// The largest body accepted: for an API v3 stream, the largest record.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// How long a body may take to arrive: for an API v3 stream, its first record.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// Holds `n` bytes of an API v3 stream against the in-flight byte budget until the
    /// permit is dropped. A stream holds only what it has read and not yet answered, and
    /// gives it back as its results are written, so it waits up to `wait` for room where a
    /// whole body would be shed at once. The per-caller share does not apply: a stream's
    /// own bound is `streaming.max_in_flight_records`.
    ///
    /// # Errors
    /// [`BodyError::Shed`] when no room came within `wait`.
    pub async fn hold_stream_bytes(
        &self,
        n: usize,
        wait: Duration,
    ) -> Result<OwnedSemaphorePermit, BodyError> {
        let n = u32::try_from(n).map_err(|_| BodyError::Shed)?;
        let budget = Arc::clone(&self.budget);
        let permit = match budget.try_acquire_many_owned(n) {
            Ok(permit) => Ok(permit),
            Err(_) => tokio::time::timeout(wait, Arc::clone(&self.budget).acquire_many_owned(n))
                .await
                .map_err(|_| ())
                .and_then(|acquired| acquired.map_err(|_| ())),
        };
        permit.map_err(|()| {
            self.metrics.shed.with_label_values(&["bytes"]).inc();
            BodyError::Shed
        })
    }

    /// Takes `n` bytes of the caller's share, then of the in-flight budget, merging with
    /// what `held` and `share` already have.
    fn take_budget(
        &self,
        held: &mut Option<OwnedSemaphorePermit>,
        share: &mut Share,
        n: usize,
    ) -> Result<(), BodyError> {
        let Some(n) = u32::try_from(n).ok().filter(|n| *n > 0) else {
            return Ok(());
        };
        if !share.take(n as usize) {
            self.metrics
                .shed
                .with_label_values(&["principal_bytes"])
                .inc();
            return Err(BodyError::Shed);
        }
        let permit = Arc::clone(&self.budget)
            .try_acquire_many_owned(n)
            .map_err(|_| {
                self.metrics.shed.with_label_values(&["bytes"]).inc();
                BodyError::Shed
            })?;
        match held {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_in_flight_bytes: usize) -> BodyLimits {
        let mut settings = Settings::default();
        settings.limits.max_in_flight_bytes = max_in_flight_bytes;
        BodyLimits::new(&settings, Arc::new(Metrics::new(&[], &[], "test")))
    }

    /// A stream waits a while for bytes others give back, then is shed.
    #[tokio::test]
    async fn stream_bytes_wait_for_room_then_are_shed() {
        let limits = limits(10);
        let wait = Duration::from_secs(5);
        let held = limits.hold_stream_bytes(8, wait).await.unwrap();
        let waiting = limits.hold_stream_bytes(5, wait);
        tokio::pin!(waiting);
        assert!(futures_util::poll!(&mut waiting).is_pending());
        drop(held);
        let second = waiting.await.unwrap();
        assert_eq!(
            limits
                .hold_stream_bytes(6, Duration::from_millis(10))
                .await
                .unwrap_err(),
            BodyError::Shed
        );
        drop(second);
        assert!(limits.hold_stream_bytes(10, wait).await.is_ok());
    }
}
