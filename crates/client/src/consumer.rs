//! [`Consumer`]: reads assigned partitions with Fetch, starting from positions resolved with
//! ListOffsets, decoding v2 batches with kafka-protocol's `RecordBatchDecoder`.
//!
//! Group membership (FindCoordinator/JoinGroup/SyncGroup/Heartbeat/OffsetCommit) is a layer on
//! top: it will call [`Consumer::assign`] with the partitions SyncGroup hands out, seek to the
//! committed offsets, and commit [`Consumer::position`]s. Nothing here assumes a static
//! assignment beyond what `assign` sets.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use indexmap::IndexMap;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{RecordBatchDecoder, TimestampType};
use tokio::task::JoinHandle;

use crate::cluster::{Client, OffsetSpec};
use crate::connection::Connection;
use crate::error::ClientError;

/// Consumer settings; names follow the Java consumer's properties.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `auto.offset.reset` used when a partition has no position or it is out of range.
    pub auto_offset_reset: OffsetReset,
    /// `fetch.max.wait.ms`.
    pub fetch_max_wait: Duration,
    /// `fetch.min.bytes`.
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes`.
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`.
    pub max_partition_fetch_bytes: i32,
    /// `isolation.level`: 0 read_uncommitted, 1 read_committed.
    pub isolation_level: i8,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Latest,
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            max_partition_fetch_bytes: 1024 * 1024,
            isolation_level: 0,
        }
    }
}

impl ConsumerConfig {
    /// Applies one Java-style consumer property; bad values are an error naming the key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        let int = |v: &str| -> Result<i32, ClientError> {
            v.trim()
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ClientError::Config(format!("{key}: expected a non-negative integer, got '{v}'")))
        };
        match key {
            "auto.offset.reset" => {
                self.auto_offset_reset = match value.trim() {
                    "earliest" => OffsetReset::Earliest,
                    "latest" => OffsetReset::Latest,
                    "none" => OffsetReset::None,
                    v => {
                        return Err(ClientError::Config(format!(
                            "auto.offset.reset: expected earliest, latest or none, got '{v}'"
                        )))
                    }
                }
            }
            "fetch.max.wait.ms" => self.fetch_max_wait = Duration::from_millis(int(value)? as u64),
            "fetch.min.bytes" => self.fetch_min_bytes = int(value)?,
            "fetch.max.bytes" => self.fetch_max_bytes = int(value)?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = int(value)?,
            "isolation.level" => {
                self.isolation_level = match value.trim() {
                    "read_uncommitted" => 0,
                    "read_committed" => 1,
                    v => {
                        return Err(ClientError::Config(format!(
                            "isolation.level: expected read_uncommitted or read_committed, got '{v}'"
                        )))
                    }
                }
            }
            "bootstrap.servers" | "client.id" | "group.id" | "enable.auto.commit" | "key.deserializer"
            | "value.deserializer" => {}
            other => tracing::warn!(key = other, "unknown consumer property ignored"),
        }
        Ok(())
    }
}

/// What to do when a partition has no valid position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail with OFFSET_OUT_OF_RANGE instead of resetting.
    None,
}

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    Earliest,
    Latest,
    Offset(i64),
    /// First record with timestamp >= this (ms); the end of the log if none.
    Timestamp(i64),
}

/// A record read from a partition.
#[derive(Debug, Clone)]
pub struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: IndexMap<StrBytes, Option<Bytes>>,
}

#[derive(Debug)]
struct Assigned {
    topic: Arc<str>,
    partition: i32,
    /// Next offset to fetch; `Err` holds how to find it.
    position: Result<i64, StartOffset>,
    high_watermark: i64,
}

/// A fetch sent ahead of the next poll, valid while the positions it asked for are current.
struct Inflight {
    key: Vec<(usize, i64)>,
    handle: JoinHandle<Result<FetchResponse, ClientError>>,
}

/// How much longer than its `max_wait` a poll waits for a fetch answer before leaving it
/// in flight for the next poll.
const FETCH_SLACK: Duration = Duration::from_millis(200);

/// Reads records from explicitly assigned partitions.
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    assigned: Vec<Assigned>,
    buffered: VecDeque<ConsumerRecord>,
    /// At most one fetch per leader broker in flight.
    inflight: HashMap<i32, Inflight>,
    rotation: AtomicUsize,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.cancel_inflight();
    }
}

impl Consumer {
    pub fn new(client: Client, config: ConsumerConfig) -> Consumer {
        Consumer {
            client,
            config,
            assigned: Vec::new(),
            buffered: VecDeque::new(),
            inflight: HashMap::new(),
            rotation: AtomicUsize::new(0),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Replaces the assignment. New partitions start per `auto.offset.reset`.
    pub fn assign(&mut self, partitions: &[(&str, i32)]) {
        // In-flight fetches name partitions by assignment index, which changes here.
        self.cancel_inflight();
        let reset = match self.config.auto_offset_reset {
            OffsetReset::Earliest => StartOffset::Earliest,
            _ => StartOffset::Latest,
        };
        let mut next = Vec::with_capacity(partitions.len());
        for &(topic, partition) in partitions {
            if let Some(pos) = self.assigned.iter().position(|a| &*a.topic == topic && a.partition == partition) {
                next.push(self.assigned.swap_remove(pos));
            } else {
                next.push(Assigned { topic: Arc::from(topic), partition, position: Err(reset), high_watermark: -1 });
            }
        }
        self.assigned = next;
        self.buffered.retain(|r| partitions.iter().any(|&(t, p)| &*r.topic == t && r.partition == p));
    }

    /// Assigns every partition of `topic`.
    pub async fn assign_topic(&mut self, topic: &str) -> Result<usize, ClientError> {
        let meta = self.client.topic(topic).await?;
        let parts: Vec<(&str, i32)> = meta.partitions.iter().map(|p| (topic, p.partition)).collect();
        self.assign(&parts);
        Ok(parts.len())
    }

    /// The current assignment.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.assigned.iter().map(|a| (a.topic.to_string(), a.partition)).collect()
    }

    /// Moves `topic`/`partition` to `start` for the next poll.
    pub fn seek(&mut self, topic: &str, partition: i32, start: StartOffset) -> Result<(), ClientError> {
        let a = self
            .assigned
            .iter_mut()
            .find(|a| &*a.topic == topic && a.partition == partition)
            .ok_or_else(|| ClientError::Config(format!("{topic}-{partition} is not assigned")))?;
        a.position = match start {
            StartOffset::Offset(o) if o >= 0 => Ok(o),
            other => Err(other),
        };
        self.buffered.retain(|r| !(&*r.topic == topic && r.partition == partition));
        Ok(())
    }

    /// Seeks every assigned partition.
    pub fn seek_all(&mut self, start: StartOffset) {
        self.cancel_inflight();
        for a in &mut self.assigned {
            a.position = match start {
                StartOffset::Offset(o) if o >= 0 => Ok(o),
                other => Err(other),
            };
        }
        self.buffered.clear();
    }

    /// The next offset `poll` returns for the partition, resolving a pending seek.
    pub async fn position(&mut self, topic: &str, partition: i32) -> Result<i64, ClientError> {
        self.resolve_positions().await?;
        self.assigned
            .iter()
            .find(|a| &*a.topic == topic && a.partition == partition)
            .and_then(|a| a.position.ok())
            .ok_or_else(|| ClientError::Config(format!("{topic}-{partition} is not assigned")))
    }

    /// Records not yet returned: high watermark minus position, summed (-1 if unknown).
    pub fn lag(&self) -> i64 {
        let mut lag = 0;
        for a in &self.assigned {
            match a.position {
                Ok(p) if a.high_watermark >= 0 => lag += (a.high_watermark - p).max(0),
                _ => return -1,
            }
        }
        lag
    }

    /// Returns the records available within `timeout` (possibly none), at most one fetch
    /// round's worth.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        let mut out = Vec::new();
        self.poll_into(timeout, &mut out).await?;
        Ok(out)
    }

    /// Like [`Consumer::poll`], appending to `out` (lets callers reuse one vector).
    pub async fn poll_into(&mut self, timeout: Duration, out: &mut Vec<ConsumerRecord>) -> Result<(), ClientError> {
        if !self.buffered.is_empty() {
            out.extend(self.buffered.drain(..));
            return Ok(());
        }
        if self.assigned.is_empty() {
            tokio::time::sleep(timeout).await;
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.resolve_positions().await?;
            let wait = deadline.saturating_duration_since(Instant::now()).min(self.config.fetch_max_wait);
            let before = out.len();
            self.fetch_round(wait, out).await?;
            if out.len() > before || Instant::now() >= deadline {
                return Ok(());
            }
        }
    }

    async fn resolve_positions(&mut self) -> Result<(), ClientError> {
        for i in 0..self.assigned.len() {
            let Err(start) = self.assigned[i].position else {
                continue;
            };
            let topic = self.assigned[i].topic.clone();
            let partition = self.assigned[i].partition;
            let spec = match start {
                StartOffset::Earliest => OffsetSpec::Earliest,
                StartOffset::Latest => OffsetSpec::Latest,
                StartOffset::Timestamp(ts) => OffsetSpec::Timestamp(ts),
                StartOffset::Offset(_) => OffsetSpec::Earliest,
            };
            let found = self.client.list_offsets(&topic, &[partition], spec).await?;
            let mut offset = found.first().map_or(-1, |(_, o)| o.offset);
            if offset < 0 {
                // No record at or after the timestamp: start at the end, as Java's seek does.
                offset = self
                    .client
                    .list_offsets(&topic, &[partition], OffsetSpec::Latest)
                    .await?
                    .first()
                    .map_or(0, |(_, o)| o.offset);
            }
            self.assigned[i].position = Ok(offset);
        }
        Ok(())
    }

    async fn fetch_round(&mut self, wait: Duration, out: &mut Vec<ConsumerRecord>) -> Result<(), ClientError> {
        let mut by_leader: HashMap<i32, (Arc<Connection>, Vec<usize>)> = HashMap::new();
        let mut stale = false;
        for (i, a) in self.assigned.iter().enumerate() {
            match self.client.leader(&a.topic, a.partition).await {
                Ok((id, conn)) => by_leader.entry(id).or_insert_with(|| (conn, Vec::new())).1.push(i),
                Err(e) if e.is_retriable() => stale = true,
                Err(e) => return Err(e),
            }
        }
        if by_leader.is_empty() {
            tokio::time::sleep(self.client.config().retry_backoff.min(wait)).await;
            self.refresh_assigned_metadata().await;
            return Ok(());
        }
        let mut waiting = Vec::with_capacity(by_leader.len());
        let mut connections = HashMap::with_capacity(by_leader.len());
        for (leader, (conn, idx)) in by_leader {
            let key = self.fetch_key(&idx);
            if key.is_empty() {
                continue;
            }
            // A prefetch issued after the last round is still valid if nothing moved since.
            let handle = match self.inflight.remove(&leader) {
                Some(f) if f.key == key => f.handle,
                Some(f) => {
                    f.handle.abort();
                    self.spawn_fetch(conn.clone(), &key, wait)
                }
                None => self.spawn_fetch(conn.clone(), &key, wait),
            };
            connections.insert(leader, conn);
            waiting.push((leader, key, handle));
        }
        let limit = wait + FETCH_SLACK;
        let rounds = waiting.into_iter().map(|(leader, key, mut handle)| async move {
            match tokio::time::timeout(limit, &mut handle).await {
                Ok(done) => (leader, key, Ok(done)),
                Err(_) => (leader, key, Err(handle)),
            }
        });
        let mut answered = Vec::new();
        for (leader, key, result) in futures::future::join_all(rounds).await {
            let result = match result {
                Ok(Ok(result)) => result,
                Ok(Err(join)) => Err(ClientError::ConnectionClosed(format!("fetch task failed: {join}"))),
                Err(still_running) => {
                    // Slower than this poll's budget: keep it for the next poll.
                    self.inflight.insert(leader, Inflight { key, handle: still_running });
                    continue;
                }
            };
            match result {
                Ok(resp) => {
                    if resp.error_code != 0 {
                        stale = true;
                        continue;
                    }
                    for topic in resp.responses {
                        for p in topic.partitions {
                            let Some(&(i, _)) = key.iter().find(|&&(i, _)| {
                                self.assigned[i].topic.as_ref() == topic.topic.0.as_str()
                                    && self.assigned[i].partition == p.partition_index
                            }) else {
                                continue;
                            };
                            stale |= self.absorb(i, p, out)?;
                        }
                    }
                    answered.push((leader, key));
                }
                Err(e) if e.is_retriable() => stale = true,
                Err(e) => return Err(e),
            }
        }
        if stale {
            self.refresh_assigned_metadata().await;
        } else {
            // Pipelining: the next fetch travels while the caller handles these records.
            for (leader, key) in answered {
                let idx: Vec<usize> = key.iter().map(|&(i, _)| i).collect();
                let next = self.fetch_key(&idx);
                if let Some(conn) = connections.get(&leader).filter(|_| !next.is_empty()) {
                    let handle = self.spawn_fetch(conn.clone(), &next, self.config.fetch_max_wait);
                    self.inflight.insert(leader, Inflight { key: next, handle });
                }
            }
        }
        Ok(())
    }

    /// The `(assignment index, fetch offset)` pairs a fetch for these partitions would carry.
    fn fetch_key(&self, idx: &[usize]) -> Vec<(usize, i64)> {
        idx.iter().filter_map(|&i| self.assigned[i].position.ok().map(|p| (i, p))).collect()
    }

    fn spawn_fetch(
        &self,
        conn: Arc<Connection>,
        key: &[(usize, i64)],
        wait: Duration,
    ) -> JoinHandle<Result<FetchResponse, ClientError>> {
        let req = self.fetch_request(key, wait);
        tokio::spawn(async move { conn.send(&req).await })
    }

    fn cancel_inflight(&mut self) {
        for (_, f) in self.inflight.drain() {
            f.handle.abort();
        }
    }

    async fn refresh_assigned_metadata(&self) {
        let mut topics: Vec<&str> = self.assigned.iter().map(|a| &*a.topic).collect();
        topics.sort_unstable();
        topics.dedup();
        if let Err(e) = self.client.refresh_metadata(Some(&topics)).await {
            tracing::debug!(error = %e, "metadata refresh failed");
        }
    }

    fn fetch_request(&self, key: &[(usize, i64)], wait: Duration) -> FetchRequest {
        let mut topics: Vec<FetchTopic> = Vec::new();
        // Brokers may let only the first partition exceed the byte limits (KIP-74), so the
        // starting partition rotates: a partition behind a busy one still gets its turn.
        let start = self.rotation.fetch_add(1, Ordering::Relaxed) % key.len().max(1);
        for &(i, offset) in key[start..].iter().chain(&key[..start]) {
            let a = &self.assigned[i];
            let part = FetchPartition::default()
                .with_partition(a.partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(self.config.max_partition_fetch_bytes);
            match topics.iter_mut().find(|t| t.topic.0.as_str() == &*a.topic) {
                Some(t) => t.partitions.push(part),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(a.topic.to_string())))
                        .with_partitions(vec![part]),
                ),
            }
        }
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(wait.as_millis().min(i32::MAX as u128) as i32)
            .with_min_bytes(self.config.fetch_min_bytes)
            .with_max_bytes(self.config.fetch_max_bytes)
            .with_isolation_level(self.config.isolation_level)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics)
    }

    /// Takes one partition's fetch answer; returns whether metadata looks stale.
    fn absorb(
        &mut self,
        i: usize,
        p: kafka_protocol::messages::fetch_response::PartitionData,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<bool, ClientError> {
        let a = &mut self.assigned[i];
        let Ok(position) = a.position else {
            return Ok(false);
        };
        match p.error_code {
            0 => {}
            1 => {
                // OFFSET_OUT_OF_RANGE
                match self.config.auto_offset_reset {
                    OffsetReset::Earliest => a.position = Err(StartOffset::Earliest),
                    OffsetReset::Latest => a.position = Err(StartOffset::Latest),
                    OffsetReset::None => {
                        return Err(ClientError::kafka(
                            1,
                            format!("fetch {}-{} at offset {position}", a.topic, a.partition),
                            None,
                        ))
                    }
                }
                return Ok(false);
            }
            code => {
                let err = ClientError::kafka(code, format!("fetch {}-{}", a.topic, a.partition), None);
                if err.is_retriable() {
                    return Ok(true);
                }
                return Err(err);
            }
        }
        a.high_watermark = p.high_watermark;
        let Some(mut data) = p.records else {
            return Ok(false);
        };
        let mut next = position;
        while let Some(mut batch) = next_complete_batch(&mut data) {
            let last_offset = batch_last_offset(&batch);
            let is_control = batch_is_control(&batch);
            if last_offset < next {
                continue;
            }
            if !is_control {
                let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| {
                    ClientError::protocol(format!("record batch of {}-{} at offset {next}", a.topic, a.partition), e)
                })?;
                for r in set.records {
                    if r.offset < next || r.control {
                        continue;
                    }
                    out.push(ConsumerRecord {
                        topic: a.topic.clone(),
                        partition: a.partition,
                        offset: r.offset,
                        timestamp: r.timestamp,
                        timestamp_type: r.timestamp_type,
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                    });
                }
            }
            next = last_offset + 1;
        }
        a.position = Ok(next);
        Ok(false)
    }
}

/// Offsets into the v2 batch header that framing needs (the decoder does the rest).
const BATCH_LENGTH_OFFSET: usize = 8;
const BATCH_HEADER_PREFIX: usize = 12;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const ATTRIBUTES_OFFSET: usize = 21;

/// Splits the next whole batch off `data`; a truncated trailing batch (fetch size limits cut
/// it) ends the iteration, as in Kafka's consumer.
fn next_complete_batch(data: &mut Bytes) -> Option<Bytes> {
    if data.len() < BATCH_HEADER_PREFIX {
        return None;
    }
    let len = (&data[BATCH_LENGTH_OFFSET..BATCH_HEADER_PREFIX]).get_i32();
    let total = BATCH_HEADER_PREFIX.checked_add(usize::try_from(len).ok()?)?;
    if len < 49 || data.len() < total {
        return None;
    }
    Some(data.split_to(total))
}

fn batch_last_offset(batch: &Bytes) -> i64 {
    let base = (&batch[..8]).get_i64();
    let delta = (&batch[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]).get_i32();
    base + delta as i64
}

fn batch_is_control(batch: &Bytes) -> bool {
    (&batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2]).get_i16() & 0x20 != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};

    fn batch(base: i64, n: i64) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base + i,
                sequence: (base + i) as i32 - 1,
                timestamp: 1000 + i,
                key: None,
                value: Some(Bytes::from(format!("v{i}"))),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions { version: 2, compression: Compression::None },
        )
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("encode: {e}"));
        buf.freeze()
    }

    #[test]
    fn splits_whole_batches_and_stops_at_truncated_tail() {
        let a = batch(0, 3);
        let b = batch(3, 2);
        let mut data = BytesMut::new();
        data.extend_from_slice(&a);
        data.extend_from_slice(&b[..b.len() - 5]);
        let mut data = data.freeze();
        let first = next_complete_batch(&mut data);
        assert_eq!(first.as_ref().map(Bytes::len), Some(a.len()));
        assert_eq!(first.as_ref().map(batch_last_offset), Some(2));
        assert!(next_complete_batch(&mut data).is_none());
    }

    #[test]
    fn reads_last_offset_and_control_flag() {
        let b = batch(10, 4);
        assert_eq!(batch_last_offset(&b), 13);
        assert!(!batch_is_control(&b));
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn consumer_properties_parse_and_bad_values_name_the_key() {
        let mut c = ConsumerConfig::default();
        c.set("auto.offset.reset", "earliest").unwrap_or_else(|e| panic!("{e}"));
        c.set("fetch.max.wait.ms", "50").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.auto_offset_reset, c.fetch_max_wait), (OffsetReset::Earliest, Duration::from_millis(50)));
        let err = c.set("auto.offset.reset", "oldest").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("auto.offset.reset"), "{err}");
        let err = c.set("fetch.min.bytes", "-1").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("fetch.min.bytes"), "{err}");
    }
}
