//! Waiting for a condition instead of sleeping for a guess: a guess is too short on a loaded
//! machine and too long everywhere else.

use std::time::{Duration, Instant};

use super::sample;

/// How often a wait looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long the metric waits give a condition.
const METRIC_TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Ok`. After `timeout` it panics with the last `Err`, which
/// says what was still missing. `check` may assert, for what must hold on every poll.
pub async fn wait_until(timeout: Duration, mut check: impl AsyncFnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(()) => return,
            Err(missing) => assert!(
                Instant::now() < deadline,
                "gave up after {timeout:?}: {missing}"
            ),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until the sample `series` in the Prometheus exposition that `scrape` returns is at
/// least `value`.
pub async fn wait_for_sample(series: &str, value: f64, mut scrape: impl AsyncFnMut() -> String) {
    wait_until(METRIC_TIMEOUT, async || {
        let exposition = scrape().await;
        let got = sample(&exposition, series);
        if got >= value {
            Ok(())
        } else {
            Err(format!("{series} is {got}, not yet {value}"))
        }
    })
    .await;
}
