//! openraft's log storage: entries in the keeper's own write-ahead log ([`super::wal`]),
//! the vote, the commit index and the purge point in sled.
//!
//! `append` returns as soon as the entries are in the page cache; openraft hears they are
//! flushed from the WAL's syncer once they are on disk, so an acknowledged write is on disk on
//! a quorum. `save_vote`, `truncate` and `purge` are durable before they return.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, Vote};

use super::wal::{Wal, WalError};
use super::{io_err, NodeId, TypeConfig};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    meta: sled::Tree,
    wal: Wal,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Sled(#[from] sled::Error),
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("stored raft metadata: {0}")]
    Meta(#[from] bincode::Error),
}

type StorageResult<T> = Result<T, StorageError<NodeId>>;

fn wal_err(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: WalError) -> StorageError<NodeId> {
    io_err(subject, verb, &e)
}

impl LogStore {
    /// Opens the log in `wal_dir` and the metadata in `db`. A data directory from before the
    /// WAL kept its entries in sled's `raft_log` tree; they move into the WAL once.
    pub fn open(db: &sled::Db, wal_dir: &Path) -> Result<LogStore, OpenError> {
        let meta = db.open_tree("raft_meta")?;
        let purged: Option<LogId<NodeId>> = match meta.get(LAST_PURGED)? {
            Some(v) => bincode::deserialize(&v)?,
            None => None,
        };
        let wal = Wal::open(wal_dir, purged.map(|l| l.index))?;
        let legacy = db.open_tree("raft_log")?;
        if !legacy.is_empty() {
            // A non-empty WAL means an earlier start moved the entries and stopped before
            // clearing the tree.
            let (first, next) = wal.bounds();
            let mut records = Vec::new();
            for item in legacy.iter().filter(|_| first == next) {
                let (k, v) = item?;
                let index = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
                if purged.is_none_or(|p| index > p.index) {
                    records.push((index, v.to_vec()));
                }
            }
            let (tx, rx) = std::sync::mpsc::channel();
            wal.append(&records, Box::new(move |r| drop(tx.send(r))))?;
            rx.recv()
                .map_err(|_| WalError::SyncerGone)?
                .map_err(|e| WalError::Io { path: wal_dir.display().to_string(), source: e })?;
            tracing::info!(entries = records.len(), "moved the raft log from sled into the write-ahead log");
            legacy.clear()?;
            db.flush()?;
        }
        Ok(LogStore { db: db.clone(), meta, wal })
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        k: &[u8],
        subject: ErrorSubject<NodeId>,
    ) -> StorageResult<Option<T>> {
        match self.meta.get(k).map_err(|e| io_err(subject.clone(), ErrorVerb::Read, &e))? {
            None => Ok(None),
            Some(v) => bincode::deserialize(&v).map(Some).map_err(|e| io_err(subject, ErrorVerb::Read, &e)),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, k: &[u8], v: &T, subject: ErrorSubject<NodeId>) -> StorageResult<()> {
        let bytes = bincode::serialize(v).map_err(|e| io_err(subject.clone(), ErrorVerb::Write, &e))?;
        self.meta.insert(k, bytes).map_err(|e| io_err(subject, ErrorVerb::Write, &e))?;
        Ok(())
    }

    async fn flush(&self, subject: ErrorSubject<NodeId>) -> StorageResult<()> {
        self.db.flush_async().await.map_err(|e| io_err(subject, ErrorVerb::Write, &e))?;
        Ok(())
    }

    /// Bytes the log and metadata occupy on disk (for status and tests).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0) + self.wal.size_on_disk()
    }

    fn decode(payload: &[u8]) -> StorageResult<Entry<TypeConfig>> {
        bincode::deserialize(payload).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => *x + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(x) => *x + 1,
            Bound::Excluded(x) => *x,
            Bound::Unbounded => u64::MAX,
        };
        let records = self.wal.read(start, end).map_err(|e| wal_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        records.iter().map(|(_, payload)| Self::decode(payload)).collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged: Option<LogId<NodeId>> = self.get_meta(LAST_PURGED, ErrorSubject::Store)?;
        let (first, next) = self.wal.bounds();
        let last = if next > first {
            let records = self.wal.read(next - 1, next).map_err(|e| wal_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            match records.first() {
                Some((_, payload)) => Some(Self::decode(payload)?.log_id),
                None => last_purged,
            }
        } else {
            last_purged
        };
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        self.put_meta(VOTE, vote, ErrorSubject::Vote)?;
        self.flush(ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        self.get_meta(VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        // Not flushed on purpose: a lost commit index is only re-learned from the leader.
        self.put_meta(COMMITTED, &committed, ErrorSubject::Store)
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>(COMMITTED, ErrorSubject::Store)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut records = Vec::new();
        for entry in entries {
            let bytes = bincode::serialize(&entry).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, &e))?;
            records.push((entry.log_id.index, bytes));
        }
        let done = Box::new(move |r: Result<(), std::io::Error>| callback.log_io_completed(r));
        self.wal.append(&records, done).map_err(|e| wal_err(ErrorSubject::Logs, ErrorVerb::Write, e))
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        self.wal.truncate(log_id.index).map_err(|e| wal_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        // Record the purge point first: after a crash half way, reopening drops the rest.
        self.put_meta(LAST_PURGED, &log_id, ErrorSubject::Store)?;
        self.flush(ErrorSubject::Store).await?;
        self.wal.purge(log_id.index).map_err(|e| wal_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Blank }
    }

    #[tokio::test]
    async fn a_raft_log_kept_in_sled_moves_into_the_wal_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path().join("db")).open().expect("sled");
        let legacy = db.open_tree("raft_log").expect("tree");
        for i in 1..=3u64 {
            legacy.insert(i.to_be_bytes(), bincode::serialize(&entry(i)).expect("encode")).expect("insert");
        }
        db.flush().expect("flush");
        let wal_dir = dir.path().join("wal");
        let mut store = LogStore::open(&db, &wal_dir).expect("open");
        assert!(legacy.is_empty(), "moved out of sled");
        let got = store.try_get_log_entries(1..10).await.expect("read");
        assert_eq!(got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![1, 2, 3]);
        drop(store);
        let mut store = LogStore::open(&db, &wal_dir).expect("reopen");
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id.map(|l| l.index), Some(3));
    }
}
