//! JoinGroup: joins (or rejoins) a group and waits for the join phase to complete.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::{sb, BrokerState, RequestMeta};
use crate::group::state::JoinArgs;
use crate::protocol::EncodeError;

pub async fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: JoinGroupRequest) -> Result<Bytes, EncodeError> {
    let ms = |v: i32| Duration::from_millis(u64::try_from(v).unwrap_or(0));
    let args = JoinArgs {
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: meta.client_id.as_deref().unwrap_or("").to_string(),
        client_host: meta.peer.map(|p| format!("/{}", p.ip())).unwrap_or_default(),
        session_timeout: ms(req.session_timeout_ms),
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout: if meta.version >= 1 { ms(req.rebalance_timeout_ms) } else { ms(req.session_timeout_ms) },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
        require_known_member_id: meta.version >= 4,
    };
    let r = state.groups.join(&req.group_id, args).await;
    let response = JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation)
        .with_protocol_type(r.protocol_type.map(sb))
        .with_protocol_name(r.protocol_name.map(sb).or_else(|| (meta.version < 7).then(|| sb(""))))
        .with_leader(sb(r.leader))
        .with_skip_assignment(r.skip_assignment && meta.version >= 9)
        .with_member_id(sb(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|(id, inst, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(id))
                        .with_group_instance_id(inst.map(sb))
                        .with_metadata(metadata)
                })
                .collect(),
        );
    meta.respond(&response)
}
