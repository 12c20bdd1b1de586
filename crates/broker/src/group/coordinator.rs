//! [`GroupCoordinator`]: which groups this broker coordinates, their state, and the
//! `__consumer_offsets` partitions that make that state durable.
//!
//! A group lives in partition `abs(hashCode(group_id)) % partitions` of `__consumer_offsets`;
//! the broker leading that partition coordinates it. Per led partition there is one
//! [`Shard`], bound to the partition's leader epoch: it is (re)built and loaded from the
//! log whenever this broker becomes leader (startup included), and closed when leadership
//! goes. While it loads, requests get COORDINATOR_LOAD_IN_PROGRESS. Every group has its own
//! lock and a timer task that sleeps until the group's next deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strom_storage::LogError;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::records::{GroupValue, OffsetValue, RecordKey};
use super::state::{Group, GroupState, JoinArgs, JoinResult, Journal, Reply, SyncArgs, SyncResult};
use crate::cluster::admin::{AdminError, NewTopic};
use crate::cluster::Cluster;
use crate::config::BrokerConfig;
use crate::handlers::now_ms;
use crate::metadata::{BrokerInfo, ClusterSnapshot, MetadataCache};
use crate::replica::{Partition, ReplicaManager};

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's `offset.metadata.max.bytes` default.
const MAX_METADATA_BYTES: usize = 4096;
/// How long FindCoordinator waits for a just-created offsets topic and its group's leader.
const CREATE_WAIT: Duration = Duration::from_secs(10);
/// Backstop for the leadership watcher, in case a leadership change reaches the replica
/// manager after the metadata change that announced it.
const LEADERSHIP_RECHECK: Duration = Duration::from_millis(500);
/// How long FindCoordinator waits for the group's partition to finish loading.
const LOAD_WAIT: Duration = Duration::from_secs(2);

/// The `__consumer_offsets` partition of `group` (Kafka's `partitionFor`: Java's
/// `String.hashCode`, `Utils.abs`, modulo the partition count).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let hash = group.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A committed offset for one partition, as OffsetFetch reports it.
pub type TopicOffsets = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;
/// Per-partition error codes, as OffsetCommit/OffsetDelete report them.
pub type TopicCodes = Vec<(String, Vec<(i32, i16)>)>;

/// A partition's commit as it arrives in OffsetCommit.
pub struct CommitEntry {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// ListGroups' view of a group.
pub struct GroupOverview {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// DescribeGroups' view of a group.
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// Committed offsets appended to `__consumer_offsets`, not yet known to be replicated.
pub struct CommitWait {
    partition: Arc<Partition>,
    required: i64,
    leader_epoch: i32,
}

impl CommitWait {
    /// Waits (bounded by `timeout`, Kafka's `offsets.commit.timeout.ms`) until the offsets
    /// topic's ISR holds the commit; the error code for the whole commit otherwise, mapped
    /// as Kafka's coordinator maps replication failures.
    pub async fn wait(self, timeout: Duration) -> Result<(), i16> {
        let deadline = tokio::time::Instant::now() + timeout;
        match self.partition.wait_for_hw(self.required, self.leader_epoch, deadline).await {
            Ok(()) => Ok(()),
            Err(crate::replica::ReplicationWaitError::NotLeader) => Err(code(ResponseError::NotCoordinator)),
            Err(_) => Err(code(ResponseError::CoordinatorNotAvailable)),
        }
    }
}

/// A group with its timer's wake-up call.
struct GroupCell {
    group: Mutex<Group>,
    wake: Notify,
    removed: AtomicBool,
}

/// The groups of one led `__consumer_offsets` partition, valid for one leader epoch.
pub struct Shard {
    index: i32,
    partition: Arc<Partition>,
    epoch: i32,
    /// Set once the partition has been replayed.
    ready: watch::Sender<bool>,
    closed: watch::Sender<bool>,
    groups: Mutex<HashMap<String, Arc<GroupCell>>>,
}

impl Shard {
    fn is_current(&self) -> bool {
        !*self.closed.borrow() && self.partition.is_leader() && self.partition.leader_epoch() == self.epoch
    }

    /// Appends key/value records (a `None` value is a tombstone) as one batch; returns the
    /// high watermark that makes them durable (their last offset + 1).
    fn append(&self, records: &[(Bytes, Option<Bytes>)]) -> Result<i64, i16> {
        if !self.is_current() {
            return Err(code(ResponseError::NotCoordinator));
        }
        let now = now_ms();
        let batch: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: self.epoch,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: now,
                key: Some(k.clone()),
                value: v.clone(),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::None };
        if let Err(e) = RecordBatchEncoder::encode(&mut buf, &batch, &options) {
            tracing::error!(partition = self.index, error = %e, "encoding group records failed");
            return Err(code(ResponseError::UnknownServerError));
        }
        match self.partition.log.append(buf, self.epoch) {
            Ok(info) => {
                self.partition.appended();
                Ok(info.last_offset + 1)
            }
            Err(e) => {
                tracing::warn!(partition = self.index, error = %e, "appending to __consumer_offsets failed");
                Err(match e {
                    LogError::MessageTooLarge { .. } => code(ResponseError::InvalidCommitOffsetSize),
                    LogError::Io(..) | LogError::Deleted(_) => code(ResponseError::CoordinatorNotAvailable),
                    _ => code(ResponseError::UnknownServerError),
                })
            }
        }
    }

    fn close(&self) {
        self.closed.send_replace(true);
        let cells: Vec<Arc<GroupCell>> = lock(&self.groups).drain().map(|(_, c)| c).collect();
        for cell in cells {
            lock(&cell.group).fail_waiters(code(ResponseError::NotCoordinator));
            cell.wake.notify_one();
        }
    }
}

impl Journal for Shard {
    fn store_group(&self, group: &Group) -> Result<(), i16> {
        let key = RecordKey::Group { group: group.id.clone() }.encode();
        self.append(&[(key, Some(group.to_value().encode()))]).map(|_| ())
    }
}

/// The group coordinator of one broker.
pub struct GroupCoordinator {
    broker_id: i32,
    config: BrokerConfig,
    cache: Arc<MetadataCache>,
    replicas: Arc<ReplicaManager>,
    cluster: Arc<Cluster>,
    shards: Mutex<HashMap<i32, Arc<Shard>>>,
    creating: tokio::sync::Mutex<()>,
    /// Set by [`GroupCoordinator::shutdown`]: no shard is loaded any more.
    stopped: AtomicBool,
    min_session: Duration,
    max_session: Duration,
}

impl GroupCoordinator {
    /// Builds the coordinator and starts the task that loads offsets partitions as this
    /// broker becomes their leader.
    pub fn start(
        config: BrokerConfig,
        cache: Arc<MetadataCache>,
        replicas: Arc<ReplicaManager>,
        cluster: Arc<Cluster>,
    ) -> Arc<GroupCoordinator> {
        let ms = |key: &str, default: u64| {
            config
                .raw
                .get(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(Duration::from_millis(default), Duration::from_millis)
        };
        let coordinator = Arc::new(GroupCoordinator {
            broker_id: config.broker_id,
            min_session: ms("group.min.session.timeout.ms", 6_000),
            max_session: ms("group.max.session.timeout.ms", 1_800_000),
            config,
            cache,
            replicas,
            cluster,
            shards: Mutex::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
            stopped: AtomicBool::new(false),
        });
        tokio::spawn(watch_leadership(Arc::downgrade(&coordinator), coordinator.cache.clone()));
        coordinator
    }

    /// Unloads every shard: parked requests are answered NOT_COORDINATOR and the group
    /// timers stop. Called when the broker shuts down.
    pub fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        let shards: Vec<Arc<Shard>> = lock(&self.shards).drain().map(|(_, s)| s).collect();
        for shard in shards {
            shard.close();
        }
    }

    fn offsets_partitions(&self) -> i32 {
        match self.cache.snapshot().topic(OFFSETS_TOPIC) {
            Some(t) if !t.partitions.is_empty() => t.partitions.len() as i32,
            _ => self.config.offsets_topic_num_partitions,
        }
    }

    /// The broker coordinating `key`, creating `__consumer_offsets` on first use.
    pub async fn find_coordinator(&self, key: &str) -> Result<BrokerInfo, (i16, String)> {
        self.ensure_offsets_topic().await?;
        let partition = partition_for(key, self.offsets_partitions());
        // Right after creation the controller elects leaders one partition at a time; only
        // this group's partition matters.
        let led = |s: &ClusterSnapshot| s.partition(OFFSETS_TOPIC, partition).is_some_and(|p| p.leader >= 0);
        self.cache.wait_for(CREATE_WAIT, led).await;
        let snapshot = self.cache.snapshot();
        let leader = snapshot.partition(OFFSETS_TOPIC, partition).map_or(-1, |p| p.leader);
        let Some(broker) = snapshot.brokers.get(&leader) else {
            return Err((
                code(ResponseError::CoordinatorNotAvailable),
                format!("{OFFSETS_TOPIC}-{partition} has no live leader"),
            ));
        };
        if leader == self.broker_id {
            // Load now and (briefly) wait for it, so the JoinGroup that follows finds the
            // groups ready instead of backing off on COORDINATOR_LOAD_IN_PROGRESS.
            if let Ok(shard) = self.shard(partition) {
                let mut ready = shard.ready.subscribe();
                let _ = tokio::time::timeout(LOAD_WAIT, ready.wait_for(|r| *r)).await;
            }
        }
        Ok(broker.clone())
    }

    async fn ensure_offsets_topic(&self) -> Result<(), (i16, String)> {
        let unavailable = |msg: String| (code(ResponseError::CoordinatorNotAvailable), msg);
        let exists = |s: &ClusterSnapshot| s.topic(OFFSETS_TOPIC).is_some();
        if exists(&self.cache.snapshot()) {
            return Ok(());
        }
        let _creating = self.creating.lock().await;
        let snapshot = self.cache.snapshot();
        if snapshot.topic(OFFSETS_TOPIC).is_none() {
            let live = snapshot.brokers.len().max(1);
            let rf = (self.config.offsets_topic_replication_factor.max(1) as usize).min(live) as i16;
            let configs = BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("compression.type".to_string(), "producer".to_string()),
                // Kafka's offsets topic: compacted only (retention.ms does not apply to a log
                // without the delete policy), segments of `offsets.topic.segment.bytes`.
                ("segment.bytes".to_string(), self.config.offsets_topic_segment_bytes.to_string()),
            ]);
            let spec = NewTopic {
                name: OFFSETS_TOPIC.to_string(),
                num_partitions: self.config.offsets_topic_num_partitions,
                replication_factor: rf,
                assignment: None,
                configs,
            };
            let created = match self.cluster.plan_topic(spec) {
                Ok(plan) => self.cluster.create_topic(&plan).await,
                Err(e) => Err(e),
            };
            match created {
                Ok(()) => {
                    tracing::info!(partitions = self.config.offsets_topic_num_partitions, rf, "created {OFFSETS_TOPIC}")
                }
                Err(AdminError::TopicExists(_)) => {}
                Err(e) => return Err(unavailable(format!("cannot create {OFFSETS_TOPIC}: {e}"))),
            }
        }
        if self.cache.wait_for(CREATE_WAIT, exists).await {
            Ok(())
        } else {
            Err(unavailable(format!("{OFFSETS_TOPIC} was created but has not appeared in the metadata yet")))
        }
    }

    /// The ready shard for a group, or the error the client should see.
    fn shard_for(&self, group_id: &str) -> Result<Arc<Shard>, i16> {
        if self.cache.snapshot().topic(OFFSETS_TOPIC).is_none() {
            return Err(code(ResponseError::CoordinatorNotAvailable));
        }
        let shard = self.shard(partition_for(group_id, self.offsets_partitions()))?;
        if *shard.ready.borrow() {
            Ok(shard)
        } else {
            Err(code(ResponseError::CoordinatorLoadInProgress))
        }
    }

    /// The shard of a led partition, created (and its load started) if this broker has
    /// become leader since it was last looked at.
    fn shard(&self, index: i32) -> Result<Arc<Shard>, i16> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(code(ResponseError::CoordinatorNotAvailable));
        }
        let partition = match self.replicas.get(OFFSETS_TOPIC, index) {
            Some(p) if p.is_leader() => p,
            _ => {
                if let Some(old) = lock(&self.shards).remove(&index) {
                    tracing::info!(partition = index, "no longer leader of {OFFSETS_TOPIC}; unloading groups");
                    old.close();
                }
                return Err(code(ResponseError::NotCoordinator));
            }
        };
        let epoch = partition.leader_epoch();
        let mut shards = lock(&self.shards);
        if let Some(s) = shards.get(&index) {
            if Arc::ptr_eq(&s.partition, &partition) && s.epoch == epoch && !*s.closed.borrow() {
                return Ok(s.clone());
            }
        }
        let shard = Arc::new(Shard {
            index,
            partition,
            epoch,
            ready: watch::channel(false).0,
            closed: watch::channel(false).0,
            groups: Mutex::new(HashMap::new()),
        });
        if let Some(old) = shards.insert(index, shard.clone()) {
            old.close();
        }
        drop(shards);
        tracing::debug!(partition = index, leader_epoch = epoch, "loading groups from {OFFSETS_TOPIC}");
        tokio::spawn(load_shard(shard.clone()));
        Ok(shard)
    }

    /// Loads or unloads shards to match what this broker leads now.
    fn sync_leadership(&self) -> bool {
        let snapshot = self.cache.snapshot();
        let Some(topic) = snapshot.topic(OFFSETS_TOPIC) else { return false };
        let mut lagging = false;
        for (i, p) in topic.partitions.iter().enumerate() {
            let led_here = p.leader == self.broker_id;
            let hosted = lock(&self.shards).contains_key(&(i as i32));
            if led_here || hosted {
                let ok = self.shard(i as i32).is_ok();
                lagging |= led_here && !ok;
            }
        }
        lagging
    }

    fn group_cell(&self, shard: &Arc<Shard>, group_id: &str, create: bool) -> Option<Arc<GroupCell>> {
        let mut groups = lock(&shard.groups);
        if let Some(c) = groups.get(group_id) {
            return Some(c.clone());
        }
        if !create {
            return None;
        }
        let cell = new_cell(Group::new(group_id));
        groups.insert(group_id.to_string(), cell.clone());
        spawn_timer(shard, &cell);
        Some(cell)
    }

    /// Handles JoinGroup; waits until the join phase completes for this member.
    pub async fn join(&self, group_id: &str, mut args: JoinArgs) -> JoinResult {
        let fail = |e: i16, member: &str| JoinResult {
            error: e,
            generation: -1,
            member_id: member.to_string(),
            ..Default::default()
        };
        if group_id.is_empty() {
            return fail(code(ResponseError::InvalidGroupId), &args.member_id);
        }
        if args.session_timeout < self.min_session || args.session_timeout > self.max_session {
            return fail(code(ResponseError::InvalidSessionTimeout), &args.member_id);
        }
        if args.rebalance_timeout.is_zero() {
            args.rebalance_timeout = args.session_timeout;
        }
        let shard = match self.shard_for(group_id) {
            Ok(s) => s,
            Err(e) => return fail(e, &args.member_id),
        };
        let member = args.member_id.clone();
        let reply = loop {
            let Some(cell) = self.group_cell(&shard, group_id, args.member_id.is_empty()) else {
                return fail(code(ResponseError::UnknownMemberId), &member);
            };
            let mut group = lock(&cell.group);
            // Removed (deleted, or dropped as dead) since we looked it up: look again.
            if cell.removed.load(Ordering::Acquire) {
                continue;
            }
            let reply = group.join(args, Instant::now(), shard.as_ref());
            drop(group);
            cell.wake.notify_one();
            break reply;
        };
        match reply {
            Reply::Now(r) => r,
            // A dropped sender means the shard closed under us: the client must rediscover.
            Reply::Wait(rx) => rx.await.unwrap_or_else(|_| fail(code(ResponseError::NotCoordinator), &member)),
        }
    }

    /// Handles SyncGroup; followers wait for the leader's assignment.
    pub async fn sync(&self, group_id: &str, args: SyncArgs) -> SyncResult {
        let fail = |e: i16| SyncResult { error: e, ..Default::default() };
        if group_id.is_empty() {
            return fail(code(ResponseError::InvalidGroupId));
        }
        let shard = match self.shard_for(group_id) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let Some(cell) = self.group_cell(&shard, group_id, false) else {
            return fail(code(ResponseError::UnknownMemberId));
        };
        let reply = lock(&cell.group).sync(args, Instant::now(), shard.as_ref());
        cell.wake.notify_one();
        match reply {
            Reply::Now(r) => r,
            Reply::Wait(rx) => rx.await.unwrap_or_else(|_| fail(code(ResponseError::NotCoordinator))),
        }
    }

    pub fn heartbeat(&self, group_id: &str, member_id: &str, instance: Option<&str>, generation: i32) -> i16 {
        if group_id.is_empty() {
            return code(ResponseError::InvalidGroupId);
        }
        let shard = match self.shard_for(group_id) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let Some(cell) = self.group_cell(&shard, group_id, false) else {
            return code(ResponseError::UnknownMemberId);
        };
        let result = lock(&cell.group).heartbeat(member_id, instance, generation, Instant::now());
        result
    }

    /// Handles LeaveGroup: a group-level error, or one code per leaving member.
    pub fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> Result<Vec<i16>, i16> {
        if group_id.is_empty() {
            return Err(code(ResponseError::InvalidGroupId));
        }
        let shard = self.shard_for(group_id)?;
        let Some(cell) = self.group_cell(&shard, group_id, false) else {
            return Ok(vec![code(ResponseError::UnknownMemberId); members.len()]);
        };
        let now = Instant::now();
        let codes = {
            let mut g = lock(&cell.group);
            members.iter().map(|(m, i)| g.leave(m, i.as_deref(), now, shard.as_ref())).collect()
        };
        cell.wake.notify_one();
        Ok(codes)
    }

    /// Handles OffsetCommit. The codes are final except where a [`CommitWait`] comes back:
    /// then the records are appended and the answer waits for the offsets topic's ISR.
    pub fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        topics: Vec<(String, Vec<CommitEntry>)>,
    ) -> (TopicCodes, Option<CommitWait>) {
        let all = |e: i16, topics: &[(String, Vec<CommitEntry>)]| -> (TopicCodes, Option<CommitWait>) {
            (topics.iter().map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.partition, e)).collect())).collect(), None)
        };
        if group_id.is_empty() {
            return all(code(ResponseError::InvalidGroupId), &topics);
        }
        let shard = match self.shard_for(group_id) {
            Ok(s) => s,
            Err(e) => return all(e, &topics),
        };
        let creates = generation < 0 && member_id.is_empty();
        let cell = loop {
            let Some(cell) = self.group_cell(&shard, group_id, creates) else {
                return all(
                    code(if generation < 0 {
                        ResponseError::UnknownMemberId
                    } else {
                        ResponseError::IllegalGeneration
                    }),
                    &topics,
                );
            };
            if !cell.removed.load(Ordering::Acquire) {
                break cell;
            }
        };
        let snapshot = self.cache.snapshot();
        let mut g = lock(&cell.group);
        if cell.removed.load(Ordering::Acquire) {
            return all(code(ResponseError::CoordinatorLoadInProgress), &topics);
        }
        if let Err(e) = g.validate_commit(member_id, instance, generation, Instant::now()) {
            drop(g);
            return all(e, &topics);
        }
        let now = now_ms();
        let mut records = Vec::new();
        let mut staged = Vec::new();
        let mut out: TopicCodes = Vec::with_capacity(topics.len());
        for (topic, partitions) in topics {
            let mut codes = Vec::with_capacity(partitions.len());
            for p in partitions {
                let metadata = p.metadata.unwrap_or_default();
                let err = if snapshot.partition(&topic, p.partition).is_none() {
                    code(ResponseError::UnknownTopicOrPartition)
                } else if metadata.len() > MAX_METADATA_BYTES {
                    code(ResponseError::OffsetMetadataTooLarge)
                } else {
                    let value =
                        OffsetValue { offset: p.offset, leader_epoch: p.leader_epoch, metadata, commit_timestamp: now };
                    let key =
                        RecordKey::Offset { group: group_id.to_string(), topic: topic.clone(), partition: p.partition };
                    records.push((key.encode(), Some(value.encode())));
                    staged.push(((topic.clone(), p.partition), value, out.len(), codes.len()));
                    0
                };
                codes.push((p.partition, err));
            }
            out.push((topic, codes));
        }
        if records.is_empty() {
            return (out, None);
        }
        match shard.append(&records) {
            Ok(required) => {
                for (key, value, _, _) in staged {
                    g.offsets.insert(key, value);
                }
                let wait = CommitWait { partition: shard.partition.clone(), required, leader_epoch: shard.epoch };
                (out, Some(wait))
            }
            Err(e) => {
                for (_, _, t, p) in staged {
                    out[t].1[p].1 = e;
                }
                (out, None)
            }
        }
    }

    /// Handles one group of OffsetFetch: every committed partition when `topics` is `None`.
    pub fn fetch_offsets(&self, group_id: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> Result<TopicOffsets, i16> {
        if group_id.is_empty() {
            return Err(code(ResponseError::InvalidGroupId));
        }
        let shard = self.shard_for(group_id)?;
        let cell = self.group_cell(&shard, group_id, false);
        let group = cell.as_ref().map(|c| lock(&c.group));
        let committed = |t: &str, p: i32| group.as_ref().and_then(|g| g.offsets.get(&(t.to_string(), p)).cloned());
        Ok(match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps.into_iter().map(|p| (p, committed(&t, p))).collect();
                    (t, parts)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<OffsetValue>)>> = BTreeMap::new();
                if let Some(g) = &group {
                    for ((t, p), v) in &g.offsets {
                        by_topic.entry(t.clone()).or_default().push((*p, Some(v.clone())));
                    }
                }
                by_topic
                    .into_iter()
                    .map(|(t, mut ps)| {
                        ps.sort_by_key(|(p, _)| *p);
                        (t, ps)
                    })
                    .collect()
            }
        })
    }

    /// Handles ListGroups: every group of every loaded shard. Shards still loading make it
    /// answer COORDINATOR_LOAD_IN_PROGRESS, as Kafka does.
    pub fn list_groups(&self) -> Result<Vec<GroupOverview>, i16> {
        let shards: Vec<Arc<Shard>> = lock(&self.shards).values().cloned().collect();
        let mut out = Vec::new();
        for shard in shards {
            if !shard.is_current() {
                continue;
            }
            if !*shard.ready.borrow() {
                return Err(code(ResponseError::CoordinatorLoadInProgress));
            }
            let cells: Vec<Arc<GroupCell>> = lock(&shard.groups).values().cloned().collect();
            for cell in cells {
                let g = lock(&cell.group);
                if g.is_dead() {
                    continue;
                }
                out.push(GroupOverview {
                    group_id: g.id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state,
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// Handles one group of DescribeGroups; an unknown group is `Dead` with no members.
    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, i16> {
        if group_id.is_empty() {
            return Err(code(ResponseError::InvalidGroupId));
        }
        let shard = self.shard_for(group_id)?;
        let Some(cell) = self.group_cell(&shard, group_id, false) else {
            return Ok(GroupDescription {
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            });
        };
        let g = lock(&cell.group);
        let protocol = g.protocol.clone().unwrap_or_default();
        // Kafka only shows metadata and assignments once the group is stable.
        let stable = g.state == GroupState::Stable;
        Ok(GroupDescription {
            state: if g.is_dead() { GroupState::Dead } else { g.state },
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { protocol.clone() } else { String::new() },
            members: g
                .members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.group_instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        if stable { m.metadata(&protocol) } else { Bytes::new() },
                        if stable { m.assignment.clone() } else { Bytes::new() },
                    )
                })
                .collect(),
        })
    }

    /// Handles one group of DeleteGroups: only empty groups; their offsets and metadata are
    /// tombstoned.
    pub fn delete_group(&self, group_id: &str) -> i16 {
        if group_id.is_empty() {
            return code(ResponseError::InvalidGroupId);
        }
        let shard = match self.shard_for(group_id) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let Some(cell) = self.group_cell(&shard, group_id, false) else {
            return code(ResponseError::GroupIdNotFound);
        };
        {
            let g = lock(&cell.group);
            if g.is_dead() {
                return code(ResponseError::GroupIdNotFound);
            }
            if !g.is_empty() {
                return code(ResponseError::NonEmptyGroup);
            }
            let mut records: Vec<(Bytes, Option<Bytes>)> = g
                .offsets
                .keys()
                .map(|(t, p)| {
                    (RecordKey::Offset { group: group_id.to_string(), topic: t.clone(), partition: *p }.encode(), None)
                })
                .collect();
            records.push((RecordKey::Group { group: group_id.to_string() }.encode(), None));
            if let Err(e) = shard.append(&records) {
                return e;
            }
        }
        lock(&shard.groups).remove(group_id);
        cell.removed.store(true, Ordering::Release);
        cell.wake.notify_one();
        tracing::info!(group = group_id, "group deleted");
        0
    }

    /// Handles OffsetDelete: a group-level error, or per-partition codes.
    pub fn delete_offsets(&self, group_id: &str, topics: Vec<(String, Vec<i32>)>) -> Result<TopicCodes, i16> {
        if group_id.is_empty() {
            return Err(code(ResponseError::InvalidGroupId));
        }
        let shard = self.shard_for(group_id)?;
        let Some(cell) = self.group_cell(&shard, group_id, false) else {
            return Err(code(ResponseError::GroupIdNotFound));
        };
        let mut g = lock(&cell.group);
        if g.is_dead() {
            return Err(code(ResponseError::GroupIdNotFound));
        }
        if !g.is_empty() && g.protocol_type.as_deref() != Some("consumer") {
            return Err(code(ResponseError::NonEmptyGroup));
        }
        let mut records = Vec::new();
        let mut out: TopicCodes = Vec::with_capacity(topics.len());
        for (topic, partitions) in topics {
            let subscribed = !g.is_empty() && g.is_subscribed_to(&topic);
            let codes = partitions
                .into_iter()
                .map(|p| {
                    if subscribed {
                        return (p, code(ResponseError::GroupSubscribedToTopic));
                    }
                    if g.offsets.contains_key(&(topic.clone(), p)) {
                        let key = RecordKey::Offset { group: group_id.to_string(), topic: topic.clone(), partition: p };
                        records.push((key.encode(), None));
                    }
                    (p, 0)
                })
                .collect();
            out.push((topic, codes));
        }
        if !records.is_empty() {
            shard.append(&records)?;
            for (topic, codes) in &out {
                for (p, c) in codes {
                    if *c == 0 {
                        g.offsets.remove(&(topic.clone(), *p));
                    }
                }
            }
        }
        Ok(out)
    }
}

fn new_cell(group: Group) -> Arc<GroupCell> {
    Arc::new(GroupCell { group: Mutex::new(group), wake: Notify::new(), removed: AtomicBool::new(false) })
}

/// Runs a group's deadlines until the group is deleted or its shard closes.
fn spawn_timer(shard: &Arc<Shard>, cell: &Arc<GroupCell>) {
    let weak: Weak<Shard> = Arc::downgrade(shard);
    let cell = cell.clone();
    let mut closed = shard.closed.subscribe();
    tokio::spawn(async move {
        loop {
            if cell.removed.load(Ordering::Acquire) || *closed.borrow_and_update() {
                return;
            }
            let next = lock(&cell.group).next_deadline();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let woken = tokio::select! {
                _ = sleep => false,
                _ = cell.wake.notified() => true,
                _ = closed.changed() => return,
            };
            let Some(shard) = weak.upgrade() else { return };
            if !woken {
                lock(&cell.group).expire(Instant::now(), shard.as_ref());
            }
            if drop_if_dead(&shard, &cell) {
                return;
            }
        }
    });
}

/// Forgets a group with no members, pending joins or offsets (Kafka's `Dead`): its metadata
/// record is tombstoned and its cell leaves the shard. Lock order: shard map, then group.
fn drop_if_dead(shard: &Shard, cell: &Arc<GroupCell>) -> bool {
    let mut groups = lock(&shard.groups);
    let g = lock(&cell.group);
    if !g.is_dead() || cell.removed.load(Ordering::Acquire) {
        return cell.removed.load(Ordering::Acquire);
    }
    let tombstone = RecordKey::Group { group: g.id.clone() }.encode();
    if let Err(e) = shard.append(&[(tombstone, None)]) {
        tracing::debug!(group = %g.id, error = e, "keeping dead group: tombstone not written");
        return false;
    }
    groups.remove(&g.id);
    cell.removed.store(true, Ordering::Release);
    tracing::debug!(group = %g.id, "dead group dropped");
    true
}

/// Keeps the shards in line with leadership of `__consumer_offsets` partitions.
async fn watch_leadership(coordinator: Weak<GroupCoordinator>, cache: Arc<MetadataCache>) {
    let mut last: Option<Arc<ClusterSnapshot>> = None;
    let mut lagging = false;
    loop {
        // Addresses only identify the snapshot (the Arc in `last` keeps it alive).
        let seen = last.as_ref().map(|s| Arc::as_ptr(s) as usize);
        let wait = if lagging { LEADERSHIP_RECHECK } else { Duration::from_secs(5) };
        cache.wait_for(wait, |s| seen.is_none_or(|p| p != s as *const _ as usize)).await;
        let Some(c) = coordinator.upgrade() else { return };
        if c.stopped.load(Ordering::Acquire) {
            return;
        }
        last = Some(cache.snapshot());
        lagging = c.sync_leadership();
    }
}

/// Reads a shard's partition from the log start and installs its groups.
async fn load_shard(shard: Arc<Shard>) {
    let started = std::time::Instant::now();
    let reader = shard.clone();
    let loaded = tokio::task::spawn_blocking(move || read_groups(&reader)).await;
    let groups = match loaded {
        Ok(Ok(groups)) => groups,
        Ok(Err(e)) => {
            tracing::error!(partition = shard.index, error = %e, "loading groups failed; shard closed");
            shard.close();
            return;
        }
        Err(e) => {
            tracing::error!(partition = shard.index, error = %e, "group load task failed");
            shard.close();
            return;
        }
    };
    if *shard.closed.borrow() {
        return;
    }
    let count = groups.len();
    {
        let mut map = lock(&shard.groups);
        for (id, group) in groups {
            let cell = new_cell(group);
            spawn_timer(&shard, &cell);
            map.insert(id, cell);
        }
    }
    shard.ready.send_replace(true);
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if count > 0 {
        tracing::info!(partition = shard.index, groups = count, elapsed_ms, "groups loaded from {OFFSETS_TOPIC}");
    } else {
        tracing::debug!(partition = shard.index, elapsed_ms, "no groups in {OFFSETS_TOPIC} partition");
    }
}

/// Replays the partition: the last record per key wins, tombstones delete.
fn read_groups(shard: &Shard) -> Result<HashMap<String, Group>, LogError> {
    let log = &shard.partition.log;
    // Up to the log end, as Kafka does: a new leader's high watermark may still lag behind
    // records its followers are about to confirm, and this log is the truth from now on.
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut values: HashMap<String, Option<GroupValue>> = HashMap::new();
    let mut offsets: HashMap<String, HashMap<(String, i32), OffsetValue>> = HashMap::new();
    while offset < end {
        let info = log.read(offset, 1 << 20, Some(end))?;
        let mut buf = info.records;
        if buf.is_empty() {
            break;
        }
        let before = offset;
        while buf.len() >= 61 {
            let base = i64::from_be_bytes(buf[0..8].try_into().unwrap_or([0; 8]));
            let len = i32::from_be_bytes(buf[8..12].try_into().unwrap_or([0; 4]));
            let last_delta = i32::from_be_bytes(buf[23..27].try_into().unwrap_or([0; 4]));
            let total = 12 + len.max(0) as usize;
            if buf.len() < total {
                break;
            }
            let mut batch = buf.split_to(total);
            offset = base + i64::from(last_delta) + 1;
            let set = match RecordBatchDecoder::decode(&mut batch) {
                Ok(set) => set,
                Err(e) => {
                    tracing::warn!(partition = shard.index, base_offset = base, error = %e, "skipping undecodable batch");
                    continue;
                }
            };
            for r in set.records {
                if r.control {
                    continue;
                }
                let Some(key) = r.key else { continue };
                match RecordKey::decode(key) {
                    Ok(Some(RecordKey::Offset { group, topic, partition })) => {
                        let entry = offsets.entry(group).or_default();
                        match r.value.map(OffsetValue::decode) {
                            Some(Ok(v)) => {
                                entry.insert((topic, partition), v);
                            }
                            None => {
                                entry.remove(&(topic, partition));
                            }
                            Some(Err(e)) => tracing::warn!(partition = shard.index, error = %e, "skipping record"),
                        }
                    }
                    Ok(Some(RecordKey::Group { group })) => match r.value.map(GroupValue::decode) {
                        Some(Ok(v)) => {
                            values.insert(group, Some(v));
                        }
                        None => {
                            values.insert(group, None);
                        }
                        Some(Err(e)) => tracing::warn!(partition = shard.index, error = %e, "skipping record"),
                    },
                    Ok(None) => {}
                    Err(e) => tracing::warn!(partition = shard.index, error = %e, "skipping record"),
                }
            }
        }
        if offset <= before {
            // No whole batch came back; the log is not readable past here.
            break;
        }
    }
    let now = Instant::now();
    let mut groups: HashMap<String, Group> = HashMap::new();
    for (id, value) in values {
        if let Some(v) = value {
            let g = groups.entry(id.clone()).or_insert_with(|| Group::new(&id));
            g.restore(v, now);
        }
    }
    for (id, offs) in offsets {
        if offs.is_empty() {
            continue;
        }
        let g = groups.entry(id.clone()).or_insert_with(|| Group::new(&id));
        g.offsets = offs;
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::partition_for;

    #[test]
    fn partition_matches_kafka() {
        // Values computed with Java: Math.abs("my-group".hashCode()) % 50, etc.
        assert_eq!(
            "my-group".encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c))),
            -1_906_497_762
        );
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
        assert!((0..50).contains(&partition_for("ünïcødé-group", 50)));
    }
}
