//! Fast detection of dead brokers, ahead of their keeper sessions expiring.
//!
//! The keeper notices a dead broker only when its session expires
//! (`zookeeper.session.timeout.ms` after its last heartbeat); until then the broker is still
//! registered, still leads its partitions, and may still hold `/controller`. A process that
//! is gone, though, shows at once: its port refuses connections. Every broker probes the
//! others' ports a few times a second. When a broker's port refuses, the controller deletes
//! that broker's registration, `/brokers/ids/<id>` (ZooKeeper lets any session delete an
//! ephemeral); when the dead broker *is* the controller, any broker deletes its registration
//! and then `/controller`, so the controller elected next already sees it gone. The usual
//! watches then move leadership on. Each delete is checked against the session that created
//! the registration, read right after the refused probe: a restarted broker binds its port
//! before it registers, so its fresh registration cannot be mistaken for its predecessor's. A slow or unreachable broker (a timeout, a cut
//! network) proves nothing and is left to the session timeout, so a live broker is never
//! declared dead by a probe.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strom_keeper::client::KeeperClient;
use strom_keeper::KeeperError;
use tokio::net::TcpStream;

use super::loader;
use super::znodes::{broker_path, CONTROLLER};
use crate::metadata::BrokerInfo;

const PROBE_EVERY: Duration = Duration::from_millis(200);
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
const REFRESH_BROKERS_EVERY: Duration = Duration::from_secs(1);

/// Probes every registered broker but `me` until aborted or the session ends.
pub async fn run(zk: Arc<KeeperClient>, me: i32) {
    let mut brokers: BTreeMap<i32, BrokerInfo> = BTreeMap::new();
    let mut refreshed: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if refreshed.is_none_or(|at| at.elapsed() >= REFRESH_BROKERS_EVERY) {
            match loader::load_brokers(&zk).await {
                Ok(b) => brokers = b,
                Err(KeeperError::SessionExpired | KeeperError::Closed) => return,
                Err(e) => tracing::debug!(error = %e, "liveness: cannot list brokers"),
            }
            refreshed = Some(tokio::time::Instant::now());
        }
        let probes = brokers.values().filter(|b| b.id != me).map(|b| async move {
            let addr = format!("{}:{}", b.host, b.port);
            let refused = matches!(
                tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(&addr)).await,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
            );
            (b.id, refused)
        });
        let refused: Vec<i32> =
            futures::future::join_all(probes).await.into_iter().filter(|(_, r)| *r).map(|(id, _)| id).collect();
        for id in refused {
            match retire(&zk, id, me).await {
                Ok(()) => {
                    brokers.remove(&id);
                }
                Err(KeeperError::SessionExpired | KeeperError::Closed) => return,
                Err(e) => tracing::debug!(broker = id, error = %e, "liveness: cannot retire dead broker"),
            }
        }
    }
}

/// Acts on broker `id` refusing connections: drops its controller role (any broker may),
/// and its registration (only the controller does), each only while it still belongs to the
/// session that registered `id`.
async fn retire(zk: &KeeperClient, id: i32, me: i32) -> Result<(), KeeperError> {
    let path = broker_path(id);
    let Some(reg) = zk.exists(&path, false).await? else { return Ok(()) };
    let owner = reg.ephemeral_owner;
    if owner == 0 {
        return Ok(());
    }
    let controller = zk.exists(CONTROLLER, false).await?.filter(|ctl| ctl.ephemeral_owner == owner);
    if controller.is_none() && loader::load_controller(zk).await? != me {
        return Ok(());
    }
    tracing::warn!(broker = id, session = owner, "broker refuses connections; removing its registration");
    match zk.delete(&path, Some(reg.version)).await {
        Ok(()) | Err(KeeperError::NoNode | KeeperError::BadVersion) => {}
        Err(e) => return Err(e),
    }
    // The registration goes first: the controller elected next must not count the dead
    // broker as live.
    if let Some(ctl) = controller {
        tracing::warn!(broker = id, session = owner, "dead broker held /controller; removing it");
        match zk.delete(CONTROLLER, Some(ctl.version)).await {
            Ok(()) | Err(KeeperError::NoNode | KeeperError::BadVersion) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
