//! The keeper client library: one session over a connect string `host:port,host:port[/chroot]`.
//!
//! A background task owns the connection. It keeps the session alive with pings, fails over
//! to another server when its server goes silent (resuming the session with the last zxid it
//! saw, so reads never go backwards), re-registers watches after a failover (firing at once
//! the ones whose node changed meanwhile), and reports session state changes as events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_proto::keeper as pb;
use strom_proto::keeper::keeper_client::KeeperClient as Grpc;
use strom_proto::keeper::{client_message, request, server_message, ClientMessage};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use crate::convert::{op_to_pb, stat_from_pb};
use crate::error::KeeperError;
use crate::path;
use crate::types::{AddWatchMode, CreateMode, EventType, KeeperState, Op, OpResult, Stat, WatchedEvent, WatcherType};

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub servers: Vec<String>,
    pub chroot: String,
    pub session_timeout: Duration,
}

impl ClientConfig {
    /// Parses `host:port[,host:port...][/chroot]`.
    pub fn parse(connect: &str, session_timeout: Duration) -> Result<ClientConfig, KeeperError> {
        let (hosts, chroot) = match connect.find('/') {
            Some(i) => (&connect[..i], &connect[i..]),
            None => (connect, ""),
        };
        let servers: Vec<String> =
            hosts.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        if servers.is_empty() {
            return Err(KeeperError::BadArguments(format!("no servers in connect string \"{connect}\"")));
        }
        for s in &servers {
            if s.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
                return Err(KeeperError::BadArguments(format!("\"{s}\" in the connect string is not host:port")));
            }
        }
        let chroot = chroot.trim_end_matches('/').to_string();
        if !chroot.is_empty() {
            path::validate(&chroot, false)?;
        }
        Ok(ClientConfig { servers, chroot, session_timeout })
    }
}

enum Purpose {
    Caller(oneshot::Sender<Result<pb::Response, KeeperError>>),
    /// A watch re-registered after failover, with what the client had seen at the time.
    Rewatch {
        kind: WatchKind,
        path: String,
        seen: i64,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WatchKind {
    Data,
    Child,
    Persistent(AddWatchMode),
}

struct Call {
    op: request::Op,
    purpose: Purpose,
}

struct Inner {
    calls: mpsc::UnboundedSender<Call>,
    events: broadcast::Sender<WatchedEvent>,
    state: watch::Receiver<KeeperState>,
    session_id: Arc<AtomicI64>,
    chroot: String,
    op_timeout: Duration,
}

/// A keeper session. Cheap to clone; all clones share the session.
#[derive(Clone)]
pub struct KeeperClient {
    inner: Arc<Inner>,
}

impl KeeperClient {
    /// Connects and establishes a session, waiting up to the session timeout for a server.
    pub async fn connect(connect: &str, session_timeout: Duration) -> Result<KeeperClient, KeeperError> {
        Self::connect_with(ClientConfig::parse(connect, session_timeout)?).await
    }

    pub async fn connect_with(config: ClientConfig) -> Result<KeeperClient, KeeperError> {
        let (calls_tx, calls_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(4096);
        let (state_tx, mut state_rx) = watch::channel(KeeperState::Disconnected);
        let session_id = Arc::new(AtomicI64::new(0));
        let chroot = config.chroot.clone();
        let op_timeout = config.session_timeout.max(Duration::from_secs(2));
        let conn = Connection {
            config,
            session_id: session_id.clone(),
            password: Vec::new(),
            timeout: Duration::ZERO,
            last_zxid: 0,
            events: events.clone(),
            state: state_tx,
            watches: HashMap::new(),
            pending: HashMap::new(),
            next_xid: 1,
        };
        tokio::spawn(conn.run(calls_rx));
        let wait = state_rx.wait_for(|s| *s != KeeperState::Disconnected);
        let state = match tokio::time::timeout(op_timeout, wait).await {
            Ok(Ok(s)) => *s,
            _ => KeeperState::Disconnected,
        };
        if state != KeeperState::SyncConnected {
            return Err(KeeperError::ConnectionLoss);
        }
        Ok(KeeperClient {
            inner: Arc::new(Inner { calls: calls_tx, events, state: state_rx, session_id, chroot, op_timeout }),
        })
    }

    pub fn session_id(&self) -> i64 {
        self.inner.session_id.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> KeeperState {
        *self.inner.state.borrow()
    }

    /// Watch and session-state events; every receiver sees every event from subscription on.
    pub fn events(&self) -> broadcast::Receiver<WatchedEvent> {
        self.inner.events.subscribe()
    }

    fn full(&self, p: &str) -> String {
        if self.inner.chroot.is_empty() {
            p.to_string()
        } else if p == "/" {
            self.inner.chroot.clone()
        } else {
            format!("{}{}", self.inner.chroot, p)
        }
    }

    fn strip(&self, p: String) -> String {
        strip_chroot(&self.inner.chroot, p)
    }

    async fn call(&self, op: request::Op) -> Result<pb::Response, KeeperError> {
        match self.state() {
            KeeperState::Expired => return Err(KeeperError::SessionExpired),
            KeeperState::Closed => return Err(KeeperError::Closed),
            _ => {}
        }
        let (tx, rx) = oneshot::channel();
        self.inner.calls.send(Call { op, purpose: Purpose::Caller(tx) }).map_err(|_| KeeperError::ConnectionLoss)?;
        let resp = match tokio::time::timeout(self.inner.op_timeout, rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => {
                return Err(if self.state() == KeeperState::Expired {
                    KeeperError::SessionExpired
                } else {
                    KeeperError::ConnectionLoss
                })
            }
            Err(_) => return Err(KeeperError::OperationTimeout),
        };
        if resp.err != 0 && !matches!(resp.result, Some(pb::response::Result::Multi(_))) {
            return Err(KeeperError::from_code(resp.err, &resp.message));
        }
        Ok(resp)
    }

    pub async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String, KeeperError> {
        Ok(self.create_with_stat(path, data, mode).await?.0)
    }

    pub async fn create_with_stat(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<(String, Stat), KeeperError> {
        path::validate(path, mode.is_sequential())?;
        let op = request::Op::Create(pb::Create { path: self.full(path), data: data.to_vec(), mode: mode.to_proto() });
        match self.call(op).await?.result {
            Some(pb::response::Result::Create(c)) => Ok((self.strip(c.path), stat_from_pb(c.stat.as_ref()))),
            _ => Err(KeeperError::Marshalling("create answered without a path".into())),
        }
    }

    /// Creates `path` and any missing parents (persistent), like `mkdir -p`. An existing
    /// `path` is an error (`NodeExists`); existing parents are not.
    pub async fn create_all(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String, KeeperError> {
        path::validate(path, mode.is_sequential())?;
        let mut prefix = String::new();
        let parent = path::parent(path).unwrap_or("/");
        for seg in parent.split('/').filter(|s| !s.is_empty()) {
            prefix.push('/');
            prefix.push_str(seg);
            match self.create(&prefix, &[], CreateMode::Persistent).await {
                Ok(_) | Err(KeeperError::NodeExists) => {}
                Err(e) => return Err(e),
            }
        }
        self.create(path, data, mode).await
    }

    pub async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), KeeperError> {
        path::validate(path, false)?;
        self.call(request::Op::Delete(pb::Delete { path: self.full(path), version: version.unwrap_or(-1) })).await?;
        Ok(())
    }

    /// Deletes `path` and everything beneath it (zkCli's `deleteall`).
    pub async fn delete_all(&self, path: &str) -> Result<(), KeeperError> {
        let mut order = vec![path.to_string()];
        let mut i = 0;
        while i < order.len() {
            match self.get_children(&order[i], false).await {
                Ok(children) => {
                    let base = order[i].clone();
                    order.extend(children.into_iter().map(|c| path::join(&base, &c)));
                }
                Err(KeeperError::NoNode) => {}
                Err(e) => return Err(e),
            }
            i += 1;
        }
        for p in order.iter().rev() {
            match self.delete(p, None).await {
                Ok(()) | Err(KeeperError::NoNode) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub async fn exists(&self, path: &str, watch: bool) -> Result<Option<Stat>, KeeperError> {
        path::validate(path, false)?;
        match self.call(request::Op::Exists(pb::Exists { path: self.full(path), watch })).await {
            Ok(resp) => match resp.result {
                Some(pb::response::Result::Stat(s)) => Ok(Some(stat_from_pb(s.stat.as_ref()))),
                _ => Err(KeeperError::Marshalling("exists answered without a stat".into())),
            },
            Err(KeeperError::NoNode) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn get_data(&self, path: &str, watch: bool) -> Result<(Vec<u8>, Stat), KeeperError> {
        path::validate(path, false)?;
        match self.call(request::Op::GetData(pb::GetData { path: self.full(path), watch })).await?.result {
            Some(pb::response::Result::Data(d)) => Ok((d.data, stat_from_pb(d.stat.as_ref()))),
            _ => Err(KeeperError::Marshalling("getData answered without data".into())),
        }
    }

    pub async fn set_data(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat, KeeperError> {
        path::validate(path, false)?;
        let op = request::Op::SetData(pb::SetData {
            path: self.full(path),
            data: data.to_vec(),
            version: version.unwrap_or(-1),
        });
        match self.call(op).await?.result {
            Some(pb::response::Result::Stat(s)) => Ok(stat_from_pb(s.stat.as_ref())),
            _ => Err(KeeperError::Marshalling("setData answered without a stat".into())),
        }
    }

    /// Children names, sorted.
    pub async fn get_children(&self, path: &str, watch: bool) -> Result<Vec<String>, KeeperError> {
        Ok(self.get_children_with_stat(path, watch).await?.0)
    }

    pub async fn get_children_with_stat(&self, path: &str, watch: bool) -> Result<(Vec<String>, Stat), KeeperError> {
        path::validate(path, false)?;
        match self.call(request::Op::GetChildren(pb::GetChildren { path: self.full(path), watch })).await?.result {
            Some(pb::response::Result::Children(c)) => Ok((c.children, stat_from_pb(c.stat.as_ref()))),
            _ => Err(KeeperError::Marshalling("getChildren answered without children".into())),
        }
    }

    /// Applies all ops atomically. On failure the error is the failing op's.
    pub async fn multi(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, KeeperError> {
        let wire: Vec<pb::MultiOp> = ops
            .iter()
            .map(|op| {
                let mut op = op.clone();
                match &mut op {
                    Op::Create { path, .. }
                    | Op::Delete { path, .. }
                    | Op::SetData { path, .. }
                    | Op::Check { path, .. } => *path = self.full(path),
                }
                op_to_pb(&op)
            })
            .collect();
        let resp = self.call(request::Op::Multi(pb::Multi { ops: wire })).await?;
        if resp.err != 0 {
            return Err(KeeperError::from_code(resp.err, &resp.message));
        }
        let Some(pb::response::Result::Multi(m)) = resp.result else {
            return Err(KeeperError::Marshalling("multi answered without results".into()));
        };
        use pb::multi_result::entry::Result as R;
        Ok(m.results
            .into_iter()
            .zip(ops.iter())
            .map(|(e, op)| match (e.result, op) {
                (Some(R::Create(c)), _) => {
                    OpResult::Create { path: self.strip(c.path), stat: stat_from_pb(c.stat.as_ref()) }
                }
                (Some(R::Stat(s)), _) => OpResult::SetData { stat: stat_from_pb(s.stat.as_ref()) },
                (_, Op::Delete { .. }) => OpResult::Delete,
                _ => OpResult::Check,
            })
            .collect())
    }

    /// Makes the next read from this session linearizable.
    pub async fn sync(&self, path: &str) -> Result<(), KeeperError> {
        path::validate(path, false)?;
        self.call(request::Op::Sync(pb::Sync { path: self.full(path) })).await?;
        Ok(())
    }

    pub async fn add_watch(&self, path: &str, mode: AddWatchMode) -> Result<(), KeeperError> {
        path::validate(path, false)?;
        let m = match mode {
            AddWatchMode::Persistent => 0,
            AddWatchMode::PersistentRecursive => 1,
        };
        self.call(request::Op::AddWatch(pb::AddWatch { path: self.full(path), mode: m })).await?;
        Ok(())
    }

    pub async fn remove_watches(&self, path: &str, kind: WatcherType) -> Result<(), KeeperError> {
        path::validate(path, false)?;
        let t = match kind {
            WatcherType::Children => 1,
            WatcherType::Data => 2,
            WatcherType::Any => 3,
        };
        self.call(request::Op::RemoveWatches(pb::RemoveWatches { path: self.full(path), watcher_type: t })).await?;
        Ok(())
    }

    /// Closes the session: its ephemerals are deleted at once.
    pub async fn close(&self) {
        if self.state() == KeeperState::SyncConnected {
            let _ = self.call(request::Op::Close(pb::CloseSession {})).await;
        }
    }
}

fn strip_chroot(chroot: &str, p: String) -> String {
    if chroot.is_empty() {
        return p;
    }
    match p.strip_prefix(chroot) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => p,
    }
}

/// The connection task's state.
struct Connection {
    config: ClientConfig,
    session_id: Arc<AtomicI64>,
    password: Vec<u8>,
    timeout: Duration,
    last_zxid: i64,
    events: broadcast::Sender<WatchedEvent>,
    state: watch::Sender<KeeperState>,
    /// Watches to re-register after failover: (kind, full path) → zxid seen.
    watches: HashMap<(u8, String), (WatchKind, i64)>,
    pending: HashMap<i64, (Purpose, Option<(WatchKind, String)>)>,
    next_xid: i64,
}

type Outbound = mpsc::Sender<ClientMessage>;

fn kind_key(k: WatchKind) -> u8 {
    match k {
        WatchKind::Data => 0,
        WatchKind::Child => 1,
        WatchKind::Persistent(AddWatchMode::Persistent) => 2,
        WatchKind::Persistent(AddWatchMode::PersistentRecursive) => 3,
    }
}

enum Ended {
    Disconnected,
    Expired,
    Closed,
}

impl Connection {
    fn emit_state(&self, state: KeeperState) {
        self.state.send_replace(state);
        let _ = self.events.send(WatchedEvent { event_type: EventType::None, state, path: String::new() });
    }

    async fn run(mut self, mut calls: mpsc::UnboundedReceiver<Call>) {
        let mut last_contact = Instant::now();
        let mut first = true;
        // Start at a random server, as ZooKeeper's client shuffles its list, so sessions
        // spread over the ensemble.
        let mut attempt = rand::random_range(0..self.config.servers.len().max(1));
        loop {
            // Without a session yet, keep trying for one timeout; with one, until the ensemble
            // must have expired it.
            let limit = if self.timeout.is_zero() { self.config.session_timeout } else { self.timeout };
            if last_contact.elapsed() > limit && !first {
                self.fail_pending(KeeperError::SessionExpired);
                self.emit_state(KeeperState::Expired);
                return;
            }
            first = false;
            let n = self.config.servers.len();
            let server = self.config.servers[attempt % n].clone();
            attempt += 1;
            match self.open(&server).await {
                Ok((out, inbound)) => {
                    attempt = attempt.saturating_sub(1);
                    self.emit_state(KeeperState::SyncConnected);
                    self.rewatch(&out).await;
                    let ended = self.serve(&mut calls, out, inbound).await;
                    last_contact = Instant::now();
                    self.fail_pending(KeeperError::ConnectionLoss);
                    match ended {
                        Ended::Closed => {
                            self.emit_state(KeeperState::Closed);
                            return;
                        }
                        Ended::Expired => {
                            self.emit_state(KeeperState::Expired);
                            return;
                        }
                        Ended::Disconnected => {
                            attempt += 1;
                            self.emit_state(KeeperState::Disconnected);
                        }
                    }
                }
                Err(KeeperError::SessionExpired) => {
                    self.fail_pending(KeeperError::SessionExpired);
                    self.emit_state(KeeperState::Expired);
                    return;
                }
                Err(e) => {
                    tracing::debug!(server, error = %e, "keeper connect failed");
                    if attempt.is_multiple_of(n) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            if calls.is_closed() && self.pending.is_empty() {
                return;
            }
        }
    }

    fn fail_pending(&mut self, e: KeeperError) {
        for (_, (purpose, _)) in self.pending.drain() {
            if let Purpose::Caller(tx) = purpose {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }

    async fn open(&mut self, server: &str) -> Result<(Outbound, tonic::Streaming<pb::ServerMessage>), KeeperError> {
        let step = Duration::from_secs(2).min(self.config.session_timeout);
        let endpoint = Endpoint::from_shared(format!("http://{server}"))
            .map_err(|e| KeeperError::BadArguments(e.to_string()))?
            .connect_timeout(step)
            .tcp_nodelay(true);
        let channel = endpoint.connect().await.map_err(|_| KeeperError::ConnectionLoss)?;
        let mut grpc = Grpc::new(channel).max_decoding_message_size(16 << 20).max_encoding_message_size(16 << 20);
        let (out, rx) = mpsc::channel(1024);
        let connect = pb::ConnectRequest {
            session_id: self.session_id.load(Ordering::Relaxed),
            timeout_ms: self.config.session_timeout.as_millis().min(i32::MAX as u128) as i32,
            last_zxid_seen: self.last_zxid,
            password: self.password.clone(),
        };
        out.send(ClientMessage { msg: Some(client_message::Msg::Connect(connect)) })
            .await
            .map_err(|_| KeeperError::ConnectionLoss)?;
        let mut inbound = tokio::time::timeout(step * 3, grpc.session(ReceiverStream::new(rx)))
            .await
            .map_err(|_| KeeperError::ConnectionLoss)?
            .map_err(|_| KeeperError::ConnectionLoss)?
            .into_inner();
        let first = tokio::time::timeout(step * 3, inbound.message()).await.map_err(|_| KeeperError::ConnectionLoss)?;
        match first {
            Ok(Some(pb::ServerMessage { msg: Some(server_message::Msg::Connected(c)) })) => {
                self.session_id.store(c.session_id, Ordering::Relaxed);
                self.password = c.password;
                self.timeout = Duration::from_millis(c.timeout_ms.max(1) as u64);
                self.last_zxid = self.last_zxid.max(c.last_zxid);
                tracing::debug!(server, session = format!("{:#x}", c.session_id), "keeper session connected");
                Ok((out, inbound))
            }
            Err(status) if status.code() == tonic::Code::Unauthenticated => Err(KeeperError::SessionExpired),
            _ => Err(KeeperError::ConnectionLoss),
        }
    }

    fn send(&mut self, out: &Outbound, op: request::Op, purpose: Purpose, record: Option<(WatchKind, String)>) -> bool {
        let xid = self.next_xid;
        self.next_xid += 1;
        let msg = ClientMessage { msg: Some(client_message::Msg::Request(pb::Request { xid, op: Some(op) })) };
        if out.try_send(msg).is_err() {
            if let Purpose::Caller(tx) = purpose {
                let _ = tx.send(Err(KeeperError::ConnectionLoss));
            }
            return false;
        }
        self.pending.insert(xid, (purpose, record));
        true
    }

    /// Re-registers watches on a new server; fires at once those whose node changed.
    async fn rewatch(&mut self, out: &Outbound) {
        let watches: Vec<((u8, String), (WatchKind, i64))> = self.watches.drain().collect();
        for ((_, path), (kind, seen)) in watches {
            let op = match kind {
                WatchKind::Data => request::Op::Exists(pb::Exists { path: path.clone(), watch: true }),
                WatchKind::Child => request::Op::GetChildren(pb::GetChildren { path: path.clone(), watch: true }),
                WatchKind::Persistent(mode) => request::Op::AddWatch(pb::AddWatch {
                    path: path.clone(),
                    mode: if mode == AddWatchMode::Persistent { 0 } else { 1 },
                }),
            };
            self.send(out, op, Purpose::Rewatch { kind, path: path.clone(), seen }, Some((kind, path)));
        }
    }

    async fn serve(
        &mut self,
        calls: &mut mpsc::UnboundedReceiver<Call>,
        out: Outbound,
        mut inbound: tonic::Streaming<pb::ServerMessage>,
    ) -> Ended {
        let ping_every = (self.timeout / 3).max(Duration::from_millis(100));
        let silent_limit = self.timeout * 2 / 3;
        let mut ping = tokio::time::interval(ping_every);
        let mut last_heard = Instant::now();
        let mut closing = false;
        loop {
            tokio::select! {
                call = calls.recv(), if !closing => {
                    let Some(call) = call else { closing = true; continue };
                    closing = matches!(call.op, request::Op::Close(_));
                    let record = watch_record(&call.op);
                    if !self.send(&out, call.op, call.purpose, record) {
                        return Ended::Disconnected;
                    }
                }
                m = inbound.message() => {
                    let m = match m {
                        Ok(Some(m)) => m,
                        Ok(None) => return if closing { Ended::Closed } else { Ended::Disconnected },
                        Err(status) if status.code() == tonic::Code::Unauthenticated => return Ended::Expired,
                        Err(_) => return if closing { Ended::Closed } else { Ended::Disconnected },
                    };
                    last_heard = Instant::now();
                    match m.msg {
                        Some(server_message::Msg::Response(r)) => {
                            self.last_zxid = self.last_zxid.max(r.zxid);
                            let was_close = closing && self.pending.len() == 1;
                            self.on_response(r);
                            if was_close && self.pending.is_empty() {
                                return Ended::Closed;
                            }
                        }
                        Some(server_message::Msg::Event(e)) => {
                            self.last_zxid = self.last_zxid.max(e.zxid);
                            self.on_event(e);
                        }
                        Some(server_message::Msg::Pong(p)) => {
                            let _ = p.last_zxid;
                        }
                        _ => {}
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > silent_limit {
                        tracing::debug!("keeper server silent; failing over");
                        return Ended::Disconnected;
                    }
                    if out.try_send(ClientMessage { msg: Some(client_message::Msg::Ping(pb::Ping {})) }).is_err() {
                        return Ended::Disconnected;
                    }
                }
            }
        }
    }

    fn on_response(&mut self, r: pb::Response) {
        let Some((purpose, record)) = self.pending.remove(&r.xid) else { return };
        let no_node = r.err == KeeperError::NoNode.code();
        match purpose {
            Purpose::Caller(tx) => {
                if let Some((kind, path)) = record {
                    // exists() on a missing node still leaves a watch for its creation.
                    if r.err == 0 || (no_node && kind == WatchKind::Data) {
                        let seen = seen_zxid(kind, &r);
                        self.watches.insert((kind_key(kind), path), (kind, seen));
                    }
                }
                let _ = tx.send(Ok(r));
            }
            Purpose::Rewatch { kind, path, seen } => {
                let now = seen_zxid(kind, &r);
                let event = match kind {
                    WatchKind::Data if no_node && seen != -1 => Some(EventType::NodeDeleted),
                    WatchKind::Data if r.err == 0 && seen == -1 => Some(EventType::NodeCreated),
                    WatchKind::Data if r.err == 0 && now != seen => Some(EventType::NodeDataChanged),
                    WatchKind::Child if no_node => Some(EventType::NodeDeleted),
                    WatchKind::Child if r.err == 0 && now != seen => Some(EventType::NodeChildrenChanged),
                    _ => None,
                };
                match event {
                    Some(ev) => {
                        let path = strip_chroot(&self.config.chroot, path);
                        let _ =
                            self.events.send(WatchedEvent { event_type: ev, state: KeeperState::SyncConnected, path });
                    }
                    None if r.err == 0 || (no_node && kind == WatchKind::Data) => {
                        self.watches.insert((kind_key(kind), path), (kind, seen));
                    }
                    None => {}
                }
            }
        }
    }

    fn on_event(&mut self, e: pb::WatchEvent) {
        let event_type = EventType::from_code(e.event_type);
        match event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                self.watches.remove(&(0, e.path.clone()));
            }
            EventType::NodeDeleted => {
                self.watches.remove(&(0, e.path.clone()));
                self.watches.remove(&(1, e.path.clone()));
            }
            EventType::NodeChildrenChanged => {
                self.watches.remove(&(1, e.path.clone()));
            }
            EventType::None => {}
        }
        let path = strip_chroot(&self.config.chroot, e.path);
        let _ = self.events.send(WatchedEvent { event_type, state: KeeperState::SyncConnected, path });
    }
}

/// Which watch a request leaves behind, if any (recorded once the server accepted it).
fn watch_record(op: &request::Op) -> Option<(WatchKind, String)> {
    match op {
        request::Op::Exists(e) if e.watch => Some((WatchKind::Data, e.path.clone())),
        request::Op::GetData(g) if g.watch => Some((WatchKind::Data, g.path.clone())),
        request::Op::GetChildren(g) if g.watch => Some((WatchKind::Child, g.path.clone())),
        request::Op::AddWatch(a) => Some((
            WatchKind::Persistent(if a.mode == 0 {
                AddWatchMode::Persistent
            } else {
                AddWatchMode::PersistentRecursive
            }),
            a.path.clone(),
        )),
        _ => None,
    }
}

/// The zxid a watch's node was at when the client last looked: mzxid for data watches
/// (-1 when missing), pzxid for child watches.
fn seen_zxid(kind: WatchKind, r: &pb::Response) -> i64 {
    use pb::response::Result as R;
    match (&r.result, kind) {
        (Some(R::Stat(s)), WatchKind::Data) => s.stat.as_ref().map_or(-1, |s| s.mzxid),
        (Some(R::Data(d)), WatchKind::Data) => d.stat.as_ref().map_or(-1, |s| s.mzxid),
        (Some(R::Children(c)), WatchKind::Child) => c.stat.as_ref().map_or(-1, |s| s.pzxid),
        _ => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_strings() {
        let c = ClientConfig::parse("a:1,b:2/strom/x", Duration::from_secs(1)).unwrap();
        assert_eq!(c.servers, vec!["a:1", "b:2"]);
        assert_eq!(c.chroot, "/strom/x");
        assert!(ClientConfig::parse("", Duration::from_secs(1)).is_err());
        assert!(ClientConfig::parse("a", Duration::from_secs(1)).is_err());
        assert_eq!(strip_chroot("/s", "/s/a".into()), "/a");
        assert_eq!(strip_chroot("/s", "/s".into()), "/");
    }
}

/// What `Status` reports about one keeper (zkCli's `srvr`).
#[derive(Debug, Clone)]
pub struct ServerStatus {
    pub server_id: i64,
    /// `leader`, `follower`, `standalone` or `looking`.
    pub role: String,
    pub leader_id: i64,
    pub last_zxid: i64,
    pub znode_count: i64,
    pub open_sessions: i64,
    pub connections: i64,
    pub members: Vec<i64>,
}

/// Asks one keeper (`host:port`) for its status, without opening a session.
pub async fn server_status(server: &str, timeout: Duration) -> Result<ServerStatus, KeeperError> {
    let endpoint = Endpoint::from_shared(format!("http://{server}"))
        .map_err(|e| KeeperError::BadArguments(e.to_string()))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint.connect().await.map_err(|_| KeeperError::ConnectionLoss)?;
    let s =
        Grpc::new(channel).status(pb::StatusRequest {}).await.map_err(|_| KeeperError::ConnectionLoss)?.into_inner();
    Ok(ServerStatus {
        server_id: s.server_id,
        role: s.role,
        leader_id: s.leader_id,
        last_zxid: s.last_zxid,
        znode_count: s.znode_count,
        open_sessions: s.open_sessions,
        connections: s.connections,
        members: s.members,
    })
}
