//! [`Broker`]: wires config, storage, the keeper session and the listener together, and
//! owns their lifetimes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_storage::LogManager;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::group::GroupCoordinator;
use crate::handlers::{now_ms, BrokerState};
use crate::metadata::MetadataCache;
use crate::network;
use crate::producer_ids::ProducerIds;
use crate::replica::ReplicaManager;
use crate::replication::fetcher::{FetchSettings, FetcherManager};
use crate::replication::{self, ReplicationService};

/// A running broker.
pub struct Broker {
    local_addr: SocketAddr,
    state: Arc<BrokerState>,
    shutdown: watch::Sender<bool>,
    stopped: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The gRPC server: aborted, not awaited, at shutdown — a graceful HTTP/2 shutdown would
    /// wait for other brokers' long-lived fetch streams to end, which they never do.
    grpc: JoinHandle<()>,
}

impl Broker {
    /// Binds the listener, opens the logs, joins the cluster through the keeper and starts
    /// serving. Returns once clients can connect.
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        let started = std::time::Instant::now();
        let bind = config.listener().bind_addr();
        let listener =
            TcpListener::bind(&bind).await.map_err(|source| BrokerError::Bind { addr: bind.clone(), source })?;
        let local_addr = listener.local_addr()?;
        let endpoint = config.advertised_endpoint(local_addr);
        let log_config = config.log_config();
        let logs = LogManager::open(&config.log_dirs, log_config.clone())
            .map_err(|source| BrokerError::Storage { dirs: config.log_dirs.clone(), source })?;
        logs.start_cleaner(config.cleaner_config())
            .map_err(|source| BrokerError::Storage { dirs: config.log_dirs.clone(), source })?;
        let cache = Arc::new(MetadataCache::default());
        let fetchers = Arc::new(FetcherManager::new(
            FetchSettings {
                broker_id: config.broker_id,
                num_fetchers: config.num_replica_fetchers,
                partition_max_bytes: u32::try_from(config.replica_fetch_max_bytes).unwrap_or(u32::MAX),
                response_max_bytes: u32::try_from(config.replica_fetch_response_max_bytes).unwrap_or(u32::MAX),
                max_wait: Duration::from_millis(config.replica_fetch_wait_max_ms),
            },
            cache.clone(),
        ));
        let replicas =
            Arc::new(ReplicaManager::new(config.broker_id, logs, log_config, config.min_insync_replicas, fetchers));
        // The replication service must answer before the first leadership arrives, so it
        // starts ahead of the keeper session (which can make this broker a leader at once).
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (isr_tx, isr_rx) = mpsc::unbounded_channel();
        let (grpc_tx, grpc_rx) = mpsc::channel(64);
        let service = ReplicationService::new(replicas.clone(), cache.clone(), isr_tx);
        let grpc = tokio::spawn(replication::serve(service, grpc_rx, shutdown_rx.clone()));
        let (cluster, cluster_task) = match Cluster::start(
            config.clone(),
            cache.clone(),
            replicas.clone(),
            endpoint.clone(),
            shutdown_rx.clone(),
        )
        .await
        {
            Ok(v) => v,
            Err(e) => {
                shutdown.send_replace(true);
                grpc.abort();
                if let Err(close) = replicas.shutdown() {
                    tracing::warn!(error = %close, "closing logs after failed start");
                }
                return Err(e);
            }
        };
        let known = cache.snapshot();
        for topic in replicas.local_topics() {
            if known.topic(&topic).is_none() {
                tracing::warn!(topic, "local log for a topic the keeper does not know; left untouched");
            }
        }
        let tick_every = Duration::from_millis(config.log_retention_check_interval_ms.max(10));
        let groups = GroupCoordinator::start(config.clone(), cache.clone(), replicas.clone(), cluster.clone());
        let state = Arc::new(BrokerState {
            config,
            cache,
            replicas: replicas.clone(),
            cluster,
            producer_ids: ProducerIds::default(),
            groups,
        });
        let accept = tokio::spawn(network::accept_loop(listener, state.clone(), grpc_tx, shutdown_rx.clone()));
        let isr = tokio::spawn(replication::isr::run(
            state.cluster.clone(),
            replicas.clone(),
            Duration::from_millis(u64::try_from(state.config.replica_lag_time_max_ms).unwrap_or(u64::MAX)),
            isr_rx,
            shutdown_rx.clone(),
        ));
        // High watermarks every `replica.high.watermark.checkpoint.interval.ms`, so a restarted
        // replica does not expose offsets that were never committed.
        let checkpoints = tokio::spawn(periodic(
            "high watermark checkpoint",
            replicas.clone(),
            Duration::from_millis(state.config.replica_high_watermark_checkpoint_interval_ms),
            ReplicaManager::checkpoint_high_watermarks,
            shutdown_rx.clone(),
        ));
        let ticker = tokio::spawn(periodic("log maintenance", replicas, tick_every, |r| r.tick(now_ms()), shutdown_rx));
        tracing::info!(
            broker_id = state.config.broker_id,
            %local_addr,
            advertised = %format!("{}:{}", endpoint.0, endpoint.1),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "broker started"
        );
        Ok(Broker {
            local_addr,
            state,
            shutdown,
            stopped: watch::channel(false).0,
            tasks: Mutex::new(vec![accept, ticker, isr, checkpoints, cluster_task.handle]),
            grpc,
        })
    }

    /// The address the listener is bound to (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The broker's id.
    pub fn id(&self) -> i32 {
        self.state.config.broker_id
    }

    /// Stops accepting, closes connections, leaves the cluster (closing the keeper session so
    /// the registration and any controller role go at once) and flushes every log.
    pub async fn shutdown(&self) {
        if self.shutdown.send_replace(true) {
            self.wait().await;
            return;
        }
        let tasks = match self.tasks.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        self.grpc.abort();
        for t in tasks {
            if let Err(e) = t.await {
                tracing::warn!(error = %e, "broker task ended abnormally");
            }
        }
        // Parked joins and syncs get NOT_COORDINATOR; group timers stop before the logs close.
        self.state.groups.shutdown();
        self.state.cluster.close().await;
        if let Err(e) = self.state.replicas.shutdown() {
            tracing::error!(error = %e, "flushing logs at shutdown failed");
        }
        tracing::info!(broker_id = self.state.config.broker_id, "broker stopped");
        self.stopped.send_replace(true);
    }

    /// Resolves once the broker has been shut down.
    pub async fn wait(&self) {
        let mut rx = self.stopped.subscribe();
        // An error means the sender is gone, i.e. the broker itself was dropped.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// Runs `work` on a blocking thread (it touches files: retention deletes them, checkpoints
/// fsync) every `every`, until shutdown.
async fn periodic(
    what: &'static str,
    replicas: Arc<ReplicaManager>,
    every: Duration,
    work: fn(&ReplicaManager),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(every.max(Duration::from_millis(10)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let replicas = replicas.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || work(&replicas)).await {
                    tracing::warn!(task = what, error = %e, "periodic task failed");
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}
