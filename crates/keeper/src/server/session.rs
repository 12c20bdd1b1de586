//! The client-facing gRPC service: one `Session` stream per connected client.
//!
//! Requests of a session are answered in the order they arrive. Runs of writes are pipelined
//! (submitted in order, answered as they apply); a read waits until the writes before it
//! have been applied here, and writes after a waiting read wait behind it, so a client
//! always sees its own writes and never sees a later write before an earlier read.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesOrdered, StreamExt};
use futures::Future;
use rand::RngCore;
use strom_proto::keeper as pb;
use strom_proto::keeper::keeper_server::Keeper;
use strom_proto::keeper::{client_message, request, server_message, ClientMessage, ServerMessage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::liveness::{now_ms, Liveness};
use super::node::{Node, Proposed, LEADER_WAIT};
use crate::config::KeeperConfig;
use crate::convert::{create_from_pb, op_from_pb, op_result_to_pb, stat_to_pb};
use crate::error::KeeperError;
use crate::path;
use crate::replica::Outbound;
use crate::tree::{Command, CommandResult};
use crate::types::{AddWatchMode, Op, OpResult, WatcherType};

pub struct ClientService {
    pub node: Arc<Node>,
    pub liveness: Arc<Liveness>,
    pub config: Arc<KeeperConfig>,
    pub per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// Turns true when the keeper shuts down: open sessions are told to go elsewhere.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

/// Releases a connection's slot in the per-IP count when the session task ends.
struct IpSlot {
    ip: Option<IpAddr>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut m = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = m.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&ip);
                }
            }
        }
    }
}

#[tonic::async_trait]
impl Keeper for ClientService {
    type SessionStream = UnboundedReceiverStream<Result<ServerMessage, Status>>;

    async fn session(&self, req: Request<Streaming<ClientMessage>>) -> Result<Response<Self::SessionStream>, Status> {
        let ip = req.remote_addr().map(|a| a.ip());
        if let Some(ip) = ip {
            let mut m = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = m.entry(ip).or_insert(0);
            if self.config.max_client_cnxns > 0 && *n >= self.config.max_client_cnxns {
                return Err(Status::resource_exhausted(format!(
                    "too many connections from {ip} - max is {}",
                    self.config.max_client_cnxns
                )));
            }
            *n += 1;
        }
        let slot = IpSlot { ip, per_ip: self.per_ip.clone() };
        let (tx, rx) = mpsc::unbounded_channel();
        let ctx = Ctx {
            node: self.node.clone(),
            liveness: self.liveness.clone(),
            config: self.config.clone(),
            stop: self.stop.clone(),
        };
        tokio::spawn(async move {
            let _slot = slot;
            run_session(ctx, req.into_inner(), tx).await;
        });
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }

    async fn status(&self, _req: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let node = &self.node;
        let leader = node.leader();
        let role = match leader {
            Some(l) if l == node.id && node.members.len() <= 1 => "standalone",
            Some(l) if l == node.id => "leader",
            Some(_) => "follower",
            None => "looking",
        };
        let tree = node.replica.read();
        Ok(Response::new(pb::StatusResponse {
            server_id: node.id as i64,
            role: role.to_string(),
            leader_id: leader.map_or(-1, |l| l as i64),
            last_zxid: tree.last_zxid(),
            znode_count: tree.node_count() as i64,
            open_sessions: tree.session_count() as i64,
            connections: node.replica.connection_count() as i64,
            members: node.members.keys().map(|k| *k as i64).collect(),
        }))
    }
}

#[derive(Clone)]
struct Ctx {
    node: Arc<Node>,
    liveness: Arc<Liveness>,
    config: Arc<KeeperConfig>,
    stop: tokio::sync::watch::Receiver<bool>,
}

fn msg(m: server_message::Msg) -> Result<ServerMessage, Status> {
    Ok(ServerMessage { msg: Some(m) })
}

fn error_response(xid: i64, zxid: i64, e: &KeeperError) -> pb::Response {
    pb::Response { xid, zxid, err: e.code(), message: e.to_string(), result: None }
}

fn new_session_id(server: u64) -> i64 {
    // ZooKeeper puts the server id in the top byte so ids from different servers never clash.
    let low = rand::rng().next_u64() & 0x00ff_ffff_ffff_ffff;
    (((server & 0x7f) << 56) | low.max(1)) as i64
}

async fn connect(ctx: &Ctx, inbound: &mut Streaming<ClientMessage>) -> Result<(i64, pb::ConnectResponse), Status> {
    let first = tokio::time::timeout(Duration::from_secs(10), inbound.message())
        .await
        .map_err(|_| Status::deadline_exceeded("no ConnectRequest within 10 s"))??;
    let Some(ClientMessage { msg: Some(client_message::Msg::Connect(c)) }) = first else {
        return Err(Status::invalid_argument("the first message of a session must be a ConnectRequest"));
    };
    let replica = &ctx.node.replica;
    if c.session_id == 0 {
        let timeout_ms = ctx.config.negotiate_timeout(c.timeout_ms);
        let id = new_session_id(ctx.node.id);
        let mut password = vec![0u8; 16];
        rand::rng().fill_bytes(&mut password);
        let cmd = Command::CreateSession { session_id: id, timeout_ms, password: password.clone() };
        let (zxid, _) = ctx.node.write(cmd).await.map_err(|e| Status::unavailable(e.to_string()))?;
        let resp = pb::ConnectResponse {
            session_id: id,
            timeout_ms,
            password,
            server_id: ctx.node.id as i64,
            last_zxid: zxid,
        };
        return Ok((id, resp));
    }
    // A resumed session must not see older state than it already saw elsewhere.
    replica
        .wait_applied(c.last_zxid_seen, LEADER_WAIT)
        .await
        .map_err(|_| Status::unavailable("this server is behind the client's last seen zxid"))?;
    let tree = replica.read();
    let Some(info) = tree.session(c.session_id) else {
        return Err(Status::unauthenticated("session expired"));
    };
    if info.password != c.password {
        return Err(Status::unauthenticated("session password mismatch"));
    }
    let resp = pb::ConnectResponse {
        session_id: c.session_id,
        timeout_ms: info.timeout_ms,
        password: c.password.clone(),
        server_id: ctx.node.id as i64,
        last_zxid: tree.last_zxid(),
    };
    Ok((c.session_id, resp))
}

type Pending = Pin<Box<dyn Future<Output = pb::Response> + Send>>;

async fn run_session(ctx: Ctx, mut inbound: Streaming<ClientMessage>, tx: Outbound) {
    let mut stop = ctx.stop.clone();
    let (session, connected) = match connect(&ctx, &mut inbound).await {
        Ok(v) => v,
        Err(status) => {
            let _ = tx.send(Err(status));
            return;
        }
    };
    tracing::debug!(session = format!("{session:#x}"), "session connected");
    ctx.node.replica.register(session, tx.clone());
    ctx.liveness.touch(session);
    let _ = tx.send(msg(server_message::Msg::Connected(connected)));

    let mut inflight: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut backlog: VecDeque<pb::Request> = VecDeque::new();
    let mut closing = false;
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => {
                // The keeper is going away: end the stream so the client fails over now
                // rather than after its session's silence limit.
                let _ = tx.send(Err(Status::unavailable("keeper shutting down")));
                stopping = true;
                break;
            }
            incoming = inbound.message() => {
                let m = match incoming {
                    Ok(Some(m)) => m,
                    Ok(None) | Err(_) => break,
                };
                ctx.liveness.touch(session);
                match m.msg {
                    Some(client_message::Msg::Ping(_)) => {
                        let last_zxid = ctx.node.replica.last_applied();
                        let _ = tx.send(msg(server_message::Msg::Pong(pb::Pong { last_zxid })));
                    }
                    Some(client_message::Msg::Request(req)) => {
                        closing |= matches!(req.op, Some(request::Op::Close(_)));
                        if backlog.is_empty() {
                            if let Some(req) = dispatch(&ctx, session, req, &mut inflight, &tx) {
                                backlog.push_back(req);
                            }
                        } else {
                            backlog.push_back(req);
                        }
                    }
                    Some(client_message::Msg::Connect(_)) | None => {
                        let _ = tx.send(Err(Status::invalid_argument("unexpected message on an open session")));
                        break;
                    }
                }
            }
            Some(resp) = inflight.next(), if !inflight.is_empty() => {
                let _ = tx.send(msg(server_message::Msg::Response(resp)));
                while inflight.is_empty() {
                    let Some(req) = backlog.pop_front() else { break };
                    if let Some(req) = dispatch(&ctx, session, req, &mut inflight, &tx) {
                        backlog.push_front(req);
                        break;
                    }
                }
                if closing && inflight.is_empty() && backlog.is_empty() {
                    break;
                }
            }
        }
    }
    // Answer what was already accepted, so a client that half-closed still gets replies.
    if !stopping {
        while let Some(resp) = inflight.next().await {
            let _ = tx.send(msg(server_message::Msg::Response(resp)));
        }
    }
    ctx.node.replica.unregister(session, &tx);
    tracing::debug!(session = format!("{session:#x}"), "session stream ended");
}

/// Starts a request. Returns it back when it is a read that must wait for in-flight writes.
fn dispatch(
    ctx: &Ctx,
    session: i64,
    req: pb::Request,
    inflight: &mut FuturesOrdered<Pending>,
    tx: &Outbound,
) -> Option<pb::Request> {
    let xid = req.xid;
    let Some(op) = req.op.clone() else {
        let resp = error_response(xid, 0, &KeeperError::BadArguments("request without an operation".into()));
        let _ = tx.send(msg(server_message::Msg::Response(resp)));
        return None;
    };
    use request::Op as R;
    let write = |ops: Vec<Op>, multi: bool| Command::Write { session_id: session, time_ms: now_ms(), ops, multi };
    let cmd = match op {
        R::Create(c) => match create_from_pb(c) {
            Ok(op) => write(vec![op], false),
            Err(e) => return reply_now(tx, error_response(xid, 0, &e)),
        },
        R::Delete(d) => write(vec![Op::Delete { path: d.path, version: d.version }], false),
        R::SetData(s) => write(vec![Op::SetData { path: s.path, data: s.data, version: s.version }], false),
        R::Multi(m) => match m.ops.into_iter().map(op_from_pb).collect::<Result<Vec<_>, _>>() {
            Ok(ops) if ops.is_empty() => {
                // ZooKeeper answers an empty multi with an empty result.
                return reply_now(
                    tx,
                    pb::Response {
                        xid,
                        zxid: ctx.node.replica.last_applied(),
                        err: 0,
                        message: String::new(),
                        result: Some(pb::response::Result::Multi(pb::MultiResult { results: vec![] })),
                    },
                );
            }
            Ok(ops) => write(ops, true),
            Err(e) => return reply_now(tx, error_response(xid, 0, &e)),
        },
        R::Close(_) => Command::CloseSession { session_id: session },
        R::Sync(s) => {
            if let Err(e) = path::validate(&s.path, false) {
                return reply_now(tx, error_response(xid, 0, &e));
            }
            let node = ctx.node.clone();
            inflight.push_back(Box::pin(async move {
                let res = async {
                    let index = node.read_index().await?;
                    node.replica.wait_applied(index, LEADER_WAIT).await?;
                    Ok::<i64, KeeperError>(index)
                }
                .await;
                match res {
                    Ok(zxid) => pb::Response {
                        xid,
                        zxid,
                        err: 0,
                        message: String::new(),
                        result: Some(pb::response::Result::Empty(pb::Empty {})),
                    },
                    Err(e) => error_response(xid, 0, &e),
                }
            }));
            return None;
        }
        R::Exists(_) | R::GetData(_) | R::GetChildren(_) | R::AddWatch(_) | R::RemoveWatches(_) => {
            if !inflight.is_empty() {
                return Some(req);
            }
            let resp = read(ctx, session, xid, op);
            return reply_now(tx, resp);
        }
    };
    if let Command::Write { ops, .. } = &cmd {
        // Refuse oversized data before it costs a trip through Raft.
        for op in ops {
            if let Op::Create { data, .. } | Op::SetData { data, .. } = op {
                if data.len() > crate::types::MAX_DATA_LEN {
                    let e = KeeperError::BadArguments(format!(
                        "data of {} bytes exceeds the {}-byte limit",
                        data.len(),
                        crate::types::MAX_DATA_LEN
                    ));
                    return reply_now(tx, error_response(xid, 0, &e));
                }
            }
        }
    }
    let is_multi = matches!(&cmd, Command::Write { multi: true, .. });
    let rx = ctx.node.submit(cmd);
    let replica = ctx.node.replica.clone();
    inflight.push_back(Box::pin(async move {
        let proposed: Proposed = match rx.await {
            Ok(Ok((zxid, result))) => replica.wait_applied(zxid, LEADER_WAIT).await.map(|_| (zxid, result)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(KeeperError::ConnectionLoss),
        };
        write_response(xid, is_multi, proposed)
    }));
    None
}

fn reply_now(tx: &Outbound, resp: pb::Response) -> Option<pb::Request> {
    let _ = tx.send(msg(server_message::Msg::Response(resp)));
    None
}

fn write_response(xid: i64, multi: bool, proposed: Proposed) -> pb::Response {
    use pb::response::Result as Res;
    let (zxid, result) = match proposed {
        Ok(v) => v,
        Err(e) => return error_response(xid, 0, &e),
    };
    let ok = |result: Res| pb::Response { xid, zxid, err: 0, message: String::new(), result: Some(result) };
    match result {
        CommandResult::Write(Ok(results)) if multi => {
            ok(Res::Multi(pb::MultiResult { results: results.iter().map(op_result_to_pb).collect() }))
        }
        CommandResult::Write(Ok(results)) => match results.into_iter().next() {
            Some(OpResult::Create { path, stat }) => {
                ok(Res::Create(pb::CreateResult { path, stat: Some(stat_to_pb(&stat)) }))
            }
            Some(OpResult::SetData { stat }) => ok(Res::Stat(pb::StatResult { stat: Some(stat_to_pb(&stat)) })),
            _ => ok(Res::Empty(pb::Empty {})),
        },
        CommandResult::Write(Err((failed, e))) if multi => {
            // ZooKeeper's multi failure: ops before the failing one report OK, the failing one
            // its error, the ones after RUNTIME_INCONSISTENCY.
            let n = failed + 1;
            let mut entries = Vec::with_capacity(n);
            for i in 0..n {
                let err = if i < failed { 0 } else { e.code() };
                entries.push(pb::multi_result::Entry { err, result: None });
            }
            let mut resp = error_response(xid, zxid, &e);
            resp.result = Some(Res::Multi(pb::MultiResult { results: entries }));
            resp
        }
        CommandResult::Write(Err((_, e))) => error_response(xid, zxid, &e),
        CommandResult::Session(Ok(())) | CommandResult::None | CommandResult::Batch(_) => ok(Res::Empty(pb::Empty {})),
        CommandResult::Session(Err(e)) => error_response(xid, zxid, &e),
    }
}

/// Answers a read from this keeper's tree, registering its watch under the same read lock.
fn read(ctx: &Ctx, session: i64, xid: i64, op: request::Op) -> pb::Response {
    use pb::response::Result as Res;
    use request::Op as R;
    let replica = &ctx.node.replica;
    let tree = replica.read();
    let zxid = tree.last_zxid();
    let ok = |result: Res| pb::Response { xid, zxid, err: 0, message: String::new(), result: Some(result) };
    let fail = |e: KeeperError| error_response(xid, zxid, &e);
    let watches = || replica.watches.lock().unwrap_or_else(|e| e.into_inner());
    let checked = |p: &str| path::validate(p, false);
    match op {
        R::Exists(e) => {
            if let Err(err) = checked(&e.path) {
                return fail(err);
            }
            if e.watch {
                // An exists watch on a missing node waits for its creation (ZooKeeper).
                watches().add_data_watch(&e.path, session);
            }
            match tree.stat(&e.path) {
                Some(s) => ok(Res::Stat(pb::StatResult { stat: Some(stat_to_pb(&s)) })),
                None => fail(KeeperError::NoNode),
            }
        }
        R::GetData(g) => {
            if let Err(err) = checked(&g.path) {
                return fail(err);
            }
            match tree.get_data(&g.path) {
                Ok((data, stat)) => {
                    if g.watch {
                        watches().add_data_watch(&g.path, session);
                    }
                    ok(Res::Data(pb::DataResult { data, stat: Some(stat_to_pb(&stat)) }))
                }
                Err(e) => fail(e),
            }
        }
        R::GetChildren(g) => {
            if let Err(err) = checked(&g.path) {
                return fail(err);
            }
            match tree.get_children(&g.path) {
                Ok((children, stat)) => {
                    if g.watch {
                        watches().add_child_watch(&g.path, session);
                    }
                    ok(Res::Children(pb::ChildrenResult { children, stat: Some(stat_to_pb(&stat)) }))
                }
                Err(e) => fail(e),
            }
        }
        R::AddWatch(a) => {
            if let Err(err) = checked(&a.path) {
                return fail(err);
            }
            let mode = match a.mode {
                0 => AddWatchMode::Persistent,
                1 => AddWatchMode::PersistentRecursive,
                m => return fail(KeeperError::BadArguments(format!("unknown watch mode {m}"))),
            };
            watches().add_persistent(&a.path, session, mode);
            ok(Res::Empty(pb::Empty {}))
        }
        R::RemoveWatches(r) => {
            let kind = match r.watcher_type {
                1 => WatcherType::Children,
                2 => WatcherType::Data,
                3 => WatcherType::Any,
                t => return fail(KeeperError::BadArguments(format!("unknown watcher type {t}"))),
            };
            match watches().remove(&r.path, session, kind) {
                Ok(()) => ok(Res::Empty(pb::Empty {})),
                Err(e) => fail(e),
            }
        }
        _ => fail(KeeperError::BadArguments("not a read".into())),
    }
}
