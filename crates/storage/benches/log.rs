//! Partition log throughput: leader appends of 1 KiB and 16 KiB batches (validation, offset
//! patch, one write each; page cache only, as with Kafka's default flush policy) and
//! sequential reads of 1 MiB per call.
//!
//! Run: `cargo bench -p strom-storage --bench log`

use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use strom_storage::batch::testing::{build_batch, BatchSpec};
use strom_storage::records::testing::{keyed_batch, KeyValue};
use strom_storage::{now_ms, CleanerConfig, LogConfig, PartitionLog};

/// An uncompressed batch of about `target` bytes made of 100-byte records.
fn batch_of(target: usize) -> Vec<u8> {
    let records = (target / 120).max(1);
    build_batch(&BatchSpec { values: vec![vec![b'x'; 100]; records], ..BatchSpec::default() })
}

fn bench_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024 * 1024,
        // Keeps the benchmark's disk use bounded; enforced outside the timed section.
        retention_bytes: 512 * 1024 * 1024,
        ..LogConfig::default()
    }
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    for (name, size) in [("1KiB", 1024), ("16KiB", 16 * 1024)] {
        let batch = batch_of(size);
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), bench_config()).expect("open");
        let mut appended = 0u64;
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    appended += 1;
                    if appended % 4096 == 0 {
                        log.enforce_retention(now_ms()).expect("retention");
                    }
                    BytesMut::from(&batch[..])
                },
                |bytes| log.append(bytes, 0).expect("append"),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn sequential_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    for (name, size) in [("1KiB", 1024), ("16KiB", 16 * 1024)] {
        let batch = batch_of(size);
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), bench_config()).expect("open");
        let total = 128 * 1024 * 1024 / batch.len();
        for _ in 0..total {
            log.append(BytesMut::from(&batch[..]), 0).expect("fill");
        }
        let max_bytes = 1024 * 1024;
        let per_read = (max_bytes / batch.len()) * batch.len();
        group.throughput(Throughput::Bytes(per_read as u64));
        let mut offset = 0;
        group.bench_function(format!("{name}_batches_1MiB_reads"), |b| {
            b.iter(|| {
                let info = log.read(offset, max_bytes, None).expect("read");
                offset = info.log_end_offset.min(offset + next_offset_delta(&info.records));
                if offset >= info.log_end_offset {
                    offset = 0;
                }
                info.records.len()
            })
        });
    }
    group.finish();
}

/// Opening a 64 MiB log after a crash (no recovery point: every batch is CRC-checked and the
/// indexes rebuilt) versus after a clean shutdown (indexes trusted, headers walked only past the
/// last index entry, producer state from the snapshot).
fn open_log(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    group.sample_size(10);
    let batch = batch_of(16 * 1024);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), bench_config()).expect("open");
    for _ in 0..(64 * 1024 * 1024 / batch.len()) {
        log.append(BytesMut::from(&batch[..]), 0).expect("fill");
    }
    log.close().expect("close");
    let bytes = log.size_bytes();
    drop(log);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("recover_64MiB_after_crash", |b| {
        b.iter_batched(
            || {
                // Forget the recovery point and the indexes: the state after a crash.
                for entry in std::fs::read_dir(dir.path()).expect("list").flatten() {
                    let path = entry.path();
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    if name.starts_with("recovery-point") || name.ends_with(".index") || name.ends_with("snapshot") {
                        std::fs::remove_file(&path).expect("remove");
                    }
                }
            },
            |()| PartitionLog::open(dir.path(), bench_config()).expect("recover"),
            BatchSize::PerIteration,
        )
    });
    PartitionLog::open(dir.path(), bench_config()).expect("open").close().expect("close");
    group.bench_function("open_64MiB_after_clean_shutdown", |b| {
        b.iter(|| PartitionLog::open(dir.path(), bench_config()).expect("open"))
    });
    group.finish();
}

/// Offset after the last batch in `records` relative to the first batch's base offset.
fn next_offset_delta(records: &[u8]) -> i64 {
    let mut first = None;
    let mut next = 0;
    for item in strom_storage::batch::BatchIter::headers_only(records) {
        let Ok((_, b)) = item else { break };
        first.get_or_insert(b.base_offset());
        next = b.next_offset();
    }
    first.map_or(1, |f| next - f)
}

/// Cleaning throughput: bytes of dirty log read per second by one round over a log of 8 MiB
/// in 1 MiB segments, 100-record batches of ~100-byte values over 10,000 keys (so ~80 % of the
/// records are superseded), uncompressed and lz4. Only `clean_now` is timed.
fn clean(c: &mut Criterion) {
    let mut group = c.benchmark_group("clean");
    const LOG_BYTES: usize = 8 * 1024 * 1024;
    for (name, codec) in [("uncompressed", 0u8), ("lz4", 3u8)] {
        let mut probe_size = 0u64;
        let make = |size: &mut u64| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut config = LogConfig { segment_bytes: 1024 * 1024, ..LogConfig::default() };
            config.set_cleanup_policy("compact");
            let log = PartitionLog::open(dir.path(), config).expect("open");
            let value = vec![b'v'; 100];
            let mut n = 0u64;
            while (log.size_bytes() as usize) < LOG_BYTES {
                let keys: Vec<String> = (0..100).map(|i| format!("key-{}", (n * 7919 + i * 13) % 10_000)).collect();
                let recs: Vec<KeyValue<'_>> =
                    keys.iter().map(|k| (Some(k.as_bytes()), Some(value.as_slice()))).collect();
                let batch = keyed_batch(&recs, codec, now_ms(), (-1, -1, -1));
                log.append(BytesMut::from(&batch[..]), 0).expect("append");
                n += 1;
            }
            *size = log.size_bytes();
            (dir, log)
        };
        drop(make(&mut probe_size));
        group.throughput(Throughput::Bytes(probe_size));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut size = 0;
                    let (_dir, log) = make(&mut size);
                    let start = std::time::Instant::now();
                    log.clean_now(now_ms(), &CleanerConfig::default()).expect("clean");
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = clean_benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = clean
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = append, sequential_read, open_log
}
criterion_main!(benches, clean_benches);
