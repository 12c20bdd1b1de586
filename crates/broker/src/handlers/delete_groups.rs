//! DeleteGroups: removes empty groups with their committed offsets.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::{BrokerState, RequestMeta};
use crate::protocol::EncodeError;

pub fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: DeleteGroupsRequest) -> Result<Bytes, EncodeError> {
    let results = req
        .groups_names
        .into_iter()
        .map(|g| {
            let error = state.groups.delete_group(&g);
            DeletableGroupResult::default().with_group_id(g).with_error_code(error)
        })
        .collect();
    meta.respond(&DeleteGroupsResponse::default().with_results(results))
}
