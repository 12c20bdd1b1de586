//! ZooKeeper's error kinds, with their numeric codes so the wire stays ZooKeeper-exact.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Every failure a keeper operation can report. Codes match ZooKeeper's `KeeperException.Code`.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum KeeperError {
    #[error("system error: {0}")]
    System(String),
    #[error("runtime inconsistency (another op of the multi failed)")]
    RuntimeInconsistency,
    #[error("connection loss")]
    ConnectionLoss,
    #[error("marshalling error: {0}")]
    Marshalling(String),
    #[error("unimplemented: {0}")]
    Unimplemented(String),
    #[error("operation timeout")]
    OperationTimeout,
    #[error("bad arguments: {0}")]
    BadArguments(String),
    #[error("no node")]
    NoNode,
    #[error("bad version")]
    BadVersion,
    #[error("ephemeral nodes may not have children")]
    NoChildrenForEphemerals,
    #[error("node exists")]
    NodeExists,
    #[error("directory not empty")]
    NotEmpty,
    #[error("session expired")]
    SessionExpired,
    #[error("invalid callback")]
    InvalidCallback,
    #[error("session moved")]
    SessionMoved,
    #[error("no watcher")]
    NoWatcher,
    #[error("client closed")]
    Closed,
}

impl KeeperError {
    /// ZooKeeper's numeric error code.
    pub fn code(&self) -> i32 {
        match self {
            KeeperError::System(_) => -1,
            KeeperError::RuntimeInconsistency => -2,
            KeeperError::ConnectionLoss => -4,
            KeeperError::Marshalling(_) => -5,
            KeeperError::Unimplemented(_) => -6,
            KeeperError::OperationTimeout => -7,
            KeeperError::BadArguments(_) => -8,
            KeeperError::NoNode => -101,
            KeeperError::BadVersion => -103,
            KeeperError::NoChildrenForEphemerals => -108,
            KeeperError::NodeExists => -110,
            KeeperError::NotEmpty => -111,
            KeeperError::SessionExpired => -112,
            KeeperError::InvalidCallback => -113,
            KeeperError::SessionMoved => -118,
            KeeperError::NoWatcher => -121,
            KeeperError::Closed => -122,
        }
    }

    /// Rebuilds an error from a code and message received on the wire.
    pub fn from_code(code: i32, message: &str) -> KeeperError {
        match code {
            -2 => KeeperError::RuntimeInconsistency,
            -4 => KeeperError::ConnectionLoss,
            -5 => KeeperError::Marshalling(message.to_string()),
            -6 => KeeperError::Unimplemented(message.to_string()),
            -7 => KeeperError::OperationTimeout,
            -8 => KeeperError::BadArguments(message.to_string()),
            -101 => KeeperError::NoNode,
            -103 => KeeperError::BadVersion,
            -108 => KeeperError::NoChildrenForEphemerals,
            -110 => KeeperError::NodeExists,
            -111 => KeeperError::NotEmpty,
            -112 => KeeperError::SessionExpired,
            -113 => KeeperError::InvalidCallback,
            -118 => KeeperError::SessionMoved,
            -121 => KeeperError::NoWatcher,
            -122 => KeeperError::Closed,
            _ => KeeperError::System(format!("code {code}: {message}")),
        }
    }
}
