//! `keeper-bench`: drives a running keeper ensemble with many requests in flight and prints
//! ops/s and latency percentiles for create, set, get and exists, then the latency of one
//! synchronous create at a time. A benchmark, not a test: it prints figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use strom_keeper::client::KeeperClient;
use strom_keeper::CreateMode;
use tokio::sync::Mutex;

#[derive(Parser)]
#[command(name = "keeper-bench", about = "Load generator for a Strom keeper ensemble")]
struct Args {
    /// Connect string, e.g. 127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183
    #[arg(long, default_value = "127.0.0.1:2181")]
    connect: String,
    /// Requests kept in flight in total
    #[arg(long, default_value_t = 1000)]
    inflight: usize,
    /// Sessions the in-flight requests are spread over
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// Operations per phase (create, set, get, exists)
    #[arg(long, default_value_t = 50_000)]
    ops: usize,
    /// Synchronous creates for the single-request latency figure
    #[arg(long, default_value_t = 2_000)]
    sync_ops: usize,
    /// Payload size in bytes
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Prefix of the znode the run works under (a timestamp is appended)
    #[arg(long, default_value = "/keeper-bench")]
    root: String,
}

#[derive(Clone, Copy)]
enum Phase {
    Create,
    Set,
    Get,
    Exists,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn report(name: &str, n: usize, elapsed: Duration, mut lat: Vec<u64>) {
    lat.sort_unstable();
    println!(
        "{name:<8} {n:>8} ops  {:>10.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        n as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
}

async fn run_phase(clients: &[KeeperClient], args: &Args, phase: Phase) -> Result<(Duration, Vec<u64>)> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(args.ops)));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let data = Arc::new(vec![b'x'; args.size]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..args.inflight {
        let zk = clients[t % clients.len()].clone();
        let next = next.clone();
        let lat = lat.clone();
        let errors = errors.clone();
        let data = data.clone();
        let root = args.root.clone();
        let total = args.ops;
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let path = format!("{root}/n{i}");
                let t0 = Instant::now();
                let r = match phase {
                    Phase::Create => zk.create(&path, &data, CreateMode::Persistent).await.map(|_| ()),
                    Phase::Set => zk.set_data(&path, &data, None).await.map(|_| ()),
                    Phase::Get => zk.get_data(&path, false).await.map(|_| ()),
                    Phase::Exists => zk.exists(&path, false).await.map(|_| ()),
                };
                match r {
                    Ok(()) => mine.push(t0.elapsed().as_micros() as u64),
                    // A failed request is reported, not fatal: the run measures what succeeded.
                    Err(e) => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(path, error = %e, "request failed");
                    }
                }
            }
            lat.lock().await.extend(mine);
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await.context("bench task panicked")??;
    }
    let elapsed = start.elapsed();
    let lat = std::mem::take(&mut *lat.lock().await);
    let failed = errors.load(std::sync::atomic::Ordering::Relaxed);
    if failed > 0 {
        println!("  ({failed} requests failed)");
    }
    Ok((elapsed, lat))
}

fn main() -> Result<()> {
    let args = Args::parse();
    strom_cli::init_logging("warn");
    let rt = strom_cli::server_runtime()?;
    rt.block_on(async move {
        let mut clients = Vec::new();
        for _ in 0..args.sessions.max(1) {
            clients.push(KeeperClient::connect(&args.connect, Duration::from_secs(30)).await?);
        }
        let admin = &clients[0];
        // A fresh root per run: deleting 100k nodes one by one would dominate the run.
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let args = Args { root: format!("{}-{stamp}", args.root), ..args };
        admin.create(&args.root, b"", CreateMode::Persistent).await?;
        println!(
            "keeper-bench: {} ops per phase, {} in flight over {} sessions, {}-byte values, {}",
            args.ops, args.inflight, args.sessions, args.size, args.connect
        );
        for (name, phase) in
            [("create", Phase::Create), ("set", Phase::Set), ("get", Phase::Get), ("exists", Phase::Exists)]
        {
            let (elapsed, lat) = run_phase(&clients, &args, phase).await?;
            report(name, lat.len(), elapsed, lat);
        }
        let data = vec![b'x'; args.size];
        let mut lat = Vec::with_capacity(args.sync_ops);
        let start = Instant::now();
        for i in 0..args.sync_ops {
            let t0 = Instant::now();
            admin.create(&format!("{}/s{i}", args.root), &data, CreateMode::Persistent).await?;
            lat.push(t0.elapsed().as_micros() as u64);
        }
        report("sync-create", args.sync_ops, start.elapsed(), lat);
        for c in &clients {
            c.close().await;
        }
        Ok(())
    })
}
