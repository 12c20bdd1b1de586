//! The `--bootstrap-server` back end: the Kafka admin protocol through strom-client.

use kafka_protocol::error::ResponseError;
use strom_client::admin::topic_id_string;
use strom_client::{Admin, Client, ClientConfig, ClientError, NewTopic, ResourceType};

use crate::model::{
    already_exists, missing_topic, PartitionDescription, TopicCommandError, TopicDescription, TopicSpec,
};

pub struct Backend {
    admin: Admin,
}

/// Kafka's `DEFAULT_CONFIG` source: such entries are not shown by `--describe`.
const DEFAULT_CONFIG_SOURCE: i8 = 5;

/// The message Kafka's tool prints for an admin error: the broker's own message when it sent
/// one, else the exception text Kafka uses for that code.
fn describe_error(name: &str, err: ClientError) -> TopicCommandError {
    match err {
        ClientError::Kafka { message: Some(m), .. } if !m.is_empty() => TopicCommandError::Message(m),
        ClientError::Kafka { error, .. } => TopicCommandError::Message(match error {
            ResponseError::TopicAlreadyExists => format!("Topic '{name}' already exists."),
            ResponseError::UnknownTopicOrPartition => format!("Topic '{name}' does not exist as expected"),
            ResponseError::InvalidTopicException => format!("Topic name \"{name}\" is illegal"),
            ResponseError::InvalidReplicationFactor => "Replication factor is invalid.".into(),
            ResponseError::InvalidPartitions => "Number of partitions is invalid.".into(),
            other => format!("{other} (topic '{name}')"),
        }),
        other => TopicCommandError::Client(other),
    }
}

impl Backend {
    pub async fn connect(bootstrap: &str) -> Result<Backend, TopicCommandError> {
        let mut cfg = ClientConfig::new(bootstrap);
        cfg.client_id = "kafka-topics".into();
        cfg.retries = 3;
        let client = Client::connect(cfg).await?;
        Ok(Backend { admin: Admin::new(client) })
    }

    /// Returns false when the topic existed and `if_not_exists` was given.
    pub async fn create(&self, spec: &TopicSpec, if_not_exists: bool) -> Result<bool, TopicCommandError> {
        let mut topic = NewTopic::new(&spec.name, spec.partitions.unwrap_or(-1), spec.replication_factor.unwrap_or(-1));
        if let Some(assignment) = &spec.assignment {
            topic.assignment = assignment.iter().cloned().enumerate().map(|(p, r)| (p as i32, r)).collect();
        }
        topic.configs = spec.configs.clone();
        let results = self.admin.create_topics(&[topic], false).await?;
        for (name, result) in results {
            match result {
                Ok(()) => {}
                Err(e) if e.kafka_error() == Some(ResponseError::TopicAlreadyExists) => {
                    if if_not_exists {
                        return Ok(false);
                    }
                    return Err(already_exists(&name));
                }
                Err(e) => return Err(describe_error(&name, e)),
            }
        }
        Ok(true)
    }

    /// The registered brokers' ids.
    pub async fn live_brokers(&self) -> Result<Vec<i32>, TopicCommandError> {
        Ok(self.admin.describe_cluster().await?.brokers.iter().map(|b| b.id).collect())
    }

    pub async fn list(&self, exclude_internal: bool) -> Result<Vec<String>, TopicCommandError> {
        let cluster = self.admin.describe_cluster().await?;
        let mut names: Vec<String> =
            cluster.topics.values().filter(|t| !(exclude_internal && t.is_internal)).map(|t| t.name.clone()).collect();
        names.sort();
        Ok(names)
    }

    pub async fn describe(
        &self,
        names: &[String],
        exclude_internal: bool,
    ) -> Result<Vec<TopicDescription>, TopicCommandError> {
        let cluster = self.admin.describe_cluster().await?;
        let mut topics: Vec<_> = cluster
            .topics
            .values()
            .filter(|t| names.is_empty() || names.contains(&t.name))
            .filter(|t| !(exclude_internal && t.is_internal))
            .cloned()
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = Vec::with_capacity(topics.len());
        for t in topics {
            let entries = match self.admin.describe_configs(ResourceType::Topic, &t.name).await {
                Ok(entries) => entries,
                // A broker without DescribeConfigs still gets its partitions described.
                Err(ClientError::UnsupportedVersion { .. }) => Vec::new(),
                Err(e) => return Err(describe_error(&t.name, e)),
            };
            let configs = entries
                .into_iter()
                .filter(|c| c.source != DEFAULT_CONFIG_SOURCE && !c.is_sensitive)
                .filter_map(|c| c.value.map(|v| (c.name, v)))
                .collect();
            out.push(TopicDescription {
                topic_id: (t.topic_id != [0; 16]).then(|| topic_id_string(&t.topic_id)),
                name: t.name,
                configs,
                partitions: t
                    .partitions
                    .into_iter()
                    .map(|p| PartitionDescription {
                        partition: p.partition,
                        leader: p.leader,
                        replicas: p.replicas,
                        isr: p.isr,
                    })
                    .collect(),
                marked_for_deletion: false,
            });
        }
        Ok(out)
    }

    pub async fn delete(&self, name: &str, if_exists: bool) -> Result<(), TopicCommandError> {
        for (name, result) in self.admin.delete_topics(&[name]).await? {
            match result {
                Ok(()) => {}
                Err(e) if e.kafka_error() == Some(ResponseError::UnknownTopicOrPartition) => {
                    if !if_exists {
                        return Err(missing_topic(&name));
                    }
                }
                Err(e) => return Err(describe_error(&name, e)),
            }
        }
        Ok(())
    }

    pub async fn add_partitions(&self, name: &str, total: i32, if_exists: bool) -> Result<(), TopicCommandError> {
        match self.admin.create_partitions(name, total, false).await {
            Ok(()) => Ok(()),
            Err(e) if e.kafka_error() == Some(ResponseError::UnknownTopicOrPartition) => {
                if if_exists {
                    Ok(())
                } else {
                    Err(missing_topic(name))
                }
            }
            Err(e) => Err(describe_error(name, e)),
        }
    }
}
