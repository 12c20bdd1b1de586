//! `strom-container health keeper|broker`: the container health checks. A scratch image has
//! no shell or curl, so the probes are ours; each reads the properties file the entrypoint
//! wrote, so it checks what the server actually runs with.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use strom_broker::BrokerConfig;
use strom_keeper::client::{server_status, KeeperClient};
use strom_keeper::config::KeeperConfig;
use tokio::net::TcpStream;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Healthy when this keeper answers and is a voting member that knows its leader (or is a
/// standalone server).
pub async fn keeper(config_path: &Path) -> Result<String> {
    let config = KeeperConfig::from_file(config_path)?;
    let addr = loopback_if_unspecified(config.client_addr).to_string();
    let status =
        server_status(&addr, PROBE_TIMEOUT).await.with_context(|| format!("keeper at {addr} does not answer"))?;
    let member = status.members.contains(&status.server_id);
    match status.role.as_str() {
        "leader" | "follower" | "standalone" if member && status.leader_id >= 0 => {
            Ok(format!("keeper {} is {} (leader {})", status.server_id, status.role, status.leader_id))
        }
        role => {
            bail!("keeper {} is {role} (leader {}, members {:?})", status.server_id, status.leader_id, status.members)
        }
    }
}

fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(
            if addr.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() },
            addr.port(),
        )
    } else {
        addr
    }
}

/// Healthy when the broker's listener accepts connections and its registration znode
/// `/brokers/ids/<id>` exists in the keeper ensemble.
pub async fn broker(config_path: &Path) -> Result<String> {
    let config = BrokerConfig::from_properties_file(config_path)?;
    let listener = config.listener();
    let port = listener.port;
    // A listener bound to one host name or address is probed there, a wildcard on loopback.
    let host = match listener.host.as_str() {
        "" | "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        h => h.trim_start_matches('[').trim_end_matches(']'),
    };
    tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| anyhow::anyhow!("listener {host}:{port} does not accept within {PROBE_TIMEOUT:?}"))?
        .with_context(|| format!("listener {host}:{port} refuses connections"))?;
    let path = format!("/brokers/ids/{}", config.broker_id);
    let registered = tokio::time::timeout(2 * PROBE_TIMEOUT, async {
        let zk = KeeperClient::connect(&config.zookeeper_connect, Duration::from_secs(10)).await?;
        let found = zk.exists(&path, false).await;
        zk.close().await;
        found
    })
    .await
    .map_err(|_| anyhow::anyhow!("keeper ensemble {} does not answer in time", config.zookeeper_connect))?
    .with_context(|| format!("cannot read {path} from {}", config.zookeeper_connect))?;
    match registered {
        Some(_) => Ok(format!("broker {} listens on {port} and is registered", config.broker_id)),
        None => bail!("broker {} is not registered ({path} is missing)", config.broker_id),
    }
}
