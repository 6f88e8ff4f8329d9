//! Graceful shutdown: on SIGTERM or SIGINT the service stops taking new work (answering 503
//! with `Retry-After`), lets in-flight requests finish, then flushes the producer. The
//! sequence itself is `startup`'s; this holds the draining flag and the signals.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Whether the service is draining.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    /// Wakes the work that outlives a request's start (API v3 streams) when draining begins.
    drain_started: Notify,
}

impl Lifecycle {
    /// From now on, new requests are refused with 503, and open streams stop reading.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.drain_started.notify_waiters();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Resolves once draining has begun (at once if it has).
    pub async fn draining(&self) {
        loop {
            // Registered before the check, so a drain that begins in between still wakes.
            let started = self.drain_started.notified();
            if self.is_draining() {
                return;
            }
            started.await;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[tokio::test]
    async fn draining_wakes_its_waiters() {
        let lifecycle = std::sync::Arc::new(Lifecycle::default());
        assert!(lifecycle.draining().now_or_never().is_none());
        let waiter = tokio::spawn({
            let lifecycle = std::sync::Arc::clone(&lifecycle);
            async move { lifecycle.draining().await }
        });
        tokio::task::yield_now().await;
        lifecycle.begin_drain();
        waiter.await.unwrap();
        assert!(lifecycle.draining().now_or_never().is_some());
    }
}
