//! `strom-container`: the container image's entrypoint.
//!
//! - `strom-container keeper`: builds `zookeeper.properties` from a mounted file
//!   (`/etc/strom/zookeeper.properties`) and the `ZOO_*` variables, writes it and `myid` into
//!   the data volume, and runs the keeper in this process.
//! - `strom-container broker`: the same for `server.properties` and `KAFKA_*`, plus the
//!   loopback forwards of `STROM_FORWARD`, then runs the broker.
//! - `strom-container health keeper|broker`: the health checks (exit 0 when healthy).
//!
//! Modules: [`settings`] turns variables into properties, [`forward`] holds the loopback
//! forwards, [`health`] the probes.

mod forward;
mod health;
mod settings;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use strom_broker::{Broker, BrokerConfig};
use strom_keeper::config::KeeperConfig;
use strom_keeper::server::KeeperServer;
use tokio::sync::watch;

use settings::{Settings, DEFAULT_HOME};

#[derive(Parser)]
#[command(
    name = "strom-container",
    about = "Strom's container entrypoint: configure from environment variables, then run a keeper or a broker",
    after_help = "Environment: STROM_HOME (data volume, default /var/lib/strom), KAFKA_* (server.properties keys), \
                  ZOO_* (zookeeper.properties keys), STROM_FORWARD (broker loopback forwards). See docs/docker.md."
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a keeper configured by ZOO_* variables and/or a mounted zookeeper.properties
    Keeper {
        /// Base properties file; default /etc/strom/zookeeper.properties when it exists
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run a broker configured by KAFKA_* variables and/or a mounted server.properties
    Broker {
        /// Base properties file; default /etc/strom/server.properties when it exists
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Exit 0 when the server this container runs is healthy
    Health {
        #[arg(value_enum)]
        role: Role,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Role {
    Keeper,
    Broker,
}

impl Role {
    fn file_name(self) -> &'static str {
        match self {
            Role::Keeper => "zookeeper.properties",
            Role::Broker => "server.properties",
        }
    }

    /// Where the entrypoint writes the effective properties (and the health check reads them).
    fn generated_path(self, home: &Path) -> PathBuf {
        home.join(self.file_name())
    }
}

fn home() -> PathBuf {
    std::env::var_os("STROM_HOME").map_or_else(|| PathBuf::from(DEFAULT_HOME), PathBuf::from)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Command::Health { role } = args.command {
        strom_cli::init_logging("error");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let path = role.generated_path(&home());
        let verdict = rt.block_on(async {
            match role {
                Role::Keeper => health::keeper(&path).await,
                Role::Broker => health::broker(&path).await,
            }
        });
        return match verdict {
            Ok(line) => {
                println!("{line}");
                Ok(())
            }
            Err(e) => {
                eprintln!("unhealthy: {e:#}");
                std::process::exit(1);
            }
        };
    }
    strom_cli::init_logging("info");
    let rt = strom_cli::server_runtime().context("cannot start the async runtime")?;
    match args.command {
        Command::Keeper { config } => rt.block_on(run_keeper(config)),
        Command::Broker { config } => rt.block_on(run_broker(config)),
        Command::Health { .. } => Ok(()),
    }
}

/// The mounted base file: the `--config` path (which must exist) or the role's default
/// under `/etc/strom` when present.
fn read_base(role: Role, explicit: Option<PathBuf>) -> Result<Option<(PathBuf, String)>> {
    let path = match explicit {
        Some(p) => p,
        None => {
            let p = Path::new("/etc/strom").join(role.file_name());
            if !p.exists() {
                return Ok(None);
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some((path, text)))
}

/// Writes the effective properties file into the data volume, replacing it atomically so a
/// health check never reads half a file.
fn write_generated(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("properties.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "wrote effective configuration");
    Ok(())
}

fn env_vars() -> Vec<(String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

async fn run_keeper(config: Option<PathBuf>) -> Result<()> {
    let home = home();
    let base = read_base(Role::Keeper, config)?;
    let mut overrides =
        if base.is_some() { Settings::default() } else { settings::keeper_defaults(&home.display().to_string()) };
    let zoo = settings::apply_zoo_env(&mut overrides, env_vars())?;
    if !zoo.skipped.is_empty() {
        tracing::info!(vars = ?zoo.skipped, "ignoring JVM/logging variables of the ZooKeeper image");
    }
    let header = match &base {
        Some((p, _)) => format!("written by strom-container from {} and ZOO_* variables", p.display()),
        None => "written by strom-container from ZOO_* variables".to_string(),
    };
    let text = settings::compose_file(&header, base.as_ref().map(|(_, t)| t.as_str()), &overrides);
    let out = Role::Keeper.generated_path(&home);
    // Validate before touching the volume, and learn dataDir for myid.
    let parsed = KeeperConfig::parse(&text, &out.display().to_string(), false)?;
    if let Some(id) = zoo.my_id {
        write_myid(&parsed.data_dir, id)?;
    }
    write_generated(&out, &text)?;
    let config = KeeperConfig::from_file(&out)?;
    let server = KeeperServer::start(config).await?;
    strom_cli::wait_for_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// Writes `dataDir/myid` unless it already holds the same id. A different id is refused: the
/// volume's Raft log belongs to that member, and serving it under another id would corrupt
/// the ensemble.
fn write_myid(data_dir: &Path, id: u64) -> Result<()> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join("myid");
    match std::fs::read_to_string(&path) {
        Ok(old) if old.trim() == id.to_string() => return Ok(()),
        Ok(old) => bail!(
            "{} holds id {} but ZOO_MY_ID is {id}; this volume belongs to another member",
            path.display(),
            old.trim()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    std::fs::write(&path, format!("{id}\n")).with_context(|| format!("cannot write {}", path.display()))
}

async fn run_broker(config: Option<PathBuf>) -> Result<()> {
    let home = home();
    let base = read_base(Role::Broker, config)?;
    let mut overrides =
        if base.is_some() { Settings::default() } else { settings::broker_defaults(&home.display().to_string()) };
    let skipped = settings::apply_kafka_env(&mut overrides, env_vars())?;
    if !skipped.is_empty() {
        tracing::info!(vars = ?skipped, "ignoring JVM/logging variables of the Kafka image");
    }
    let header = match &base {
        Some((p, _)) => format!("written by strom-container from {} and KAFKA_* variables", p.display()),
        None => "written by strom-container from KAFKA_* variables".to_string(),
    };
    let text = settings::compose_file(&header, base.as_ref().map(|(_, t)| t.as_str()), &overrides);
    let config = BrokerConfig::from_properties_str(&text).context("invalid broker configuration")?;
    if config.zookeeper_connect.is_empty() {
        bail!("zookeeper.connect is not set: set KAFKA_ZOOKEEPER_CONNECT or mount a server.properties that has it");
    }
    write_generated(&Role::Broker.generated_path(&home), &text)?;
    let forwards = forward::parse(&std::env::var("STROM_FORWARD").unwrap_or_default())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let forward_tasks = forward::start(&forwards, stop_rx).await?;
    let broker = Broker::start(config).await?;
    tokio::select! {
        _ = strom_cli::wait_for_signal() => {}
        _ = broker.wait() => {}
    }
    tracing::info!("shutting down");
    broker.shutdown().await;
    stop_tx.send_replace(true);
    for t in forward_tasks {
        if let Err(e) = t.await {
            tracing::warn!(error = %e, "forward task ended abnormally");
        }
    }
    Ok(())
}
