//! The controller: one broker wins the ephemeral `/controller` znode and then keeps partition
//! states consistent with the assignments and the live brokers.
//!
//! It reacts to changes under `/brokers/ids`, `/brokers/topics` and `/admin/delete_topics`:
//! creates `state` znodes for new partitions, re-elects leaders whose broker died, removes
//! dead brokers from ISRs, gives topics without one a topic id, and carries out deletions.
//! Every leadership decision is made by [`decide_partition_state`] (failover) or the
//! functions of [`election`] (preferred and requested unclean elections); writes are version
//! checked so a stale controller cannot overwrite a newer state.
//!
//! With `auto.leader.rebalance.enable` the controller also moves leadership back to preferred
//! replicas: every `leader.imbalance.check.interval.seconds`, and a few seconds after a broker
//! registers (re-checking while a returning preferred replica is still catching up), when a
//! broker's share of partitions it prefers but does not lead exceeds
//! `leader.imbalance.per.broker.percentage`.

pub mod election;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use strom_keeper::client::KeeperClient;
use strom_keeper::{AddWatchMode, CreateMode, EventType, KeeperError, Op, WatchedEvent};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::cluster::znodes::*;
use crate::config::BrokerConfig;
use crate::handlers::now_ms;
use crate::replication::push;
use strom_proto::replication::PartitionLeadership;

/// How long after a broker registers the controller checks the leader balance, so the
/// returning broker has a moment to rejoin ISRs first.
const AFTER_REGISTRATION: Duration = Duration::from_secs(3);
/// How often, and for how long after a registration, the check repeats while a preferred
/// replica is live but still outside its ISR.
const CATCH_UP_RECHECK: Duration = Duration::from_secs(5);
const CATCH_UP_WINDOW: Duration = Duration::from_secs(120);

/// The controller's share of the broker configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `unclean.leader.election.enable`.
    pub unclean: bool,
    /// `auto.leader.rebalance.enable`.
    pub auto_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`.
    pub imbalance_check_interval: Duration,
    /// `leader.imbalance.per.broker.percentage`.
    pub imbalance_percentage: u32,
}

impl Settings {
    pub fn from_config(cfg: &BrokerConfig) -> Settings {
        Settings {
            unclean: cfg.unclean_leader_election_enable,
            auto_rebalance: cfg.auto_leader_rebalance_enable,
            imbalance_check_interval: cfg.leader_imbalance_check_interval,
            imbalance_percentage: cfg.leader_imbalance_per_broker_percentage,
        }
    }
}

/// Runs for the lifetime of one keeper session: campaigns for `/controller`, and while it
/// holds it, reconciles on every relevant change. Resigns (and campaigns again) when the
/// node no longer belongs to this session.
pub async fn run(
    zk: Arc<KeeperClient>,
    broker_id: i32,
    settings: Settings,
    mut events: broadcast::Receiver<WatchedEvent>,
) {
    // Election requests can arrive before the node exists; persistent watches fire on create.
    for path in [PREFERRED_REPLICA_ELECTION, UNCLEAN_LEADER_ELECTION] {
        if let Err(e) = zk.add_watch(path, AddWatchMode::Persistent).await {
            tracing::warn!(path, error = %e, "cannot watch election requests");
            return;
        }
    }
    loop {
        let epoch = match campaign(&zk, broker_id).await {
            Ok(Some(epoch)) => epoch,
            Ok(None) => {
                // Someone else is controller: wait for /controller to go away, then retry.
                if !wait_for(&mut events, |ev| ev.path == CONTROLLER && ev.event_type == EventType::NodeDeleted).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "controller election failed");
                return;
            }
        };
        tracing::info!(broker_id, controller_epoch = epoch, "elected controller");
        let controller = Controller { zk: zk.clone(), broker_id, epoch, settings: settings.clone() };
        if !controller.serve(&mut events).await {
            return;
        }
        tracing::warn!(broker_id, controller_epoch = epoch, "lost /controller; resigning");
    }
}

/// What woke the controller.
#[derive(Debug, Default)]
struct Wake {
    /// The event stream ended (session gone).
    closed: bool,
    /// A broker registered (`/brokers/ids/<id>` created).
    registered: bool,
    /// Anything that calls for a reconcile (or an election request).
    changed: bool,
}

impl Wake {
    fn add(&mut self, ev: &WatchedEvent) {
        if ev.path.starts_with(BROKER_IDS)
            && ev.path.len() > BROKER_IDS.len()
            && ev.event_type == EventType::NodeCreated
        {
            self.registered = true;
        }
        if is_controller_relevant(ev) || ev.path == CONTROLLER {
            self.changed = true;
        }
    }
}

impl Controller {
    /// Reconciles until the controller role is lost (true) or the session ends (false).
    async fn serve(&self, events: &mut broadcast::Receiver<WatchedEvent>) -> bool {
        let periodic = self.settings.imbalance_check_interval.max(Duration::from_secs(1));
        let mut next_periodic = Instant::now() + periodic;
        // A new controller checks the balance soon, as Kafka's does on failover.
        let mut soon: Option<Instant> = Some(Instant::now() + AFTER_REGISTRATION);
        let mut catch_up_until: Option<Instant> = None;
        loop {
            let retry = match self.reconcile().await {
                Ok(()) => false,
                Err(e @ (KeeperError::SessionExpired | KeeperError::Closed)) => {
                    tracing::warn!(error = %e, "controller session ended");
                    return false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "controller reconcile failed; retrying");
                    true
                }
            };
            let mut deadline = if retry { Instant::now() + Duration::from_millis(500) } else { next_periodic };
            if self.settings.auto_rebalance {
                deadline = deadline.min(next_periodic);
                if let Some(at) = soon {
                    deadline = deadline.min(at);
                }
            }
            let wake = next_wake(events, deadline).await;
            if wake.closed {
                return false;
            }
            match self.zk.exists(CONTROLLER, false).await {
                Ok(Some(stat)) if stat.ephemeral_owner == self.zk.session_id() => {}
                Ok(_) => return true,
                Err(KeeperError::SessionExpired | KeeperError::Closed) => return false,
                // Unknown ownership: the reconcile at the top of the loop retries.
                Err(_) => continue,
            }
            if wake.registered && self.settings.auto_rebalance {
                soon = Some(Instant::now() + AFTER_REGISTRATION);
                catch_up_until = Some(Instant::now() + CATCH_UP_WINDOW);
            }
            let now = Instant::now();
            let periodic_due = now >= next_periodic;
            let soon_due = soon.is_some_and(|at| now >= at);
            if periodic_due {
                next_periodic = now + periodic;
            }
            if self.settings.auto_rebalance && (periodic_due || soon_due) {
                soon = None;
                match self.balance_check().await {
                    Ok(catching_up) => {
                        if catching_up && catch_up_until.is_some_and(|until| now < until) {
                            soon = Some(now + CATCH_UP_RECHECK);
                        }
                    }
                    Err(e @ (KeeperError::SessionExpired | KeeperError::Closed)) => {
                        tracing::warn!(error = %e, "controller session ended");
                        return false;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "leader balance check failed; retrying");
                        soon = Some(now + Duration::from_secs(1));
                    }
                }
            }
        }
    }

    async fn balance_check(&self) -> Result<bool, KeeperError> {
        let live = self.live_brokers().await?;
        self.rebalance(&live).await
    }

    async fn live_brokers(&self) -> Result<BTreeSet<i32>, KeeperError> {
        Ok(self.zk.get_children(BROKER_IDS, false).await?.iter().filter_map(|c| c.parse().ok()).collect())
    }
}

/// Waits for a relevant event or `deadline`, then drains what else already arrived (a topic
/// creation touches several znodes) into one wake-up.
async fn next_wake(events: &mut broadcast::Receiver<WatchedEvent>, deadline: Instant) -> Wake {
    let mut wake = Wake::default();
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => break,
            Ok(Ok(ev)) => {
                wake.add(&ev);
                if wake.changed || wake.registered {
                    break;
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                wake.changed = true;
                wake.registered = true;
                break;
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                wake.closed = true;
                return wake;
            }
        }
    }
    loop {
        match events.try_recv() {
            Ok(ev) => wake.add(&ev),
            Err(broadcast::error::TryRecvError::Lagged(_)) => {
                wake.changed = true;
                wake.registered = true;
            }
            Err(broadcast::error::TryRecvError::Closed) => {
                wake.closed = true;
                break;
            }
            Err(broadcast::error::TryRecvError::Empty) => break,
        }
    }
    wake
}

fn is_controller_relevant(ev: &WatchedEvent) -> bool {
    let p = ev.path.as_str();
    if p.starts_with(DELETE_TOPICS) || p.starts_with(BROKER_IDS) {
        return true;
    }
    if (p == PREFERRED_REPLICA_ELECTION || p == UNCLEAN_LEADER_ELECTION) && ev.event_type != EventType::NodeDeleted {
        return true;
    }
    // Our own partition-state writes would otherwise wake us again.
    p.starts_with(BROKER_TOPICS) && !p.contains("/partitions")
}

/// Waits for an event matching `pred`; false when the event stream ended.
async fn wait_for(events: &mut broadcast::Receiver<WatchedEvent>, pred: impl Fn(&WatchedEvent) -> bool) -> bool {
    loop {
        match events.recv().await {
            Ok(ev) if pred(&ev) => return true,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return true,
            Err(broadcast::error::RecvError::Closed) => return false,
        }
    }
}

/// Tries to become controller; returns the new controller epoch on success.
async fn campaign(zk: &KeeperClient, broker_id: i32) -> Result<Option<i32>, KeeperError> {
    let info = ControllerInfo { version: 1, brokerid: broker_id, timestamp: Some(now_ms().to_string()) };
    let data = serde_json::to_vec(&info).map_err(|e| KeeperError::Marshalling(e.to_string()))?;
    match zk.create(CONTROLLER, &data, CreateMode::Ephemeral).await {
        Ok(_) => {}
        Err(KeeperError::NodeExists) => {
            // Ours from this very session (a retried create) counts as a win.
            match zk.exists(CONTROLLER, false).await? {
                Some(stat) if stat.ephemeral_owner == zk.session_id() => {}
                Some(_) => return Ok(None),
                // Vanished between our create and exists: campaign again.
                None => return Box::pin(campaign(zk, broker_id)).await,
            }
        }
        Err(e) => return Err(e),
    }
    bump_epoch(zk).await.map(Some)
}

async fn bump_epoch(zk: &KeeperClient) -> Result<i32, KeeperError> {
    loop {
        match zk.get_data(CONTROLLER_EPOCH, false).await {
            Ok((data, stat)) => {
                let current: i32 = std::str::from_utf8(&data).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
                let next = current + 1;
                match zk.set_data(CONTROLLER_EPOCH, next.to_string().as_bytes(), Some(stat.version)).await {
                    Ok(_) => return Ok(next),
                    Err(KeeperError::BadVersion) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(KeeperError::NoNode) => match zk.create(CONTROLLER_EPOCH, b"1", CreateMode::Persistent).await {
                Ok(_) => return Ok(1),
                Err(KeeperError::NodeExists) => continue,
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

struct Controller {
    zk: Arc<KeeperClient>,
    broker_id: i32,
    epoch: i32,
    settings: Settings,
}

impl Controller {
    async fn reconcile(&self) -> Result<(), KeeperError> {
        let zk = &self.zk;
        let live: BTreeSet<i32> =
            zk.get_children(BROKER_IDS, false).await?.iter().filter_map(|c| c.parse().ok()).collect();
        let deleting: BTreeSet<String> = zk.get_children(DELETE_TOPICS, false).await?.into_iter().collect();
        for topic in &deleting {
            self.delete_topic(topic).await?;
        }
        let mut changed = Vec::new();
        let topics: Vec<String> =
            zk.get_children(BROKER_TOPICS, false).await?.into_iter().filter(|t| !deleting.contains(t)).collect();
        let results = futures::future::join_all(topics.iter().map(|t| self.reconcile_topic(t, &live))).await;
        for r in results {
            changed.extend(r?);
        }
        if !changed.is_empty() {
            let brokers = crate::cluster::loader::load_brokers(zk).await?;
            push::send(&brokers, self.broker_id, self.epoch, &changed);
        }
        self.requested_elections(&live).await
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), KeeperError> {
        let zk = &self.zk;
        for path in [partitions_path(topic), topic_config_path(topic)] {
            match zk.delete_all(&path).await {
                Ok(()) | Err(KeeperError::NoNode) => {}
                Err(e) => return Err(e),
            }
        }
        // The topic node and the marker go together, so nobody sees the topic gone while it
        // is still "marked for deletion" (a re-create right after DeleteTopics must work).
        let both = vec![
            Op::Delete { path: topic_path(topic), version: -1 },
            Op::Delete { path: delete_topic_path(topic), version: -1 },
        ];
        match zk.multi(both).await {
            Ok(_) => {}
            Err(KeeperError::NoNode) => match zk.delete(&delete_topic_path(topic), None).await {
                Ok(()) | Err(KeeperError::NoNode) => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
        tracing::info!(topic, controller = self.broker_id, "topic deleted");
        Ok(())
    }

    /// Brings one topic's partition states in line; returns every state written (with the
    /// partition's replicas) for the LeaderAndIsr push.
    async fn reconcile_topic(
        &self,
        topic: &str,
        live: &BTreeSet<i32>,
    ) -> Result<Vec<(PartitionLeadership, Vec<i32>)>, KeeperError> {
        let mut changed = Vec::new();
        let zk = &self.zk;
        let (data, stat) = match zk.get_data(&topic_path(topic), false).await {
            Ok(v) => v,
            Err(KeeperError::NoNode) => return Ok(changed),
            Err(e) => return Err(e),
        };
        let mut assignment: TopicAssignment = match serde_json::from_slice(&data) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(topic, error = %e, "unreadable topic assignment");
                return Ok(changed);
            }
        };
        if assignment.topic_uuid().is_none() {
            // Topics written by tools that predate topic ids get one, as Kafka's controller does.
            assignment.topic_id = Some(encode_uuid(random_uuid()));
            assignment.version = assignment.version.max(3);
            let data = serde_json::to_vec(&assignment).map_err(|e| KeeperError::Marshalling(e.to_string()))?;
            match zk.set_data(&topic_path(topic), &data, Some(stat.version)).await {
                Ok(_) | Err(KeeperError::BadVersion) => {}
                Err(e) => return Err(e),
            }
        }
        let Some(replicas) = assignment.replicas() else {
            return Ok(changed);
        };
        // Partitions are independent: their reads and writes go to the keeper together
        // (pipelined on the session), so a failover touching many partitions costs a few
        // round trips, not one per partition.
        let unclean = self.unclean_for(topic).await?;
        let results = futures::future::join_all(
            replicas
                .iter()
                .enumerate()
                .map(|(p, replicas)| self.reconcile_partition(topic, p as i32, replicas, live, unclean)),
        )
        .await;
        for r in results {
            if let Some(c) = r? {
                changed.push(c);
            }
        }
        Ok(changed)
    }

    /// `unclean.leader.election.enable` for a topic: its override in `/config/topics/<t>`,
    /// else the broker setting.
    async fn unclean_for(&self, topic: &str) -> Result<bool, KeeperError> {
        match self.zk.get_data(&topic_config_path(topic), false).await {
            Ok((data, _)) => Ok(serde_json::from_slice::<TopicConfigNode>(&data)
                .ok()
                .and_then(|c| c.config.get("unclean.leader.election.enable").map(|v| v.trim() == "true"))
                .unwrap_or(self.settings.unclean)),
            Err(KeeperError::NoNode) => Ok(self.settings.unclean),
            Err(e) => Err(e),
        }
    }

    async fn reconcile_partition(
        &self,
        topic: &str,
        p: i32,
        replicas: &[i32],
        live: &BTreeSet<i32>,
        unclean: bool,
    ) -> Result<Option<(PartitionLeadership, Vec<i32>)>, KeeperError> {
        let zk = &self.zk;
        let current = crate::cluster::loader::load_partition_state(zk, topic, p).await?;
        let decided = decide_partition_state(current.as_ref().map(|(s, _)| s), replicas, live, self.epoch, unclean);
        let Some(next) = decided else { return Ok(None) };
        let data = serde_json::to_vec(&next).map_err(|e| KeeperError::Marshalling(e.to_string()))?;
        let path = partition_state_path(topic, p);
        let res = match current {
            Some((_, version)) => zk.set_data(&path, &data, Some(version)).await.map(|stat| stat.version),
            None => zk.create_all(&path, &data, CreateMode::Persistent).await.map(|_| 0),
        };
        match res {
            Ok(version) => {
                tracing::info!(
                    topic,
                    partition = p,
                    leader = next.leader,
                    leader_epoch = next.leader_epoch,
                    isr = ?next.isr,
                    "partition state changed"
                );
                let leadership = PartitionLeadership {
                    topic: topic.to_string(),
                    partition: p,
                    leader: next.leader,
                    leader_epoch: next.leader_epoch,
                    isr: next.isr.clone(),
                    replicas: replicas.to_vec(),
                    zk_version: version,
                };
                Ok(Some((leadership, replicas.to_vec())))
            }
            // Someone changed it concurrently; the resulting event brings us back here.
            Err(KeeperError::BadVersion | KeeperError::NodeExists) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Leader election and ISR maintenance for one partition: the new state to write, or `None`
/// when the current one stands. New partitions get the first live replica (assignment order)
/// as leader and the live replicas as ISR; a dead leader is replaced by the first live ISR
/// member (any live replica only with unclean election); dead brokers leave the ISR. The
/// leader epoch grows with every change, as in Kafka.
pub fn decide_partition_state(
    current: Option<&PartitionState>,
    replicas: &[i32],
    live: &BTreeSet<i32>,
    controller_epoch: i32,
    unclean: bool,
) -> Option<PartitionState> {
    let live_replicas: Vec<i32> = replicas.iter().copied().filter(|r| live.contains(r)).collect();
    let Some(cur) = current else {
        // No live replica: leave the partition offline until one registers.
        let leader = *live_replicas.first()?;
        return Some(PartitionState { controller_epoch, leader, version: 1, leader_epoch: 0, isr: live_replicas });
    };
    let live_isr: Vec<i32> = cur.isr.iter().copied().filter(|r| live.contains(r)).collect();
    if cur.leader >= 0 && live.contains(&cur.leader) {
        if live_isr.len() == cur.isr.len() {
            return None;
        }
        return Some(PartitionState {
            controller_epoch,
            leader: cur.leader,
            version: 1,
            leader_epoch: cur.leader_epoch + 1,
            isr: live_isr,
        });
    }
    // The leader is gone (or there is none): prefer assignment order among live ISR members.
    let from_isr = replicas.iter().copied().find(|r| live_isr.contains(r));
    let (leader, isr) = match from_isr {
        Some(l) => (l, live_isr),
        None if unclean && !live_replicas.is_empty() => (live_replicas[0], vec![live_replicas[0]]),
        None => {
            if cur.leader == -1 {
                return None;
            }
            // Offline: keep the last ISR so a returning member can lead again without data loss.
            (-1, cur.isr.clone())
        }
    };
    Some(PartitionState { controller_epoch, leader, version: 1, leader_epoch: cur.leader_epoch + 1, isr })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ids: &[i32]) -> BTreeSet<i32> {
        ids.iter().copied().collect()
    }

    #[test]
    fn new_partition_leader_is_first_live_replica() {
        let s = decide_partition_state(None, &[2, 1, 3], &live(&[1, 3]), 5, false).unwrap();
        assert_eq!((s.leader, s.leader_epoch, s.isr.clone()), (1, 0, vec![1, 3]));
        assert_eq!(s.controller_epoch, 5);
        assert!(decide_partition_state(None, &[2], &live(&[1]), 5, false).is_none());
    }

    #[test]
    fn dead_leader_fails_over_within_isr() {
        let cur = PartitionState { controller_epoch: 1, leader: 1, version: 1, leader_epoch: 3, isr: vec![1, 2] };
        let s = decide_partition_state(Some(&cur), &[1, 2, 3], &live(&[2, 3]), 2, false).unwrap();
        assert_eq!((s.leader, s.leader_epoch, s.isr), (2, 4, vec![2]));
        // 3 is live but was never in the ISR: clean election leaves the partition offline.
        let cur = PartitionState { controller_epoch: 1, leader: 1, version: 1, leader_epoch: 3, isr: vec![1] };
        let s = decide_partition_state(Some(&cur), &[1, 3], &live(&[3]), 2, false).unwrap();
        assert_eq!((s.leader, s.isr.clone()), (-1, vec![1]));
        assert!(decide_partition_state(Some(&s), &[1, 3], &live(&[3]), 2, false).is_none());
        let u = decide_partition_state(Some(&cur), &[1, 3], &live(&[3]), 2, true).unwrap();
        assert_eq!((u.leader, u.isr), (3, vec![3]));
        // The old leader returns: it leads again.
        let back = decide_partition_state(Some(&s), &[1, 3], &live(&[1, 3]), 2, false).unwrap();
        assert_eq!((back.leader, back.leader_epoch), (1, 5));
    }

    #[test]
    fn stable_state_is_left_alone_and_dead_followers_leave_isr() {
        let cur = PartitionState { controller_epoch: 1, leader: 1, version: 1, leader_epoch: 0, isr: vec![1, 2] };
        assert!(decide_partition_state(Some(&cur), &[1, 2], &live(&[1, 2]), 1, false).is_none());
        let s = decide_partition_state(Some(&cur), &[1, 2], &live(&[1]), 1, false).unwrap();
        assert_eq!((s.leader, s.isr), (1, vec![1]));
    }
}
