//! strom-client: a small Kafka-protocol client (producer, consumer, admin) used by Strom's
//! tools and tests. Every message is encoded with the `kafka-protocol` crate.
//!
//! Module map:
//! - [`connection`]: one TCP connection — framing, correlation ids, pipelined requests,
//!   ApiVersions negotiation.
//! - [`versions`]: which API versions this client implements; picking the highest shared one.
//! - [`cluster`]: [`Client`] — bootstrap, cached metadata, a connection per broker, leader
//!   routing, ListOffsets lookups.
//! - [`producer`]: [`Producer`] — per-partition v2 batches, linger, acks, compression, retries.
//! - [`consumer`]: [`Consumer`] — Fetch/ListOffsets for assigned partitions (the seam where
//!   consumer-group membership plugs in).
//! - [`admin`]: [`Admin`] — create/delete topics, add partitions, describe configs and topics.
//! - [`group`]: [`GroupAdmin`](group::GroupAdmin) — consumer-group listing, description,
//!   committed offsets and deletion through the group coordinator.
//! - [`group_member`]: [`GroupMember`](group_member::GroupMember) — joining a consumer group
//!   (range assignor), heartbeats, generation-checked commits, leaving.
//! - [`partitioner`]: Kafka's murmur2 key partitioner.
//! - [`config`], [`error`]: client settings and the error type.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod group;
pub mod group_member;
pub mod partitioner;
pub mod producer;
pub mod versions;

pub use admin::{Admin, ConfigEntry, ElectionType, NewTopic, ResourceType};
pub use cluster::{Client, ClusterMetadata, OffsetAndTimestamp, OffsetSpec, PartitionMetadata, TopicMetadata};
pub use config::ClientConfig;
pub use connection::Connection;
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, StartOffset};
pub use error::ClientError;
pub use kafka_protocol::records::Compression;
pub use producer::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
