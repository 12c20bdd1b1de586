//! Fetch: returns stored batches as they are on disk, with Kafka's long-poll semantics.
//!
//! A fetch that finds fewer than `min_bytes` waits until one of its partitions' high
//! watermark moves (a `watch` per partition, no timer polling) or `max_wait_ms` passes, then
//! reads again. Byte limits follow KIP-74: `max_bytes` over the response, `partition_max_bytes`
//! per partition, but the first partition with data always returns at least one whole batch.
//! Incremental fetch sessions are not offered: every response carries session id 0, which
//! tells clients to keep sending full fetches.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use strom_storage::LogError;
use tokio::sync::watch;

use super::{log_error, BrokerState, RequestMeta};
use crate::protocol::EncodeError;
use crate::replica::Partition;

/// One requested partition, resolved once per request.
struct Slot {
    partition_index: i32,
    fetch_offset: i64,
    partition_max_bytes: usize,
    current_leader_epoch: i32,
    target: Result<Arc<Partition>, i16>,
}

pub async fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: FetchRequest) -> Result<Bytes, EncodeError> {
    if meta.version >= 7 {
        let error = if req.session_id != 0 {
            Some(ResponseError::FetchSessionIdNotFound)
        } else if req.session_epoch > 0 {
            Some(ResponseError::InvalidFetchSessionEpoch)
        } else {
            None
        };
        if let Some(e) = error {
            let response = FetchResponse::default().with_error_code(e.code());
            return meta.respond(&response);
        }
    }
    let topics = resolve(state, req.topics);
    let max_bytes = usize::try_from(req.max_bytes).unwrap_or(0);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let max_wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + max_wait;
    loop {
        // Subscribe before reading so an append between the read and the wait is not missed.
        let mut watchers: Vec<watch::Receiver<i64>> = topics
            .iter()
            .flat_map(|(_, slots)| slots.iter())
            .filter_map(|s| s.target.as_ref().ok().map(|p| p.subscribe()))
            .collect();
        for w in &mut watchers {
            w.borrow_and_update();
        }
        let (responses, total, had_error) = read_all(&topics, max_bytes);
        let expired = tokio::time::Instant::now() >= deadline;
        if total >= min_bytes || had_error || expired || watchers.is_empty() {
            let response = FetchResponse::default().with_responses(responses);
            return meta.respond(&response);
        }
        let any_change = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, any_change).await.is_err() {
            // Deadline: one last read picks up whatever arrived.
            let (responses, _, _) = read_all(&topics, max_bytes);
            return meta.respond(&FetchResponse::default().with_responses(responses));
        }
    }
}

fn resolve(state: &BrokerState, topics: Vec<FetchTopic>) -> Vec<(kafka_protocol::messages::TopicName, Vec<Slot>)> {
    let snapshot = state.cache.snapshot();
    topics
        .into_iter()
        .map(|t| {
            let slots = t
                .partitions
                .iter()
                .map(|p| {
                    let target = match state.replicas.get(&t.topic, p.partition) {
                        Some(part) if part.is_leader() => Ok(part),
                        Some(_) => Err(ResponseError::NotLeaderOrFollower.code()),
                        None if snapshot.partition(&t.topic, p.partition).is_some() => {
                            Err(ResponseError::NotLeaderOrFollower.code())
                        }
                        None => Err(ResponseError::UnknownTopicOrPartition.code()),
                    };
                    Slot {
                        partition_index: p.partition,
                        fetch_offset: p.fetch_offset,
                        partition_max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
                        current_leader_epoch: p.current_leader_epoch,
                        target,
                    }
                })
                .collect();
            (t.topic, slots)
        })
        .collect()
}

/// Reads every slot once; returns the topic responses, total record bytes and whether any
/// partition answered with an error (which completes the fetch at once, as in Kafka).
fn read_all(
    topics: &[(kafka_protocol::messages::TopicName, Vec<Slot>)],
    max_bytes: usize,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut total = 0usize;
    let mut had_error = false;
    let mut out = Vec::with_capacity(topics.len());
    for (name, slots) in topics {
        let mut partitions = Vec::with_capacity(slots.len());
        for slot in slots {
            let data = read_one(slot, max_bytes.saturating_sub(total), total == 0);
            if data.error_code != 0 {
                had_error = true;
            }
            total += data.records.as_ref().map_or(0, Bytes::len);
            partitions.push(data);
        }
        out.push(FetchableTopicResponse::default().with_topic(name.clone()).with_partitions(partitions));
    }
    (out, total, had_error)
}

fn read_one(slot: &Slot, budget: usize, first: bool) -> PartitionData {
    let mut data = PartitionData::default().with_partition_index(slot.partition_index).with_aborted_transactions(None);
    let partition = match &slot.target {
        Ok(p) => p,
        Err(code) => {
            data.error_code = *code;
            data.high_watermark = -1;
            return data;
        }
    };
    let hw = partition.high_watermark();
    let log_start = partition.log.log_start_offset();
    data.high_watermark = hw;
    data.last_stable_offset = hw;
    data.log_start_offset = log_start;
    let epoch = partition.leader_epoch();
    if slot.current_leader_epoch >= 0 && slot.current_leader_epoch != epoch {
        data.error_code = if slot.current_leader_epoch < epoch {
            ResponseError::FencedLeaderEpoch.code()
        } else {
            ResponseError::UnknownLeaderEpoch.code()
        };
        return data;
    }
    if slot.fetch_offset < log_start || slot.fetch_offset > partition.log.log_end_offset() {
        data.error_code = ResponseError::OffsetOutOfRange.code();
        return data;
    }
    let limit = slot.partition_max_bytes.min(budget);
    if slot.fetch_offset >= hw || limit == 0 {
        return data;
    }
    match partition.log.read(slot.fetch_offset, limit, Some(hw)) {
        Ok(info) => {
            data.log_start_offset = info.log_start_offset;
            // Only the first partition with data may exceed the limits (KIP-74).
            if info.records.len() <= limit || first {
                data.records = Some(info.records);
            }
        }
        Err(e @ LogError::OffsetOutOfRange { .. }) => data.error_code = log_error(&e),
        Err(e) => {
            tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "fetch read failed");
            data.error_code = log_error(&e);
        }
    }
    data
}
