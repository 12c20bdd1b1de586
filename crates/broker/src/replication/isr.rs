//! ISR maintenance on the leader: followers that fall behind for longer than
//! `replica.lag.time.max.ms` leave the ISR, followers that catch up rejoin it.
//!
//! As in Kafka's ZooKeeper mode, the leader writes the partition's `state` znode itself,
//! with a version check: if the controller (or anyone) changed the state meanwhile the write
//! fails, the change is dropped, and the refreshed state decides the next attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_keeper::KeeperError;
use tokio::sync::{mpsc, watch};

use crate::cluster::znodes::partition_state_path;
use crate::cluster::Cluster;
use crate::replica::{IsrChange, ReplicaManager};

/// Runs until shutdown: applies queued expansions and checks for laggards every half lag
/// time (Kafka's `isr-expiration` schedule).
pub async fn run(
    cluster: Arc<Cluster>,
    replicas: Arc<ReplicaManager>,
    max_lag: Duration,
    mut changes: mpsc::UnboundedReceiver<IsrChange>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut check = tokio::time::interval((max_lag / 2).max(Duration::from_millis(100)));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Some(c) => write(&cluster, &replicas, c).await,
                None => return,
            },
            _ = check.tick() => {
                let now = Instant::now();
                for p in replicas.all() {
                    if let Some(c) = p.isr_shrink(max_lag, now) {
                        tracing::info!(
                            topic = %c.topic,
                            partition = c.partition,
                            isr = ?p.isr(),
                            new_isr = ?c.new_isr,
                            "shrinking ISR: followers lagging more than replica.lag.time.max.ms"
                        );
                        write(&cluster, &replicas, c).await;
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn write(cluster: &Cluster, replicas: &ReplicaManager, change: IsrChange) {
    let Some(partition) = replicas.get(&change.topic, change.partition) else { return };
    let result = try_write(cluster, &change).await;
    match &result {
        Ok(version) => tracing::info!(
            topic = %change.topic,
            partition = change.partition,
            isr = ?change.new_isr,
            zk_version = version,
            "ISR updated"
        ),
        Err(why) => {
            tracing::info!(topic = %change.topic, partition = change.partition, reason = %why, "ISR update skipped")
        }
    }
    partition.isr_update_done(result.ok().map(|v| (change.new_isr.as_slice(), v)));
}

async fn try_write(cluster: &Cluster, change: &IsrChange) -> Result<i32, String> {
    let zk = cluster.keeper().ok_or("no keeper session")?;
    let path = partition_state_path(&change.topic, change.partition);
    let (data, stat) = zk.get_data(&path, false).await.map_err(|e| format!("reading {path}: {e}"))?;
    let mut state: crate::cluster::znodes::PartitionState =
        serde_json::from_slice(&data).map_err(|e| format!("unreadable {path}: {e}"))?;
    if state.leader != replicas_owner(cluster) || state.leader_epoch != change.leader_epoch {
        return Err(format!("leadership moved on (leader {}, epoch {})", state.leader, state.leader_epoch));
    }
    if stat.version != change.zk_version {
        return Err(format!("state changed meanwhile (version {} != {})", stat.version, change.zk_version));
    }
    state.isr = change.new_isr.clone();
    let data = serde_json::to_vec(&state).map_err(|e| e.to_string())?;
    match zk.set_data(&path, &data, Some(stat.version)).await {
        Ok(stat) => Ok(stat.version),
        Err(KeeperError::BadVersion) => Err("state changed meanwhile".into()),
        Err(e) => Err(format!("writing {path}: {e}")),
    }
}

fn replicas_owner(cluster: &Cluster) -> i32 {
    cluster.config().broker_id
}
