//! `kafka-producer-perf-test`: Apache Kafka's `ProducerPerformance` — send N records of S bytes
//! as fast as allowed (or at `--throughput`), printing Kafka's progress and summary lines.
//!
//! Modules: `stats` (latency windows and percentiles, Kafka's output format).

mod stats;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use strom_client::{Client, ClientConfig, DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::mpsc;

use stats::Stats;

#[derive(Parser, Debug)]
#[command(name = "kafka-producer-perf-test", about = "A tool to test producer performance.")]
struct Args {
    /// Topic to produce to.
    #[arg(long)]
    topic: String,
    /// Number of records to produce.
    #[arg(long = "num-records")]
    num_records: u64,
    /// Record size in bytes.
    #[arg(long = "record-size")]
    record_size: Option<usize>,
    /// A file of payloads, one per line (instead of --record-size).
    #[arg(long = "payload-file")]
    payload_file: Option<std::path::PathBuf>,
    /// Delimiter of --payload-file entries.
    #[arg(long = "payload-delimiter", default_value = "\n")]
    payload_delimiter: String,
    /// Maximum records/sec; -1 for no limit.
    #[arg(long, allow_negative_numbers = true)]
    throughput: f64,
    /// Producer properties, e.g. bootstrap.servers=host:9092 acks=1 linger.ms=5.
    #[arg(long = "producer-props", num_args = 1.., value_name = "PROP=VALUE")]
    producer_props: Vec<String>,
    /// A file of producer properties.
    #[arg(long = "producer.config", value_name = "FILE")]
    producer_config: Option<std::path::PathBuf>,
    /// Accepted for compatibility (no metrics registry here).
    #[arg(long = "print-metrics")]
    print_metrics: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    strom_cli::init_logging("warn");
    strom_cli::exit_code(run(Args::parse()).await)
}

fn properties(args: &Args) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if let Some(path) = &args.producer_config {
        out.extend(strom_cli::read_properties_file(path)?);
    }
    for raw in &args.producer_props {
        match raw.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.trim().to_owned(), v.trim().to_owned())),
            _ => bail!("Invalid property: {raw} (expected key=value)"),
        }
    }
    Ok(out)
}

fn payloads(args: &Args) -> anyhow::Result<Vec<Bytes>> {
    match (&args.payload_file, args.record_size) {
        (Some(_), Some(_)) | (None, None) => bail!("Exactly one of --record-size or --payload-file must be given"),
        (None, Some(size)) => {
            // Kafka fills the payload with random uppercase letters once and reuses it.
            let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ size as u64;
            let payload: Vec<u8> = (0..size)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    b'A' + (seed % 26) as u8
                })
                .collect();
            Ok(vec![Bytes::from(payload)])
        }
        (Some(path), None) => {
            let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let delim = args.payload_delimiter.as_bytes();
            let list: Vec<Bytes> =
                split_bytes(&text, delim).filter(|p| !p.is_empty()).map(Bytes::copy_from_slice).collect();
            if list.is_empty() {
                bail!("File {} contains no payloads", path.display());
            }
            println!("Reading payloads from: {}", path.display());
            println!("Number of messages read: {}", list.len());
            Ok(list)
        }
    }
}

fn split_bytes<'a>(data: &'a [u8], delim: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        if delim.is_empty() {
            rest = None;
            return Some(r);
        }
        match r.windows(delim.len()).position(|w| w == delim) {
            Some(i) => {
                rest = Some(&r[i + delim.len()..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let props = properties(&args)?;
    let bootstrap = props
        .iter()
        .find(|(k, _)| k == "bootstrap.servers")
        .map(|(_, v)| v.clone())
        .context("Missing required property bootstrap.servers (--producer-props bootstrap.servers=host:port)")?;
    let mut client_cfg = ClientConfig::new(&bootstrap);
    client_cfg.client_id = "perf-producer-client".into();
    let mut cfg = ProducerConfig::default();
    for (k, v) in &props {
        match k.as_str() {
            "client.id" => client_cfg.client_id = v.clone(),
            "retries" => client_cfg.retries = v.parse().with_context(|| format!("retries: bad value '{v}'"))?,
            "request.timeout.ms" => {
                client_cfg.request_timeout =
                    Duration::from_millis(v.parse().with_context(|| format!("request.timeout.ms: bad value '{v}'"))?)
            }
            _ => cfg.set(k, v)?,
        }
    }
    let payloads = payloads(&args)?;
    let client = Client::connect(client_cfg).await?;
    let producer = Producer::new(client, cfg);

    let num = args.num_records;
    let (tx, mut rx) = mpsc::channel::<(Instant, usize, DeliveryFuture)>(64 * 1024);
    let collector = tokio::spawn(async move {
        let mut stats = Stats::new(num, Duration::from_secs(5));
        let mut errors = 0u64;
        while let Some((sent, bytes, delivery)) = rx.recv().await {
            match delivery.wait().await {
                Ok(_) => stats.record(sent.elapsed(), bytes),
                Err(e) => {
                    errors += 1;
                    if errors <= 10 {
                        eprintln!("ERROR delivery failed: {e}");
                    }
                }
            }
        }
        (stats, errors)
    });

    let start = Instant::now();
    let throttle = (args.throughput > 0.0).then_some(args.throughput);
    for i in 0..num {
        if let Some(rate) = throttle {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
        let value = payloads[(i as usize) % payloads.len()].clone();
        let bytes = value.len();
        let sent = Instant::now();
        let delivery = producer.send(&args.topic, ProducerRecord::new(value)).await?;
        if tx.send((sent, bytes, delivery)).await.is_err() {
            bail!("latency collector stopped");
        }
    }
    drop(tx);
    producer.flush().await?;
    let (stats, errors) = collector.await.context("latency collector panicked")?;
    stats.print_total();
    if errors > 0 {
        bail!("{errors} of {num} records failed");
    }
    Ok(())
}
