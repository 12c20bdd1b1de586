//! Produce: validates and appends record batches to partition leaders.
//!
//! Each partition's records go to the log as the producer sent them; storage validates the
//! batch headers and CRCs, assigns offsets by patching the header, and answers duplicates of
//! idempotent batches with their original offsets.
//!
//! The append happens inline (so one connection's batches land in request order); with
//! acks=all the wait for the ISR happens afterwards in a task of its own, so the connection
//! keeps appending the producer's next in-flight requests meanwhile — the response order is
//! kept by the connection's writer.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{log_error, sb, BrokerState, Reply, RequestMeta, NONE};
use crate::protocol::EncodeError;
use crate::replica::{Partition, ReplicationWaitError};

/// An appended partition whose acks=all answer waits for the high watermark.
struct Pending {
    topic: usize,
    slot: usize,
    partition: Arc<Partition>,
    /// The high watermark that commits the append (its last offset + 1).
    required: i64,
    leader_epoch: i32,
}

/// Handles a Produce request; `None` for acks=0, which gets no response.
pub async fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: ProduceRequest) -> Result<Reply, EncodeError> {
    let acks = req.acks;
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
    let mut pending: Vec<Pending> = Vec::new();
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
            if acks == -1 && !partition.has_min_isr() {
                r.error_code = ResponseError::NotEnoughReplicas.code();
                r.error_message = Some(sb(format!(
                    "ISR {:?} is smaller than min.insync.replicas={}",
                    partition.isr(),
                    partition.min_insync()
                )));
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
                    if acks == -1 && partition.high_watermark() <= info.last_offset {
                        pending.push(Pending {
                            topic: responses.len(),
                            slot: partitions.len(),
                            required: info.last_offset + 1,
                            leader_epoch: partition.leader_epoch(),
                            partition: partition.clone(),
                        });
                    }
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
        return Ok(Reply::Now(None));
    }
    if pending.is_empty() {
        let response = ProduceResponse::default().with_responses(responses);
        return meta.respond(&response).map(|b| Reply::Now(Some(b)));
    }
    let meta = meta.clone();
    Ok(Reply::Later(tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        for p in pending {
            let code = await_replication(&p, deadline).await;
            if code != NONE {
                let r = &mut responses[p.topic].partition_responses[p.slot];
                r.error_code = code;
                r.base_offset = -1;
            }
        }
        let response = ProduceResponse::default().with_responses(responses);
        meta.respond(&response).map(Some)
    })))
}

/// Kafka's answers for a failed acks=all wait.
async fn await_replication(p: &Pending, deadline: tokio::time::Instant) -> i16 {
    match p.partition.wait_for_hw(p.required, p.leader_epoch, deadline).await {
        Ok(()) => NONE,
        Err(ReplicationWaitError::NotLeader) => ResponseError::NotLeaderOrFollower.code(),
        Err(ReplicationWaitError::TimedOut) => ResponseError::RequestTimedOut.code(),
        Err(ReplicationWaitError::NotEnoughReplicas) => ResponseError::NotEnoughReplicasAfterAppend.code(),
    }
}

/// The request frame's bytes, without a copy when nothing else shares them.
fn into_mut(records: Bytes) -> BytesMut {
    records.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]))
}
