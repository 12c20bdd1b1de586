//! Strom's partition log: Kafka's log layer (segments, sparse indexes, recovery, retention,
//! leader epochs, idempotent-producer state). No networking; the broker calls it.
//!
//! Module map:
//! - [`batch`]: zero-copy view and validation of Kafka v2 record batches (headers, CRC),
//!   iteration over concatenated batches, the in-place offset/epoch patch.
//! - `config`: [`LogConfig`], Kafka's topic-level log settings and defaults.
//! - `error`: [`LogError`] and its mapping to Kafka error codes.
//! - `segment`: one `.log` file plus its `.index`/`.timeindex`; positional reads and writes.
//! - `index`: the sparse offset and time indexes: in memory for the active segment, searched
//!   in their files once a segment is sealed.
//! - `log`: [`PartitionLog`], the segments of one partition: append, read, roll, retention,
//!   flush, truncation and crash recovery.
//! - `epoch`: the leader-epoch cache (`leader-epoch-checkpoint`).
//! - `producer`: idempotent-producer sequence tracking (duplicates, gaps, fencing) and its
//!   clean-shutdown snapshot.
//! - `checkpoint`: recovery-point, log-start-offset and high-watermark checkpoint files.
//! - `cleaner`: the log cleaner (compaction of `cleanup.policy=compact` logs): offset map,
//!   record filter, the `.cleaned` → `.swap` segment replacement and its crash recovery.
//! - [`records`]: the records inside a batch: decompression, parsing, re-encoding.
//! - `fileio`: positional I/O and atomic file replacement.
//! - `manager`: [`LogManager`], every partition under the broker's log dirs.

pub mod batch;
mod checkpoint;
mod cleaner;
mod config;
mod epoch;
mod error;
mod fileio;
mod index;
mod log;
mod manager;
mod producer;
pub mod records;
mod segment;

pub use cleaner::{CleanStats, CleanerConfig};
pub use config::LogConfig;
pub use error::LogError;
pub use log::{now_ms, AppendInfo, PartitionLog, ReadInfo};
pub use manager::{validate_topic_name, CleanerHandle, LogManager};
