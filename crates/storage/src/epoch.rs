//! Leader-epoch cache (Kafka's `leader-epoch-checkpoint`): which offset each leader epoch
//! started at, so a follower can find where its log diverges from a new leader (KIP-101/279).

use std::io;
use std::path::{Path, PathBuf};

use crate::fileio;

/// File name inside the partition directory, as in Kafka.
pub(crate) const FILE_NAME: &str = "leader-epoch-checkpoint";
const VERSION: &str = "0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochEntry {
    pub(crate) epoch: i32,
    pub(crate) start_offset: i64,
}

#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint; `loaded` is false when it was missing or unreadable, in which case
    /// the caller rebuilds the cache from batch headers.
    pub(crate) fn load(dir: &Path) -> io::Result<(Self, bool)> {
        let path = dir.join(FILE_NAME);
        let parsed = fileio::read_optional(&path)?.and_then(|text| parse(&text));
        let loaded = parsed.is_some();
        if !loaded && path.exists() {
            tracing::warn!(path = %path.display(), "unreadable leader epoch checkpoint, rebuilding from the log");
        }
        Ok((Self { path, entries: parsed.unwrap_or_default() }, loaded))
    }

    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`; returns whether anything changed.
    /// Older or equal epochs and offsets below the latest start are ignored, as in Kafka.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some(last) if epoch <= last.epoch || start_offset < last.start_offset => false,
            _ => {
                self.entries.push(EpochEntry { epoch, start_offset });
                true
            }
        }
    }

    /// OffsetForLeaderEpoch: the largest epoch `<= epoch` we know and the offset where the
    /// next epoch starts (or the log end offset for the latest epoch).
    pub(crate) fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if epoch < 0 {
            return None;
        }
        let latest = self.entries.last()?;
        if latest.epoch == epoch {
            return Some((epoch, log_end_offset));
        }
        let higher = self.entries.partition_point(|e| e.epoch <= epoch);
        let higher_entry = self.entries.get(higher)?;
        if higher == 0 {
            // Older than anything we know: the requested epoch ends where our first one starts.
            return Some((epoch, higher_entry.start_offset));
        }
        Some((self.entries[higher - 1].epoch, higher_entry.start_offset))
    }

    /// Drops epochs starting at or after `end_offset` (the log was truncated there).
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let keep = self.entries.partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Forgets epochs that ended before `start_offset`; the epoch in force there now starts
    /// at `start_offset`.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self.entries.partition_point(|e| e.start_offset <= start_offset);
        if below == 0 {
            return false;
        }
        let changed = below > 1 || self.entries[0].start_offset != start_offset;
        self.entries.drain(..below - 1);
        self.entries[0].start_offset = start_offset;
        changed
    }

    pub(crate) fn persist(&self) -> io::Result<()> {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        fileio::write_atomic(&self.path, text.as_bytes())
    }
}

fn parse(text: &str) -> Option<Vec<EpochEntry>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let mut parts = lines.next()?.split_whitespace();
        let epoch = parts.next()?.parse().ok()?;
        let start_offset = parts.next()?.parse().ok()?;
        entries.push(EpochEntry { epoch, start_offset });
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache { path: PathBuf::from("unused"), entries: Vec::new() };
        for &(e, o) in entries {
            assert!(c.assign(e, o));
        }
        c
    }

    #[test]
    fn end_offset_semantics_match_kafka() {
        let c = cache(&[(1, 0), (3, 10), (5, 25)]);
        assert_eq!(c.end_offset_for(5, 40), Some((5, 40)));
        assert_eq!(c.end_offset_for(3, 40), Some((3, 25)));
        assert_eq!(c.end_offset_for(4, 40), Some((3, 25)));
        assert_eq!(c.end_offset_for(2, 40), Some((1, 10)));
        assert_eq!(c.end_offset_for(0, 40), Some((0, 0)));
        assert_eq!(c.end_offset_for(6, 40), None);
        assert_eq!(c.end_offset_for(-1, 40), None);
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 25)]);
        assert!(!c.assign(4, 30), "older epoch ignored");
        c.truncate_from_end(25);
        assert_eq!(c.latest_epoch(), Some(3));
        c.truncate_from_start(12);
        assert_eq!(c.entries, vec![EpochEntry { epoch: 3, start_offset: 12 }]);
    }

    #[test]
    fn persists_in_kafka_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut c, loaded) = LeaderEpochCache::load(dir.path()).expect("load");
        assert!(!loaded);
        c.assign(0, 0);
        c.assign(2, 7);
        c.persist().expect("persist");
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).expect("read");
        assert_eq!(text, "0\n2\n0 0\n2 7\n");
        let (back, loaded) = LeaderEpochCache::load(dir.path()).expect("load");
        assert!(loaded);
        assert_eq!(back.entries, c.entries);
    }
}
