//! `kafka-console-producer`: one record per stdin line, like Apache Kafka's tool.
//!
//! Modules: `reader` (turning a line into key/value/headers per the `--property` settings).

mod reader;

use std::collections::HashMap;
use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use strom_client::producer::parse_compression;
use strom_client::{Client, ClientConfig, Producer, ProducerConfig};
use tokio::sync::mpsc;

use reader::LineReader;

#[derive(Parser, Debug)]
#[command(name = "kafka-console-producer", about = "Read data from standard input and publish it to Kafka.")]
struct Args {
    /// The server(s) to connect to, host:port[,host:port].
    #[arg(long = "bootstrap-server", value_name = "SERVER")]
    bootstrap_server: Option<String>,
    /// Deprecated alias of --bootstrap-server.
    #[arg(long = "broker-list", value_name = "SERVER")]
    broker_list: Option<String>,
    /// The topic to produce messages to.
    #[arg(long)]
    topic: String,
    /// Message reader properties: parse.key, key.separator, parse.headers, headers.delimiter,
    /// headers.separator, headers.key.separator, null.marker, ignore.error.
    #[arg(long = "property", value_name = "PROP=VALUE")]
    property: Vec<String>,
    /// Producer properties (acks, linger.ms, batch.size, compression.type, ...).
    #[arg(long = "producer-property", value_name = "PROP=VALUE")]
    producer_property: Vec<String>,
    /// A file of producer properties.
    #[arg(long = "producer.config", value_name = "FILE")]
    producer_config: Option<std::path::PathBuf>,
    /// acks: 0, 1, -1 or all.
    #[arg(long = "request-required-acks", default_value = "-1", allow_hyphen_values = true)]
    request_required_acks: String,
    /// none, gzip, snappy, lz4 or zstd; without a value, gzip.
    #[arg(long = "compression-codec", num_args = 0..=1, default_missing_value = "gzip")]
    compression_codec: Option<String>,
    /// Wait for each message to be acknowledged before reading the next line.
    #[arg(long)]
    sync: bool,
    /// linger.ms when not synchronous.
    #[arg(long, default_value_t = 1000)]
    timeout: u64,
    /// batch.size.
    #[arg(long = "batch-size")]
    batch_size: Option<u64>,
    /// retries.
    #[arg(long = "message-send-max-retries")]
    message_send_max_retries: Option<u32>,
    /// request.timeout.ms.
    #[arg(long = "request-timeout-ms")]
    request_timeout_ms: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    strom_cli::init_logging("warn");
    strom_cli::exit_code(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bootstrap = args
        .bootstrap_server
        .clone()
        .or(args.broker_list.clone())
        .context("Missing required option(s) [bootstrap-server]")?;
    let mut client_cfg = ClientConfig::new(&bootstrap);
    client_cfg.client_id = "console-producer".into();
    let mut cfg = ProducerConfig { linger: Duration::from_millis(args.timeout), ..Default::default() };
    cfg.set("acks", &args.request_required_acks).map_err(anyhow::Error::from)?;
    if let Some(codec) = &args.compression_codec {
        cfg.compression = parse_compression(codec)?;
    }
    if let Some(b) = args.batch_size {
        cfg.batch_size = b.max(1) as usize;
    }
    if let Some(r) = args.message_send_max_retries {
        client_cfg.retries = r;
    }
    if let Some(ms) = args.request_timeout_ms {
        client_cfg.request_timeout = Duration::from_millis(ms);
    }
    let mut props = Vec::new();
    if let Some(path) = &args.producer_config {
        props.extend(strom_cli::read_properties_file(path)?);
    }
    for raw in &args.producer_property {
        props.push(strom_cli::split_kv(raw, "--producer-property")?);
    }
    for (k, v) in &props {
        match k.as_str() {
            "client.id" => client_cfg.client_id = v.clone(),
            "retries" => client_cfg.retries = v.trim().parse().with_context(|| format!("retries: bad value '{v}'"))?,
            "request.timeout.ms" => {
                client_cfg.request_timeout = Duration::from_millis(
                    v.trim().parse().with_context(|| format!("request.timeout.ms: bad value '{v}'"))?,
                )
            }
            _ => cfg.set(k, v)?,
        }
    }
    let reader_props: HashMap<String, String> =
        args.property.iter().map(|p| strom_cli::split_kv(p, "--property")).collect::<Result<_, _>>()?;
    let reader = LineReader::from_properties(&reader_props).map_err(anyhow::Error::msg)?;

    let client = Client::connect(client_cfg).await?;
    let producer = Producer::new(client, cfg);

    // stdin is read on a blocking thread; lines arrive over a bounded channel.
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(1024);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        loop {
            let mut line = Vec::new();
            match lock.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if tx.blocking_send(Ok(line)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });

    let mut pending = Vec::new();
    let mut failures = 0usize;
    let mut line_number = 0usize;
    while let Some(line) = rx.recv().await {
        let line = line.context("reading standard input")?;
        line_number += 1;
        let record = match reader.parse(&line, line_number) {
            Ok(r) => r,
            Err(e) if reader.ignore_error => {
                eprintln!("ERROR {e}");
                continue;
            }
            Err(e) => {
                // Lines read so far are still delivered, as Kafka's producer does on close.
                producer.flush().await?;
                bail!(e);
            }
        };
        let delivery = producer.send(&args.topic, record).await?;
        if args.sync {
            if let Err(e) = delivery.wait().await {
                failures += 1;
                eprintln!("ERROR Error when sending message to topic {}: {e}", args.topic);
            }
        } else {
            pending.push((line_number, delivery));
            if pending.len() >= 4096 {
                failures += settle(&args.topic, std::mem::take(&mut pending)).await;
            }
        }
    }
    producer.flush().await?;
    failures += settle(&args.topic, pending).await;
    if failures > 0 {
        bail!("{failures} message(s) could not be delivered to topic {}", args.topic);
    }
    Ok(())
}

async fn settle(topic: &str, pending: Vec<(usize, strom_client::DeliveryFuture)>) -> usize {
    let mut failures = 0;
    for (line, d) in pending {
        if let Err(e) = d.wait().await {
            failures += 1;
            eprintln!("ERROR Error when sending message from line {line} to topic {topic}: {e}");
        }
    }
    failures
}
