//! `kafka-consumer-perf-test`: Apache Kafka's `ConsumerPerformance` — read N messages from a
//! topic's partitions and print Kafka's CSV header and summary line.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use strom_client::{Client, ClientConfig, Consumer, ConsumerConfig, StartOffset};

#[derive(Parser, Debug)]
#[command(name = "kafka-consumer-perf-test", about = "A tool to test consumer performance.")]
struct Args {
    /// The server(s) to connect to.
    #[arg(long = "bootstrap-server", value_name = "SERVER")]
    bootstrap_server: Option<String>,
    /// Deprecated alias of --bootstrap-server.
    #[arg(long = "broker-list", value_name = "SERVER")]
    broker_list: Option<String>,
    /// Topic to consume from.
    #[arg(long)]
    topic: String,
    /// Number of messages to consume.
    #[arg(long)]
    messages: u64,
    /// Exit if no message arrives for this many ms.
    #[arg(long, default_value_t = 10_000)]
    timeout: u64,
    /// max.partition.fetch.bytes.
    #[arg(long = "fetch-size", default_value_t = 1024 * 1024)]
    fetch_size: i32,
    /// Start from the end of the log instead of the beginning.
    #[arg(long = "from-latest")]
    from_latest: bool,
    /// Do not print the CSV header.
    #[arg(long = "hide-header")]
    hide_header: bool,
    /// Print a line every --reporting-interval ms.
    #[arg(long = "show-detailed-stats")]
    show_detailed_stats: bool,
    #[arg(long = "reporting-interval", default_value_t = 5000)]
    reporting_interval: u64,
    /// Consumer properties file.
    #[arg(long = "consumer.config", value_name = "FILE")]
    consumer_config: Option<std::path::PathBuf>,
    /// Accepted for compatibility; the test reads all partitions without a consumer group.
    #[arg(long)]
    group: Option<String>,
    /// Accepted for compatibility.
    #[arg(long = "print-metrics")]
    print_metrics: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    strom_cli::init_logging("warn");
    strom_cli::exit_code(run(Args::parse()).await)
}

/// `yyyy-MM-dd HH:mm:ss:SSS` in UTC (Kafka's default date format).
fn format_time(t: SystemTime) -> String {
    let ms = t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}:{:03}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

const MB: f64 = 1024.0 * 1024.0;

async fn run(args: Args) -> anyhow::Result<()> {
    let bootstrap = args
        .bootstrap_server
        .clone()
        .or(args.broker_list.clone())
        .context("Missing required option(s) [bootstrap-server]")?;
    let mut client_cfg = ClientConfig::new(&bootstrap);
    client_cfg.client_id = "perf-consumer-client".into();
    let mut cfg = ConsumerConfig { max_partition_fetch_bytes: args.fetch_size, ..Default::default() };
    if let Some(path) = &args.consumer_config {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            if let Some((k, v)) = line.split_once(['=', ':']) {
                cfg.set(k.trim(), v.trim())?;
            }
        }
    }
    if args.group.is_some() {
        tracing::info!("--group is accepted but the perf test reads partitions directly");
    }
    let client = Client::connect(client_cfg).await?;
    let mut consumer = Consumer::new(client, cfg);
    consumer.assign_topic(&args.topic).await?;
    consumer.seek_all(if args.from_latest { StartOffset::Latest } else { StartOffset::Earliest });

    if !args.hide_header {
        if args.show_detailed_stats {
            println!("time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec");
        } else {
            println!("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec");
        }
    }
    let start_wall = SystemTime::now();
    let start = Instant::now();
    let timeout = Duration::from_millis(args.timeout);
    let interval = Duration::from_millis(args.reporting_interval.max(1));
    let (mut messages, mut bytes) = (0u64, 0u64);
    let (mut last_report, mut last_messages, mut last_bytes) = (Instant::now(), 0u64, 0u64);
    let mut last_progress = Instant::now();
    let mut records = Vec::new();
    while messages < args.messages {
        if last_progress.elapsed() >= timeout {
            eprintln!(
                "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. You can use the --timeout option to increase the timeout.",
                args.timeout
            );
            break;
        }
        records.clear();
        consumer.poll_into(Duration::from_millis(100), &mut records).await?;
        if records.is_empty() {
            continue;
        }
        last_progress = Instant::now();
        for r in &records {
            if messages >= args.messages {
                break;
            }
            messages += 1;
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64) + r.key.as_ref().map_or(0, |k| k.len() as u64);
        }
        if args.show_detailed_stats && last_report.elapsed() >= interval {
            let secs = last_report.elapsed().as_secs_f64();
            let mb = bytes as f64 / MB;
            let window_mb = (bytes - last_bytes) as f64 / MB;
            println!(
                "{}, 0, {:.4}, {:.4}, {}, {:.4}, 0, {}, {:.4}, {:.4}",
                format_time(SystemTime::now()),
                mb,
                window_mb / secs,
                messages,
                (messages - last_messages) as f64 / secs,
                (secs * 1000.0) as u64,
                window_mb / secs,
                (messages - last_messages) as f64 / secs
            );
            (last_report, last_messages, last_bytes) = (Instant::now(), messages, bytes);
        }
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let mb = bytes as f64 / MB;
    if !args.show_detailed_stats {
        println!(
            "{}, {}, {:.4}, {:.4}, {}, {:.4}, 0, {}, {:.4}, {:.4}",
            format_time(start_wall),
            format_time(SystemTime::now()),
            mb,
            mb / elapsed,
            messages,
            messages as f64 / elapsed,
            (elapsed * 1000.0) as u64,
            mb / elapsed,
            messages as f64 / elapsed
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates_like_kafka() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(format_time(t), "2023-11-14 22:13:20:123");
        assert_eq!(format_time(UNIX_EPOCH), "1970-01-01 00:00:00:000");
    }
}
