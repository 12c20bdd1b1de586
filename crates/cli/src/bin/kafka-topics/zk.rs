//! The `--zookeeper` back end: reads and writes the znodes of docs/znode-layout.md through the
//! keeper client, as Kafka's ZooKeeper-mode tool did. The controller does the rest (partition
//! state on create, the actual removal on delete).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use strom_keeper::client::KeeperClient;
use strom_keeper::{CreateMode, KeeperError, Op};

use crate::model::{
    already_exists, missing_topic, validate_topic_name, PartitionDescription, TopicCommandError, TopicDescription,
    TopicSpec,
};

const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Backend {
    zk: KeeperClient,
}

fn topic_path(t: &str) -> String {
    format!("/brokers/topics/{t}")
}

fn config_path(t: &str) -> String {
    format!("/config/topics/{t}")
}

fn bad_json(path: &str, e: impl std::fmt::Display) -> TopicCommandError {
    TopicCommandError::Message(format!("znode {path} does not hold valid JSON: {e}"))
}

/// `/brokers/topics/<t>`'s assignment, partition → replicas, ordered by partition.
fn parse_assignment(path: &str, data: &[u8]) -> Result<BTreeMap<i32, Vec<i32>>, TopicCommandError> {
    let v: Value = serde_json::from_slice(data).map_err(|e| bad_json(path, e))?;
    let parts =
        v.get("partitions").and_then(Value::as_object).ok_or_else(|| bad_json(path, "no \"partitions\" object"))?;
    let mut out = BTreeMap::new();
    for (p, replicas) in parts {
        let p: i32 = p.parse().map_err(|_| bad_json(path, format!("partition key '{p}'")))?;
        let replicas = replicas
            .as_array()
            .ok_or_else(|| bad_json(path, format!("replicas of partition {p}")))?
            .iter()
            .map(|r| r.as_i64().map(|r| r as i32).ok_or_else(|| bad_json(path, format!("replica of partition {p}"))))
            .collect::<Result<Vec<i32>, _>>()?;
        out.insert(p, replicas);
    }
    Ok(out)
}

fn assignment_json(assignment: &BTreeMap<i32, Vec<i32>>) -> Vec<u8> {
    let partitions: serde_json::Map<String, Value> =
        assignment.iter().map(|(p, r)| (p.to_string(), json!(r))).collect();
    json!({"version": 2, "partitions": partitions, "adding_replicas": {}, "removing_replicas": {}})
        .to_string()
        .into_bytes()
}

fn config_json(configs: &BTreeMap<String, String>) -> Vec<u8> {
    json!({"version": 1, "config": configs}).to_string().into_bytes()
}

/// Round-robin: partition p's replicas start at live broker `p mod n` and continue in order,
/// so leaders (first replicas) spread evenly.
fn round_robin(brokers: &[i32], first_partition: i32, count: i32, rf: usize) -> BTreeMap<i32, Vec<i32>> {
    (first_partition..first_partition + count)
        .map(|p| {
            let replicas = (0..rf).map(|j| brokers[(p as usize + j) % brokers.len()]).collect();
            (p, replicas)
        })
        .collect()
}

impl Backend {
    pub async fn connect(connect: &str) -> Result<Backend, TopicCommandError> {
        let zk = tokio::time::timeout(CONNECT_TIMEOUT, KeeperClient::connect(connect, SESSION_TIMEOUT))
            .await
            .map_err(|_| {
                TopicCommandError::Message(format!(
                    "Timed out waiting for connection while in state: CONNECTING (keeper at {connect})"
                ))
            })??;
        Ok(Backend { zk })
    }

    pub async fn close(self) {
        self.zk.close().await;
    }

    pub async fn live_brokers(&self) -> Result<Vec<i32>, TopicCommandError> {
        let ids = match self.zk.get_children("/brokers/ids", false).await {
            Ok(ids) => ids,
            Err(KeeperError::NoNode) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut ids: Vec<i32> = ids.iter().filter_map(|i| i.parse().ok()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    async fn ensure_parent(&self, path: &str) -> Result<(), TopicCommandError> {
        match self.zk.create_all(path, b"", CreateMode::Persistent).await {
            Ok(_) | Err(KeeperError::NodeExists) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create(&self, spec: &TopicSpec, if_not_exists: bool) -> Result<bool, TopicCommandError> {
        validate_topic_name(&spec.name)?;
        if self.zk.exists(&topic_path(&spec.name), false).await?.is_some() {
            return if if_not_exists { Ok(false) } else { Err(already_exists(&spec.name)) };
        }
        let brokers = self.live_brokers().await?;
        let assignment = match &spec.assignment {
            Some(a) => {
                for replicas in a {
                    if let Some(b) = replicas.iter().find(|b| !brokers.contains(b)) {
                        return Err(TopicCommandError::Message(format!(
                            "Unknown broker {b} in replica assignment; live brokers: {brokers:?}"
                        )));
                    }
                }
                a.iter().cloned().enumerate().map(|(p, r)| (p as i32, r)).collect()
            }
            None => {
                let partitions = spec
                    .partitions
                    .ok_or_else(|| TopicCommandError::Usage("Missing required argument \"[partitions]\"".into()))?;
                let rf = spec.replication_factor.ok_or_else(|| {
                    TopicCommandError::Usage("Missing required argument \"[replication-factor]\"".into())
                })?;
                if rf as usize > brokers.len() {
                    return Err(TopicCommandError::Message(format!(
                        "Replication factor: {rf} larger than available brokers: {}.",
                        brokers.len()
                    )));
                }
                round_robin(&brokers, 0, partitions, rf as usize)
            }
        };
        let configs: BTreeMap<String, String> = spec.configs.iter().cloned().collect();
        self.ensure_parent("/config/topics").await?;
        self.ensure_parent("/brokers/topics").await?;
        let ops = vec![
            Op::Create { path: config_path(&spec.name), data: config_json(&configs), mode: CreateMode::Persistent },
            Op::Create {
                path: topic_path(&spec.name),
                data: assignment_json(&assignment),
                mode: CreateMode::Persistent,
            },
        ];
        match self.zk.multi(ops).await {
            Ok(_) => Ok(true),
            Err(KeeperError::NodeExists) if if_not_exists => Ok(false),
            Err(KeeperError::NodeExists) => Err(already_exists(&spec.name)),
            Err(e) => Err(e.into()),
        }
    }

    async fn marked_for_deletion(&self) -> Result<Vec<String>, TopicCommandError> {
        match self.zk.get_children("/admin/delete_topics", false).await {
            Ok(c) => Ok(c),
            Err(KeeperError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    async fn topics(&self) -> Result<Vec<String>, TopicCommandError> {
        match self.zk.get_children("/brokers/topics", false).await {
            Ok(c) => Ok(c),
            Err(KeeperError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list(&self) -> Result<Vec<String>, TopicCommandError> {
        let deleting = self.marked_for_deletion().await?;
        Ok(self
            .topics()
            .await?
            .into_iter()
            .map(|t| if deleting.contains(&t) { format!("{t} - marked for deletion") } else { t })
            .collect())
    }

    pub async fn describe(&self, names: &[String]) -> Result<Vec<TopicDescription>, TopicCommandError> {
        let deleting = self.marked_for_deletion().await?;
        let all = self.topics().await?;
        let mut out = Vec::new();
        for name in all.iter().filter(|t| names.is_empty() || names.contains(t)) {
            let path = topic_path(name);
            let (data, _) = match self.zk.get_data(&path, false).await {
                Ok(d) => d,
                // Deleted between listing and reading.
                Err(KeeperError::NoNode) => continue,
                Err(e) => return Err(e.into()),
            };
            let topic_id = serde_json::from_slice::<Value>(&data)
                .ok()
                .and_then(|v| v.get("topic_id").and_then(Value::as_str).map(str::to_owned));
            let assignment = parse_assignment(&path, &data)?;
            let mut partitions = Vec::with_capacity(assignment.len());
            for (p, replicas) in assignment {
                let state_path = format!("{path}/partitions/{p}/state");
                let (leader, isr) = match self.zk.get_data(&state_path, false).await {
                    Ok((state, _)) => {
                        let v: Value = serde_json::from_slice(&state).map_err(|e| bad_json(&state_path, e))?;
                        let leader = v.get("leader").and_then(Value::as_i64).unwrap_or(-1) as i32;
                        let isr = v
                            .get("isr")
                            .and_then(Value::as_array)
                            .map(|a| a.iter().filter_map(Value::as_i64).map(|i| i as i32).collect())
                            .unwrap_or_default();
                        (leader, isr)
                    }
                    // The controller has not elected a leader yet.
                    Err(KeeperError::NoNode) => (-1, Vec::new()),
                    Err(e) => return Err(e.into()),
                };
                partitions.push(PartitionDescription { partition: p, leader, replicas, isr });
            }
            let configs = match self.zk.get_data(&config_path(name), false).await {
                Ok((cfg, _)) => {
                    let v: Value = serde_json::from_slice(&cfg).map_err(|e| bad_json(&config_path(name), e))?;
                    v.get("config")
                        .and_then(Value::as_object)
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                                .collect()
                        })
                        .unwrap_or_default()
                }
                Err(KeeperError::NoNode) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            out.push(TopicDescription {
                name: name.clone(),
                topic_id,
                configs,
                partitions,
                marked_for_deletion: deleting.contains(name),
            });
        }
        Ok(out)
    }

    pub async fn delete(&self, name: &str, if_exists: bool) -> Result<(), TopicCommandError> {
        if self.zk.exists(&topic_path(name), false).await?.is_none() {
            return if if_exists { Ok(()) } else { Err(missing_topic(name)) };
        }
        self.ensure_parent("/admin/delete_topics").await?;
        match self.zk.create(&format!("/admin/delete_topics/{name}"), b"", CreateMode::Persistent).await {
            Ok(_) => {
                println!("Topic {name} is marked for deletion.");
                println!("Note: This will have no impact if delete.topic.enable is not set to true.");
                Ok(())
            }
            Err(KeeperError::NodeExists) => {
                println!("Topic {name} is already marked for deletion.");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn alter(
        &self,
        name: &str,
        partitions: Option<i32>,
        configs: &[(String, String)],
        delete_configs: &[String],
        if_exists: bool,
    ) -> Result<(), TopicCommandError> {
        let path = topic_path(name);
        let (data, stat) = match self.zk.get_data(&path, false).await {
            Ok(d) => d,
            Err(KeeperError::NoNode) if if_exists => return Ok(()),
            Err(KeeperError::NoNode) => return Err(missing_topic(name)),
            Err(e) => return Err(e.into()),
        };
        if !configs.is_empty() || !delete_configs.is_empty() {
            let cpath = config_path(name);
            let (current, cstat) = match self.zk.get_data(&cpath, false).await {
                Ok((d, s)) => (Some(d), Some(s)),
                Err(KeeperError::NoNode) => (None, None),
                Err(e) => return Err(e.into()),
            };
            let mut merged: BTreeMap<String, String> = match &current {
                Some(d) => {
                    let v: Value = serde_json::from_slice(d).map_err(|e| bad_json(&cpath, e))?;
                    v.get("config")
                        .and_then(Value::as_object)
                        .map(|m| {
                            m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect()
                        })
                        .unwrap_or_default()
                }
                None => BTreeMap::new(),
            };
            for (k, v) in configs {
                merged.insert(k.clone(), v.clone());
            }
            for k in delete_configs {
                merged.remove(k);
            }
            match cstat {
                Some(s) => {
                    self.zk.set_data(&cpath, &config_json(&merged), Some(s.version)).await?;
                }
                None => {
                    self.zk.create(&cpath, &config_json(&merged), CreateMode::Persistent).await?;
                }
            }
            println!("Updated config for topic {name}.");
        }
        if let Some(total) = partitions {
            let mut assignment = parse_assignment(&path, &data)?;
            let current = assignment.len() as i32;
            if total <= current {
                return Err(TopicCommandError::Message(format!(
                    "The number of partitions for a topic can only be increased. Topic {name} currently has {current} partitions, {total} would not be an increase."
                )));
            }
            let rf = assignment.values().next().map_or(1, Vec::len);
            let brokers = self.live_brokers().await?;
            if rf > brokers.len() {
                return Err(TopicCommandError::Message(format!(
                    "Replication factor: {rf} larger than available brokers: {}.",
                    brokers.len()
                )));
            }
            assignment.extend(round_robin(&brokers, current, total - current, rf));
            match self.zk.set_data(&path, &assignment_json(&assignment), Some(stat.version)).await {
                Ok(_) => {}
                Err(KeeperError::BadVersion) => {
                    return Err(TopicCommandError::Message(format!(
                        "Topic {name} was modified concurrently; retry the command"
                    )))
                }
                Err(e) => return Err(e.into()),
            }
            println!("WARNING: If partitions are increased for a topic that has a key, the partition logic or ordering of the messages will be affected");
            println!("Adding partitions succeeded!");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_spreads_leaders() {
        let a = round_robin(&[1, 2, 3], 0, 4, 2);
        assert_eq!(a[&0], vec![1, 2]);
        assert_eq!(a[&1], vec![2, 3]);
        assert_eq!(a[&2], vec![3, 1]);
        assert_eq!(a[&3], vec![1, 2]);
        let more = round_robin(&[1, 2, 3], 4, 1, 1);
        assert_eq!(more[&4], vec![2]);
    }

    #[test]
    fn assignment_json_round_trips() {
        let a = round_robin(&[5], 0, 3, 1);
        let parsed = parse_assignment("/x", &assignment_json(&a)).ok();
        assert_eq!(parsed, Some(a));
        assert!(parse_assignment("/x", b"{\"partitions\": {\"a\": [1]}}").is_err());
    }
}
