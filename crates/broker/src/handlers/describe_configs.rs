//! DescribeConfigs: topic configs (overrides over Kafka's defaults) and this broker's configs.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::{sb, BrokerState, RequestMeta};
use crate::config::BrokerConfig;
use crate::protocol::EncodeError;
use crate::topic::{self, ConfigType, TOPIC_CONFIGS};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// One described config value.
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: i8,
    pub kind: ConfigType,
    synonyms: Vec<(String, String, i8)>,
}

/// Every topic config with its effective value: the override, else the broker's setting,
/// else Kafka's default.
pub fn topic_entries(cfg: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(def.name) {
                synonyms.push((def.name.to_string(), v.clone(), SOURCE_DYNAMIC_TOPIC));
            }
            if let Some(key) = def.broker_key {
                if let Some(v) = cfg.raw.get(key) {
                    synonyms.push((key.to_string(), v.clone(), SOURCE_STATIC_BROKER));
                }
                synonyms.push((key.to_string(), def.default_value(cfg), SOURCE_DEFAULT));
            }
            let (value, source) = match overrides.get(def.name) {
                Some(v) => (v.clone(), SOURCE_DYNAMIC_TOPIC),
                None => (
                    def.default_value(cfg),
                    if def.broker_key.is_some_and(|k| cfg.raw.contains_key(k)) {
                        SOURCE_STATIC_BROKER
                    } else {
                        SOURCE_DEFAULT
                    },
                ),
            };
            ConfigEntry { name: def.name.to_string(), value, source, kind: def.kind, synonyms }
        })
        .collect()
}

/// This broker's configs: the topic-level defaults under their broker names, plus the
/// broker-only settings, each marked static (set in the file) or default.
fn broker_entries(cfg: &BrokerConfig) -> Vec<ConfigEntry> {
    let mut out: Vec<ConfigEntry> = TOPIC_CONFIGS
        .iter()
        .filter_map(|def| {
            let key = def.broker_key?;
            Some(entry(cfg, key, def.default_value(cfg), def.kind))
        })
        .collect();
    let listeners = |ls: &[crate::config::Listener]| {
        ls.iter().map(|l| format!("{}://{}:{}", l.name, l.host, l.port)).collect::<Vec<_>>().join(",")
    };
    let dirs = cfg.log_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(",");
    let extra: Vec<(&str, String, ConfigType)> = vec![
        ("broker.id", cfg.broker_id.to_string(), ConfigType::Int),
        ("listeners", listeners(&cfg.listeners), ConfigType::String),
        ("advertised.listeners", listeners(&cfg.advertised_listeners), ConfigType::String),
        ("log.dirs", dirs, ConfigType::String),
        ("zookeeper.connect", cfg.zookeeper_connect.clone(), ConfigType::String),
        ("num.partitions", cfg.num_partitions.to_string(), ConfigType::Int),
        ("default.replication.factor", cfg.default_replication_factor.to_string(), ConfigType::Int),
        ("auto.create.topics.enable", cfg.auto_create_topics_enable.to_string(), ConfigType::Boolean),
        ("delete.topic.enable", cfg.delete_topic_enable.to_string(), ConfigType::Boolean),
        ("socket.request.max.bytes", cfg.socket_request_max_bytes.to_string(), ConfigType::Int),
        ("log.retention.check.interval.ms", cfg.log_retention_check_interval_ms.to_string(), ConfigType::Long),
        ("offsets.topic.num.partitions", cfg.offsets_topic_num_partitions.to_string(), ConfigType::Int),
        ("offsets.topic.replication.factor", cfg.offsets_topic_replication_factor.to_string(), ConfigType::Int),
        ("replica.lag.time.max.ms", cfg.replica_lag_time_max_ms.to_string(), ConfigType::Long),
        ("auto.leader.rebalance.enable", cfg.auto_leader_rebalance_enable.to_string(), ConfigType::Boolean),
        ("num.replica.fetchers", cfg.num_replica_fetchers.to_string(), ConfigType::Int),
        ("replica.fetch.max.bytes", cfg.replica_fetch_max_bytes.to_string(), ConfigType::Int),
        ("num.network.threads", cfg.num_network_threads.to_string(), ConfigType::Int),
        ("num.io.threads", cfg.num_io_threads.to_string(), ConfigType::Int),
        ("broker.rack", cfg.broker_rack.clone().unwrap_or_default(), ConfigType::String),
    ];
    out.extend(extra.into_iter().map(|(k, v, kind)| entry(cfg, k, v, kind)));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn entry(cfg: &BrokerConfig, key: &str, value: String, kind: ConfigType) -> ConfigEntry {
    let source = if cfg.raw.contains_key(key) { SOURCE_STATIC_BROKER } else { SOURCE_DEFAULT };
    ConfigEntry { name: key.to_string(), synonyms: vec![(key.to_string(), value.clone(), source)], value, source, kind }
}

pub fn handle(state: &Arc<BrokerState>, meta: &RequestMeta, req: DescribeConfigsRequest) -> Result<Bytes, EncodeError> {
    let snapshot = state.cache.snapshot();
    let cfg = &state.config;
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let mut r = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let entries = match res.resource_type {
                RESOURCE_TOPIC => match snapshot.topic(&res.resource_name) {
                    Some(t) => topic_entries(cfg, &t.config),
                    None => {
                        let code = if topic::validate_name(&res.resource_name).is_err() {
                            ResponseError::InvalidTopicException
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        };
                        r.error_code = code.code();
                        r.error_message = Some(sb(format!("Topic '{}' does not exist.", &*res.resource_name)));
                        return r;
                    }
                },
                RESOURCE_BROKER => {
                    let name = res.resource_name.trim();
                    if !name.is_empty() && name.parse::<i32>().ok() != Some(cfg.broker_id) {
                        r.error_code = ResponseError::InvalidRequest.code();
                        r.error_message = Some(sb(format!(
                            "Unexpected broker id, expected {} or empty string, but received {name}",
                            cfg.broker_id
                        )));
                        return r;
                    }
                    broker_entries(cfg)
                }
                other => {
                    r.error_code = ResponseError::InvalidRequest.code();
                    r.error_message = Some(sb(format!("Unsupported resource type {other}")));
                    return r;
                }
            };
            // Null or empty both mean "every config", as in Kafka.
            let wanted = res
                .configuration_keys
                .filter(|keys| !keys.is_empty())
                .map(|keys| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>());
            r.configs = entries
                .into_iter()
                .filter(|e| wanted.as_ref().is_none_or(|w| w.contains(&e.name)))
                .map(|e| {
                    let synonyms = if req.include_synonyms {
                        e.synonyms
                            .iter()
                            .map(|(n, v, s)| {
                                DescribeConfigsSynonym::default()
                                    .with_name(sb(n.clone()))
                                    .with_value(Some(sb(v.clone())))
                                    .with_source(*s)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    DescribeConfigsResourceResult::default()
                        .with_name(sb(e.name))
                        .with_value(Some(sb(e.value)))
                        .with_read_only(res.resource_type == RESOURCE_BROKER)
                        .with_config_source(e.source)
                        .with_is_sensitive(false)
                        .with_synonyms(synonyms)
                        .with_config_type(e.kind.code())
                })
                .collect();
            r
        })
        .collect();
    meta.respond(&DescribeConfigsResponse::default().with_results(results))
}
