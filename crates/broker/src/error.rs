//! The broker's error type: what can stop it from starting or make it shut down.

use std::path::PathBuf;

use thiserror::Error;

/// Why the broker could not start or had to stop.
#[derive(Debug, Error)]
pub enum BrokerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot bind listener {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open log dirs {dirs:?}: {source}")]
    Storage {
        dirs: Vec<PathBuf>,
        #[source]
        source: strom_storage::LogError,
    },
    #[error("keeper at {connect}: {message}")]
    Keeper { connect: String, message: String },
    #[error("broker.id {0} is already registered by another live broker")]
    DuplicateBrokerId(i32),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
