//! Strom's user-facing programs. Each binary under `src/bin/` is one program, named as in
//! Apache Kafka's distribution so a Kafka tutorial works with the `.sh` dropped:
//!
//! - `zookeeper-server-start`, `zookeeper-shell`, `keeper-bench`: the keeper's launcher, zkCli-style
//!   shell and load generator.
//! - `kafka-server-start`: the broker's launcher; `strom`: the single-process quick start.
//! - `kafka-topics`, `kafka-leader-election`, `kafka-consumer-groups`, `kafka-console-producer`,
//!   `kafka-console-consumer`, the perf tests: tools over the Kafka protocol (crate
//!   `strom-client`) or the keeper.
//!
//! This library holds only what the programs share: logging setup and runtime construction.

use anyhow::Context;
use tracing_subscriber::EnvFilter;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`, or `warn` for interactive tools).
pub fn init_logging(default: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},openraft=warn,sled=warn,h2=warn,tower=warn")));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// A multi-threaded runtime sized for a server process.
pub fn server_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

/// Resolves on SIGTERM or Ctrl-C, the signals a launcher stops on.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Splits a `key=value` command-line argument (`--property`, `--producer-property`, ...).
pub fn split_kv(raw: &str, flag: &str) -> anyhow::Result<(String, String)> {
    match raw.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => anyhow::bail!("{flag} expects key=value, got '{raw}'"),
    }
}

/// A client properties file (`--producer.config`, `--consumer.config`), read with the same
/// Java-properties parser as the servers' files; keys in file order.
pub fn read_properties_file(path: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let entries = strom_keeper::properties::entries(&text, &path.display().to_string())?;
    Ok(entries.into_iter().map(|e| (e.key, e.value)).collect())
}

/// A tool's exit status: its error on stderr as `ERROR …` (Kafka's tools' style) and 1.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
