//! `server.properties`: Java-properties parsing and the typed broker configuration.
//!
//! Key names, defaults and units follow Apache Kafka's broker configs so an existing
//! `server.properties` works unchanged. Unknown keys are logged and ignored (Kafka does the
//! same); a value that does not parse is an error naming the key and its line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use strom_storage::{CleanerConfig, LogConfig};
use thiserror::Error;

/// A problem with the broker's properties file.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("line {line}: invalid value {value:?} for `{key}`: {reason}")]
    InvalidValue { key: String, value: String, line: usize, reason: String },
    #[error("line {line}: malformed property line: {text}")]
    Syntax { line: usize, text: String },
    #[error("missing required property `{0}`")]
    Missing(&'static str),
}

/// One `listeners` entry: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    /// Empty host means "all interfaces" (Kafka's `PLAINTEXT://:9092`).
    pub host: String,
    pub port: u16,
}

impl Listener {
    /// The address to bind: an empty host binds every interface.
    pub fn bind_addr(&self) -> String {
        let host = if self.host.is_empty() { "0.0.0.0" } else { &self.host };
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// The broker's configuration, typed. Field names follow the Kafka keys they come from.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub broker_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub log_dirs: Vec<PathBuf>,
    /// Keeper ensemble as `host:port,...` plus an optional `/chroot`, passed to the keeper client.
    pub zookeeper_connect: String,
    pub zookeeper_connection_timeout: Duration,
    pub zookeeper_session_timeout: Duration,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_segment_bytes: u64,
    pub log_roll_ms: i64,
    pub log_retention_check_interval_ms: u64,
    pub log_flush_interval_messages: u64,
    pub log_flush_interval_ms: i64,
    pub log_index_interval_bytes: u32,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub message_max_bytes: usize,
    pub socket_request_max_bytes: usize,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_replication_factor: i16,
    pub min_insync_replicas: i32,
    pub replica_lag_time_max_ms: i64,
    pub unclean_leader_election_enable: bool,
    pub broker_rack: Option<String>,
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`: how often the controller checks the balance.
    pub leader_imbalance_check_interval: Duration,
    /// `leader.imbalance.per.broker.percentage`: the imbalance a broker tolerates before the
    /// controller moves leadership back to it.
    pub leader_imbalance_per_broker_percentage: u32,
    pub num_replica_fetchers: u32,
    pub replica_fetch_max_bytes: usize,
    pub replica_fetch_response_max_bytes: usize,
    pub replica_fetch_wait_max_ms: u64,
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    pub num_network_threads: u32,
    pub num_io_threads: u32,
    pub compression_type: String,
    pub log_cleanup_policy: String,
    /// `log.cleaner.enable`: run the log cleaner for `cleanup.policy=compact` topics.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: the cleaner's sleep when no log needs cleaning.
    pub log_cleaner_backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the cleaner's key → offset map.
    pub log_cleaner_dedupe_buffer_size: usize,
    /// `log.cleaner.delete.retention.ms`: default `delete.retention.ms`.
    pub log_cleaner_delete_retention_ms: i64,
    /// `log.cleaner.min.cleanable.ratio`: default `min.cleanable.dirty.ratio`.
    pub log_cleaner_min_cleanable_ratio: f64,
    /// `log.cleaner.min.compaction.lag.ms`: default `min.compaction.lag.ms`.
    pub log_cleaner_min_compaction_lag_ms: i64,
    /// `offsets.topic.segment.bytes`: `segment.bytes` of `__consumer_offsets` at creation.
    pub offsets_topic_segment_bytes: u64,
    /// Every key/value as written in the file (for DescribeConfigs' broker resource).
    pub raw: BTreeMap<String, String>,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            broker_id: 0,
            listeners: vec![Listener { name: "PLAINTEXT".into(), host: String::new(), port: 9092 }],
            advertised_listeners: Vec::new(),
            log_dirs: vec![PathBuf::from("/tmp/kafka-logs")],
            zookeeper_connect: String::new(),
            zookeeper_connection_timeout: Duration::from_millis(18_000),
            zookeeper_session_timeout: Duration::from_millis(18_000),
            num_partitions: 1,
            default_replication_factor: 1,
            log_retention_ms: 7 * DAY_MS,
            log_retention_bytes: -1,
            log_segment_bytes: 1 << 30,
            log_roll_ms: 7 * DAY_MS,
            log_retention_check_interval_ms: 300_000,
            log_flush_interval_messages: i64::MAX as u64,
            log_flush_interval_ms: i64::MAX,
            log_index_interval_bytes: 4096,
            auto_create_topics_enable: true,
            delete_topic_enable: true,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            unclean_leader_election_enable: false,
            broker_rack: None,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval: Duration::from_secs(300),
            leader_imbalance_per_broker_percentage: 10,
            num_replica_fetchers: 1,
            replica_fetch_max_bytes: 1_048_576,
            replica_fetch_response_max_bytes: 10_485_760,
            replica_fetch_wait_max_ms: 500,
            replica_high_watermark_checkpoint_interval_ms: 5000,
            num_network_threads: 3,
            num_io_threads: 8,
            compression_type: "producer".into(),
            log_cleanup_policy: "delete".into(),
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_dedupe_buffer_size: 128 * 1024 * 1024,
            log_cleaner_delete_retention_ms: DAY_MS,
            log_cleaner_min_cleanable_ratio: 0.5,
            log_cleaner_min_compaction_lag_ms: 0,
            offsets_topic_segment_bytes: 104_857_600,
            raw: BTreeMap::new(),
        }
    }
}

/// Keys Kafka defines that Strom accepts without acting on them, so a stock
/// `server.properties` loads without warnings.
const ACCEPTED_UNUSED: &[&str] = &[
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "group.initial.rebalance.delay.ms",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "security.inter.broker.protocol",
    "controlled.shutdown.enable",
    "zookeeper.set.acl",
    "queued.max.requests",
    "offsets.retention.minutes",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "replica.socket.timeout.ms",
    "request.timeout.ms",
];

impl BrokerConfig {
    /// Reads and parses a `server.properties` file.
    pub fn from_properties_file(path: &Path) -> Result<BrokerConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        Self::from_properties_str(&text)
    }

    /// Parses `server.properties` text.
    pub fn from_properties_str(text: &str) -> Result<BrokerConfig, ConfigError> {
        let props = parse_properties(text)?;
        let mut cfg = BrokerConfig::default();
        // Kafka gives ms > minutes > hours precedence for retention and roll, whatever the order.
        let mut retention = (None, None, None);
        let mut roll = (None, None);
        let mut log_dir = None;
        let mut log_dirs = None;
        for prop in &props {
            let key = prop.key.as_str();
            let p = |reason: &str| prop.invalid(reason);
            match key {
                "broker.id" => cfg.broker_id = prop.parse_int(-1, i32::MAX as i64)? as i32,
                "listeners" => cfg.listeners = prop.parse_listeners()?,
                "advertised.listeners" => cfg.advertised_listeners = prop.parse_listeners()?,
                "log.dirs" => log_dirs = Some(prop.parse_paths()?),
                "log.dir" => log_dir = Some(prop.parse_paths()?),
                "zookeeper.connect" => {
                    if prop.value.is_empty() {
                        return Err(p("must not be empty"));
                    }
                    cfg.zookeeper_connect = prop.value.clone();
                }
                "zookeeper.connection.timeout.ms" => {
                    cfg.zookeeper_connection_timeout = Duration::from_millis(prop.parse_int(1, i64::MAX)? as u64)
                }
                "zookeeper.session.timeout.ms" => {
                    cfg.zookeeper_session_timeout = Duration::from_millis(prop.parse_int(1, i64::MAX)? as u64)
                }
                "num.partitions" => cfg.num_partitions = prop.parse_int(1, i32::MAX as i64)? as i32,
                "default.replication.factor" => {
                    cfg.default_replication_factor = prop.parse_int(1, i16::MAX as i64)? as i16
                }
                "log.retention.ms" => retention.0 = Some(prop.parse_int(-1, i64::MAX)?),
                "log.retention.minutes" => retention.1 = Some(prop.parse_int(-1, i64::MAX)?),
                "log.retention.hours" => retention.2 = Some(prop.parse_int(-1, i64::MAX)?),
                "log.retention.bytes" => cfg.log_retention_bytes = prop.parse_int(-1, i64::MAX)?,
                "log.segment.bytes" => {
                    // Kafka's minimum: the segment must hold at least a batch header.
                    cfg.log_segment_bytes = prop.parse_int(14, i32::MAX as i64)? as u64
                }
                "log.roll.ms" => roll.0 = Some(prop.parse_int(1, i64::MAX)?),
                "log.roll.hours" => roll.1 = Some(prop.parse_int(1, i64::MAX)?),
                "log.retention.check.interval.ms" => {
                    cfg.log_retention_check_interval_ms = prop.parse_int(1, i64::MAX)? as u64
                }
                "log.flush.interval.messages" => cfg.log_flush_interval_messages = prop.parse_int(1, i64::MAX)? as u64,
                "log.flush.interval.ms" => cfg.log_flush_interval_ms = prop.parse_int(0, i64::MAX)?,
                "log.flush.scheduler.interval.ms" | "log.flush.offset.checkpoint.interval.ms" => {
                    prop.parse_int(0, i64::MAX)?;
                }
                "log.index.interval.bytes" => cfg.log_index_interval_bytes = prop.parse_int(0, i32::MAX as i64)? as u32,
                "auto.create.topics.enable" => cfg.auto_create_topics_enable = prop.parse_bool()?,
                "delete.topic.enable" => cfg.delete_topic_enable = prop.parse_bool()?,
                "message.max.bytes" => cfg.message_max_bytes = prop.parse_int(0, i32::MAX as i64)? as usize,
                "socket.request.max.bytes" => {
                    cfg.socket_request_max_bytes = prop.parse_int(1, i32::MAX as i64)? as usize
                }
                "offsets.topic.num.partitions" => {
                    cfg.offsets_topic_num_partitions = prop.parse_int(1, i32::MAX as i64)? as i32
                }
                "offsets.topic.replication.factor" => {
                    cfg.offsets_topic_replication_factor = prop.parse_int(1, i16::MAX as i64)? as i16
                }
                "min.insync.replicas" => cfg.min_insync_replicas = prop.parse_int(1, i32::MAX as i64)? as i32,
                "replica.lag.time.max.ms" => cfg.replica_lag_time_max_ms = prop.parse_int(1, i64::MAX)?,
                "unclean.leader.election.enable" => cfg.unclean_leader_election_enable = prop.parse_bool()?,
                "broker.rack" => cfg.broker_rack = (!prop.value.is_empty()).then(|| prop.value.clone()),
                "auto.leader.rebalance.enable" => cfg.auto_leader_rebalance_enable = prop.parse_bool()?,
                "leader.imbalance.check.interval.seconds" => {
                    cfg.leader_imbalance_check_interval = Duration::from_secs(prop.parse_int(1, i64::MAX)? as u64)
                }
                "leader.imbalance.per.broker.percentage" => {
                    cfg.leader_imbalance_per_broker_percentage = prop.parse_int(0, 100)? as u32
                }
                "num.replica.fetchers" => cfg.num_replica_fetchers = prop.parse_int(1, u32::MAX as i64)? as u32,
                "replica.fetch.max.bytes" => cfg.replica_fetch_max_bytes = prop.parse_int(0, i32::MAX as i64)? as usize,
                "replica.fetch.response.max.bytes" => {
                    cfg.replica_fetch_response_max_bytes = prop.parse_int(0, i32::MAX as i64)? as usize
                }
                "replica.fetch.wait.max.ms" => cfg.replica_fetch_wait_max_ms = prop.parse_int(0, 60_000)? as u64,
                "replica.high.watermark.checkpoint.interval.ms" => {
                    cfg.replica_high_watermark_checkpoint_interval_ms = prop.parse_int(1, i64::MAX)? as u64
                }
                "num.network.threads" => cfg.num_network_threads = prop.parse_int(1, u32::MAX as i64)? as u32,
                "num.io.threads" => cfg.num_io_threads = prop.parse_int(1, u32::MAX as i64)? as u32,
                "compression.type" => {
                    const TYPES: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];
                    if !TYPES.contains(&prop.value.as_str()) {
                        return Err(p("expected one of producer, uncompressed, gzip, snappy, lz4, zstd"));
                    }
                    cfg.compression_type = prop.value.clone();
                }
                "log.cleanup.policy" => {
                    for policy in prop.value.split(',').map(str::trim) {
                        if policy != "delete" && policy != "compact" {
                            return Err(p("expected delete and/or compact"));
                        }
                    }
                    cfg.log_cleanup_policy = prop.value.clone();
                }
                "log.cleaner.enable" => cfg.log_cleaner_enable = prop.parse_bool()?,
                "log.cleaner.backoff.ms" => cfg.log_cleaner_backoff_ms = prop.parse_int(0, i64::MAX)? as u64,
                "log.cleaner.dedupe.buffer.size" => {
                    cfg.log_cleaner_dedupe_buffer_size = prop.parse_int(1024, i64::MAX)? as usize
                }
                "log.cleaner.delete.retention.ms" => {
                    cfg.log_cleaner_delete_retention_ms = prop.parse_int(0, i64::MAX)?
                }
                "log.cleaner.min.compaction.lag.ms" => {
                    cfg.log_cleaner_min_compaction_lag_ms = prop.parse_int(0, i64::MAX)?
                }
                "log.cleaner.min.cleanable.ratio" => {
                    cfg.log_cleaner_min_cleanable_ratio = match prop.value.trim().parse::<f64>() {
                        Ok(r) if (0.0..=1.0).contains(&r) => r,
                        _ => return Err(p("expected a number between 0 and 1")),
                    }
                }
                "offsets.topic.segment.bytes" => {
                    cfg.offsets_topic_segment_bytes = prop.parse_int(14, i32::MAX as i64)? as u64
                }
                k if ACCEPTED_UNUSED.contains(&k) => {}
                k => tracing::warn!(key = k, line = prop.line, "unknown broker config key ignored"),
            }
        }
        cfg.log_retention_ms = match retention {
            (Some(ms), _, _) => ms,
            (None, Some(min), _) => scale(min, 60_000),
            (None, None, Some(h)) => scale(h, 3_600_000),
            (None, None, None) => cfg.log_retention_ms,
        };
        cfg.log_roll_ms = match roll {
            (Some(ms), _) => ms,
            (None, Some(h)) => scale(h, 3_600_000),
            (None, None) => cfg.log_roll_ms,
        };
        // `log.dirs` wins over `log.dir`, as in Kafka.
        if let Some(dirs) = log_dirs.or(log_dir) {
            cfg.log_dirs = dirs;
        }
        if cfg.zookeeper_connect.is_empty() {
            return Err(ConfigError::Missing("zookeeper.connect"));
        }
        if cfg.listeners.is_empty() {
            return Err(ConfigError::Missing("listeners"));
        }
        cfg.raw = props.into_iter().map(|p| (p.key, p.value)).collect();
        Ok(cfg)
    }

    /// The listener clients connect to (the first one; Strom speaks PLAINTEXT only).
    pub fn listener(&self) -> &Listener {
        &self.listeners[0]
    }

    /// The host and port this broker registers for clients, given where the listener bound.
    pub fn advertised_endpoint(&self, bound: SocketAddr) -> (String, u16) {
        if let Some(adv) = self.advertised_listeners.first() {
            let host = if adv.host.is_empty() { default_host() } else { adv.host.clone() };
            let port = if adv.port == 0 { bound.port() } else { adv.port };
            return (host, port);
        }
        let l = self.listener();
        let host =
            if l.host.is_empty() || l.host == "0.0.0.0" || l.host == "::" { default_host() } else { l.host.clone() };
        (host, bound.port())
    }

    /// The storage configuration new partition logs start from (topic overrides apply on top).
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.log_segment_bytes,
            segment_ms: self.log_roll_ms,
            index_interval_bytes: self.log_index_interval_bytes,
            retention_ms: self.log_retention_ms,
            retention_bytes: self.log_retention_bytes,
            flush_interval_messages: self.log_flush_interval_messages,
            flush_interval_ms: self.log_flush_interval_ms,
            max_message_bytes: self.message_max_bytes,
            cleanup_delete: self.log_cleanup_policy.split(',').any(|p| p.trim() == "delete"),
            cleanup_compact: self.log_cleanup_policy.split(',').any(|p| p.trim() == "compact"),
            delete_retention_ms: self.log_cleaner_delete_retention_ms,
            min_cleanable_dirty_ratio: self.log_cleaner_min_cleanable_ratio,
            min_compaction_lag_ms: self.log_cleaner_min_compaction_lag_ms,
        }
    }

    /// The log cleaner's broker-wide settings.
    pub fn cleaner_config(&self) -> CleanerConfig {
        CleanerConfig {
            enable: self.log_cleaner_enable,
            backoff_ms: self.log_cleaner_backoff_ms,
            dedupe_buffer_size: self.log_cleaner_dedupe_buffer_size,
        }
    }
}

fn scale(v: i64, unit: i64) -> i64 {
    if v < 0 {
        -1
    } else {
        v.saturating_mul(unit)
    }
}

/// Kafka advertises the canonical host name when the listener host is empty; Strom advertises
/// `localhost`, which every local client can reach. Multi-host deployments set
/// `advertised.listeners`, as they must with Kafka behind NAT or in containers.
fn default_host() -> String {
    "localhost".to_string()
}

/// One `key=value` entry with the line it started on.
#[derive(Debug, Clone)]
struct Property {
    key: String,
    value: String,
    line: usize,
}

impl Property {
    fn invalid(&self, reason: &str) -> ConfigError {
        ConfigError::InvalidValue {
            key: self.key.clone(),
            value: self.value.clone(),
            line: self.line,
            reason: reason.to_string(),
        }
    }

    fn parse_int(&self, min: i64, max: i64) -> Result<i64, ConfigError> {
        let v: i64 = self.value.trim().parse().map_err(|_| self.invalid("expected an integer"))?;
        if v < min || v > max {
            return Err(self.invalid(&format!("must be between {min} and {max}")));
        }
        Ok(v)
    }

    fn parse_bool(&self) -> Result<bool, ConfigError> {
        match self.value.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(self.invalid("expected true or false")),
        }
    }

    fn parse_paths(&self) -> Result<Vec<PathBuf>, ConfigError> {
        let dirs: Vec<PathBuf> =
            self.value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect();
        if dirs.is_empty() {
            return Err(self.invalid("expected at least one directory"));
        }
        Ok(dirs)
    }

    fn parse_listeners(&self) -> Result<Vec<Listener>, ConfigError> {
        let mut out = Vec::new();
        for item in self.value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, rest) = item.split_once("://").ok_or_else(|| self.invalid("expected NAME://host:port"))?;
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| self.invalid("expected NAME://host:port"))?;
            let port: u16 = port.parse().map_err(|_| self.invalid("port must be a number 0-65535"))?;
            if name != "PLAINTEXT" {
                return Err(self.invalid("only PLAINTEXT listeners are supported"));
            }
            let host = host.trim_start_matches('[').trim_end_matches(']');
            out.push(Listener { name: name.to_string(), host: host.to_string(), port });
        }
        if out.is_empty() {
            return Err(self.invalid("expected at least one listener"));
        }
        Ok(out)
    }
}

/// Java `Properties.load` syntax, read by the keeper crate's parser (shared with
/// `zookeeper.properties`); repeats are kept in order so later overrides win.
fn parse_properties(text: &str) -> Result<Vec<Property>, ConfigError> {
    let entries = strom_keeper::properties::entries(text, "server.properties").map_err(|e| match e {
        strom_keeper::properties::PropertiesError::Syntax { line, message, .. } => {
            ConfigError::Syntax { line, text: message }
        }
        other => ConfigError::Syntax { line: 0, text: other.to_string() },
    })?;
    Ok(entries.into_iter().map(|e| Property { key: e.key, value: e.value, line: e.line }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_style_file() {
        let text = "# comment\n! other comment\nbroker.id=3\nlisteners = PLAINTEXT://127.0.0.1:0\n\
            log.dirs: /a,/b\nzookeeper.connect=h1:2181,h2:2181/strom\nlog.retention.hours=2\n\
            log.retention.minutes=5\nnum.partitions 4\nauto.create.topics.enable=false\n\
            advertised.listeners=PLAINTEXT://broker1:19092\nlog.segment.bytes=1048\\\n  576\n";
        let cfg = BrokerConfig::from_properties_str(text).unwrap();
        assert_eq!(cfg.broker_id, 3);
        assert_eq!(cfg.listener().bind_addr(), "127.0.0.1:0");
        assert_eq!(cfg.log_dirs, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(cfg.zookeeper_connect, "h1:2181,h2:2181/strom");
        // minutes beat hours
        assert_eq!(cfg.log_retention_ms, 5 * 60_000);
        assert_eq!(cfg.num_partitions, 4);
        assert!(!cfg.auto_create_topics_enable);
        assert_eq!(cfg.log_segment_bytes, 1_048_576);
        let bound: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        assert_eq!(cfg.advertised_endpoint(bound), ("broker1".to_string(), 19092));
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let err = BrokerConfig::from_properties_str("zookeeper.connect=x:1\n\nnum.partitions=lots\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("num.partitions") && msg.contains("line 3"), "{msg}");
        let err = BrokerConfig::from_properties_str("zookeeper.connect=x:1\nlisteners=SSL://:9093\n").unwrap_err();
        assert!(err.to_string().contains("listeners"));
    }

    #[test]
    fn missing_zookeeper_is_an_error() {
        let err = BrokerConfig::from_properties_str("broker.id=1\n").unwrap_err();
        assert!(matches!(err, ConfigError::Missing("zookeeper.connect")));
    }

    #[test]
    fn retention_ms_wins_and_minus_one_means_forever() {
        let cfg =
            BrokerConfig::from_properties_str("zookeeper.connect=x:1\nlog.retention.hours=-1\nlog.retention.ms=1000\n")
                .unwrap();
        assert_eq!(cfg.log_retention_ms, 1000);
        let cfg = BrokerConfig::from_properties_str("zookeeper.connect=x:1\nlog.retention.hours=-1\n").unwrap();
        assert_eq!(cfg.log_retention_ms, -1);
    }

    #[test]
    fn shipped_server_properties_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config/server.properties");
        let cfg = BrokerConfig::from_properties_file(&path).unwrap();
        assert_eq!(cfg.broker_id, 0);
        assert_eq!(cfg.listener().port, 9092);
        assert_eq!(cfg.zookeeper_connect, "localhost:2181");
    }
}
