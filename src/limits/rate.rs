//! Rate limits (governor's GCRA buckets): records and bytes per second, per principal (by
//! client address when authentication is off) and for the whole instance. Every limit is
//! per instance: behind N tasks a partner gets N times its limit.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::{Rate, RateLimitSettings};

type Bucket =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// What a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Records,
    Bytes,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Records => "records",
            Unit::Bytes => "bytes",
        }
    }
}

/// A request over a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    /// `principal` or `global`.
    pub scope: &'static str,
    pub unit: Unit,
    pub per_second: u32,
    /// The bucket size: what `RateLimit-Limit` reports.
    pub burst: u32,
    /// When the request would fit.
    pub retry_after: Duration,
}

/// One rate: a bucket for records and one for bytes, each optional.
struct Limit {
    records: Option<(Bucket, u32, u32)>,
    bytes: Option<(Bucket, u32, u32)>,
}

fn bucket(per_second: u32, burst: Option<u32>) -> Option<(Bucket, u32, u32)> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = burst.unwrap_or(per_second).max(1);
    let quota = Quota::per_second(rate).allow_burst(NonZeroU32::new(burst)?);
    Some((
        RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
        per_second,
        burst,
    ))
}

impl Limit {
    fn new(rate: &Rate) -> Limit {
        Limit {
            records: bucket(rate.records_per_second, rate.records_burst),
            bytes: bucket(rate.bytes_per_second, rate.bytes_burst),
        }
    }

    fn check(
        &self,
        key: &str,
        scope: &'static str,
        records: u32,
        bytes: u32,
    ) -> Result<(), RateLimited> {
        for (bucket, unit, amount) in [
            (&self.records, Unit::Records, records),
            (&self.bytes, Unit::Bytes, bytes),
        ] {
            let (Some((limiter, per_second, burst)), Some(n)) = (bucket, NonZeroU32::new(amount))
            else {
                continue;
            };
            let refused = |retry_after| RateLimited {
                scope,
                unit,
                per_second: *per_second,
                burst: *burst,
                retry_after,
            };
            match limiter.check_key_n(&key.to_owned(), n) {
                Ok(Ok(_snapshot)) => {}
                Ok(Err(not_until)) => {
                    return Err(refused(
                        not_until.wait_time_from(DefaultClock::default().now()),
                    ))
                }
                // Startup checks make bursts hold a full request; should one not, the
                // request can never pass: a long wait says so.
                Err(_) => return Err(refused(Duration::from_secs(3600))),
            }
        }
        Ok(())
    }

    fn retain_recent(&self) {
        for (bucket, _, _) in [&self.records, &self.bytes].into_iter().flatten() {
            bucket.retain_recent();
            bucket.shrink_to_fit();
        }
    }
}

/// Every configured rate limit.
pub struct RateLimits {
    default: Limit,
    global: Limit,
    principals: HashMap<String, Limit>,
    scopes: Vec<(String, Limit)>,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> RateLimits {
        RateLimits {
            default: Limit::new(&settings.default),
            global: Limit::new(&settings.global),
            principals: settings
                .principals
                .iter()
                .map(|(id, rate)| (id.clone(), Limit::new(rate)))
                .collect(),
            scopes: settings
                .scopes
                .iter()
                .map(|(scope, rate)| (scope.clone(), Limit::new(rate)))
                .collect(),
        }
    }

    /// Whether any limit is configured at all.
    pub fn enabled(&self) -> bool {
        let some = |l: &Limit| l.records.is_some() || l.bytes.is_some();
        some(&self.default)
            || some(&self.global)
            || self.principals.values().any(some)
            || self.scopes.iter().any(|(_, l)| some(l))
    }

    /// Takes `records` and `bytes` from the caller's buckets and the global ones.
    ///
    /// `key` is the method-qualified principal id (`api_key:partner-a`; the client address
    /// without authentication, which no qualified id can equal). The
    /// principal's own limit applies if configured, else the first of its scopes that has
    /// one, else the default.
    ///
    /// # Errors
    /// The first limit the request exceeds. Buckets checked before it have been charged.
    pub fn check(
        &self,
        key: &str,
        scopes: &[String],
        records: u32,
        bytes: u32,
    ) -> Result<(), RateLimited> {
        let own = self.principals.get(key).or_else(|| {
            self.scopes
                .iter()
                .find(|(scope, _)| scopes.contains(scope))
                .map(|(_, limit)| limit)
        });
        own.unwrap_or(&self.default)
            .check(key, "principal", records, bytes)?;
        self.global.check("", "global", records, bytes)
    }

    /// Forgets the buckets of callers that have been idle long enough to be full again, so
    /// memory does not grow with the number of distinct callers ever seen.
    pub fn retain_recent(&self) {
        self.default.retain_recent();
        for (_, limit) in &self.scopes {
            limit.retain_recent();
        }
    }

    /// Runs [`RateLimits::retain_recent`] every minute until the future is dropped.
    pub async fn run_housekeeping(self: Arc<Self>) {
        loop {
            tokio::time::sleep(HOUSEKEEPING_INTERVAL).await;
            self.retain_recent();
        }
    }
}

/// How often idle callers' buckets are forgotten.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RateLimitSettings {
        let mut s = RateLimitSettings {
            default: Rate {
                records_per_second: 10,
                records_burst: Some(10),
                bytes_per_second: 1000,
                bytes_burst: Some(1000),
            },
            ..RateLimitSettings::default()
        };
        s.principals.insert(
            "big".into(),
            Rate {
                records_per_second: 100,
                ..Rate::default()
            },
        );
        s.scopes.insert(
            "tier:gold".into(),
            Rate {
                records_per_second: 50,
                ..Rate::default()
            },
        );
        s
    }

    #[test]
    fn each_principal_has_its_own_bucket() {
        let limits = RateLimits::new(&settings());
        assert!(limits.check("a", &[], 10, 10).is_ok());
        let refused = limits.check("a", &[], 1, 1).unwrap_err();
        assert_eq!(refused.unit, Unit::Records);
        assert_eq!(refused.scope, "principal");
        assert_eq!(refused.burst, 10);
        assert!(refused.retry_after > Duration::ZERO);
        assert!(limits.check("b", &[], 10, 10).is_ok(), "b is unaffected");
    }

    #[test]
    fn bytes_are_limited_too() {
        let limits = RateLimits::new(&settings());
        assert!(limits.check("a", &[], 1, 900).is_ok());
        let refused = limits.check("a", &[], 1, 200).unwrap_err();
        assert_eq!(refused.unit, Unit::Bytes);
        assert_eq!(refused.per_second, 1000);
    }

    #[test]
    fn overrides_by_principal_and_by_scope() {
        let limits = RateLimits::new(&settings());
        assert!(limits.check("big", &[], 100, 1).is_ok());
        assert!(limits
            .check("gold-member", &["tier:gold".into()], 50, 1)
            .is_ok());
        assert!(limits
            .check("gold-member", &["tier:gold".into()], 1, 1)
            .is_err());
    }

    #[test]
    fn the_global_limit_covers_everyone() {
        let limits = RateLimits::new(&RateLimitSettings {
            global: Rate {
                records_per_second: 5,
                ..Rate::default()
            },
            ..RateLimitSettings::default()
        });
        assert!(limits.check("a", &[], 3, 0).is_ok());
        let refused = limits.check("b", &[], 3, 0).unwrap_err();
        assert_eq!(refused.scope, "global");
    }

    #[test]
    fn no_rates_means_no_limits() {
        let limits = RateLimits::new(&RateLimitSettings::default());
        assert!(limits.check("a", &[], u32::MAX, u32::MAX).is_ok());
    }
}
