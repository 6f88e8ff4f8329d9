//! What a produce or a metadata lookup comes to: the bottom of `kafka/`, imported by the
//! rest of it and by the layers above, importing nothing of `kafka/` itself.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Where Kafka stored a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp as Kafka reports it (milliseconds since the epoch): the one
    /// it was sent with, or the broker's time on a topic with `LogAppendTime`; `None` when
    /// the report carries none.
    pub timestamp_ms: Option<i64>,
}

/// One record's outcome.
pub type Outcome = Result<Delivered, ProduceError>;

/// Why one record was not written. The message is what the partner reads in `error`: a
/// librdkafka error code's name at most, never librdkafka's own text, which names brokers
/// (that detail is kept for the log, see [`ProduceError::detail`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    /// Worth retrying: timeouts, leader elections, too few in-sync replicas.
    #[error("{0}")]
    Retriable(String),
    #[error("{0}")]
    NonRetriable(String),
    /// The local queue stayed full for the whole bounded wait.
    #[error("The producer's queue is full; retry later.")]
    QueueFull,
    /// The cluster rejects the service's credentials; the detail is librdkafka's report.
    #[error("Kafka authentication failed: the cluster rejects the service's credentials.")]
    Authentication(String),
    #[error("Not authorized to write to the topic.")]
    Authorization(String),
    #[error("Topic not found.")]
    UnknownTopic,
    #[error("Partition not found.")]
    UnknownPartition,
}

impl ProduceError {
    /// What the partner is not told: librdkafka's detail, for the log.
    pub fn detail(&self) -> Option<&str> {
        match self {
            ProduceError::Authentication(detail) | ProduceError::Authorization(detail) => {
                Some(detail)
            }
            _ => None,
        }
    }

    /// Whether the record may be in Kafka despite this error: a retriable failure (a
    /// timeout, a lost connection, a leader change) can come after the broker appended the
    /// record and before its acknowledgement arrived. The other failures mean the record
    /// was never written: refused, or never handed to a broker.
    pub fn may_have_been_written(&self) -> bool {
        matches!(self, ProduceError::Retriable(_))
    }

    /// The classification of a librdkafka error for one record.
    pub fn from_kafka(error: &KafkaError) -> ProduceError {
        let Some(code) = error.rdkafka_error_code() else {
            return ProduceError::NonRetriable(error.to_string());
        };
        use RDKafkaErrorCode as C;
        match code {
            C::QueueFull => ProduceError::QueueFull,
            C::Authentication | C::SaslAuthenticationFailed => {
                ProduceError::Authentication(description(code))
            }
            C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed => {
                ProduceError::Authorization(description(code))
            }
            C::UnknownTopic | C::UnknownTopicOrPartition => ProduceError::UnknownTopic,
            C::UnknownPartition => ProduceError::UnknownPartition,
            C::MessageTimedOut
            | C::OperationTimedOut
            | C::RequestTimedOut
            | C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::NetworkException
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::BrokerNotAvailable
            | C::ReplicaNotAvailable
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::KafkaStorageError
            | C::FencedLeaderEpoch
            | C::UnknownLeaderEpoch
            // Kafka signals produce quotas by delaying its answers (throttle time), not by
            // this code, which it keeps for topic creation and deletion; should a broker
            // send it for records, waiting and retrying is the cure, not changing them.
            | C::ThrottlingQuotaExceeded
            | C::PurgeQueue
            | C::PurgeInflight => ProduceError::Retriable(description(code)),
            _ => ProduceError::NonRetriable(description(code)),
        }
    }
}

/// librdkafka's description of `code` (`Local: Message timed out`, `Broker: Message size too
/// large`): what the partner reads, without the Rust variant name that rdkafka's `Display`
/// puts before it (`MessageTimedOut (Local: Message timed out)`).
fn description(code: RDKafkaErrorCode) -> String {
    let shown = code.to_string();
    let name = format!("{code:?} (");
    shown
        .strip_prefix(&name)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or(&shown)
        .to_owned()
}

/// Why topic metadata could not be had. The message is what the partner reads: stable and
/// generic, since librdkafka's text names brokers; the detail is for the log
/// ([`MetadataError::detail`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("Topic not found.")]
    UnknownTopic,
    #[error("Partition not found.")]
    UnknownPartition,
    #[error("Kafka authentication failed: the cluster rejects the service's credentials.")]
    Authentication(String),
    #[error("Not authorized to access the topic.")]
    Authorization(String),
    #[error("No Kafka broker is available.")]
    Unavailable(String),
    #[error("The Kafka producer failed and cannot recover.")]
    Fatal(String),
    /// The cluster names no cluster id (Metadata v2 needs Kafka 0.10.1): API v3 paths,
    /// which start with it, cannot be served.
    #[error("The Kafka cluster does not report a cluster id (Kafka 0.10.1 or later is needed).")]
    NoClusterId,
}

impl MetadataError {
    /// What the partner is not told: librdkafka's detail, for the log.
    pub fn detail(&self) -> Option<&str> {
        match self {
            MetadataError::Authentication(detail)
            | MetadataError::Authorization(detail)
            | MetadataError::Unavailable(detail)
            | MetadataError::Fatal(detail) => Some(detail),
            MetadataError::UnknownTopic
            | MetadataError::UnknownPartition
            | MetadataError::NoClusterId => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_are_classified() {
        let classify = |code| ProduceError::from_kafka(&KafkaError::MessageProduction(code));
        assert_eq!(
            classify(RDKafkaErrorCode::QueueFull),
            ProduceError::QueueFull
        );
        assert_eq!(
            classify(RDKafkaErrorCode::MessageTimedOut),
            ProduceError::Retriable("Local: Message timed out".into())
        );
        assert!(matches!(
            classify(RDKafkaErrorCode::NotEnoughReplicas),
            ProduceError::Retriable(_)
        ));
        assert_eq!(
            classify(RDKafkaErrorCode::MessageSizeTooLarge),
            ProduceError::NonRetriable("Broker: Message size too large".into())
        );
        assert!(matches!(
            classify(RDKafkaErrorCode::TopicAuthorizationFailed),
            ProduceError::Authorization(_)
        ));
        assert!(matches!(
            classify(RDKafkaErrorCode::SaslAuthenticationFailed),
            ProduceError::Authentication(_)
        ));
        assert_eq!(
            classify(RDKafkaErrorCode::ThrottlingQuotaExceeded),
            ProduceError::Retriable("Broker: Throttling quota has been exceeded".into())
        );
        assert_eq!(
            classify(RDKafkaErrorCode::UnknownPartition),
            ProduceError::UnknownPartition
        );
    }
}
