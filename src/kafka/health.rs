//! What the producer knows about its own health, fed by librdkafka's error callback and by
//! the periodic metadata probe, read by `/readyz` and by the produce path's fast failure.
//!
//! An authentication error from librdkafka is not trusted alone: some brokers report a
//! failed *re*-authentication on a session that still works (tansu does, about a minute into
//! a SASL session). So the callback only asks for an immediate probe, and the producer counts
//! as failing authentication when that probe fails too.

use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Notify;

/// Why the service is not ready to take produce traffic. The message is what the
/// unauthenticated `/readyz` says: generic, since librdkafka's detail names brokers (the
/// detail is logged where it arises).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("no successful metadata request to the cluster yet")]
    Starting,
    #[error("the cluster is unreachable")]
    Unreachable(String),
    #[error("the cluster rejects the producer's credentials")]
    Authentication(String),
    #[error("the producer failed fatally")]
    Fatal(String),
}

#[derive(Debug, Default)]
struct State {
    last_ok: Option<Instant>,
    last_probe_error: Option<String>,
    /// An authentication error reported since the last successful probe.
    auth_error: Option<String>,
    /// A probe failed after an authentication error: the credentials are rejected.
    auth_failed: bool,
    fatal: Option<String>,
}

/// Producer health; shared between the rdkafka context, the prober and the handlers.
#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<State>,
    probe_wanted: Notify,
}

impl Health {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// librdkafka reported an authentication failure.
    pub fn on_authentication_error(&self, reason: &str) {
        self.state().auth_error = Some(reason.to_owned());
        self.probe_wanted.notify_one();
    }

    /// librdkafka reported a fatal error: the producer can no longer be used.
    pub fn on_fatal_error(&self, reason: &str) {
        self.state().fatal = Some(reason.to_owned());
    }

    /// Something suggests the cluster is gone (all brokers down); check now.
    pub fn request_probe(&self) {
        self.probe_wanted.notify_one();
    }

    /// Resolves when a probe is wanted before its scheduled time.
    pub async fn probe_requested(&self) {
        self.probe_wanted.notified().await;
    }

    /// A metadata request succeeded.
    pub fn probe_succeeded(&self) {
        let mut state = self.state();
        state.last_ok = Some(Instant::now());
        state.last_probe_error = None;
        state.auth_error = None;
        state.auth_failed = false;
    }

    /// A metadata request failed with `reason`.
    pub fn probe_failed(&self, reason: &str) {
        let mut state = self.state();
        state.last_probe_error = Some(reason.to_owned());
        if state.auth_error.is_some() {
            state.auth_failed = true;
        }
    }

    /// Ready when the latest probe succeeded and nothing fatal happened.
    ///
    /// # Errors
    /// The reason the service should not receive traffic.
    pub fn readiness(&self) -> Result<(), NotReady> {
        let state = self.state();
        if let Some(fatal) = &state.fatal {
            return Err(NotReady::Fatal(fatal.clone()));
        }
        if state.auth_failed {
            let reason = state.auth_error.clone().unwrap_or_default();
            return Err(NotReady::Authentication(reason));
        }
        match (&state.last_probe_error, state.last_ok) {
            (Some(error), _) => Err(NotReady::Unreachable(error.clone())),
            (None, None) => Err(NotReady::Starting),
            (None, Some(_)) => Ok(()),
        }
    }

    /// The cluster's reason for rejecting our credentials, once confirmed by a probe.
    pub fn authentication_failure(&self) -> Option<String> {
        let state = self.state();
        state
            .auth_failed
            .then(|| state.auth_error.clone().unwrap_or_default())
    }

    /// The fatal error that ended the producer, if any.
    pub fn fatal(&self) -> Option<String> {
        self.state().fatal.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_unready_and_follows_probes() {
        let health = Health::default();
        assert_eq!(health.readiness(), Err(NotReady::Starting));
        health.probe_succeeded();
        assert_eq!(health.readiness(), Ok(()));
        health.probe_failed("timed out");
        assert_eq!(
            health.readiness(),
            Err(NotReady::Unreachable("timed out".into()))
        );
        health.probe_succeeded();
        assert_eq!(health.readiness(), Ok(()));
    }

    #[test]
    fn an_authentication_error_counts_only_when_a_probe_confirms_it() {
        let health = Health::default();
        health.probe_succeeded();
        health.on_authentication_error("SASL re-authentication failed");
        assert_eq!(health.readiness(), Ok(()));
        assert_eq!(health.authentication_failure(), None);
        health.probe_succeeded();
        assert_eq!(health.authentication_failure(), None);

        health.on_authentication_error("SASL authentication error: bad password");
        health.probe_failed("timed out");
        assert_eq!(
            health.authentication_failure().as_deref(),
            Some("SASL authentication error: bad password")
        );
        assert!(matches!(
            health.readiness(),
            Err(NotReady::Authentication(_))
        ));
    }

    #[test]
    fn fatal_is_final() {
        let health = Health::default();
        health.on_fatal_error("idempotence broken");
        health.probe_succeeded();
        assert!(matches!(health.readiness(), Err(NotReady::Fatal(_))));
        assert_eq!(health.fatal().as_deref(), Some("idempotence broken"));
    }
}
