//! The replica manager: the partitions this broker hosts, their logs, their role (leader or
//! follower), and the replication bookkeeping a leader keeps — each follower's log end
//! offset, the ISR, and the high watermark that consumers and acks=all wait on.
//!
//! Every leadership or assignment change reaches a partition through
//! [`ReplicaManager::apply_partition_state`], whether it came from the keeper's watches or
//! from the controller's LeaderAndIsr call; states older than the one applied (lower leader
//! epoch, or same epoch and lower znode version) are ignored, so the two paths can race.
//! Becoming a follower hands the partition to the [`FetcherManager`]; becoming leader takes
//! it away and starts tracking followers from scratch.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use strom_storage::{LogConfig, LogError, LogManager, PartitionLog};
use tokio::sync::watch;

use crate::metadata::PartitionMeta;
use crate::replication::fetcher::FetcherManager;
use crate::topic;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// What a leader knows about one follower's progress (Kafka's `Replica` state).
#[derive(Debug, Clone, Copy)]
struct FollowerProgress {
    /// The follower's log end offset as of its last fetch; -1 until it fetches.
    leo: i64,
    /// The last time the follower was fully caught up (Kafka's `lastCaughtUpTimeMs`).
    last_caught_up: Instant,
    last_fetch: Instant,
    /// The leader's log end offset when the follower last fetched.
    leader_leo_at_last_fetch: i64,
}

/// A partition's replication state; guarded by one mutex held only for bookkeeping.
#[derive(Debug)]
struct ReplicaState {
    leader_id: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// Version of the partition's state znode the ISR came from (for version-checked writes).
    zk_version: i32,
    min_insync: i32,
    /// Followers' progress; only kept while this broker leads.
    followers: HashMap<i32, FollowerProgress>,
    /// An ISR write to the keeper is in flight.
    isr_update_pending: bool,
}

/// A partition hosted on this broker.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub log: Arc<PartitionLog>,
    leader: AtomicBool,
    leader_epoch: AtomicI32,
    /// Carries the high watermark; consumer fetches and acks=all wait on `changed()`.
    hw: watch::Sender<i64>,
    /// Carries the log end offset; followers' long polls wait on it.
    leo: watch::Sender<i64>,
    state: Mutex<ReplicaState>,
}

/// A follower that may join the ISR, or one that has fallen out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: i32,
    pub zk_version: i32,
    pub new_isr: Vec<i32>,
}

impl Partition {
    fn new(topic: &str, index: i32, log: Arc<PartitionLog>) -> Self {
        let leo = log.log_end_offset();
        // A restarted replica must not expose what was never committed: start from the last
        // checkpointed high watermark, as Kafka does.
        let hw = log.high_watermark_checkpoint().unwrap_or(leo);
        Partition {
            topic: topic.to_string(),
            index,
            log,
            leader: AtomicBool::new(false),
            leader_epoch: AtomicI32::new(-1),
            hw: watch::channel(hw).0,
            leo: watch::channel(leo).0,
            state: Mutex::new(ReplicaState {
                leader_id: -1,
                replicas: Vec::new(),
                isr: Vec::new(),
                zk_version: -1,
                min_insync: 1,
                followers: HashMap::new(),
                isr_update_pending: false,
            }),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Offsets below the high watermark are committed: held by every ISR member.
    pub fn high_watermark(&self) -> i64 {
        *self.hw.borrow()
    }

    /// Subscribes to high-watermark changes (consumer long polls, acks=all).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.hw.subscribe()
    }

    /// Subscribes to log-end-offset changes (follower long polls).
    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.leo.subscribe()
    }

    /// The ISR as this replica knows it.
    pub fn isr(&self) -> Vec<i32> {
        lock(&self.state).isr.clone()
    }

    /// The assigned replicas.
    pub fn replicas(&self) -> Vec<i32> {
        lock(&self.state).replicas.clone()
    }

    /// `min.insync.replicas` for this partition (broker default or topic override).
    pub fn min_insync(&self) -> i32 {
        lock(&self.state).min_insync
    }

    /// Whether the ISR is large enough for an acks=all write.
    pub fn has_min_isr(&self) -> bool {
        let st = lock(&self.state);
        st.isr.len() >= usize::try_from(st.min_insync).unwrap_or(usize::MAX)
    }

    /// Called after a local append (leader) or a replicated append (follower): publishes the
    /// new log end offset and, on a leader, advances the high watermark if the ISR allows.
    pub fn appended(&self) {
        let leo = self.log.log_end_offset();
        self.leo.send_if_modified(|v| std::mem::replace(v, leo) != leo);
        if self.is_leader() {
            let st = lock(&self.state);
            self.advance_hw_locked(&st);
        }
    }

    /// Raises the high watermark to the smallest log end offset in the ISR (never lowers it).
    fn advance_hw_locked(&self, st: &ReplicaState) {
        let mut candidate = self.log.log_end_offset();
        for id in &st.isr {
            if *id == st.leader_id {
                continue;
            }
            match st.followers.get(id) {
                Some(f) if f.leo >= 0 => candidate = candidate.min(f.leo),
                // An ISR member that has not fetched since we became leader holds the HW back
                // until it fetches or drops out of the ISR.
                _ => return,
            }
        }
        self.hw.send_if_modified(|hw| {
            if candidate > *hw {
                *hw = candidate;
                true
            } else {
                false
            }
        });
    }

    /// Follower side: the leader's high watermark, capped at what this replica holds.
    pub fn update_follower_hw(&self, leader_hw: i64) {
        let hw = leader_hw.min(self.log.log_end_offset());
        self.hw.send_if_modified(|v| std::mem::replace(v, hw) != hw);
    }

    /// After a truncation: the high watermark may not exceed the new log end.
    pub fn truncated(&self) {
        let leo = self.log.log_end_offset();
        self.leo.send_if_modified(|v| std::mem::replace(v, leo) != leo);
        self.hw.send_if_modified(|hw| {
            if *hw > leo {
                *hw = leo;
                true
            } else {
                false
            }
        });
    }

    /// Leader side: a follower fetched from `fetch_offset` (its log end offset). Updates its
    /// progress and the high watermark; returns the ISR expansion to write when the follower
    /// has caught up and is not in the ISR yet.
    pub fn record_follower_fetch(&self, replica: i32, fetch_offset: i64, now: Instant) -> Option<IsrChange> {
        let mut st = lock(&self.state);
        if !self.is_leader() || !st.replicas.contains(&replica) {
            return None;
        }
        let leader_leo = self.log.log_end_offset();
        let progress = st.followers.entry(replica).or_insert(FollowerProgress {
            leo: -1,
            last_caught_up: now,
            last_fetch: now,
            leader_leo_at_last_fetch: -1,
        });
        // Kafka's rule: caught up now if it asks for our end; caught up as of its previous
        // fetch if it asks for what our end was then.
        if fetch_offset >= leader_leo {
            progress.last_caught_up = now;
        } else if progress.leader_leo_at_last_fetch >= 0 && fetch_offset >= progress.leader_leo_at_last_fetch {
            progress.last_caught_up = progress.last_caught_up.max(progress.last_fetch);
        }
        progress.leo = fetch_offset;
        progress.last_fetch = now;
        progress.leader_leo_at_last_fetch = leader_leo;
        self.advance_hw_locked(&st);
        if st.isr.contains(&replica) || st.isr_update_pending {
            return None;
        }
        // Joins once it holds everything committed, including the start of our epoch.
        let epoch_start = self.log.end_offset_for_epoch(self.leader_epoch() - 1).map_or(0, |(_, end)| end);
        if fetch_offset >= self.high_watermark() && fetch_offset >= epoch_start.min(leader_leo) {
            let mut new_isr = st.isr.clone();
            new_isr.push(replica);
            new_isr.sort_unstable();
            st.isr_update_pending = true;
            return Some(IsrChange {
                topic: self.topic.clone(),
                partition: self.index,
                leader_epoch: self.leader_epoch(),
                zk_version: st.zk_version,
                new_isr,
            });
        }
        None
    }

    /// Leader side: the ISR without followers that have not caught up within `max_lag`.
    pub fn isr_shrink(&self, max_lag: Duration, now: Instant) -> Option<IsrChange> {
        let mut st = lock(&self.state);
        if !self.is_leader() || st.isr_update_pending {
            return None;
        }
        let leader_leo = self.log.log_end_offset();
        let keep: Vec<i32> = st
            .isr
            .iter()
            .copied()
            .filter(|id| {
                if *id == st.leader_id {
                    return true;
                }
                match st.followers.get(id) {
                    Some(f) => f.leo >= leader_leo || now.saturating_duration_since(f.last_caught_up) <= max_lag,
                    None => true,
                }
            })
            .collect();
        if keep.len() == st.isr.len() {
            return None;
        }
        st.isr_update_pending = true;
        Some(IsrChange {
            topic: self.topic.clone(),
            partition: self.index,
            leader_epoch: self.leader_epoch(),
            zk_version: st.zk_version,
            new_isr: keep,
        })
    }

    /// The outcome of an ISR write: on success the new ISR and znode version apply at once
    /// (the keeper's watch brings the same state later), and the high watermark may move.
    pub fn isr_update_done(&self, written: Option<(&[i32], i32)>) {
        let mut st = lock(&self.state);
        st.isr_update_pending = false;
        if let Some((isr, version)) = written {
            if version > st.zk_version {
                st.isr = isr.to_vec();
                st.zk_version = version;
            }
            if self.is_leader() {
                self.advance_hw_locked(&st);
            }
        }
    }
}

/// Why an acks=all style wait for the ISR failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationWaitError {
    /// Leadership moved; the append may be truncated by the new leader.
    NotLeader,
    /// The deadline passed first.
    TimedOut,
    /// The ISR holds the append but has shrunk below `min.insync.replicas`.
    NotEnoughReplicas,
}

impl Partition {
    /// Waits until the high watermark reaches `required` (every ISR member holds the
    /// offsets below it) while this broker still leads in `leader_epoch`.
    pub async fn wait_for_hw(
        &self,
        required: i64,
        leader_epoch: i32,
        deadline: tokio::time::Instant,
    ) -> Result<(), ReplicationWaitError> {
        let mut hw = self.subscribe();
        loop {
            if !self.is_leader() || self.leader_epoch() != leader_epoch {
                return Err(ReplicationWaitError::NotLeader);
            }
            if *hw.borrow_and_update() >= required {
                return if self.has_min_isr() { Ok(()) } else { Err(ReplicationWaitError::NotEnoughReplicas) };
            }
            // Leadership changes do not move the high watermark; look again now and then.
            let wake = (tokio::time::Instant::now() + Duration::from_millis(200)).min(deadline);
            match tokio::time::timeout_at(wake, hw.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(ReplicationWaitError::NotLeader),
                Err(_) if tokio::time::Instant::now() >= deadline => return Err(ReplicationWaitError::TimedOut),
                Err(_) => {}
            }
        }
    }
}

/// What [`ReplicaManager::apply_partition_state`] did to a partition's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    None,
    BecameLeader,
    BecameFollower,
}

/// All partitions hosted here.
pub struct ReplicaManager {
    broker_id: i32,
    logs: LogManager,
    default_config: RwLock<LogConfig>,
    default_min_insync: i32,
    partitions: RwLock<HashMap<String, HashMap<i32, Arc<Partition>>>>,
    fetchers: Arc<FetcherManager>,
}

impl ReplicaManager {
    pub fn new(
        broker_id: i32,
        logs: LogManager,
        default_config: LogConfig,
        default_min_insync: i32,
        fetchers: Arc<FetcherManager>,
    ) -> Self {
        ReplicaManager {
            broker_id,
            logs,
            default_config: RwLock::new(default_config),
            default_min_insync,
            partitions: RwLock::new(HashMap::new()),
            fetchers,
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

    /// Every hosted partition.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        let guard = match self.partitions.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard.values().flat_map(|m| m.values().cloned()).collect()
    }

    /// `min.insync.replicas` for a topic: its override, else the broker default.
    fn min_insync_for(&self, overrides: &BTreeMap<String, String>) -> i32 {
        overrides
            .get("min.insync.replicas")
            .and_then(|v| v.trim().parse::<i32>().ok())
            .unwrap_or(self.default_min_insync)
            .max(1)
    }

    /// The log config for a topic: broker defaults with the topic's overrides applied.
    pub fn log_config_for(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let base = match self.default_config.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        topic::apply_overrides(base, overrides)
    }

    /// Applies one partition's leadership state to this broker: opens the log when this
    /// broker is a replica, records leadership, epoch and ISR, starts or stops fetching,
    /// stops hosting it otherwise. The single entry point for leadership changes.
    ///
    /// `overrides` is the topic's config as the keeper watch loaded it. The controller's
    /// LeaderAndIsr push passes `None`: it carries leadership only, so it never opens a
    /// partition (that needs the config) and never touches the config of one already open. A
    /// push read against a metadata snapshot that lagged the watch would otherwise put the
    /// broker's defaults back over the topic's overrides (seen: `min.insync.replicas=1`
    /// replaced by the default 2, refusing every acks=all write to an RF=1 partition).
    pub fn apply_partition_state(
        &self,
        topic: &str,
        index: i32,
        state: &PartitionMeta,
        overrides: Option<&BTreeMap<String, String>>,
    ) -> Result<RoleChange, LogError> {
        let is_replica = state.replicas.contains(&self.broker_id);
        if !is_replica {
            self.stop_hosting(topic, index);
            return Ok(RoleChange::None);
        }
        let config = overrides.map(|o| (self.log_config_for(o), self.min_insync_for(o)));
        let partition = match (self.get(topic, index), config) {
            (Some(p), Some((config, min_insync))) => {
                p.log.update_config(config);
                lock(&p.state).min_insync = min_insync;
                p
            }
            (Some(p), None) => p,
            (None, None) => return Ok(RoleChange::None),
            (None, Some((config, min_insync))) => {
                let log = self.logs.get_or_create(topic, index, config)?;
                let p = Arc::new(Partition::new(topic, index, log));
                lock(&p.state).min_insync = min_insync;
                let mut guard = match self.partitions.write() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                guard.entry(topic.to_string()).or_default().entry(index).or_insert(p).clone()
            }
        };
        let change = {
            let mut st = lock(&partition.state);
            st.replicas = state.replicas.clone();
            let current_epoch = partition.leader_epoch();
            let newer = state.leader_epoch > current_epoch
                || (state.leader_epoch == current_epoch && state.zk_version > st.zk_version);
            if !newer {
                return Ok(RoleChange::None);
            }
            let was_leader = partition.is_leader();
            let epoch_changed = state.leader_epoch != current_epoch;
            st.isr = state.isr.clone();
            st.zk_version = state.zk_version;
            st.leader_id = state.leader;
            partition.leader_epoch.store(state.leader_epoch, Ordering::Release);
            let now_leader = state.leader == self.broker_id;
            partition.leader.store(now_leader, Ordering::Release);
            if now_leader && (!was_leader || epoch_changed) {
                // Followers are tracked afresh each epoch; ISR members get a full lag
                // allowance before they can be dropped.
                let now = Instant::now();
                st.followers = state
                    .replicas
                    .iter()
                    .filter(|r| **r != self.broker_id)
                    .map(|r| {
                        (
                            *r,
                            FollowerProgress {
                                leo: -1,
                                last_caught_up: now,
                                last_fetch: now,
                                leader_leo_at_last_fetch: -1,
                            },
                        )
                    })
                    .collect();
                st.isr_update_pending = false;
                RoleChange::BecameLeader
            } else if !now_leader && (was_leader || epoch_changed) {
                st.followers.clear();
                RoleChange::BecameFollower
            } else {
                RoleChange::None
            }
        };
        match change {
            RoleChange::BecameLeader => {
                self.fetchers.remove(topic, index);
                if let Err(e) = partition.log.assign_epoch_start(state.leader_epoch) {
                    tracing::error!(topic, partition = index, error = %e, "cannot record the new leader epoch");
                }
                partition.appended();
            }
            RoleChange::BecameFollower if state.leader >= 0 => self.fetchers.add(partition.clone(), state.leader),
            RoleChange::BecameFollower => self.fetchers.remove(topic, index),
            RoleChange::None => {
                if partition.is_leader() {
                    // The ISR may have shrunk (controller) and let the high watermark move.
                    let st = lock(&partition.state);
                    partition.advance_hw_locked(&st);
                }
            }
        }
        if change != RoleChange::None {
            tracing::info!(
                topic,
                partition = index,
                leader = state.leader,
                leader_epoch = state.leader_epoch,
                isr = ?state.isr,
                role = if change == RoleChange::BecameLeader { "leader" } else { "follower" },
                "partition role changed"
            );
        }
        Ok(change)
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
            self.fetchers.remove(topic, index);
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
                self.fetchers.remove(topic, p.index);
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

    /// Persists every hosted partition's high watermark (skipped when unchanged).
    pub fn checkpoint_high_watermarks(&self) {
        for p in self.all() {
            if let Err(e) = p.log.checkpoint_high_watermark(p.high_watermark()) {
                tracing::debug!(topic = %p.topic, partition = p.index, error = %e, "high watermark checkpoint failed");
            }
        }
    }

    /// Stops fetching, checkpoints high watermarks, flushes and checkpoints every log.
    pub fn shutdown(&self) -> Result<(), LogError> {
        self.fetchers.shutdown();
        self.checkpoint_high_watermarks();
        self.logs.shutdown()
    }
}

/// Broker 1's replica manager over `dir`, for unit tests.
#[cfg(test)]
pub(crate) fn test_manager(
    dir: &std::path::Path,
    min_insync: i32,
    cache: Arc<crate::metadata::MetadataCache>,
) -> ReplicaManager {
    use crate::replication::fetcher::FetchSettings;
    let settings = FetchSettings {
        broker_id: 1,
        num_fetchers: 1,
        partition_max_bytes: 1 << 20,
        response_max_bytes: 10 << 20,
        max_wait: Duration::from_millis(100),
    };
    let fetchers = Arc::new(FetcherManager::new(settings, cache));
    let logs = LogManager::open(&[dir.to_path_buf()], LogConfig::default()).expect("open logs");
    ReplicaManager::new(1, logs, LogConfig::default(), min_insync, fetchers)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use indexmap::IndexMap;
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    use super::*;
    use crate::metadata::MetadataCache;

    fn manager(dir: &std::path::Path) -> ReplicaManager {
        test_manager(dir, 2, Arc::new(MetadataCache::default()))
    }

    fn batch(n: usize) -> BytesMut {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: 0,
                key: None,
                value: Some(bytes::Bytes::from_static(b"v")),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions { version: 2, compression: Compression::None },
        )
        .unwrap();
        buf
    }

    fn meta(leader: i32, leader_epoch: i32, isr: &[i32], zk_version: i32) -> PartitionMeta {
        PartitionMeta { replicas: vec![1, 2, 3], leader, leader_epoch, isr: isr.to_vec(), zk_version }
    }

    #[test]
    fn high_watermark_follows_the_isr_and_laggards_leave_it() {
        let dir = tempfile::tempdir().unwrap();
        let rm = manager(dir.path());
        let none = BTreeMap::new();
        assert_eq!(
            rm.apply_partition_state("t", 0, &meta(1, 0, &[1, 2, 3], 0), Some(&none)).unwrap(),
            RoleChange::BecameLeader
        );
        let p = rm.get("t", 0).unwrap();
        assert!(p.has_min_isr());
        p.log.append(batch(5), 0).unwrap();
        p.appended();
        // Followers 2 and 3 have not fetched: nothing is committed yet.
        assert_eq!(p.high_watermark(), 0);
        let t0 = Instant::now();
        assert!(p.record_follower_fetch(2, 5, t0).is_none());
        assert_eq!(p.high_watermark(), 0, "3 still holds it back");
        assert!(p.record_follower_fetch(3, 3, t0).is_none());
        assert_eq!(p.high_watermark(), 3);
        // 3 stays behind past the lag limit: it is dropped, and the HW moves to what 1 and 2 hold.
        let later = t0 + Duration::from_secs(40);
        let change = p.isr_shrink(Duration::from_secs(30), later).expect("shrink");
        assert_eq!(change.new_isr, vec![1, 2]);
        assert!(p.isr_shrink(Duration::from_secs(30), later).is_none(), "one write in flight at a time");
        p.isr_update_done(Some((&change.new_isr, 1)));
        assert_eq!(p.isr(), vec![1, 2]);
        assert_eq!(p.high_watermark(), 5);
        // 3 catches up to the HW: it is proposed for the ISR again.
        let expand = p.record_follower_fetch(3, 5, later).expect("expand");
        assert_eq!(expand.new_isr, vec![1, 2, 3]);
        p.isr_update_done(None);
        // An older state (same epoch, lower znode version) does not undo the shrink.
        assert_eq!(
            rm.apply_partition_state("t", 0, &meta(1, 0, &[1, 2, 3], 0), Some(&none)).unwrap(),
            RoleChange::None
        );
        assert_eq!(p.isr(), vec![1, 2]);
        // The ISR falls below min.insync.replicas=2.
        p.isr_update_done(Some((&[1], 2)));
        assert!(!p.has_min_isr());
        rm.shutdown().unwrap();
    }
}
