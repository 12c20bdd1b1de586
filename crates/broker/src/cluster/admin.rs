//! Topic administration through the keeper: create (explicit and automatic), delete, add
//! partitions, and producer-id block allocation. Writes follow docs/znode-layout.md so the
//! controller and `kafka-topics --zookeeper` see the same thing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use strom_keeper::{CreateMode, KeeperError, Op};
use thiserror::Error;
use uuid::Uuid;

use super::znodes::*;
use super::Cluster;
use crate::controller::election::{ElectionRequestNode, ElectionRequestPartition, ElectionType};
use crate::metadata::ClusterSnapshot;
use crate::topic::{self, RackAwareMode};

/// Size of the producer-id block a broker reserves at a time (Kafka's `PidBlockSize`).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// A topic creation request, before defaults are applied.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 takes `num.partitions`.
    pub num_partitions: i32,
    /// -1 takes `default.replication.factor`.
    pub replication_factor: i16,
    /// Explicit replicas per partition (partition ids 0..n in order).
    pub assignment: Option<Vec<Vec<i32>>>,
    pub configs: BTreeMap<String, String>,
}

/// A validated topic, ready to write.
#[derive(Debug, Clone)]
pub struct PlannedTopic {
    pub name: String,
    pub id: Uuid,
    pub assignment: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

impl PlannedTopic {
    pub fn replication_factor(&self) -> i16 {
        self.assignment.first().map_or(0, |r| r.len() as i16)
    }
}

/// Why an admin operation failed; maps to the Kafka error code clients expect.
#[derive(Debug, Error)]
pub enum AdminError {
    #[error("{0}")]
    InvalidTopic(String),
    #[error("Topic '{0}' already exists.")]
    TopicExists(String),
    #[error("Topic '{0}' is marked for deletion.")]
    MarkedForDeletion(String),
    #[error("This server does not host this topic: {0}")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("Topic deletion is disabled.")]
    DeletionDisabled,
    #[error("{0}")]
    Timeout(String),
    #[error("keeper unavailable")]
    NoSession,
    #[error("keeper: {0}")]
    Keeper(#[from] KeeperError),
}

impl AdminError {
    pub fn code(&self) -> i16 {
        match self {
            AdminError::InvalidTopic(_) => ResponseError::InvalidTopicException.code(),
            AdminError::TopicExists(_) | AdminError::MarkedForDeletion(_) => ResponseError::TopicAlreadyExists.code(),
            AdminError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition.code(),
            AdminError::InvalidPartitions(_) => ResponseError::InvalidPartitions.code(),
            AdminError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor.code(),
            AdminError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment.code(),
            AdminError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
            AdminError::InvalidRequest(_) => ResponseError::InvalidRequest.code(),
            AdminError::DeletionDisabled => ResponseError::TopicDeletionDisabled.code(),
            AdminError::Timeout(_) => ResponseError::RequestTimedOut.code(),
            AdminError::NoSession | AdminError::Keeper(_) => ResponseError::UnknownServerError.code(),
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, AdminError> {
    serde_json::to_vec(v).map_err(|e| AdminError::Keeper(KeeperError::Marshalling(e.to_string())))
}

impl Cluster {
    fn session(&self) -> Result<Arc<strom_keeper::client::KeeperClient>, AdminError> {
        self.keeper().ok_or(AdminError::NoSession)
    }

    /// Validates a creation request against Kafka's rules and the live brokers, applying
    /// defaults; nothing is written. Racks are enforced (a cluster where only some brokers
    /// have `broker.rack` is refused) except for internal topics, which fall back to
    /// rack-unaware assignment so the cluster keeps working.
    pub fn plan_topic(&self, spec: NewTopic) -> Result<PlannedTopic, AdminError> {
        let mode = if topic::is_internal(&spec.name) { RackAwareMode::Safe } else { RackAwareMode::Enforced };
        self.plan_topic_with(spec, mode)
    }

    /// [`Cluster::plan_topic`] with an explicit rack-awareness mode.
    pub fn plan_topic_with(&self, spec: NewTopic, mode: RackAwareMode) -> Result<PlannedTopic, AdminError> {
        topic::validate_name(&spec.name).map_err(AdminError::InvalidTopic)?;
        let snapshot = self.cache().snapshot();
        if let Some(t) = snapshot.topic(&spec.name) {
            return Err(if t.deleting {
                AdminError::MarkedForDeletion(spec.name)
            } else {
                AdminError::TopicExists(spec.name)
            });
        }
        for (k, v) in &spec.configs {
            topic::validate_config(k, v).map_err(AdminError::InvalidConfig)?;
        }
        let brokers: Vec<i32> = snapshot.brokers.keys().copied().collect();
        let assignment = match spec.assignment {
            Some(assignment) => {
                if spec.num_partitions != -1 || spec.replication_factor != -1 {
                    return Err(AdminError::InvalidRequest(
                        "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
                    ));
                }
                validate_assignment(&assignment, &brokers, None)?;
                assignment
            }
            None => {
                let partitions = match spec.num_partitions {
                    -1 => self.config().num_partitions,
                    n if n < 1 => {
                        return Err(AdminError::InvalidPartitions("Number of partitions must be larger than 0.".into()))
                    }
                    n => n,
                };
                let rf = match spec.replication_factor {
                    -1 => self.config().default_replication_factor,
                    n if n < 1 => {
                        return Err(AdminError::InvalidReplicationFactor(
                            "Replication factor must be larger than 0.".into(),
                        ))
                    }
                    n => n,
                };
                if rf as usize > brokers.len() {
                    return Err(AdminError::InvalidReplicationFactor(format!(
                        "Replication factor: {rf} larger than available brokers: {}.",
                        brokers.len()
                    )));
                }
                let start = rand::random::<u32>() as usize % brokers.len();
                topic::assign_replicas_for(&racks(&snapshot), partitions, rf as usize, 0, start, mode)
                    .map_err(AdminError::InvalidReplicaAssignment)?
            }
        };
        Ok(PlannedTopic { name: spec.name, id: random_uuid(), assignment, configs: spec.configs })
    }

    /// Writes a planned topic: `/config/topics/<t>` and `/brokers/topics/<t>` in one multi.
    pub async fn create_topic(&self, plan: &PlannedTopic) -> Result<(), AdminError> {
        let zk = self.session()?;
        if zk.exists(&delete_topic_path(&plan.name), false).await?.is_some() {
            return Err(AdminError::MarkedForDeletion(plan.name.clone()));
        }
        let config = json(&TopicConfigNode { version: 1, config: plan.configs.clone() })?;
        let assignment = json(&TopicAssignment::new(&plan.assignment, plan.id))?;
        // A config node can outlive a half-finished deletion; overwrite it rather than fail.
        let config_op = match zk.exists(&topic_config_path(&plan.name), false).await? {
            Some(_) => Op::SetData { path: topic_config_path(&plan.name), data: config, version: -1 },
            None => Op::Create { path: topic_config_path(&plan.name), data: config, mode: CreateMode::Persistent },
        };
        let ops = vec![
            config_op,
            Op::Create { path: topic_path(&plan.name), data: assignment, mode: CreateMode::Persistent },
        ];
        match zk.multi(ops).await {
            Ok(_) => {
                tracing::info!(topic = %plan.name, partitions = plan.assignment.len(), "topic created");
                Ok(())
            }
            Err(KeeperError::NodeExists) => Err(AdminError::TopicExists(plan.name.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until the cache shows `name` with every partition led (or `timeout`).
    pub async fn wait_for_leaders(&self, name: &str, partitions: usize, timeout: Duration) -> bool {
        self.cache()
            .wait_for(timeout, |s| {
                s.topic(name).is_some_and(|t| t.partitions.len() >= partitions && t.all_leaders_elected())
            })
            .await
    }

    /// Starts creating `name` in the background if auto-creation is on and the name is valid;
    /// returns whether a creation is (now) in progress.
    pub fn maybe_auto_create(self: &Arc<Self>, name: &str) -> bool {
        if !self.config().auto_create_topics_enable || topic::validate_name(name).is_err() {
            return false;
        }
        {
            let mut creating = match self.auto_creating.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if !creating.insert(name.to_string()) {
                return true;
            }
        }
        let cluster = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let spec = NewTopic {
                name: name.clone(),
                num_partitions: -1,
                replication_factor: -1,
                assignment: None,
                configs: BTreeMap::new(),
            };
            // Auto-creation is not worth failing over a half-racked cluster (Kafka's Safe mode).
            let result = match cluster.plan_topic_with(spec, RackAwareMode::Safe) {
                Ok(plan) => cluster.create_topic(&plan).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) | Err(AdminError::TopicExists(_)) => {}
                Err(e) => tracing::warn!(topic = %name, error = %e, "auto-create failed"),
            }
            let mut creating = match cluster.auto_creating.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            creating.remove(&name);
        });
        true
    }

    /// Marks a topic for deletion; the controller removes it.
    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, AdminError> {
        if !self.config().delete_topic_enable {
            return Err(AdminError::DeletionDisabled);
        }
        let zk = self.session()?;
        let id = match self.cache().snapshot().topic(name) {
            Some(t) => t.id,
            None => {
                if zk.exists(&topic_path(name), false).await?.is_none() {
                    return Err(AdminError::UnknownTopic(name.to_string()));
                }
                Uuid::nil()
            }
        };
        match zk.create(&delete_topic_path(name), b"", CreateMode::Persistent).await {
            Ok(_) | Err(KeeperError::NodeExists) => Ok(id),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until `name` has gone from the cache (or `timeout`).
    pub async fn wait_for_deletion(&self, name: &str, timeout: Duration) -> bool {
        self.cache().wait_for(timeout, |s| s.topic(name).is_none()).await
    }

    /// Grows a topic to `count` partitions (version-checked rewrite of its assignment).
    /// Returns the total partition count on success.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignment: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<usize, AdminError> {
        let zk = self.session()?;
        let (data, stat) = match zk.get_data(&topic_path(name), false).await {
            Ok(v) => v,
            Err(KeeperError::NoNode) => return Err(AdminError::UnknownTopic(name.to_string())),
            Err(e) => return Err(e.into()),
        };
        if zk.exists(&delete_topic_path(name), false).await?.is_some() {
            return Err(AdminError::UnknownTopic(format!("{name} is queued for deletion")));
        }
        let mut current: TopicAssignment = serde_json::from_slice(&data)
            .map_err(|e| AdminError::InvalidRequest(format!("unreadable assignment of {name}: {e}")))?;
        let existing = current
            .replicas()
            .ok_or_else(|| AdminError::InvalidRequest(format!("assignment of {name} is not contiguous")))?;
        let have = existing.len() as i32;
        if count < have {
            return Err(AdminError::InvalidPartitions(format!(
                "Topic currently has {have} partitions, which is higher than the requested {count}."
            )));
        }
        if count == have {
            return Err(AdminError::InvalidPartitions(format!("Topic already has {have} partitions.")));
        }
        let adding = (count - have) as usize;
        let snapshot = self.cache().snapshot();
        let brokers: Vec<i32> = snapshot.brokers.keys().copied().collect();
        let rf = existing.first().map_or(1, Vec::len);
        let new = match assignment {
            Some(a) => {
                if a.len() != adding {
                    return Err(AdminError::InvalidReplicaAssignment(format!(
                        "Increasing the number of partitions by {adding} but {} assignments provided.",
                        a.len()
                    )));
                }
                validate_assignment(&a, &brokers, Some(rf))?;
                a
            }
            None => {
                if rf > brokers.len() {
                    return Err(AdminError::InvalidReplicationFactor(format!(
                        "Replication factor: {rf} larger than available brokers: {}.",
                        brokers.len()
                    )));
                }
                let start = rand::random::<u32>() as usize % brokers.len().max(1);
                let mode = if topic::is_internal(name) { RackAwareMode::Safe } else { RackAwareMode::Enforced };
                topic::assign_replicas_for(&racks(&snapshot), adding as i32, rf, have, start, mode)
                    .map_err(AdminError::InvalidReplicaAssignment)?
            }
        };
        if validate_only {
            return Ok(count as usize);
        }
        for (i, replicas) in new.into_iter().enumerate() {
            current.partitions.insert((have as usize + i).to_string(), replicas);
        }
        match zk.set_data(&topic_path(name), &json(&current)?, Some(stat.version)).await {
            Ok(_) => Ok(count as usize),
            Err(KeeperError::BadVersion) => {
                Err(AdminError::InvalidRequest(format!("assignment of {name} changed concurrently; retry")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Asks the controller for elections by writing the request znode (`kind.znode()`, Kafka's
    /// `/admin/preferred_replica_election` format). An earlier request still being carried
    /// out is waited for, until `deadline`.
    pub async fn request_election(
        &self,
        kind: ElectionType,
        partitions: &[(String, i32)],
        deadline: tokio::time::Instant,
    ) -> Result<(), AdminError> {
        let zk = self.session()?;
        let node = ElectionRequestNode {
            version: 1,
            partitions: partitions
                .iter()
                .map(|(topic, partition)| ElectionRequestPartition { topic: topic.clone(), partition: *partition })
                .collect(),
        };
        let data = json(&node)?;
        loop {
            match zk.create(kind.znode(), &data, CreateMode::Persistent).await {
                Ok(_) => return Ok(()),
                Err(KeeperError::NodeExists) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(AdminError::Timeout(format!(
                            "an earlier leader election request ({}) is still in progress",
                            kind.znode()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reserves the next block of producer ids from `/latest_producer_id_block`
    /// (version-checked, so two brokers never get the same block). Returns `[start, end]`.
    pub async fn allocate_producer_ids(&self) -> Result<(i64, i64), AdminError> {
        let zk = self.session()?;
        let broker = self.config().broker_id;
        loop {
            let (start, version) = match zk.get_data(PRODUCER_ID_BLOCK, false).await {
                Ok((data, stat)) => {
                    let node: ProducerIdBlockNode = serde_json::from_slice(&data)
                        .map_err(|e| AdminError::InvalidRequest(format!("unreadable {PRODUCER_ID_BLOCK}: {e}")))?;
                    let end: i64 = node
                        .block_end
                        .parse()
                        .map_err(|_| AdminError::InvalidRequest(format!("bad block_end in {PRODUCER_ID_BLOCK}")))?;
                    (end + 1, Some(stat.version))
                }
                Err(KeeperError::NoNode) => (0, None),
                Err(e) => return Err(e.into()),
            };
            let end = start + PRODUCER_ID_BLOCK_SIZE - 1;
            let node = json(&ProducerIdBlockNode {
                version: 1,
                broker,
                block_start: start.to_string(),
                block_end: end.to_string(),
            })?;
            let res = match version {
                Some(v) => zk.set_data(PRODUCER_ID_BLOCK, &node, Some(v)).await.map(|_| ()),
                None => zk.create(PRODUCER_ID_BLOCK, &node, CreateMode::Persistent).await.map(|_| ()),
            };
            match res {
                Ok(()) => return Ok((start, end)),
                Err(KeeperError::BadVersion | KeeperError::NodeExists) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The live brokers with their racks, as assignment takes them.
fn racks(snapshot: &ClusterSnapshot) -> Vec<(i32, Option<String>)> {
    snapshot.brokers.values().map(|b| (b.id, b.rack.clone())).collect()
}

/// Checks explicit replica assignments: non-empty, no duplicate brokers, only live brokers,
/// one replication factor throughout (`rf` when it must match an existing one).
fn validate_assignment(assignment: &[Vec<i32>], brokers: &[i32], rf: Option<usize>) -> Result<(), AdminError> {
    if assignment.is_empty() {
        return Err(AdminError::InvalidReplicaAssignment("empty replica assignment".into()));
    }
    let want = rf.unwrap_or(assignment[0].len());
    for (p, replicas) in assignment.iter().enumerate() {
        if replicas.is_empty() {
            return Err(AdminError::InvalidReplicaAssignment(format!("partition {p} has an empty replica list")));
        }
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != replicas.len() {
            return Err(AdminError::InvalidReplicaAssignment(format!(
                "partition {p} lists a broker twice: {replicas:?}"
            )));
        }
        if replicas.len() != want {
            return Err(AdminError::InvalidReplicaAssignment(format!(
                "partition {p} has {} replicas; expected {want}",
                replicas.len()
            )));
        }
        if let Some(b) = replicas.iter().find(|b| !brokers.contains(b)) {
            return Err(AdminError::InvalidReplicaAssignment(format!(
                "partition {p} names broker {b}, which is not registered"
            )));
        }
    }
    Ok(())
}
