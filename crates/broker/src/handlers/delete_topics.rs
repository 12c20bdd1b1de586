//! DeleteTopics: marks topics for deletion and waits (bounded) for the controller to finish.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::{sb, BrokerState, RequestMeta};
use crate::protocol::EncodeError;
use crate::topic;

pub async fn handle(
    state: &Arc<BrokerState>,
    meta: &RequestMeta,
    req: DeleteTopicsRequest,
) -> Result<Bytes, EncodeError> {
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
    // v6 moved names into `topics`; earlier versions use `topic_names`.
    let names: Vec<TopicName> = if req.topic_names.is_empty() {
        req.topics.into_iter().filter_map(|t| t.name).collect()
    } else {
        req.topic_names
    };
    let mut results = Vec::with_capacity(names.len());
    let mut pending = Vec::new();
    for name in names {
        let mut r = DeletableTopicResult::default().with_name(Some(name.clone()));
        if let Err(msg) = topic::validate_name(&name) {
            r.error_code = ResponseError::InvalidTopicException.code();
            r.error_message = Some(sb(msg));
        } else {
            match state.cluster.delete_topic(&name).await {
                Ok(id) => {
                    r.topic_id = id;
                    pending.push((results.len(), name.0.to_string()));
                }
                Err(e) => {
                    r.error_code = e.code();
                    r.error_message = Some(sb(e.to_string()));
                }
            }
        }
        results.push(r);
    }
    let waits = pending.iter().map(|(_, name)| state.cluster.wait_for_deletion(name, timeout));
    let done = futures::future::join_all(waits).await;
    for ((idx, _), ok) in pending.iter().zip(done) {
        if !ok {
            results[*idx].error_code = ResponseError::RequestTimedOut.code();
        }
    }
    meta.respond(&DeleteTopicsResponse::default().with_responses(results))
}
