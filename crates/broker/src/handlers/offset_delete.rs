//! OffsetDelete: removes committed offsets of partitions the group no longer consumes.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::{sb, BrokerState, RequestMeta};
use crate::protocol::EncodeError;

pub fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: OffsetDeleteRequest) -> Result<Bytes, EncodeError> {
    let topics = req
        .topics
        .into_iter()
        .map(|t| (t.name.to_string(), t.partitions.into_iter().map(|p| p.partition_index).collect()))
        .collect();
    let mut response = OffsetDeleteResponse::default();
    match state.groups.delete_offsets(&req.group_id, topics) {
        Err(e) => response.error_code = e,
        Ok(results) => {
            response.topics = results
                .into_iter()
                .map(|(t, ps)| {
                    OffsetDeleteResponseTopic::default().with_name(sb(t).into()).with_partitions(
                        ps.into_iter()
                            .map(|(p, e)| {
                                OffsetDeleteResponsePartition::default().with_partition_index(p).with_error_code(e)
                            })
                            .collect(),
                    )
                })
                .collect();
        }
    }
    meta.respond(&response)
}
