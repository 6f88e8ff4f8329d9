//! The in-flight request budget (`limits.max_in_flight_requests`): past it, requests are
//! shed with 503. The same count is what shutdown waits to drain.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::metrics::Metrics;

/// Too much work in flight: the request is shed (503/50302).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the in-flight budget is spent")]
pub struct Overloaded;

/// How many requests are being served.
pub struct InFlightRequests {
    count: AtomicUsize,
    max: usize,
    idle: Notify,
    metrics: Arc<Metrics>,
}

/// Counts one request as in flight until dropped.
pub struct InFlightGuard(Arc<InFlightRequests>);

impl InFlightRequests {
    pub fn new(max: usize, metrics: Arc<Metrics>) -> InFlightRequests {
        InFlightRequests {
            count: AtomicUsize::new(0),
            max,
            idle: Notify::new(),
            metrics,
        }
    }

    /// Counts a request in. Counted before any other check, so that shutdown (which sets
    /// draining and then waits for the count to reach zero) cannot miss a request that
    /// passed its check.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(Arc::clone(self))
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Resolves once no request is in flight.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl InFlightGuard {
    /// Keeps the request when the budget allows it.
    ///
    /// # Errors
    /// [`Overloaded`] past `limits.max_in_flight_requests`, counted as shed.
    pub fn within_budget(self) -> Result<InFlightGuard, Overloaded> {
        if self.0.count() <= self.0.max {
            return Ok(self);
        }
        self.0.metrics.shed.with_label_values(&["requests"]).inc();
        Err(Overloaded)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
