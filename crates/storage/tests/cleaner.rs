//! The log cleaner: latest record per key, preserved offsets, tombstones, compression,
//! producer state and crash recovery of the segment swap.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use bytes::BytesMut;
use strom_storage::records::testing::{decode_all, keyed_batch, KeyValue};
use strom_storage::{CleanerConfig, LogConfig, PartitionLog};

const NOW: i64 = 1_800_000_000_000;

fn compact_config() -> LogConfig {
    let mut c = LogConfig { segment_bytes: 1024, index_interval_bytes: 128, ..LogConfig::default() };
    c.set_cleanup_policy("compact");
    c
}

type Rec = (Option<Vec<u8>>, Option<Vec<u8>>);

fn append(log: &PartitionLog, recs: &[(&str, Option<&str>)], codec: u8) -> i64 {
    let owned: Vec<KeyValue<'_>> = recs.iter().map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes))).collect();
    let bytes = keyed_batch(&owned, codec, NOW - 1000, (-1, -1, -1));
    log.append(BytesMut::from(&bytes[..]), 0).expect("append").first_offset
}

/// Every (offset, key, value) readable from the log start, walking across gaps.
fn read_all(log: &PartitionLog) -> Vec<(i64, Rec)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let info = log.read(offset, 1 << 20, None).expect("read");
        if info.records.is_empty() {
            break;
        }
        let mut next = offset;
        for (o, k, v) in decode_all(&info.records).expect("decode") {
            if o >= offset {
                out.push((o, (k, v)));
            }
            next = next.max(o + 1);
        }
        // A batch emptied by the cleaner still moves the reader past its offsets.
        let mut last = next;
        for item in strom_storage::batch::BatchIter::new(&info.records) {
            let (_, b) = item.expect("batch");
            last = last.max(b.next_offset());
        }
        offset = last;
    }
    out
}

fn latest_per_key(all: &[(i64, Rec)]) -> BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> {
    let mut m = BTreeMap::new();
    for (o, (k, v)) in all {
        if let Some(k) = k {
            m.insert(k.clone(), (*o, v.clone()));
        }
    }
    m
}

fn fill(log: &PartitionLog, rounds: usize, keys: usize, codec: u8) {
    for round in 0..rounds {
        for k in 0..keys {
            let value = format!("v{round}-{k}-{}", "x".repeat(40));
            append(log, &[(&format!("key{k}"), Some(&value))], codec);
        }
    }
}

#[test]
fn keeps_latest_per_key_with_offsets_preserved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compact_config()).expect("open");
    fill(&log, 20, 5, 0);
    let before = read_all(&log);
    let expected = latest_per_key(&before);
    let size_before = log.size_bytes();
    let segments_before = log.segment_count();
    let end_before = log.log_end_offset();
    let stats = log.clean(NOW, &CleanerConfig::default()).expect("clean").expect("dirty log is cleaned");
    assert!(stats.records_written < stats.records_read);
    assert!(log.size_bytes() < size_before / 2, "{} vs {size_before}", log.size_bytes());
    // Sources near segment.bytes are cleaned one to one; the next round merges the now small
    // cleaned segments.
    log.clean_now(NOW, &CleanerConfig::default()).expect("second round");
    assert!(log.segment_count() < segments_before / 2, "small segments were merged: {}", log.segment_count());
    assert_eq!(log.log_end_offset(), end_before);
    let after = read_all(&log);
    // Whatever the active segment holds is untouched; everything else is one record per key.
    assert_eq!(latest_per_key(&after), expected);
    let mut seen = std::collections::HashSet::new();
    let active_base = end_before - 20; // generous: only the tail may repeat keys
    for (o, (k, _)) in &after {
        if *o < active_base {
            assert!(seen.insert(k.clone()), "key {k:?} twice below the active segment");
        }
    }
    // Offsets come out increasing, with gaps, and each is the original offset of its value.
    let originals: BTreeMap<i64, Rec> = before.into_iter().collect();
    for (o, rec) in &after {
        assert_eq!(originals.get(o), Some(rec), "offset {o} changed content");
    }
    // Nothing more to do right away.
    assert!(log.clean(NOW, &CleanerConfig::default()).expect("clean").is_none());

    // Reopen: recovery accepts the cleaned segments and the checkpoint is kept.
    let first_dirty = log.first_dirty_offset().expect("checkpoint");
    log.close().expect("close");
    drop(log);
    let log = PartitionLog::open(dir.path(), compact_config()).expect("reopen");
    assert_eq!(read_all(&log), after);
    assert_eq!(log.first_dirty_offset().expect("checkpoint"), first_dirty);
    // Reading at an offset that vanished lands on the next surviving batch.
    let gap = (0..first_dirty).find(|o| !after.iter().any(|(a, _)| a == o)).expect("a gap");
    let info = log.read(gap, 4096, None).expect("read in a gap");
    let first = decode_all(&info.records).expect("decode")[0].0;
    assert!(first > gap);
}

#[test]
fn dirty_ratio_and_compaction_lag_gate_cleaning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = compact_config();
    config.min_cleanable_dirty_ratio = 0.99;
    let log = PartitionLog::open(dir.path(), config.clone()).expect("open");
    fill(&log, 10, 5, 0);
    assert!(log.clean(NOW, &CleanerConfig::default()).expect("clean").is_some(), "all dirty: ratio 1.0");
    fill(&log, 1, 5, 0);
    assert!(log.clean(NOW, &CleanerConfig::default()).expect("clean").is_none(), "mostly clean now");

    let dir = tempfile::tempdir().expect("tempdir");
    config.min_cleanable_dirty_ratio = 0.5;
    config.min_compaction_lag_ms = 60_000;
    let log = PartitionLog::open(dir.path(), config).expect("open");
    fill(&log, 10, 5, 0);
    // Records carry timestamps just before NOW: too young to compact at NOW.
    assert!(log.clean(NOW, &CleanerConfig::default()).expect("clean").is_none());
    let later = log.clean(NOW + 120_000, &CleanerConfig::default()).expect("clean");
    assert!(later.is_some_and(|s| s.records_written < s.records_read));
}

#[test]
fn tombstones_are_kept_for_delete_retention_then_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = compact_config();
    config.delete_retention_ms = 10_000;
    let log = PartitionLog::open(dir.path(), config).expect("open");
    fill(&log, 3, 4, 0);
    append(&log, &[("key1", None)], 0);
    fill(&log, 12, 1, 0); // key0 only: pushes the tombstone out of the active segment
    let cleaner = CleanerConfig::default();
    log.clean_now(NOW, &cleaner).expect("clean");
    let m = latest_per_key(&read_all(&log));
    assert_eq!(m.get(b"key1".as_slice()).map(|(_, v)| v.clone()), Some(None), "tombstone kept for now");
    // Not dirty, but the horizon has not passed either.
    assert!(log.clean(NOW + 5_000, &cleaner).expect("clean").is_none());
    // The horizon passed: the log is cleaned again although nothing is dirty.
    let stats = log.clean(NOW + 10_001, &cleaner).expect("clean");
    assert!(stats.is_some());
    let m = latest_per_key(&read_all(&log));
    assert!(!m.contains_key(b"key1".as_slice()), "tombstone removed after delete.retention.ms");
    assert!(m.contains_key(b"key2".as_slice()));
}

#[test]
fn compressed_batches_are_rewritten_with_their_codec() {
    for codec in 1..=4u8 {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), compact_config()).expect("open");
        for round in 0..10 {
            let v1 = format!("a{round}");
            let v2 = format!("b{round}");
            let v3 = format!("c{round}-{}", "y".repeat(60));
            append(&log, &[("a", Some(&v1)), ("b", Some(&v2)), (&format!("c{round}"), Some(&v3))], codec);
        }
        let expected = latest_per_key(&read_all(&log));
        log.clean_now(NOW, &CleanerConfig::default()).expect("clean");
        let after = read_all(&log);
        assert_eq!(latest_per_key(&after), expected, "codec {codec}");
        let info = log.read(log.log_start_offset(), 1 << 20, None).expect("read");
        for item in strom_storage::batch::BatchIter::new(&info.records) {
            let (_, b) = item.expect("valid batch after cleaning");
            if b.record_count() > 0 {
                assert_eq!(b.compression(), codec);
            }
        }
        assert!(after.len() < 30);
    }
}

#[test]
fn records_without_key_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compact_config()).expect("open");
    let bytes = keyed_batch(&[(None, Some(b"v"))], 0, NOW, (-1, -1, -1));
    let err = log.append(BytesMut::from(&bytes[..]), 0).expect_err("keyless");
    assert_eq!(err.kafka_error_code(), 87);
    assert!(err.to_string().contains("Compacted topic cannot accept message without key"));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn producer_state_survives_cleaning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compact_config()).expect("open");
    let pid = 42;
    let mut last = Vec::new();
    for seq in 0..30 {
        // Every batch overwrites the same key: all but the last are garbage.
        let bytes = keyed_batch(&[(Some(b"k"), Some(format!("v{seq}").as_bytes()))], 0, NOW, (pid, 3, seq));
        log.append(BytesMut::from(&bytes[..]), 0).expect("append");
        last = bytes;
    }
    // A few non-idempotent writes afterwards roll the producer's last batch out of the
    // active segment and overwrite its key.
    fill(&log, 8, 1, 0);
    fill(&log, 8, 2, 0);
    append(&log, &[("k", Some("other"))], 0);
    fill(&log, 8, 3, 0);
    log.clean_now(NOW, &CleanerConfig::default()).expect("clean");
    log.close().expect("close");
    drop(log);
    // Without the snapshot, producer state must be rebuilt from the cleaned log.
    fs::remove_file(dir.path().join("producer-state-snapshot")).expect("remove snapshot");
    let log = PartitionLog::open(dir.path(), compact_config()).expect("reopen");
    let retry = log.append(BytesMut::from(&last[..]), 0).expect("retry");
    assert!(retry.duplicate, "the producer's last batch is still known after cleaning");
    let next = keyed_batch(&[(Some(b"k"), Some(b"v30"))], 0, NOW, (pid, 3, 30));
    assert!(!log.append(BytesMut::from(&next[..]), 0).expect("next sequence").duplicate);
    let gap = keyed_batch(&[(Some(b"k"), Some(b"v40"))], 0, NOW, (pid, 3, 40));
    assert!(log.append(BytesMut::from(&gap[..]), 0).is_err(), "sequence gap still detected");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("ls") {
        let e = e.expect("entry");
        fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

fn log_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

#[test]
fn crash_during_swap_recovers() {
    let root = tempfile::tempdir().expect("tempdir");
    let src = root.path().join("t-0");
    let log = PartitionLog::open(&src, compact_config()).expect("open");
    fill(&log, 12, 4, 0);
    log.close().expect("close");
    let before = read_all(&log);
    drop(log);
    let dirty_copy = root.path().join("dirty");
    copy_dir(&src, &dirty_copy);

    let log = PartitionLog::open(&src, compact_config()).expect("open");
    log.clean_now(NOW, &CleanerConfig::default()).expect("clean");
    let cleaned_view = read_all(&log);
    log.close().expect("close");
    drop(log);
    let old_logs = log_files(&dirty_copy);
    let new_logs = log_files(&src);
    let cleaned_first = &new_logs[0];
    let cleaned_second = new_logs.get(1).expect("two segments at least");
    let replaced_end: i64 = cleaned_second[..20].parse().expect("base");

    // 1. Crash after the cleaned file was written but before the swap: the clean is lost.
    let case = root.path().join("case1");
    copy_dir(&dirty_copy, &case);
    fs::copy(src.join(cleaned_first), case.join(format!("{cleaned_first}.cleaned"))).expect("copy");
    let log = PartitionLog::open(&case, compact_config()).expect("open");
    assert_eq!(read_all(&log), before);
    assert!(!case.join(format!("{cleaned_first}.cleaned")).exists());
    drop(log);

    // 2. Crash right after the commit point (.swap exists, old segments untouched).
    // 3. Crash halfway through renaming the old segments to .deleted.
    for halfway in [false, true] {
        let case = root.path().join(format!("case-swap-{halfway}"));
        copy_dir(&dirty_copy, &case);
        fs::copy(src.join(cleaned_first), case.join(format!("{cleaned_first}.swap"))).expect("copy");
        fs::write(case.join(format!("{}.replaced", &cleaned_first[..20])), format!("0\n{replaced_end}\n"))
            .expect("marker");
        if halfway {
            let victim = &old_logs[0]; // the group's only source
            fs::rename(case.join(victim), case.join(format!("{victim}.deleted"))).expect("rename");
        }
        let log = PartitionLog::open(&case, compact_config()).expect("open");
        // The first group is cleaned, the rest is as it was before cleaning.
        let expected: Vec<(i64, Rec)> = cleaned_view
            .iter()
            .filter(|(o, _)| *o < replaced_end)
            .chain(before.iter().filter(|(o, _)| *o >= replaced_end))
            .cloned()
            .collect();
        let got = read_all(&log);
        assert!(
            got == expected,
            "swap completed by recovery (halfway={halfway}): {} records vs {}",
            got.len(),
            expected.len()
        );
        let names: Vec<String> = fs::read_dir(&case)
            .expect("ls")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".swap") && !n.ends_with(".deleted") && !n.ends_with(".replaced")));
        drop(log);
    }
}
