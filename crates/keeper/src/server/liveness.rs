//! Session liveness: which sessions still heartbeat, and expiring the ones that stopped.
//!
//! Clients heartbeat to whichever keeper they are connected to; followers pass the session
//! ids they heard from to the leader every half tick. Only the leader expires sessions, by
//! proposing `ExpireSessions` through Raft, so every keeper removes the same ephemerals at the
//! same zxid. A new leader gives every session a full timeout before expiring it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::node::Node;
use crate::tree::Command;
use crate::types::Op;

#[derive(Default)]
pub struct Liveness {
    touched: Mutex<HashSet<i64>>,
}

impl Liveness {
    pub fn touch(&self, session: i64) {
        self.touched.lock().unwrap_or_else(|e| e.into_inner()).insert(session);
    }

    fn take(&self) -> HashSet<i64> {
        std::mem::take(&mut *self.touched.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Runs until the node is dropped: expiry on the leader, touch forwarding on followers, and
/// the container reaper.
pub async fn run(node: std::sync::Weak<Node>, liveness: Arc<Liveness>, tick: Duration) {
    let period = (tick / 2).max(Duration::from_millis(50));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut deadlines: HashMap<i64, Instant> = HashMap::new();
    let mut was_leader = false;
    let mut last_reap = Instant::now();
    loop {
        interval.tick().await;
        let Some(node) = node.upgrade() else { return };
        let touched = liveness.take();
        if !node.is_leader() {
            was_leader = false;
            deadlines.clear();
            if !touched.is_empty() {
                let sessions: Vec<i64> = touched.iter().copied().collect();
                if node.touch_leader(sessions).await.is_err() {
                    // Keep them for the next round, when a leader may be known.
                    for s in touched {
                        liveness.touch(s);
                    }
                }
            }
            continue;
        }
        if !was_leader {
            deadlines.clear();
            was_leader = true;
        }
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let tree = node.replica.read();
            let timeout_of = |id: &i64| tree.session(*id).map(|s| Duration::from_millis(s.timeout_ms.max(0) as u64));
            for id in &touched {
                if let Some(t) = timeout_of(id) {
                    deadlines.insert(*id, now + t);
                }
            }
            for (id, info) in tree.sessions() {
                deadlines.entry(*id).or_insert_with(|| now + Duration::from_millis(info.timeout_ms.max(0) as u64));
            }
            deadlines.retain(|id, deadline| {
                if tree.session(*id).is_none() {
                    return false;
                }
                if *deadline <= now {
                    expired.push(*id);
                    return false;
                }
                true
            });
        }
        if !expired.is_empty() {
            tracing::info!(sessions = ?expired, "expiring sessions");
            let rx = node.submit(Command::ExpireSessions { session_ids: expired });
            drop(rx);
        }
        if last_reap.elapsed() >= Duration::from_secs(5) {
            last_reap = Instant::now();
            let containers = node.replica.read().empty_containers();
            for path in containers {
                let time_ms = now_ms();
                drop(node.submit(Command::Write {
                    session_id: 0,
                    time_ms,
                    ops: vec![Op::Delete { path, version: -1 }],
                    multi: false,
                }));
            }
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
