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

    /// librdkafka's partitioner function of a `partitioner` property value, called as
    /// librdkafka calls it for a keyed record (the topic handle is only read for records
    /// without a key, so none is given).
    fn librdkafka_partition(name: &str, key: &[u8], partitions: i32) -> i32 {
        use rdkafka::bindings as rd;
        let partitioner = match name {
            "murmur2_random" => rd::rd_kafka_msg_partitioner_murmur2_random,
            "consistent_random" => rd::rd_kafka_msg_partitioner_consistent_random,
            "fnv1a_random" => rd::rd_kafka_msg_partitioner_fnv1a_random,
            other => panic!("no partitioner {other}"),
        };
        assert!(!key.is_empty(), "an empty key may go to a random partition");
        // SAFETY: `key` is valid for `key.len()` bytes; with a key, the functions read
        // neither the topic handle nor the opaques.
        unsafe {
            partitioner(
                std::ptr::null(),
                key.as_ptr().cast(),
                key.len(),
                partitions,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        }
    }

    /// Java's `Utils.murmur2` (Kafka clients), written from its source.
    fn java_murmur2(data: &[u8]) -> i32 {
        const SEED: u32 = 0x9747_b28c;
        const M: u32 = 0x5bd1_e995;
        let length = data.len();
        let mut h = SEED ^ length as u32;
        let mut chunks = data.chunks_exact(4);
        for chunk in &mut chunks {
            let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            k = k.wrapping_mul(M);
            k ^= k >> 24;
            k = k.wrapping_mul(M);
            h = h.wrapping_mul(M);
            h ^= k;
        }
        let tail = chunks.remainder();
        if tail.len() == 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        if !tail.is_empty() {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        h ^= h >> 13;
        h = h.wrapping_mul(M);
        h ^= h >> 15;
        h as i32
    }

    /// Java's default partitioner for a keyed record: `toPositive(murmur2(key)) % n`.
    fn java_partition(key: &[u8], partitions: i32) -> i32 {
        (java_murmur2(key) & 0x7fff_ffff) % partitions
    }

    /// CRC-32 (ISO-HDLC, zlib's), bit by bit.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for byte in data {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// Sarama's `NewHashPartitioner`: FNV-1a 32 as a signed int, modulo, made positive.
    fn sarama_partition(key: &[u8], partitions: i32) -> i32 {
        let hash = key.iter().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
        });
        ((hash as i32) % partitions).abs()
    }

    #[test]
    fn the_independent_hashes_match_their_reference_values() {
        // apache/kafka clients UtilsTest.testMurmur2
        for (data, expected) in [
            (&b"21"[..], -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ] {
            assert_eq!(java_murmur2(data), expected);
        }
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        // FNV-1a 32 of "a" (the FNV reference table), 0xe40c292c, is negative as an int.
        assert_eq!(
            sarama_partition(b"a", 1000),
            (0xe40c_292cu32 as i32 % 1000).abs()
        );
    }

    proptest::proptest! {
        /// Where the producer the settings configure puts a keyed record without a
        /// partition: librdkafka's function of the configured `partitioner`, which for
        /// every key and partition count agrees with the placement it is documented to
        /// keep (Java's murmur2, librdkafka's CRC32, Sarama's FNV-1a).
        #[test]
        fn keyed_placement_matches_the_documented_partitioner(
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64),
            partitions in 1..=1000i32,
        ) {
            for (partitioner, expected) in [
                (Partitioner::Murmur2Random, java_partition(&key, partitions)),
                (
                    Partitioner::ConsistentRandom,
                    (crc32(&key) % partitions as u32) as i32,
                ),
                (Partitioner::Fnv1aRandom, sarama_partition(&key, partitions)),
            ] {
                let settings = KafkaSettings {
                    partitioner,
                    ..KafkaSettings::default()
                };
                let config = producer_config(&settings, "b:9092", 0);
                let name = config.get("partitioner").expect("a partitioner is set");
                proptest::prop_assert_eq!(
                    librdkafka_partition(name, &key, partitions),
                    expected,
                    "{} with {} partitions",
                    name,
                    partitions
                );
            }
        }
    }
}
