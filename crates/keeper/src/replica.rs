//! The state one keeper holds in memory: the applied znode tree, the watches of the sessions
//! connected here, and the outbound streams of those sessions.
//!
//! Applying an entry, firing its watches and queueing the events on the sessions' streams
//! happen under the tree's write lock, and reads register watches under its read lock, so a
//! watch is never missed between a read and a change, and a client's stream carries a watch
//! event before any response that reflects the change.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use strom_proto::keeper::{server_message, ServerMessage, WatchEvent};
use tokio::sync::{mpsc, watch};
use tonic::Status;

use crate::error::KeeperError;
use crate::tree::{Command, CommandResult, DataTree};
use crate::watches::WatchManager;

/// A connected session's outbound stream (responses, events, or a final error status).
pub type Outbound = mpsc::UnboundedSender<Result<ServerMessage, Status>>;

pub struct Replica {
    tree: RwLock<DataTree>,
    pub watches: Mutex<WatchManager>,
    connections: Mutex<HashMap<i64, Outbound>>,
    applied: watch::Sender<i64>,
}

impl Default for Replica {
    fn default() -> Self {
        Replica {
            tree: RwLock::new(DataTree::default()),
            watches: Mutex::new(WatchManager::default()),
            connections: Mutex::new(HashMap::new()),
            applied: watch::channel(0).0,
        }
    }
}

/// Poisoning only follows a panic elsewhere; the data itself is still consistent because
/// every mutation completes under the lock, so recover the guard instead of propagating.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Replica {
    pub fn read(&self) -> RwLockReadGuard<'_, DataTree> {
        self.tree.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn last_applied(&self) -> i64 {
        *self.applied.borrow()
    }

    pub fn register(&self, session: i64, out: Outbound) {
        lock(&self.connections).insert(session, out);
    }

    /// Drops a connection's registration unless another connection took the session over.
    pub fn unregister(&self, session: i64, out: &Outbound) {
        let mut conns = lock(&self.connections);
        if conns.get(&session).is_some_and(|o| o.same_channel(out)) {
            conns.remove(&session);
        }
    }

    pub fn connection_count(&self) -> usize {
        lock(&self.connections).len()
    }

    /// Applies one committed entry's command (each write of a batch at its own zxid) and
    /// delivers the watch events it fires.
    pub fn apply(&self, zxid: i64, cmd: &Command) -> CommandResult {
        let mut tree = self.tree.write().unwrap_or_else(|e| e.into_inner());
        let (result, last) = match cmd {
            Command::Batch(cmds) => {
                let mut results = Vec::with_capacity(cmds.len());
                for (i, c) in cmds.iter().enumerate() {
                    results.push(self.apply_one(&mut tree, zxid + i as i64, c));
                }
                (CommandResult::Batch(results), zxid + cmds.len().max(1) as i64 - 1)
            }
            _ => (self.apply_one(&mut tree, zxid, cmd), zxid),
        };
        drop(tree);
        self.applied.send_replace(last);
        result
    }

    fn apply_one(&self, tree: &mut DataTree, zxid: i64, cmd: &Command) -> CommandResult {
        let (result, triggers) = tree.apply(zxid, cmd);
        let killed: Vec<i64> = match cmd {
            Command::CloseSession { session_id } => vec![*session_id],
            Command::ExpireSessions { session_ids } => session_ids.clone(),
            _ => Vec::new(),
        };
        if triggers.is_empty() && killed.is_empty() {
            return result;
        }
        let fired = lock(&self.watches).fire(&triggers);
        let mut conns = lock(&self.connections);
        for (session, event, path) in fired {
            if let Some(out) = conns.get(&session) {
                let msg = ServerMessage {
                    msg: Some(server_message::Msg::Event(WatchEvent { event_type: event.code(), path, zxid })),
                };
                let _ = out.send(Ok(msg));
            }
        }
        let expired = matches!(cmd, Command::ExpireSessions { .. });
        let mut watches = lock(&self.watches);
        for id in killed {
            watches.remove_session(id);
            if let Some(out) = conns.remove(&id) {
                if expired {
                    let _ = out.send(Err(Status::unauthenticated("session expired")));
                }
            }
        }
        result
    }

    /// Marks an entry that carries no command as applied.
    pub fn advance(&self, zxid: i64) {
        self.tree.write().unwrap_or_else(|e| e.into_inner()).advance(zxid);
        self.applied.send_replace(zxid);
    }

    /// Replaces the whole tree (snapshot install or recovery).
    pub fn install(&self, tree: DataTree) {
        let zxid = tree.last_zxid();
        *self.tree.write().unwrap_or_else(|e| e.into_inner()) = tree;
        self.applied.send_replace(zxid);
    }

    pub fn serialize_tree(&self) -> Result<Vec<u8>, bincode::Error> {
        bincode::serialize(&*self.read())
    }

    /// Waits until this keeper has applied `zxid`, so reads after it reflect it.
    pub async fn wait_applied(&self, zxid: i64, timeout: Duration) -> Result<(), KeeperError> {
        let mut rx = self.applied.subscribe();
        let wait = async move { rx.wait_for(|applied| *applied >= zxid).await.map(|_| ()) };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(KeeperError::ConnectionLoss),
            Err(_) => Err(KeeperError::OperationTimeout),
        }
    }
}
