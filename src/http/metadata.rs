//! API v2 metadata: `/`, `/brokers`, `/topics` and a topic's partitions.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::authenticate::{authorize, may_describe, AuthState};
use super::v2::json as v2_json;
use super::{check_accept, parse_partition, parse_topic, AppState};
use crate::auth::Operation;
use crate::error::ApiError;
use crate::kafka::{MetadataError, PartitionMetadata, TopicMetadata};

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
    let cluster = state.kafka.cluster().await?;
    Ok(v2_json(&BrokerList {
        brokers: cluster.brokers,
    }))
}

/// Kafka's internal topics (`__consumer_offsets`, `__transaction_state`…) are not listed.
fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}

/// `GET /topics`: topic names the caller may describe, sorted, internal topics excluded.
pub async fn list_topics(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, ApiError> {
    check_accept(&req)?;
    let cluster = state.kafka.cluster().await?;
    let mut names: Vec<String> = cluster
        .topics
        .into_iter()
        .map(|t| t.name)
        .filter(|n| !is_internal(n) && may_describe(&req, &auth, n))
        .collect();
    names.sort();
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

/// The topic's current metadata, asked of the cluster (not the cache), so that these
/// endpoints show what Kafka shows. The policy is checked first: a caller may not learn
/// whether a topic it cannot describe exists.
async fn fresh_topic(
    req: &HttpRequest,
    state: &AppState,
    auth: &AuthState,
    raw_topic: &str,
) -> Result<TopicMetadata, ApiError> {
    let topic = parse_topic(raw_topic)?;
    authorize(req, auth, Operation::Describe, topic.as_str())?;
    let cluster = state.kafka.cluster().await?;
    cluster
        .topics
        .into_iter()
        .find(|t| t.name == topic.as_str())
        .ok_or(ApiError::Metadata(MetadataError::UnknownTopic))
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
    let topic = fresh_topic(&req, &state, &auth, &path).await?;
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
    let topic = fresh_topic(&req, &state, &auth, &path).await?;
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
    let topic = fresh_topic(&req, &state, &auth, &raw_topic).await?;
    let found = topic
        .partition(partition.id())
        .ok_or(ApiError::PartitionNotFound)?;
    Ok(v2_json(&PartitionBody::from(found)))
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
    fn internal_topics() {
        assert!(is_internal("__consumer_offsets"));
        assert!(!is_internal("_schemas"));
        assert!(!is_internal("orders"));
    }
}
