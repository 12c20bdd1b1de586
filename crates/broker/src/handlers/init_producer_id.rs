//! InitProducerId: producer ids and epochs for idempotent producers.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{BrokerState, RequestMeta};
use crate::protocol::EncodeError;

pub async fn handle(
    state: &Arc<BrokerState>,
    meta: &RequestMeta,
    req: InitProducerIdRequest,
) -> Result<Bytes, EncodeError> {
    let mut response = InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        // No transaction coordinator yet; tell the client plainly rather than stall it.
        response.error_code = ResponseError::UnsupportedVersion.code();
        return meta.respond(&response);
    }
    // KIP-360: a producer that already has an id may ask for an epoch bump instead of a new id.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        response.producer_id = req.producer_id;
        response.producer_epoch = req.producer_epoch + 1;
        return meta.respond(&response);
    }
    match state.producer_ids.next(&state.cluster).await {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => {
            tracing::warn!(error = %e, "producer id allocation failed");
            response.error_code = ResponseError::CoordinatorNotAvailable.code();
        }
    }
    meta.respond(&response)
}
