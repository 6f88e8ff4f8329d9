//! API v2 metadata: `/`, `/brokers`, `/topics`, a topic's partitions and a partition's
//! offsets.
//!
//! Served from the Kafka layer's caches, never a cluster request per call: a topic from the
//! topic cache (refreshed in the background and on a miss), `/topics` and `/brokers` from a
//! cluster listing at most `metadata.refresh_interval_ms` old. The exception is a
//! partition's offsets, which move with every record: the partition's leader is asked each
//! time, once the cache knows the partition. Each call is charged to the caller's rate
//! limit as one record.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::authenticate::AuthState;
use super::describe::{charge, describable_topic, listed_topics};
use super::v2::json as v2_json;
use super::{check_accept, parse_partition, AppState};
use crate::domain::Partition;
use crate::error::ApiError;
use crate::kafka::{PartitionMetadata, TopicMetadata, Watermarks};

/// `GET /`: an empty object, as Confluent answers.
pub async fn root(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    check_accept(&req)?;
    Ok(v2_json(&serde_json::json!({})))
}

#[derive(Serialize)]
struct BrokerList {
    brokers: Vec<i32>,
}

/// `GET /brokers`.
pub async fn list_brokers(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_accept(&req)?;
    charge(&req, &state)?;
    let cluster = state.kafka.cluster().await?;
    Ok(v2_json(&BrokerList {
        brokers: cluster.brokers.iter().map(|b| b.id).collect(),
    }))
}

/// `GET /topics`: topic names the caller may describe, sorted, internal topics excluded.
pub async fn list_topics(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, ApiError> {
    check_accept(&req)?;
    charge(&req, &state)?;
    let cluster = state.kafka.cluster().await?;
    let names: Vec<&str> = listed_topics(&req, &auth, &cluster)
        .into_iter()
        .map(|t| t.name.as_str())
        .collect();
    Ok(v2_json(&names))
}

#[derive(Serialize)]
struct Replica {
    broker: i32,
    leader: bool,
    in_sync: bool,
}

#[derive(Serialize)]
struct PartitionBody {
    partition: i32,
    leader: i32,
    replicas: Vec<Replica>,
}

impl From<&PartitionMetadata> for PartitionBody {
    fn from(p: &PartitionMetadata) -> Self {
        PartitionBody {
            partition: p.id,
            leader: p.leader,
            replicas: p
                .replicas
                .iter()
                .map(|&broker| Replica {
                    broker,
                    leader: broker == p.leader,
                    in_sync: p.in_sync_replicas.contains(&broker),
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct TopicBody {
    name: String,
    configs: serde_json::Map<String, serde_json::Value>,
    partitions: Vec<PartitionBody>,
}

/// The topic's metadata from the topic cache (a miss, or a `partition` beyond the cached
/// count, asks the cluster once), once the caller is known to be allowed to describe it.
async fn cached_topic(
    req: &HttpRequest,
    state: &AppState,
    auth: &AuthState,
    raw_topic: &str,
    partition: Option<Partition>,
) -> Result<Arc<TopicMetadata>, ApiError> {
    let topic = describable_topic(req, auth, raw_topic)?;
    charge(req, state)?;
    Ok(state.kafka.topic(&topic, partition).await?)
}

/// `GET /topics/{topic}`.
///
/// `configs` is empty: topic configurations need the DescribeConfigs API, which this
/// service does not call.
pub async fn get_topic(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, ApiError> {
    check_accept(&req)?;
    let topic = cached_topic(&req, &state, &auth, &path, None).await?;
    Ok(v2_json(&TopicBody {
        name: topic.name.clone(),
        configs: serde_json::Map::new(),
        partitions: topic.partitions.iter().map(PartitionBody::from).collect(),
    }))
}

/// `GET /topics/{topic}/partitions`.
pub async fn list_partitions(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, ApiError> {
    check_accept(&req)?;
    let topic = cached_topic(&req, &state, &auth, &path, None).await?;
    let partitions: Vec<PartitionBody> = topic.partitions.iter().map(PartitionBody::from).collect();
    Ok(v2_json(&partitions))
}

/// `GET /topics/{topic}/partitions/{partition}`.
pub async fn get_partition(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, ApiError> {
    check_accept(&req)?;
    let (raw_topic, raw_partition) = path.into_inner();
    let partition = parse_partition(&raw_partition)?;
    let topic = cached_topic(&req, &state, &auth, &raw_topic, Some(partition)).await?;
    let found = topic
        .partition(partition.id())
        .ok_or(ApiError::PartitionNotFound)?;
    Ok(v2_json(&PartitionBody::from(found)))
}

#[derive(Serialize)]
struct OffsetsBody {
    beginning_offset: i64,
    end_offset: i64,
}

impl From<Watermarks> for OffsetsBody {
    fn from(w: Watermarks) -> Self {
        OffsetsBody {
            beginning_offset: w.low,
            end_offset: w.high,
        }
    }
}

/// `GET /topics/{topic}/partitions/{partition}/offsets`: the partition's low and high
/// watermarks. The cache answers an unknown topic or partition (40401, 40402) without
/// asking the leader.
pub async fn get_partition_offsets(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, ApiError> {
    check_accept(&req)?;
    let (raw_topic, raw_partition) = path.into_inner();
    let partition = parse_partition(&raw_partition)?;
    let topic = cached_topic(&req, &state, &auth, &raw_topic, Some(partition)).await?;
    let watermarks = state.kafka.watermarks(&topic, partition).await?;
    Ok(v2_json(&OffsetsBody::from(watermarks)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_shape() {
        let body = PartitionBody::from(&PartitionMetadata {
            id: 0,
            leader: 1,
            replicas: vec![1, 2],
            in_sync_replicas: vec![1],
        });
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"partition":0,"leader":1,"replicas":[{"broker":1,"leader":true,"in_sync":true},{"broker":2,"leader":false,"in_sync":false}]}"#
        );
    }

    #[test]
    fn offsets_shape() {
        let body = OffsetsBody::from(Watermarks { low: 3, high: 42 });
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"beginning_offset":3,"end_offset":42}"#
        );
    }
}
