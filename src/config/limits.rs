//! `[limits]`: request limits, rate limits and overload shedding.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigError;
use crate::domain::PrincipalId;

/// Request limits, rate limits and overload shedding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Most records in one produce request (422 above).
    pub max_records_per_request: usize,
    /// Largest key + value of one record after conversion (422 above). Keep it at or below
    /// the topic's `max.message.bytes` (Kafka's default is about 1 MiB).
    pub max_record_bytes: usize,
    /// Requests served at once; more get 503 with `Retry-After`.
    pub max_in_flight_requests: usize,
    /// Request-body bytes held at once; more get 503 with `Retry-After`.
    pub max_in_flight_bytes: usize,
    /// Request-body bytes one principal (the client address without authentication) holds
    /// at once, so that one partner's slow bodies cannot hold the whole budget; more get
    /// 503 with `Retry-After` while others still get through.
    pub max_in_flight_bytes_per_principal: usize,
    /// Open connections per HTTP worker thread.
    pub max_connections_per_worker: usize,
    /// Time a client has to send the request headers (408 and close after).
    pub header_read_timeout_ms: u64,
    /// Time a client has to send the whole body (408 and close after).
    pub body_read_timeout_ms: u64,
    /// Per-principal and global rate limits.
    pub rate: RateLimitSettings,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_records_per_request: 1_000,
            max_record_bytes: 1_000_000,
            max_in_flight_requests: 4_096,
            max_in_flight_bytes: 256 * 1024 * 1024,
            max_in_flight_bytes_per_principal: 64 * 1024 * 1024,
            max_connections_per_worker: 2_048,
            header_read_timeout_ms: 5_000,
            body_read_timeout_ms: 30_000,
            rate: RateLimitSettings::default(),
        }
    }
}

/// A rate: records and bytes per second, each with a burst. `0` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rate {
    pub records_per_second: u32,
    /// Records allowed at once; defaults to one second's worth.
    pub records_burst: Option<u32>,
    pub bytes_per_second: u32,
    /// Bytes allowed at once; defaults to one second's worth.
    pub bytes_burst: Option<u32>,
}

/// Rate limits, per instance: behind N tasks, a partner's effective limit is N times these.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Every principal's limit (by client address when authentication is off).
    pub default: Rate,
    /// The whole instance.
    pub global: Rate,
    /// Limits for named principals, replacing the default. Keys are method-qualified
    /// principal ids (`api_key:partner-a`, `jwt:<sub>`, `cert:<CN>`).
    pub principals: BTreeMap<String, Rate>,
    /// Limits for principals holding a scope (a policy group), replacing the default; a
    /// principal's own entry wins.
    pub scopes: BTreeMap<String, Rate>,
}

impl LimitSettings {
    /// Checks the limits against each other and against `server.max_body_bytes`, so that a
    /// largest request can always pass.
    pub(super) fn validate(&self, max_body_bytes: usize) -> Result<(), ConfigError> {
        let l = self;
        for (key, value) in [
            ("limits.max_records_per_request", l.max_records_per_request),
            ("limits.max_record_bytes", l.max_record_bytes),
            ("limits.max_in_flight_requests", l.max_in_flight_requests),
            ("limits.max_in_flight_bytes", l.max_in_flight_bytes),
            (
                "limits.max_in_flight_bytes_per_principal",
                l.max_in_flight_bytes_per_principal,
            ),
            (
                "limits.max_connections_per_worker",
                l.max_connections_per_worker,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be positive"));
            }
        }
        if l.max_in_flight_bytes < max_body_bytes {
            return Err(ConfigError::invalid(
                "limits.max_in_flight_bytes",
                "must be at least server.max_body_bytes, or a largest request could never run",
            ));
        }
        if l.max_in_flight_bytes_per_principal < max_body_bytes {
            return Err(ConfigError::invalid(
                "limits.max_in_flight_bytes_per_principal",
                "must be at least server.max_body_bytes, or a largest request could never run",
            ));
        }
        for id in l.rate.principals.keys() {
            PrincipalId::parse(id).map_err(|e| {
                ConfigError::invalid(&format!("limits.rate.principals.\"{id}\""), e.to_string())
            })?;
        }
        let rates = [
            ("limits.rate.default".to_owned(), &l.rate.default),
            ("limits.rate.global".to_owned(), &l.rate.global),
        ]
        .into_iter()
        .chain(
            l.rate
                .principals
                .iter()
                .map(|(k, r)| (format!("limits.rate.principals.\"{k}\""), r)),
        )
        .chain(
            l.rate
                .scopes
                .iter()
                .map(|(k, r)| (format!("limits.rate.scopes.\"{k}\""), r)),
        );
        for (key, rate) in rates {
            let records_burst = rate.records_burst.unwrap_or(rate.records_per_second);
            if rate.records_per_second > 0 && (records_burst as usize) < l.max_records_per_request {
                return Err(ConfigError::invalid(
                    &format!("{key}.records_burst"),
                    format!(
                        "{records_burst} is below limits.max_records_per_request ({}): a full \
                         request could never pass",
                        l.max_records_per_request
                    ),
                ));
            }
            let bytes_burst = rate.bytes_burst.unwrap_or(rate.bytes_per_second);
            if rate.bytes_per_second > 0 && (bytes_burst as usize) < max_body_bytes {
                return Err(ConfigError::invalid(
                    &format!("{key}.bytes_burst"),
                    format!(
                        "{bytes_burst} is below server.max_body_bytes ({}): a full request \
                         could never pass",
                        max_body_bytes
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_principal_limits_name_qualified_principals() {
        let mut limits = LimitSettings::default();
        limits
            .rate
            .principals
            .insert("api_key:partner-a".into(), Rate::default());
        limits.validate(1024).unwrap();
        limits
            .rate
            .principals
            .insert("partner-b".into(), Rate::default());
        let err = limits.validate(1024).unwrap_err().to_string();
        assert!(
            err.contains("limits.rate.principals.\"partner-b\""),
            "{err}"
        );
        for form in ["api_key:partner-b", "jwt:partner-b", "cert:partner-b"] {
            assert!(err.contains(&format!("\"{form}\"")), "{err}");
        }
    }
}
