//! Requested and automatic leader elections: preferred-replica election (the
//! `/admin/preferred_replica_election` znode, the ElectLeaders API and
//! `auto.leader.rebalance.enable`) and unclean election on request.
//!
//! The decisions are pure functions shared by the controller (which writes the result) and
//! the ElectLeaders handler (which reports per-partition errors before asking and checks the
//! outcome in its metadata cache afterwards).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use strom_keeper::KeeperError;

use super::Controller;
use crate::cluster::znodes::*;

/// Which election a request asks for (ElectLeaders' `election_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to the first replica of the assignment.
    Preferred,
    /// Give a partition without a live leader any live replica, even one out of sync.
    Unclean,
}

impl ElectionType {
    /// The request's wire value (0 preferred, 1 unclean); `None` for anything else.
    pub fn from_wire(v: i8) -> Option<ElectionType> {
        match v {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }

    /// The znode a request for this election is written to.
    pub fn znode(self) -> &'static str {
        match self {
            ElectionType::Preferred => PREFERRED_REPLICA_ELECTION,
            ElectionType::Unclean => UNCLEAN_LEADER_ELECTION,
        }
    }
}

/// The outcome of deciding one partition's election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Election {
    /// Write this state.
    Elect(PartitionState),
    /// The wanted leader already leads (Kafka's ELECTION_NOT_NEEDED).
    NotNeeded,
    /// The preferred replica is not live or not in the ISR (PREFERRED_LEADER_NOT_AVAILABLE),
    /// or, for unclean election, no replica is live (ELIGIBLE_LEADERS_NOT_AVAILABLE).
    NotAvailable,
}

/// Preferred-replica election: the first assigned replica becomes leader if it is live and
/// in the ISR; the ISR is kept and the leader epoch grows. A partition without a state yet is
/// left to the controller's ordinary reconciliation.
pub fn decide_preferred(
    current: Option<&PartitionState>,
    replicas: &[i32],
    live: &BTreeSet<i32>,
    controller_epoch: i32,
) -> Election {
    let (Some(cur), Some(&preferred)) = (current, replicas.first()) else {
        return Election::NotAvailable;
    };
    if cur.leader == preferred {
        return Election::NotNeeded;
    }
    if !live.contains(&preferred) || !cur.isr.contains(&preferred) {
        return Election::NotAvailable;
    }
    Election::Elect(PartitionState {
        controller_epoch,
        leader: preferred,
        version: 1,
        leader_epoch: cur.leader_epoch + 1,
        isr: cur.isr.clone(),
    })
}

/// Unclean election on request: only for a partition whose leader is missing or dead. A live
/// ISR member is still preferred (assignment order); failing that the first live replica
/// leads alone, accepting that records only the lost ISR had are gone.
pub fn decide_unclean(
    current: Option<&PartitionState>,
    replicas: &[i32],
    live: &BTreeSet<i32>,
    controller_epoch: i32,
) -> Election {
    if let Some(cur) = current {
        if cur.leader >= 0 && live.contains(&cur.leader) {
            return Election::NotNeeded;
        }
    }
    let in_isr = |r: &i32| current.is_some_and(|c| c.isr.contains(r));
    let live_replicas = || replicas.iter().copied().filter(|r| live.contains(r));
    let (leader, isr) = match live_replicas().find(in_isr) {
        Some(l) => {
            let isr = current.map(|c| c.isr.iter().copied().filter(|r| live.contains(r)).collect()).unwrap_or_default();
            (l, isr)
        }
        None => match live_replicas().next() {
            Some(l) => (l, vec![l]),
            None => return Election::NotAvailable,
        },
    };
    Election::Elect(PartitionState {
        controller_epoch,
        leader,
        version: 1,
        leader_epoch: current.map_or(0, |c| c.leader_epoch + 1),
        isr,
    })
}

/// Kafka's auto-rebalance rule: for every live broker, the share of partitions it is the
/// preferred replica of but does not lead; when that share exceeds `percentage` %, all of
/// them are candidates for a preferred election. Input: (key, replicas, current leader).
pub fn imbalanced<K: Clone>(partitions: &[(K, Vec<i32>, i32)], live: &BTreeSet<i32>, percentage: u32) -> Vec<K> {
    let mut by_preferred: BTreeMap<i32, (usize, Vec<K>)> = BTreeMap::new();
    for (key, replicas, leader) in partitions {
        let Some(&preferred) = replicas.first() else { continue };
        if !live.contains(&preferred) {
            continue;
        }
        let entry = by_preferred.entry(preferred).or_default();
        entry.0 += 1;
        if *leader != preferred {
            entry.1.push(key.clone());
        }
    }
    let mut out = Vec::new();
    for (total, not_led) in by_preferred.into_values() {
        // not_led / total > percentage / 100, in integers.
        if !not_led.is_empty() && not_led.len() * 100 > total * percentage as usize {
            out.extend(not_led);
        }
    }
    out
}

/// `/admin/preferred_replica_election` (Kafka's format; also used for the unclean request).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ElectionRequestNode {
    #[serde(default)]
    pub version: i32,
    pub partitions: Vec<ElectionRequestPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ElectionRequestPartition {
    pub topic: String,
    pub partition: i32,
}

/// One partition as the controller sees it while electing.
struct Loaded {
    replicas: Vec<i32>,
    state: Option<(PartitionState, i32)>,
}

impl Controller {
    /// Carries out the elections requested through the admin znodes (written by ElectLeaders,
    /// `kafka-leader-election` or Kafka's own ZooKeeper-mode tool), then deletes each node.
    pub(super) async fn requested_elections(&self, live: &BTreeSet<i32>) -> Result<(), KeeperError> {
        for kind in [ElectionType::Preferred, ElectionType::Unclean] {
            let path = kind.znode();
            let data = match self.zk.get_data(path, false).await {
                Ok((data, _)) => data,
                Err(KeeperError::NoNode) => continue,
                Err(e) => return Err(e),
            };
            match serde_json::from_slice::<ElectionRequestNode>(&data) {
                Ok(req) => {
                    let partitions: BTreeSet<ElectionRequestPartition> = req.partitions.into_iter().collect();
                    let keys: Vec<(String, i32)> = partitions.into_iter().map(|p| (p.topic, p.partition)).collect();
                    self.elect(kind, &keys, live).await?;
                }
                Err(e) => tracing::warn!(path, error = %e, "unreadable election request; discarding it"),
            }
            match self.zk.delete(path, None).await {
                Ok(()) | Err(KeeperError::NoNode) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The periodic (and post-registration) preferred-leader balance check. Returns whether
    /// some partition's preferred replica is live but not yet in the ISR — it may become
    /// eligible once it catches up, so the caller checks again soon.
    pub(super) async fn rebalance(&self, live: &BTreeSet<i32>) -> Result<bool, KeeperError> {
        let deleting: BTreeSet<String> = self.zk.get_children(DELETE_TOPICS, false).await?.into_iter().collect();
        let mut partitions = Vec::new();
        let mut catching_up = false;
        for topic in self.zk.get_children(BROKER_TOPICS, false).await? {
            if deleting.contains(&topic) {
                continue;
            }
            let Some(assignment) = self.load_assignment(&topic).await? else { continue };
            for (p, replicas) in assignment.into_iter().enumerate() {
                let p = p as i32;
                let Some((state, _)) = crate::cluster::loader::load_partition_state(&self.zk, &topic, p).await? else {
                    continue;
                };
                if let Some(&preferred) = replicas.first() {
                    if state.leader != preferred && live.contains(&preferred) && !state.isr.contains(&preferred) {
                        catching_up = true;
                    }
                }
                partitions.push(((topic.clone(), p), replicas, state.leader));
            }
        }
        let candidates = imbalanced(&partitions, live, self.settings.imbalance_percentage);
        if !candidates.is_empty() {
            tracing::info!(
                partitions = candidates.len(),
                "leader imbalance above threshold; electing preferred leaders"
            );
            self.elect(ElectionType::Preferred, &candidates, live).await?;
        }
        Ok(catching_up)
    }

    async fn load_assignment(&self, topic: &str) -> Result<Option<Vec<Vec<i32>>>, KeeperError> {
        let data = match self.zk.get_data(&topic_path(topic), false).await {
            Ok((data, _)) => data,
            Err(KeeperError::NoNode) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(serde_json::from_slice::<TopicAssignment>(&data).ok().and_then(|a| a.replicas()))
    }

    /// Elects leaders for `keys` and writes each new state with a version check; partitions
    /// whose state moved underneath are skipped (the next request or check retries them).
    async fn elect(&self, kind: ElectionType, keys: &[(String, i32)], live: &BTreeSet<i32>) -> Result<(), KeeperError> {
        let mut assignments: BTreeMap<String, Option<Vec<Vec<i32>>>> = BTreeMap::new();
        for (topic, p) in keys {
            if !assignments.contains_key(topic) {
                let a = self.load_assignment(topic).await?;
                assignments.insert(topic.clone(), a);
            }
            let Some(replicas) = assignments
                .get(topic)
                .and_then(Option::as_ref)
                .and_then(|a| usize::try_from(*p).ok().and_then(|i| a.get(i)))
            else {
                tracing::info!(topic, partition = p, ?kind, "election for an unknown partition ignored");
                continue;
            };
            let loaded = Loaded {
                replicas: replicas.clone(),
                state: crate::cluster::loader::load_partition_state(&self.zk, topic, *p).await?,
            };
            let current = loaded.state.as_ref().map(|(s, _)| s);
            let decided = match kind {
                ElectionType::Preferred => decide_preferred(current, &loaded.replicas, live, self.epoch),
                ElectionType::Unclean => decide_unclean(current, &loaded.replicas, live, self.epoch),
            };
            let Election::Elect(next) = decided else {
                tracing::debug!(topic, partition = p, ?kind, outcome = ?decided, "no election");
                continue;
            };
            let data = serde_json::to_vec(&next).map_err(|e| KeeperError::Marshalling(e.to_string()))?;
            let path = partition_state_path(topic, *p);
            let res = match loaded.state {
                Some((_, version)) => self.zk.set_data(&path, &data, Some(version)).await.map(|_| ()),
                None => self.zk.create_all(&path, &data, strom_keeper::CreateMode::Persistent).await.map(|_| ()),
            };
            match res {
                Ok(()) => tracing::info!(
                    topic,
                    partition = p,
                    ?kind,
                    leader = next.leader,
                    leader_epoch = next.leader_epoch,
                    "leader elected"
                ),
                Err(KeeperError::BadVersion | KeeperError::NodeExists) => {
                    tracing::info!(topic, partition = p, "partition state changed concurrently; election skipped")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ids: &[i32]) -> BTreeSet<i32> {
        ids.iter().copied().collect()
    }

    fn state(leader: i32, epoch: i32, isr: &[i32]) -> PartitionState {
        PartitionState { controller_epoch: 1, leader, version: 1, leader_epoch: epoch, isr: isr.to_vec() }
    }

    #[test]
    fn preferred_election_moves_leadership_back_keeping_the_isr() {
        let cur = state(2, 4, &[2, 1, 3]);
        match decide_preferred(Some(&cur), &[1, 2, 3], &live(&[1, 2, 3]), 7) {
            Election::Elect(s) => {
                assert_eq!((s.leader, s.leader_epoch, s.controller_epoch), (1, 5, 7));
                assert_eq!(s.isr, vec![2, 1, 3]);
            }
            other => panic!("expected an election, got {other:?}"),
        }
        assert_eq!(decide_preferred(Some(&state(1, 0, &[1, 2])), &[1, 2], &live(&[1, 2]), 1), Election::NotNeeded);
        // Preferred replica dead, or live but out of sync.
        assert_eq!(decide_preferred(Some(&cur), &[1, 2, 3], &live(&[2, 3]), 1), Election::NotAvailable);
        let out_of_sync = state(2, 4, &[2, 3]);
        assert_eq!(decide_preferred(Some(&out_of_sync), &[1, 2, 3], &live(&[1, 2, 3]), 1), Election::NotAvailable);
        assert_eq!(decide_preferred(None, &[1], &live(&[1]), 1), Election::NotAvailable);
    }

    #[test]
    fn unclean_election_only_for_leaderless_partitions() {
        assert_eq!(decide_unclean(Some(&state(1, 0, &[1])), &[1, 2], &live(&[1, 2]), 1), Election::NotNeeded);
        // Leader 1 dead, 2 live but never in the ISR: unclean election picks it alone.
        let offline = state(-1, 3, &[1]);
        match decide_unclean(Some(&offline), &[1, 2], &live(&[2]), 2) {
            Election::Elect(s) => assert_eq!((s.leader, s.leader_epoch, s.isr), (2, 4, vec![2])),
            other => panic!("{other:?}"),
        }
        // A live ISR member is still preferred over an out-of-sync replica.
        let cur = state(1, 3, &[1, 3]);
        match decide_unclean(Some(&cur), &[2, 3, 1], &live(&[2, 3]), 2) {
            Election::Elect(s) => assert_eq!((s.leader, s.isr), (3, vec![3])),
            other => panic!("{other:?}"),
        }
        assert_eq!(decide_unclean(Some(&offline), &[1, 2], &live(&[]), 2), Election::NotAvailable);
    }

    #[test]
    fn imbalance_threshold_is_per_preferred_broker() {
        // Broker 1 prefers 4 partitions and leads 3: 25% imbalance.
        let parts = vec![
            ("a", vec![1, 2], 1),
            ("b", vec![1, 2], 1),
            ("c", vec![1, 2], 1),
            ("d", vec![1, 2], 2),
            ("e", vec![2, 1], 2),
        ];
        assert_eq!(imbalanced(&parts, &live(&[1, 2]), 10), vec!["d"]);
        assert!(imbalanced(&parts, &live(&[1, 2]), 25).is_empty());
        // A dead preferred broker is not rebalanced towards.
        assert!(imbalanced(&parts, &live(&[2]), 0).is_empty());
    }

    #[test]
    fn election_request_node_is_kafkas_format() {
        let node: ElectionRequestNode = serde_json::from_str(
            r#"{"version":1,"partitions":[{"topic":"t","partition":0},{"topic":"u","partition":3}]}"#,
        )
        .unwrap();
        assert_eq!(node.partitions[1], ElectionRequestPartition { topic: "u".into(), partition: 3 });
        assert!(serde_json::from_str::<ElectionRequestNode>(r#"{"version":1}"#).is_err());
    }
}
