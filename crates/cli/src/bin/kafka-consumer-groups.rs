//! `kafka-consumer-groups`: list, describe, delete consumer groups and reset their committed
//! offsets, over the Kafka protocol (strom-client's `GroupAdmin`). Output follows Apache
//! Kafka's tool: the same columns, `-` for unknown values, errors on stderr.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use kafka_protocol::error::ResponseError;
use strom_client::group::{GroupAdmin, GroupDescription};
use strom_client::{Client, ClientConfig, ClientError, OffsetSpec};

#[derive(Parser, Debug)]
#[command(name = "kafka-consumer-groups", about = "List, describe, delete consumer groups and reset their offsets.")]
struct Args {
    /// The server(s) to connect to (host:port[,host:port]).
    #[arg(long = "bootstrap-server", value_name = "SERVER")]
    bootstrap_server: String,
    /// List all consumer groups.
    #[arg(long)]
    list: bool,
    /// Describe the group: committed offsets, lag and owners (or members with --members).
    #[arg(long)]
    describe: bool,
    /// Delete the group(s) and their committed offsets; groups must have no members.
    #[arg(long)]
    delete: bool,
    /// Reset the group's committed offsets (the group must have no active members).
    #[arg(long = "reset-offsets")]
    reset_offsets: bool,
    /// The consumer group (repeatable with --delete).
    #[arg(long, value_name = "GROUP")]
    group: Vec<String>,
    /// With --describe: list the members instead of the offsets.
    #[arg(long)]
    members: bool,
    /// With --describe: the default view, committed offsets and lag per partition.
    #[arg(long)]
    offsets: bool,
    /// With --describe: the group's coordinator, assignment strategy, state and size.
    #[arg(long)]
    state: bool,
    /// With --reset-offsets: `topic` or `topic:p0,p1,...` (repeatable).
    #[arg(long, value_name = "TOPIC")]
    topic: Vec<String>,
    /// With --reset-offsets: every topic the group has committed offsets for.
    #[arg(long = "all-topics")]
    all_topics: bool,
    /// Reset to the earliest offset.
    #[arg(long = "to-earliest")]
    to_earliest: bool,
    /// Reset to the latest offset.
    #[arg(long = "to-latest")]
    to_latest: bool,
    /// Reset to this offset (clamped to the partition's range).
    #[arg(long = "to-offset", value_name = "OFFSET", allow_hyphen_values = true)]
    to_offset: Option<i64>,
    /// Move the committed offset by this many (negative moves back; clamped).
    #[arg(long = "shift-by", value_name = "N", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// Carry out the reset.
    #[arg(long)]
    execute: bool,
    /// Only show the plan (the default).
    #[arg(long = "dry-run")]
    dry_run: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    strom_cli::init_logging("warn");
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("\nError: Executing consumer group command failed due to {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen action; `Ok(false)` when it failed after printing its own error.
async fn run(args: Args) -> anyhow::Result<bool> {
    let actions = [args.list, args.describe, args.delete, args.reset_offsets].iter().filter(|a| **a).count();
    if actions != 1 {
        bail!("Command must include exactly one action: --list, --describe, --delete, --reset-offsets");
    }
    let client = Client::connect(ClientConfig::new(&args.bootstrap_server))
        .await
        .with_context(|| format!("cannot reach {}", args.bootstrap_server))?;
    let admin = GroupAdmin::new(client);
    if args.list {
        for g in admin.list_groups().await? {
            println!("{}", g.group_id);
        }
        return Ok(true);
    }
    let group = match args.group.as_slice() {
        [] => bail!("Option --group is required for this action"),
        [g] => g.clone(),
        _ if args.delete => String::new(),
        _ => bail!("Only one --group can be given for this action"),
    };
    if args.delete {
        return delete(&admin, &args.group).await;
    }
    if args.describe {
        if args.state {
            return describe_state(&admin, &group).await;
        }
        return describe(&admin, &group, args.members).await;
    }
    reset(&admin, &group, &args).await
}

async fn delete(admin: &GroupAdmin, groups: &[String]) -> anyhow::Result<bool> {
    let mut failed = Vec::new();
    for g in groups {
        if let Err(e) = admin.delete_group(g).await {
            failed.push((g.clone(), e));
        }
    }
    if failed.is_empty() {
        let names: Vec<String> = groups.iter().map(|g| format!("'{g}'")).collect();
        println!("Deletion of requested consumer groups ({}) was successful.", names.join(", "));
        return Ok(true);
    }
    eprintln!("Error: Deletion of some consumer groups failed:");
    for (g, e) in failed {
        eprintln!("* Group '{g}' could not be deleted due to: {}", explain(&e));
    }
    Ok(false)
}

/// Kafka's wording for the errors users meet here.
fn explain(e: &ClientError) -> String {
    match e.kafka_error() {
        Some(ResponseError::NonEmptyGroup) => {
            "org.apache.kafka.common.errors.GroupNotEmptyException: The group is not empty.".into()
        }
        Some(ResponseError::GroupIdNotFound) => {
            "org.apache.kafka.common.errors.GroupIdNotFoundException: The group id does not exist.".into()
        }
        _ => e.to_string(),
    }
}

/// Prints rows as left-aligned columns, each as wide as its widest cell (Kafka's layout).
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| if i == last { c.to_string() } else { format!("{c:<w$}", w = widths[i]) })
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!();
    println!("{}", line(header.to_vec()));
    for row in rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}

async fn describe_existing(admin: &GroupAdmin, group: &str) -> anyhow::Result<Option<GroupDescription>> {
    let desc = admin.describe_group(group).await?;
    if desc.state == "Dead" {
        eprintln!("Error: Consumer group '{group}' does not exist.");
        return Ok(None);
    }
    if desc.members.is_empty() {
        eprintln!("\nConsumer group '{group}' has no active members.");
    }
    Ok(Some(desc))
}

async fn describe_state(admin: &GroupAdmin, group: &str) -> anyhow::Result<bool> {
    let Some(desc) = describe_existing(admin, group).await? else { return Ok(false) };
    let (id, addr) = admin.find_coordinator(group).await?;
    let row = vec![
        group.to_string(),
        format!("{addr}  ({id})"),
        desc.protocol.clone(),
        desc.state.clone(),
        desc.members.len().to_string(),
    ];
    print_table(&["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"], &[row]);
    Ok(true)
}

async fn describe(admin: &GroupAdmin, group: &str, members: bool) -> anyhow::Result<bool> {
    let Some(desc) = describe_existing(admin, group).await? else { return Ok(false) };
    if members {
        let rows: Vec<Vec<String>> = desc
            .members
            .iter()
            .map(|m| {
                let partitions: usize = m.assignment.iter().map(|(_, ps)| ps.len()).sum();
                vec![
                    group.to_string(),
                    m.member_id.clone(),
                    m.client_host.clone(),
                    m.client_id.clone(),
                    partitions.to_string(),
                ]
            })
            .collect();
        print_table(&["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"], &rows);
        return Ok(true);
    }
    let committed = admin.committed_offsets(group).await?;
    // (topic, partition) -> (consumer id, host, client id)
    let mut owners: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    for m in &desc.members {
        for (topic, partitions) in &m.assignment {
            for p in partitions {
                owners.insert((topic.clone(), *p), (m.member_id.clone(), m.client_host.clone(), m.client_id.clone()));
            }
        }
    }
    let keys: BTreeSet<(String, i32)> = committed.keys().chain(owners.keys()).cloned().collect();
    let ends = log_end_offsets(admin.client(), &keys).await?;
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            let current = committed.get(key).copied();
            let end = ends.get(key).copied();
            let lag = match (current, end) {
                (Some(c), Some(e)) => (e - c).max(0).to_string(),
                _ => "-".into(),
            };
            let (id, host, client) = owners.get(key).cloned().unwrap_or(("-".into(), "-".into(), "-".into()));
            vec![
                group.to_string(),
                key.0.clone(),
                key.1.to_string(),
                current.map_or("-".into(), |c| c.to_string()),
                end.map_or("-".into(), |e| e.to_string()),
                lag,
                id,
                host,
                client,
            ]
        })
        .collect();
    print_table(
        &["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"],
        &rows,
    );
    Ok(true)
}

async fn offsets_for(
    client: &Client,
    keys: &BTreeSet<(String, i32)>,
    spec: OffsetSpec,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in keys {
        by_topic.entry(t).or_default().push(*p);
    }
    let mut out = BTreeMap::new();
    for (topic, partitions) in by_topic {
        for (p, o) in client.list_offsets(topic, &partitions, spec).await? {
            out.insert((topic.to_string(), p), o.offset);
        }
    }
    Ok(out)
}

async fn log_end_offsets(
    client: &Client,
    keys: &BTreeSet<(String, i32)>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    offsets_for(client, keys, OffsetSpec::Latest).await
}

/// The partitions a reset applies to: `--topic t[:p,...]` or every committed topic.
async fn reset_targets(
    admin: &GroupAdmin,
    group: &str,
    args: &Args,
    committed: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<BTreeSet<(String, i32)>> {
    let mut out = BTreeSet::new();
    if args.all_topics {
        let topics: BTreeSet<&String> = committed.keys().map(|(t, _)| t).collect();
        for t in topics {
            let meta = admin.client().topic(t).await?;
            out.extend(meta.partitions.iter().map(|p| (t.clone(), p.partition)));
        }
        return Ok(out);
    }
    if args.topic.is_empty() {
        bail!("One of the reset scopes should be defined: --all-topics, --topic (group '{group}')");
    }
    for spec in &args.topic {
        match spec.split_once(':') {
            Some((t, parts)) => {
                for p in parts.split(',') {
                    let p: i32 = p.trim().parse().with_context(|| format!("bad partition '{p}' in --topic {spec}"))?;
                    out.insert((t.to_string(), p));
                }
            }
            None => {
                let meta = admin.client().topic(spec).await?;
                out.extend(meta.partitions.iter().map(|p| (spec.clone(), p.partition)));
            }
        }
    }
    Ok(out)
}

async fn reset(admin: &GroupAdmin, group: &str, args: &Args) -> anyhow::Result<bool> {
    let scenarios = [args.to_earliest, args.to_latest, args.to_offset.is_some(), args.shift_by.is_some()]
        .iter()
        .filter(|s| **s)
        .count();
    if scenarios != 1 {
        bail!("Option --reset-offsets needs exactly one of --to-earliest, --to-latest, --to-offset, --shift-by");
    }
    if args.execute && args.dry_run {
        bail!("Option --execute and --dry-run are mutually exclusive");
    }
    let desc = admin.describe_group(group).await?;
    if desc.state != "Empty" && desc.state != "Dead" {
        eprintln!(
            "\nError: Assignments can only be reset if the group '{group}' is inactive, but the current state is {}.",
            desc.state
        );
        return Ok(false);
    }
    let committed = admin.committed_offsets(group).await?;
    let targets = reset_targets(admin, group, args, &committed).await?;
    let earliest = offsets_for(admin.client(), &targets, OffsetSpec::Earliest).await?;
    let latest = offsets_for(admin.client(), &targets, OffsetSpec::Latest).await?;
    let mut plan: Vec<(String, i32, i64)> = Vec::with_capacity(targets.len());
    for key in &targets {
        let lo = earliest.get(key).copied().unwrap_or(0);
        let hi = latest.get(key).copied().unwrap_or(lo);
        let wanted = if args.to_earliest {
            lo
        } else if args.to_latest {
            hi
        } else if let Some(o) = args.to_offset {
            o
        } else {
            committed.get(key).copied().unwrap_or(lo) + args.shift_by.unwrap_or(0)
        };
        plan.push((key.0.clone(), key.1, wanted.clamp(lo, hi.max(lo))));
    }
    if !args.execute && !args.dry_run {
        eprintln!("WARN: No action will be performed as the --execute option is missing. You should add the --dry-run option explicitly if you are scripting this command.");
    }
    if args.execute {
        admin.commit_offsets(group, &plan).await?;
    }
    let rows: Vec<Vec<String>> =
        plan.iter().map(|(t, p, o)| vec![group.to_string(), t.clone(), p.to_string(), o.to_string()]).collect();
    print_table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
    Ok(true)
}
