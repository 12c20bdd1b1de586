//! Per-partition offset checkpoints (`recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint`): one offset in Kafka's versioned text form, replaced
//! atomically.

use std::io;
use std::path::Path;

use crate::fileio;

/// Offset below which every batch is known to be on disk (fsynced).
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
/// First offset still readable after retention / DeleteRecords.
pub(crate) const LOG_START_FILE: &str = "log-start-offset-checkpoint";

/// High watermark last checkpointed by the broker (Kafka's replication-offset-checkpoint).
pub(crate) const HIGH_WATERMARK_FILE: &str = "replication-offset-checkpoint";

const VERSION: &str = "0";

pub(crate) fn write(dir: &Path, name: &str, offset: i64) -> io::Result<()> {
    fileio::write_atomic(&dir.join(name), format!("{VERSION}\n{offset}\n").as_bytes())
}

/// The stored offset; `None` when the file is missing or unreadable (then the caller falls
/// back to the safe choice: recover everything, or start at the first segment).
pub(crate) fn read(dir: &Path, name: &str) -> io::Result<Option<i64>> {
    let path = dir.join(name);
    let Some(text) = fileio::read_optional(&path)? else {
        return Ok(None);
    };
    let mut lines = text.lines();
    let parsed = match (lines.next(), lines.next()) {
        (Some(v), Some(offset)) if v.trim() == VERSION => offset.trim().parse().ok(),
        _ => None,
    };
    if parsed.is_none() {
        tracing::warn!(path = %path.display(), "ignoring unreadable checkpoint file");
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path(), LOG_START_FILE).ok(), Some(None));
        write(dir.path(), LOG_START_FILE, 1234).expect("write");
        assert_eq!(read(dir.path(), LOG_START_FILE).ok(), Some(Some(1234)));
        std::fs::write(dir.path().join(LOG_START_FILE), "garbage").expect("write");
        assert_eq!(read(dir.path(), LOG_START_FILE).ok(), Some(None));
    }
}
