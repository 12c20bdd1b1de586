//! `kafka-leader-election`: asks the cluster for preferred-replica or unclean leader elections
//! (the ElectLeaders API through strom-client's `Admin`). Options, checks and output follow
//! Apache Kafka's `LeaderElectionCommand`.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use kafka_protocol::error::ResponseError;
use serde_json::Value;
use strom_client::{Admin, Client, ClientConfig, ClientError, ElectionType};

/// Kafka's tool waits this long for the results (its `default.api.timeout.ms`).
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(
    name = "kafka-leader-election",
    about = "This tool attempts to elect a new leader for a set of topic partitions. The type of elections supported are preferred replicas and unclean replicas."
)]
struct Args {
    /// A hostname and port for the broker to connect to, in the form host:port. Multiple
    /// comma separated URLs can be given. REQUIRED.
    #[arg(long = "bootstrap-server", value_name = "host:port")]
    bootstrap_server: Option<String>,
    /// Type of election to attempt: "preferred" or "unclean". REQUIRED.
    #[arg(long = "election-type", value_name = "election type")]
    election_type: Option<String>,
    /// Name of topic for which to perform an election. Not allowed if --path-to-json-file or
    /// --all-topic-partitions is specified.
    #[arg(long, value_name = "topic name")]
    topic: Option<String>,
    /// Partition id for which to perform an election. REQUIRED if --topic is specified.
    #[arg(long, value_name = "partition id")]
    partition: Option<i32>,
    /// Perform election on all of the eligible topic partitions based on the type of election.
    #[arg(long = "all-topic-partitions")]
    all_topic_partitions: bool,
    /// The JSON file with the list of partitions for which leader elections should be
    /// performed: {"partitions": [{"topic": "foo", "partition": 1}, ...]}.
    #[arg(long = "path-to-json-file", value_name = "Path to JSON file")]
    path_to_json_file: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    strom_cli::init_logging("warn");
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return strom_cli::exit_code(Err(anyhow!(e).context("starting the runtime"))),
    };
    strom_cli::exit_code(runtime.block_on(run(args)))
}

/// The checks of Kafka's `LeaderElectionCommandOptions.validate`, with its messages.
fn validate(args: &Args) -> anyhow::Result<(String, ElectionType)> {
    let mut missing = Vec::new();
    if args.bootstrap_server.is_none() {
        missing.push("bootstrap-server");
    }
    if args.election_type.is_none() {
        missing.push("election-type");
    }
    if !missing.is_empty() {
        bail!("Missing required option(s): {}", missing.join(", "));
    }
    let chosen = [args.topic.is_some(), args.all_topic_partitions, args.path_to_json_file.is_some()];
    if chosen.iter().filter(|c| **c).count() != 1 {
        bail!("One and only one of the following options is required: topic, all-topic-partitions, path-to-json-file");
    }
    if args.topic.is_some() && args.partition.is_none() {
        bail!("Missing required option(s): partition");
    }
    if args.topic.is_none() && args.partition.is_some() {
        bail!("Option partition is only allowed if topic is used");
    }
    let kind = parse_election_type(args.election_type.as_deref().unwrap_or_default())?;
    Ok((args.bootstrap_server.clone().unwrap_or_default(), kind))
}

fn parse_election_type(raw: &str) -> anyhow::Result<ElectionType> {
    match raw.to_ascii_lowercase().as_str() {
        "preferred" => Ok(ElectionType::Preferred),
        "unclean" => Ok(ElectionType::Unclean),
        _ => bail!("Cannot parse argument '{raw}' of option election-type: expected one of PREFERRED, UNCLEAN"),
    }
}

/// Kafka's replica-election JSON: `{"partitions": [{"topic": "t", "partition": 0}, ...]}`.
fn parse_election_file(text: &str) -> anyhow::Result<Vec<(String, i32)>> {
    let v: Value = serde_json::from_str(text).context("Replica election data is not valid JSON")?;
    let list = v
        .get("partitions")
        .ok_or_else(|| anyhow!("Replica election data is missing \"partitions\" field"))?
        .as_array()
        .ok_or_else(|| anyhow!("Replica election data: \"partitions\" must be an array"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let topic = entry
            .get("topic")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("Replica election data: entry {i} has no string \"topic\""))?;
        let partition = entry
            .get("partition")
            .and_then(Value::as_i64)
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| anyhow!("Replica election data: entry {i} has no integer \"partition\""))?;
        out.push((topic.to_owned(), partition));
    }
    let mut seen = BTreeSet::new();
    let dups: BTreeSet<String> =
        out.iter().filter(|tp| !seen.insert((*tp).clone())).map(|(t, p)| format!("{t}-{p}")).collect();
    if !dups.is_empty() {
        bail!(
            "Replica election data contains duplicate partitions: {}",
            dups.into_iter().collect::<Vec<_>>().join(",")
        );
    }
    Ok(out)
}

/// The Java exception Kafka's tool names for an error code.
fn java_exception(err: &ClientError) -> String {
    let ClientError::Kafka { error, message, .. } = err else {
        return err.to_string();
    };
    let class = match error {
        ResponseError::PreferredLeaderNotAvailable => "PreferredLeaderNotAvailableException",
        ResponseError::EligibleLeadersNotAvailable => "EligibleLeadersNotAvailableException",
        ResponseError::UnknownTopicOrPartition => "UnknownTopicOrPartitionException",
        ResponseError::RequestTimedOut => "TimeoutException",
        ResponseError::InvalidRequest => "InvalidRequestException",
        ResponseError::NotController => "NotControllerException",
        _ => "ApiException",
    };
    let text = message.clone().unwrap_or_else(|| error.to_string());
    format!("org.apache.kafka.common.errors.{class}: {text}")
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (bootstrap, kind) = validate(&args)?;
    let partitions: Option<Vec<(String, i32)>> = if let Some(path) = &args.path_to_json_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Some(parse_election_file(&text)?)
    } else {
        args.topic.clone().zip(args.partition).map(|tp| vec![tp])
    };
    let mut cfg = ClientConfig::new(&bootstrap);
    cfg.client_id = "kafka-leader-election".into();
    // The socket wait outlasts the broker-side wait, so a late answer still arrives.
    cfg.request_timeout = TIMEOUT + Duration::from_secs(5);
    let admin = Admin::new(Client::connect(cfg).await?).with_timeout(TIMEOUT);
    let results = match admin.elect_leaders(kind, partitions.as_deref()).await {
        Ok(r) => r,
        Err(ClientError::Timeout { .. }) => {
            println!("Timeout waiting for election results");
            bail!("Timeout waiting for election results");
        }
        Err(e) => return Err(e.into()),
    };
    let mut succeeded = Vec::new();
    let mut noop = Vec::new();
    let mut failed = Vec::new();
    for ((topic, partition), result) in results {
        let name = format!("{topic}-{partition}");
        match result {
            Ok(()) => succeeded.push(name),
            Err(e) if e.kafka_error() == Some(ResponseError::ElectionNotNeeded) => noop.push(name),
            Err(e) => failed.push((name, e)),
        }
    }
    if !succeeded.is_empty() {
        println!("Successfully completed leader election ({kind}) for partitions {}", succeeded.join(", "));
    }
    if !noop.is_empty() {
        println!("Valid replica already elected for partitions {}", noop.join(", "));
    }
    if !failed.is_empty() {
        for (name, e) in &failed {
            println!("Error completing leader election ({kind}) for partition: {name}: {}", java_exception(e));
        }
        bail!("{} replica(s) could not be elected", failed.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::parse_from(std::iter::once("kafka-leader-election").chain(list.iter().copied()))
    }

    #[test]
    fn validation_follows_kafka() {
        let err = |a: &[&str]| validate(&args(a)).unwrap_err().to_string();
        assert_eq!(err(&[]), "Missing required option(s): bootstrap-server, election-type");
        assert_eq!(
            err(&["--bootstrap-server", "b:9092", "--election-type", "preferred"]),
            "One and only one of the following options is required: topic, all-topic-partitions, path-to-json-file"
        );
        assert_eq!(
            err(&["--bootstrap-server", "b:9092", "--election-type", "preferred", "--topic", "t"]),
            "Missing required option(s): partition"
        );
        assert_eq!(
            err(&[
                "--bootstrap-server",
                "b:9092",
                "--election-type",
                "preferred",
                "--all-topic-partitions",
                "--partition",
                "1"
            ]),
            "Option partition is only allowed if topic is used"
        );
        assert!(
            err(&["--bootstrap-server", "b", "--election-type", "dirty", "--all-topic-partitions"]).contains("dirty")
        );
        let ok =
            validate(&args(&["--bootstrap-server", "b:1", "--election-type", "UNCLEAN", "--all-topic-partitions"]));
        assert_eq!(ok.unwrap().1, ElectionType::Unclean);
    }

    #[test]
    fn parses_kafkas_json_file() {
        let parts =
            parse_election_file(r#"{"partitions":[{"topic":"foo","partition":1},{"topic":"bar","partition":2}]}"#);
        assert_eq!(parts.unwrap(), vec![("foo".to_string(), 1), ("bar".to_string(), 2)]);
        let dup =
            parse_election_file(r#"{"partitions":[{"topic":"foo","partition":1},{"topic":"foo","partition":1}]}"#);
        assert_eq!(dup.unwrap_err().to_string(), "Replica election data contains duplicate partitions: foo-1");
        let missing = parse_election_file(r#"{"version":1}"#).unwrap_err().to_string();
        assert_eq!(missing, "Replica election data is missing \"partitions\" field");
        assert!(parse_election_file(r#"{"partitions":[{"topic":"foo"}]}"#).is_err());
        assert!(parse_election_file("not json").is_err());
    }
}
