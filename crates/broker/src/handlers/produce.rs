//! Produce: validates and appends record batches to partition leaders.
//!
//! Each partition's records go to the log as the producer sent them; storage validates the
//! batch headers and CRCs, assigns offsets by patching the header, and answers duplicates of
//! idempotent batches with their original offsets.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{log_error, sb, BrokerState, RequestMeta, NONE};
use crate::protocol::EncodeError;

/// Handles a Produce request; `None` for acks=0, which gets no response.
pub async fn handle(
    state: &Arc<BrokerState>,
    meta: &RequestMeta,
    req: ProduceRequest,
) -> Result<Option<Bytes>, EncodeError> {
    let acks = req.acks;
    let valid_acks = matches!(acks, -1..=1);
    let snapshot = state.cache.snapshot();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.0;
        let known = snapshot.topic(&name).is_some();
        if !known {
            state.cluster.maybe_auto_create(&name);
        }
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let mut r =
                PartitionProduceResponse::default().with_index(p.index).with_base_offset(-1).with_log_start_offset(-1);
            if !valid_acks {
                r.error_code = ResponseError::InvalidRequiredAcks.code();
                partitions.push(r);
                continue;
            }
            let Some(partition) = state.replicas.get(&name, p.index) else {
                r.error_code = match snapshot.partition(&name, p.index) {
                    Some(_) => ResponseError::NotLeaderOrFollower.code(),
                    None => ResponseError::UnknownTopicOrPartition.code(),
                };
                partitions.push(r);
                continue;
            };
            if !partition.is_leader() {
                r.error_code = ResponseError::NotLeaderOrFollower.code();
                partitions.push(r);
                continue;
            }
            let Some(records) = p.records.filter(|r| !r.is_empty()) else {
                r.error_code = ResponseError::InvalidRecord.code();
                r.error_message = Some(sb("produce request has no record batches"));
                partitions.push(r);
                continue;
            };
            match partition.log.append(into_mut(records), partition.leader_epoch()) {
                Ok(info) => {
                    r.error_code = NONE;
                    r.base_offset = info.first_offset;
                    r.log_start_offset = info.log_start_offset;
                    partition.appended();
                }
                Err(e) => {
                    tracing::debug!(topic = %name, partition = p.index, error = %e, "append rejected");
                    r.error_code = log_error(&e);
                    r.error_message = Some(sb(e.to_string()));
                }
            }
            partitions.push(r);
        }
        responses.push(TopicProduceResponse::default().with_name(name.into()).with_partition_responses(partitions));
    }
    if acks == 0 {
        return Ok(None);
    }
    let response = ProduceResponse::default().with_responses(responses);
    meta.respond(&response).map(Some)
}

/// The request frame's bytes, without a copy when nothing else shares them.
fn into_mut(records: Bytes) -> BytesMut {
    records.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]))
}
