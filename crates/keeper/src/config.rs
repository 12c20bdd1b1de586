//! `zookeeper.properties`: the keys ZooKeeper reads, the `myid` file, and the ensemble lines.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use crate::properties::{self, Properties, PropertiesError};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Properties(#[from] PropertiesError),
    #[error("{file}: line {line}: {key}: {message}")]
    BadValue { file: String, line: usize, key: String, message: String },
    #[error("{file}: missing required key {key}")]
    Missing { file: String, key: String },
    #[error("{path}: {message}")]
    MyId { path: String, message: String },
}

/// One `server.N=host:peerPort:electionPort` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    pub host: String,
    pub peer_port: u16,
    pub election_port: u16,
}

impl PeerAddr {
    /// Where this member's Raft transport listens (the quorum port, as in ZooKeeper).
    pub fn raft_addr(&self) -> String {
        format!("{}:{}", self.host, self.peer_port)
    }
}

#[derive(Debug, Clone)]
pub struct KeeperConfig {
    pub data_dir: PathBuf,
    pub client_addr: SocketAddr,
    pub tick_ms: u64,
    pub init_limit: u32,
    pub sync_limit: u32,
    /// Connections allowed from one client IP (0 = unlimited).
    pub max_client_cnxns: usize,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub my_id: u64,
    /// Empty in standalone mode.
    pub servers: BTreeMap<u64, PeerAddr>,
    /// Entries between snapshots (ZooKeeper's `snapCount`).
    pub snap_count: u64,
}

impl KeeperConfig {
    /// Standalone defaults on the given client address; used by the quick start and tests.
    pub fn standalone(data_dir: impl Into<PathBuf>, client_addr: SocketAddr) -> KeeperConfig {
        KeeperConfig {
            data_dir: data_dir.into(),
            client_addr,
            tick_ms: 2000,
            init_limit: 10,
            sync_limit: 5,
            max_client_cnxns: 60,
            min_session_timeout_ms: 4000,
            max_session_timeout_ms: 40000,
            my_id: 1,
            servers: BTreeMap::new(),
            snap_count: 10_000,
        }
    }

    pub fn is_standalone(&self) -> bool {
        self.servers.len() <= 1
    }

    /// Clamps a requested session timeout into ZooKeeper's [2, 20] ticks (or the configured
    /// min/max).
    pub fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        requested_ms.clamp(self.min_session_timeout_ms, self.max_session_timeout_ms)
    }

    pub fn from_file(path: &Path) -> Result<KeeperConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PropertiesError::Io { path: path.display().to_string(), source: e })?;
        Self::parse(&text, &path.display().to_string(), true)
    }

    /// Parses properties text. `read_myid` reads `dataDir/myid` when the file lists servers.
    pub fn parse(text: &str, file: &str, read_myid: bool) -> Result<KeeperConfig, ConfigError> {
        let props = properties::parse(text, file)?;
        Self::from_properties(&props, file, read_myid)
    }

    fn from_properties(props: &Properties, file: &str, read_myid: bool) -> Result<KeeperConfig, ConfigError> {
        let bad = |key: &str, message: String| ConfigError::BadValue {
            file: file.to_string(),
            line: props.line_of(key),
            key: key.to_string(),
            message,
        };
        fn num<T: std::str::FromStr>(props: &Properties, key: &str) -> Option<Result<T, String>> {
            props.get(key).map(|v| v.parse::<T>().map_err(|_| format!("expected a number, got \"{v}\"")))
        }
        let data_dir = props
            .get("dataDir")
            .map(PathBuf::from)
            .ok_or_else(|| ConfigError::Missing { file: file.to_string(), key: "dataDir".into() })?;
        let client_port: u16 = match num(props, "clientPort") {
            Some(r) => r.map_err(|m| bad("clientPort", m))?,
            None => return Err(ConfigError::Missing { file: file.to_string(), key: "clientPort".into() }),
        };
        let host = props.get("clientPortAddress").unwrap_or("0.0.0.0");
        let client_addr = (host, client_port)
            .to_socket_addrs()
            .map_err(|e| bad("clientPortAddress", e.to_string()))?
            .next()
            .ok_or_else(|| bad("clientPortAddress", "does not resolve".into()))?;
        let mut cfg = KeeperConfig::standalone(data_dir, client_addr);
        if let Some(r) = num::<u64>(props, "tickTime") {
            cfg.tick_ms = r.map_err(|m| bad("tickTime", m))?;
            if cfg.tick_ms == 0 {
                return Err(bad("tickTime", "must be positive".into()));
            }
        }
        if let Some(r) = num::<u32>(props, "initLimit") {
            cfg.init_limit = r.map_err(|m| bad("initLimit", m))?;
        }
        if let Some(r) = num::<u32>(props, "syncLimit") {
            cfg.sync_limit = r.map_err(|m| bad("syncLimit", m))?;
        }
        if let Some(r) = num::<usize>(props, "maxClientCnxns") {
            cfg.max_client_cnxns = r.map_err(|m| bad("maxClientCnxns", m))?;
        }
        if let Some(r) = num::<u64>(props, "snapCount") {
            cfg.snap_count = r.map_err(|m| bad("snapCount", m))?.max(100);
        }
        let tick = cfg.tick_ms.min(i32::MAX as u64 / 20) as i32;
        cfg.min_session_timeout_ms = match num::<i32>(props, "minSessionTimeout") {
            Some(r) => r.map_err(|m| bad("minSessionTimeout", m))?,
            None => 2 * tick,
        };
        cfg.max_session_timeout_ms = match num::<i32>(props, "maxSessionTimeout") {
            Some(r) => r.map_err(|m| bad("maxSessionTimeout", m))?,
            None => 20 * tick,
        };
        if cfg.min_session_timeout_ms > cfg.max_session_timeout_ms {
            return Err(bad("minSessionTimeout", "greater than maxSessionTimeout".into()));
        }
        for (key, value) in props.iter() {
            if let Some(id) = key.strip_prefix("server.") {
                let id: u64 = id.parse().map_err(|_| bad(key, format!("\"{id}\" is not a server id")))?;
                cfg.servers.insert(id, parse_server(value).map_err(|m| bad(key, m))?);
            } else if !KNOWN.contains(&key)
                && !key.starts_with("autopurge.")
                && !key.starts_with("4lw.")
                && !key.starts_with("admin.")
            {
                tracing::warn!(key, line = props.line_of(key), file, "unknown zookeeper.properties key ignored");
            }
        }
        if !cfg.servers.is_empty() {
            if read_myid {
                let path = cfg.data_dir.join("myid");
                let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::MyId {
                    path: path.display().to_string(),
                    message: format!("cannot read myid ({e}); it must hold this server's id from the server.N lines"),
                })?;
                cfg.my_id = text.trim().parse().map_err(|_| ConfigError::MyId {
                    path: path.display().to_string(),
                    message: format!("\"{}\" is not a number", text.trim()),
                })?;
            }
            if !cfg.servers.contains_key(&cfg.my_id) {
                return Err(ConfigError::MyId {
                    path: cfg.data_dir.join("myid").display().to_string(),
                    message: format!("myid {} has no server.{} line", cfg.my_id, cfg.my_id),
                });
            }
        }
        Ok(cfg)
    }
}

const KNOWN: &[&str] = &[
    "dataDir",
    "dataLogDir",
    "clientPort",
    "clientPortAddress",
    "tickTime",
    "initLimit",
    "syncLimit",
    "maxClientCnxns",
    "minSessionTimeout",
    "maxSessionTimeout",
    "snapCount",
    "standaloneEnabled",
    "reconfigEnabled",
    "preAllocSize",
    "globalOutstandingLimit",
];

/// `host:peerPort:electionPort[:participant|observer][;[clientHost:]clientPort]`
fn parse_server(value: &str) -> Result<PeerAddr, String> {
    let main = value.split(';').next().unwrap_or("");
    let parts: Vec<&str> = main.split(':').collect();
    if parts.len() < 3 || parts[0].is_empty() {
        return Err(format!("expected host:peerPort:electionPort, got \"{value}\""));
    }
    let port = |s: &str| s.parse::<u16>().map_err(|_| format!("\"{s}\" is not a port in \"{value}\""));
    Ok(PeerAddr { host: parts[0].to_string(), peer_port: port(parts[1])?, election_port: port(parts[2])? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_file() {
        let cfg = KeeperConfig::parse("dataDir=/tmp/zk\nclientPort=2181\nmaxClientCnxns=0\n", "z", true).unwrap();
        assert!(cfg.is_standalone());
        assert_eq!(cfg.client_addr.port(), 2181);
        assert_eq!(cfg.negotiate_timeout(1), 4000);
        assert_eq!(cfg.negotiate_timeout(1_000_000), 40000);
    }

    #[test]
    fn ensemble_needs_myid() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "dataDir={}\nclientPort=2181\ntickTime=1000\nserver.1=a:2888:3888\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n",
            dir.path().display()
        );
        assert!(matches!(KeeperConfig::parse(&text, "z", true), Err(ConfigError::MyId { .. })));
        std::fs::write(dir.path().join("myid"), "2\n").unwrap();
        let cfg = KeeperConfig::parse(&text, "z", true).unwrap();
        assert_eq!(cfg.my_id, 2);
        assert_eq!(cfg.servers[&3].raft_addr(), "c:2888");
        assert_eq!(cfg.max_session_timeout_ms, 20000);
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let err = KeeperConfig::parse("dataDir=/x\nclientPort=abc\n", "zk.props", true).unwrap_err();
        assert_eq!(err.to_string(), "zk.props: line 2: clientPort: expected a number, got \"abc\"");
        let err = KeeperConfig::parse("dataDir=/x\nclientPort=1\nserver.1=nohost\n", "f", true).unwrap_err();
        assert!(err.to_string().contains("line 3: server.1"), "{err}");
    }
}
