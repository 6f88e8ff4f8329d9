//! What the integration tests share: the app in this process ([`TestApp`]) or as the real
//! binary ([`Binary`]), the tansu brokers that `scripts/test.sh` starts and librdkafka's mock
//! cluster ([`Cluster`], [`mock_cluster`]), policy files ([`Policy`]), a local identity
//! provider ([`idp`]), a Schema Registry double with Confluent's deserializers to read what
//! was written ([`registry`]), and waits for a condition where a fixed sleep would be a guess
//! ([`wait_until`] and the metric waits built on it).

mod app;
mod binary;
mod cluster;
pub mod idp;
pub mod otlp;
mod policy;
mod redis;
pub mod registry;
mod wait;

use std::path::PathBuf;

pub use app::{body_of, read_response, Response, TestApp};
pub use binary::Binary;
pub use cluster::{mock_cluster, Cluster, Consumed, OwnBroker};
pub use policy::Policy;
pub use redis::RedisServer;
pub use wait::wait_until;

pub const V2: &str = "application/vnd.kafka.v2+json";
pub const JSON_V2: &str = "application/vnd.kafka.json.v2+json";
pub const BINARY_V2: &str = "application/vnd.kafka.binary.v2+json";

/// The records acknowledged to anonymous clients in the json format, on topics the metrics
/// configuration does not list.
pub const PRODUCED_OK: &str = r#"kafka_rest_records_produced_total{format="json",outcome="ok",principal="anonymous",topic="_other"}"#;

/// Metadata calls (each charged as one record) of every caller limited to two, then 429:
/// one record per second with a burst of two.
pub fn two_calls_then_429(settings: &mut kafka_rest_proxy::config::Settings) {
    settings.limits.max_records_per_request = 2;
    settings.limits.rate.default = kafka_rest_proxy::config::Rate {
        records_per_second: 1,
        records_burst: Some(2),
        ..kafka_rest_proxy::config::Rate::default()
    };
}

/// A 429 refusal of the rate limit: its code and `Retry-After`.
#[track_caller]
pub fn assert_rate_limited(r: &Response) {
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.json()["error_code"], 429);
    assert!(r.header("retry-after").is_some(), "{r:?}");
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The path of a command on PATH, or a panic saying how to get it.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: run scripts/install-test-tools.sh"))
}

/// The value of the sample `name{labels}` (labels in the exposition's sorted order) in a
/// Prometheus text exposition; 0 when absent.
pub fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
        .unwrap_or(0.0)
}
