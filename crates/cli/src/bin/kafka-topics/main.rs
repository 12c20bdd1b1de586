//! `kafka-topics`: create, list, describe, delete and alter topics, either through a broker
//! (`--bootstrap-server`, Kafka protocol via strom-client) or directly in the keeper
//! (`--zookeeper`, the znodes of docs/znode-layout.md). Output matches Apache Kafka's tool.
//!
//! Modules: `model` (what both back ends return, the printing), `bootstrap` (Admin API back
//! end), `zk` (keeper back end).

mod bootstrap;
mod model;
mod zk;

use std::collections::BTreeSet;
use std::process::ExitCode;

use clap::Parser;

use model::{DescribeFilter, TopicCommandError, TopicSpec};

#[derive(Parser, Debug)]
#[command(name = "kafka-topics", about = "Create, delete, describe, or change a topic.")]
struct Args {
    /// The Kafka server to connect to (host:port[,host:port]).
    #[arg(long = "bootstrap-server", value_name = "SERVER")]
    bootstrap_server: Option<String>,
    /// The keeper connect string host:port[,host:port][/chroot] (ZooKeeper-mode tooling).
    #[arg(long, value_name = "HOSTS")]
    zookeeper: Option<String>,
    /// Create a new topic.
    #[arg(long)]
    create: bool,
    /// List all available topics.
    #[arg(long)]
    list: bool,
    /// List details for the given topics.
    #[arg(long)]
    describe: bool,
    /// Delete a topic.
    #[arg(long)]
    delete: bool,
    /// Alter the number of partitions (and, with --zookeeper, the configs) of a topic.
    #[arg(long)]
    alter: bool,
    /// The topic to create, alter, describe or delete (a comma-separated list for describe/delete).
    #[arg(long)]
    topic: Option<String>,
    /// The number of partitions for the topic being created or altered.
    #[arg(long)]
    partitions: Option<i32>,
    /// The replication factor for each partition in the topic being created.
    #[arg(long = "replication-factor")]
    replication_factor: Option<i16>,
    /// A list of manual partition-to-broker assignments: "b0:b1,b1:b2" (partitions separated by ',').
    #[arg(long = "replica-assignment")]
    replica_assignment: Option<String>,
    /// A topic configuration override, name=value; repeatable.
    #[arg(long = "config", value_name = "NAME=VALUE")]
    config: Vec<String>,
    /// A topic configuration override to remove (with --alter --zookeeper); repeatable.
    #[arg(long = "delete-config", value_name = "NAME")]
    delete_config: Vec<String>,
    /// Only create the topic if it does not exist.
    #[arg(long = "if-not-exists")]
    if_not_exists: bool,
    /// Only alter, delete or describe the topic if it exists.
    #[arg(long = "if-exists")]
    if_exists: bool,
    /// With --describe: only partitions whose ISR is smaller than their replica set.
    #[arg(long = "under-replicated-partitions")]
    under_replicated_partitions: bool,
    /// With --describe: only partitions whose leader is not available (none, or not live).
    #[arg(long = "unavailable-partitions")]
    unavailable_partitions: bool,
    /// With --describe: only topics that have configuration overrides.
    #[arg(long = "topics-with-overrides")]
    topics_with_overrides: bool,
    /// Leave internal topics out of --list and --describe.
    #[arg(long = "exclude-internal")]
    exclude_internal: bool,
    /// Accepted for compatibility; client properties file (ignored).
    #[arg(long = "command-config")]
    command_config: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    strom_cli::init_logging("warn");
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error while executing topic command : {e}");
            ExitCode::FAILURE
        }
    }
}

enum Backend {
    Bootstrap(bootstrap::Backend),
    Zk(zk::Backend),
}

async fn run(args: Args) -> Result<(), TopicCommandError> {
    let actions = [args.create, args.list, args.describe, args.delete, args.alter];
    if actions.iter().filter(|a| **a).count() != 1 {
        return Err(TopicCommandError::Usage(
            "Command must include exactly one action: --list, --describe, --create, --alter or --delete".into(),
        ));
    }
    let backend = match (&args.bootstrap_server, &args.zookeeper) {
        (Some(b), None) => Backend::Bootstrap(bootstrap::Backend::connect(b).await?),
        (None, Some(z)) => Backend::Zk(zk::Backend::connect(z).await?),
        _ => {
            return Err(TopicCommandError::Usage(
                "Exactly one of --bootstrap-server or --zookeeper must be specified".into(),
            ))
        }
    };
    let configs = model::parse_configs(&args.config)?;
    let topics: Vec<String> = args
        .topic
        .as_deref()
        .map(|t| t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    let need_topic = |what: &str| -> Result<String, TopicCommandError> {
        topics
            .first()
            .cloned()
            .ok_or_else(|| TopicCommandError::Usage(format!("Missing required argument \"[topic]\" for {what}")))
    };

    if args.create {
        let name = need_topic("--create")?;
        model::validate_topic_name(&name)?;
        let assignment = args.replica_assignment.as_deref().map(model::parse_replica_assignment).transpose()?;
        if assignment.is_some() && (args.partitions.is_some() || args.replication_factor.is_some()) {
            return Err(TopicCommandError::Usage(
                "Option \"[replica-assignment]\" can't be used with option \"[partitions]\" or \"[replication-factor]\"".into(),
            ));
        }
        let spec = TopicSpec {
            name: name.clone(),
            partitions: args.partitions,
            replication_factor: args.replication_factor,
            assignment,
            configs,
        };
        if spec.partitions.is_some_and(|p| p < 1) {
            return Err(TopicCommandError::Message("The partitions must be greater than 0".into()));
        }
        if spec.replication_factor.is_some_and(|r| r < 1) {
            return Err(TopicCommandError::Message("The replication factor must be greater than 0".into()));
        }
        let created = match &backend {
            Backend::Bootstrap(b) => b.create(&spec, args.if_not_exists).await?,
            Backend::Zk(z) => z.create(&spec, args.if_not_exists).await?,
        };
        if created {
            if name.contains('.') || name.contains('_') {
                println!("WARNING: Due to limitations in metric names, topics with a period ('.') or underscore ('_') could collide. To avoid issues it is best to use either, but not both.");
            }
            println!("Created topic {name}.");
        }
    } else if args.list {
        let listed = match &backend {
            Backend::Bootstrap(b) => b.list(args.exclude_internal).await?,
            Backend::Zk(z) => z.list().await?,
        };
        for line in listed {
            println!("{line}");
        }
    } else if args.describe {
        let described = match &backend {
            Backend::Bootstrap(b) => b.describe(&topics, args.exclude_internal).await?,
            Backend::Zk(z) => z.describe(&topics).await?,
        };
        if !topics.is_empty() && described.is_empty() && !args.if_exists {
            return Err(model::missing_topic(&topics.join(",")));
        }
        if args.topics_with_overrides && (args.under_replicated_partitions || args.unavailable_partitions) {
            return Err(TopicCommandError::Usage(
                "Option \"[topics-with-overrides]\" can't be used with option \"[under-replicated-partitions]\" or \"[unavailable-partitions]\"".into(),
            ));
        }
        let filter = DescribeFilter {
            under_replicated: args.under_replicated_partitions,
            unavailable: args.unavailable_partitions,
            with_overrides: args.topics_with_overrides,
        };
        let live: BTreeSet<i32> = match &backend {
            Backend::Bootstrap(b) => b.live_brokers().await?,
            Backend::Zk(z) => z.live_brokers().await?,
        }
        .into_iter()
        .collect();
        for t in &described {
            print!("{}", t.render_filtered(filter, &live));
        }
    } else if args.delete {
        need_topic("--delete")?;
        for name in &topics {
            match &backend {
                Backend::Bootstrap(b) => b.delete(name, args.if_exists).await?,
                Backend::Zk(z) => z.delete(name, args.if_exists).await?,
            }
        }
    } else if args.alter {
        let name = need_topic("--alter")?;
        match &backend {
            Backend::Bootstrap(b) => {
                if !configs.is_empty() || !args.delete_config.is_empty() {
                    return Err(TopicCommandError::Usage(
                        "Option \"[config]\" can't be used with option \"[alter]\" and --bootstrap-server; use kafka-configs".into(),
                    ));
                }
                let partitions =
                    args.partitions.ok_or_else(|| TopicCommandError::Usage("--alter needs --partitions".into()))?;
                b.add_partitions(&name, partitions, args.if_exists).await?;
            }
            Backend::Zk(z) => {
                if args.partitions.is_none() && configs.is_empty() && args.delete_config.is_empty() {
                    return Err(TopicCommandError::Usage("--alter needs --partitions or --config".into()));
                }
                z.alter(&name, args.partitions, &configs, &args.delete_config, args.if_exists).await?;
            }
        }
    }
    if let Backend::Zk(z) = backend {
        z.close().await;
    }
    Ok(())
}
