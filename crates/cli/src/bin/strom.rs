//! `strom`: the quick start — a keeper and a broker in one process, data in a local folder,
//! on the usual ports (keeper 2181, Kafka 9092). For a real cluster use
//! `zookeeper-server-start` and `kafka-server-start` with properties files.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use strom_broker::{Broker, BrokerConfig};
use strom_keeper::config::KeeperConfig;
use strom_keeper::server::KeeperServer;

#[derive(Parser)]
#[command(name = "strom", about = "Strom quick start: one keeper and one broker in a single process")]
struct Args {
    /// Where the keeper's data and the broker's logs live
    #[arg(long, default_value = "strom-data")]
    data_dir: PathBuf,
    /// Keeper client port
    #[arg(long, default_value_t = 2181)]
    keeper_port: u16,
    /// Kafka listener port
    #[arg(long, default_value_t = 9092)]
    kafka_port: u16,
    /// Host name the broker advertises to clients
    #[arg(long, default_value = "localhost")]
    advertised_host: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    strom_cli::init_logging("info");
    let rt = strom_cli::server_runtime().context("cannot start the async runtime")?;
    rt.block_on(async move {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
        let keeper_addr: SocketAddr = ([0, 0, 0, 0], args.keeper_port).into();
        let mut keeper_config = KeeperConfig::standalone(args.data_dir.join("keeper"), keeper_addr);
        keeper_config.max_client_cnxns = 0;
        let keeper = KeeperServer::start(keeper_config).await?;
        let props = format!(
            "broker.id=0\nlisteners=PLAINTEXT://:{port}\nadvertised.listeners=PLAINTEXT://{host}:{port}\n\
             log.dirs={logs}\nzookeeper.connect=127.0.0.1:{zk}\nnum.partitions=1\n\
             default.replication.factor=1\noffsets.topic.replication.factor=1\n",
            port = args.kafka_port,
            host = args.advertised_host,
            logs = args.data_dir.join("kafka-logs").display(),
            zk = keeper.client_addr().port(),
        );
        let broker = Broker::start(BrokerConfig::from_properties_str(&props)?).await?;
        println!(
            "Strom is up: Kafka bootstrap {}:{}, keeper 127.0.0.1:{}, data in {}. Ctrl-C stops it.",
            args.advertised_host,
            broker.local_addr().port(),
            keeper.client_addr().port(),
            args.data_dir.display()
        );
        tokio::select! {
            _ = strom_cli::wait_for_signal() => {}
            _ = broker.wait() => {}
        }
        broker.shutdown().await;
        keeper.shutdown().await;
        Ok(())
    })
}
