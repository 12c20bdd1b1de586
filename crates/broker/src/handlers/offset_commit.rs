//! OffsetCommit: stores a group's consumed positions in `__consumer_offsets`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::{BrokerState, Reply, RequestMeta};
use crate::group::coordinator::CommitEntry;
use crate::protocol::EncodeError;

/// How long a commit waits for the offsets topic's ISR (Kafka's `offsets.commit.timeout.ms`).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Appends inline (one connection's commits land in order) and answers once the offsets
/// topic's ISR holds them, in a task of its own.
pub fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: OffsetCommitRequest) -> Result<Reply, EncodeError> {
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
    let (mut results, wait) = state.groups.commit(
        &req.group_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id_or_member_epoch,
        topics,
    );
    let Some(wait) = wait else {
        return respond(meta, results).map(|b| Reply::Now(Some(b)));
    };
    let meta = meta.clone();
    Ok(Reply::Later(tokio::spawn(async move {
        if let Err(e) = wait.wait(COMMIT_TIMEOUT).await {
            for (_, parts) in &mut results {
                for (_, code) in parts.iter_mut().filter(|(_, c)| *c == 0) {
                    *code = e;
                }
            }
        }
        respond(&meta, results).map(Some)
    })))
}

fn respond(meta: &RequestMeta, results: crate::group::coordinator::TopicCodes) -> Result<Bytes, EncodeError> {
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
