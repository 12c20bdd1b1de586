//! ListGroups: the groups this broker coordinates (v4+ filter by state, v5+ by type).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};

use super::{sb, BrokerState, RequestMeta};
use crate::protocol::EncodeError;

pub fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: ListGroupsRequest) -> Result<Bytes, EncodeError> {
    let mut response = ListGroupsResponse::default();
    match state.groups.list_groups() {
        Err(e) => response.error_code = e,
        Ok(groups) => {
            let states: Vec<String> = req.states_filter.iter().map(|s| s.to_ascii_lowercase()).collect();
            let types: Vec<String> = req.types_filter.iter().map(|s| s.to_ascii_lowercase()).collect();
            response.groups = groups
                .into_iter()
                .filter(|g| states.is_empty() || states.contains(&g.state.as_str().to_ascii_lowercase()))
                // Every group here is a classic group.
                .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
                .map(|g| {
                    ListedGroup::default()
                        .with_group_id(sb(g.group_id).into())
                        .with_protocol_type(sb(g.protocol_type))
                        .with_group_state(sb(g.state.as_str()))
                        .with_group_type(sb(if meta.version >= 5 { "classic" } else { "" }))
                })
                .collect();
        }
    }
    meta.respond(&response)
}
