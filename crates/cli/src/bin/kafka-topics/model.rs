//! What the back ends return, argument parsing shared by both, and Kafka's output format.

use std::collections::BTreeSet;
use std::fmt::Write;

use strom_client::ClientError;

/// Failure of the topic command; `Display` is the text after Kafka's
/// "Error while executing topic command : " prefix.
#[derive(Debug, thiserror::Error)]
pub enum TopicCommandError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Message(String),
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Keeper(#[from] strom_keeper::KeeperError),
}

pub fn missing_topic(name: &str) -> TopicCommandError {
    TopicCommandError::Message(format!("Topic '{name}' does not exist as expected"))
}

pub fn already_exists(name: &str) -> TopicCommandError {
    TopicCommandError::Message(format!("Topic '{name}' already exists."))
}

/// What `--create` asked for; `None` counts mean the broker default (bootstrap mode only).
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    pub assignment: Option<Vec<Vec<i32>>>,
    pub configs: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct PartitionDescription {
    pub partition: i32,
    /// -1 when there is no leader.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

#[derive(Debug, Clone)]
pub struct TopicDescription {
    pub name: String,
    pub topic_id: Option<String>,
    pub configs: Vec<(String, String)>,
    pub partitions: Vec<PartitionDescription>,
    pub marked_for_deletion: bool,
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// `--describe`'s optional filters, as in Kafka's tool: the partition reports combine (a
/// partition line is printed when any of them matches) and suppress the topic lines;
/// `--topics-with-overrides` prints only topic lines, of topics with overrides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescribeFilter {
    /// `--under-replicated-partitions`: the ISR is smaller than the replica set.
    pub under_replicated: bool,
    /// `--unavailable-partitions`: no leader, or a leader that is not a live broker.
    pub unavailable: bool,
    /// `--topics-with-overrides`.
    pub with_overrides: bool,
}

impl DescribeFilter {
    fn reports_partitions(&self) -> bool {
        self.under_replicated || self.unavailable
    }
}

impl TopicDescription {
    /// Kafka's `--describe` output under `filter`; `live` are the registered brokers.
    pub fn render_filtered(&self, filter: DescribeFilter, live: &BTreeSet<i32>) -> String {
        let full = self.render();
        if filter == DescribeFilter::default() {
            return full;
        }
        let mut lines = full.lines();
        let head = lines.next().unwrap_or_default();
        let mut out = String::new();
        if filter.with_overrides {
            if !self.configs.is_empty() {
                out.push_str(head);
                out.push('\n');
            }
            return out;
        }
        if filter.reports_partitions() {
            for (p, line) in self.partitions.iter().zip(lines) {
                let under = filter.under_replicated && p.isr.len() < p.replicas.len();
                let unavailable = filter.unavailable && (p.leader < 0 || !live.contains(&p.leader));
                if under || unavailable {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Kafka's `--describe` block: a topic line, then one tab-indented line per partition.
    pub fn render(&self) -> String {
        let rf = self.partitions.first().map_or(0, |p| p.replicas.len());
        let configs = self.configs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let mut out = format!("Topic: {}\t", self.name);
        if let Some(id) = &self.topic_id {
            let _ = write!(out, "TopicId: {id}\t");
        }
        let _ = write!(out, "PartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {configs}", self.partitions.len());
        if self.marked_for_deletion {
            out.push_str("\tMarkedForDeletion: true");
        }
        out.push('\n');
        for p in &self.partitions {
            let leader = if p.leader < 0 { "none".to_owned() } else { p.leader.to_string() };
            let _ = writeln!(
                out,
                "\tTopic: {}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}{}",
                self.name,
                p.partition,
                join(&p.replicas),
                join(&p.isr),
                if self.marked_for_deletion { "\tMarkedForDeletion: true" } else { "" }
            );
        }
        out
    }
}

/// `--config name=value` entries, in order.
pub fn parse_configs(raw: &[String]) -> Result<Vec<(String, String)>, TopicCommandError> {
    raw.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(TopicCommandError::Usage(format!(
                "Invalid topic config: all configs to be added must be in the format \"key=val\", got '{kv}'"
            ))),
        })
        .collect()
}

/// `--replica-assignment 1:2,2:3`: per partition (comma-separated) its broker ids (colon-separated).
pub fn parse_replica_assignment(raw: &str) -> Result<Vec<Vec<i32>>, TopicCommandError> {
    let mut out = Vec::new();
    for (p, part) in raw.split(',').enumerate() {
        let ids: Result<Vec<i32>, _> = part.split(':').map(|b| b.trim().parse::<i32>()).collect();
        let ids = ids.map_err(|_| {
            TopicCommandError::Usage(format!(
                "--replica-assignment: partition {p} has a non-numeric broker id in '{part}'"
            ))
        })?;
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != ids.len() {
            return Err(TopicCommandError::Message(format!(
                "Partition replica lists may not contain duplicate entries: {part}"
            )));
        }
        if p > 0 && ids.len() != out.first().map_or(0, Vec::len) {
            return Err(TopicCommandError::Message(format!("Partition {p} has different replication factor: {part}")));
        }
        out.push(ids);
    }
    Ok(out)
}

/// Kafka's topic name rules.
pub fn validate_topic_name(name: &str) -> Result<(), TopicCommandError> {
    let bad = |why: String| Err(TopicCommandError::Message(why));
    if name.is_empty() {
        return bad("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return bad("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return bad(format!("Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return bad(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_kafka() {
        let t = TopicDescription {
            name: "test".into(),
            topic_id: Some("AAAAAAAAAAAAAAAAAAAAAA".into()),
            configs: vec![("retention.ms".into(), "1000".into())],
            partitions: vec![PartitionDescription { partition: 0, leader: 1, replicas: vec![1, 2], isr: vec![2, 1] }],
            marked_for_deletion: false,
        };
        assert_eq!(
            t.render(),
            "Topic: test\tTopicId: AAAAAAAAAAAAAAAAAAAAAA\tPartitionCount: 1\tReplicationFactor: 2\tConfigs: retention.ms=1000\n\tTopic: test\tPartition: 0\tLeader: 1\tReplicas: 1,2\tIsr: 2,1\n"
        );
    }

    #[test]
    fn describe_filters_pick_lines() {
        let t = TopicDescription {
            name: "t".into(),
            topic_id: None,
            configs: vec![],
            partitions: vec![
                PartitionDescription { partition: 0, leader: 1, replicas: vec![1, 2], isr: vec![1, 2] },
                PartitionDescription { partition: 1, leader: 2, replicas: vec![2, 1], isr: vec![2] },
                PartitionDescription { partition: 2, leader: -1, replicas: vec![3], isr: vec![] },
            ],
            marked_for_deletion: false,
        };
        let live: BTreeSet<i32> = [1, 2, 3].into();
        let under = DescribeFilter { under_replicated: true, ..DescribeFilter::default() };
        let unavailable = DescribeFilter { unavailable: true, ..DescribeFilter::default() };
        assert_eq!(
            t.render_filtered(under, &live),
            "\tTopic: t\tPartition: 1\tLeader: 2\tReplicas: 2,1\tIsr: 2\n\tTopic: t\tPartition: 2\tLeader: none\tReplicas: 3\tIsr: \n"
        );
        assert_eq!(
            t.render_filtered(unavailable, &live),
            "\tTopic: t\tPartition: 2\tLeader: none\tReplicas: 3\tIsr: \n"
        );
        // A leader whose broker is gone makes the partition unavailable too (Kafka's rule).
        let without_2: BTreeSet<i32> = [1, 3].into();
        assert_eq!(
            t.render_filtered(unavailable, &without_2),
            "\tTopic: t\tPartition: 1\tLeader: 2\tReplicas: 2,1\tIsr: 2\n\tTopic: t\tPartition: 2\tLeader: none\tReplicas: 3\tIsr: \n"
        );
        // Reports combine: a partition matching any of them is printed once.
        let both = DescribeFilter { under_replicated: true, unavailable: true, with_overrides: false };
        assert_eq!(t.render_filtered(both, &without_2), t.render_filtered(under, &live));
        let overrides = DescribeFilter { with_overrides: true, ..DescribeFilter::default() };
        assert_eq!(t.render_filtered(overrides, &live), "");
        assert_eq!(t.render_filtered(DescribeFilter::default(), &live), t.render());
    }

    #[test]
    fn parses_assignment_and_rejects_bad_ones() {
        assert_eq!(parse_replica_assignment("1:2,2:3").ok(), Some(vec![vec![1, 2], vec![2, 3]]));
        assert!(parse_replica_assignment("1:x").is_err());
        assert!(parse_replica_assignment("1:1").is_err());
        assert!(parse_replica_assignment("1:2,3").is_err());
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("my-topic_1.x").is_ok());
        for bad in ["", ".", "..", "a b", "t/x", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn configs_need_key_and_equals() {
        assert_eq!(parse_configs(&["a=b=c".into()]).ok(), Some(vec![("a".into(), "b=c".into())]));
        assert!(parse_configs(&["novalue".into()]).is_err());
    }
}
