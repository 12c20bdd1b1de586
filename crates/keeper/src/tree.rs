//! The znode tree: the keeper's replicated state machine.
//!
//! Every Raft entry is a [`Command`]; [`DataTree::apply`] runs it deterministically on every
//! keeper (time comes inside the command, never from the local clock) and reports which watch
//! triggers it produced.
//!
//! Several clients' writes travel in one entry ([`Command::Batch`]) so one fsync covers them
//! all; each write keeps a zxid of its own: the entry's Raft log index shifted left by
//! [`ZXID_SHIFT`] bits plus the write's position in the batch ([`zxid_of`]). Zxids therefore
//! still order every change and map back to the log index (`zxid >> ZXID_SHIFT`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::KeeperError;
use crate::path;
use crate::types::{CreateMode, EventType, Op, OpResult, Stat, MAX_DATA_LEN};

/// Bits of a zxid that number the writes of one batched entry.
pub const ZXID_SHIFT: u32 = 10;
/// Most writes one entry may carry.
pub const MAX_BATCH: usize = 1 << ZXID_SHIFT;

/// The zxid of the `pos`-th write of the entry at Raft log index `index`.
pub fn zxid_of(index: u64, pos: usize) -> i64 {
    ((index as i64) << ZXID_SHIFT) | (pos as i64 & (MAX_BATCH as i64 - 1))
}

/// A Raft log entry's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    CreateSession {
        session_id: i64,
        timeout_ms: i32,
        #[serde(with = "serde_bytes")]
        password: Vec<u8>,
    },
    CloseSession {
        session_id: i64,
    },
    ExpireSessions {
        session_ids: Vec<i64>,
    },
    /// One op, or a `multi` applied all-or-nothing. `session_id` 0 is the system (container
    /// cleanup); ephemerals need a real session.
    Write {
        session_id: i64,
        time_ms: i64,
        ops: Vec<Op>,
        multi: bool,
    },
    /// Up to [`MAX_BATCH`] commands from many sessions, applied in order as if each were its
    /// own entry (zxid = entry zxid + position).
    Batch(Vec<Command>),
}

/// The result of applying one [`Command`]; it travels back to the proposing server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum CommandResult {
    Session(Result<(), KeeperError>),
    /// On failure: index of the failing op and its error.
    Write(Result<Vec<OpResult>, (usize, KeeperError)>),
    /// One result per command of a [`Command::Batch`].
    Batch(Vec<CommandResult>),
    /// Membership entries and blanks carry no result.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum NodeKind {
    Persistent,
    Ephemeral,
    Container,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Node {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    stat: Stat,
    kind: NodeKind,
    children: BTreeSet<String>,
}

impl Node {
    fn stat(&self) -> Stat {
        let mut s = self.stat;
        s.data_length = self.data.len() as i32;
        s.num_children = self.children.len() as i32;
        s
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    pub timeout_ms: i32,
    #[serde(with = "serde_bytes")]
    pub password: Vec<u8>,
    pub ephemerals: BTreeSet<String>,
}

/// A change that may fire watches: the path and the event it caused there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub path: String,
    pub event: EventType,
}

/// The whole replicated state: znodes and sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataTree {
    nodes: HashMap<String, Node>,
    sessions: BTreeMap<i64, SessionInfo>,
    /// zxid of the last applied entry.
    last_zxid: i64,
}

impl Default for DataTree {
    fn default() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            "/".to_string(),
            Node { data: Vec::new(), stat: Stat::default(), kind: NodeKind::Persistent, children: BTreeSet::new() },
        );
        DataTree { nodes, sessions: BTreeMap::new(), last_zxid: 0 }
    }
}

/// What a failed multi must put back, newest last. Records are sized by what changed, never
/// by a parent's child list, so a create under a node with many children stays O(log n).
enum UndoStep {
    /// A node as it was (None: it did not exist). Only leaves and created nodes are saved whole.
    Node(String, Option<Node>),
    /// A parent's stat, and the child name a create added or a delete removed.
    Parent { path: String, stat: Stat, added: Option<String>, removed: Option<String> },
    /// A node's data and stat before a set.
    Data { path: String, data: Vec<u8>, stat: Stat },
}
type Undo = Vec<UndoStep>;

impl DataTree {
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Marks an entry without a command (membership change, blank) as applied.
    pub fn advance(&mut self, zxid: i64) {
        self.last_zxid = self.last_zxid.max(zxid);
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn sessions(&self) -> impl Iterator<Item = (&i64, &SessionInfo)> {
        self.sessions.iter()
    }

    pub fn session(&self, id: i64) -> Option<&SessionInfo> {
        self.sessions.get(&id)
    }

    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.nodes.get(path).map(Node::stat)
    }

    pub fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat), KeeperError> {
        let n = self.nodes.get(path).ok_or(KeeperError::NoNode)?;
        Ok((n.data.clone(), n.stat()))
    }

    pub fn get_children(&self, path: &str) -> Result<(Vec<String>, Stat), KeeperError> {
        let n = self.nodes.get(path).ok_or(KeeperError::NoNode)?;
        Ok((n.children.iter().cloned().collect(), n.stat()))
    }

    /// Empty containers that once had children: ZooKeeper's container reaper deletes them.
    pub fn empty_containers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.kind == NodeKind::Container && n.children.is_empty() && n.stat.cversion > 0)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Applies one committed entry at `zxid`.
    pub fn apply(&mut self, zxid: i64, cmd: &Command) -> (CommandResult, Vec<Trigger>) {
        self.last_zxid = self.last_zxid.max(zxid);
        let mut triggers = Vec::new();
        let result = match cmd {
            Command::CreateSession { session_id, timeout_ms, password } => {
                if self.sessions.contains_key(session_id) {
                    // A resent or duplicated proposal: the session is already there.
                    CommandResult::Session(Ok(()))
                } else {
                    self.sessions.insert(
                        *session_id,
                        SessionInfo {
                            timeout_ms: *timeout_ms,
                            password: password.clone(),
                            ephemerals: BTreeSet::new(),
                        },
                    );
                    CommandResult::Session(Ok(()))
                }
            }
            Command::CloseSession { session_id } => {
                CommandResult::Session(self.kill_session(zxid, *session_id, &mut triggers))
            }
            Command::ExpireSessions { session_ids } => {
                for id in session_ids {
                    let _ = self.kill_session(zxid, *id, &mut triggers);
                }
                CommandResult::Session(Ok(()))
            }
            Command::Batch(cmds) => {
                let mut results = Vec::with_capacity(cmds.len());
                for (i, c) in cmds.iter().enumerate() {
                    let (r, t) = self.apply(zxid + i as i64, c);
                    results.push(r);
                    triggers.extend(t);
                }
                CommandResult::Batch(results)
            }
            Command::Write { session_id, time_ms, ops, multi } => {
                if *session_id != 0 && !self.sessions.contains_key(session_id) {
                    CommandResult::Write(Err((0, KeeperError::SessionExpired)))
                } else {
                    CommandResult::Write(self.apply_ops(zxid, *session_id, *time_ms, ops, *multi, &mut triggers))
                }
            }
        };
        (result, triggers)
    }

    fn kill_session(&mut self, zxid: i64, id: i64, triggers: &mut Vec<Trigger>) -> Result<(), KeeperError> {
        let info = self.sessions.remove(&id).ok_or(KeeperError::SessionExpired)?;
        // Deepest first, so an ephemeral's removal never trips over an order question.
        let mut paths: Vec<String> = info.ephemerals.into_iter().collect();
        paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in paths {
            if self.nodes.contains_key(&p) {
                let mut undo = Vec::new();
                let _ = self.delete(zxid, &p, -1, &mut undo, triggers);
            }
        }
        Ok(())
    }

    fn apply_ops(
        &mut self,
        zxid: i64,
        session_id: i64,
        time_ms: i64,
        ops: &[Op],
        multi: bool,
        triggers: &mut Vec<Trigger>,
    ) -> Result<Vec<OpResult>, (usize, KeeperError)> {
        let mut undo: Undo = Vec::new();
        let mut local_triggers = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let r = match op {
                Op::Create { path, data, mode } => self
                    .create(zxid, session_id, time_ms, path, data, *mode, &mut undo, &mut local_triggers)
                    .map(|(path, stat)| OpResult::Create { path, stat }),
                Op::Delete { path, version } => {
                    self.delete(zxid, path, *version, &mut undo, &mut local_triggers).map(|_| OpResult::Delete)
                }
                Op::SetData { path, data, version } => self
                    .set_data(zxid, time_ms, path, data, *version, &mut undo, &mut local_triggers)
                    .map(|stat| OpResult::SetData { stat }),
                Op::Check { path, version } => self.check(path, *version).map(|_| OpResult::Check),
            };
            match r {
                Ok(res) => results.push(res),
                Err(e) => {
                    if multi || i > 0 {
                        self.rollback(undo);
                    }
                    return Err((i, e));
                }
            }
        }
        triggers.extend(local_triggers);
        Ok(results)
    }

    fn rollback(&mut self, undo: Undo) {
        for step in undo.into_iter().rev() {
            match step {
                UndoStep::Node(path, image) => {
                    if let Some(cur) = self.nodes.remove(&path) {
                        if cur.kind == NodeKind::Ephemeral {
                            if let Some(s) = self.sessions.get_mut(&cur.stat.ephemeral_owner) {
                                s.ephemerals.remove(&path);
                            }
                        }
                    }
                    if let Some(node) = image {
                        if node.kind == NodeKind::Ephemeral {
                            if let Some(s) = self.sessions.get_mut(&node.stat.ephemeral_owner) {
                                s.ephemerals.insert(path.clone());
                            }
                        }
                        self.nodes.insert(path, node);
                    }
                }
                UndoStep::Parent { path, stat, added, removed } => {
                    if let Some(p) = self.nodes.get_mut(&path) {
                        p.stat = stat;
                        if let Some(a) = added {
                            p.children.remove(&a);
                        }
                        if let Some(r) = removed {
                            p.children.insert(r);
                        }
                    }
                }
                UndoStep::Data { path, data, stat } => {
                    if let Some(n) = self.nodes.get_mut(&path) {
                        n.data = data;
                        n.stat = stat;
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        zxid: i64,
        session_id: i64,
        time_ms: i64,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        undo: &mut Undo,
        triggers: &mut Vec<Trigger>,
    ) -> Result<(String, Stat), KeeperError> {
        path::validate(path, mode.is_sequential())?;
        if data.len() > MAX_DATA_LEN {
            return Err(KeeperError::BadArguments(format!(
                "data of {} bytes exceeds the {MAX_DATA_LEN}-byte limit",
                data.len()
            )));
        }
        if path == "/" {
            return Err(KeeperError::NodeExists);
        }
        let parent_path = path::parent(path).ok_or(KeeperError::NodeExists)?.to_string();
        let parent = self.nodes.get(&parent_path).ok_or(KeeperError::NoNode)?;
        if parent.kind == NodeKind::Ephemeral {
            return Err(KeeperError::NoChildrenForEphemerals);
        }
        let actual = if mode.is_sequential() {
            // ZooKeeper numbers children from the parent's cversion, 10 digits.
            format!("{path}{:010}", parent.stat.cversion)
        } else {
            path.to_string()
        };
        if self.nodes.contains_key(&actual) {
            return Err(KeeperError::NodeExists);
        }
        if mode.is_ephemeral() && session_id == 0 {
            return Err(KeeperError::BadArguments("ephemeral node without a session".into()));
        }
        undo.push(UndoStep::Parent {
            path: parent_path.clone(),
            stat: parent.stat,
            added: Some(path::name(&actual).to_string()),
            removed: None,
        });
        undo.push(UndoStep::Node(actual.clone(), None));
        let kind = match mode {
            CreateMode::Ephemeral | CreateMode::EphemeralSequential => NodeKind::Ephemeral,
            CreateMode::Container => NodeKind::Container,
            _ => NodeKind::Persistent,
        };
        let stat = Stat {
            czxid: zxid,
            mzxid: zxid,
            ctime: time_ms,
            mtime: time_ms,
            pzxid: zxid,
            ephemeral_owner: if kind == NodeKind::Ephemeral { session_id } else { 0 },
            ..Stat::default()
        };
        let node = Node { data: data.to_vec(), stat, kind, children: BTreeSet::new() };
        let stat = node.stat();
        self.nodes.insert(actual.clone(), node);
        if let Some(p) = self.nodes.get_mut(&parent_path) {
            p.children.insert(path::name(&actual).to_string());
            p.stat.cversion += 1;
            p.stat.pzxid = zxid;
        }
        if kind == NodeKind::Ephemeral {
            if let Some(s) = self.sessions.get_mut(&session_id) {
                s.ephemerals.insert(actual.clone());
            }
        }
        triggers.push(Trigger { path: actual.clone(), event: EventType::NodeCreated });
        triggers.push(Trigger { path: parent_path, event: EventType::NodeChildrenChanged });
        Ok((actual, stat))
    }

    fn delete(
        &mut self,
        zxid: i64,
        path: &str,
        version: i32,
        undo: &mut Undo,
        triggers: &mut Vec<Trigger>,
    ) -> Result<(), KeeperError> {
        path::validate(path, false)?;
        if path == "/" {
            return Err(KeeperError::BadArguments("the root cannot be deleted".into()));
        }
        let node = self.nodes.get(path).ok_or(KeeperError::NoNode)?;
        if version != -1 && node.stat.version != version {
            return Err(KeeperError::BadVersion);
        }
        if !node.children.is_empty() {
            return Err(KeeperError::NotEmpty);
        }
        let parent_path = path::parent(path).ok_or(KeeperError::NoNode)?.to_string();
        let parent_stat = self.nodes.get(&parent_path).map(|p| p.stat).unwrap_or_default();
        undo.push(UndoStep::Parent {
            path: parent_path.clone(),
            stat: parent_stat,
            added: None,
            removed: Some(path::name(path).to_string()),
        });
        // A node being deleted has no children, so its image is small.
        undo.push(UndoStep::Node(path.to_string(), Some(node.clone())));
        if let Some(node) = self.nodes.remove(path) {
            if node.kind == NodeKind::Ephemeral {
                if let Some(s) = self.sessions.get_mut(&node.stat.ephemeral_owner) {
                    s.ephemerals.remove(path);
                }
            }
        }
        if let Some(p) = self.nodes.get_mut(&parent_path) {
            p.children.remove(path::name(path));
            p.stat.cversion += 1;
            p.stat.pzxid = zxid;
        }
        triggers.push(Trigger { path: path.to_string(), event: EventType::NodeDeleted });
        triggers.push(Trigger { path: parent_path, event: EventType::NodeChildrenChanged });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn set_data(
        &mut self,
        zxid: i64,
        time_ms: i64,
        path: &str,
        data: &[u8],
        version: i32,
        undo: &mut Undo,
        triggers: &mut Vec<Trigger>,
    ) -> Result<Stat, KeeperError> {
        path::validate(path, false)?;
        if data.len() > MAX_DATA_LEN {
            return Err(KeeperError::BadArguments(format!(
                "data of {} bytes exceeds the {MAX_DATA_LEN}-byte limit",
                data.len()
            )));
        }
        let node = self.nodes.get(path).ok_or(KeeperError::NoNode)?;
        if version != -1 && node.stat.version != version {
            return Err(KeeperError::BadVersion);
        }
        let node = self.nodes.get_mut(path).ok_or(KeeperError::NoNode)?;
        undo.push(UndoStep::Data { path: path.to_string(), data: std::mem::take(&mut node.data), stat: node.stat });
        node.data = data.to_vec();
        node.stat.version += 1;
        node.stat.mzxid = zxid;
        node.stat.mtime = time_ms;
        let stat = node.stat();
        triggers.push(Trigger { path: path.to_string(), event: EventType::NodeDataChanged });
        Ok(stat)
    }

    fn check(&self, path: &str, version: i32) -> Result<(), KeeperError> {
        path::validate(path, false)?;
        let node = self.nodes.get(path).ok_or(KeeperError::NoNode)?;
        if version != -1 && node.stat.version != version {
            return Err(KeeperError::BadVersion);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(t: &mut DataTree, zxid: i64, session: i64, ops: Vec<Op>, multi: bool) -> CommandResult {
        t.apply(zxid, &Command::Write { session_id: session, time_ms: 1000 + zxid, ops, multi }).0
    }

    fn create(path: &str, mode: CreateMode) -> Op {
        Op::Create { path: path.into(), data: b"d".to_vec(), mode }
    }

    #[test]
    fn create_get_set_delete_with_stat() {
        let mut t = DataTree::default();
        let r = write(&mut t, 1, 0, vec![create("/a", CreateMode::Persistent)], false);
        assert!(matches!(r, CommandResult::Write(Ok(_))));
        let (data, stat) = t.get_data("/a").unwrap();
        assert_eq!(data, b"d");
        assert_eq!((stat.czxid, stat.mzxid, stat.version, stat.data_length), (1, 1, 0, 1));
        assert_eq!(t.stat("/").unwrap().cversion, 1);
        assert_eq!(t.stat("/").unwrap().pzxid, 1);
        let r = write(&mut t, 2, 0, vec![Op::SetData { path: "/a".into(), data: b"xy".to_vec(), version: 5 }], false);
        assert_eq!(r, CommandResult::Write(Err((0, KeeperError::BadVersion))));
        let r = write(&mut t, 3, 0, vec![Op::SetData { path: "/a".into(), data: b"xy".to_vec(), version: 0 }], false);
        assert!(matches!(r, CommandResult::Write(Ok(_))));
        let stat = t.stat("/a").unwrap();
        assert_eq!((stat.version, stat.mzxid, stat.czxid, stat.data_length), (1, 3, 1, 2));
        let r = write(&mut t, 4, 0, vec![create("/a", CreateMode::Persistent)], false);
        assert_eq!(r, CommandResult::Write(Err((0, KeeperError::NodeExists))));
        let r = write(&mut t, 5, 0, vec![create("/x/y", CreateMode::Persistent)], false);
        assert_eq!(r, CommandResult::Write(Err((0, KeeperError::NoNode))));
        write(&mut t, 6, 0, vec![create("/a/b", CreateMode::Persistent)], false);
        let r = write(&mut t, 7, 0, vec![Op::Delete { path: "/a".into(), version: -1 }], false);
        assert_eq!(r, CommandResult::Write(Err((0, KeeperError::NotEmpty))));
        write(&mut t, 8, 0, vec![Op::Delete { path: "/a/b".into(), version: 0 }], false);
        write(&mut t, 9, 0, vec![Op::Delete { path: "/a".into(), version: 1 }], false);
        assert!(t.stat("/a").is_none());
    }

    #[test]
    fn sequential_numbering_follows_parent_cversion() {
        let mut t = DataTree::default();
        write(&mut t, 1, 0, vec![create("/q", CreateMode::Persistent)], false);
        let mut names = Vec::new();
        for z in 2..5 {
            if let CommandResult::Write(Ok(r)) =
                write(&mut t, z, 0, vec![create("/q/n-", CreateMode::PersistentSequential)], false)
            {
                if let OpResult::Create { path, .. } = &r[0] {
                    names.push(path.clone());
                }
            }
        }
        assert_eq!(names, vec!["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]);
    }

    #[test]
    fn multi_is_all_or_nothing() {
        let mut t = DataTree::default();
        write(&mut t, 1, 0, vec![create("/m", CreateMode::Persistent)], false);
        let r = write(
            &mut t,
            2,
            0,
            vec![
                create("/m/a", CreateMode::Persistent),
                Op::SetData { path: "/m".into(), data: b"z".to_vec(), version: 0 },
                Op::Check { path: "/m".into(), version: 0 },
            ],
            true,
        );
        assert_eq!(r, CommandResult::Write(Err((2, KeeperError::BadVersion))));
        assert!(t.stat("/m/a").is_none());
        let m = t.stat("/m").unwrap();
        assert_eq!((m.version, m.cversion, m.num_children), (0, 0, 0));
        assert_eq!(t.get_data("/m").unwrap().0, b"d");
        let r = write(
            &mut t,
            3,
            0,
            vec![create("/m/a", CreateMode::Persistent), Op::Check { path: "/m/a".into(), version: 0 }],
            true,
        );
        assert!(matches!(r, CommandResult::Write(Ok(ref v)) if v.len() == 2));
        // A failed multi that deleted and set puts both back, children list included.
        let before = (t.stat("/m").unwrap(), t.stat("/m/a").unwrap());
        let r = write(
            &mut t,
            4,
            0,
            vec![
                Op::Delete { path: "/m/a".into(), version: -1 },
                Op::SetData { path: "/m".into(), data: b"new".to_vec(), version: -1 },
                Op::Check { path: "/nope".into(), version: -1 },
            ],
            true,
        );
        assert_eq!(r, CommandResult::Write(Err((2, KeeperError::NoNode))));
        assert_eq!((t.stat("/m").unwrap(), t.stat("/m/a").unwrap()), before);
        assert_eq!(t.get_children("/m").unwrap().0, vec!["a".to_string()]);
        assert_eq!(t.get_data("/m").unwrap().0, b"d");
    }

    #[test]
    fn ephemerals_belong_to_sessions() {
        let mut t = DataTree::default();
        t.apply(1, &Command::CreateSession { session_id: 7, timeout_ms: 4000, password: vec![] });
        let r = write(&mut t, 2, 7, vec![create("/e", CreateMode::Ephemeral)], false);
        assert!(matches!(r, CommandResult::Write(Ok(_))));
        assert_eq!(t.stat("/e").unwrap().ephemeral_owner, 7);
        let r = write(&mut t, 3, 7, vec![create("/e/c", CreateMode::Persistent)], false);
        assert_eq!(r, CommandResult::Write(Err((0, KeeperError::NoChildrenForEphemerals))));
        let r = write(&mut t, 4, 99, vec![create("/f", CreateMode::Persistent)], false);
        assert_eq!(r, CommandResult::Write(Err((0, KeeperError::SessionExpired))));
        let (_, triggers) = t.apply(5, &Command::ExpireSessions { session_ids: vec![7] });
        assert!(t.stat("/e").is_none());
        assert!(triggers.contains(&Trigger { path: "/e".into(), event: EventType::NodeDeleted }));
        assert_eq!(t.session_count(), 0);
    }

    #[test]
    fn rejects_bad_input() {
        let mut t = DataTree::default();
        let big = vec![0u8; MAX_DATA_LEN + 1];
        let r = write(
            &mut t,
            1,
            0,
            vec![Op::Create { path: "/big".into(), data: big, mode: CreateMode::Persistent }],
            false,
        );
        assert!(matches!(r, CommandResult::Write(Err((0, KeeperError::BadArguments(_))))));
        let r = write(&mut t, 2, 0, vec![create("no-slash", CreateMode::Persistent)], false);
        assert!(matches!(r, CommandResult::Write(Err((0, KeeperError::BadArguments(_))))));
        let r = write(&mut t, 3, 0, vec![Op::Delete { path: "/".into(), version: -1 }], false);
        assert!(matches!(r, CommandResult::Write(Err((0, KeeperError::BadArguments(_))))));
    }

    #[test]
    fn batched_writes_get_their_own_zxids() {
        let mut t = DataTree::default();
        let w = |p: &str| Command::Write {
            session_id: 0,
            time_ms: 1,
            ops: vec![create(p, CreateMode::Persistent)],
            multi: false,
        };
        let base = zxid_of(5, 0);
        let (r, triggers) = t.apply(base, &Command::Batch(vec![w("/a"), w("/a"), w("/b")]));
        let CommandResult::Batch(rs) = r else { panic!("batch result expected") };
        assert!(matches!(rs[0], CommandResult::Write(Ok(_))));
        assert_eq!(rs[1], CommandResult::Write(Err((0, KeeperError::NodeExists))));
        assert_eq!(t.stat("/a").unwrap().czxid, base);
        assert_eq!(t.stat("/b").unwrap().czxid, base + 2);
        assert_eq!(t.last_zxid(), base + 2);
        assert_eq!(triggers.len(), 4);
        assert_eq!(zxid_of(6, 0) >> ZXID_SHIFT, 6);
    }

    #[test]
    fn containers_are_reaped_once_emptied() {
        let mut t = DataTree::default();
        write(&mut t, 1, 0, vec![create("/c", CreateMode::Container)], false);
        assert!(t.empty_containers().is_empty());
        write(&mut t, 2, 0, vec![create("/c/x", CreateMode::Persistent)], false);
        write(&mut t, 3, 0, vec![Op::Delete { path: "/c/x".into(), version: -1 }], false);
        assert_eq!(t.empty_containers(), vec!["/c".to_string()]);
    }
}
