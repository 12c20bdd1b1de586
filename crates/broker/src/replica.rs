//! The replica manager: the partitions this broker hosts, their logs, leadership and the
//! per-partition "new data" signal that wakes long-polling fetches.
//!
//! Every leadership or assignment change reaches a partition through
//! [`ReplicaManager::apply_partition_state`]; the replication work of the next issue hooks in
//! there (become-follower starts fetching, become-leader resets follower state).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, RwLock};

use strom_storage::{LogConfig, LogError, LogManager, PartitionLog};
use tokio::sync::watch;

use crate::metadata::PartitionMeta;
use crate::topic;

/// A partition hosted on this broker.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub log: Arc<PartitionLog>,
    leader: AtomicBool,
    leader_epoch: AtomicI32,
    /// Carries the high watermark; fetchers wait on `changed()`.
    hw: watch::Sender<i64>,
}

impl Partition {
    fn new(topic: &str, index: i32, log: Arc<PartitionLog>) -> Self {
        let hw = log.log_end_offset();
        Partition {
            topic: topic.to_string(),
            index,
            log,
            leader: AtomicBool::new(false),
            leader_epoch: AtomicI32::new(-1),
            hw: watch::channel(hw).0,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Offsets below the high watermark are visible to consumers. Until replication lands
    /// (next issue) the leader is the only replica that holds data, so it is the log end.
    pub fn high_watermark(&self) -> i64 {
        *self.hw.borrow()
    }

    /// Subscribes to high-watermark changes (for long polls).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.hw.subscribe()
    }

    /// Called after a successful append: publish the new high watermark to waiting fetches.
    pub fn appended(&self) {
        let leo = self.log.log_end_offset();
        self.hw.send_if_modified(|hw| {
            let changed = *hw != leo;
            *hw = leo;
            changed
        });
    }
}

/// All partitions hosted here.
pub struct ReplicaManager {
    broker_id: i32,
    logs: LogManager,
    default_config: RwLock<LogConfig>,
    partitions: RwLock<HashMap<String, HashMap<i32, Arc<Partition>>>>,
}

impl ReplicaManager {
    pub fn new(broker_id: i32, logs: LogManager, default_config: LogConfig) -> Self {
        ReplicaManager {
            broker_id,
            logs,
            default_config: RwLock::new(default_config),
            partitions: RwLock::new(HashMap::new()),
        }
    }

    pub fn broker_id(&self) -> i32 {
        self.broker_id
    }

    /// The hosted partition, if any (leader or follower).
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let guard = match self.partitions.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard.get(topic)?.get(&partition).cloned()
    }

    /// The log config for a topic: broker defaults with the topic's overrides applied.
    pub fn log_config_for(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let base = match self.default_config.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        topic::apply_overrides(base, overrides)
    }

    /// Applies the keeper's view of one partition to this broker: opens the log when this
    /// broker is a replica, records leadership and epoch, stops hosting it otherwise.
    /// The single entry point for leadership changes.
    pub fn apply_partition_state(
        &self,
        topic: &str,
        index: i32,
        state: &PartitionMeta,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(), LogError> {
        let is_replica = state.replicas.contains(&self.broker_id);
        if !is_replica {
            self.stop_hosting(topic, index);
            return Ok(());
        }
        let config = self.log_config_for(overrides);
        let partition = match self.get(topic, index) {
            Some(p) => {
                p.log.update_config(config);
                p
            }
            None => {
                let log = self.logs.get_or_create(topic, index, config)?;
                let p = Arc::new(Partition::new(topic, index, log));
                let mut guard = match self.partitions.write() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                guard.entry(topic.to_string()).or_default().entry(index).or_insert(p).clone()
            }
        };
        let was_leader = partition.is_leader();
        let now_leader = state.leader == self.broker_id;
        partition.leader_epoch.store(state.leader_epoch, Ordering::Release);
        partition.leader.store(now_leader, Ordering::Release);
        if now_leader != was_leader {
            tracing::info!(
                topic,
                partition = index,
                leader_epoch = state.leader_epoch,
                role = if now_leader { "leader" } else { "follower" },
                "partition role changed"
            );
        }
        partition.appended();
        Ok(())
    }

    /// Stops serving a partition (reassigned away); its files stay until the topic is deleted.
    pub fn stop_hosting(&self, topic: &str, index: i32) {
        let removed = {
            let mut guard = match self.partitions.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let removed = guard.get_mut(topic).and_then(|m| m.remove(&index));
            if guard.get(topic).is_some_and(|m| m.is_empty()) {
                guard.remove(topic);
            }
            removed
        };
        if let Some(p) = removed {
            p.leader.store(false, Ordering::Release);
            if let Err(e) = p.log.close() {
                tracing::warn!(topic, partition = index, error = %e, "closing log failed");
            }
        }
    }

    /// Deletes every local partition of a deleted topic, files included.
    pub fn delete_topic(&self, topic: &str) {
        let removed = {
            let mut guard = match self.partitions.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            guard.remove(topic)
        };
        if let Some(parts) = removed {
            for p in parts.values() {
                p.leader.store(false, Ordering::Release);
            }
        }
        for ((t, index), _) in self.logs.all() {
            if t == topic {
                match self.logs.remove(&t, index) {
                    Ok(()) => tracing::info!(topic, partition = index, "deleted partition log"),
                    Err(e) => {
                        tracing::warn!(topic, partition = index, error = %e, "deleting log failed")
                    }
                }
            }
        }
    }

    /// Topics with hosted partitions, and those with logs on disk.
    pub fn local_topics(&self) -> Vec<String> {
        let mut names: Vec<String> = self.logs.all().into_iter().map(|((t, _), _)| t).collect();
        names.sort();
        names.dedup();
        names
    }

    /// Retention, time-based roll and flush across all logs.
    pub fn tick(&self, now_ms: i64) {
        self.logs.tick(now_ms);
    }

    /// Flushes and checkpoints every log.
    pub fn shutdown(&self) -> Result<(), LogError> {
        self.logs.shutdown()
    }
}
