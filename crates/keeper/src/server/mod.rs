//! A running keeper: storage, Raft, the peer listener and the client listener.
//!
//! - [`node`]: the Raft instance and the write path (ordered submission, forwarding).
//! - [`session`]: the client gRPC service, one stream per session.
//! - [`peer_service`]: the keeper-to-keeper gRPC service.
//! - [`liveness`]: session heartbeats and expiry, the container reaper.

pub mod liveness;
pub mod node;
pub mod peer_service;
pub mod session;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::{BasicNode, SnapshotPolicy};
use strom_proto::keeper::keeper_server::KeeperServer as KeeperGrpc;
use strom_proto::keeper_raft::raft_peer_server::RaftPeerServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::KeeperConfig;
use crate::raft::log_store::LogStore;
use crate::raft::network::Network;
use crate::raft::state_machine::StateMachine;
use crate::raft::Raft;
use crate::replica::Replica;
use liveness::Liveness;
use node::Node;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("cannot open the keeper database in {path}: {source}")]
    Storage { path: String, source: sled::Error },
    #[error("cannot open the raft log in {path}: {source}")]
    Log { path: String, source: crate::raft::log_store::OpenError },
    #[error("cannot restore the state machine: {0}")]
    Restore(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
}

/// Accepted connections with Nagle's algorithm off. tonic's `tcp_nodelay` applies only to
/// listeners tonic binds itself; without it, an HTTP/2 response written in several small
/// pieces waits for the peer's delayed ACK (40 ms) whenever the previous piece is unacknowledged,
/// which stalled forwarded writes and AppendEntries answers under load.
fn nodelay_incoming(listener: TcpListener) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot disable Nagle's algorithm on a connection");
            }
        })
    })
}

/// A keeper serving clients and its peers until [`KeeperServer::shutdown`].
pub struct KeeperServer {
    node: Arc<Node>,
    db: sled::Db,
    client_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl KeeperServer {
    pub async fn start(config: KeeperConfig) -> Result<KeeperServer, StartError> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StartError::DataDir { path: dir.display().to_string(), source: e })?;
        let db_path = dir.join("keeper-db");
        let db = sled::Config::new()
            .path(&db_path)
            .cache_capacity(8 << 20)
            .open()
            .map_err(|e| StartError::Storage { path: db_path.display().to_string(), source: e })?;
        let replica = Arc::new(Replica::default());
        let wal_dir = dir.join("raft-wal");
        let log_store = LogStore::open(&db, &wal_dir)
            .map_err(|e| StartError::Log { path: wal_dir.display().to_string(), source: e })?;
        let state_machine = StateMachine::open(&db, replica.clone()).map_err(|e| StartError::Restore(e.to_string()))?;

        let members: BTreeMap<u64, String> = if config.servers.is_empty() {
            BTreeMap::from([(config.my_id, format!("127.0.0.1:{}", config.client_addr.port()))])
        } else {
            config.servers.iter().map(|(id, p)| (*id, p.raft_addr())).collect()
        };
        let raft_config = openraft::Config {
            cluster_name: "strom-keeper".into(),
            // openraft bounds each AppendEntries by the heartbeat interval, so it must cover
            // `max_payload_entries` entries plus the follower's fsync. An entry carries up to
            // MAX_BATCH writes (~150 KiB of small writes), so 16 of them stay a few MiB.
            heartbeat_interval: 250,
            election_timeout_min: 1000,
            election_timeout_max: 2000,
            max_payload_entries: 16,
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snap_count),
            max_in_snapshot_log_to_keep: 1000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let raft = Raft::new(config.my_id, Arc::new(raft_config), Network, log_store, state_machine)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let initialized = raft.is_initialized().await.map_err(|e| StartError::Raft(e.to_string()))?;
        if !initialized {
            // Every member initializes with the same static membership (the server.N lines),
            // so whichever starts first can be elected; identical configs are safe to repeat.
            let nodes: BTreeMap<u64, BasicNode> =
                members.iter().map(|(id, addr)| (*id, BasicNode { addr: addr.clone() })).collect();
            if let Err(e) = raft.initialize(nodes).await {
                tracing::debug!(error = %e, "initialize skipped");
            }
        }

        let node = Node::new(config.my_id, raft, replica, members);
        let liveness = Arc::new(Liveness::default());
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(liveness::run(
            Arc::downgrade(&node),
            liveness.clone(),
            Duration::from_millis(config.tick_ms),
        )));

        if let Some(me) = config.servers.get(&config.my_id) {
            let addr = format!("0.0.0.0:{}", me.peer_port);
            let listener =
                TcpListener::bind(&addr).await.map_err(|e| StartError::Bind { addr: addr.clone(), source: e })?;
            let svc = RaftPeerServer::new(peer_service::PeerService { node: node.clone(), liveness: liveness.clone() })
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20);
            let mut stop_rx = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let serve = tonic::transport::Server::builder().add_service(svc).serve_with_incoming_shutdown(
                    nodelay_incoming(listener),
                    async move {
                        let _ = stop_rx.wait_for(|s| *s).await;
                    },
                );
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "peer listener failed");
                }
            }));
        }

        let listener = TcpListener::bind(config.client_addr)
            .await
            .map_err(|e| StartError::Bind { addr: config.client_addr.to_string(), source: e })?;
        let client_addr =
            listener.local_addr().map_err(|e| StartError::Bind { addr: config.client_addr.to_string(), source: e })?;
        let svc = KeeperGrpc::new(session::ClientService {
            node: node.clone(),
            liveness,
            config: Arc::new(config.clone()),
            per_ip: Arc::new(Mutex::new(HashMap::new())),
            stop: stop_rx.clone(),
        })
        .max_decoding_message_size(16 << 20);
        let mut stop_rx2 = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let serve = tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(Duration::from_secs(10)))
                .add_service(svc)
                .serve_with_incoming_shutdown(nodelay_incoming(listener), async move {
                    let _ = stop_rx2.wait_for(|s| *s).await;
                });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "client listener failed");
            }
        }));
        tracing::info!(id = config.my_id, %client_addr, members = node.members.len(), "keeper started");
        Ok(KeeperServer { node, db, client_addr, stop, tasks })
    }

    /// The address clients connect to (the bound port when 0 was configured).
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    pub fn id(&self) -> u64 {
        self.node.id
    }

    pub fn is_leader(&self) -> bool {
        self.node.is_leader()
    }

    /// The zxid of the last entry applied here.
    pub fn last_zxid(&self) -> i64 {
        self.node.replica.last_applied()
    }

    /// Stops listening, stops Raft and flushes storage.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.node.raft.shutdown().await;
        for t in self.tasks {
            t.abort();
        }
        let _ = self.db.flush_async().await;
    }
}
