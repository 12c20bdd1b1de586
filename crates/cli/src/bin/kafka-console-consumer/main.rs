//! `kafka-console-consumer`: print a topic's records to stdout, like Apache Kafka's tool.
//!
//! Modules: `formatter` (Kafka's `DefaultMessageFormatter` and its `--property` settings),
//! `group` (`--group`: consuming as a consumer-group member).

mod formatter;
mod group;

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use strom_client::{Client, ClientConfig, Consumer, ConsumerConfig, OffsetReset, StartOffset};

use formatter::Formatter;

#[derive(Parser, Debug)]
#[command(name = "kafka-console-consumer", about = "Consume messages from a topic and print them.")]
struct Args {
    /// The server(s) to connect to, host:port[,host:port].
    #[arg(long = "bootstrap-server", value_name = "SERVER")]
    bootstrap_server: String,
    /// The topic to consume.
    #[arg(long)]
    topic: String,
    /// Start from the earliest message instead of the latest.
    #[arg(long = "from-beginning")]
    from_beginning: bool,
    /// Consume only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// earliest, latest, or an offset (needs --partition).
    #[arg(long)]
    offset: Option<String>,
    /// Exit after this many messages.
    #[arg(long = "max-messages")]
    max_messages: Option<u64>,
    /// Exit if no message arrives for this long.
    #[arg(long = "timeout-ms")]
    timeout_ms: Option<u64>,
    /// Formatter properties: print.key, print.value, print.timestamp, print.partition,
    /// print.offset, print.headers, key.separator, line.separator, headers.separator,
    /// headers.key.separator, null.literal.
    #[arg(long = "property", value_name = "PROP=VALUE")]
    property: Vec<String>,
    /// Consumer properties (fetch.max.wait.ms, max.partition.fetch.bytes, ...).
    #[arg(long = "consumer-property", value_name = "PROP=VALUE")]
    consumer_property: Vec<String>,
    /// A file of consumer properties.
    #[arg(long = "consumer.config", value_name = "FILE")]
    consumer_config: Option<std::path::PathBuf>,
    /// read_committed or read_uncommitted.
    #[arg(long = "isolation-level", default_value = "read_uncommitted")]
    isolation_level: String,
    /// Consume as a member of this consumer group, committing what was printed.
    #[arg(long)]
    group: Option<String>,
    /// Skip records that fail to decode instead of stopping.
    #[arg(long = "skip-message-on-error")]
    skip_message_on_error: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    strom_cli::init_logging("warn");
    let mut processed = 0u64;
    let result = tokio::select! {
        r = run(Args::parse(), &mut processed) => r,
        // Ctrl-C or SIGTERM: like Kafka's shutdown hook, stop and report what was processed.
        _ = strom_cli::wait_for_signal() => Ok(()),
    };
    match result {
        Ok(()) => {
            eprintln!("Processed a total of {processed} messages");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR Error processing message, terminating consumer process: {e:#}");
            eprintln!("Processed a total of {processed} messages");
            ExitCode::FAILURE
        }
    }
}

fn start_offset(args: &Args) -> anyhow::Result<StartOffset> {
    match (&args.offset, args.partition) {
        (Some(_), None) => bail!("The partition is required when offset is specified."),
        (Some(_), Some(_)) if args.from_beginning => {
            bail!("Options from-beginning and offset cannot be specified together.")
        }
        (Some(o), Some(_)) => Ok(match o.trim() {
            "earliest" => StartOffset::Earliest,
            "latest" => StartOffset::Latest,
            n => match n.parse::<i64>() {
                Ok(v) if v >= 0 => StartOffset::Offset(v),
                // Kafka's tool: a negative number counts back from the end; unsupported here.
                _ => bail!("The provided offset value '{n}' is incorrect. Valid values are 'earliest', 'latest', or a non-negative long."),
            },
        }),
        (None, _) if args.from_beginning => Ok(StartOffset::Earliest),
        (None, _) => Ok(StartOffset::Latest),
    }
}

async fn run(args: Args, processed: &mut u64) -> anyhow::Result<()> {
    let start = start_offset(&args)?;
    let props: HashMap<String, String> =
        args.property.iter().map(|p| strom_cli::split_kv(p, "--property")).collect::<Result<_, _>>()?;
    let formatter = Formatter::from_properties(&props).map_err(anyhow::Error::msg)?;

    let mut client_cfg = ClientConfig::new(&args.bootstrap_server);
    client_cfg.client_id = "console-consumer".into();
    let mut cfg = ConsumerConfig { auto_offset_reset: OffsetReset::Latest, ..Default::default() };
    cfg.set("isolation.level", &args.isolation_level)?;
    let mut consumer_props = Vec::new();
    if let Some(path) = &args.consumer_config {
        consumer_props.extend(strom_cli::read_properties_file(path)?);
    }
    for raw in &args.consumer_property {
        consumer_props.push(strom_cli::split_kv(raw, "--consumer-property")?);
    }
    for (k, v) in &consumer_props {
        match k.as_str() {
            "client.id" => client_cfg.client_id = v.clone(),
            _ => cfg.set(k, v)?,
        }
    }
    let client = Client::connect(client_cfg).await?;
    let deadline = args.timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    wait_for_topic(&client, &args.topic, deadline).await?;
    let mut consumer = Consumer::new(client, cfg);
    if let Some(group) = &args.group {
        return group::consume(&args, group, consumer, &formatter, processed).await;
    }
    match args.partition {
        Some(p) => consumer.assign(&[(args.topic.as_str(), p)]),
        None => {
            consumer.assign_topic(&args.topic).await?;
        }
    }
    consumer.seek_all(start);

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let idle = args.timeout_ms.map(Duration::from_millis);
    let mut last_message = Instant::now();
    let mut records = Vec::new();
    loop {
        if args.max_messages.is_some_and(|max| *processed >= max) {
            break;
        }
        let wait = match idle {
            Some(idle) => {
                let left = idle.saturating_sub(last_message.elapsed());
                if left.is_zero() {
                    break;
                }
                left.min(Duration::from_secs(1))
            }
            None => Duration::from_secs(1),
        };
        records.clear();
        consumer.poll_into(wait, &mut records).await?;
        if !records.is_empty() {
            last_message = Instant::now();
        }
        for r in &records {
            if args.max_messages.is_some_and(|max| *processed >= max) {
                break;
            }
            formatter.write(&mut out, r).context("writing to stdout")?;
            *processed += 1;
        }
        out.flush().context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")?;
    Ok(())
}

/// Waits (until the idle deadline, or ~10 s) for the topic's metadata, letting the broker
/// auto-create it as the Java consumer's `allow.auto.create.topics` does.
async fn wait_for_topic(client: &Client, topic: &str, deadline: Option<Instant>) -> anyhow::Result<()> {
    let deadline = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(10));
    loop {
        let resp = client.fetch_metadata(Some(&[topic]), true).await?;
        let code = resp.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic)).map_or(3, |t| {
            if t.error_code == 0 && t.partitions.is_empty() {
                5
            } else {
                t.error_code
            }
        });
        if code == 0 {
            return Ok(());
        }
        let err = strom_client::ClientError::kafka(code, format!("topic '{topic}'"), None);
        if !err.is_retriable() || Instant::now() >= deadline {
            return Err(err.into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
