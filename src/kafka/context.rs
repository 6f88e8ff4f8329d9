//! The rdkafka client context: where librdkafka's global error callback lands.

use std::sync::Arc;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::health::Health;

/// Routes librdkafka's global errors into [`Health`]; everything else is logged.
pub struct ProxyContext {
    pub health: Arc<Health>,
}

impl ClientContext for ProxyContext {
    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
                tracing::warn!(reason, "Kafka rejected the producer's authentication");
                self.health.on_authentication_error(reason);
            }
            Some(RDKafkaErrorCode::Fatal) => {
                tracing::error!(reason, "the Kafka producer failed fatally");
                self.health.on_fatal_error(reason);
            }
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                tracing::warn!(reason, "all Kafka brokers are down");
                self.health.request_probe();
            }
            _ => tracing::warn!(%error, reason, "Kafka client error"),
        }
    }
}
