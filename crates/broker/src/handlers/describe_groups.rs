//! DescribeGroups: state, protocol and members of each requested group.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::{sb, BrokerState, RequestMeta};
use crate::protocol::EncodeError;

pub fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: DescribeGroupsRequest) -> Result<Bytes, EncodeError> {
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            // i32::MIN: authorized operations were not asked for (KIP-430).
            let mut out = DescribedGroup::default().with_group_id(id.clone()).with_authorized_operations(i32::MIN);
            match state.groups.describe(&id) {
                Err(e) => {
                    out.error_code = e;
                    out.group_state = sb("Dead");
                }
                Ok(d) => {
                    out.group_state = sb(d.state.as_str());
                    out.protocol_type = sb(d.protocol_type);
                    out.protocol_data = sb(d.protocol);
                    out.members = d
                        .members
                        .into_iter()
                        .map(|(member_id, instance, client_id, host, metadata, assignment)| {
                            DescribedGroupMember::default()
                                .with_member_id(sb(member_id))
                                .with_group_instance_id(instance.map(sb))
                                .with_client_id(sb(client_id))
                                .with_client_host(sb(host))
                                .with_member_metadata(metadata)
                                .with_member_assignment(assignment)
                        })
                        .collect();
                }
            }
            out
        })
        .collect();
    meta.respond(&DescribeGroupsResponse::default().with_groups(groups))
}
