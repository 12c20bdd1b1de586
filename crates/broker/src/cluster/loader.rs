//! Reads cluster metadata znodes into cache structures.

use std::collections::BTreeMap;

use strom_keeper::client::KeeperClient;
use strom_keeper::{CreateMode, KeeperError};
use uuid::Uuid;

use super::znodes::*;
use crate::metadata::{BrokerInfo, PartitionMeta, TopicMeta};

/// Reads `/cluster/id`, creating it with a fresh id on a new cluster.
pub async fn get_or_create_cluster_id(zk: &KeeperClient) -> Result<String, KeeperError> {
    loop {
        match zk.get_data(CLUSTER_ID, false).await {
            Ok((data, _)) => {
                return serde_json::from_slice::<ClusterIdNode>(&data)
                    .map(|n| n.id)
                    .map_err(|e| KeeperError::Marshalling(format!("{CLUSTER_ID}: {e}")));
            }
            Err(KeeperError::NoNode) => {
                let node = ClusterIdNode { version: "1".into(), id: encode_uuid(random_uuid()) };
                let data = serde_json::to_vec(&node).map_err(|e| KeeperError::Marshalling(e.to_string()))?;
                match zk.create_all(CLUSTER_ID, &data, CreateMode::Persistent).await {
                    Ok(_) => {
                        tracing::info!(cluster_id = %node.id, "created new cluster id");
                        return Ok(node.id);
                    }
                    // Another broker won the race; read theirs.
                    Err(KeeperError::NodeExists) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Live brokers from `/brokers/ids`.
pub async fn load_brokers(zk: &KeeperClient) -> Result<BTreeMap<i32, BrokerInfo>, KeeperError> {
    let mut out = BTreeMap::new();
    for child in zk.get_children(BROKER_IDS, false).await? {
        let Ok(id) = child.parse::<i32>() else {
            tracing::warn!(node = %child, "ignoring non-numeric broker id znode");
            continue;
        };
        let data = match zk.get_data(&broker_path(id), false).await {
            Ok((data, _)) => data,
            Err(KeeperError::NoNode) => continue,
            Err(e) => return Err(e),
        };
        let reg = match serde_json::from_slice::<BrokerRegistration>(&data) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(broker = id, error = %e, "unreadable broker registration");
                continue;
            }
        };
        if let Some((host, port)) = reg.endpoint() {
            out.insert(id, BrokerInfo { id, host, port, rack: reg.rack });
        }
    }
    Ok(out)
}

/// The controller's broker id, or -1.
pub async fn load_controller(zk: &KeeperClient) -> Result<i32, KeeperError> {
    match zk.get_data(CONTROLLER, false).await {
        Ok((data, _)) => Ok(serde_json::from_slice::<ControllerInfo>(&data).map(|c| c.brokerid).unwrap_or(-1)),
        Err(KeeperError::NoNode) => Ok(-1),
        Err(e) => Err(e),
    }
}

/// One topic's assignment, partition states and config; `None` if the topic does not exist
/// (or its assignment is unreadable, which is logged).
pub async fn load_topic(zk: &KeeperClient, name: &str) -> Result<Option<TopicMeta>, KeeperError> {
    let data = match zk.get_data(&topic_path(name), false).await {
        Ok((data, _)) => data,
        Err(KeeperError::NoNode) => return Ok(None),
        Err(e) => return Err(e),
    };
    let assignment: TopicAssignment = match serde_json::from_slice(&data) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "unreadable topic assignment; topic ignored");
            return Ok(None);
        }
    };
    let Some(replicas) = assignment.replicas() else {
        tracing::warn!(topic = name, "topic assignment has non-contiguous partition ids; topic ignored");
        return Ok(None);
    };
    // One pipelined burst of reads, not a round trip per partition.
    let states = futures::future::join_all((0..replicas.len()).map(|p| load_partition_state(zk, name, p as i32))).await;
    let mut partitions = Vec::with_capacity(replicas.len());
    for (replicas, state) in replicas.into_iter().zip(states) {
        let state = state?;
        partitions.push(match state {
            Some((s, version)) => PartitionMeta {
                replicas,
                leader: s.leader,
                leader_epoch: s.leader_epoch,
                isr: s.isr,
                zk_version: version,
            },
            None => PartitionMeta { replicas, leader: -1, leader_epoch: -1, isr: Vec::new(), zk_version: -1 },
        });
    }
    let config = match zk.get_data(&topic_config_path(name), false).await {
        Ok((data, _)) => serde_json::from_slice::<TopicConfigNode>(&data).map(|c| c.config).unwrap_or_default(),
        Err(KeeperError::NoNode) => BTreeMap::new(),
        Err(e) => return Err(e),
    };
    Ok(Some(TopicMeta {
        name: name.to_string(),
        id: assignment.topic_uuid().unwrap_or(Uuid::nil()),
        partitions,
        config,
        deleting: false,
    }))
}

/// A partition's `state` znode and its version, if present and readable.
pub async fn load_partition_state(
    zk: &KeeperClient,
    topic: &str,
    partition: i32,
) -> Result<Option<(PartitionState, i32)>, KeeperError> {
    match zk.get_data(&partition_state_path(topic, partition), false).await {
        Ok((data, stat)) => match serde_json::from_slice::<PartitionState>(&data) {
            Ok(s) => Ok(Some((s, stat.version))),
            Err(e) => {
                tracing::warn!(topic, partition, error = %e, "unreadable partition state");
                Ok(None)
            }
        },
        Err(KeeperError::NoNode) => Ok(None),
        Err(e) => Err(e),
    }
}
