//! The Raft log, vote and commit index in sled.
//!
//! sled's background flush does not make a write durable, so every append, truncate, purge
//! and vote ends with `flush_async()` before openraft is told it is done: an acknowledged
//! write is on disk on a quorum. One flush covers a whole batch of entries.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, Vote};

use super::{io_err, NodeId, TypeConfig};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    logs: sled::Tree,
    meta: sled::Tree,
}

type StorageResult<T> = Result<T, StorageError<NodeId>>;

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl LogStore {
    pub fn open(db: &sled::Db) -> Result<LogStore, sled::Error> {
        Ok(LogStore { db: db.clone(), logs: db.open_tree("raft_log")?, meta: db.open_tree("raft_meta")? })
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
        self.db.size_on_disk().unwrap_or(0)
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
        let mut out = Vec::new();
        for item in self.logs.range(key(start)..) {
            let (k, v) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
            let index = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0xff; 8]));
            if !range.contains(&index) {
                break;
            }
            let entry: Entry<TypeConfig> =
                bincode::deserialize(&v).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
            out.push(entry);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged: Option<LogId<NodeId>> = self.get_meta(LAST_PURGED, ErrorSubject::Store)?;
        let last = match self.logs.last().map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))? {
            Some((_, v)) => {
                let e: Entry<TypeConfig> =
                    bincode::deserialize(&v).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
                Some(e.log_id)
            }
            None => last_purged,
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
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = bincode::serialize(&entry).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, &e))?;
            batch.insert(&key(entry.log_id.index), bytes);
        }
        self.logs.apply_batch(batch).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, &e))?;
        let flushed = self.db.flush_async().await;
        let done = flushed.map(|_| ()).map_err(std::io::Error::other);
        let failed = done.is_err();
        callback.log_io_completed(done);
        if failed {
            return Err(io_err(ErrorSubject::Logs, ErrorVerb::Write, &std::io::Error::other("log flush failed")));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let mut batch = sled::Batch::default();
        for item in self.logs.range(key(log_id.index)..) {
            let (k, _) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, &e))?;
            batch.remove(k);
        }
        self.logs.apply_batch(batch).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, &e))?;
        self.flush(ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        // Record the purge point first: if we crash half way, the state stays consistent.
        self.put_meta(LAST_PURGED, &log_id, ErrorSubject::Store)?;
        self.flush(ErrorSubject::Store).await?;
        let mut batch = sled::Batch::default();
        for item in self.logs.range(..=key(log_id.index)) {
            let (k, _) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, &e))?;
            batch.remove(k);
        }
        self.logs.apply_batch(batch).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, &e))?;
        self.flush(ErrorSubject::Logs).await
    }
}
