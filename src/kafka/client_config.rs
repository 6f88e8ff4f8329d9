//! Settings to librdkafka properties: the one place that knows librdkafka's property names.

use rdkafka::ClientConfig;
use secrecy::ExposeSecret;

use crate::config::KafkaSettings;

/// The producer configuration for `bootstrap_servers`.
///
/// Order matters: the service's own guarantees first, then the typed settings, then the raw
/// pass-through map (whose guarded keys `config` has already rejected).
pub fn producer_config(
    settings: &KafkaSettings,
    bootstrap_servers: &str,
    statistics_interval_ms: u64,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap_servers)
        .set("client.id", &settings.client_id)
        // Durability and ordering: every in-sync replica acknowledges, retries never
        // duplicate or reorder.
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // Keys keep landing where the partner's previous proxy and other producers put
        // them: by default Java's (murmur2, positive, modulo the partition count).
        .set("partitioner", settings.partitioner.as_str())
        // Existence checks must not create topics on clusters that allow auto-creation.
        .set("allow.auto.create.topics", "false")
        .set("compression.codec", settings.compression.as_str())
        .set("linger.ms", settings.linger_ms.to_string())
        .set(
            "message.timeout.ms",
            settings.message_timeout_ms.to_string(),
        )
        // librdkafka notices timed-out records of a broker it cannot reach only when it
        // tries to reconnect, and waits up to this long (its default 10 s) between tries:
        // records were answered up to 10 s after message.timeout.ms, and for up to 10 s
        // after a broker came back. Java's client (Confluent's proxy) waits at most 1 s.
        .set(
            "reconnect.backoff.max.ms",
            RECONNECT_BACKOFF_MAX_MS.to_string(),
        )
        .set("statistics.interval.ms", statistics_interval_ms.to_string())
        .set("security.protocol", settings.security_protocol.as_str());
    if let Some(mechanism) = settings.sasl_mechanism {
        config.set("sasl.mechanisms", mechanism.as_str());
    }
    if let Some(username) = &settings.sasl_username {
        config.set("sasl.username", username);
    }
    if let Some(password) = &settings.sasl_password {
        config.set("sasl.password", password.expose_secret());
    }
    if let Some(ca) = &settings.ssl_ca_location {
        config.set("ssl.ca.location", ca.display().to_string());
    }
    for (key, value) in &settings.librdkafka.0 {
        config.set(key, value);
    }
    config
}

/// The longest wait between two attempts to reach a broker.
const RECONNECT_BACKOFF_MAX_MS: u64 = 1_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Partitioner, SaslMechanism, SecurityProtocol};

    #[test]
    fn guarantees_and_pass_through() {
        let mut settings = KafkaSettings {
            security_protocol: SecurityProtocol::SaslSsl,
            sasl_mechanism: Some(SaslMechanism::ScramSha512),
            sasl_username: Some("u".into()),
            sasl_password: Some("p".into()),
            ..KafkaSettings::default()
        };
        settings
            .librdkafka
            .0
            .insert("linger.ms".into(), "50".into());
        let config = producer_config(&settings, "b:9096", 5000);
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("partitioner"), Some("murmur2_random"));
        assert_eq!(config.get("reconnect.backoff.max.ms"), Some("1000"));
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.password"), Some("p"));
        assert_eq!(
            config.get("linger.ms"),
            Some("50"),
            "pass-through applies last"
        );
    }

    #[test]
    fn the_partitioner_is_the_configured_one() {
        let settings = KafkaSettings {
            partitioner: Partitioner::ConsistentRandom,
            ..KafkaSettings::default()
        };
        let config = producer_config(&settings, "b:9092", 0);
        assert_eq!(config.get("partitioner"), Some("consistent_random"));
    }
}
