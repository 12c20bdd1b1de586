//! OffsetCommit: stores a group's consumed positions in `__consumer_offsets`.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::{BrokerState, RequestMeta};
use crate::group::coordinator::CommitEntry;
use crate::protocol::EncodeError;

pub fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: OffsetCommitRequest) -> Result<Bytes, EncodeError> {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let entries = t
                .partitions
                .into_iter()
                .map(|p| CommitEntry {
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if meta.version >= 6 { p.committed_leader_epoch } else { -1 },
                    metadata: p.committed_metadata.map(|m| m.to_string()),
                })
                .collect();
            (t.name.to_string(), entries)
        })
        .collect();
    let results = state.groups.commit(
        &req.group_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id_or_member_epoch,
        topics,
    );
    let response = OffsetCommitResponse::default().with_topics(
        results
            .into_iter()
            .map(|(name, parts)| {
                OffsetCommitResponseTopic::default().with_name(super::sb(name).into()).with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, e)| {
                            OffsetCommitResponsePartition::default().with_partition_index(p).with_error_code(e)
                        })
                        .collect(),
                )
            })
            .collect(),
    );
    meta.respond(&response)
}
