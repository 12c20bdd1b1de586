//! Znode paths and JSON payloads, in the shapes Kafka's ZooKeeper mode writes
//! (docs/znode-layout.md is the contract).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const BROKER_IDS: &str = "/brokers/ids";
pub const BROKER_TOPICS: &str = "/brokers/topics";
pub const CONTROLLER: &str = "/controller";
pub const CONTROLLER_EPOCH: &str = "/controller_epoch";
pub const CLUSTER_ID: &str = "/cluster/id";
pub const CONFIG_TOPICS: &str = "/config/topics";
pub const DELETE_TOPICS: &str = "/admin/delete_topics";
pub const PRODUCER_ID_BLOCK: &str = "/latest_producer_id_block";
/// Kafka's ZooKeeper-mode request for preferred-replica elections; the controller deletes it
/// once done.
pub const PREFERRED_REPLICA_ELECTION: &str = "/admin/preferred_replica_election";
/// Strom's counterpart for unclean elections asked for through ElectLeaders (same format;
/// Kafka's ZooKeeper mode had no such node, its controller took the request directly).
pub const UNCLEAN_LEADER_ELECTION: &str = "/admin/unclean_leader_election";

/// Persistent paths every broker makes sure exist on start (Kafka's `ensurePathsExist`).
pub const BASE_PATHS: &[&str] = &[
    BROKER_IDS,
    BROKER_TOPICS,
    "/brokers/seqid",
    "/config/changes",
    CONFIG_TOPICS,
    "/config/brokers",
    "/config/clients",
    DELETE_TOPICS,
    "/cluster",
    "/isr_change_notification",
];

pub fn broker_path(id: i32) -> String {
    format!("{BROKER_IDS}/{id}")
}

pub fn topic_path(topic: &str) -> String {
    format!("{BROKER_TOPICS}/{topic}")
}

pub fn partitions_path(topic: &str) -> String {
    format!("{BROKER_TOPICS}/{topic}/partitions")
}

pub fn partition_state_path(topic: &str, partition: i32) -> String {
    format!("{BROKER_TOPICS}/{topic}/partitions/{partition}/state")
}

pub fn topic_config_path(topic: &str) -> String {
    format!("{CONFIG_TOPICS}/{topic}")
}

pub fn delete_topic_path(topic: &str) -> String {
    format!("{DELETE_TOPICS}/{topic}")
}

/// `/brokers/ids/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerRegistration {
    #[serde(default)]
    pub version: i32,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<i32>,
    #[serde(default = "minus_one")]
    pub jmx_port: i32,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub listener_security_protocol_map: BTreeMap<String, String>,
    #[serde(default)]
    pub rack: Option<String>,
}

fn minus_one() -> i32 {
    -1
}

impl BrokerRegistration {
    pub fn new(host: &str, port: u16, rack: Option<String>, now_ms: i64) -> Self {
        BrokerRegistration {
            version: 5,
            host: Some(host.to_string()),
            port: Some(port as i32),
            jmx_port: -1,
            timestamp: Some(now_ms.to_string()),
            endpoints: vec![format!("PLAINTEXT://{host}:{port}")],
            listener_security_protocol_map: BTreeMap::from([("PLAINTEXT".to_string(), "PLAINTEXT".to_string())]),
            rack,
        }
    }

    /// The PLAINTEXT endpoint, from `endpoints` (newer writers) or `host`/`port`.
    pub fn endpoint(&self) -> Option<(String, u16)> {
        for ep in &self.endpoints {
            if let Some(rest) = ep.strip_prefix("PLAINTEXT://") {
                if let Some((h, p)) = rest.rsplit_once(':') {
                    if let Ok(port) = p.parse() {
                        return Some((h.trim_matches(['[', ']']).to_string(), port));
                    }
                }
            }
        }
        match (&self.host, self.port) {
            (Some(h), Some(p)) => u16::try_from(p).ok().map(|p| (h.clone(), p)),
            _ => None,
        }
    }
}

/// `/brokers/topics/<t>`: the replica assignment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicAssignment {
    #[serde(default)]
    pub version: i32,
    /// Partition id (as a string, Kafka's format) → replicas, preferred leader first.
    pub partitions: BTreeMap<String, Vec<i32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(default)]
    pub adding_replicas: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    pub removing_replicas: BTreeMap<String, Vec<i32>>,
}

impl TopicAssignment {
    pub fn new(assignment: &[Vec<i32>], topic_id: Uuid) -> Self {
        TopicAssignment {
            version: 3,
            partitions: assignment.iter().enumerate().map(|(p, r)| (p.to_string(), r.clone())).collect(),
            topic_id: Some(encode_uuid(topic_id)),
            adding_replicas: BTreeMap::new(),
            removing_replicas: BTreeMap::new(),
        }
    }

    /// Replicas by partition id, in partition order; `None` if ids are not 0..n.
    pub fn replicas(&self) -> Option<Vec<Vec<i32>>> {
        let mut parsed: Vec<(i32, &Vec<i32>)> =
            self.partitions.iter().map(|(k, v)| k.parse::<i32>().ok().map(|p| (p, v))).collect::<Option<_>>()?;
        parsed.sort_by_key(|(p, _)| *p);
        parsed
            .iter()
            .enumerate()
            .all(|(i, (p, _))| *p == i as i32)
            .then(|| parsed.into_iter().map(|(_, r)| r.clone()).collect())
    }

    pub fn topic_uuid(&self) -> Option<Uuid> {
        self.topic_id.as_deref().and_then(decode_uuid)
    }
}

/// `/brokers/topics/<t>/partitions/<p>/state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub controller_epoch: i32,
    pub leader: i32,
    #[serde(default = "one")]
    pub version: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
}

fn one() -> i32 {
    1
}

/// `/controller`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControllerInfo {
    #[serde(default)]
    pub version: i32,
    pub brokerid: i32,
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// `/config/topics/<t>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TopicConfigNode {
    #[serde(default)]
    pub version: i32,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// `/cluster/id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterIdNode {
    pub version: String,
    pub id: String,
}

/// `/latest_producer_id_block` (Kafka's ProducerIdBlock JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProducerIdBlockNode {
    pub version: i32,
    pub broker: i32,
    pub block_start: String,
    pub block_end: String,
}

/// Kafka's `Uuid.toString()`: URL-safe base64 without padding (22 characters).
pub fn encode_uuid(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Inverse of [`encode_uuid`].
pub fn decode_uuid(s: &str) -> Option<Uuid> {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::with_capacity(16);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    let arr: [u8; 16] = out.try_into().ok()?;
    Some(Uuid::from_bytes(arr))
}

/// A fresh random topic or cluster id (Kafka avoids ids whose base64 starts with '-').
pub fn random_uuid() -> Uuid {
    loop {
        let id = Uuid::from_bytes(rand::random());
        if id != Uuid::nil() && !encode_uuid(id).starts_with('-') {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_base64_round_trip() {
        for _ in 0..50 {
            let id = random_uuid();
            let s = encode_uuid(id);
            assert_eq!(s.len(), 22);
            assert_eq!(decode_uuid(&s), Some(id));
        }
    }

    #[test]
    fn parses_kafka_written_payloads() {
        let b: BrokerRegistration = serde_json::from_str(
            r#"{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"endpoints":["PLAINTEXT://kafka1:9092"],"jmx_port":-1,"features":{},"host":"kafka1","timestamp":"1","port":9092,"version":5}"#,
        )
        .unwrap();
        assert_eq!(b.endpoint(), Some(("kafka1".into(), 9092)));
        let t: TopicAssignment = serde_json::from_str(
            r#"{"version":2,"partitions":{"1":[2,1],"0":[1,2]},"adding_replicas":{},"removing_replicas":{}}"#,
        )
        .unwrap();
        assert_eq!(t.replicas(), Some(vec![vec![1, 2], vec![2, 1]]));
        let gap: TopicAssignment = serde_json::from_str(r#"{"version":2,"partitions":{"0":[1],"2":[1]}}"#).unwrap();
        assert_eq!(gap.replicas(), None);
    }
}
