//! DescribeCluster: cluster id, controller and live brokers.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{sb, BrokerState, RequestMeta};
use crate::protocol::EncodeError;

/// `endpoint_type` 1 = brokers (the only kind a ZooKeeper-mode cluster serves).
const ENDPOINT_BROKERS: i8 = 1;

pub fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: DescribeClusterRequest) -> Result<Bytes, EncodeError> {
    let snapshot = state.cache.snapshot();
    let mut response = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_cluster_id(sb(snapshot.cluster_id.clone().unwrap_or_default()))
        .with_controller_id(BrokerId(snapshot.controller_id));
    if meta.version >= 1 && req.endpoint_type != ENDPOINT_BROKERS {
        response.error_code = ResponseError::UnsupportedEndpointType.code();
        response.error_message = Some(sb("Only brokers are described (endpoint type 1)"));
        return meta.respond(&response);
    }
    response.brokers = snapshot
        .brokers
        .values()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(sb(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(sb))
        })
        .collect();
    meta.respond(&response)
}
