//! CreateTopics: validates each topic, writes it through the keeper, and waits (bounded by
//! the request's timeout) until the controller has elected its leaders.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::{describe_configs, sb, BrokerState, RequestMeta};
use crate::cluster::admin::{AdminError, NewTopic, PlannedTopic};
use crate::protocol::EncodeError;

pub async fn handle(
    state: &Arc<BrokerState>,
    meta: &RequestMeta,
    req: CreateTopicsRequest,
) -> Result<Bytes, EncodeError> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
    let mut results = Vec::with_capacity(req.topics.len());
    let mut created: Vec<(usize, PlannedTopic)> = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let outcome = if seen.get(&name).copied().unwrap_or(0) > 1 {
            Err(AdminError::InvalidRequest(format!(
                "Create topics request from client `{}` contains multiple entries for the following topics: {name}",
                meta.client_id.as_deref().unwrap_or("")
            )))
        } else {
            to_spec(name, &t).and_then(|spec| state.cluster.plan_topic(spec))
        };
        let plan = match outcome {
            Ok(plan) => plan,
            Err(e) => {
                results.push(fail(result, &e));
                continue;
            }
        };
        if !req.validate_only {
            if let Err(e) = state.cluster.create_topic(&plan).await {
                results.push(fail(result, &e));
                continue;
            }
            result.topic_id = plan.id;
        }
        result.num_partitions = plan.assignment.len() as i32;
        result.replication_factor = plan.replication_factor();
        // Config echo (and partition/replica counts) exist from v5.
        result.configs = (meta.version >= 5).then(|| {
            describe_configs::topic_entries(&state.config, &plan.configs)
                .into_iter()
                .map(|e| {
                    CreatableTopicConfigs::default()
                        .with_name(sb(e.name))
                        .with_value(Some(sb(e.value)))
                        .with_read_only(false)
                        .with_config_source(e.source)
                        .with_is_sensitive(false)
                })
                .collect()
        });
        if !req.validate_only {
            created.push((results.len(), plan));
        }
        results.push(result);
    }
    if !created.is_empty() && !timeout.is_zero() {
        let waits =
            created.iter().map(|(_, plan)| state.cluster.wait_for_leaders(&plan.name, plan.assignment.len(), timeout));
        let done = futures::future::join_all(waits).await;
        for ((idx, plan), ok) in created.iter().zip(done) {
            if !ok {
                let r = &mut results[*idx];
                r.error_code = ResponseError::RequestTimedOut.code();
                r.error_message = Some(sb(format!(
                    "Topic '{}' was created but its leaders were not elected within {} ms",
                    plan.name,
                    timeout.as_millis()
                )));
            }
        }
    }
    meta.respond(&CreateTopicsResponse::default().with_topics(results))
}

fn to_spec(
    name: String,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<NewTopic, AdminError> {
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let Some(value) = &c.value else {
            return Err(AdminError::InvalidConfig(format!("Null value not supported for topic config '{}'", c.name)));
        };
        configs.insert(c.name.to_string(), value.to_string());
    }
    let assignment = if t.assignments.is_empty() {
        None
    } else {
        let mut by_partition: Vec<_> = t.assignments.iter().collect();
        by_partition.sort_by_key(|a| a.partition_index);
        if by_partition.iter().enumerate().any(|(i, a)| a.partition_index != i as i32) {
            return Err(AdminError::InvalidReplicaAssignment(
                "Partitions should be a consecutive 0-based integer sequence".into(),
            ));
        }
        Some(by_partition.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect())
    };
    Ok(NewTopic {
        name,
        num_partitions: t.num_partitions,
        replication_factor: t.replication_factor,
        assignment,
        configs,
    })
}

fn fail(result: CreatableTopicResult, e: &AdminError) -> CreatableTopicResult {
    result.with_error_code(e.code()).with_error_message(Some(sb(e.to_string())))
}
