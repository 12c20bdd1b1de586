//! [`Producer`]: accumulates records per partition into v2 record batches and ships them to
//! partition leaders, several requests in flight, retrying on stale metadata.
//!
//! A record joins its partition's open batch; a batch closes when it reaches `batch.size` or
//! is `linger.ms` old (a background tick) or on [`Producer::flush`]. Closed batches queue as
//! "ready"; whoever holds an in-flight permit drains the whole ready queue into one Produce
//! request per leader. Delivery results are per batch (one `watch` channel), so a record's
//! [`DeliveryFuture`] costs no allocation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::cluster::Client;
use crate::config::RetryBudget;
use crate::error::ClientError;
use crate::partitioner::partition_for_key;

/// Producer settings; names follow the Java producer's properties.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `acks`: 0 (no response), 1 (leader) or -1 (`all`).
    pub acks: i16,
    /// `linger.ms`.
    pub linger: Duration,
    /// `batch.size` in bytes (uncompressed record bytes per partition batch).
    pub batch_size: usize,
    /// `compression.type`.
    pub compression: Compression,
    /// `max.in.flight.requests.per.connection` (applied producer-wide).
    pub max_in_flight: usize,
    /// `buffer.memory`: closed batches waiting to be sent beyond this block `send`.
    pub buffer_memory: usize,
    /// `request.timeout.ms` sent to the broker as the produce timeout.
    pub timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: -1,
            linger: Duration::from_millis(5),
            batch_size: 16 * 1024,
            compression: Compression::None,
            max_in_flight: 5,
            buffer_memory: 32 * 1024 * 1024,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Parses a `compression.type` value.
pub fn parse_compression(value: &str) -> Result<Compression, ClientError> {
    Ok(match value.trim().to_ascii_lowercase().as_str() {
        "none" | "" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => {
            return Err(ClientError::Config(format!(
                "compression.type: unknown codec '{other}' (none, gzip, snappy, lz4, zstd)"
            )))
        }
    })
}

impl ProducerConfig {
    /// Applies one Java-style producer property. Unknown keys are ignored with a warning, as
    /// the Java client does; bad values are an error naming the key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        let num = |v: &str| -> Result<u64, ClientError> {
            v.trim()
                .parse::<u64>()
                .map_err(|_| ClientError::Config(format!("{key}: expected a non-negative integer, got '{v}'")))
        };
        match key {
            "acks" => {
                self.acks = match value.trim() {
                    "all" | "-1" => -1,
                    "0" => 0,
                    "1" => 1,
                    v => return Err(ClientError::Config(format!("acks: expected all, -1, 0 or 1, got '{v}'"))),
                }
            }
            "linger.ms" => self.linger = Duration::from_millis(num(value)?),
            "batch.size" => self.batch_size = num(value)?.max(1) as usize,
            "compression.type" => self.compression = parse_compression(value)?,
            "max.in.flight.requests.per.connection" => self.max_in_flight = num(value)?.max(1) as usize,
            "buffer.memory" => self.buffer_memory = num(value)?.max(1) as usize,
            "request.timeout.ms" | "delivery.timeout.ms" => self.timeout = Duration::from_millis(num(value)?),
            // Handled by the client config or meaningless here.
            "bootstrap.servers" | "client.id" | "retries" | "retry.backoff.ms" | "key.serializer"
            | "value.serializer" => {}
            other => tracing::warn!(key = other, "unknown producer property ignored"),
        }
        Ok(())
    }
}

/// A record to send. Topic is passed to [`Producer::send`] separately so that sending many
/// records to one topic does not copy the name per record.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: IndexMap<StrBytes, Option<Bytes>>,
    /// Create time in ms since the epoch; now if unset.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(value: impl Into<Bytes>) -> Self {
        ProducerRecord { value: Some(value.into()), ..Default::default() }
    }
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    pub fn with_timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
    pub fn with_header(mut self, key: &str, value: Option<Bytes>) -> Self {
        self.headers.insert(StrBytes::from_string(key.to_owned()), value);
        self
    }
}

/// Where an acknowledged record was stored. `offset` is -1 with `acks=0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
}

type Outcome = Option<Result<i64, Arc<ClientError>>>;

/// Resolves when the record's batch is acknowledged (or failed for good).
pub struct DeliveryFuture {
    rx: watch::Receiver<Outcome>,
    partition: i32,
    index: i64,
    timestamp: i64,
}

impl DeliveryFuture {
    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub async fn wait(mut self) -> Result<RecordMetadata, Arc<ClientError>> {
        let outcome = match self.rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            Err(_) => Some(Err(Arc::new(ClientError::ConnectionClosed("producer dropped before delivery".into())))),
        };
        match outcome {
            Some(Ok(base)) => Ok(RecordMetadata {
                partition: self.partition,
                offset: if base >= 0 { base + self.index } else { -1 },
                timestamp: self.timestamp,
            }),
            Some(Err(e)) => Err(e),
            None => Err(Arc::new(ClientError::ConnectionClosed("delivery lost".into()))),
        }
    }
}

struct OpenBatch {
    records: Vec<Record>,
    bytes: usize,
    created: Instant,
    done: watch::Sender<Outcome>,
}

impl OpenBatch {
    /// Seals the batch for sending to `topic`/`partition`.
    fn close(self, topic: Arc<str>, partition: i32) -> ClosedBatch {
        ClosedBatch { topic, partition, records: self.records, bytes: self.bytes, done: self.done }
    }
}

struct ClosedBatch {
    topic: Arc<str>,
    partition: i32,
    records: Vec<Record>,
    bytes: usize,
    done: watch::Sender<Outcome>,
}

struct EncodedBatch {
    topic: Arc<str>,
    partition: i32,
    data: Bytes,
    done: watch::Sender<Outcome>,
}

struct TopicState {
    name: Arc<str>,
    num_partitions: usize,
    sticky: i32,
    open: HashMap<i32, OpenBatch>,
}

#[derive(Default)]
struct Accumulator {
    topics: HashMap<String, TopicState>,
    ready: Vec<ClosedBatch>,
    ready_bytes: usize,
}

struct Inner {
    client: Client,
    config: ProducerConfig,
    acc: Mutex<Accumulator>,
    in_flight: Arc<Semaphore>,
}

/// Sends records to a cluster. Cheap to share via `Arc`; `send` takes `&self`.
pub struct Producer {
    inner: Arc<Inner>,
    ticker: JoinHandle<()>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Producer {
    pub fn new(client: Client, config: ProducerConfig) -> Producer {
        let tick = config.linger.max(Duration::from_millis(1));
        let inner = Arc::new(Inner {
            client,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            config,
            acc: Mutex::default(),
        });
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                inner.close_expired();
                if let Ok(permit) = inner.in_flight.clone().try_acquire_owned() {
                    Inner::spawn_drain(&inner, permit);
                }
            }
        });
        Producer { inner, ticker }
    }

    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Queues `record` for `topic`; the returned future resolves on acknowledgement.
    /// Waits (backpressure) while `buffer.memory` worth of batches await sending.
    pub async fn send(&self, topic: &str, record: ProducerRecord) -> Result<DeliveryFuture, ClientError> {
        let inner = &self.inner;
        let known = inner.lock().topics.contains_key(topic);
        if !known {
            let partitions = inner.partition_count(topic).await?;
            inner.lock().topics.entry(topic.to_owned()).or_insert_with(|| TopicState {
                name: Arc::from(topic),
                num_partitions: partitions,
                sticky: 0,
                open: HashMap::new(),
            });
        }
        let (delivery, backlog) = {
            let mut acc = inner.lock();
            let acc = &mut *acc;
            let Some(state) = acc.topics.get_mut(topic) else {
                return Err(ClientError::Config(format!("topic '{topic}' vanished from the producer")));
            };
            let partition = match (record.partition, &record.key) {
                (Some(p), _) => {
                    if p < 0 || p as usize >= state.num_partitions {
                        return Err(ClientError::kafka(
                            3,
                            format!("partition {p} of topic '{topic}' ({} partitions)", state.num_partitions),
                            None,
                        ));
                    }
                    p
                }
                (None, Some(key)) => partition_for_key(key, state.num_partitions),
                (None, None) => state.sticky,
            };
            let size = record.key.as_ref().map_or(0, Bytes::len) + record.value.as_ref().map_or(0, Bytes::len) + 16;
            let batch = state.open.entry(partition).or_insert_with(|| OpenBatch {
                records: Vec::new(),
                bytes: 0,
                created: Instant::now(),
                done: watch::channel(None).0,
            });
            let index = batch.records.len() as i64;
            let timestamp = record.timestamp.unwrap_or_else(now_ms);
            batch.records.push(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: index,
                // The encoder keeps records in one batch while offset - sequence is constant;
                // this makes the batch's base sequence -1 (no idempotence).
                sequence: index as i32 - 1,
                timestamp,
                key: record.key,
                value: record.value,
                headers: record.headers,
            });
            batch.bytes += size;
            let delivery = DeliveryFuture { rx: batch.done.subscribe(), partition, index, timestamp };
            if batch.bytes >= inner.config.batch_size {
                if let Some(full) = state.open.remove(&partition) {
                    if record.partition.is_none() && state.num_partitions > 1 {
                        // Sticky partitioning: unkeyed records move on when a batch fills.
                        state.sticky = (state.sticky + 1) % state.num_partitions as i32;
                    }
                    acc.ready_bytes += full.bytes;
                    acc.ready.push(full.close(state.name.clone(), partition));
                }
            }
            (delivery, acc.ready_bytes)
        };
        if backlog > 0 {
            let permit = if backlog >= inner.config.buffer_memory {
                inner.in_flight.clone().acquire_owned().await.ok()
            } else {
                inner.in_flight.clone().try_acquire_owned().ok()
            };
            if let Some(permit) = permit {
                Inner::spawn_drain(inner, permit);
            }
        }
        Ok(delivery)
    }

    /// Sends everything queued and waits until every request in flight has completed.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let inner = &self.inner;
        {
            let mut acc = inner.lock();
            let acc = &mut *acc;
            for state in acc.topics.values_mut() {
                for (partition, b) in state.open.drain() {
                    acc.ready_bytes += b.bytes;
                    acc.ready.push(b.close(state.name.clone(), partition));
                }
            }
        }
        let max = inner.config.max_in_flight.max(1) as u32;
        loop {
            // Holding every permit means nothing is in flight.
            let all = inner
                .in_flight
                .acquire_many(max)
                .await
                .map_err(|_| ClientError::ConnectionClosed("producer closed".into()))?;
            let ready = inner.take_ready();
            if ready.is_empty() {
                drop(all);
                return Ok(());
            }
            drop(all);
            let permit = inner
                .in_flight
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| ClientError::ConnectionClosed("producer closed".into()))?;
            let inner2 = inner.clone();
            tokio::spawn(async move {
                inner2.deliver(ready).await;
                drop(permit);
            });
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Accumulator> {
        match self.acc.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    async fn partition_count(&self, topic: &str) -> Result<usize, ClientError> {
        let mut budget = RetryBudget::new(self.client.config(), self.client.config().request_timeout);
        loop {
            // Producers may trigger auto-creation, like the Java client.
            let resp = self.client.fetch_metadata(Some(&[topic]), true).await?;
            let code =
                resp.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic)).map_or(3, |t| {
                    if t.partitions.is_empty() && t.error_code == 0 {
                        5
                    } else {
                        t.error_code
                    }
                });
            if code == 0 {
                if let Some(t) = self.client.metadata().topics.get(topic) {
                    return Ok(t.partitions.len());
                }
            }
            let err = ClientError::kafka(code, format!("metadata for topic '{topic}'"), None);
            if !err.is_retriable() || !budget.retry().await {
                return Err(err);
            }
        }
    }

    fn close_expired(&self) {
        let linger = self.config.linger;
        let mut acc = self.lock();
        let acc = &mut *acc;
        for state in acc.topics.values_mut() {
            let expired: Vec<i32> =
                state.open.iter().filter(|(_, b)| b.created.elapsed() >= linger).map(|(p, _)| *p).collect();
            for partition in expired {
                if let Some(b) = state.open.remove(&partition) {
                    acc.ready_bytes += b.bytes;
                    acc.ready.push(b.close(state.name.clone(), partition));
                }
            }
        }
    }

    fn take_ready(&self) -> Vec<ClosedBatch> {
        let mut acc = self.lock();
        acc.ready_bytes = 0;
        std::mem::take(&mut acc.ready)
    }

    /// Sends ready batches until the queue is empty, holding one in-flight permit.
    fn spawn_drain(inner: &Arc<Inner>, permit: OwnedSemaphorePermit) {
        let inner = inner.clone();
        tokio::spawn(async move {
            loop {
                let ready = inner.take_ready();
                if ready.is_empty() {
                    break;
                }
                inner.deliver(ready).await;
            }
            drop(permit);
        });
    }

    async fn deliver(&self, batches: Vec<ClosedBatch>) {
        let options = RecordEncodeOptions { version: 2, compression: self.config.compression };
        let mut pending = Vec::with_capacity(batches.len());
        for b in batches {
            let mut buf = BytesMut::with_capacity(b.bytes + 61 + b.records.len() * 8);
            match RecordBatchEncoder::encode(&mut buf, b.records.iter(), &options) {
                Ok(()) => pending.push(EncodedBatch {
                    topic: b.topic,
                    partition: b.partition,
                    data: buf.freeze(),
                    done: b.done,
                }),
                Err(e) => {
                    let _ = b.done.send(Some(Err(Arc::new(ClientError::protocol("record batch", e)))));
                }
            }
        }
        let mut budget = RetryBudget::new(self.client.config(), self.config.timeout);
        while !pending.is_empty() {
            let (retry, last_err) = self.send_once(pending).await;
            if retry.is_empty() {
                return;
            }
            if !budget.retry().await {
                let err = Arc::new(last_err.unwrap_or(ClientError::NoBrokerAvailable("retries exhausted".into())));
                for b in retry {
                    let _ = b.done.send(Some(Err(err.clone())));
                }
                return;
            }
            tracing::debug!(batches = retry.len(), "retrying produce");
            let mut topics: Vec<&str> = retry.iter().map(|b| &*b.topic).collect();
            topics.sort_unstable();
            topics.dedup();
            if let Err(e) = self.client.refresh_metadata(Some(&topics)).await {
                tracing::debug!(error = %e, "metadata refresh before produce retry failed");
            }
            pending = retry;
        }
    }

    /// One round: one Produce request per leader. Returns the batches worth retrying.
    async fn send_once(&self, batches: Vec<EncodedBatch>) -> (Vec<EncodedBatch>, Option<ClientError>) {
        let mut retry = Vec::new();
        let mut last_err = None;
        let mut by_leader: HashMap<i32, (Arc<crate::Connection>, Vec<EncodedBatch>)> = HashMap::new();
        for b in batches {
            match self.client.leader(&b.topic, b.partition).await {
                Ok((id, conn)) => by_leader.entry(id).or_insert_with(|| (conn, Vec::new())).1.push(b),
                Err(e) if e.is_retriable() => {
                    last_err = Some(e);
                    retry.push(b);
                }
                Err(e) => {
                    let _ = b.done.send(Some(Err(Arc::new(e))));
                }
            }
        }
        let requests = by_leader.into_values().map(|(conn, batches)| self.produce_to(conn, batches));
        for (mut r, e) in futures::future::join_all(requests).await {
            retry.append(&mut r);
            if e.is_some() {
                last_err = e;
            }
        }
        (retry, last_err)
    }

    async fn produce_to(
        &self,
        conn: Arc<crate::Connection>,
        batches: Vec<EncodedBatch>,
    ) -> (Vec<EncodedBatch>, Option<ClientError>) {
        let mut topics: Vec<TopicProduceData> = Vec::new();
        for b in &batches {
            let part = PartitionProduceData::default().with_index(b.partition).with_records(Some(b.data.clone()));
            match topics.iter_mut().find(|t| t.name.0.as_str() == &*b.topic) {
                Some(t) => t.partition_data.push(part),
                None => topics.push(
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(b.topic.to_string())))
                        .with_partition_data(vec![part]),
                ),
            }
        }
        let req = ProduceRequest::default()
            .with_acks(self.config.acks)
            .with_timeout_ms(self.config.timeout.as_millis().min(i32::MAX as u128) as i32)
            .with_topic_data(topics);
        if self.config.acks == 0 {
            return match conn.send_no_response(&req).await {
                Ok(()) => {
                    for b in batches {
                        let _ = b.done.send(Some(Ok(-1)));
                    }
                    (Vec::new(), None)
                }
                Err(e) => (batches, Some(e)),
            };
        }
        let resp = match conn.send(&req).await {
            Ok(resp) => resp,
            // Unknown whether it was written: retrying may duplicate, as in Kafka without idempotence.
            Err(e) if e.is_retriable() => return (batches, Some(e)),
            Err(e) => {
                let e = Arc::new(e);
                for b in batches {
                    let _ = b.done.send(Some(Err(e.clone())));
                }
                return (Vec::new(), None);
            }
        };
        let mut retry = Vec::new();
        let mut last_err = None;
        for b in batches {
            let answer = resp
                .responses
                .iter()
                .filter(|t| t.name.0.as_str() == &*b.topic)
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == b.partition);
            let Some(p) = answer else {
                let e = ClientError::protocol("Produce response", format!("no entry for {}-{}", b.topic, b.partition));
                let _ = b.done.send(Some(Err(Arc::new(e))));
                continue;
            };
            if p.error_code == 0 {
                let _ = b.done.send(Some(Ok(p.base_offset)));
                continue;
            }
            let err = ClientError::kafka(
                p.error_code,
                format!("produce to {}-{}", b.topic, b.partition),
                p.error_message.as_ref().map(|m| m.to_string()),
            );
            if err.is_retriable() {
                last_err = Some(err);
                retry.push(b);
            } else {
                let _ = b.done.send(Some(Err(Arc::new(err))));
            }
        }
        (retry, last_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_properties_parse_and_bad_values_name_the_key() {
        let mut c = ProducerConfig::default();
        for (k, v) in [("acks", "all"), ("linger.ms", "7"), ("batch.size", "1024"), ("compression.type", "zstd")] {
            c.set(k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
        assert_eq!(
            (c.acks, c.linger, c.batch_size, c.compression),
            (-1, Duration::from_millis(7), 1024, Compression::Zstd)
        );
        let err = c.set("linger.ms", "soon").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("linger.ms"), "{err}");
        let err = c.set("acks", "2").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("acks"), "{err}");
        assert!(c.set("some.unknown.key", "1").is_ok());
    }
}
