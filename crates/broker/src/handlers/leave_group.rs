//! LeaveGroup: v0-2 one member by id, v3+ a batch of members (by id or `group.instance.id`).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::{BrokerState, RequestMeta};
use crate::protocol::EncodeError;

pub fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: LeaveGroupRequest) -> Result<Bytes, EncodeError> {
    let batch = meta.version >= 3;
    let members: Vec<(String, Option<String>)> = if batch {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string())))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let mut response = LeaveGroupResponse::default();
    match state.groups.leave(&req.group_id, &members) {
        Err(e) => response.error_code = e,
        Ok(codes) if batch => {
            response.members = req
                .members
                .into_iter()
                .zip(codes)
                .map(|(m, c)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(c)
                })
                .collect();
        }
        Ok(codes) => response.error_code = codes.first().copied().unwrap_or(0),
    }
    meta.respond(&response)
}
