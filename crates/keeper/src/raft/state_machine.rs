//! The Raft state machine: applies committed entries to the [`Replica`] and snapshots the
//! znode tree into sled.
//!
//! The tree itself lives in memory. After a restart it is rebuilt from the last snapshot and
//! openraft re-applies the committed log after it, so nothing durable lives only in memory.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::{io_err, NodeId, TypeConfig};
use crate::replica::Replica;
use crate::tree::{zxid_of, CommandResult, DataTree};

const SNAPSHOT: &[u8] = b"snapshot";

type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// What a snapshot holds: enough to resume applying after `last_applied`.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, openraft::BasicNode>,
    tree: DataTree,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

#[derive(Clone)]
pub struct StateMachine {
    replica: Arc<Replica>,
    db: sled::Db,
    snapshots: sled::Tree,
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, openraft::BasicNode>,
}

impl StateMachine {
    /// Opens the snapshot store and restores the replica from the last snapshot, if any.
    pub fn open(
        db: &sled::Db,
        replica: Arc<Replica>,
    ) -> Result<StateMachine, Box<dyn std::error::Error + Send + Sync>> {
        let snapshots = db.open_tree("snapshots")?;
        let mut sm = StateMachine {
            replica,
            db: db.clone(),
            snapshots,
            last_applied: None,
            last_membership: StoredMembership::default(),
        };
        if let Some(bytes) = sm.snapshots.get(SNAPSHOT)? {
            let stored: StoredSnapshot = bincode::deserialize(&bytes)?;
            let data: SnapshotData = bincode::deserialize(&stored.data)?;
            sm.last_applied = data.last_applied;
            sm.last_membership = data.last_membership;
            sm.replica.install(data.tree);
        }
        Ok(sm)
    }

    fn encode(&self) -> StorageResult<Vec<u8>> {
        // The tree is serialized under its read lock; applies wait for the few ms this takes.
        let tree: DataTree = self.replica.read().clone();
        let data =
            SnapshotData { last_applied: self.last_applied, last_membership: self.last_membership.clone(), tree };
        bincode::serialize(&data).map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, &e))
    }

    async fn store(&self, meta: &SnapshotMeta<NodeId, openraft::BasicNode>, data: &[u8]) -> StorageResult<()> {
        let stored = StoredSnapshot { meta: meta.clone(), data: data.to_vec() };
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let bytes = bincode::serialize(&stored).map_err(|e| io_err(subject.clone(), ErrorVerb::Write, &e))?;
        self.snapshots.insert(SNAPSHOT, bytes).map_err(|e| io_err(subject.clone(), ErrorVerb::Write, &e))?;
        self.db.flush_async().await.map_err(|e| io_err(subject, ErrorVerb::Write, &e))?;
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let data = self.encode()?;
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}", l.leader_id, l.index),
            None => "empty".to_string(),
        };
        let meta =
            SnapshotMeta { last_log_id: self.last_applied, last_membership: self.last_membership.clone(), snapshot_id };
        self.store(&meta, &data).await?;
        tracing::info!(index = ?self.last_applied.map(|l| l.index), bytes = data.len(), "snapshot written");
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, openraft::BasicNode>)> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<CommandResult>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        for entry in entries {
            let zxid = zxid_of(entry.log_id.index, 0);
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {
                    self.replica.advance(zxid);
                    results.push(CommandResult::None);
                }
                EntryPayload::Normal(cmd) => results.push(self.replica.apply(zxid, &cmd)),
                EntryPayload::Membership(m) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    self.replica.advance(zxid);
                    results.push(CommandResult::None);
                }
            }
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let bytes = snapshot.into_inner();
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let data: SnapshotData = bincode::deserialize(&bytes).map_err(|e| io_err(subject, ErrorVerb::Read, &e))?;
        self.store(meta, &bytes).await?;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.replica.install(data.tree);
        tracing::info!(index = ?meta.last_log_id.map(|l| l.index), "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let Some(bytes) =
            self.snapshots.get(SNAPSHOT).map_err(|e| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Read, &e))?
        else {
            return Ok(None);
        };
        let stored: StoredSnapshot =
            bincode::deserialize(&bytes).map_err(|e| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Read, &e))?;
        Ok(Some(Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) }))
    }
}
