//! Runs one broker from a `server.properties` file until Ctrl-C — the launcher in `crates/cli`
//! (`kafka-server-start`) does the same with Kafka's flags; this one is for development.
//!
//! `cargo run --release -p strom-broker --example broker -- deploy/config/server.properties`
//! Add `--embedded-keeper <data dir>` to also run a standalone keeper in-process on the
//! `zookeeper.connect` address.

use std::path::PathBuf;

use strom_broker::{Broker, BrokerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let path: PathBuf = std::env::args_os().nth(1).map(PathBuf::from).ok_or("usage: broker <server.properties>")?;
    let config = BrokerConfig::from_properties_file(&path)?;
    let mut keeper = None;
    if std::env::args().nth(2).as_deref() == Some("--embedded-keeper") {
        let dir = std::env::args().nth(3).ok_or("--embedded-keeper needs a data dir")?;
        let ensemble = config.zookeeper_connect.split('/').next().unwrap_or_default();
        let addr = ensemble.split(',').next().unwrap_or_default().replace("localhost", "127.0.0.1");
        let kc = strom_keeper::config::KeeperConfig::standalone(dir, addr.parse()?);
        keeper = Some(strom_keeper::server::KeeperServer::start(kc).await?);
    }
    let broker = Broker::start(config).await?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => broker.shutdown().await,
        _ = broker.wait() => {}
    }
    if let Some(k) = keeper {
        k.shutdown().await;
    }
    Ok(())
}
