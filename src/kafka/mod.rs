//! The only code that imports rdkafka: the shared producer, its health, the topic metadata
//! cache and the embedded dev cluster.
//!
//! Imports run one way: `outcome` (what a produce or a lookup comes to) and `health` import
//! nothing of `kafka/`; `delivery` tracks outcomes; `context` (librdkafka's callbacks and the
//! producer type) builds on those; `metadata` asks the cluster through the producer;
//! `metadata_cache` keeps its answers; `watermarks` asks a partition's leader for its
//! offsets; `producer`, the façade the service uses, sits on top.

pub mod client_config;
mod context;
mod delivery;
mod dev;
mod health;
mod metadata;
mod metadata_cache;
mod outcome;
mod producer;
mod watermarks;

pub use delivery::Deliveries;
pub use health::{Health, NotReady};
pub use metadata::{BrokerMetadata, ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use outcome::{Delivered, MetadataError, Outcome, ProduceError};
pub use producer::{librdkafka_version, Kafka, KafkaSetupError};
pub use watermarks::Watermarks;
