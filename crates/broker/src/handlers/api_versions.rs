//! ApiVersions: advertises exactly the APIs and versions in [`protocol::SUPPORTED_APIS`].

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Decodable;

use super::RequestMeta;
use crate::protocol::{self, EncodeError};

/// Answers an ApiVersions request of any version. An unknown version gets a v0 response with
/// UNSUPPORTED_VERSION and the API list, so the client can retry with a version we know
/// (KIP-511).
pub fn handle(meta: &RequestMeta, mut body: Bytes) -> Result<Bytes, EncodeError> {
    let mut response = ApiVersionsResponse::default().with_api_keys(api_list());
    if !protocol::is_supported(meta.api, meta.version) {
        response.error_code = ResponseError::UnsupportedVersion.code();
        let v0 = RequestMeta { version: 0, ..meta.clone() };
        return v0.respond(&response);
    }
    if let Err(e) = ApiVersionsRequest::decode(&mut body, meta.version) {
        tracing::warn!(version = meta.version, error = %e, "malformed ApiVersions request");
        response.error_code = ResponseError::InvalidRequest.code();
    }
    meta.respond(&response)
}

fn api_list() -> Vec<ApiVersion> {
    protocol::SUPPORTED_APIS
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default().with_api_key(key as i16).with_min_version(min).with_max_version(max)
        })
        .collect()
}
