//! The follower side: replica fetchers pulling partition logs from their leaders.
//!
//! Like Kafka's `ReplicaFetcherManager`, there is one fetcher per (leader broker, fetcher
//! index) — `num.replica.fetchers` of them per leader — and each carries all the partitions
//! it was given on one long-lived gRPC stream. A round is one request (every partition with
//! its log end offset, leader epoch and last fetched epoch) and one response; the offsets of
//! the next request are how the leader learns what this replica holds.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use strom_proto::replication::replication_client::ReplicationClient;
use strom_proto::replication::{FetchPartition, FetchedPartition, ReplicaFetchRequest};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::metadata::MetadataCache;
use crate::replica::Partition;

/// Backoff after a round in which every partition failed, and between reconnects.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(2);
/// HTTP/2 flow-control windows: large enough that a full fetch response is never throttled.
pub(crate) const STREAM_WINDOW: u32 = 16 << 20;
pub(crate) const CONNECTION_WINDOW: u32 = 32 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Replica fetch tuning, from `server.properties`.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    pub broker_id: i32,
    pub num_fetchers: u32,
    /// `replica.fetch.max.bytes`: per partition.
    pub partition_max_bytes: u32,
    /// `replica.fetch.response.max.bytes`: per response.
    pub response_max_bytes: u32,
    /// `replica.fetch.wait.max.ms`.
    pub max_wait: Duration,
}

type Key = (String, i32);

struct Fetcher {
    partitions: Mutex<BTreeMap<Key, Arc<Partition>>>,
    changed: Notify,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Every fetcher of this broker.
pub struct FetcherManager {
    settings: FetchSettings,
    cache: Arc<MetadataCache>,
    fetchers: Mutex<HashMap<(i32, u32), Arc<Fetcher>>>,
    /// Which fetcher holds each partition.
    placement: Mutex<HashMap<Key, (i32, u32)>>,
}

impl FetcherManager {
    pub fn new(settings: FetchSettings, cache: Arc<MetadataCache>) -> Self {
        FetcherManager { settings, cache, fetchers: Mutex::new(HashMap::new()), placement: Mutex::new(HashMap::new()) }
    }

    fn fetcher_index(&self, key: &Key) -> u32 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % u64::from(self.settings.num_fetchers.max(1))) as u32
    }

    /// Starts (or moves) replication of `partition` from `leader`.
    pub fn add(&self, partition: Arc<Partition>, leader: i32) {
        let key: Key = (partition.topic.clone(), partition.index);
        let slot = (leader, self.fetcher_index(&key));
        let previous = lock(&self.placement).insert(key.clone(), slot);
        if let Some(prev) = previous.filter(|p| *p != slot) {
            self.detach(&key, prev);
        }
        let fetcher = {
            let mut fetchers = lock(&self.fetchers);
            fetchers
                .entry(slot)
                .or_insert_with(|| {
                    Arc::new(Fetcher {
                        partitions: Mutex::new(BTreeMap::new()),
                        changed: Notify::new(),
                        task: Mutex::new(None),
                    })
                })
                .clone()
        };
        lock(&fetcher.partitions).insert(key, partition);
        fetcher.changed.notify_one();
        let mut task = lock(&fetcher.task);
        if task.as_ref().is_none_or(|t| t.is_finished()) {
            let run = FetcherRun {
                leader,
                settings: self.settings.clone(),
                cache: self.cache.clone(),
                fetcher: fetcher.clone(),
            };
            *task = Some(tokio::spawn(run.run()));
        }
    }

    /// Stops replicating a partition (it became leader, lost its leader, or went away).
    pub fn remove(&self, topic: &str, index: i32) {
        let key: Key = (topic.to_string(), index);
        if let Some(slot) = lock(&self.placement).remove(&key) {
            self.detach(&key, slot);
        }
    }

    fn detach(&self, key: &Key, slot: (i32, u32)) {
        let mut fetchers = lock(&self.fetchers);
        let Some(fetcher) = fetchers.get(&slot).cloned() else { return };
        let empty = {
            let mut parts = lock(&fetcher.partitions);
            parts.remove(key);
            parts.is_empty()
        };
        if empty {
            fetchers.remove(&slot);
            if let Some(t) = lock(&fetcher.task).take() {
                t.abort();
            }
        }
    }

    /// The leaders this broker currently fetches from, with their partition counts.
    pub fn leaders(&self) -> BTreeMap<i32, usize> {
        let mut out = BTreeMap::new();
        for ((leader, _), f) in lock(&self.fetchers).iter() {
            *out.entry(*leader).or_insert(0) += lock(&f.partitions).len();
        }
        out
    }

    /// Stops every fetcher.
    pub fn shutdown(&self) {
        let fetchers: Vec<Arc<Fetcher>> = lock(&self.fetchers).drain().map(|(_, f)| f).collect();
        lock(&self.placement).clear();
        for f in fetchers {
            if let Some(t) = lock(&f.task).take() {
                t.abort();
            }
        }
    }
}

struct FetcherRun {
    leader: i32,
    settings: FetchSettings,
    cache: Arc<MetadataCache>,
    fetcher: Arc<Fetcher>,
}

/// Why a stream ended.
enum StreamEnd {
    /// Nothing left to fetch: the task ends.
    Idle,
    /// The partition set changed: a new stream on the same connection, so an added
    /// partition does not wait out the leader's long poll of the old set.
    Restart,
    /// Connection or protocol trouble: reconnect after a backoff.
    Broken(String),
}

impl FetcherRun {
    async fn run(self) {
        let mut backoff = RETRY_BACKOFF;
        let mut channel: Option<Channel> = None;
        loop {
            if lock(&self.fetcher.partitions).is_empty() {
                return;
            }
            let ch = match channel.take() {
                Some(c) => Ok(c),
                None => self.connect().await,
            };
            let end = match ch {
                Ok(ch) => {
                    backoff = RETRY_BACKOFF;
                    let end = self.stream(ch.clone()).await;
                    channel = Some(ch);
                    end
                }
                Err(e) => StreamEnd::Broken(e),
            };
            match end {
                StreamEnd::Idle => return,
                StreamEnd::Restart => {}
                StreamEnd::Broken(why) => {
                    channel = None;
                    tracing::debug!(leader = self.leader, reason = %why, "replica fetch stream ended; reconnecting");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.fetcher.changed.notified() => {}
                    }
                    backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
                }
            }
        }
    }

    async fn connect(&self) -> Result<Channel, String> {
        let snapshot = self.cache.snapshot();
        let Some(broker) = snapshot.brokers.get(&self.leader) else {
            return Err(format!("leader {} is not registered", self.leader));
        };
        let uri = format!("http://{}:{}", broker.host, broker.port);
        let endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|e| format!("bad endpoint {uri}: {e}"))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(10))
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW);
        endpoint.connect().await.map_err(|e| format!("connecting to {uri}: {e}"))
    }

    async fn stream(&self, channel: Channel) -> StreamEnd {
        let mut client = ReplicationClient::new(channel).max_decoding_message_size(usize::MAX);
        let (tx, rx) = mpsc::channel::<ReplicaFetchRequest>(1);
        let Some(first) = self.request() else { return StreamEnd::Idle };
        if tx.send(first.0).await.is_err() {
            return StreamEnd::Broken("request channel closed".into());
        }
        let mut inbound = match client.fetch(ReceiverStream::new(rx)).await {
            Ok(r) => r.into_inner(),
            Err(status) => return StreamEnd::Broken(format!("opening stream: {status}")),
        };
        let mut in_flight = first.1;
        let round_timeout = self.settings.max_wait + Duration::from_secs(15);
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(round_timeout, inbound.message()) => next,
                _ = self.fetcher.changed.notified() => return StreamEnd::Restart,
            };
            let response = match next {
                Ok(Ok(Some(r))) => r,
                Ok(Ok(None)) => return StreamEnd::Broken("leader closed the stream".into()),
                Ok(Err(status)) => return StreamEnd::Broken(status.to_string()),
                Err(_) => return StreamEnd::Broken("no response within the round timeout".into()),
            };
            let progress = self.apply(&in_flight, response.partitions).await;
            if !progress {
                // Every partition failed (e.g. the leader has not learned its new epoch yet).
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
            let Some((req, parts)) = self.request() else { return StreamEnd::Idle };
            in_flight = parts;
            if tx.send(req).await.is_err() {
                return StreamEnd::Broken("request channel closed".into());
            }
        }
    }

    /// The next request, and the partitions it names; `None` when there is nothing to fetch.
    fn request(&self) -> Option<(ReplicaFetchRequest, HashMap<Key, Arc<Partition>>)> {
        let parts = lock(&self.fetcher.partitions).clone();
        if parts.is_empty() {
            return None;
        }
        let mut named = HashMap::with_capacity(parts.len());
        let mut partitions = Vec::with_capacity(parts.len());
        for (key, p) in parts {
            if p.is_leader() {
                continue;
            }
            partitions.push(FetchPartition {
                topic: key.0.clone(),
                partition: key.1,
                fetch_offset: p.log.log_end_offset(),
                current_leader_epoch: p.leader_epoch(),
                last_fetched_epoch: p.log.latest_epoch().unwrap_or(-1),
                max_bytes: self.settings.partition_max_bytes,
            });
            named.insert(key, p);
        }
        let req = ReplicaFetchRequest {
            replica_id: self.settings.broker_id,
            max_wait_ms: u32::try_from(self.settings.max_wait.as_millis()).unwrap_or(u32::MAX),
            max_bytes: self.settings.response_max_bytes,
            partitions,
        };
        Some((req, named))
    }

    /// Applies one response; returns whether any partition made progress or had no error.
    async fn apply(&self, named: &HashMap<Key, Arc<Partition>>, fetched: Vec<FetchedPartition>) -> bool {
        let mut ok = fetched.is_empty();
        for f in fetched {
            let key: Key = (f.topic.clone(), f.partition);
            let Some(p) = named.get(&key) else { continue };
            // Removed from this fetcher meanwhile, or promoted: the data is not ours to apply.
            if p.is_leader() || !lock(&self.fetcher.partitions).contains_key(&key) {
                continue;
            }
            match apply_partition(p, f) {
                Ok(()) => ok = true,
                Err(why) => {
                    tracing::debug!(topic = %key.0, partition = key.1, leader = self.leader, reason = %why, "replica fetch")
                }
            }
        }
        ok
    }
}

/// Applies one partition's part of a fetch response to the local log.
fn apply_partition(p: &Partition, f: FetchedPartition) -> Result<(), String> {
    let code = i16::try_from(f.error_code).unwrap_or(-1);
    if code == ResponseError::OffsetOutOfRange.code() {
        let leo = p.log.log_end_offset();
        if leo > f.log_end_offset {
            // We hold more than the leader and it could not tell where we diverge.
            p.log.truncate_to(f.log_end_offset).map_err(|e| format!("truncating: {e}"))?;
            p.truncated();
            return Ok(());
        }
        if leo < f.log_start_offset {
            // What we miss is gone from the leader too (retention): start over where it starts.
            tracing::info!(
                topic = %p.topic,
                partition = p.index,
                log_end = leo,
                leader_log_start = f.log_start_offset,
                "log end is below the leader's log start; starting over at the leader's log start"
            );
            p.log.truncate_fully_and_start_at(f.log_start_offset).map_err(|e| format!("starting over: {e}"))?;
            p.truncated();
            return Ok(());
        }
        return Err(format!("offset {leo} is out of range on the leader (log end {})", f.log_end_offset));
    }
    if code != 0 {
        return Err(format!("leader answered error code {code}"));
    }
    if f.diverging_epoch >= 0 || f.diverging_end_offset >= 0 {
        let target = match p.log.end_offset_for_epoch(f.diverging_epoch) {
            Some((_, ours)) => ours.min(f.diverging_end_offset),
            None => f.diverging_end_offset,
        };
        let target = target.max(0);
        tracing::info!(
            topic = %p.topic,
            partition = p.index,
            diverging_epoch = f.diverging_epoch,
            leader_end = f.diverging_end_offset,
            truncate_to = target,
            log_end = p.log.log_end_offset(),
            "log diverges from the leader's; truncating"
        );
        p.log.truncate_to(target).map_err(|e| format!("truncating: {e}"))?;
        p.truncated();
        return Ok(());
    }
    if !f.records.is_empty() {
        p.log.append_replicated(f.records).map_err(|e| format!("appending: {e}"))?;
        p.appended();
    }
    p.update_follower_hw(f.high_watermark);
    Ok(())
}
