//! [`GroupAdmin`]: consumer-group administration over the Kafka protocol — finding a group's
//! coordinator, listing and describing groups, reading and writing committed offsets (as a
//! simple, generation-less committer) and deleting groups. Used by `kafka-consumer-groups`.
//!
//! Requests go at fixed versions that Kafka 2.4+ brokers and Strom all serve, so no extra
//! negotiation is needed: FindCoordinator v3, ListGroups v3, DescribeGroups v5,
//! OffsetFetch v7, OffsetCommit v8, DeleteGroups v2.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Client;
use crate::connection::Connection;
use crate::error::ClientError;

const FIND_COORDINATOR_V: i16 = 3;
const LIST_GROUPS_V: i16 = 3;
const DESCRIBE_GROUPS_V: i16 = 5;
const OFFSET_FETCH_V: i16 = 7;
const OFFSET_COMMIT_V: i16 = 8;
const DELETE_GROUPS_V: i16 = 2;

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
}

/// One member of a described group, with its decoded consumer-protocol assignment.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// `(topic, partitions)`; empty when the group is not stable or not a consumer group.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    /// Kafka's state name: Empty, PreparingRebalance, CompletingRebalance, Stable, Dead.
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// Consumer-group administration.
#[derive(Clone)]
pub struct GroupAdmin {
    client: Client,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Coordinator errors after which asking again (after a pause) can succeed.
fn coordinator_retriable(code: i16) -> bool {
    [ResponseError::CoordinatorLoadInProgress, ResponseError::CoordinatorNotAvailable, ResponseError::NotCoordinator]
        .iter()
        .any(|e| e.code() == code)
}

impl GroupAdmin {
    pub fn new(client: Client) -> GroupAdmin {
        GroupAdmin { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `op` against the group's coordinator, rediscovering it and retrying (bounded by
    /// `request.timeout.ms`) while the coordinator moves or loads.
    async fn with_coordinator<T, F, Fut>(&self, group: &str, op: F) -> Result<T, ClientError>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let config = self.client.config();
        let deadline = tokio::time::Instant::now() + config.request_timeout;
        loop {
            let result = match self.coordinator(group).await {
                Ok(conn) => op(conn).await,
                Err(e) => Err(e),
            };
            match result {
                Err(ClientError::Kafka { error, .. })
                    if coordinator_retriable(error.code()) && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(config.retry_backoff).await;
                }
                other => return other,
            }
        }
    }

    /// The connection to the broker coordinating `group`.
    pub async fn coordinator(&self, group: &str) -> Result<Arc<Connection>, ClientError> {
        let (id, _) = self.find_coordinator(group).await?;
        self.client.broker_connection(id).await
    }

    /// The id and `host:port` of the broker coordinating `group`.
    pub async fn find_coordinator(&self, group: &str) -> Result<(i32, String), ClientError> {
        let req = FindCoordinatorRequest::default().with_key(sb(group)).with_key_type(0);
        let conn = self.client.any_connection().await?;
        let resp = conn.send_versioned(&req, FIND_COORDINATOR_V).await?;
        if resp.error_code != 0 {
            return Err(ClientError::kafka(
                resp.error_code,
                format!("coordinator of group '{group}'"),
                resp.error_message.map(|m| m.to_string()),
            ));
        }
        let id = resp.node_id.0;
        if self.client.metadata().broker(id).is_none() {
            self.client.refresh_metadata(Some(&[])).await?;
        }
        Ok((id, format!("{}:{}", resp.host.as_str(), resp.port)))
    }

    /// Every group on every broker, sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        self.client.refresh_metadata(Some(&[])).await?;
        let ids: Vec<i32> = self.client.metadata().brokers.iter().map(|b| b.id).collect();
        let mut out = Vec::new();
        for id in ids {
            let conn = self.client.broker_connection(id).await?;
            let resp = conn.send_versioned(&ListGroupsRequest::default(), LIST_GROUPS_V).await?;
            if resp.error_code != 0 {
                return Err(ClientError::kafka(resp.error_code, format!("ListGroups on broker {id}"), None));
            }
            out.extend(resp.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// Describes one group; an unknown group comes back in state `Dead`.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, ClientError> {
        let req = DescribeGroupsRequest::default().with_groups(vec![sb(group).into()]);
        self.with_coordinator(group, |conn| {
            let req = req.clone();
            async move {
                let resp = conn.send_versioned(&req, DESCRIBE_GROUPS_V).await?;
                let g = resp
                    .groups
                    .into_iter()
                    .next()
                    .ok_or_else(|| ClientError::protocol("DescribeGroups", "empty response"))?;
                if g.error_code != 0 {
                    return Err(ClientError::kafka(g.error_code, format!("group '{group}'"), None));
                }
                let consumer = g.protocol_type.as_str() == "consumer";
                Ok(GroupDescription {
                    group_id: g.group_id.to_string(),
                    state: g.group_state.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    protocol: g.protocol_data.to_string(),
                    members: g
                        .members
                        .into_iter()
                        .map(|m| MemberDescription {
                            member_id: m.member_id.to_string(),
                            group_instance_id: m.group_instance_id.map(|s| s.to_string()),
                            client_id: m.client_id.to_string(),
                            client_host: m.client_host.to_string(),
                            assignment: if consumer {
                                decode_assignment(m.member_assignment).unwrap_or_default()
                            } else {
                                Vec::new()
                            },
                        })
                        .collect(),
                })
            }
        })
        .await
    }

    /// Every committed offset of `group`, by `(topic, partition)`.
    pub async fn committed_offsets(&self, group: &str) -> Result<BTreeMap<(String, i32), i64>, ClientError> {
        let req = OffsetFetchRequest::default().with_group_id(sb(group).into()).with_topics(None);
        self.with_coordinator(group, |conn| {
            let req = req.clone();
            async move {
                let resp = conn.send_versioned(&req, OFFSET_FETCH_V).await?;
                if resp.error_code != 0 {
                    return Err(ClientError::kafka(resp.error_code, format!("offsets of group '{group}'"), None));
                }
                let mut out = BTreeMap::new();
                for t in resp.topics {
                    for p in t.partitions {
                        if p.error_code != 0 {
                            return Err(ClientError::kafka(
                                p.error_code,
                                format!("offset of {}-{} in group '{group}'", t.name.as_str(), p.partition_index),
                                None,
                            ));
                        }
                        if p.committed_offset >= 0 {
                            out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
                        }
                    }
                }
                Ok(out)
            }
        })
        .await
    }

    /// Commits offsets outside any membership (generation -1), as Kafka's admin client does;
    /// the coordinator accepts that only while the group has no members.
    pub async fn commit_offsets(&self, group: &str, offsets: &[(String, i32, i64)]) -> Result<(), ClientError> {
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (topic, partition, offset) in offsets {
            by_topic.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(sb(""))),
            );
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(sb(group).into())
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(sb(""))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| OffsetCommitRequestTopic::default().with_name(sb(t).into()).with_partitions(ps))
                    .collect(),
            );
        self.with_coordinator(group, |conn| {
            let req = req.clone();
            async move {
                let resp = conn.send_versioned(&req, OFFSET_COMMIT_V).await?;
                for t in resp.topics {
                    for p in t.partitions {
                        if p.error_code != 0 {
                            return Err(ClientError::kafka(
                                p.error_code,
                                format!("commit of {}-{} for group '{group}'", t.name.as_str(), p.partition_index),
                                None,
                            ));
                        }
                    }
                }
                Ok(())
            }
        })
        .await
    }

    /// Deletes an empty group and its committed offsets.
    pub async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        let req = DeleteGroupsRequest::default().with_groups_names(vec![sb(group).into()]);
        self.with_coordinator(group, |conn| {
            let req = req.clone();
            async move {
                let resp = conn.send_versioned(&req, DELETE_GROUPS_V).await?;
                let code = resp.results.first().map_or(0, |r| r.error_code);
                if code != 0 {
                    return Err(ClientError::kafka(code, format!("group '{group}'"), None));
                }
                Ok(())
            }
        })
        .await
    }
}

/// Decodes a `ConsumerProtocolAssignment` (any version: all start with the topic array).
pub fn decode_assignment(mut b: Bytes) -> Option<Vec<(String, Vec<i32>)>> {
    if b.is_empty() {
        return Some(Vec::new());
    }
    fn string(b: &mut Bytes) -> Option<String> {
        if b.remaining() < 2 {
            return None;
        }
        let len = usize::try_from(b.get_i16()).ok()?;
        if b.remaining() < len {
            return None;
        }
        String::from_utf8(b.split_to(len).to_vec()).ok()
    }
    fn count(b: &mut Bytes) -> Option<usize> {
        if b.remaining() < 4 {
            return None;
        }
        usize::try_from(b.get_i32()).ok()
    }
    if b.remaining() < 2 {
        return None;
    }
    let _version = b.get_i16();
    let topics = count(&mut b)?;
    let mut out = Vec::with_capacity(topics.min(1024));
    for _ in 0..topics {
        let topic = string(&mut b)?;
        let n = count(&mut b)?;
        if b.remaining() < n.saturating_mul(4) {
            return None;
        }
        out.push((topic, (0..n).map(|_| b.get_i32()).collect()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};

    use super::*;

    #[test]
    fn assignment_decoding() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(1);
        b.put_i16(2);
        b.put_slice(b"t1");
        b.put_i32(2);
        b.put_i32(0);
        b.put_i32(4);
        b.put_i32(-1);
        assert_eq!(decode_assignment(b.freeze()), Some(vec![("t1".to_string(), vec![0, 4])]));
        assert_eq!(decode_assignment(Bytes::new()), Some(vec![]));
        assert_eq!(decode_assignment(Bytes::from_static(&[0, 0, 0, 0, 0, 9])), None);
    }
}
