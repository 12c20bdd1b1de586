//! The broker's keeper session: registration, metadata refresh from watches, reconnects, and
//! the topic-admin writes (create, delete, add partitions, producer-id blocks).
//!
//! All keeper-facing code lives in this module and [`crate::controller`]. The metadata cache
//! is fed by persistent recursive watches on `/brokers`, `/config/topics` and
//! `/admin/delete_topics`: each event names a path, so only the touched topic (or the broker
//! list, or the controller) is re-read. When the session expires the broker keeps serving
//! from its cache, opens a new session, re-registers and reloads everything.

pub mod admin;
pub mod liveness;
pub(crate) mod loader;
pub mod znodes;

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use strom_keeper::client::KeeperClient;
use strom_keeper::{AddWatchMode, CreateMode, EventType, KeeperError, KeeperState, WatchedEvent};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::controller;
use crate::error::BrokerError;
use crate::handlers::now_ms;
use crate::metadata::MetadataCache;
use crate::replica::ReplicaManager;
use znodes::*;

/// What a batch of watch events asks to re-read.
#[derive(Debug, Default)]
struct Pending {
    all: bool,
    brokers: bool,
    controller: bool,
    deletions: bool,
    topic_list: bool,
    topics: BTreeSet<String>,
}

impl Pending {
    fn everything() -> Self {
        Pending { all: true, ..Pending::default() }
    }

    fn is_empty(&self) -> bool {
        !(self.all || self.brokers || self.controller || self.deletions || self.topic_list) && self.topics.is_empty()
    }

    fn add(&mut self, ev: &WatchedEvent) {
        let path = ev.path.as_str();
        if path == BROKER_IDS || path.starts_with("/brokers/ids/") {
            self.brokers = true;
        } else if path == BROKER_TOPICS {
            self.topic_list = true;
        } else if let Some(rest) = path.strip_prefix("/brokers/topics/") {
            self.topics.insert(first_segment(rest).to_string());
        } else if let Some(rest) = path.strip_prefix("/config/topics/") {
            self.topics.insert(first_segment(rest).to_string());
        } else if path.starts_with(DELETE_TOPICS) {
            self.deletions = true;
        } else if path == CONTROLLER {
            self.controller = true;
        }
    }
}

fn first_segment(s: &str) -> &str {
    s.split('/').next().unwrap_or(s)
}

/// The broker's handle on cluster metadata in the keeper.
pub struct Cluster {
    config: BrokerConfig,
    cache: Arc<MetadataCache>,
    replicas: Arc<ReplicaManager>,
    endpoint: (String, u16),
    keeper: RwLock<Option<Arc<KeeperClient>>>,
    /// Topics an auto-create is already in flight for.
    auto_creating: Mutex<HashSet<String>>,
}

/// The running session supervisor.
pub struct ClusterTask {
    pub handle: JoinHandle<()>,
}

impl Cluster {
    /// Connects to the keeper, registers this broker and loads the metadata; then keeps the
    /// session (and the cache) alive in a background task until `shutdown`.
    pub async fn start(
        config: BrokerConfig,
        cache: Arc<MetadataCache>,
        replicas: Arc<ReplicaManager>,
        endpoint: (String, u16),
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Arc<Cluster>, ClusterTask), BrokerError> {
        let cluster = Arc::new(Cluster {
            config,
            cache,
            replicas,
            endpoint,
            keeper: RwLock::new(None),
            auto_creating: Mutex::new(HashSet::new()),
        });
        let session = cluster.establish().await.map_err(|e| match e {
            SessionError::Duplicate(id) => BrokerError::DuplicateBrokerId(id),
            SessionError::Keeper(e) => {
                BrokerError::Keeper { connect: cluster.config.zookeeper_connect.clone(), message: e.to_string() }
            }
        })?;
        let handle = tokio::spawn(cluster.clone().supervise(session, shutdown));
        Ok((cluster, ClusterTask { handle }))
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn cache(&self) -> &Arc<MetadataCache> {
        &self.cache
    }

    /// The current keeper session, if connected.
    pub(crate) fn keeper(&self) -> Option<Arc<KeeperClient>> {
        match self.keeper.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_keeper(&self, zk: Option<Arc<KeeperClient>>) {
        match self.keeper.write() {
            Ok(mut g) => *g = zk,
            Err(p) => *p.into_inner() = zk,
        }
    }

    /// Closes the keeper session (our ephemerals disappear at once, so the controller role
    /// and the registration move on without waiting for a timeout).
    pub async fn close(&self) {
        if let Some(zk) = self.keeper() {
            self.set_keeper(None);
            zk.close().await;
        }
    }

    async fn connect(&self, connect: &str) -> Result<KeeperClient, KeeperError> {
        tokio::time::timeout(
            self.config.zookeeper_connection_timeout,
            KeeperClient::connect(connect, self.config.zookeeper_session_timeout),
        )
        .await
        .map_err(|_| KeeperError::OperationTimeout)?
    }

    /// Creates the chroot (if the connect string has one) through an unrooted session, as
    /// Kafka does on first start against a fresh ensemble.
    async fn ensure_chroot(&self) -> Result<(), KeeperError> {
        let connect = &self.config.zookeeper_connect;
        let Some((ensemble, chroot)) = connect.split_once('/') else {
            return Ok(());
        };
        let chroot = format!("/{}", chroot.trim_end_matches('/'));
        if chroot == "/" {
            return Ok(());
        }
        let root = self.connect(ensemble).await?;
        let res = match root.create_all(&chroot, b"", CreateMode::Persistent).await {
            Ok(_) | Err(KeeperError::NodeExists) => Ok(()),
            Err(e) => Err(e),
        };
        root.close().await;
        res
    }

    async fn establish(&self) -> Result<Session, SessionError> {
        self.ensure_chroot().await?;
        let zk = self.connect(&self.config.zookeeper_connect).await?;
        let zk = Arc::new(zk);
        let events = zk.events();
        for path in BASE_PATHS {
            match zk.create_all(path, b"", CreateMode::Persistent).await {
                Ok(_) | Err(KeeperError::NodeExists) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let cluster_id = loader::get_or_create_cluster_id(&zk).await?;
        self.register(&zk).await?;
        // Watches before the first load, so no change between load and watch is missed.
        for path in ["/brokers", CONFIG_TOPICS, DELETE_TOPICS] {
            zk.add_watch(path, AddWatchMode::PersistentRecursive).await?;
        }
        zk.add_watch(CONTROLLER, AddWatchMode::Persistent).await?;
        self.set_keeper(Some(zk.clone()));
        let mut snapshot = (*self.cache.snapshot()).clone();
        snapshot.cluster_id = Some(cluster_id);
        self.cache.replace(snapshot);
        self.refresh(&zk, Pending::everything()).await?;
        let controller = tokio::spawn(controller::run(
            zk.clone(),
            self.config.broker_id,
            controller::Settings::from_config(&self.config),
            zk.events(),
        ));
        let prober = tokio::spawn(liveness::run(zk.clone(), self.config.broker_id));
        tracing::info!(broker_id = self.config.broker_id, session = zk.session_id(), "registered with keeper");
        Ok(Session { zk, events, controller, prober })
    }

    /// Creates `/brokers/ids/<id>`; a node left by an earlier session of ours is waited out
    /// (bounded by the session timeout), as Kafka does after a quick restart.
    async fn register(&self, zk: &KeeperClient) -> Result<(), SessionError> {
        let id = self.config.broker_id;
        let path = broker_path(id);
        let reg = BrokerRegistration::new(&self.endpoint.0, self.endpoint.1, self.config.broker_rack.clone(), now_ms());
        let data = serde_json::to_vec(&reg).map_err(|e| KeeperError::Marshalling(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + self.config.zookeeper_session_timeout + Duration::from_secs(2);
        let mut events = zk.events();
        loop {
            match zk.create(&path, &data, CreateMode::Ephemeral).await {
                Ok(_) => return Ok(()),
                Err(KeeperError::NodeExists) => {}
                Err(e) => return Err(e.into()),
            }
            match zk.exists(&path, true).await? {
                Some(stat) if stat.ephemeral_owner == zk.session_id() => return Ok(()),
                Some(stat) => tracing::info!(
                    broker_id = id,
                    owner = stat.ephemeral_owner,
                    "broker registration from an earlier session still exists; waiting for it to expire"
                ),
                None => continue,
            }
            let wait = async {
                loop {
                    match events.recv().await {
                        Ok(ev) if ev.path == path && ev.event_type == EventType::NodeDeleted => break,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            };
            if tokio::time::timeout_at(deadline, wait).await.is_err() {
                return Err(SessionError::Duplicate(id));
            }
        }
    }

    async fn supervise(self: Arc<Self>, mut session: Session, mut shutdown: watch::Receiver<bool>) {
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut pending = Pending::default();
        loop {
            let mut reconnect = false;
            tokio::select! {
                ev = session.events.recv() => match ev {
                    Ok(ev) if ev.event_type == EventType::None => {
                        if matches!(ev.state, KeeperState::Expired | KeeperState::Closed) {
                            reconnect = true;
                        }
                    }
                    Ok(ev) => pending.add(&ev),
                    Err(broadcast::error::RecvError::Lagged(_)) => pending = Pending::everything(),
                    Err(broadcast::error::RecvError::Closed) => reconnect = true,
                },
                _ = sleep_until(retry_at) => retry_at = None,
                _ = shutdown.changed() => break,
            }
            // Coalesce whatever else already arrived into one refresh.
            while let Ok(ev) = session.events.try_recv() {
                if ev.event_type == EventType::None {
                    if matches!(ev.state, KeeperState::Expired | KeeperState::Closed) {
                        reconnect = true;
                    }
                } else {
                    pending.add(&ev);
                }
            }
            if !reconnect && matches!(session.zk.state(), KeeperState::Expired | KeeperState::Closed) {
                reconnect = true;
            }
            if reconnect {
                tracing::warn!("keeper session lost; reconnecting");
                session.controller.abort();
                session.prober.abort();
                self.set_keeper(None);
                match self.reconnect(&mut shutdown).await {
                    Some(s) => session = s,
                    None => break,
                }
                pending = Pending::default();
                continue;
            }
            if !pending.is_empty() && retry_at.is_none() {
                let work = std::mem::take(&mut pending);
                if let Err(e) = self.refresh(&session.zk, work).await {
                    tracing::warn!(error = %e, "metadata refresh failed; retrying");
                    pending = Pending::everything();
                    retry_at = Some(tokio::time::Instant::now() + Duration::from_millis(200));
                }
            }
        }
        session.controller.abort();
        session.prober.abort();
    }

    async fn reconnect(&self, shutdown: &mut watch::Receiver<bool>) -> Option<Session> {
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                res = self.establish() => match res {
                    Ok(s) => return Some(s),
                    Err(e) => tracing::warn!(error = %e, "keeper reconnect failed"),
                },
                _ = shutdown.changed() => return None,
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return None,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Re-reads what `what` names, installs the new snapshot, and applies partition changes
    /// to the replica manager.
    async fn refresh(&self, zk: &KeeperClient, what: Pending) -> Result<(), KeeperError> {
        let old = self.cache.snapshot();
        let mut snap = (*old).clone();
        if what.all || what.brokers {
            snap.brokers = loader::load_brokers(zk).await?;
            if !snap.brokers.contains_key(&self.config.broker_id) && zk.state() == KeeperState::SyncConnected {
                // Our registration is gone while our session lives: another broker's probe
                // took us for dead (cluster/liveness.rs). Register again.
                tracing::warn!(broker_id = self.config.broker_id, "own registration disappeared; registering again");
                match self.register(zk).await {
                    Ok(()) => snap.brokers = loader::load_brokers(zk).await?,
                    Err(SessionError::Keeper(e)) => return Err(e),
                    Err(e) => tracing::warn!(error = %e, "re-registration failed"),
                }
            }
        }
        if what.all || what.controller {
            snap.controller_id = loader::load_controller(zk).await?;
        }
        let mut reload: BTreeSet<String> = what.topics;
        if what.all || what.topic_list {
            let names: BTreeSet<String> = zk.get_children(BROKER_TOPICS, false).await?.into_iter().collect();
            for gone in snap.topics.keys().filter(|t| !names.contains(*t)) {
                reload.insert(gone.clone());
            }
            if what.all {
                reload.extend(names);
            } else {
                reload.extend(names.into_iter().filter(|t| !snap.topics.contains_key(t)));
            }
        }
        let deleting: HashSet<String> = if what.all || what.deletions {
            zk.get_children(DELETE_TOPICS, false).await?.into_iter().collect()
        } else {
            snap.topics.values().filter(|t| t.deleting).map(|t| t.name.clone()).collect()
        };
        for name in &reload {
            match loader::load_topic(zk, name).await? {
                Some(meta) => {
                    snap.topics.insert(name.clone(), Arc::new(meta));
                }
                None => {
                    snap.topics.remove(name);
                }
            }
        }
        for topic in snap.topics.values_mut() {
            let flag = deleting.contains(&topic.name);
            if topic.deleting != flag {
                Arc::make_mut(topic).deleting = flag;
            }
        }
        // Partitions first, then the cache: once Metadata (or a CreateTopics waiting on the
        // cache) shows this broker as leader, the partition is already served here.
        for name in &reload {
            match snap.topic(name) {
                Some(meta) => {
                    if old.topic(name).is_some_and(|o| o.id != meta.id && !o.id.is_nil() && !meta.id.is_nil()) {
                        // Deleted and re-created while we looked away: the old data must go.
                        self.replicas.delete_topic(name);
                    }
                    for (i, p) in meta.partitions.iter().enumerate() {
                        if let Err(e) = self.replicas.apply_partition_state(name, i as i32, p, Some(&meta.config)) {
                            tracing::error!(topic = %name, partition = i, error = %e, "cannot open partition log");
                        }
                    }
                }
                None if old.topic(name).is_some() => {
                    tracing::info!(topic = %name, "topic deleted");
                    self.replicas.delete_topic(name);
                }
                None => {}
            }
        }
        self.cache.replace(snap);
        Ok(())
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One live keeper session with its event stream and controller task.
struct Session {
    zk: Arc<KeeperClient>,
    events: broadcast::Receiver<WatchedEvent>,
    controller: JoinHandle<()>,
    prober: JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Keeper(#[from] KeeperError),
    #[error("broker.id {0} is registered by another live broker")]
    Duplicate(i32),
}
