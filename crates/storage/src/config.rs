//! Per-log settings, named and defaulted like Kafka's topic configs.

/// Kafka's `Long.MAX_VALUE` default for the flush settings: never force an fsync.
const NEVER: i64 = i64::MAX;

/// Settings of one partition log. `Default` gives Kafka's broker defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would exceed this (capped at 2 GiB - 1,
    /// because index positions are 32-bit as in Kafka).
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty segment this old.
    pub segment_ms: i64,
    /// `index.interval.bytes`: bytes between sparse offset index entries.
    pub index_interval_bytes: u32,
    /// `retention.ms`: delete segments whose newest record is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 means no limit.
    pub retention_bytes: i64,
    /// `flush.messages`: fsync after this many unflushed records.
    pub flush_interval_messages: u64,
    /// `flush.ms`: fsync when the last flush is older than this.
    pub flush_interval_ms: i64,
    /// `max.message.bytes`: largest record batch accepted.
    pub max_message_bytes: usize,
    /// `cleanup.policy` contains `delete`: retention by time and size applies.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`: the cleaner keeps the latest record per key and
    /// appends of records without a key are refused.
    pub cleanup_compact: bool,
    /// `delete.retention.ms`: how long a tombstone survives after the cleaner first saw it.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean once dirty bytes / cleanable bytes exceed this.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are never compacted.
    pub min_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            flush_interval_messages: NEVER as u64,
            flush_interval_ms: NEVER,
            max_message_bytes: 1024 * 1024 + 12,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
        }
    }
}

impl LogConfig {
    /// Sets both policy flags from a `cleanup.policy` value (`delete`, `compact` or both,
    /// comma-separated); unknown words are ignored (the broker validates them first).
    pub fn set_cleanup_policy(&mut self, policy: &str) {
        let words: Vec<&str> = policy.split(',').map(str::trim).collect();
        self.cleanup_delete = words.contains(&"delete");
        self.cleanup_compact = words.contains(&"compact");
    }

    /// `segment_bytes` clamped so every file position fits the 32-bit index.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }
}
