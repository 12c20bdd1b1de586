//! ListOffsets: earliest (-2), latest (-1) and first-offset-at-or-after-timestamp lookups.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{log_error, BrokerState, RequestMeta};
use crate::protocol::EncodeError;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: ListOffsetsRequest) -> Result<Bytes, EncodeError> {
    let snapshot = state.cache.snapshot();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let part = match state.replicas.get(&t.name, p.partition_index) {
                        Some(part) if part.is_leader() => part,
                        Some(_) => return r.with_error_code(ResponseError::NotLeaderOrFollower.code()),
                        None if snapshot.partition(&t.name, p.partition_index).is_some() => {
                            return r.with_error_code(ResponseError::NotLeaderOrFollower.code())
                        }
                        None => return r.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                    };
                    let epoch = part.leader_epoch();
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch != epoch {
                        let code = if p.current_leader_epoch < epoch {
                            ResponseError::FencedLeaderEpoch
                        } else {
                            ResponseError::UnknownLeaderEpoch
                        };
                        return r.with_error_code(code.code());
                    }
                    let hw = part.high_watermark();
                    match p.timestamp {
                        LATEST => {
                            r.offset = hw;
                            r.leader_epoch = part.log.latest_epoch().unwrap_or(epoch);
                        }
                        EARLIEST => r.offset = part.log.log_start_offset(),
                        ts if ts < 0 => {
                            r.error_code = ResponseError::UnsupportedVersion.code();
                        }
                        ts => match part.log.offset_for_timestamp(ts) {
                            Ok(Some((offset, found_ts))) if offset < hw => {
                                r.offset = offset;
                                r.timestamp = found_ts;
                            }
                            Ok(_) => {}
                            Err(e) => r.error_code = log_error(&e),
                        },
                    }
                    if meta.version < 4 {
                        // No leader epoch field before v4 (the encoder rejects a set value).
                        r.leader_epoch = -1;
                    }
                    r
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    meta.respond(&ListOffsetsResponse::default().with_topics(topics))
}
