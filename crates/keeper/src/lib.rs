//! Strom's keeper: a ZooKeeper-like coordination service replicated with Raft.
//!
//! Module map:
//! - [`types`], [`error`], [`path`]: the znode model's public vocabulary — create modes,
//!   stat, multi ops, watch events, ZooKeeper's error kinds and path rules.
//! - [`tree`]: the znode tree and sessions, the deterministic state machine every Raft entry
//!   ([`tree::Command`]) is applied to. The znode write path ends here.
//! - [`watches`]: watch registrations of the sessions connected to one keeper.
//! - [`replica`]: one keeper's in-memory state — tree, watches, connected sessions' streams.
//! - [`raft`]: openraft glue — the write-ahead log and log store, state machine and
//!   snapshots (sled), gRPC network.
//! - [`server`]: a running keeper — write path and forwarding, client sessions, liveness.
//! - [`client`]: the Rust client library brokers and tools use (failover, watches, chroot).
//! - [`config`], [`properties`]: `zookeeper.properties` and Java properties syntax.
//! - [`convert`]: wire ↔ model conversions.

pub mod client;
pub mod config;
pub mod convert;
pub mod error;
pub mod path;
pub mod properties;
pub mod raft;
pub mod replica;
pub mod server;
pub mod tree;
pub mod types;
pub mod watches;

pub use error::KeeperError;
pub use types::{
    AddWatchMode, CreateMode, EventType, KeeperState, Op, OpResult, Stat, WatchedEvent, WatcherType, MAX_DATA_LEN,
};
