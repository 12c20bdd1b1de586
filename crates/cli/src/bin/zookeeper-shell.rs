//! `zookeeper-shell <host:port[,...][/chroot]> [command args...]`: zkCli's commands and output.
//! With a command it runs it once (exit status 1 when it fails); without, it reads commands
//! from standard input with zkCli's prompt.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use strom_keeper::client::{server_status, KeeperClient};
use strom_keeper::{CreateMode, KeeperError, Stat};

fn usage() -> &'static str {
    "ZooKeeper -server host:port cmd args
\tstat path
\tget path
\tls [-R] path
\tcreate [-e] [-s] [-c] path [data]
\tset path data [version]
\tdelete path [version]
\tdeleteall path
\tsync path
\tsrvr | status
\tquit"
}

fn main() {
    strom_cli::init_logging("error");
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("-server") {
        args.remove(0);
    }
    if args.is_empty() || args[0] == "-h" || args[0] == "--help" {
        eprintln!("USAGE: zookeeper-shell host:port[/chroot] [cmd args]\n{}", usage());
        std::process::exit(2);
    }
    let connect = args.remove(0);
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(run(connect, args));
    std::process::exit(code);
}

async fn run(connect: String, args: Vec<String>) -> i32 {
    eprintln!("Connecting to {connect}");
    let first_server = connect.split(['/', ',']).next().unwrap_or("").to_string();
    if !args.is_empty() && matches!(args[0].as_str(), "srvr" | "status") {
        return report(status(&first_server).await);
    }
    let zk = match KeeperClient::connect(&connect, Duration::from_secs(30)).await {
        Ok(zk) => zk,
        Err(e) => {
            eprintln!("Unable to connect to {connect}: {e}");
            return 1;
        }
    };
    if !args.is_empty() {
        let code = report(command(&zk, &first_server, &args).await);
        zk.close().await;
        return code;
    }
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut n = 0;
    loop {
        if interactive {
            print!("[zk: {connect}(CONNECTED) {n}] ");
            let _ = std::io::stdout().flush();
        }
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let words = split_words(&line);
        if words.is_empty() {
            continue;
        }
        if matches!(words[0].as_str(), "quit" | "exit") {
            break;
        }
        report(command(&zk, &first_server, &words).await);
        n += 1;
    }
    zk.close().await;
    0
}

/// Prints a command's output or its error; returns the exit status.
fn report(r: Result<String>) -> i32 {
    match r {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            0
        }
        Err(e) => {
            println!("{e}");
            1
        }
    }
}

/// Splits a command line on spaces, keeping quoted strings together.
fn split_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut had = false;
    for c in line.trim().chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                had = true;
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() || had {
                    out.push(std::mem::take(&mut cur));
                    had = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() || had {
        out.push(cur);
    }
    out
}

fn explain(e: KeeperError, path: &str) -> anyhow::Error {
    match e {
        KeeperError::NoNode => anyhow::anyhow!("Node does not exist: {path}"),
        KeeperError::NodeExists => anyhow::anyhow!("Node already exists: {path}"),
        KeeperError::NotEmpty => anyhow::anyhow!("Node not empty: {path}"),
        KeeperError::BadVersion => anyhow::anyhow!("version No is not valid : {path}"),
        KeeperError::NoChildrenForEphemerals => anyhow::anyhow!("Ephemerals cannot have children: {path}"),
        other => anyhow::anyhow!("{other}: {path}"),
    }
}

fn format_time(ms: i64) -> String {
    // zkCli prints Date.toString(); UTC in RFC 3339 form is unambiguous and close enough.
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms.rem_euclid(1000))
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn format_stat(s: &Stat) -> String {
    format!(
        "cZxid = {:#x}\nctime = {}\nmZxid = {:#x}\nmtime = {}\npZxid = {:#x}\ncversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = {:#x}\ndataLength = {}\nnumChildren = {}",
        s.czxid,
        format_time(s.ctime),
        s.mzxid,
        format_time(s.mtime),
        s.pzxid,
        s.cversion,
        s.version,
        s.aversion,
        s.ephemeral_owner,
        s.data_length,
        s.num_children
    )
}

async fn status(server: &str) -> Result<String> {
    let s = server_status(server, Duration::from_secs(5))
        .await
        .map_err(|e| anyhow::anyhow!("Unable to reach {server}: {e}"))?;
    Ok(format!(
        "Strom keeper {}\nServer id: {}\nZxid: {:#x}\nMode: {}\nLeader: {}\nNode count: {}\nSessions: {}\nConnections: {}\nMembers: {:?}",
        env!("CARGO_PKG_VERSION"),
        s.server_id,
        s.last_zxid,
        s.role,
        s.leader_id,
        s.znode_count,
        s.open_sessions,
        s.connections,
        s.members
    ))
}

async fn command(zk: &KeeperClient, server: &str, words: &[String]) -> Result<String> {
    let cmd = words[0].as_str();
    let flags: Vec<&str> =
        words[1..].iter().filter(|w| w.starts_with('-') && w.len() == 2).map(String::as_str).collect();
    let rest: Vec<&str> =
        words[1..].iter().filter(|w| !(w.starts_with('-') && w.len() == 2)).map(String::as_str).collect();
    let path = || rest.first().copied().ok_or_else(|| anyhow::anyhow!("{cmd}: missing path\n{}", usage()));
    match cmd {
        "ls" => {
            let p = path()?;
            if flags.contains(&"-R") {
                let mut out = vec![p.to_string()];
                let mut i = 0;
                while i < out.len() {
                    let base = out[i].clone();
                    let children = zk.get_children(&base, false).await.map_err(|e| explain(e, &base))?;
                    for c in children {
                        out.push(strom_keeper::path::join(&base, &c));
                    }
                    i += 1;
                }
                Ok(out.join("\n"))
            } else {
                let children = zk.get_children(p, false).await.map_err(|e| explain(e, p))?;
                Ok(format!("[{}]", children.join(", ")))
            }
        }
        "get" => {
            let p = path()?;
            let (data, stat) = zk.get_data(p, false).await.map_err(|e| explain(e, p))?;
            let text = String::from_utf8_lossy(&data).into_owned();
            if flags.contains(&"-s") {
                Ok(format!("{text}\n{}", format_stat(&stat)))
            } else if data.is_empty() {
                Ok("null".to_string())
            } else {
                Ok(text)
            }
        }
        "stat" => {
            let p = path()?;
            let stat = zk.exists(p, false).await.map_err(|e| explain(e, p))?;
            stat.map(|s| format_stat(&s)).ok_or_else(|| anyhow::anyhow!("Node does not exist: {p}"))
        }
        "create" => {
            let p = path()?;
            let data = rest.get(1).copied().unwrap_or("");
            let eph = flags.contains(&"-e");
            let seq = flags.contains(&"-s");
            let mode = match (flags.contains(&"-c"), eph, seq) {
                (true, _, _) => CreateMode::Container,
                (false, true, true) => CreateMode::EphemeralSequential,
                (false, true, false) => CreateMode::Ephemeral,
                (false, false, true) => CreateMode::PersistentSequential,
                (false, false, false) => CreateMode::Persistent,
            };
            let created = zk.create(p, data.as_bytes(), mode).await.map_err(|e| explain(e, p))?;
            Ok(format!("Created {created}"))
        }
        "set" => {
            let p = path()?;
            let data = rest.get(1).copied().ok_or_else(|| anyhow::anyhow!("set: missing data\n{}", usage()))?;
            let version = match rest.get(2) {
                Some(v) => Some(v.parse::<i32>().map_err(|_| anyhow::anyhow!("set: version \"{v}\" is not a number"))?),
                None => None,
            };
            zk.set_data(p, data.as_bytes(), version).await.map_err(|e| explain(e, p))?;
            Ok(String::new())
        }
        "delete" => {
            let p = path()?;
            let version = match rest.get(1) {
                Some(v) => {
                    Some(v.parse::<i32>().map_err(|_| anyhow::anyhow!("delete: version \"{v}\" is not a number"))?)
                }
                None => None,
            };
            zk.delete(p, version).await.map_err(|e| explain(e, p))?;
            Ok(String::new())
        }
        "deleteall" | "rmr" => {
            let p = path()?;
            if zk.exists(p, false).await.map_err(|e| explain(e, p))?.is_none() {
                return Err(anyhow::anyhow!("Node does not exist: {p}"));
            }
            zk.delete_all(p).await.map_err(|e| explain(e, p))?;
            Ok(String::new())
        }
        "sync" => {
            let p = path()?;
            zk.sync(p).await.map_err(|e| explain(e, p))?;
            Ok("Sync is OK".to_string())
        }
        "srvr" | "status" => status(server).await,
        "help" => Ok(usage().to_string()),
        other => Err(anyhow::anyhow!("Command not found: Command not found {other}\n{}", usage())),
    }
}
