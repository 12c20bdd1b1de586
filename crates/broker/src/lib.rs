//! Strom's Kafka-protocol broker.
//!
//! Module map (data flows top to bottom):
//! - [`config`]: `server.properties` parsing into [`BrokerConfig`].
//! - [`server`]: [`Broker`] — start, local address, shutdown; owns every task.
//! - [`network`]: TCP listener and per-connection frame reading, pipelining, ordered replies.
//! - [`protocol`]: the implemented API/version table and response framing.
//! - [`handlers`]: one module per Kafka API, plus request dispatch and shared state.
//! - [`replica`]: partitions hosted here — logs, leadership, follower progress, ISR and
//!   the high watermark.
//! - [`replication`]: broker-to-broker gRPC on the Kafka port — the leader's fetch service,
//!   the followers' fetchers, ISR writes, the controller's LeaderAndIsr push.
//! - [`metadata`]: the cluster metadata cache (brokers, topics, partition states).
//! - [`cluster`]: the keeper session — registration, watch-driven cache refresh,
//!   reconnects, topic-admin writes; [`cluster::znodes`] holds the znode layout.
//! - [`controller`]: controller election and partition-state management.
//! - [`topic`]: topic name rules, topic configs and replica assignment.
//! - [`producer_ids`]: producer-id blocks for idempotent producers.
//! - [`group`]: the group coordinator — consumer groups and committed offsets in
//!   `__consumer_offsets`.

pub mod cluster;
pub mod config;
pub mod controller;
pub mod error;
pub mod group;
pub mod handlers;
pub mod metadata;
pub mod network;
pub mod producer_ids;
pub mod protocol;
pub mod replica;
pub mod replication;
pub mod server;
pub mod topic;

pub use config::{BrokerConfig, ConfigError};
pub use error::BrokerError;
pub use server::Broker;
