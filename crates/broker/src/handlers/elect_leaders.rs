//! ElectLeaders (key 43): preferred-replica and unclean elections on request.
//!
//! Each partition is first judged against the metadata cache with the controller's own
//! decision functions, so ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE and unknown
//! partitions are answered at once. The rest go to the controller through the election
//! request znode, and the handler waits (bounded by the request's timeout) until the cache
//! shows each one settled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::{sb, BrokerState, RequestMeta, NONE};
use crate::cluster::znodes::PartitionState;
use crate::controller::election::{decide_preferred, decide_unclean, Election, ElectionType};
use crate::metadata::{ClusterSnapshot, PartitionMeta};
use crate::protocol::EncodeError;

type Outcome = (i16, Option<String>);

pub async fn handle(
    state: &Arc<BrokerState>,
    meta: &RequestMeta,
    req: ElectLeadersRequest,
) -> Result<Bytes, EncodeError> {
    // v0 has no election type: it is always a preferred election.
    let kind =
        if meta.version == 0 { Some(ElectionType::Preferred) } else { ElectionType::from_wire(req.election_type) };
    let Some(kind) = kind else {
        let resp = ElectLeadersResponse::default().with_error_code(ResponseError::InvalidRequest.code());
        return meta.respond(&resp);
    };
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + timeout;
    let snapshot = state.cache.snapshot();
    let all = req.topic_partitions.is_none();
    let requested: BTreeSet<(String, i32)> = match req.topic_partitions {
        None => snapshot
            .topics
            .values()
            .filter(|t| !t.deleting)
            .flat_map(|t| (0..t.partitions.len() as i32).map(|p| (t.name.clone(), p)))
            .collect(),
        Some(list) => list
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect(),
    };
    let mut results: BTreeMap<(String, i32), Outcome> = BTreeMap::new();
    let mut candidates = Vec::new();
    for key in requested {
        match judge(&snapshot, kind, &key) {
            Judged::Settled(outcome) => {
                results.insert(key, outcome);
            }
            Judged::Pending => candidates.push(key),
        }
    }
    if !candidates.is_empty() {
        match state.cluster.request_election(kind, &candidates, deadline).await {
            Err(e) => {
                let outcome = (e.code(), Some(e.to_string()));
                results.extend(candidates.into_iter().map(|k| (k, outcome.clone())));
            }
            Ok(()) => {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                let settled = |s: &ClusterSnapshot| candidates.iter().all(|k| settled_after(s, kind, k).is_some());
                state.cache.wait_for(remaining, settled).await;
                let snapshot = state.cache.snapshot();
                for key in candidates {
                    let outcome = settled_after(&snapshot, kind, &key).unwrap_or_else(|| {
                        let msg = format!("Timed out waiting for the leader election of {}-{}", key.0, key.1);
                        (ResponseError::RequestTimedOut.code(), Some(msg))
                    });
                    results.insert(key, outcome);
                }
            }
        }
    }
    // Kafka leaves partitions that needed no election out of an all-partitions answer.
    if all {
        results.retain(|_, (code, _)| *code != ResponseError::ElectionNotNeeded.code());
    }
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, partition), (code, message)) in results {
        by_topic.entry(topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(code)
                .with_error_message(message.map(sb)),
        );
    }
    let resp = ElectLeadersResponse::default().with_error_code(NONE).with_replica_election_results(
        by_topic
            .into_iter()
            .map(|(topic, partition_result)| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(sb(topic)))
                    .with_partition_result(partition_result)
            })
            .collect(),
    );
    meta.respond(&resp)
}

enum Judged {
    Settled(Outcome),
    /// Needs the controller.
    Pending,
}

fn as_state(p: &PartitionMeta) -> PartitionState {
    PartitionState {
        controller_epoch: 0,
        leader: p.leader,
        version: 1,
        leader_epoch: p.leader_epoch,
        isr: p.isr.clone(),
    }
}

fn live(snapshot: &ClusterSnapshot) -> BTreeSet<i32> {
    snapshot.brokers.keys().copied().collect()
}

fn unknown(topic: &str, partition: i32) -> Outcome {
    (ResponseError::UnknownTopicOrPartition.code(), Some(format!("The partition {topic}-{partition} does not exist.")))
}

/// The answer the cache gives before anything is asked of the controller.
fn judge(snapshot: &ClusterSnapshot, kind: ElectionType, (topic, partition): &(String, i32)) -> Judged {
    let Some(p) = snapshot.topic(topic).filter(|t| !t.deleting).and_then(|_| snapshot.partition(topic, *partition))
    else {
        return Judged::Settled(unknown(topic, *partition));
    };
    let live = live(snapshot);
    let cur = as_state(p);
    let decided = match kind {
        ElectionType::Preferred => decide_preferred(Some(&cur), &p.replicas, &live, 0),
        ElectionType::Unclean => decide_unclean(Some(&cur), &p.replicas, &live, 0),
    };
    match decided {
        Election::Elect(_) => Judged::Pending,
        Election::NotNeeded => Judged::Settled((
            ResponseError::ElectionNotNeeded.code(),
            Some(format!("Leader election not needed for topic partition {topic}-{partition}")),
        )),
        Election::NotAvailable => Judged::Settled(not_available(kind, topic, *partition, p)),
    }
}

fn not_available(kind: ElectionType, topic: &str, partition: i32, p: &PartitionMeta) -> Outcome {
    match kind {
        ElectionType::Preferred => (
            ResponseError::PreferredLeaderNotAvailable.code(),
            Some(format!(
                "Failed to elect leader for partition {topic}-{partition}: preferred replica {} is not live or not in the ISR [{}]",
                p.replicas.first().copied().unwrap_or(-1),
                p.isr.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
            )),
        ),
        ElectionType::Unclean => (
            ResponseError::EligibleLeadersNotAvailable.code(),
            Some(format!("Failed to elect leader for partition {topic}-{partition}: no replica is live")),
        ),
    }
}

/// After the request: the outcome once the cache shows the election done (or impossible).
fn settled_after(
    snapshot: &ClusterSnapshot,
    kind: ElectionType,
    (topic, partition): &(String, i32),
) -> Option<Outcome> {
    let Some(p) = snapshot.partition(topic, *partition) else {
        return Some(unknown(topic, *partition));
    };
    let live = live(snapshot);
    let done = match kind {
        ElectionType::Preferred => p.replicas.first() == Some(&p.leader),
        ElectionType::Unclean => p.leader >= 0 && live.contains(&p.leader),
    };
    if done {
        return Some((NONE, None));
    }
    let cur = as_state(p);
    let decided = match kind {
        ElectionType::Preferred => decide_preferred(Some(&cur), &p.replicas, &live, 0),
        ElectionType::Unclean => decide_unclean(Some(&cur), &p.replicas, &live, 0),
    };
    match decided {
        Election::NotAvailable => Some(not_available(kind, topic, *partition, p)),
        Election::Elect(_) | Election::NotNeeded => None,
    }
}
