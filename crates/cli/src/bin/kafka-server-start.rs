//! `kafka-server-start <server.properties> [--override key=value ...]`: runs one broker, as
//! Kafka's launcher does.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use strom_broker::{Broker, BrokerConfig};

#[derive(Parser)]
#[command(name = "kafka-server-start", about = "Start a Strom broker (Kafka-protocol compatible)")]
struct Args {
    /// Path to server.properties
    config: PathBuf,
    /// Overrides a property of the file (Kafka's `--override key=value`)
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    strom_cli::init_logging("info");
    let mut text =
        std::fs::read_to_string(&args.config).with_context(|| format!("cannot read {}", args.config.display()))?;
    for o in &args.overrides {
        if !o.contains('=') {
            anyhow::bail!("--override {o}: expected key=value");
        }
        text.push('\n');
        text.push_str(o);
    }
    let config = if args.overrides.is_empty() {
        BrokerConfig::from_properties_file(&args.config)?
    } else {
        BrokerConfig::from_properties_str(&text)?
    };
    let rt = strom_cli::server_runtime().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let broker = Broker::start(config).await?;
        tokio::select! {
            _ = strom_cli::wait_for_signal() => {}
            _ = broker.wait() => {}
        }
        tracing::info!("shutting down");
        broker.shutdown().await;
        Ok(())
    })
}
