//! End-to-end tests of `PartitionLog` and `LogManager` against real files.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use strom_storage::batch::testing::{build_batch, BatchSpec};
use strom_storage::batch::{Batch, BatchIter};
use strom_storage::{LogConfig, LogError, LogManager, PartitionLog};

const T0: i64 = 1_700_000_000_000;

fn small_config() -> LogConfig {
    LogConfig { segment_bytes: 2048, index_interval_bytes: 256, ..LogConfig::default() }
}

/// A batch of `n` records of `value_len` bytes, timestamps `ts, ts+1, ...`.
fn records(n: usize, value_len: usize, ts: i64) -> BytesMut {
    BytesMut::from(
        &build_batch(&BatchSpec { base_timestamp: ts, values: vec![vec![b'x'; value_len]; n], ..BatchSpec::default() })
            [..],
    )
}

fn idempotent(producer_id: i64, epoch: i16, seq: i32, n: usize) -> BytesMut {
    BytesMut::from(
        &build_batch(&BatchSpec {
            producer_id,
            producer_epoch: epoch,
            base_sequence: seq,
            values: vec![b"v".to_vec(); n],
            ..BatchSpec::default()
        })[..],
    )
}

fn batches(bytes: &Bytes) -> Vec<(i64, i64)> {
    BatchIter::new(bytes)
        .map(|r| {
            let (_, b) = r.expect("stored batches are valid");
            (b.base_offset(), b.last_offset())
        })
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Appends `count` batches of 3 records each; returns the expected (base, last) list.
fn fill(log: &PartitionLog, count: usize, epoch: i32) -> Vec<(i64, i64)> {
    (0..count)
        .map(|i| {
            let info = log.append(records(3, 40, T0 + 10 * i as i64), epoch).expect("append");
            assert_eq!(info.record_count, 3);
            (info.first_offset, info.last_offset)
        })
        .collect()
}

/// Reads the whole log batch by batch.
fn read_all(log: &PartitionLog) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let info = log.read(offset, 1, None).expect("read");
        let got = batches(&info.records);
        assert_eq!(got.len(), 1, "max_bytes=1 still returns exactly one whole batch");
        offset = got[0].1 + 1;
        out.extend(got);
    }
    out
}

#[test]
fn append_and_read_round_trip_across_segment_rolls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), small_config()).expect("open");
    let expected = fill(&log, 60, 0);
    assert_eq!(expected[0], (0, 2));
    assert_eq!(log.log_end_offset(), 180);
    assert!(log.segment_count() > 3, "small segments must roll");
    assert_eq!(read_all(&log), expected);

    // Every offset, including ones in the middle of a batch, finds its batch.
    for offset in 0..180 {
        let info = log.read(offset, 10_000, None).expect("read");
        let got = batches(&info.records);
        assert!(got[0].0 <= offset && offset <= got[0].1, "offset {offset}: {got:?}");
    }
    // Stored bytes are exactly the producer's, except offset and epoch.
    let info = log.read(3, 1, None).expect("read");
    let mut original = records(3, 40, T0 + 10).to_vec();
    strom_storage::batch::patch_header(&mut original, 3, 0);
    assert_eq!(&info.records[..], &original[..]);

    log.close().expect("close");
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert_eq!(log.log_end_offset(), 180);
    assert_eq!(read_all(&log), expected);
    let next = log.append(records(1, 10, T0), 0).expect("append after reopen");
    assert_eq!(next.first_offset, 180);
}

#[test]
fn read_respects_max_bytes_and_max_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig { index_interval_bytes: 128, ..LogConfig::default() };
    let log = PartitionLog::open(dir.path(), config).expect("open");
    fill(&log, 10, 0);
    let one = log.read(0, 1, None).expect("read").records.len();
    let three = log.read(0, 3 * one + one / 2, None).expect("read");
    assert_eq!(batches(&three.records).len(), 3, "only whole batches");
    assert_eq!(three.log_end_offset, 30);

    // High watermark at 7: batches [0..2] and [3..5] are visible, [6..8] is not.
    let hw = log.read(0, 1 << 20, Some(7)).expect("read");
    assert_eq!(batches(&hw.records), vec![(0, 2), (3, 5)]);
    assert!(log.read(7, 1 << 20, Some(7)).expect("read").records.is_empty());
    assert!(log.read(30, 1 << 20, None).expect("read at end").records.is_empty());
    assert!(matches!(log.read(31, 100, None), Err(LogError::OffsetOutOfRange { offset: 31, .. })));
    assert!(matches!(log.read(-1, 100, None), Err(LogError::OffsetOutOfRange { .. })));
}

#[test]
fn index_is_persisted_and_rebuilt_when_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), small_config()).expect("open");
    let expected = fill(&log, 40, 0);
    log.close().expect("close");
    drop(log);
    let index_files: Vec<PathBuf> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "index"))
        .collect();
    assert!(!index_files.is_empty());
    assert!(
        index_files.iter().any(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0) > 0),
        "sparse index entries were written"
    );
    // One index garbled (wrong size), the others missing: all are rebuilt from the segments.
    fs::write(&index_files[0], b"garbage").expect("garble index");
    for p in &index_files[1..] {
        fs::remove_file(p).expect("remove index");
    }
    let log = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert_eq!(read_all(&log), expected);
    for offset in [0, 50, 77, 119] {
        let got = batches(&log.read(offset, 1, None).expect("read").records);
        assert!(got[0].0 <= offset && offset <= got[0].1);
    }
}

#[test]
fn offset_for_timestamp_uses_time_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), small_config()).expect("open");
    // Batch i holds records with timestamps T0+10i, +1, +2 at offsets 3i..3i+2.
    fill(&log, 50, 0);
    assert_eq!(log.offset_for_timestamp(0).expect("lookup"), Some((0, T0)));
    assert_eq!(log.offset_for_timestamp(T0 + 101).expect("lookup"), Some((31, T0 + 101)));
    // Between batches: the next batch's first record.
    assert_eq!(log.offset_for_timestamp(T0 + 105).expect("lookup"), Some((33, T0 + 110)));
    assert_eq!(log.offset_for_timestamp(T0 + 492).expect("lookup"), Some((149, T0 + 492)));
    assert_eq!(log.offset_for_timestamp(T0 + 493).expect("lookup"), None);
}

#[test]
fn retention_by_time_and_size_deletes_old_segments_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig { retention_ms: 1000, ..small_config() };
    let log = PartitionLog::open(dir.path(), config.clone()).expect("open");
    fill(&log, 40, 0); // timestamps T0 .. T0+390
    let segments = log.segment_count();
    assert!(segments > 2);
    // Nothing is older than 1 s at T0+1000.
    assert_eq!(log.enforce_retention(T0 + 1000).expect("retention"), 0);
    // Everything is old much later, but the active segment stays.
    let deleted = log.enforce_retention(T0 + 1_000_000).expect("retention");
    assert_eq!(deleted, segments - 1);
    assert_eq!(log.segment_count(), 1);
    assert!(log.log_start_offset() > 0);
    assert_eq!(log.log_end_offset(), 120);
    assert!(matches!(log.read(0, 100, None), Err(LogError::OffsetOutOfRange { .. })));
    assert_eq!(segment_files(dir.path()).len(), 1);
    let start = log.log_start_offset();
    drop(log);
    let log = PartitionLog::open(dir.path(), config).expect("reopen");
    assert_eq!(log.log_start_offset(), start);

    // By size.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig { retention_bytes: 4096, ..small_config() };
    let log = PartitionLog::open(dir.path(), config).expect("open");
    fill(&log, 60, 0);
    let before = log.size_bytes();
    assert!(before > 8000);
    let deleted = log.enforce_retention(T0).expect("retention");
    assert!(deleted > 0);
    assert!(log.size_bytes() <= 4096 + 2048, "size {}", log.size_bytes());
    assert!(log.size_bytes() > 4096 - 2048);
    let first = read_all(&log);
    assert_eq!(first.last().map(|b| b.1), Some(179));
}

#[test]
fn delete_records_before_advances_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), small_config()).expect("open");
    fill(&log, 40, 0);
    let segments = log.segment_count();
    assert_eq!(log.delete_records_before(100).expect("delete"), 100);
    assert!(log.segment_count() < segments);
    assert!(matches!(log.read(99, 10, None), Err(LogError::OffsetOutOfRange { .. })));
    let got = batches(&log.read(100, 1, None).expect("read").records);
    assert_eq!(got, vec![(99, 101)], "the batch holding 100 is returned whole");
    assert!(log.delete_records_before(500).is_err());
}

fn truncate_file(path: &Path, len: u64) {
    OpenOptions::new().write(true).open(path).expect("open segment").set_len(len).expect("truncate");
}

#[test]
fn recovery_truncates_a_torn_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    let expected = fill(&log, 10, 0);
    let batch_len = log.size_bytes() / 10;
    drop(log); // crash: no close, no checkpoint
    let files = segment_files(dir.path());
    let last = files.last().expect("a segment");
    let len = fs::metadata(last).expect("meta").len();
    truncate_file(last, len - batch_len / 2);

    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("recover");
    assert_eq!(log.log_end_offset(), 27);
    assert_eq!(read_all(&log), expected[..9].to_vec());
    let info = log.append(records(2, 5, T0), 0).expect("append after recovery");
    assert_eq!(info.first_offset, 27);
    assert_eq!(read_all(&log).len(), 10);
}

#[test]
fn recovery_truncates_at_a_flipped_byte_and_drops_later_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), small_config()).expect("open");
    let expected = fill(&log, 40, 0);
    drop(log);
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    // Corrupt the record bytes of the second batch of the second segment.
    let victim = &files[1];
    let mut bytes = fs::read(victim).expect("read");
    let first_len = Batch::parse(&bytes, 0).expect("batch").size();
    let second = Batch::parse(&bytes[first_len..], first_len).expect("batch");
    let (lost_from, second_len) = (second.base_offset(), second.size());
    bytes[first_len + second_len - 5] ^= 0x55;
    fs::write(victim, &bytes).expect("write");

    let log = PartitionLog::open(dir.path(), small_config()).expect("recover");
    assert_eq!(log.log_end_offset(), lost_from);
    let kept: Vec<_> = expected.into_iter().filter(|b| b.1 < lost_from).collect();
    assert_eq!(read_all(&log), kept);
    assert_eq!(segment_files(dir.path()).len(), 2, "later segments dropped");
}

#[test]
fn flushed_data_survives_a_corrupt_unflushed_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    let flushed = fill(&log, 5, 0);
    log.flush().expect("flush");
    let checkpoint =
        fs::read_to_string(dir.path().join("recovery-point-offset-checkpoint")).expect("checkpoint written");
    assert_eq!(checkpoint, "0\n15\n");
    fill(&log, 3, 0);
    drop(log);
    let file = segment_files(dir.path()).pop().expect("segment");
    let len = fs::metadata(&file).expect("meta").len();
    // Garbage where the unflushed batches were.
    let mut bytes = fs::read(&file).expect("read");
    let flushed_len = len as usize * 5 / 8;
    for b in &mut bytes[flushed_len + 1..] {
        *b = 0xAB;
    }
    fs::write(&file, &bytes).expect("write");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("recover");
    assert_eq!(read_all(&log), flushed);
    assert_eq!(log.log_end_offset(), 15);
}

#[test]
fn flush_interval_messages_moves_the_recovery_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig { flush_interval_messages: 6, ..LogConfig::default() };
    let log = PartitionLog::open(dir.path(), config).expect("open");
    fill(&log, 1, 0);
    assert!(!dir.path().join("recovery-point-offset-checkpoint").exists());
    fill(&log, 1, 0);
    let checkpoint =
        fs::read_to_string(dir.path().join("recovery-point-offset-checkpoint")).expect("flushed after 6 messages");
    assert_eq!(checkpoint, "0\n6\n");
}

#[test]
fn time_based_roll_and_flush_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig { segment_ms: 60_000, flush_interval_ms: 1000, ..LogConfig::default() };
    let log = PartitionLog::open(dir.path(), config).expect("open");
    fill(&log, 2, 0);
    let now = strom_storage::now_ms();
    log.maybe_roll_and_flush(now).expect("tick");
    assert_eq!(log.segment_count(), 1);
    log.maybe_roll_and_flush(now + 120_000).expect("tick");
    assert_eq!(log.segment_count(), 2, "rolled by age");
    let checkpoint = fs::read_to_string(dir.path().join("recovery-point-offset-checkpoint")).expect("flushed by time");
    assert_eq!(checkpoint, "0\n6\n");
    // An empty active segment never rolls.
    log.maybe_roll_and_flush(now + 1_000_000).expect("tick");
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn rejects_bad_batches_without_touching_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig { max_message_bytes: 500, ..LogConfig::default() };
    let log = PartitionLog::open(dir.path(), config).expect("open");
    fill(&log, 1, 0);
    let mut bad = records(2, 10, T0);
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert!(matches!(log.append(bad, 0), Err(LogError::CorruptRecord(_))));
    assert!(matches!(log.append(records(20, 100, T0), 0), Err(LogError::MessageTooLarge { max: 500, .. })));
    let mut torn = records(2, 10, T0);
    torn.truncate(torn.len() - 4);
    assert!(log.append(torn, 0).is_err());
    let mut magic1 = records(1, 10, T0);
    magic1[16] = 1;
    assert!(matches!(log.append(magic1, 0), Err(LogError::InvalidRecord(_))));
    assert!(log.append(BytesMut::new(), 0).is_err());
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(read_all(&log).len(), 1);
}

#[test]
fn idempotent_producer_duplicates_and_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    let a = log.append(idempotent(7, 0, 0, 2), 0).expect("seq 0");
    assert_eq!((a.first_offset, a.last_offset, a.duplicate), (0, 1, false));
    let b = log.append(idempotent(7, 0, 2, 3), 0).expect("seq 2");
    assert_eq!((b.first_offset, b.last_offset), (2, 4));
    // A retry of the first batch: original offsets, nothing written.
    let dup = log.append(idempotent(7, 0, 0, 2), 0).expect("duplicate");
    assert!(dup.duplicate);
    assert_eq!((dup.first_offset, dup.last_offset), (0, 1));
    assert_eq!(log.log_end_offset(), 5);
    assert!(matches!(
        log.append(idempotent(7, 0, 9, 1), 0),
        Err(LogError::OutOfOrderSequence { expected: 5, found: 9, .. })
    ));
    assert!(matches!(log.append(idempotent(7, 1, 3, 1), 0), Err(LogError::OutOfOrderSequence { expected: 0, .. })));
    // Other producers and unknown producers with any sequence are fine.
    assert!(log.append(idempotent(8, 0, 42, 1), 0).is_ok());
    assert_eq!(log.log_end_offset(), 6);

    // State is rebuilt from the log after a crash.
    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen");
    let dup = log.append(idempotent(7, 0, 2, 3), 0).expect("duplicate after restart");
    assert!(dup.duplicate);
    assert_eq!((dup.first_offset, dup.last_offset), (2, 4));
    log.append(idempotent(7, 1, 0, 1), 0).expect("new epoch at seq 0");
    assert!(matches!(
        log.append(idempotent(7, 0, 5, 1), 0),
        Err(LogError::InvalidProducerEpoch { current: 1, found: 0, .. })
    ));
}

#[test]
fn leader_epochs_follow_appends_and_truncation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), small_config()).expect("open");
    assert_eq!(log.latest_epoch(), None);
    fill(&log, 10, 0); // 0..30 in epoch 0
    fill(&log, 10, 2); // 30..60 in epoch 2
    fill(&log, 10, 5); // 60..90 in epoch 5
    assert_eq!(log.latest_epoch(), Some(5));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 30)));
    assert_eq!(log.end_offset_for_epoch(1), Some((0, 30)));
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 60)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 90)));
    assert_eq!(log.end_offset_for_epoch(6), None);
    let stored = batches(&log.read(45, 1, None).expect("read").records);
    assert_eq!(stored, vec![(45, 47)]);
    let raw = log.read(45, 1, None).expect("read").records;
    assert_eq!(Batch::parse(&raw, 0).expect("batch").partition_leader_epoch(), 2);

    // Follower truncation to the divergence point (mid-batch truncates the whole batch).
    log.truncate_to(50).expect("truncate");
    assert_eq!(log.log_end_offset(), 48);
    assert_eq!(log.latest_epoch(), Some(2));
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 48)));
    assert_eq!(read_all(&log).last(), Some(&(45, 47)));
    log.append(records(1, 5, T0), 7).expect("append in new epoch");
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 48)));
    assert_eq!(log.end_offset_for_epoch(7), Some((7, 49)));

    drop(log);
    let log = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 48)));
    assert_eq!(log.latest_epoch(), Some(7));
    assert_eq!(log.log_end_offset(), 49);

    // Truncating below the first segment starts over at that offset.
    log.truncate_to(0).expect("truncate fully");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn follower_appends_keep_leader_offsets() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let leader = PartitionLog::open(leader_dir.path(), small_config()).expect("open");
    fill(&leader, 5, 3);
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let follower = PartitionLog::open(follower_dir.path(), small_config()).expect("open");
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let chunk = leader.read(offset, 400, None).expect("read").records;
        let info = follower.append_replicated(chunk).expect("replicate");
        offset = info.last_offset + 1;
    }
    assert_eq!(follower.log_end_offset(), 15);
    assert_eq!(read_all(&follower), read_all(&leader));
    assert_eq!(follower.end_offset_for_epoch(3), Some((3, 15)));
    let again = leader.read(0, 100, None).expect("read").records;
    assert!(matches!(
        follower.append_replicated(again),
        Err(LogError::UnexpectedAppendOffset { expected: 15, found: 0 })
    ));
}

#[test]
fn a_follower_behind_the_leaders_log_start_starts_over_there() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let leader = PartitionLog::open(leader_dir.path(), small_config()).expect("open");
    fill(&leader, 20, 3); // 0..60
    leader.delete_records_before(30).expect("retention on the leader");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let follower = PartitionLog::open(follower_dir.path(), small_config()).expect("open");
    fill(&follower, 3, 1); // 0..9, all below the leader's start
    follower.truncate_fully_and_start_at(leader.log_start_offset()).expect("start over");
    assert_eq!((follower.log_start_offset(), follower.log_end_offset()), (30, 30));
    assert_eq!(follower.latest_epoch(), None, "the old epochs describe nothing left");
    let mut offset = 30;
    while offset < leader.log_end_offset() {
        let chunk = leader.read(offset, 400, None).expect("read").records;
        offset = follower.append_replicated(chunk).expect("replicate").last_offset + 1;
    }
    assert_eq!(read_all(&follower), read_all(&leader));
    drop(follower);
    let follower = PartitionLog::open(follower_dir.path(), small_config()).expect("reopen");
    assert_eq!((follower.log_start_offset(), follower.log_end_offset()), (30, 60));
    assert_eq!(follower.end_offset_for_epoch(3), Some((3, 60)));
}

#[test]
fn concurrent_readers_see_whole_batches_while_appending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = std::sync::Arc::new(PartitionLog::open(dir.path(), small_config()).expect("open"));
    let writer = {
        let log = std::sync::Arc::clone(&log);
        std::thread::spawn(move || fill(&log, 200, 0))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut offset = 0;
    while offset < 600 {
        assert!(std::time::Instant::now() < deadline, "writer stalled at offset {offset}");
        let info = log.read(offset, 700, None).expect("read");
        for (base, last) in batches(&info.records) {
            assert_eq!(base, offset, "batches are contiguous and whole");
            offset = last + 1;
        }
        if info.records.is_empty() {
            std::thread::yield_now();
        }
    }
    let expected = writer.join().expect("writer");
    assert_eq!(expected.len(), 200);
}

#[test]
fn log_manager_loads_creates_and_removes() {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = vec![root.path().join("a"), root.path().join("b")];
    let manager = LogManager::open(&dirs, LogConfig::default()).expect("open");
    let t0 = manager.get_or_create("orders-eu", 0, LogConfig::default()).expect("create");
    let t1 = manager.get_or_create("orders-eu", 1, LogConfig::default()).expect("create");
    assert_ne!(t0.dir().parent(), t1.dir().parent(), "spread over log dirs");
    t0.append(records(2, 10, T0), 0).expect("append");
    assert!(manager.get_or_create("../escape", 0, LogConfig::default()).is_err());
    assert!(manager.get("orders-eu", 2).is_none());
    // tick applies each log's own retention.
    let short =
        manager.get_or_create("short-lived", 0, LogConfig { retention_ms: 1000, ..small_config() }).expect("create");
    fill(&short, 40, 0);
    assert!(short.segment_count() > 2);
    manager.tick(T0 + 1_000_000);
    assert_eq!(short.segment_count(), 1);
    assert_eq!(t0.segment_count(), 1);
    assert_eq!(t0.log_end_offset(), 2);
    manager.remove("short-lived", 0).expect("remove");
    drop(short);
    manager.shutdown().expect("shutdown");
    drop((t0, t1, manager));

    let manager = LogManager::open(&dirs, LogConfig::default()).expect("reopen");
    assert_eq!(manager.all().len(), 2);
    let t0 = manager.get("orders-eu", 0).expect("loaded");
    assert_eq!(t0.log_end_offset(), 2);
    let path = t0.dir().to_path_buf();
    manager.remove("orders-eu", 0).expect("remove");
    assert!(!path.exists());
    assert!(matches!(t0.append(records(1, 1, T0), 0), Err(LogError::Deleted(_))));
    assert!(manager.get("orders-eu", 0).is_none());
}

#[test]
fn logs_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PartitionLog>();
    assert_send_sync::<LogManager>();
}

#[test]
fn producer_snapshot_from_clean_shutdown_is_used_and_invalidated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot = dir.path().join("producer-state-snapshot");
    let log = PartitionLog::open(dir.path(), small_config()).expect("open");
    fill(&log, 30, 0); // several segments of non-idempotent data
    log.append(idempotent(7, 0, 0, 2), 0).expect("seq 0");
    log.close().expect("close");
    drop(log);
    let text = fs::read_to_string(&snapshot).expect("snapshot written on close");
    assert!(text.starts_with("0\n92\n1\n7 0 1\n"), "{text}");

    let log = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert!(log.append(idempotent(7, 0, 0, 2), 0).expect("retry").duplicate);
    let b = log.append(idempotent(7, 0, 2, 3), 0).expect("seq 2");
    assert_eq!((b.first_offset, b.last_offset), (92, 94));
    drop(log); // crash: the snapshot is now older than the log end

    let log = PartitionLog::open(dir.path(), small_config()).expect("recover");
    let dup = log.append(idempotent(7, 0, 2, 3), 0).expect("retry after crash");
    assert!(dup.duplicate);
    assert_eq!((dup.first_offset, dup.last_offset), (92, 94));
    assert!(matches!(log.append(idempotent(7, 0, 9, 1), 0), Err(LogError::OutOfOrderSequence { expected: 5, .. })));

    // Truncation below the snapshot drops it; state comes from the log again.
    log.truncate_to(92).expect("truncate");
    assert!(!snapshot.exists());
    assert_eq!(log.log_end_offset(), 92);
    log.append(idempotent(7, 0, 2, 1), 0).expect("seq 2 again after truncation");
    log.close().expect("close");
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert!(matches!(log.append(idempotent(7, 0, 4, 1), 0), Err(LogError::OutOfOrderSequence { expected: 3, .. })));
}

#[test]
fn high_watermark_checkpoint_survives_restart_clamped_to_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    assert_eq!(log.high_watermark_checkpoint(), None);
    fill(&log, 4, 0);
    log.checkpoint_high_watermark(9).expect("checkpoint");
    assert_eq!(log.high_watermark_checkpoint(), Some(9));
    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen");
    assert_eq!(log.high_watermark_checkpoint(), Some(9));
    log.truncate_to(3).expect("truncate");
    assert_eq!(log.high_watermark_checkpoint(), Some(3), "never above the log end");
}

#[test]
fn reads_stay_consistent_under_concurrent_appends_rolls_and_retention() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig { segment_bytes: 4096, retention_bytes: 16 * 1024, ..small_config() };
    let log = Arc::new(PartitionLog::open(dir.path(), config).expect("open"));
    let done = Arc::new(AtomicBool::new(false));
    let cleaner = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut deleted = 0;
            while !done.load(Ordering::Acquire) {
                deleted += log.enforce_retention(T0).expect("retention");
                std::thread::yield_now();
            }
            deleted
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (log, done) = (Arc::clone(&log), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut batches_seen = 0u64;
                while !done.load(Ordering::Acquire) {
                    let mut offset = log.log_start_offset();
                    while offset < log.log_end_offset() {
                        match log.read(offset, 3000, None) {
                            Ok(info) => {
                                assert!(!info.records.is_empty(), "no progress at {offset}");
                                for item in BatchIter::new(&info.records) {
                                    let (_, b) = item.expect("a whole, valid batch");
                                    assert!(b.last_offset() >= offset);
                                    offset = b.last_offset() + 1;
                                    batches_seen += 1;
                                }
                            }
                            // Retention moved the start past us: continue from the new start.
                            Err(LogError::OffsetOutOfRange { log_start_offset, .. }) if offset < log_start_offset => {
                                offset = log_start_offset
                            }
                            Err(e) => panic!("read at {offset}: {e}"),
                        }
                    }
                }
                batches_seen
            })
        })
        .collect();
    fill(&log, 1500, 0);
    done.store(true, Ordering::Release);
    let deleted = cleaner.join().expect("cleaner");
    for r in readers {
        assert!(r.join().expect("reader") > 0);
    }
    assert!(deleted > 0);
    assert_eq!(log.log_end_offset(), 4500);
    // The cleaner may have stopped just before the last appends.
    log.enforce_retention(T0).expect("retention");
    assert!(log.size_bytes() <= 16 * 1024 + 4096, "size {}", log.size_bytes());
}
