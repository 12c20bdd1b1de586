//! openraft glue: the type configuration, the log store (entries in our own [`wal`], vote and
//! purge point in sled), the state machine that feeds the [`Replica`](crate::replica::Replica)
//! and snapshots it into sled, and the gRPC network to the other keepers.
//!
//! `StorageError` is openraft's type, returned by value through its traits, so its size is
//! not ours to shrink.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod wal;

use std::io::Cursor;

use crate::tree::{Command, CommandResult};

openraft::declare_raft_types!(
    /// Strom keeper's Raft types: commands are znode writes and session changes.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;

/// Maps any storage failure into openraft's error with context.
pub(crate) fn io_err<E: std::error::Error + 'static>(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: &E,
) -> openraft::StorageError<NodeId> {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(e)).into()
}
