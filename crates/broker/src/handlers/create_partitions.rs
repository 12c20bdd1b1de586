//! CreatePartitions: grows topics; new partitions get leaders from the controller.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::{sb, BrokerState, RequestMeta};
use crate::protocol::EncodeError;

pub async fn handle(
    state: &Arc<BrokerState>,
    meta: &RequestMeta,
    req: CreatePartitionsRequest,
) -> Result<Bytes, EncodeError> {
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    let mut pending = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if seen.get(&name).copied().unwrap_or(0) > 1 {
            r.error_code = ResponseError::InvalidRequest.code();
            r.error_message = Some(sb(format!("Duplicate topic in request: {name}")));
            results.push(r);
            continue;
        }
        let assignment = t
            .assignments
            .filter(|a| !a.is_empty())
            .map(|a| a.into_iter().map(|x| x.broker_ids.into_iter().map(|b| b.0).collect()).collect());
        match state.cluster.create_partitions(&name, t.count, assignment, req.validate_only).await {
            Ok(count) => {
                if !req.validate_only {
                    pending.push((results.len(), name, count));
                }
            }
            Err(e) => {
                r.error_code = e.code();
                r.error_message = Some(sb(e.to_string()));
            }
        }
        results.push(r);
    }
    let waits = pending.iter().map(|(_, name, count)| state.cluster.wait_for_leaders(name, *count, timeout));
    let done = futures::future::join_all(waits).await;
    for ((idx, _, _), ok) in pending.iter().zip(done) {
        if !ok && !timeout.is_zero() {
            results[*idx].error_code = ResponseError::RequestTimedOut.code();
        }
    }
    meta.respond(&CreatePartitionsResponse::default().with_results(results))
}
