//! One keeper's core: the Raft instance, the replica it feeds, and the write path.
//!
//! Write path: a session's writes are submitted in order to one proposer task. On the leader
//! it hands them to openraft (`client_write_ff`, so submission order is log order); on a
//! follower it forwards queued writes in one `Forward` call at a time, which keeps every
//! session's order and batches many sessions' writes into one round trip.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use strom_proto::keeper_raft::raft_peer_client::RaftPeerClient;
use strom_proto::keeper_raft::{Payload, ReadIndexRequest, TouchRequest};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use crate::error::KeeperError;
use crate::raft::network::peer_channel;
use crate::raft::{NodeId, Raft};
use crate::replica::Replica;
use crate::tree::{zxid_of, Command, CommandResult, MAX_BATCH};

/// How long a write may wait for a leader before the client is told `ConnectionLoss`.
pub const LEADER_WAIT: Duration = Duration::from_secs(10);

/// The outcome of a proposal: the zxid it was applied at and its result.
pub type Proposed = Result<(i64, CommandResult), KeeperError>;

/// A forwarded batch's answer, one entry per command.
#[derive(Serialize, Deserialize)]
pub struct ForwardReply(pub Vec<Result<(i64, CommandResult), KeeperError>>);

struct Submission {
    cmd: Command,
    reply: oneshot::Sender<Proposed>,
}

pub struct Node {
    pub id: NodeId,
    pub raft: Raft,
    pub replica: Arc<Replica>,
    /// Raft addresses of all members, by id.
    pub members: BTreeMap<NodeId, String>,
    submit: mpsc::UnboundedSender<Submission>,
    peer_clients: Mutex<HashMap<NodeId, RaftPeerClient<Channel>>>,
}

impl Node {
    pub fn new(id: NodeId, raft: Raft, replica: Arc<Replica>, members: BTreeMap<NodeId, String>) -> Arc<Node> {
        let (tx, rx) = mpsc::unbounded_channel();
        let node = Arc::new(Node { id, raft, replica, members, submit: tx, peer_clients: Mutex::new(HashMap::new()) });
        tokio::spawn(proposer(Arc::downgrade(&node), rx));
        node
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.id)
    }

    /// Submits a write in order; the receiver yields once the leader has applied it.
    pub fn submit(&self, cmd: Command) -> oneshot::Receiver<Proposed> {
        let (reply, rx) = oneshot::channel();
        if let Err(e) = self.submit.send(Submission { cmd, reply }) {
            let _ = e.0.reply.send(Err(KeeperError::ConnectionLoss));
        }
        rx
    }

    /// Proposes and waits until this keeper has applied the result too.
    pub async fn write(&self, cmd: Command) -> Proposed {
        let (zxid, result) = self.submit(cmd).await.map_err(|_| KeeperError::ConnectionLoss)??;
        self.replica.wait_applied(zxid, LEADER_WAIT).await?;
        Ok((zxid, result))
    }

    /// Waits (bounded) until some member is leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, KeeperError> {
        let mut metrics = self.raft.metrics();
        let wait = async move { metrics.wait_for(|m| m.current_leader.is_some()).await.map(|m| m.current_leader) };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(leader)) => leader.ok_or(KeeperError::ConnectionLoss),
            _ => Err(KeeperError::ConnectionLoss),
        }
    }

    pub fn peer(&self, id: NodeId) -> Result<RaftPeerClient<Channel>, KeeperError> {
        let mut clients = self.peer_clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&id) {
            return Ok(c.clone());
        }
        let addr = self.members.get(&id).ok_or(KeeperError::ConnectionLoss)?;
        let channel = peer_channel(addr).map_err(|e| KeeperError::System(e.to_string()))?;
        let client = RaftPeerClient::new(channel).max_decoding_message_size(64 << 20);
        clients.insert(id, client.clone());
        Ok(client)
    }

    /// Hands `cmds` to openraft as one entry (a [`Command::Batch`] when there are several) and
    /// returns a future resolving each command's result. Submission happens before this
    /// returns, so entries follow the order of the calls.
    pub async fn propose_entry(&self, cmds: Vec<Command>) -> impl std::future::Future<Output = Vec<Proposed>> {
        let n = cmds.len();
        let cmd = match <[Command; 1]>::try_from(cmds) {
            Ok([one]) => one,
            Err(many) => Command::Batch(many),
        };
        let submitted = self.raft.client_write_ff(cmd).await;
        async move {
            let rx = match submitted {
                Ok(rx) => rx,
                Err(fatal) => return vec![Err(KeeperError::System(fatal.to_string())); n],
            };
            match rx.await {
                Ok(Ok(resp)) => match resp.data {
                    CommandResult::Batch(results) if n > 1 => {
                        results.into_iter().enumerate().map(|(i, r)| Ok((zxid_of(resp.log_id.index, i), r))).collect()
                    }
                    r => vec![Ok((zxid_of(resp.log_id.index, 0), r))],
                },
                // Not the leader (any more): nothing was written.
                Ok(Err(ClientWriteError::ForwardToLeader(_))) => vec![Err(KeeperError::ConnectionLoss); n],
                Ok(Err(e)) => vec![Err(KeeperError::System(e.to_string())); n],
                Err(_) => vec![Err(KeeperError::ConnectionLoss); n],
            }
        }
    }

    /// The leader's commit index after it confirmed its leadership: a read that waits for it
    /// locally is linearizable (`sync`).
    pub async fn read_index(&self) -> Result<i64, KeeperError> {
        let leader = self.wait_for_leader(LEADER_WAIT).await?;
        if leader == self.id {
            return self.local_read_index().await;
        }
        let mut client = self.peer(leader)?;
        let mut req = tonic::Request::new(ReadIndexRequest {});
        req.set_timeout(LEADER_WAIT);
        let reply = client.read_index(req).await.map_err(|_| KeeperError::ConnectionLoss)?.into_inner();
        if !reply.error.is_empty() {
            return Err(KeeperError::ConnectionLoss);
        }
        Ok(reply.index)
    }

    pub async fn local_read_index(&self) -> Result<i64, KeeperError> {
        match self.raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map_or(0, |l| zxid_of(l.index, 0))),
            Err(RaftError::APIError(_)) => Err(KeeperError::ConnectionLoss),
            Err(e) => Err(KeeperError::System(e.to_string())),
        }
    }

    /// Tells the leader which sessions this follower heard from.
    pub async fn touch_leader(&self, sessions: Vec<i64>) -> Result<(), KeeperError> {
        let Some(leader) = self.leader() else { return Ok(()) };
        let mut client = self.peer(leader)?;
        let mut req = tonic::Request::new(TouchRequest { session_ids: sessions });
        req.set_timeout(Duration::from_secs(2));
        client.touch(req).await.map_err(|_| KeeperError::ConnectionLoss)?;
        Ok(())
    }
}

/// Drains submissions in order: proposes locally when leader, else forwards batches.
async fn proposer(node: std::sync::Weak<Node>, mut rx: mpsc::UnboundedReceiver<Submission>) {
    let mut batch: Vec<Submission> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        let Some(node) = node.upgrade() else { return };
        let (cmds, replies): (Vec<Command>, Vec<oneshot::Sender<Proposed>>) =
            batch.drain(..).map(|s| (s.cmd, s.reply)).unzip();
        let results = match node.wait_for_leader(LEADER_WAIT).await {
            Err(e) => vec![Err(e); cmds.len()],
            Ok(leader) if leader == node.id => {
                // Submit now, await in the background: the next batch is submitted after
                // this one, so log order still follows arrival order.
                let pending = node.propose_entry(cmds).await;
                tokio::spawn(async move {
                    for (res, reply) in pending.await.into_iter().zip(replies) {
                        let _ = reply.send(res);
                    }
                });
                continue;
            }
            Ok(leader) => forward(&node, leader, &cmds).await,
        };
        for (res, reply) in results.into_iter().zip(replies) {
            let _ = reply.send(res);
        }
    }
}

async fn forward(node: &Node, leader: NodeId, cmds: &[Command]) -> Vec<Proposed> {
    let fail = |e: KeeperError| vec![Err(e); cmds.len()];
    let data = match bincode::serialize(cmds) {
        Ok(d) => d,
        Err(e) => return fail(KeeperError::Marshalling(e.to_string())),
    };
    let mut client = match node.peer(leader) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let mut req = tonic::Request::new(Payload { data });
    req.set_timeout(LEADER_WAIT);
    let reply = match client.forward(req).await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            tracing::debug!(leader, %status, "forward to leader failed");
            return fail(KeeperError::ConnectionLoss);
        }
    };
    match bincode::deserialize::<ForwardReply>(&reply.data) {
        Ok(r) if r.0.len() == cmds.len() => r.0,
        Ok(_) => fail(KeeperError::Marshalling("forward reply has the wrong length".into())),
        Err(e) => fail(KeeperError::Marshalling(e.to_string())),
    }
}
