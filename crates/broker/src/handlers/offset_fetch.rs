//! OffsetFetch: a group's committed offsets (v0-7 one group, v8+ a batch of groups; a null
//! topic list asks for every committed partition). Uncommitted partitions answer -1.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};

use super::{sb, BrokerState, RequestMeta};
use crate::group::coordinator::TopicOffsets;
use crate::group::records::OffsetValue;
use crate::protocol::EncodeError;

/// (offset, leader epoch, metadata) as reported for a partition.
fn fields(v: Option<OffsetValue>) -> (i64, i32, String) {
    match v {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    }
}

pub fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: OffsetFetchRequest) -> Result<Bytes, EncodeError> {
    if meta.version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let topics =
                    g.topics.map(|ts| ts.into_iter().map(|t| (t.name.to_string(), t.partition_indexes)).collect());
                let mut out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                match state.groups.fetch_offsets(&g.group_id, topics) {
                    Ok(found) => out.topics = batched(found),
                    Err(e) => out.error_code = e,
                }
                out
            })
            .collect();
        return meta.respond(&OffsetFetchResponse::default().with_groups(groups));
    }
    // Before v2 a null topic list was not allowed, and errors went on each partition.
    let topics: Option<Vec<(String, Vec<i32>)>> =
        req.topics.map(|ts| ts.into_iter().map(|t| (t.name.to_string(), t.partition_indexes)).collect());
    let mut response = OffsetFetchResponse::default();
    match state.groups.fetch_offsets(&req.group_id, topics.clone()) {
        Ok(found) => response.topics = single(found),
        Err(e) if meta.version >= 2 => response.error_code = e,
        Err(e) => {
            let requested = topics
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None)).collect()))
                .collect();
            response.topics = single(requested);
            for t in &mut response.topics {
                for p in &mut t.partitions {
                    p.error_code = e;
                }
            }
        }
    }
    meta.respond(&response)
}

fn single(found: TopicOffsets) -> Vec<OffsetFetchResponseTopic> {
    found
        .into_iter()
        .map(|(t, ps)| {
            OffsetFetchResponseTopic::default().with_name(sb(t).into()).with_partitions(
                ps.into_iter()
                    .map(|(p, v)| {
                        let (offset, epoch, metadata) = fields(v);
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(sb(metadata)))
                    })
                    .collect(),
            )
        })
        .collect()
}

fn batched(found: TopicOffsets) -> Vec<OffsetFetchResponseTopics> {
    found
        .into_iter()
        .map(|(t, ps)| {
            OffsetFetchResponseTopics::default().with_name(sb(t).into()).with_partitions(
                ps.into_iter()
                    .map(|(p, v)| {
                        let (offset, epoch, metadata) = fields(v);
                        OffsetFetchResponsePartitions::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(sb(metadata)))
                    })
                    .collect(),
            )
        })
        .collect()
}
