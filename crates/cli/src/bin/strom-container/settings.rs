//! Environment variables → properties files, the way the common Kafka and ZooKeeper images
//! read them: `KAFKA_FOO_BAR` → `foo.bar` (Confluent's rule, `__` → `_`, `___` → `-`) and
//! `ZOO_FOO_BAR` → `fooBar` (plus the official ZooKeeper image's `ZOO_MY_ID`, `ZOO_SERVERS`
//! and `ZOO_CFG_EXTRA`).
//!
//! A mounted properties file is kept verbatim and the environment's keys are appended after
//! it: both Strom parsers let the last occurrence of a key win, so the environment overrides
//! the file, as `--override` does for `kafka-server-start`.

use std::fmt::Write as _;

/// Where container defaults put data when nothing else says so.
pub const DEFAULT_HOME: &str = "/var/lib/strom";

/// JVM and logging knobs of the Java images; they mean nothing to Strom and are skipped
/// (with a log line) instead of becoming bogus broker keys.
const KAFKA_IGNORED: &[&str] = &[
    "KAFKA_HEAP_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JMX_PORT",
    "KAFKA_JMX_HOSTNAME",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
    "KAFKA_VERSION",
    "KAFKA_HOME",
    "KAFKA_DEBUG",
];

const ZOO_IGNORED: &[&str] =
    &["ZOO_CONF_DIR", "ZOO_LOG_DIR", "ZOO_LOG4J_PROP", "ZOO_VERSION", "ZOO_HOME", "ZOO_USER", "ZOO_HEAP_OPTS"];

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {var}: {message}")]
    BadVar { var: String, message: String },
}

fn bad(var: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::BadVar { var: var.to_string(), message: message.into() }
}

/// Ordered `key=value` settings where a later `set` of the same key replaces the earlier one
/// in place, so the written file has each key once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Settings {
    entries: Vec<(String, String)>,
}

impl Settings {
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn remove_prefixed(&mut self, prefix: &str) {
        self.entries.retain(|(k, _)| !k.starts_with(prefix));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Properties text, backslashes escaped so the parsers read the value back unchanged.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.entries {
            let _ = writeln!(out, "{}={}", k, v.replace('\\', "\\\\"));
        }
        out
    }
}

/// The broker defaults a container starts from when no `server.properties` is mounted.
pub fn broker_defaults(home: &str) -> Settings {
    let mut s = Settings::default();
    s.set("broker.id", "0");
    s.set("listeners", "PLAINTEXT://:9092");
    s.set("log.dirs", format!("{home}/kafka-logs"));
    s.set("num.partitions", "1");
    s.set("default.replication.factor", "1");
    s.set("offsets.topic.replication.factor", "1");
    s.set("group.initial.rebalance.delay.ms", "0");
    s
}

/// The keeper defaults a container starts from when no `zookeeper.properties` is mounted.
/// `maxClientCnxns=0`: every client on the host reaches a container from the bridge's one
/// address, so a per-IP limit would cap the whole host.
pub fn keeper_defaults(home: &str) -> Settings {
    let mut s = Settings::default();
    s.set("dataDir", format!("{home}/keeper"));
    s.set("clientPort", "2181");
    s.set("tickTime", "2000");
    s.set("initLimit", "5");
    s.set("syncLimit", "2");
    s.set("maxClientCnxns", "0");
    s.set("admin.enableServer", "false");
    s
}

fn checked_value<'a>(var: &str, value: &'a str) -> Result<&'a str, SettingsError> {
    if value.contains(['\n', '\r']) {
        return Err(bad(var, "a properties value cannot span lines"));
    }
    Ok(value.trim())
}

/// `KAFKA_ADVERTISED_LISTENERS` → `advertised.listeners`; `___` → `-`, `__` → `_`, `_` → `.`.
pub fn kafka_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix("KAFKA_")?;
    if rest.is_empty() {
        return None;
    }
    let lower = rest.to_ascii_lowercase();
    // Placeholders keep the longer runs from being split by the shorter rule.
    Some(
        lower
            .replace("___", "\u{1}")
            .replace("__", "\u{2}")
            .replace('_', ".")
            .replace('\u{1}', "-")
            .replace('\u{2}', "_"),
    )
}

/// Applies every `KAFKA_*` variable to `settings`. Returns the variables skipped as JVM-only.
pub fn apply_kafka_env<I>(settings: &mut Settings, env: I) -> Result<Vec<String>, SettingsError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut skipped = Vec::new();
    let mut vars: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("KAFKA_")).collect();
    vars.sort();
    for (var, value) in vars {
        if KAFKA_IGNORED.contains(&var.as_str()) {
            skipped.push(var);
            continue;
        }
        let Some(key) = kafka_key(&var) else { continue };
        settings.set(key, checked_value(&var, &value)?);
    }
    Ok(skipped)
}

/// `ZOO_TICK_TIME` → `tickTime` (ZooKeeper's camelCase keys), with the official image's
/// special names.
pub fn zoo_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix("ZOO_")?;
    let special = match rest {
        "PORT" => Some("clientPort"),
        "ADMINSERVER_ENABLED" => Some("admin.enableServer"),
        "4LW_COMMANDS_WHITELIST" => Some("4lw.commands.whitelist"),
        "AUTOPURGE_PURGEINTERVAL" => Some("autopurge.purgeInterval"),
        "AUTOPURGE_SNAPRETAINCOUNT" => Some("autopurge.snapRetainCount"),
        _ => None,
    };
    if let Some(key) = special {
        return Some(key.to_string());
    }
    let mut key = String::new();
    for (i, word) in rest.split('_').filter(|w| !w.is_empty()).enumerate() {
        let word = word.to_ascii_lowercase();
        if i == 0 {
            key.push_str(&word);
        } else {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                key.push(first.to_ascii_uppercase());
                key.push_str(chars.as_str());
            }
        }
    }
    (!key.is_empty()).then_some(key)
}

/// What the `ZOO_*` variables say beyond plain keys.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeeperEnv {
    /// `ZOO_MY_ID`: written to `dataDir/myid`.
    pub my_id: Option<u64>,
    pub skipped: Vec<String>,
}

/// Applies every `ZOO_*` variable to `settings`. `ZOO_SERVERS` replaces all `server.N` keys.
pub fn apply_zoo_env<I>(settings: &mut Settings, env: I) -> Result<KeeperEnv, SettingsError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut out = KeeperEnv::default();
    let mut vars: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("ZOO_")).collect();
    vars.sort();
    for (var, value) in vars {
        let value = checked_value(&var, &value)?;
        match var.as_str() {
            v if ZOO_IGNORED.contains(&v) => out.skipped.push(var.clone()),
            "ZOO_MY_ID" => {
                let id = value.parse::<u64>().map_err(|_| bad(&var, format!("\"{value}\" is not a server id")))?;
                out.my_id = Some(id);
            }
            "ZOO_SERVERS" => {
                settings.remove_prefixed("server.");
                for (key, addr) in parse_servers(&var, value)? {
                    settings.set(key, addr);
                }
            }
            "ZOO_CFG_EXTRA" => {
                for pair in value.split_whitespace() {
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or_else(|| bad(&var, format!("expected key=value pairs, got \"{pair}\"")))?;
                    settings.set(k, v);
                }
            }
            _ => {
                if let Some(key) = zoo_key(&var) {
                    settings.set(key, value);
                }
            }
        }
    }
    Ok(out)
}

/// `server.1=keeper1:2888:3888;2181 server.2=...`, separated by spaces or commas.
fn parse_servers(var: &str, value: &str) -> Result<Vec<(String, String)>, SettingsError> {
    let mut out = Vec::new();
    for item in value.split([' ', ',', '\t']).filter(|s| !s.is_empty()) {
        let (key, addr) = item
            .split_once('=')
            .filter(|(k, a)| k.starts_with("server.") && !a.is_empty())
            .ok_or_else(|| bad(var, format!("expected server.N=host:peerPort:electionPort entries, got \"{item}\"")))?;
        let id = &key["server.".len()..];
        if id.parse::<u64>().is_err() {
            return Err(bad(var, format!("\"{id}\" in \"{item}\" is not a server id")));
        }
        out.push((key.to_string(), addr.to_string()));
    }
    if out.is_empty() {
        return Err(bad(var, "lists no servers"));
    }
    Ok(out)
}

/// The file to write: a mounted file's text (verbatim) followed by the overrides.
pub fn compose_file(header: &str, mounted: Option<&str>, overrides: &Settings) -> String {
    let mut out = format!("# {header}\n");
    if let Some(text) = mounted {
        out.push_str(text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
        if !overrides.is_empty() {
            out.push_str("# from the environment (these win over the lines above)\n");
        }
    }
    out.push_str(&overrides.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn kafka_names_follow_confluent() {
        assert_eq!(kafka_key("KAFKA_ADVERTISED_LISTENERS").as_deref(), Some("advertised.listeners"));
        assert_eq!(kafka_key("KAFKA_BROKER_ID").as_deref(), Some("broker.id"));
        assert_eq!(kafka_key("KAFKA_LISTENER_NAME_INTERNAL__SASL").as_deref(), Some("listener.name.internal_sasl"));
        assert_eq!(kafka_key("KAFKA_FOO___BAR").as_deref(), Some("foo-bar"));
        assert_eq!(kafka_key("KAFKA_"), None);
        assert_eq!(kafka_key("BROKER_ID"), None);
    }

    #[test]
    fn kafka_env_overrides_defaults_and_skips_jvm_knobs() {
        let mut s = broker_defaults("/d");
        let skipped = apply_kafka_env(
            &mut s,
            env(&[
                ("KAFKA_BROKER_ID", "3"),
                ("KAFKA_ZOOKEEPER_CONNECT", "k1:2181,k2:2181"),
                ("KAFKA_HEAP_OPTS", "-Xmx1G"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(skipped, vec!["KAFKA_HEAP_OPTS"]);
        assert_eq!(s.get("broker.id"), Some("3"));
        assert_eq!(s.get("zookeeper.connect"), Some("k1:2181,k2:2181"));
        assert_eq!(s.get("log.dirs"), Some("/d/kafka-logs"));
        assert_eq!(s.render().matches("broker.id=").count(), 1);
        assert!(s.get("heap.opts").is_none());
    }

    #[test]
    fn rendered_broker_file_parses() {
        let mut s = broker_defaults("/d");
        apply_kafka_env(&mut s, env(&[("KAFKA_ZOOKEEPER_CONNECT", "k1:2181"), ("KAFKA_BROKER_ID", "2")])).unwrap();
        let text = compose_file("generated", Some("broker.id=9\nlog.dirs=C:\\x\n"), &s);
        let cfg = strom_broker::BrokerConfig::from_properties_str(&text).unwrap();
        assert_eq!(cfg.broker_id, 2);
        assert_eq!(cfg.zookeeper_connect, "k1:2181");
        assert_eq!(cfg.log_dirs, vec![std::path::PathBuf::from("/d/kafka-logs")]);
    }

    #[test]
    fn multiline_values_are_refused_naming_the_variable() {
        let err =
            apply_kafka_env(&mut Settings::default(), env(&[("KAFKA_BROKER_ID", "1\nlog.dirs=/etc")])).unwrap_err();
        assert_eq!(err.to_string(), "environment variable KAFKA_BROKER_ID: a properties value cannot span lines");
    }

    #[test]
    fn zoo_names_are_camel_case() {
        assert_eq!(zoo_key("ZOO_TICK_TIME").as_deref(), Some("tickTime"));
        assert_eq!(zoo_key("ZOO_MAX_CLIENT_CNXNS").as_deref(), Some("maxClientCnxns"));
        assert_eq!(zoo_key("ZOO_DATA_DIR").as_deref(), Some("dataDir"));
        assert_eq!(zoo_key("ZOO_PORT").as_deref(), Some("clientPort"));
        assert_eq!(zoo_key("ZOO_4LW_COMMANDS_WHITELIST").as_deref(), Some("4lw.commands.whitelist"));
    }

    #[test]
    fn zoo_env_builds_an_ensemble_config() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        let mut s = keeper_defaults(&home);
        s.set("server.9", "old:1:2");
        let out = apply_zoo_env(
            &mut s,
            env(&[
                ("ZOO_MY_ID", "2"),
                ("ZOO_SERVERS", "server.1=k1:2888:3888;2181 server.2=k2:2888:3888,server.3=k3:2888:3888"),
                ("ZOO_TICK_TIME", "500"),
                ("ZOO_CFG_EXTRA", "snapCount=5000 minSessionTimeout=1000"),
                ("ZOO_CONF_DIR", "/conf"),
            ]),
        )
        .unwrap();
        assert_eq!(out, KeeperEnv { my_id: Some(2), skipped: vec!["ZOO_CONF_DIR".into()] });
        assert!(s.get("server.9").is_none());
        let text = compose_file("generated", None, &s);
        let mut cfg = strom_keeper::config::KeeperConfig::parse(&text, "z", false).unwrap_or_else(|e| {
            panic!("{e}\n{text}");
        });
        cfg.my_id = 2;
        assert_eq!(cfg.servers.len(), 3);
        assert_eq!(cfg.servers[&1].raft_addr(), "k1:2888");
        assert_eq!(cfg.tick_ms, 500);
        assert_eq!(cfg.snap_count, 5000);
        assert_eq!(cfg.min_session_timeout_ms, 1000);
        assert_eq!(cfg.data_dir, dir.path().join("keeper"));
    }

    #[test]
    fn bad_zoo_values_name_the_variable() {
        let err = apply_zoo_env(&mut Settings::default(), env(&[("ZOO_MY_ID", "one")])).unwrap_err();
        assert_eq!(err.to_string(), "environment variable ZOO_MY_ID: \"one\" is not a server id");
        let err = apply_zoo_env(&mut Settings::default(), env(&[("ZOO_SERVERS", "k1:2888:3888")])).unwrap_err();
        assert!(err.to_string().starts_with("environment variable ZOO_SERVERS: expected server.N="), "{err}");
        let err = apply_zoo_env(&mut Settings::default(), env(&[("ZOO_CFG_EXTRA", "snapCount")])).unwrap_err();
        assert!(err.to_string().contains("ZOO_CFG_EXTRA"), "{err}");
    }

    #[test]
    fn mounted_text_comes_first_and_env_wins() {
        let mut s = Settings::default();
        s.set("clientPort", "2182");
        let text = compose_file("generated", Some("dataDir=/x\nclientPort=2181"), &s);
        let cfg = strom_keeper::config::KeeperConfig::parse(&text, "z", false).unwrap();
        assert_eq!(cfg.client_addr.port(), 2182);
        assert!(text.starts_with("# generated\ndataDir=/x\nclientPort=2181\n#"), "{text}");
    }
}
