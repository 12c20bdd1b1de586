//! [`Client`]: bootstrap, the cached cluster metadata, one connection per broker, and leader
//! routing. Producer, consumer and admin are built on it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, BrokerId, ListOffsetsRequest, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::Mutex;

use crate::config::{ClientConfig, RetryBudget};
use crate::connection::Connection;
use crate::error::{check, ClientError};

/// One partition as the last Metadata response described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: i32,
    pub error_code: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
}

/// One topic as the last Metadata response described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    pub error_code: i16,
    pub topic_id: [u8; 16],
    pub is_internal: bool,
    /// Sorted by partition id.
    pub partitions: Vec<PartitionMetadata>,
}

/// A broker's advertised endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerMetadata {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The cluster as last seen.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerMetadata>,
    pub topics: HashMap<String, TopicMetadata>,
}

impl ClusterMetadata {
    fn from_response(resp: &MetadataResponse) -> Self {
        let mut meta = ClusterMetadata {
            cluster_id: resp.cluster_id.as_ref().map(|s| s.to_string()),
            controller_id: resp.controller_id.0,
            brokers: resp
                .brokers
                .iter()
                .map(|b| BrokerMetadata {
                    id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                })
                .collect(),
            topics: HashMap::new(),
        };
        meta.merge_topics(resp);
        meta
    }

    fn merge_topics(&mut self, resp: &MetadataResponse) {
        for t in &resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            let mut partitions: Vec<PartitionMetadata> = t
                .partitions
                .iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    error_code: p.error_code,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    offline_replicas: p.offline_replicas.iter().map(|b| b.0).collect(),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let topic = TopicMetadata {
                name: name.clone(),
                error_code: t.error_code,
                topic_id: *t.topic_id.as_bytes(),
                is_internal: t.is_internal,
                partitions,
            };
            if topic.error_code == 0 {
                self.topics.insert(name, topic);
            } else {
                self.topics.remove(&name);
            }
        }
    }

    pub fn broker(&self, id: i32) -> Option<&BrokerMetadata> {
        self.brokers.iter().find(|b| b.id == id)
    }
}

/// Which offset to look up with ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose timestamp is >= this (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    fn as_timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ts) => ts,
        }
    }
}

/// The answer to a ListOffsets lookup; `offset` is -1 when no record matches a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    pub offset: i64,
    pub timestamp: i64,
}

struct Inner {
    config: ClientConfig,
    metadata: RwLock<Arc<ClusterMetadata>>,
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    refresh: Mutex<()>,
}

/// A handle to a Kafka-protocol cluster. Clones share connections and metadata.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects to the first reachable bootstrap server and loads the broker list.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        if config.bootstrap_servers.is_empty() {
            return Err(ClientError::Config("bootstrap.servers is empty".into()));
        }
        let client = Client {
            inner: Arc::new(Inner {
                config,
                metadata: RwLock::default(),
                connections: Mutex::default(),
                refresh: Mutex::default(),
            }),
        };
        client.refresh_metadata(Some(&[])).await?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A snapshot of the cached metadata.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        match self.inner.metadata.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Sends a Metadata request (`None` = all topics) and merges the answer into the cache.
    pub async fn refresh_metadata(&self, topics: Option<&[&str]>) -> Result<MetadataResponse, ClientError> {
        self.fetch_metadata(topics, false).await
    }

    /// Like [`Client::refresh_metadata`], optionally letting the broker auto-create the topics.
    pub async fn fetch_metadata(
        &self,
        topics: Option<&[&str]>,
        allow_auto_create: bool,
    ) -> Result<MetadataResponse, ClientError> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string((*t).to_owned()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(allow_auto_create);
        let _serialize = self.inner.refresh.lock().await;
        let resp = self.send_any(&req).await?;
        let mut fresh = ClusterMetadata::from_response(&resp);
        {
            let mut guard = match self.inner.metadata.write() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if topics.is_some() {
                // A partial answer refreshes only the named topics.
                let mut old_topics = guard.topics.clone();
                for name in fresh.topics.keys() {
                    old_topics.remove(name);
                }
                for t in resp.topics.iter().filter_map(|t| t.name.as_ref()) {
                    old_topics.remove(t.0.as_str());
                }
                fresh.topics.extend(old_topics);
            }
            *guard = Arc::new(fresh);
        }
        Ok(resp)
    }

    /// Metadata of `topic`, from the cache or (once) from the cluster.
    pub async fn topic(&self, topic: &str) -> Result<TopicMetadata, ClientError> {
        if let Some(t) = self.metadata().topics.get(topic) {
            return Ok(t.clone());
        }
        let resp = self.refresh_metadata(Some(&[topic])).await?;
        for t in &resp.topics {
            if t.name.as_ref().is_some_and(|n| n.0.as_str() == topic) {
                check(t.error_code, || format!("metadata for topic '{topic}'"), None)?;
            }
        }
        self.metadata()
            .topics
            .get(topic)
            .cloned()
            .ok_or_else(|| ClientError::kafka(3, format!("metadata for topic '{topic}'"), None))
    }

    /// The connection to the leader of `topic`/`partition` per the cached metadata.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<(i32, Arc<Connection>), ClientError> {
        let t = self.topic(topic).await?;
        let p = t
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| ClientError::kafka(3, format!("{topic}-{partition}"), None))?;
        if p.leader < 0 {
            return Err(ClientError::kafka(5, format!("{topic}-{partition}"), None));
        }
        Ok((p.leader, self.broker_connection(p.leader).await?))
    }

    /// The connection to broker `id` (opened on first use, reopened if it failed).
    pub async fn broker_connection(&self, id: i32) -> Result<Arc<Connection>, ClientError> {
        let addr = self
            .metadata()
            .broker(id)
            .map(BrokerMetadata::addr)
            .ok_or_else(|| ClientError::NoBrokerAvailable(format!("broker {id} (not in metadata)")))?;
        self.connection(&addr).await
    }

    /// The connection to the controller, or any broker if the cluster reports none.
    pub async fn controller_connection(&self) -> Result<Arc<Connection>, ClientError> {
        let controller = self.metadata().controller_id;
        if controller >= 0 {
            if let Ok(conn) = self.broker_connection(controller).await {
                return Ok(conn);
            }
        }
        self.any_connection().await
    }

    /// A connection to some live broker: a known broker first, then the bootstrap list.
    pub async fn any_connection(&self) -> Result<Arc<Connection>, ClientError> {
        let mut candidates: Vec<String> = self.metadata().brokers.iter().map(BrokerMetadata::addr).collect();
        {
            let conns = self.inner.connections.lock().await;
            if let Some(c) = candidates.iter().filter_map(|a| conns.get(a)).find(|c| c.is_usable()) {
                return Ok(c.clone());
            }
        }
        candidates.extend(self.inner.config.bootstrap_servers.iter().cloned());
        let mut last = None;
        for addr in &candidates {
            match self.connection(addr).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "broker unreachable");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::NoBrokerAvailable(candidates.join(","))))
    }

    async fn connection(&self, addr: &str) -> Result<Arc<Connection>, ClientError> {
        let mut conns = self.inner.connections.lock().await;
        if let Some(c) = conns.get(addr) {
            if c.is_usable() {
                return Ok(c.clone());
            }
        }
        let cfg = &self.inner.config;
        let conn = Arc::new(Connection::connect(addr, &cfg.client_id, cfg.connect_timeout, cfg.request_timeout).await?);
        conns.insert(addr.to_owned(), conn.clone());
        Ok(conn)
    }

    /// Sends `req` to any broker, moving to another one if the connection fails.
    pub async fn send_any<R: Request>(&self, req: &R) -> Result<R::Response, ClientError> {
        let mut budget = RetryBudget::new(&self.inner.config, self.inner.config.request_timeout);
        loop {
            let result = match self.any_connection().await {
                Ok(conn) => conn.send(req).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_retriable() && budget.retry().await => {
                    tracing::debug!(error = %e, "retrying on another broker");
                }
                other => return other,
            }
        }
    }

    /// Looks up one offset per partition with ListOffsets, routed to each partition's leader.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<Vec<(i32, OffsetAndTimestamp)>, ClientError> {
        let mut out = Vec::with_capacity(partitions.len());
        for &partition in partitions {
            let mut budget = RetryBudget::new(&self.inner.config, self.inner.config.request_timeout);
            loop {
                match self.list_offset_once(topic, partition, spec).await {
                    Ok(found) => {
                        out.push((partition, found));
                        break;
                    }
                    Err(e) if e.is_retriable() && budget.retry().await => {
                        tracing::debug!(error = %e, topic, partition, "retrying ListOffsets");
                        self.refresh_metadata(Some(&[topic])).await?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    async fn list_offset_once(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<OffsetAndTimestamp, ClientError> {
        let (_, conn) = self.leader(topic, partition).await?;
        let req =
            ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(spec.as_timestamp())])]);
        let resp = conn.send(&req).await?;
        let p =
            resp.topics.iter().flat_map(|t| t.partitions.iter()).find(|p| p.partition_index == partition).ok_or_else(
                || ClientError::protocol("ListOffsets response", format!("no entry for {topic}-{partition}")),
            )?;
        check(p.error_code, || format!("ListOffsets {topic}-{partition}"), None)?;
        Ok(OffsetAndTimestamp { offset: p.offset, timestamp: p.timestamp })
    }

    /// The negotiated version of `api` on any live connection (for diagnostics and tests).
    pub async fn api_version(&self, api: ApiKey) -> Result<Option<i16>, ClientError> {
        Ok(self.any_connection().await?.version(api))
    }
}
