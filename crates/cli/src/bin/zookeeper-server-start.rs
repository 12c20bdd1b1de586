//! `zookeeper-server-start <zookeeper.properties>`: runs one keeper, standalone or as a member
//! of the ensemble listed by the file's `server.N` lines (this member's id in `dataDir/myid`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use strom_keeper::config::KeeperConfig;
use strom_keeper::server::KeeperServer;

#[derive(Parser)]
#[command(name = "zookeeper-server-start", about = "Start a Strom keeper (ZooKeeper-compatible coordination service)")]
struct Args {
    /// Path to zookeeper.properties
    config: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    strom_cli::init_logging("info");
    let config = KeeperConfig::from_file(&args.config)?;
    let rt = strom_cli::server_runtime().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let server = KeeperServer::start(config).await?;
        strom_cli::wait_for_signal().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}
