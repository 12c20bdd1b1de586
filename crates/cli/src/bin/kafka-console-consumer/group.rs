//! `--group`: consume as a member of a consumer group. Partitions come from the group's
//! assignment, reading starts at the group's committed offsets (`--from-beginning` picks
//! where to start when nothing is committed, like `auto.offset.reset=earliest`), printed
//! records are committed every 5 s and on exit, and the member leaves the group on exit.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use strom_client::group::GroupAdmin;
use strom_client::group_member::{GroupMember, MemberConfig};
use strom_client::{Consumer, StartOffset};

use super::formatter::Formatter;
use super::Args;

/// Kafka's `auto.commit.interval.ms` default.
const COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// Takes the member's assignment: assigns the partitions and seeks each to its committed
/// offset (or `reset` when none).
async fn take_assignment(consumer: &mut Consumer, member: &mut GroupMember, reset: StartOffset) -> anyhow::Result<()> {
    let parts: Vec<(String, i32)> = member.assignment().to_vec();
    let refs: Vec<(&str, i32)> = parts.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    consumer.assign(&refs);
    let committed = member.committed().await?;
    for (t, p) in &parts {
        let start = committed.get(&(t.clone(), *p)).map_or(reset, |o| StartOffset::Offset(*o));
        consumer.seek(t, *p, start)?;
    }
    Ok(())
}

/// Commits what was printed; on a refused commit (the group rebalanced) the records are
/// left for whoever owns the partitions next.
async fn commit(member: &mut GroupMember, printed: &mut HashMap<(String, i32), i64>) -> anyhow::Result<()> {
    if !member.commit(printed).await? {
        tracing::info!("commit refused: the group is rebalancing");
    }
    printed.clear();
    Ok(())
}

pub(crate) async fn consume(
    args: &Args,
    group: &str,
    mut consumer: Consumer,
    formatter: &Formatter,
    processed: &mut u64,
) -> anyhow::Result<()> {
    if args.partition.is_some() || args.offset.is_some() {
        bail!("Options group and partition/offset cannot be specified together.");
    }
    let reset = if args.from_beginning { StartOffset::Earliest } else { StartOffset::Latest };
    let admin = GroupAdmin::new(consumer.client().clone());
    let config = MemberConfig::default();
    let heartbeat = config.heartbeat_interval;
    let mut member = GroupMember::join(admin, group, &[args.topic.as_str()], config)
        .await
        .with_context(|| format!("joining group '{group}'"))?;
    take_assignment(&mut consumer, &mut member, reset).await?;

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let idle = args.timeout_ms.map(Duration::from_millis);
    let mut last_message = Instant::now();
    let mut last_commit = Instant::now();
    let mut printed: HashMap<(String, i32), i64> = HashMap::new();
    let mut records = Vec::new();
    loop {
        if args.max_messages.is_some_and(|max| *processed >= max) {
            break;
        }
        let mut wait = heartbeat.min(Duration::from_secs(1));
        if let Some(idle) = idle {
            let left = idle.saturating_sub(last_message.elapsed());
            if left.is_zero() {
                break;
            }
            wait = wait.min(left);
        }
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
            printed.insert((r.topic.to_string(), r.partition), r.offset + 1);
            *processed += 1;
        }
        out.flush().context("writing to stdout")?;
        if last_commit.elapsed() >= COMMIT_INTERVAL {
            commit(&mut member, &mut printed).await?;
            last_commit = Instant::now();
        }
        if member.heartbeat_if_due().await? {
            commit(&mut member, &mut printed).await?;
            member.rejoin().await?;
            take_assignment(&mut consumer, &mut member, reset).await?;
        }
    }
    out.flush().context("writing to stdout")?;
    commit(&mut member, &mut printed).await?;
    member.leave().await?;
    Ok(())
}
