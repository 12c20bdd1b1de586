//! Watch registrations of the sessions connected to this server, and which of them a change
//! fires. Watches live only in the memory of the server the client is connected to (as in
//! ZooKeeper); the client library re-registers them after it fails over.

use std::collections::{HashMap, HashSet};

use crate::error::KeeperError;
use crate::path;
use crate::tree::Trigger;
use crate::types::{AddWatchMode, EventType, WatcherType};

type Registry = HashMap<String, HashSet<i64>>;

#[derive(Default)]
pub struct WatchManager {
    /// Set by getData and exists: fire on created, deleted, data changed. One-shot.
    data: Registry,
    /// Set by getChildren: fire on children changed and deleted. One-shot.
    child: Registry,
    persistent: Registry,
    recursive: Registry,
}

fn add(reg: &mut Registry, path: &str, session: i64) {
    reg.entry(path.to_string()).or_default().insert(session);
}

fn take(reg: &mut Registry, path: &str, out: &mut Vec<i64>) {
    if let Some(set) = reg.remove(path) {
        out.extend(set);
    }
}

fn remove(reg: &mut Registry, path: &str, session: i64) -> bool {
    let Some(set) = reg.get_mut(path) else { return false };
    let removed = set.remove(&session);
    if set.is_empty() {
        reg.remove(path);
    }
    removed
}

impl WatchManager {
    pub fn add_data_watch(&mut self, path: &str, session: i64) {
        add(&mut self.data, path, session);
    }

    pub fn add_child_watch(&mut self, path: &str, session: i64) {
        add(&mut self.child, path, session);
    }

    pub fn add_persistent(&mut self, path: &str, session: i64, mode: AddWatchMode) {
        match mode {
            AddWatchMode::Persistent => add(&mut self.persistent, path, session),
            AddWatchMode::PersistentRecursive => add(&mut self.recursive, path, session),
        }
    }

    /// ZooKeeper's removeWatches: `NoWatcher` when the session had none of that kind there.
    pub fn remove(&mut self, path: &str, session: i64, kind: WatcherType) -> Result<(), KeeperError> {
        let mut removed = false;
        if matches!(kind, WatcherType::Data | WatcherType::Any) {
            removed |= remove(&mut self.data, path, session);
        }
        if matches!(kind, WatcherType::Children | WatcherType::Any) {
            removed |= remove(&mut self.child, path, session);
        }
        if kind == WatcherType::Any {
            removed |= remove(&mut self.persistent, path, session);
            removed |= remove(&mut self.recursive, path, session);
        }
        if removed {
            Ok(())
        } else {
            Err(KeeperError::NoWatcher)
        }
    }

    pub fn remove_session(&mut self, session: i64) {
        for reg in [&mut self.data, &mut self.child, &mut self.persistent, &mut self.recursive] {
            reg.retain(|_, set| {
                set.remove(&session);
                !set.is_empty()
            });
        }
    }

    /// Paths and kinds a session watches, for the client library's re-registration and tests.
    pub fn count(&self) -> usize {
        [&self.data, &self.child, &self.persistent, &self.recursive]
            .iter()
            .map(|r| r.values().map(HashSet::len).sum::<usize>())
            .sum()
    }

    /// The (session, event, path) deliveries a batch of triggers causes, one per session and
    /// event, in trigger order. One-shot watches are consumed.
    pub fn fire(&mut self, triggers: &[Trigger]) -> Vec<(i64, EventType, String)> {
        let mut out = Vec::new();
        for t in triggers {
            let mut sessions = Vec::new();
            match t.event {
                EventType::NodeCreated | EventType::NodeDataChanged => take(&mut self.data, &t.path, &mut sessions),
                EventType::NodeDeleted => {
                    take(&mut self.data, &t.path, &mut sessions);
                    take(&mut self.child, &t.path, &mut sessions);
                }
                EventType::NodeChildrenChanged => take(&mut self.child, &t.path, &mut sessions),
                EventType::None => {}
            }
            if let Some(set) = self.persistent.get(&t.path) {
                sessions.extend(set.iter().copied());
            }
            if t.event != EventType::NodeChildrenChanged && !self.recursive.is_empty() {
                for (p, set) in &self.recursive {
                    if path::is_within(&t.path, p) {
                        sessions.extend(set.iter().copied());
                    }
                }
            }
            let mut seen = HashSet::new();
            for s in sessions {
                if seen.insert(s) {
                    out.push((s, t.event, t.path.clone()));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str, event: EventType) -> Trigger {
        Trigger { path: path.into(), event }
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut w = WatchManager::default();
        w.add_data_watch("/a", 1);
        w.add_child_watch("/", 2);
        let fired = w.fire(&[t("/a", EventType::NodeCreated), t("/", EventType::NodeChildrenChanged)]);
        assert_eq!(
            fired,
            vec![(1, EventType::NodeCreated, "/a".into()), (2, EventType::NodeChildrenChanged, "/".into())]
        );
        assert!(w.fire(&[t("/a", EventType::NodeDataChanged)]).is_empty());
    }

    #[test]
    fn persistent_and_recursive() {
        let mut w = WatchManager::default();
        w.add_persistent("/p", 1, AddWatchMode::Persistent);
        w.add_persistent("/r", 2, AddWatchMode::PersistentRecursive);
        for _ in 0..2 {
            assert_eq!(w.fire(&[t("/p", EventType::NodeDataChanged)]).len(), 1);
            assert_eq!(
                w.fire(&[t("/r/x/y", EventType::NodeCreated)]),
                vec![(2, EventType::NodeCreated, "/r/x/y".into())]
            );
        }
        // Recursive watches do not deliver children-changed events.
        assert!(w.fire(&[t("/r", EventType::NodeChildrenChanged)]).is_empty());
        assert!(w.remove("/r", 2, WatcherType::Any).is_ok());
        assert_eq!(w.remove("/r", 2, WatcherType::Any), Err(KeeperError::NoWatcher));
        w.remove_session(1);
        assert_eq!(w.count(), 0);
    }
}
