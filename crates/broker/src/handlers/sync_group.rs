//! SyncGroup: the leader hands in the assignment; every member waits for its share.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::{sb, BrokerState, RequestMeta};
use crate::group::state::SyncArgs;
use crate::protocol::EncodeError;

pub async fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: SyncGroupRequest) -> Result<Bytes, EncodeError> {
    let args = SyncArgs {
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        generation: req.generation_id,
        protocol_type: req.protocol_type.map(|s| s.to_string()),
        protocol_name: req.protocol_name.map(|s| s.to_string()),
        assignments: req.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
    };
    let r = state.groups.sync(&req.group_id, args).await;
    let response = SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_protocol_type(r.protocol_type.map(sb))
        .with_protocol_name(r.protocol_name.map(sb))
        .with_assignment(r.assignment);
    meta.respond(&response)
}
