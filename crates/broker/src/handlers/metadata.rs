//! Metadata: brokers, controller, cluster id and topic/partition leadership from the cache;
//! unknown topics are auto-created when the broker and the request allow it.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::{sb, BrokerState, RequestMeta};
use crate::metadata::{ClusterSnapshot, TopicMeta};
use crate::protocol::EncodeError;
use crate::topic;

pub async fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: MetadataRequest) -> Result<Bytes, EncodeError> {
    let snapshot = state.cache.snapshot();
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested = match req.topics {
        None => None,
        Some(list) if list.is_empty() && meta.version == 0 => None,
        Some(list) => Some(list),
    };
    // Before v4 there is no flag and Kafka auto-creates whenever the broker allows it.
    let allow_auto = meta.version < 4 || req.allow_auto_topic_creation;
    let topics = match requested {
        None => {
            let mut all: Vec<&Arc<TopicMeta>> = snapshot.topics.values().collect();
            all.sort_by(|a, b| a.name.cmp(&b.name));
            all.into_iter().map(|t| topic_response(&snapshot, t)).collect()
        }
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for t in list {
                let by_name = t.name.as_ref().map(|n| n.0.to_string());
                let found = match &by_name {
                    Some(name) => snapshot.topic(name),
                    None => snapshot.topic_by_id(t.topic_id),
                };
                if let Some(tm) = found {
                    out.push(topic_response(&snapshot, tm));
                    continue;
                }
                let Some(name) = by_name else {
                    out.push(
                        MetadataResponseTopic::default()
                            .with_name(None)
                            .with_topic_id(t.topic_id)
                            .with_error_code(ResponseError::UnknownTopicId.code()),
                    );
                    continue;
                };
                let code = if let Err(msg) = topic::validate_name(&name) {
                    tracing::debug!(topic = %name, reason = %msg, "metadata for invalid topic name");
                    ResponseError::InvalidTopicException.code()
                } else if allow_auto && state.cluster.maybe_auto_create(&name) {
                    ResponseError::LeaderNotAvailable.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                out.push(
                    MetadataResponseTopic::default()
                        .with_name(Some(TopicName(sb(name))))
                        .with_topic_id(Uuid::nil())
                        .with_error_code(code),
                );
            }
            out
        }
    };
    let brokers = snapshot
        .brokers
        .values()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(sb(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(sb))
        })
        .collect();
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(snapshot.cluster_id.clone().map(sb))
        .with_controller_id(BrokerId(snapshot.controller_id))
        .with_topics(topics);
    meta.respond(&response)
}

fn topic_response(snapshot: &ClusterSnapshot, t: &TopicMeta) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let offline: Vec<BrokerId> =
                p.replicas.iter().filter(|r| !snapshot.is_live(**r)).map(|r| BrokerId(*r)).collect();
            let error =
                if p.leader < 0 || !snapshot.is_live(p.leader) { ResponseError::LeaderNotAvailable.code() } else { 0 };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
                .with_offline_replicas(offline)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(topic::is_internal(&t.name))
        .with_partitions(partitions)
}
