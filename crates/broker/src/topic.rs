//! Topic rules: Kafka's name rules, the topic-level configs (defaults, validation, mapping to
//! the log config) and replica assignment.

use std::collections::BTreeMap;

use strom_storage::LogConfig;

use crate::config::BrokerConfig;

/// Kafka's limit: 249 characters, so `<topic>-<partition>` directories stay under 255.
pub const MAX_NAME_LEN: usize = 249;

/// Checks a topic name against Kafka's rules; the error text is what clients see.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {MAX_NAME_LEN} characters, topic name: {name}"
        ));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-' (found {bad:?})"
        ));
    }
    Ok(())
}

/// Kafka's internal topics.
pub fn is_internal(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

/// The kind of value a topic config takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    Int,
    Long,
    Double,
    String,
    List,
}

impl ConfigType {
    /// DescribeConfigs' `config_type` code.
    pub fn code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }
}

/// A topic-level config key: name, type, and the broker config its default comes from.
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    pub broker_key: Option<&'static str>,
    default: fn(&BrokerConfig) -> String,
}

impl TopicConfigDef {
    pub fn default_value(&self, cfg: &BrokerConfig) -> String {
        (self.default)(cfg)
    }
}

macro_rules! def {
    ($name:expr, $kind:ident, $broker:expr, $default:expr) => {
        TopicConfigDef { name: $name, kind: ConfigType::$kind, broker_key: $broker, default: $default }
    };
}

/// Kafka's topic configs with their defaults (taken from the broker's config where Kafka does).
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def!("cleanup.policy", List, Some("log.cleanup.policy"), |c| c.log_cleanup_policy.clone()),
    def!("compression.type", String, Some("compression.type"), |c| c.compression_type.clone()),
    def!("delete.retention.ms", Long, Some("log.cleaner.delete.retention.ms"), |c| c
        .log_cleaner_delete_retention_ms
        .to_string()),
    def!("file.delete.delay.ms", Long, Some("log.segment.delete.delay.ms"), |_| "60000".into()),
    def!("flush.messages", Long, Some("log.flush.interval.messages"), |c| c.log_flush_interval_messages.to_string()),
    def!("flush.ms", Long, Some("log.flush.interval.ms"), |c| c.log_flush_interval_ms.to_string()),
    def!("index.interval.bytes", Int, Some("log.index.interval.bytes"), |c| c.log_index_interval_bytes.to_string()),
    def!("max.compaction.lag.ms", Long, Some("log.cleaner.max.compaction.lag.ms"), |_| i64::MAX.to_string()),
    def!("max.message.bytes", Int, Some("message.max.bytes"), |c| c.message_max_bytes.to_string()),
    def!("message.timestamp.type", String, Some("log.message.timestamp.type"), |_| "CreateTime".into()),
    def!("min.cleanable.dirty.ratio", Double, Some("log.cleaner.min.cleanable.ratio"), |c| c
        .log_cleaner_min_cleanable_ratio
        .to_string()),
    def!("min.compaction.lag.ms", Long, Some("log.cleaner.min.compaction.lag.ms"), |c| c
        .log_cleaner_min_compaction_lag_ms
        .to_string()),
    def!("min.insync.replicas", Int, Some("min.insync.replicas"), |c| c.min_insync_replicas.to_string()),
    def!("preallocate", Boolean, Some("log.preallocate"), |_| "false".into()),
    def!("retention.bytes", Long, Some("log.retention.bytes"), |c| c.log_retention_bytes.to_string()),
    def!("retention.ms", Long, Some("log.retention.ms"), |c| c.log_retention_ms.to_string()),
    def!("segment.bytes", Int, Some("log.segment.bytes"), |c| c.log_segment_bytes.to_string()),
    def!("segment.index.bytes", Int, Some("log.index.size.max.bytes"), |_| "10485760".into()),
    def!("segment.jitter.ms", Long, Some("log.roll.jitter.ms"), |_| "0".into()),
    def!("segment.ms", Long, Some("log.roll.ms"), |c| c.log_roll_ms.to_string()),
    def!("unclean.leader.election.enable", Boolean, Some("unclean.leader.election.enable"), |c| c
        .unclean_leader_election_enable
        .to_string()),
];

/// The definition of a topic config key, if Kafka has one by that name.
pub fn config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Validates one topic config override; the error names the key.
pub fn validate_config(name: &str, value: &str) -> Result<(), String> {
    let def = config_def(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    let bad = |what: &str| format!("Invalid value {value} for configuration {name}: {what}");
    match def.kind {
        ConfigType::Boolean => match value.to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => Err(bad("Expected value to be either true or false")),
        },
        ConfigType::Int => value.trim().parse::<i32>().map(|_| ()).map_err(|_| bad("Not a number of type INT")),
        ConfigType::Long => value.trim().parse::<i64>().map(|_| ()).map_err(|_| bad("Not a number of type LONG")),
        ConfigType::Double => value.trim().parse::<f64>().map(|_| ()).map_err(|_| bad("Not a number of type DOUBLE")),
        ConfigType::String | ConfigType::List => match name {
            "cleanup.policy" => value
                .split(',')
                .map(str::trim)
                .all(|p| p == "delete" || p == "compact")
                .then_some(())
                .ok_or_else(|| bad("String must be one of: compact, delete")),
            "compression.type" => ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]
                .contains(&value)
                .then_some(())
                .ok_or_else(|| bad("String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer")),
            "message.timestamp.type" => ["CreateTime", "LogAppendTime"]
                .contains(&value)
                .then_some(())
                .ok_or_else(|| bad("String must be one of: CreateTime, LogAppendTime")),
            _ => Ok(()),
        },
    }
}

/// Applies topic overrides to a log config (values were validated when written).
pub fn apply_overrides(mut cfg: LogConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    for (k, v) in overrides {
        let v = v.trim();
        match k.as_str() {
            "retention.ms" => set(&mut cfg.retention_ms, v),
            "retention.bytes" => set(&mut cfg.retention_bytes, v),
            "segment.bytes" => set(&mut cfg.segment_bytes, v),
            "segment.ms" => set(&mut cfg.segment_ms, v),
            "index.interval.bytes" => set(&mut cfg.index_interval_bytes, v),
            "flush.messages" => set(&mut cfg.flush_interval_messages, v),
            "flush.ms" => set(&mut cfg.flush_interval_ms, v),
            "max.message.bytes" => set(&mut cfg.max_message_bytes, v),
            "cleanup.policy" => cfg.set_cleanup_policy(v),
            "delete.retention.ms" => set(&mut cfg.delete_retention_ms, v),
            "min.cleanable.dirty.ratio" => set(&mut cfg.min_cleanable_dirty_ratio, v),
            "min.compaction.lag.ms" => set(&mut cfg.min_compaction_lag_ms, v),
            _ => {}
        }
    }
    cfg
}

fn set<T: std::str::FromStr>(slot: &mut T, v: &str) {
    if let Ok(parsed) = v.parse() {
        *slot = parsed;
    }
}

/// Kafka's rack-unaware assignment: replicas of partition p start at broker
/// `(start + p) % n` and follow with a shift that grows every `n` partitions, so leaders and
/// followers spread evenly. `brokers` must be sorted and non-empty, `rf <= brokers.len()`.
pub fn assign_replicas(
    brokers: &[i32],
    partitions: i32,
    rf: usize,
    first_partition: i32,
    start: usize,
) -> Vec<Vec<i32>> {
    let n = brokers.len();
    let mut out = Vec::with_capacity(partitions.max(0) as usize);
    let mut shift = start;
    for p in 0..partitions as usize {
        let abs = first_partition as usize + p;
        if abs > 0 && abs.is_multiple_of(n) {
            shift += 1;
        }
        let first = (abs + start) % n;
        let mut replicas = vec![brokers[first]];
        for j in 0..rf.saturating_sub(1) {
            let step = 1 + (shift + j) % (n - 1).max(1);
            replicas.push(brokers[(first + step) % n]);
        }
        replicas.dedup();
        out.push(replicas);
    }
    out
}

/// How `broker.rack` is honoured when some brokers have a rack and others do not (Kafka's
/// `RackAwareMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RackAwareMode {
    /// Refuse to assign: an assignment that ignores racks could put every replica in one rack.
    Enforced,
    /// Fall back to rack-unaware assignment (logged), as Kafka does for internal topics.
    Safe,
    /// Ignore racks altogether (`kafka-topics --disable-rack-aware`).
    Disabled,
}

/// Kafka's refusal text for a mixed rack/no-rack cluster in [`RackAwareMode::Enforced`].
pub const MIXED_RACKS: &str = "Not all brokers have rack information for replica rack aware assignment.";

/// Assigns `partitions` new partitions (ids from `first_partition`) over `brokers` (id, rack),
/// as Kafka's `AdminUtils.assignReplicasToBrokers`: rack-aware when every broker has a rack,
/// rack-unaware when none has, and per `mode` when only some have. `start` and `shift` are
/// the random start index and replica shift (callers pass random values; tests fix them).
/// The caller has checked `1 <= rf <= brokers.len()`.
pub fn assign_replicas_for(
    brokers: &[(i32, Option<String>)],
    partitions: i32,
    rf: usize,
    first_partition: i32,
    start: usize,
    mode: RackAwareMode,
) -> Result<Vec<Vec<i32>>, String> {
    if brokers.is_empty() || rf == 0 || rf > brokers.len() {
        return Err(format!("Replication factor: {rf} larger than available brokers: {}.", brokers.len()));
    }
    let mut sorted: Vec<(i32, Option<String>)> = brokers.to_vec();
    sorted.sort_by_key(|(id, _)| *id);
    let with_rack = sorted.iter().filter(|(_, r)| r.is_some()).count();
    let rack_aware = match mode {
        RackAwareMode::Disabled => false,
        _ if with_rack == 0 => false,
        _ if with_rack == sorted.len() => true,
        RackAwareMode::Enforced => return Err(MIXED_RACKS.to_string()),
        RackAwareMode::Safe => {
            tracing::warn!(
                with_rack,
                brokers = sorted.len(),
                "not all brokers have broker.rack; assigning replicas without rack awareness"
            );
            false
        }
    };
    if !rack_aware {
        let ids: Vec<i32> = sorted.iter().map(|(id, _)| *id).collect();
        return Ok(assign_replicas(&ids, partitions, rf, first_partition, start % ids.len().max(1)));
    }
    let racks: Vec<(i32, String)> = sorted.into_iter().filter_map(|(id, r)| r.map(|r| (id, r))).collect();
    Ok(assign_rack_aware(&racks, partitions, rf, first_partition, start, start))
}

/// Brokers ordered so racks alternate: the lowest id of each rack (racks in name order), then
/// the second lowest of each, and so on. Consecutive entries are in different racks for as
/// long as every rack still has brokers, which is what spreads a partition's replicas.
pub fn rack_alternated_brokers(brokers: &[(i32, String)]) -> Vec<i32> {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        by_rack.entry(rack.as_str()).or_default().push(*id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let mut out = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while out.len() < brokers.len() {
        for ids in by_rack.values() {
            if let Some(id) = ids.get(round) {
                out.push(*id);
            }
        }
        round += 1;
    }
    out
}

/// Kafka's rack-aware assignment over the rack-alternated broker list: the leader of each
/// partition walks that list round-robin; each further replica is the next broker (with the
/// usual growing shift) that adds a rack not yet holding a replica, or once every rack has
/// one, a broker not yet holding one.
fn assign_rack_aware(
    brokers: &[(i32, String)],
    partitions: i32,
    rf: usize,
    first_partition: i32,
    start: usize,
    shift: usize,
) -> Vec<Vec<i32>> {
    let rack_of: BTreeMap<i32, &str> = brokers.iter().map(|(id, r)| (*id, r.as_str())).collect();
    let num_racks = rack_of.values().collect::<std::collections::BTreeSet<_>>().len();
    let arranged = rack_alternated_brokers(brokers);
    let n = arranged.len();
    let start = start % n;
    let mut shift = shift % n;
    let mut out = Vec::with_capacity(partitions.max(0) as usize);
    for p in 0..partitions.max(0) as usize {
        let abs = first_partition.max(0) as usize + p;
        if abs > 0 && abs.is_multiple_of(n) {
            shift += 1;
        }
        let first = (abs + start) % n;
        let leader = arranged[first];
        let mut replicas = vec![leader];
        let mut racks_used = vec![rack_of[&leader]];
        let mut k = 0;
        // Each pass over k visits every other broker once, so a replica is found within
        // n - 1 steps; the bound only guards against a caller passing rf > n.
        while replicas.len() < rf && k < rf * n {
            let step = 1 + (shift * num_racks + k) % (n - 1).max(1);
            let broker = arranged[(first + step) % n];
            let rack = rack_of[&broker];
            let rack_ok = !racks_used.contains(&rack) || racks_used.len() == num_racks;
            let broker_ok = !replicas.contains(&broker) || replicas.len() == n;
            if rack_ok && broker_ok {
                replicas.push(broker);
                racks_used.push(rack);
            }
            k += 1;
        }
        out.push(replicas);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_name_rules() {
        assert!(validate_name("orders.v1_x-2").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(".").is_err());
        assert!(validate_name("..").is_err());
        assert!(validate_name("bad name").is_err());
        assert!(validate_name("bad/name").is_err());
        assert!(validate_name(&"a".repeat(249)).is_ok());
        assert!(validate_name(&"a".repeat(250)).is_err());
    }

    #[test]
    fn config_validation_names_the_key() {
        assert!(validate_config("retention.ms", "1000").is_ok());
        assert!(validate_config("retention.ms", "soon").unwrap_err().contains("retention.ms"));
        assert!(validate_config("no.such.key", "1").unwrap_err().contains("no.such.key"));
        assert!(validate_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_config("cleanup.policy", "shred").is_err());
    }

    #[test]
    fn assignment_spreads_leaders_and_never_repeats_a_broker() {
        let brokers = [1, 2, 3];
        let a = assign_replicas(&brokers, 6, 3, 0, 0);
        assert_eq!(a.len(), 6);
        for r in &a {
            let mut s = r.clone();
            s.sort();
            s.dedup();
            assert_eq!(s.len(), 3, "{r:?}");
        }
        let leaders: Vec<i32> = a.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        let single = assign_replicas(&[7], 3, 1, 0, 0);
        assert_eq!(single, vec![vec![7], vec![7], vec![7]]);
    }

    fn racked(list: &[(i32, &str)]) -> Vec<(i32, Option<String>)> {
        list.iter().map(|(id, r)| (*id, Some(r.to_string()))).collect()
    }

    #[test]
    fn rack_alternated_list_interleaves_racks() {
        let brokers: Vec<(i32, String)> =
            [(0, "rack1"), (1, "rack3"), (2, "rack3"), (3, "rack2"), (4, "rack2"), (5, "rack1")]
                .iter()
                .map(|(id, r)| (*id, r.to_string()))
                .collect();
        // The example from Kafka's AdminUtils documentation.
        assert_eq!(rack_alternated_brokers(&brokers), vec![0, 3, 1, 5, 4, 2]);
        let uneven: Vec<(i32, String)> =
            [(1, "a"), (2, "a"), (3, "a"), (4, "b")].iter().map(|(id, r)| (*id, r.to_string())).collect();
        assert_eq!(rack_alternated_brokers(&uneven), vec![1, 4, 2, 3]);
    }

    #[test]
    fn rack_aware_assignment_puts_replicas_in_distinct_racks() {
        let brokers = racked(&[(0, "rack1"), (1, "rack3"), (2, "rack3"), (3, "rack2"), (4, "rack2"), (5, "rack1")]);
        let rack = |b: i32| brokers.iter().find(|(id, _)| *id == b).and_then(|(_, r)| r.clone()).unwrap();
        for start in 0..6 {
            let a = assign_replicas_for(&brokers, 12, 3, 0, start, RackAwareMode::Enforced).unwrap();
            assert_eq!(a.len(), 12);
            let mut leaders = std::collections::BTreeMap::new();
            for replicas in &a {
                let mut racks: Vec<String> = replicas.iter().map(|b| rack(*b)).collect();
                racks.sort();
                racks.dedup();
                assert_eq!(racks.len(), 3, "replicas {replicas:?} share a rack");
                *leaders.entry(replicas[0]).or_insert(0) += 1;
            }
            // 12 partitions over 6 brokers: every broker leads exactly two.
            assert!(leaders.values().all(|&c| c == 2), "leaders unbalanced: {leaders:?}");
        }
        // Kafka's first partition at start index 0 over the list [0, 3, 1, 5, 4, 2].
        let a = assign_replicas_for(&brokers, 1, 3, 0, 0, RackAwareMode::Enforced).unwrap();
        assert_eq!(a[0][0], 0);
    }

    #[test]
    fn more_replicas_than_racks_uses_every_rack_then_distinct_brokers() {
        let brokers = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b")]);
        let a = assign_replicas_for(&brokers, 8, 3, 0, 1, RackAwareMode::Enforced).unwrap();
        for replicas in &a {
            let mut s = replicas.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), 3, "{replicas:?}");
            let in_a = replicas.iter().filter(|b| **b <= 2).count();
            assert!((1..=2).contains(&in_a), "{replicas:?} misses a rack");
        }
        // Adding partitions continues the pattern from the first new id.
        let more = assign_replicas_for(&brokers, 2, 2, 8, 1, RackAwareMode::Enforced).unwrap();
        assert_eq!(more.len(), 2);
        assert!(more.iter().all(|r| r.len() == 2 && (r[0] <= 2) != (r[1] <= 2)));
    }

    #[test]
    fn mixed_racks_follow_the_mode() {
        let brokers = vec![(1, Some("a".to_string())), (2, None), (3, Some("b".to_string()))];
        assert_eq!(assign_replicas_for(&brokers, 3, 2, 0, 0, RackAwareMode::Enforced).unwrap_err(), MIXED_RACKS);
        let safe = assign_replicas_for(&brokers, 3, 2, 0, 0, RackAwareMode::Safe).unwrap();
        assert_eq!(safe, assign_replicas(&[1, 2, 3], 3, 2, 0, 0));
        let none = vec![(2, None), (1, None)];
        assert_eq!(assign_replicas_for(&none, 2, 1, 0, 0, RackAwareMode::Enforced).unwrap(), vec![vec![1], vec![2]]);
    }
}
