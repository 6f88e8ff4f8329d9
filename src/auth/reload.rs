//! Policy reload without a restart: on SIGHUP, and when the policy file's content changes
//! (checked every `auth.policy_reload_interval_ms`), the file is loaded and checked whole,
//! then swapped in atomically. An invalid file keeps the policy in force: the reason is
//! logged and counted in `kafka_rest_policy_reloads_total{result="error"}`. An inline
//! policy (`auth.policy`) changes only with a restart.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Authenticator, Policy};
use crate::metrics::Metrics;

/// Watches the policy file of an [`Authenticator`].
pub struct PolicyReload {
    authenticator: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    path: PathBuf,
    /// How often the file is checked for a change; `None`: on SIGHUP only.
    interval: Option<Duration>,
    /// Fingerprint of the content last tried, loaded or not, so that a change (even an
    /// invalid one) is tried once, not at every check.
    last_seen: Mutex<Option<u64>>,
    /// SIGHUP, listened for from construction on: a SIGHUP before the first poll of
    /// [`PolicyReload::run`] would otherwise end the process (the default action).
    hangups: Hangups,
}

fn fingerprint(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

impl PolicyReload {
    /// `None` when the policy does not come from a file. `interval_ms` 0 checks for
    /// changes only on SIGHUP. Call it on the runtime that will run it (SIGHUP is
    /// registered here).
    pub fn new(
        authenticator: Arc<Authenticator>,
        metrics: Arc<Metrics>,
        interval_ms: u64,
    ) -> Option<PolicyReload> {
        let path = authenticator.policy_file()?.to_owned();
        let last_seen = std::fs::read(&path).ok().map(|b| fingerprint(&b));
        Some(PolicyReload {
            authenticator,
            metrics,
            path,
            interval: (interval_ms > 0).then(|| Duration::from_millis(interval_ms)),
            last_seen: Mutex::new(last_seen),
            hangups: hangups(),
        })
    }

    /// Loads the file and swaps it in; on failure the policy in force stays. Returns
    /// whether the new policy is in force.
    pub fn reload(&self, trigger: &str) -> bool {
        let origin = format!("policy file {}", self.path.display());
        let result = std::fs::read(&self.path)
            .map_err(|e| format!("{} is not readable: {e}", self.path.display()))
            .and_then(|bytes| {
                *self.last_seen.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(fingerprint(&bytes));
                let text = String::from_utf8(bytes).map_err(|_| format!("{origin}: not UTF-8"))?;
                Policy::from_text(&text, "auth.policy_file", &origin).map_err(|e| e.to_string())
            });
        match result {
            Ok(policy) => {
                self.metrics.set_principals(policy.principal_ids());
                self.authenticator.replace_policy(policy);
                self.metrics.policy_reloads.with_label_values(&["ok"]).inc();
                tracing::info!(trigger, path = %self.path.display(), "policy reloaded");
                true
            }
            Err(error) => {
                self.metrics
                    .policy_reloads
                    .with_label_values(&["error"])
                    .inc();
                tracing::error!(
                    trigger,
                    %error,
                    "policy reload failed; the policy in force stays"
                );
                false
            }
        }
    }

    /// Whether the file's content differs from the last one tried. An unreadable file (in
    /// the middle of being replaced) is not a change yet.
    fn changed(&self) -> bool {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                Some(fingerprint(&bytes))
                    != *self.last_seen.lock().unwrap_or_else(|e| e.into_inner())
            }
            Err(_) => false,
        }
    }

    /// Reloads on SIGHUP and on a change of the file, until dropped.
    pub async fn run(mut self) {
        let mut hangups = self.hangups.take();
        let mut ticks = self.interval.map(|every| {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks
        });
        loop {
            tokio::select! {
                () = next_hangup(&mut hangups) => {
                    self.reload("SIGHUP");
                }
                () = next_tick(&mut ticks) => {
                    if self.changed() {
                        self.reload("the file changed");
                    }
                }
            }
        }
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

#[cfg(unix)]
fn hangups() -> Hangups {
    // Registering needs a runtime; without one (not the service's case) there is no
    // reload on signal.
    tokio::runtime::Handle::try_current().ok()?;
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP: no policy reload on signal");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangups() -> Hangups {
    None
}

async fn next_hangup(hangups: &mut Hangups) {
    #[cfg(unix)]
    if let Some(signal) = hangups {
        if signal.recv().await.is_some() {
            return;
        }
    }
    #[cfg(not(unix))]
    let _ = hangups;
    std::future::pending::<()>().await;
}

async fn next_tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}
