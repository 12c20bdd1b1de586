//! Request dispatch: decodes a request body and routes it to its API's handler.
//!
//! Produce runs inline on the connection's reader so appends from one connection happen in
//! request order (idempotent producers pipeline up to five batches per partition); every
//! other request runs as its own task, so a long-polling Fetch does not hold up the requests
//! behind it (their responses still leave in order).

pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, FetchRequest, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
    RequestHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::metadata::MetadataCache;
use crate::producer_ids::ProducerIds;
use crate::protocol::{self, EncodeError};
use crate::replica::ReplicaManager;

/// Everything a request handler can reach.
pub struct BrokerState {
    pub config: BrokerConfig,
    pub cache: Arc<MetadataCache>,
    pub replicas: Arc<ReplicaManager>,
    pub cluster: Arc<Cluster>,
    pub producer_ids: ProducerIds,
    pub groups: Arc<GroupCoordinator>,
}

/// A reply on its way to the connection's writer.
pub enum Reply {
    /// Encoded response frame, or `None` when the request gets no response (acks=0).
    Now(Option<Bytes>),
    /// A handler still running.
    Later(JoinHandle<Result<Option<Bytes>, EncodeError>>),
}

/// A request the broker refuses to answer; the connection is closed, as Kafka does.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("{api:?} v{version} is not supported (supported: {supported})")]
    UnsupportedVersion { api: ApiKey, version: i16, supported: String },
    #[error("cannot decode {api:?} v{version} request: {message}")]
    Decode { api: ApiKey, version: i16, message: String },
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Header fields a handler needs to answer.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<StrBytes>,
    /// The client's address (JoinGroup records it as the member's host).
    pub peer: Option<std::net::SocketAddr>,
}

impl RequestMeta {
    /// Encodes `body` as this request's response frame.
    pub fn respond<R: Encodable + HeaderVersion>(&self, body: &R) -> Result<Bytes, EncodeError> {
        protocol::encode_response(self.api, self.version, self.correlation_id, body)
    }
}

/// Decodes and routes one request.
pub async fn dispatch(
    state: &Arc<BrokerState>,
    api: ApiKey,
    header: RequestHeader,
    mut body: Bytes,
    peer: Option<std::net::SocketAddr>,
) -> Result<Reply, DispatchError> {
    let meta = RequestMeta {
        api,
        version: header.request_api_version,
        correlation_id: header.correlation_id,
        client_id: header.client_id,
        peer,
    };
    if api == ApiKey::ApiVersions {
        // Answered even for versions we do not know (KIP-511), and never needs the body
        // beyond what the handler validates.
        return Ok(Reply::Now(Some(api_versions::handle(&meta, body)?)));
    }
    if !protocol::is_supported(api, meta.version) {
        let supported = protocol::supported_versions(api)
            .map(|(min, max)| format!("{min}..={max}"))
            .unwrap_or_else(|| "none".into());
        return Err(DispatchError::UnsupportedVersion { api, version: meta.version, supported });
    }
    let version = meta.version;
    let state = state.clone();
    macro_rules! decode {
        ($ty:ty) => {
            <$ty>::decode(&mut body, version).map_err(|e| DispatchError::Decode {
                api,
                version,
                message: e.to_string(),
            })?
        };
    }
    let reply = match api {
        ApiKey::Produce => {
            let req = decode!(ProduceRequest);
            produce::handle(&state, &meta, req).await?
        }
        ApiKey::Fetch => {
            let req = decode!(FetchRequest);
            spawn(async move { fetch::handle(&state, &meta, req).await.map(Some) })
        }
        ApiKey::Metadata => {
            let req = decode!(MetadataRequest);
            spawn(async move { metadata::handle(&state, &meta, req).await.map(Some) })
        }
        ApiKey::ListOffsets => {
            let req = decode!(ListOffsetsRequest);
            spawn(async move { list_offsets::handle(&state, &meta, req).map(Some) })
        }
        ApiKey::CreateTopics => {
            let req = decode!(CreateTopicsRequest);
            spawn(async move { create_topics::handle(&state, &meta, req).await.map(Some) })
        }
        ApiKey::DeleteTopics => {
            let req = decode!(DeleteTopicsRequest);
            spawn(async move { delete_topics::handle(&state, &meta, req).await.map(Some) })
        }
        ApiKey::CreatePartitions => {
            let req = decode!(CreatePartitionsRequest);
            spawn(async move { create_partitions::handle(&state, &meta, req).await.map(Some) })
        }
        ApiKey::DescribeConfigs => {
            let req = decode!(DescribeConfigsRequest);
            spawn(async move { describe_configs::handle(&state, &meta, req).map(Some) })
        }
        ApiKey::InitProducerId => {
            let req = decode!(InitProducerIdRequest);
            spawn(async move { init_producer_id::handle(&state, &meta, req).await.map(Some) })
        }
        ApiKey::DescribeCluster => {
            let req = decode!(DescribeClusterRequest);
            spawn(async move { describe_cluster::handle(&state, &meta, req).map(Some) })
        }
        ApiKey::ElectLeaders => {
            let req = decode!(kafka_protocol::messages::ElectLeadersRequest);
            spawn(async move { elect_leaders::handle(&state, &meta, req).await.map(Some) })
        }
        ApiKey::FindCoordinator => {
            let req = decode!(kafka_protocol::messages::FindCoordinatorRequest);
            spawn(async move { find_coordinator::handle(&state, &meta, req).await.map(Some) })
        }
        ApiKey::JoinGroup => {
            let req = decode!(kafka_protocol::messages::JoinGroupRequest);
            spawn(async move { join_group::handle(&state, &meta, req).await.map(Some) })
        }
        ApiKey::SyncGroup => {
            let req = decode!(kafka_protocol::messages::SyncGroupRequest);
            spawn(async move { sync_group::handle(&state, &meta, req).await.map(Some) })
        }
        ApiKey::Heartbeat => {
            let req = decode!(kafka_protocol::messages::HeartbeatRequest);
            Reply::Now(Some(heartbeat::handle(&state, &meta, req)?))
        }
        ApiKey::LeaveGroup => {
            let req = decode!(kafka_protocol::messages::LeaveGroupRequest);
            Reply::Now(Some(leave_group::handle(&state, &meta, req)?))
        }
        ApiKey::OffsetCommit => {
            let req = decode!(kafka_protocol::messages::OffsetCommitRequest);
            offset_commit::handle(&state, &meta, req)?
        }
        ApiKey::OffsetFetch => {
            let req = decode!(kafka_protocol::messages::OffsetFetchRequest);
            Reply::Now(Some(offset_fetch::handle(&state, &meta, req)?))
        }
        ApiKey::ListGroups => {
            let req = decode!(kafka_protocol::messages::ListGroupsRequest);
            Reply::Now(Some(list_groups::handle(&state, &meta, req)?))
        }
        ApiKey::DescribeGroups => {
            let req = decode!(kafka_protocol::messages::DescribeGroupsRequest);
            Reply::Now(Some(describe_groups::handle(&state, &meta, req)?))
        }
        ApiKey::DeleteGroups => {
            let req = decode!(kafka_protocol::messages::DeleteGroupsRequest);
            Reply::Now(Some(delete_groups::handle(&state, &meta, req)?))
        }
        ApiKey::OffsetDelete => {
            let req = decode!(kafka_protocol::messages::OffsetDeleteRequest);
            Reply::Now(Some(offset_delete::handle(&state, &meta, req)?))
        }
        _ => return Err(DispatchError::UnsupportedVersion { api, version, supported: "none".into() }),
    };
    Ok(reply)
}

fn spawn<F>(fut: F) -> Reply
where
    F: std::future::Future<Output = Result<Option<Bytes>, EncodeError>> + Send + 'static,
{
    Reply::Later(tokio::spawn(fut))
}

/// Kafka's error code for "no error".
pub const NONE: i16 = 0;

/// Shorthand for a response error code.
pub fn code(e: kafka_protocol::error::ResponseError) -> i16 {
    e.code()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A `StrBytes` from an owned string.
pub fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// The Kafka error code for a storage error.
pub fn log_error(e: &strom_storage::LogError) -> i16 {
    e.kafka_error_code()
}
