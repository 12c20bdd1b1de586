//! [`Admin`]: topic management over the Kafka protocol (CreateTopics, DeleteTopics,
//! CreatePartitions, DescribeConfigs, ElectLeaders, Metadata), sent to the controller as
//! Kafka's admin does.

use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    ElectLeadersRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::{Client, ClusterMetadata, TopicMetadata};
use crate::error::ClientError;

/// A topic to create. `partitions`/`replication_factor` of -1 mean the broker's defaults.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Explicit `(partition, replicas)` assignment; when set, counts must be -1.
    pub assignment: Vec<(i32, Vec<i32>)>,
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    pub fn new(name: &str, partitions: i32, replication_factor: i16) -> Self {
        NewTopic { name: name.to_owned(), partitions, replication_factor, assignment: Vec::new(), configs: Vec::new() }
    }
}

/// One configuration entry as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    /// Kafka's `ConfigSource` (1 = topic, 4 = static broker, 5 = default, ...).
    pub source: i8,
    pub is_sensitive: bool,
}

impl ConfigEntry {
    /// Whether the value was set explicitly for the resource (not a default).
    pub fn is_override(&self) -> bool {
        self.source == 1
    }
}

/// Kafka's DescribeConfigs resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    Topic = 2,
    Broker = 4,
}

/// Kafka's leader election types (ElectLeaders' `election_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to each partition's preferred (first assigned) replica.
    Preferred = 0,
    /// Elect any live replica for partitions without a leader, even an out-of-sync one.
    Unclean = 1,
}

impl std::fmt::Display for ElectionType {
    /// Java's `ElectionType.toString()`, which Kafka's tool prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        })
    }
}

/// One partition's election result: `Ok` when a new leader was elected.
pub type ElectionResult = ((String, i32), Result<(), ClientError>);

/// Administrative operations. Each returns one result per topic, in request order.
#[derive(Clone)]
pub struct Admin {
    client: Client,
    timeout: Duration,
}

impl Admin {
    pub fn new(client: Client) -> Admin {
        let timeout = client.config().request_timeout;
        Admin { client, timeout }
    }

    /// Sets how long the broker may take over a request (the `timeout_ms` sent); defaults to
    /// the client's request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Admin {
        self.timeout = timeout;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn timeout_ms(&self) -> i32 {
        self.timeout.as_millis().min(i32::MAX as u128) as i32
    }

    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<(String, Result<(), ClientError>)>, ClientError> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(topic_name(&t.name))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_assignments(
                                t.assignment
                                    .iter()
                                    .map(|(p, replicas)| {
                                        CreatableReplicaAssignment::default()
                                            .with_partition_index(*p)
                                            .with_broker_ids(replicas.iter().map(|&b| BrokerId(b)).collect())
                                    })
                                    .collect(),
                            )
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(k.clone()))
                                            .with_value(Some(StrBytes::from_string(v.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let conn = self.client.controller_connection().await?;
        let resp = conn.send(&req).await?;
        let results = topics
            .iter()
            .map(|t| {
                let r = resp.topics.iter().find(|r| r.name.0.as_str() == t.name);
                let result = match r {
                    None => Err(ClientError::protocol("CreateTopics response", format!("no entry for '{}'", t.name))),
                    Some(r) => crate::error::check(
                        r.error_code,
                        || format!("create topic '{}'", t.name),
                        r.error_message.as_deref(),
                    ),
                };
                (t.name.clone(), result)
            })
            .collect();
        Ok(results)
    }

    pub async fn delete_topics(&self, names: &[&str]) -> Result<Vec<(String, Result<(), ClientError>)>, ClientError> {
        let conn = self.client.controller_connection().await?;
        let version = conn.version(ApiKey::DeleteTopics).unwrap_or(1);
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        if version >= 6 {
            req.topics = names.iter().map(|n| DeleteTopicState::default().with_name(Some(topic_name(n)))).collect();
        } else {
            req.topic_names = names.iter().map(|n| topic_name(n)).collect();
        }
        let resp = conn.send(&req).await?;
        Ok(names
            .iter()
            .map(|&n| {
                let r = resp.responses.iter().find(|r| r.name.as_ref().is_some_and(|rn| rn.0.as_str() == n));
                let result = match r {
                    None => Err(ClientError::protocol("DeleteTopics response", format!("no entry for '{n}'"))),
                    Some(r) => {
                        crate::error::check(r.error_code, || format!("delete topic '{n}'"), r.error_message.as_deref())
                    }
                };
                (n.to_owned(), result)
            })
            .collect())
    }

    /// Grows `topic` to `total` partitions.
    pub async fn create_partitions(&self, topic: &str, total: i32, validate_only: bool) -> Result<(), ClientError> {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(validate_only)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(total)
                .with_assignments(None)]);
        let conn = self.client.controller_connection().await?;
        let resp = conn.send(&req).await?;
        let r = resp
            .results
            .iter()
            .find(|r| r.name.0.as_str() == topic)
            .ok_or_else(|| ClientError::protocol("CreatePartitions response", format!("no entry for '{topic}'")))?;
        crate::error::check(r.error_code, || format!("alter partitions of '{topic}'"), r.error_message.as_deref())
    }

    /// Elects leaders for `partitions` (`None`: every partition, for which the broker reports
    /// only the partitions that needed an election). Waits up to the admin timeout for the
    /// elections to take effect; results are sorted by topic and partition.
    pub async fn elect_leaders(
        &self,
        kind: ElectionType,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<ElectionResult>, ClientError> {
        let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = std::collections::BTreeMap::new();
        for (t, p) in partitions.unwrap_or_default() {
            by_topic.entry(t.as_str()).or_default().push(*p);
        }
        let req = ElectLeadersRequest::default()
            .with_election_type(kind as i8)
            .with_timeout_ms(self.timeout_ms())
            .with_topic_partitions(partitions.map(|_| {
                by_topic
                    .into_iter()
                    .map(|(t, ps)| TopicPartitions::default().with_topic(topic_name(t)).with_partitions(ps))
                    .collect()
            }));
        let conn = self.client.controller_connection().await?;
        let version = conn.version(ApiKey::ElectLeaders).ok_or_else(|| ClientError::UnsupportedVersion {
            addr: conn.addr().to_owned(),
            api: "ElectLeaders".into(),
        })?;
        if version == 0 && kind != ElectionType::Preferred {
            return Err(ClientError::UnsupportedVersion {
                addr: conn.addr().to_owned(),
                api: "ElectLeaders v1+ (unclean election)".into(),
            });
        }
        let resp = conn.send_versioned(&req, version).await?;
        crate::error::check(resp.error_code, || "elect leaders".to_string(), None)?;
        let mut out: Vec<ElectionResult> = resp
            .replica_election_results
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partition_result.into_iter().map(move |p| {
                    let result = crate::error::check(
                        p.error_code,
                        || format!("elect leader of {topic}-{}", p.partition_id),
                        p.error_message.as_deref(),
                    );
                    ((topic.clone(), p.partition_id), result)
                })
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// All configuration entries of a topic or broker.
    pub async fn describe_configs(&self, kind: ResourceType, name: &str) -> Result<Vec<ConfigEntry>, ClientError> {
        let req = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind as i8)
            .with_resource_name(StrBytes::from_string(name.to_owned()))
            .with_configuration_keys(None)]);
        let conn = match kind {
            ResourceType::Broker => match name.parse::<i32>() {
                Ok(id) => self.client.broker_connection(id).await?,
                Err(_) => self.client.any_connection().await?,
            },
            ResourceType::Topic => self.client.any_connection().await?,
        };
        let resp = conn.send(&req).await?;
        let r = resp
            .results
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::protocol("DescribeConfigs response", "no result"))?;
        crate::error::check(r.error_code, || format!("describe configs of '{name}'"), r.error_message.as_deref())?;
        Ok(r.configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                read_only: c.read_only,
                source: c.config_source,
                is_sensitive: c.is_sensitive,
            })
            .collect())
    }

    /// Names of all topics (internal ones included), sorted.
    pub async fn list_topics(&self) -> Result<Vec<String>, ClientError> {
        let cluster = self.describe_cluster().await?;
        let mut names: Vec<String> = cluster.topics.into_keys().collect();
        names.sort();
        Ok(names)
    }

    /// Fresh metadata for every topic.
    pub async fn describe_cluster(&self) -> Result<ClusterMetadata, ClientError> {
        self.client.refresh_metadata(None).await?;
        Ok((*self.client.metadata()).clone())
    }

    /// Fresh metadata for the named topics; an unknown topic is an error naming it.
    pub async fn describe_topics(&self, names: &[&str]) -> Result<Vec<TopicMetadata>, ClientError> {
        let resp = self.client.refresh_metadata(Some(names)).await?;
        for t in &resp.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            crate::error::check(t.error_code, || format!("describe topic '{name}'"), None)?;
        }
        let meta = self.client.metadata();
        names
            .iter()
            .map(|n| {
                meta.topics.get(*n).cloned().ok_or_else(|| ClientError::kafka(3, format!("describe topic '{n}'"), None))
            })
            .collect()
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// Kafka's printed form of a topic id: URL-safe base64 without padding.
pub fn topic_id_string(id: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in id.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_id_prints_like_kafka() {
        assert_eq!(topic_id_string(&[0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        let id = [0x6f, 0x2e, 0x52, 0x05, 0x8d, 0x8c, 0x4a, 0x5b, 0x9f, 0x1a, 0xbe, 0xef, 0xff, 0xfe, 0x10, 0x01];
        // Cross-checked with python: base64.urlsafe_b64encode(bytes(id)).rstrip(b'=')
        assert_eq!(topic_id_string(&id), "by5SBY2MSlufGr7v__4QAQ");
    }
}
