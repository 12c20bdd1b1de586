//! A deterministic random walk over appends, truncations, DeleteRecords, retention, crashes
//! and clean restarts, checked after every step against a plain in-memory model.

use std::path::Path;

use bytes::BytesMut;
use strom_storage::batch::testing::{build_batch, BatchSpec};
use strom_storage::batch::BatchIter;
use strom_storage::{LogConfig, PartitionLog};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    base: i64,
    last: i64,
    epoch: i32,
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1500,
        index_interval_bytes: 200,
        retention_bytes: 6000,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir, config()).expect("open")
}

fn check(log: &PartitionLog, model: &[Stored], log_start: i64, rng: &mut Rng) {
    let log_end = model.last().map_or(log_start, |b| b.last + 1);
    assert_eq!(log.log_end_offset(), log_end, "log end offset");
    assert_eq!(log.log_start_offset(), log_start, "log start offset");
    let visible: Vec<Stored> = model.iter().copied().filter(|b| b.last >= log_start).collect();
    let mut got = Vec::new();
    let mut offset = log_start;
    while offset < log_end {
        let records = log.read(offset, 1 + rng.below(3000) as usize, None).expect("read").records;
        assert!(!records.is_empty(), "empty read at {offset} below log end {log_end}");
        for item in BatchIter::new(&records) {
            let (_, b) = item.expect("valid stored batch");
            got.push(Stored { base: b.base_offset(), last: b.last_offset(), epoch: b.partition_leader_epoch() });
            offset = b.last_offset() + 1;
        }
    }
    assert_eq!(got, visible);
    if let Some(latest) = model.last() {
        assert_eq!(log.end_offset_for_epoch(latest.epoch), Some((latest.epoch, log_end)));
    }
}

#[test]
fn random_operations_match_the_model() {
    // More seeds: STROM_MODEL_SEEDS=50 cargo test -p strom-storage --test model
    let seeds: u64 = std::env::var("STROM_MODEL_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    for seed in 0..seeds {
        run(0x5EED_1234_ABCD_0001 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
}

fn run(seed: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(seed);
    let mut log = open(dir.path());
    let mut model: Vec<Stored> = Vec::new();
    let mut log_start = 0i64;
    let mut epoch = 0;
    for step in 0..400 {
        match rng.below(100) {
            0..=59 => {
                if rng.below(10) == 0 {
                    epoch += 1;
                }
                let n = 1 + rng.below(4) as usize;
                let len = 10 + rng.below(300) as usize;
                let bytes = build_batch(&BatchSpec { values: vec![vec![b'v'; len]; n], ..BatchSpec::default() });
                let info = log.append(BytesMut::from(&bytes[..]), epoch).expect("append");
                let base = model.last().map_or(log_start, |b| b.last + 1);
                assert_eq!(info.first_offset, base, "step {step}");
                model.push(Stored { base, last: base + n as i64 - 1, epoch });
            }
            60..=69 => {
                // Keep at least one visible batch so the expected end offset is unambiguous.
                let visible: Vec<Stored> = model.iter().copied().filter(|b| b.last >= log_start).collect();
                if visible.len() >= 2 {
                    let first_last = visible[0].last;
                    let end = model.last().map_or(0, |b| b.last + 1);
                    let offset = first_last + 1 + rng.below((end - first_last) as u64) as i64;
                    log.truncate_to(offset).expect("truncate");
                    model.retain(|b| b.last < offset);
                    epoch = model.last().map_or(epoch, |b| b.epoch);
                }
            }
            70..=77 => {
                let end = model.last().map_or(log_start, |b| b.last + 1);
                let offset = log_start + rng.below((end - log_start + 1) as u64) as i64;
                assert_eq!(log.delete_records_before(offset).expect("delete records"), offset.max(log_start));
                log_start = log_start.max(offset);
            }
            78..=85 => {
                log.enforce_retention(strom_storage::now_ms()).expect("retention");
                let new_start = log.log_start_offset();
                assert!(new_start >= log_start);
                assert!(
                    new_start == log_start || model.iter().any(|b| b.base == new_start),
                    "retention moves the start to a batch boundary"
                );
                log_start = new_start;
                assert!(log.size_bytes() <= 6000 + 1500 + 400);
            }
            86..=92 => {
                drop(log); // crash: nothing flushed or checkpointed
                log = open(dir.path());
            }
            _ => {
                log.close().expect("close");
                drop(log);
                log = open(dir.path());
            }
        }
        check(&log, &model, log_start, &mut rng);
    }
}
