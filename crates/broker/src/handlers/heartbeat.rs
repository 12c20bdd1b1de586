//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::{BrokerState, RequestMeta};
use crate::protocol::EncodeError;

pub fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: HeartbeatRequest) -> Result<Bytes, EncodeError> {
    let error =
        state.groups.heartbeat(&req.group_id, &req.member_id, req.group_instance_id.as_deref(), req.generation_id);
    meta.respond(&HeartbeatResponse::default().with_error_code(error))
}
