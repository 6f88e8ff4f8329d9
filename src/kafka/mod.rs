//! The only code that imports rdkafka: the shared producer, its health, the topic metadata
//! cache and the embedded dev cluster.

pub mod client_config;
mod context;
mod delivery;
mod dev;
mod health;
mod metadata;
mod producer;

pub use health::{Health, NotReady};
pub use metadata::{ClusterMetadata, MetadataError, PartitionMetadata, TopicMetadata};
pub use producer::{librdkafka_version, Delivered, Kafka, KafkaSetupError, ProduceError};
