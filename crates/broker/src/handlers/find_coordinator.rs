//! FindCoordinator: which broker coordinates a group (v0-3 one key, v4+ a batch of keys).
//! Transaction coordinators are not offered: Strom has no transactions yet.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{sb, BrokerState, RequestMeta};
use crate::protocol::EncodeError;

const GROUP_KEY: i8 = 0;

pub async fn handle(
    state: &Arc<BrokerState>,
    meta: &RequestMeta,
    req: FindCoordinatorRequest,
) -> Result<Bytes, EncodeError> {
    let keys: Vec<StrBytes> = if meta.version >= 4 { req.coordinator_keys } else { vec![req.key] };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        let mut c = Coordinator::default().with_key(key.clone()).with_node_id(BrokerId(-1)).with_port(-1);
        if req.key_type != GROUP_KEY {
            c.error_code = ResponseError::CoordinatorNotAvailable.code();
            c.error_message =
                Some(sb(format!("key_type {} is not supported: Strom has no transactions", req.key_type)));
        } else if key.is_empty() {
            c.error_code = ResponseError::InvalidRequest.code();
            c.error_message = Some(sb("group id (key) must not be empty"));
        } else {
            match state.groups.find_coordinator(&key).await {
                Ok(b) => {
                    c.node_id = BrokerId(b.id);
                    c.host = sb(b.host);
                    c.port = i32::from(b.port);
                }
                Err((code, msg)) => {
                    c.error_code = code;
                    c.error_message = Some(sb(msg));
                }
            }
        }
        coordinators.push(c);
    }
    let mut response = FindCoordinatorResponse::default();
    if meta.version >= 4 {
        response.coordinators = coordinators;
    } else if let Some(c) = coordinators.pop() {
        response.error_code = c.error_code;
        response.error_message = c.error_message;
        response.node_id = c.node_id;
        response.host = c.host;
        response.port = c.port;
    }
    meta.respond(&response)
}
