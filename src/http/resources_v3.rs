//! API v3 resources, read only: the cluster, its topics and their partitions, its brokers,
//! in Confluent's `kind` / `metadata` / `data` shapes (kafka-rest's `ClustersResource`,
//! `TopicsResource`, `PartitionsResource` and `BrokersResource`).
//!
//! Served like the v2 metadata endpoints and through the same steps (`describe`): from the
//! Kafka layer's caches, one rate-limit charge per call, the policy's describe grant per
//! topic, the same topic filter for listings. The path's cluster id must be the cluster's
//! own. Links to resources this service does not serve (configs, ACLs, consumer groups,
//! reassignments, replicas) are rendered as Confluent renders them: clients only read them.
//! What only DescribeConfigs or DescribeCluster could tell is left as Confluent leaves it
//! when it is unknown: no `controller`, no broker `rack`, no `authorized_operations`.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::http::uri::Authority;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::authenticate::AuthState;
use super::describe::{charge, describable_topic, is_internal, listed_topics};
use super::v3::{json, V3Error};
use super::{check_accept, AppState};
use crate::domain::Partition;
use crate::error::ApiError;
use crate::kafka::{BrokerMetadata, MetadataError, PartitionMetadata, TopicMetadata};

/// `GET /v3/clusters`: the one cluster this service serves.
pub async fn list_clusters(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, V3Error> {
    check_accept(&req)?;
    charge(&req, &state)?;
    let links = Links::new(&req, &state, &auth, state.kafka.cluster_id().await?);
    Ok(json(
        StatusCode::OK,
        &Collection {
            kind: "KafkaClusterList",
            metadata: CollectionMetadata::new(format!("{}/v3/clusters", links.base)),
            data: vec![links.cluster()],
        },
    ))
}

/// `GET /v3/clusters/{cluster_id}`.
pub async fn get_cluster(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, V3Error> {
    check_accept(&req)?;
    charge(&req, &state)?;
    let links = cluster_links(&req, &state, &auth, &path).await?;
    Ok(json(StatusCode::OK, &links.cluster()))
}

/// `GET /v3/clusters/{cluster_id}/topics`: the topics the caller may describe, by name,
/// internal topics excluded (as `GET /topics`).
pub async fn list_topics(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, V3Error> {
    check_accept(&req)?;
    charge(&req, &state)?;
    let links = cluster_links(&req, &state, &auth, &path).await?;
    let cluster = state.kafka.cluster().await?;
    Ok(json(
        StatusCode::OK,
        &Collection {
            kind: "KafkaTopicList",
            metadata: CollectionMetadata::new(links.url(&["topics"])),
            data: listed_topics(&req, &auth, &cluster)
                .into_iter()
                .map(|topic| links.topic(topic))
                .collect(),
        },
    ))
}

/// `GET /v3/clusters/{cluster_id}/topics/{topic_name}`.
pub async fn get_topic(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, V3Error> {
    check_accept(&req)?;
    let (cluster_id, topic_name) = path.into_inner();
    let (links, topic) = cached_topic(&req, &state, &auth, &cluster_id, &topic_name, None).await?;
    Ok(json(StatusCode::OK, &links.topic(&topic)))
}

/// `GET /v3/clusters/{cluster_id}/topics/{topic_name}/partitions`.
pub async fn list_partitions(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, V3Error> {
    check_accept(&req)?;
    let (cluster_id, topic_name) = path.into_inner();
    let (links, topic) = cached_topic(&req, &state, &auth, &cluster_id, &topic_name, None).await?;
    Ok(json(
        StatusCode::OK,
        &Collection {
            kind: "KafkaPartitionList",
            metadata: CollectionMetadata::new(links.url(&["topics", &topic.name, "partitions"])),
            data: topic
                .partitions
                .iter()
                .map(|partition| links.partition(&topic.name, partition))
                .collect(),
        },
    ))
}

/// `GET /v3/clusters/{cluster_id}/topics/{topic_name}/partitions/{partition_id}`.
pub async fn get_partition(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, V3Error> {
    check_accept(&req)?;
    let (cluster_id, topic_name, partition_id) = path.into_inner();
    let partition = parse_partition_id(&partition_id)?;
    let (links, topic) = cached_topic(
        &req,
        &state,
        &auth,
        &cluster_id,
        &topic_name,
        Some(partition),
    )
    .await?;
    let partition = topic
        .partition(partition.id())
        .ok_or(ApiError::ResourceNotFound)?;
    Ok(json(
        StatusCode::OK,
        &links.partition(&topic.name, partition),
    ))
}

/// `GET /v3/clusters/{cluster_id}/brokers`.
pub async fn list_brokers(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, V3Error> {
    check_accept(&req)?;
    charge(&req, &state)?;
    let links = cluster_links(&req, &state, &auth, &path).await?;
    let cluster = state.kafka.cluster().await?;
    Ok(json(
        StatusCode::OK,
        &Collection {
            kind: "KafkaBrokerList",
            metadata: CollectionMetadata::new(links.url(&["brokers"])),
            data: cluster.brokers.iter().map(|b| links.broker(b)).collect(),
        },
    ))
}

/// The links of a request whose path names `cluster_id`, once that is the cluster this
/// service serves.
async fn cluster_links(
    req: &HttpRequest,
    state: &AppState,
    auth: &AuthState,
    cluster_id: &str,
) -> Result<Links, ApiError> {
    let own = state.kafka.cluster_id().await?;
    if *own != *cluster_id {
        return Err(ApiError::ClusterNotFound(cluster_id.to_owned()));
    }
    Ok(Links::new(req, state, auth, own))
}

/// The topic a v3 path names, from the topic cache, checked as v2 checks it (policy, then
/// the charge) and then against the path's cluster; with `partition`, that partition must
/// exist. A topic that does not exist (or cannot: an invalid name) gets Confluent's v3
/// answer, 40403, and a missing partition its bare 404 (v2 says 40401 and 40402).
async fn cached_topic(
    req: &HttpRequest,
    state: &AppState,
    auth: &AuthState,
    cluster_id: &str,
    topic_name: &str,
    partition: Option<Partition>,
) -> Result<(Links, Arc<TopicMetadata>), ApiError> {
    let not_hosted = || ApiError::TopicNotHosted {
        topic: topic_name.to_owned(),
        partition: partition.map(Partition::id),
    };
    let topic = describable_topic(req, auth, topic_name).map_err(|e| match e {
        ApiError::InvalidTopicName(_) => not_hosted(),
        other => other,
    })?;
    charge(req, state)?;
    let links = cluster_links(req, state, auth, cluster_id).await?;
    let topic = state
        .kafka
        .topic(&topic, partition)
        .await
        .map_err(|e| match e {
            MetadataError::UnknownTopic => not_hosted(),
            MetadataError::UnknownPartition => ApiError::ResourceNotFound,
            other => other.into(),
        })?;
    Ok((links, topic))
}

/// The partition id in the path. As in Confluent (a JAX-RS `Integer` parameter), what is
/// not an `int` names nothing, and neither does a negative id: a bare 404.
fn parse_partition_id(raw: &str) -> Result<Partition, ApiError> {
    raw.parse::<i32>()
        .ok()
        .and_then(|id| Partition::new(i64::from(id)))
        .ok_or(ApiError::ResourceNotFound)
}

/// Where a body's links point, `{base}/v3/clusters/{cluster_id}/…`, and the resources'
/// names, `crn:///kafka={cluster_id}/…`: as kafka-rest's `UrlFactory` and `CrnFactory`
/// build them (the latter with Confluent's default, empty, CRN authority).
struct Links {
    base: String,
    cluster_id: Arc<str>,
}

impl Links {
    /// The base is `server.advertised_url` when set; else the request's scheme and host,
    /// as `X-Forwarded-Proto` / `X-Forwarded-Host` (or `Forwarded`) give them when the
    /// peer is a trusted proxy, and as the connection and `Host` header give them
    /// otherwise.
    fn new(req: &HttpRequest, state: &AppState, auth: &AuthState, cluster_id: Arc<str>) -> Links {
        let base = match &state.advertised_url {
            Some(url) => url.as_str().to_owned(),
            None if req
                .peer_addr()
                .is_some_and(|peer| auth.authenticator.is_trusted_proxy(peer.ip())) =>
            {
                let info = req.connection_info();
                format!("{}://{}", info.scheme(), info.host())
            }
            None => {
                let scheme = if req.app_config().secure() {
                    "https"
                } else {
                    "http"
                };
                // A Host that is not a host[:port] would make every link unusable; the
                // listener's own address is better than that.
                let host = req
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .or_else(|| req.uri().authority().map(Authority::as_str))
                    .filter(|h| h.parse::<Authority>().is_ok())
                    .unwrap_or_else(|| req.app_config().host());
                format!("{scheme}://{host}")
            }
        };
        Links { base, cluster_id }
    }

    /// The URL of `segments` under the cluster.
    fn url(&self, segments: &[&str]) -> String {
        let mut url = format!("{}/v3/clusters/{}", self.base, self.cluster_id);
        for segment in segments {
            url.push('/');
            url.push_str(segment);
        }
        url
    }

    fn related(&self, segments: &[&str]) -> Relationship {
        Relationship {
            related: self.url(segments),
        }
    }

    /// The resource name of `(type, id)` pairs under the cluster.
    fn crn(&self, parts: &[(&str, &str)]) -> String {
        let mut crn = format!("crn:///kafka={}", self.cluster_id);
        for (kind, id) in parts {
            crn.push('/');
            crn.push_str(kind);
            crn.push('=');
            crn.push_str(id);
        }
        crn
    }

    fn cluster(&self) -> ClusterData<'_> {
        ClusterData {
            kind: "KafkaCluster",
            metadata: ResourceMetadata {
                self_url: self.url(&[]),
                resource_name: self.crn(&[]),
            },
            cluster_id: &self.cluster_id,
            controller: None,
            acls: self.related(&["acls"]),
            brokers: self.related(&["brokers"]),
            broker_configs: self.related(&["broker-configs"]),
            consumer_groups: self.related(&["consumer-groups"]),
            topics: self.related(&["topics"]),
            partition_reassignments: self.related(&[
                "topics",
                "-",
                "partitions",
                "-",
                "reassignment",
            ]),
        }
    }

    fn topic<'a>(&'a self, topic: &'a TopicMetadata) -> TopicData<'a> {
        let name = topic.name.as_str();
        TopicData {
            kind: "KafkaTopic",
            metadata: ResourceMetadata {
                self_url: self.url(&["topics", name]),
                resource_name: self.crn(&[("topic", name)]),
            },
            cluster_id: &self.cluster_id,
            topic_name: name,
            is_internal: is_internal(name),
            // Confluent's count: the replicas of the first partition.
            replication_factor: topic.partitions.first().map_or(0, |p| p.replicas.len()),
            partitions_count: topic.partitions.len(),
            partitions: self.related(&["topics", name, "partitions"]),
            configs: self.related(&["topics", name, "configs"]),
            partition_reassignments: self.related(&[
                "topics",
                name,
                "partitions",
                "-",
                "reassignment",
            ]),
            authorized_operations: &[],
        }
    }

    fn partition<'a>(&'a self, topic: &'a str, partition: &PartitionMetadata) -> PartitionData<'a> {
        let id = partition.id.to_string();
        PartitionData {
            kind: "KafkaPartition",
            metadata: ResourceMetadata {
                self_url: self.url(&["topics", topic, "partitions", &id]),
                resource_name: self.crn(&[("topic", topic), ("partition", &id)]),
            },
            cluster_id: &self.cluster_id,
            topic_name: topic,
            partition_id: partition.id,
            leader: (partition.leader >= 0).then(|| {
                let leader = partition.leader.to_string();
                self.related(&["topics", topic, "partitions", &id, "replicas", &leader])
            }),
            replicas: self.related(&["topics", topic, "partitions", &id, "replicas"]),
            reassignment: self.related(&["topics", topic, "partitions", &id, "reassignment"]),
        }
    }

    fn broker<'a>(&'a self, broker: &'a BrokerMetadata) -> BrokerData<'a> {
        let id = broker.id.to_string();
        BrokerData {
            kind: "KafkaBroker",
            metadata: ResourceMetadata {
                self_url: self.url(&["brokers", &id]),
                resource_name: self.crn(&[("broker", &id)]),
            },
            cluster_id: &self.cluster_id,
            broker_id: broker.id,
            host: Some(broker.host.as_str()).filter(|h| !h.is_empty()),
            port: Some(broker.port).filter(|p| *p >= 0),
            rack: None,
            configs: self.related(&["brokers", &id, "configs"]),
            partition_replicas: self.related(&["brokers", &id, "partition-replicas"]),
        }
    }
}

// The bodies, field for field in the order Confluent writes them; an absent optional
// relationship or value is written as `null`, as Confluent's Jackson writes an empty
// `Optional`.

/// A collection: `kind`, `metadata` (`self`, `next`), `data`.
#[derive(Serialize)]
struct Collection<T> {
    kind: &'static str,
    metadata: CollectionMetadata,
    data: Vec<T>,
}

#[derive(Serialize)]
struct CollectionMetadata {
    #[serde(rename = "self")]
    self_url: String,
    /// Collections come whole: there is never a next page.
    next: Option<String>,
}

impl CollectionMetadata {
    fn new(self_url: String) -> CollectionMetadata {
        CollectionMetadata {
            self_url,
            next: None,
        }
    }
}

#[derive(Serialize)]
struct ResourceMetadata {
    #[serde(rename = "self")]
    self_url: String,
    resource_name: String,
}

#[derive(Serialize)]
struct Relationship {
    related: String,
}

#[derive(Serialize)]
struct ClusterData<'a> {
    kind: &'static str,
    metadata: ResourceMetadata,
    cluster_id: &'a str,
    /// Unknown: librdkafka's metadata does not name the controller.
    controller: Option<Relationship>,
    acls: Relationship,
    brokers: Relationship,
    broker_configs: Relationship,
    consumer_groups: Relationship,
    topics: Relationship,
    partition_reassignments: Relationship,
}

#[derive(Serialize)]
struct TopicData<'a> {
    kind: &'static str,
    metadata: ResourceMetadata,
    cluster_id: &'a str,
    topic_name: &'a str,
    is_internal: bool,
    replication_factor: usize,
    partitions_count: usize,
    partitions: Relationship,
    configs: Relationship,
    partition_reassignments: Relationship,
    /// Confluent's answer when they are not asked for (`include_authorized_operations`,
    /// which this service ignores).
    authorized_operations: &'static [&'static str],
}

#[derive(Serialize)]
struct PartitionData<'a> {
    kind: &'static str,
    metadata: ResourceMetadata,
    cluster_id: &'a str,
    topic_name: &'a str,
    partition_id: i32,
    leader: Option<Relationship>,
    replicas: Relationship,
    reassignment: Relationship,
}

#[derive(Serialize)]
struct BrokerData<'a> {
    kind: &'static str,
    metadata: ResourceMetadata,
    cluster_id: &'a str,
    broker_id: i32,
    host: Option<&'a str>,
    port: Option<i32>,
    /// Unknown: librdkafka's metadata does not carry racks.
    rack: Option<&'a str>,
    configs: Relationship,
    partition_replicas: Relationship,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        Links {
            base: "https://api.example.com/kafka".into(),
            cluster_id: Arc::from("c1"),
        }
    }

    #[test]
    fn cluster_shape() {
        let links = links();
        assert_eq!(
            serde_json::to_string(&links.cluster()).unwrap(),
            concat!(
                r#"{"kind":"KafkaCluster","metadata":{"self":"https://api.example.com/kafka/v3/clusters/c1","resource_name":"crn:///kafka=c1"},"#,
                r#""cluster_id":"c1","controller":null,"#,
                r#""acls":{"related":"https://api.example.com/kafka/v3/clusters/c1/acls"},"#,
                r#""brokers":{"related":"https://api.example.com/kafka/v3/clusters/c1/brokers"},"#,
                r#""broker_configs":{"related":"https://api.example.com/kafka/v3/clusters/c1/broker-configs"},"#,
                r#""consumer_groups":{"related":"https://api.example.com/kafka/v3/clusters/c1/consumer-groups"},"#,
                r#""topics":{"related":"https://api.example.com/kafka/v3/clusters/c1/topics"},"#,
                r#""partition_reassignments":{"related":"https://api.example.com/kafka/v3/clusters/c1/topics/-/partitions/-/reassignment"}}"#
            )
        );
    }

    #[test]
    fn topic_shape_counts_the_first_partitions_replicas() {
        let links = links();
        let partition = |id| PartitionMetadata {
            id,
            leader: 1,
            replicas: vec![1, 2, 3],
            in_sync_replicas: vec![1],
        };
        let topic = TopicMetadata {
            name: "orders".into(),
            partitions: vec![partition(0), partition(1)],
        };
        assert_eq!(
            serde_json::to_string(&links.topic(&topic)).unwrap(),
            concat!(
                r#"{"kind":"KafkaTopic","metadata":{"self":"https://api.example.com/kafka/v3/clusters/c1/topics/orders","resource_name":"crn:///kafka=c1/topic=orders"},"#,
                r#""cluster_id":"c1","topic_name":"orders","is_internal":false,"replication_factor":3,"partitions_count":2,"#,
                r#""partitions":{"related":"https://api.example.com/kafka/v3/clusters/c1/topics/orders/partitions"},"#,
                r#""configs":{"related":"https://api.example.com/kafka/v3/clusters/c1/topics/orders/configs"},"#,
                r#""partition_reassignments":{"related":"https://api.example.com/kafka/v3/clusters/c1/topics/orders/partitions/-/reassignment"},"#,
                r#""authorized_operations":[]}"#
            )
        );
    }

    #[test]
    fn a_partition_without_leader_has_a_null_leader() {
        let links = links();
        let partition = PartitionMetadata {
            id: 2,
            leader: -1,
            replicas: vec![1],
            in_sync_replicas: vec![],
        };
        assert_eq!(
            serde_json::to_string(&links.partition("orders", &partition)).unwrap(),
            concat!(
                r#"{"kind":"KafkaPartition","metadata":{"self":"https://api.example.com/kafka/v3/clusters/c1/topics/orders/partitions/2","resource_name":"crn:///kafka=c1/topic=orders/partition=2"},"#,
                r#""cluster_id":"c1","topic_name":"orders","partition_id":2,"leader":null,"#,
                r#""replicas":{"related":"https://api.example.com/kafka/v3/clusters/c1/topics/orders/partitions/2/replicas"},"#,
                r#""reassignment":{"related":"https://api.example.com/kafka/v3/clusters/c1/topics/orders/partitions/2/reassignment"}}"#
            )
        );
    }

    #[test]
    fn a_broker_without_address_has_null_host_and_port() {
        let links = links();
        let broker = BrokerMetadata {
            id: 7,
            host: String::new(),
            port: -1,
        };
        assert_eq!(
            serde_json::to_string(&links.broker(&broker)).unwrap(),
            concat!(
                r#"{"kind":"KafkaBroker","metadata":{"self":"https://api.example.com/kafka/v3/clusters/c1/brokers/7","resource_name":"crn:///kafka=c1/broker=7"},"#,
                r#""cluster_id":"c1","broker_id":7,"host":null,"port":null,"rack":null,"#,
                r#""configs":{"related":"https://api.example.com/kafka/v3/clusters/c1/brokers/7/configs"},"#,
                r#""partition_replicas":{"related":"https://api.example.com/kafka/v3/clusters/c1/brokers/7/partition-replicas"}}"#
            )
        );
    }

    #[test]
    fn partition_ids_are_non_negative_ints() {
        assert_eq!(parse_partition_id("0").unwrap().id(), 0);
        assert_eq!(parse_partition_id("+3").unwrap().id(), 3);
        for bad in ["-1", "x", "", "2147483648", "1.0"] {
            assert!(
                matches!(parse_partition_id(bad), Err(ApiError::ResourceNotFound)),
                "{bad}"
            );
        }
    }
}
