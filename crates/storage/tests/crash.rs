//! kill -9 of a process in the middle of appending, rolling and flushing: the reopened log
//! must be a valid, gap-free prefix holding at least everything that was flushed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use strom_storage::batch::testing::{build_batch, BatchSpec};
use strom_storage::batch::BatchIter;
use strom_storage::{LogConfig, PartitionLog};

const DIR_ENV: &str = "STROM_CRASH_CHILD_DIR";

fn config() -> LogConfig {
    LogConfig { segment_bytes: 64 * 1024, index_interval_bytes: 512, ..LogConfig::default() }
}

/// The victim: appends forever, flushing every 20 batches and reporting the flushed offset.
/// Only does something when started by the test below.
#[test]
#[ignore = "child process of kill_dash_nine_leaves_a_recoverable_log"]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let log = PartitionLog::open(std::path::Path::new(&dir), config()).expect("child open");
    let mut i = 0u64;
    loop {
        let bytes = build_batch(&BatchSpec {
            values: vec![vec![b'k'; 50 + (i % 700) as usize]; 1 + (i % 5) as usize],
            ..BatchSpec::default()
        });
        log.append(BytesMut::from(&bytes[..]), (i / 500) as i32).expect("child append");
        i += 1;
        if i % 20 == 0 {
            log.flush().expect("child flush");
            println!("flushed {}", log.log_end_offset());
        }
    }
}

#[test]
fn kill_dash_nine_leaves_a_recoverable_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "crash_child_writer", "--include-ignored", "--nocapture"])
        .env(DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("flushed ") {
                if tx.send(n.trim().parse::<i64>().unwrap_or(-1)).is_err() {
                    break;
                }
            }
        }
    });
    // Let it write a few segments' worth, then kill it mid-flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut flushed = 0;
    let mut reports = 0;
    while reports < 40 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(offset) => {
                flushed = offset;
                reports += 1;
            }
            Err(e) => {
                let _ = child.kill();
                panic!("child stopped reporting after {reports} flushes: {e}");
            }
        }
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap child");
    drop(rx);
    reader.join().expect("reader thread");
    assert!(flushed > 0);

    let log = PartitionLog::open(dir.path(), config()).expect("recover after kill -9");
    assert!(log.log_end_offset() >= flushed, "flushed offset {flushed} lost, log end {}", log.log_end_offset());
    assert!(log.segment_count() > 1);
    let mut offset = 0;
    while offset < log.log_end_offset() {
        let records = log.read(offset, 256 * 1024, None).expect("read").records;
        assert!(!records.is_empty());
        for item in BatchIter::new(&records) {
            let (_, b) = item.expect("every stored batch passes its CRC");
            assert_eq!(b.base_offset(), offset, "no gaps or overlaps");
            offset = b.last_offset() + 1;
        }
    }
    // Appends continue where recovery stopped.
    let next = build_batch(&BatchSpec::default());
    let info = log.append(BytesMut::from(&next[..]), 1000).expect("append after recovery");
    assert_eq!(info.first_offset, offset);
}
