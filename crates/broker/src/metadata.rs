//! The broker's metadata cache: live brokers, controller, topics and partition states, as last
//! read from the keeper.
//!
//! Readers take an immutable [`ClusterSnapshot`] (`Arc` clone, no lock held while answering);
//! the cluster module swaps in a new snapshot after each keeper refresh and bumps a version
//! channel so waiters (CreateTopics, auto-create) can wait for a change without polling.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

/// A live broker's client endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// One partition's assignment and leadership state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMeta {
    pub replicas: Vec<i32>,
    /// -1 while no leader is elected (no `state` znode yet, or no live replica).
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    /// Version of the `state` znode this came from (-1 when there is none); orders two
    /// states of the same leader epoch (ISR changes).
    pub zk_version: i32,
}

/// A topic as recorded in the keeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    /// Indexed by partition id.
    pub partitions: Vec<PartitionMeta>,
    /// Per-topic overrides from `/config/topics/<t>`.
    pub config: BTreeMap<String, String>,
    /// Marked for deletion (`/admin/delete_topics/<t>` exists).
    pub deleting: bool,
}

impl TopicMeta {
    /// Whether every partition has an elected leader.
    pub fn all_leaders_elected(&self) -> bool {
        self.partitions.iter().all(|p| p.leader >= 0)
    }
}

/// Everything the broker knows about the cluster at one point in time.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    pub cluster_id: Option<String>,
    /// -1 when no controller is elected.
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: HashMap<String, Arc<TopicMeta>>,
}

impl ClusterSnapshot {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicMeta>> {
        self.topics.values().find(|t| t.id == id)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionMeta> {
        let idx = usize::try_from(partition).ok()?;
        self.topics.get(topic)?.partitions.get(idx)
    }

    pub fn is_live(&self, broker: i32) -> bool {
        self.brokers.contains_key(&broker)
    }
}

/// The shared, swappable metadata cache.
pub struct MetadataCache {
    current: RwLock<Arc<ClusterSnapshot>>,
    version: watch::Sender<u64>,
}

impl Default for MetadataCache {
    fn default() -> Self {
        MetadataCache {
            current: RwLock::new(Arc::new(ClusterSnapshot { controller_id: -1, ..ClusterSnapshot::default() })),
            version: watch::channel(0).0,
        }
    }
}

impl MetadataCache {
    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<ClusterSnapshot> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Installs a new snapshot and wakes waiters.
    pub fn replace(&self, snapshot: ClusterSnapshot) {
        let snapshot = Arc::new(snapshot);
        match self.current.write() {
            Ok(mut g) => *g = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
        self.version.send_modify(|v| *v += 1);
    }

    /// Waits (bounded by `timeout`) until `cond` holds for the current snapshot; returns
    /// whether it did.
    pub async fn wait_for(&self, timeout: Duration, mut cond: impl FnMut(&ClusterSnapshot) -> bool) -> bool {
        let mut rx = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            rx.borrow_and_update();
            if cond(&self.snapshot()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return cond(&self.snapshot()),
            }
        }
    }
}
