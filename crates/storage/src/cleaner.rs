//! The log cleaner: Kafka's `LogCleaner` for logs with `cleanup.policy=compact`.
//!
//! One round over a log: build a map key → latest offset over the *dirty* part (from the
//! cleaner checkpoint to the first uncleanable offset: the active segment, or the first segment
//! younger than `min.compaction.lag.ms`), then rewrite every non-active segment below the map's
//! end keeping, per key, only the record with the highest offset. Offsets never change (gaps
//! appear); a batch keeps its base and last offset so producer sequences stay valid.
//!
//! Replacement of a group of segments by one cleaned segment (as Kafka's `replaceSegments`):
//! 1. write `<base>.log.cleaned` and fsync it; write `<base>.replaced` (the end offset of
//!    the replaced range) atomically;
//! 2. under the append lock: rename `.cleaned` → `.swap`, fsync the dir (the commit point);
//!    rename the old segments' files to `*.deleted`; rename `.swap` → `.log`; fsync the dir;
//!    splice the segment list;
//! 3. write the new indexes, delete the `.deleted` files and the marker.
//!
//! [`finish_interrupted`] (run by `PartitionLog::open`) deletes `.cleaned` and `.deleted`
//! files and completes any `.swap`: a swap only exists once its data is durable, so the old
//! segments of its range are deleted and the swap renamed into place; the indexes of the
//! result are rebuilt by recovery.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::batch::Batch;
use crate::checkpoint;
use crate::config::LogConfig;
use crate::error::{IoContext, LogError};
use crate::fileio;
use crate::index::MAX_OFFSET_ENTRIES;
use crate::log::{ignore_poison, PartitionLog};
use crate::records::{self, RawRecord};
use crate::segment::{self, BatchMeta, Segment, CLEANED_SUFFIX, DELETED_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX};

/// Per-partition cleaner checkpoint: the first dirty offset (Kafka keeps one file per log dir).
pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
const REPLACED_SUFFIX: &str = "replaced";
/// Bytes of cleaned batches collected before they are written to the new segment.
const WRITE_CHUNK: usize = 1024 * 1024;
/// Kafka's `SkimpyOffsetMap` entry: a 16-byte key hash and an 8-byte offset.
const MAP_ENTRY_BYTES: usize = 24;
/// Kafka's `log.cleaner.io.buffer.load.factor`.
const MAP_LOAD_FACTOR: f64 = 0.9;

/// Broker-wide cleaner settings (Kafka's `log.cleaner.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.backoff.ms`: sleep between rounds when no log needed cleaning.
    pub backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the key → offset map of one round.
    pub dedupe_buffer_size: usize,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        Self { enable: true, backoff_ms: 15_000, dedupe_buffer_size: 128 * 1024 * 1024 }
    }
}

impl CleanerConfig {
    fn map_capacity(&self) -> usize {
        ((self.dedupe_buffer_size / MAP_ENTRY_BYTES) as f64 * MAP_LOAD_FACTOR).max(1.0) as usize
    }
}

/// What one cleaning round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// First dirty offset before the round and the offset the next round starts at.
    pub first_dirty_offset: i64,
    pub end_offset: i64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_written: u64,
    pub segments_before: usize,
    pub segments_after: usize,
    pub elapsed_ms: u64,
}

/// In-memory cleaner progress of one log.
#[derive(Debug, Default)]
pub(crate) struct CleanerState {
    /// `None` until read from the checkpoint file.
    first_dirty: Option<i64>,
    /// Earliest delete horizon of a tombstone or marker kept by the last round: once it has
    /// passed, the log is cleaned again even if it is not dirty.
    earliest_horizon: Option<i64>,
}

/// A key hashed to 128 bits (two SipHash passes with different prefixes), as Kafka's map
/// stores an MD5 of the key: memory per key is fixed whatever the key size.
fn key_hash(key: &[u8]) -> u128 {
    let mut a = DefaultHasher::new();
    key.hash(&mut a);
    let mut b = DefaultHasher::new();
    0x5bd1_e995u32.hash(&mut b);
    key.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

struct OffsetMap {
    map: HashMap<u128, i64>,
    capacity: usize,
    /// Last offset of the last batch fully mapped (-1: none).
    latest_offset: i64,
}

impl OffsetMap {
    fn get(&self, key: &[u8]) -> i64 {
        self.map.get(&key_hash(key)).copied().unwrap_or(-1)
    }
}

/// Kafka's `CleanedTransactionMetadata` for a log without an aborted-transaction index:
/// every transaction counts as committed. A commit marker can go once no batch of its
/// transaction is left before it; abort markers likewise.
#[derive(Default)]
struct TxnTracker {
    ongoing_committed: HashSet<i64>,
}

impl TxnTracker {
    /// Returns whether the batch may be discarded.
    fn on_batch(&mut self, batch: &Batch<'_>, records: &[RawRecord<'_>]) -> bool {
        if batch.is_control() {
            // Control record key: version i16, type i16 (0 abort, 1 commit).
            let kind =
                records.first().and_then(|r| r.key).and_then(|k| k.get(2..4)).map(|t| i16::from_be_bytes([t[0], t[1]]));
            match kind {
                Some(0) => true,
                Some(1) => !self.ongoing_committed.remove(&batch.producer_id()),
                _ => false,
            }
        } else {
            if batch.is_transactional() {
                self.ongoing_committed.insert(batch.producer_id());
            }
            false
        }
    }
}

/// Segments overlapping `[from, to)`.
fn overlapping(segs: &[Arc<Segment>], from: i64, to: i64) -> Vec<Arc<Segment>> {
    segs.iter()
        .enumerate()
        .filter(|(i, s)| {
            let end = segs.get(i + 1).map_or(s.next_offset(), |n| n.base_offset());
            s.base_offset() < to && end > from
        })
        .map(|(_, s)| Arc::clone(s))
        .collect()
}

fn marker_name(base: i64) -> String {
    format!("{base:020}.{REPLACED_SUFFIX}")
}

fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(LogError::Io(format!("deleting {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Crash recovery of an interrupted clean; see the module docs.
pub(crate) fn finish_interrupted(dir: &Path) -> Result<(), LogError> {
    let mut swaps = Vec::new();
    let mut markers = Vec::new();
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(&format!(".{CLEANED_SUFFIX}")) || name.ends_with(&format!(".{DELETED_SUFFIX}")) {
            tracing::info!(path = %entry.path().display(), "removing leftover of an interrupted clean");
            remove_if_exists(&entry.path())?;
        } else if let Some(stem) = name.strip_suffix(&format!(".{SWAP_SUFFIX}")) {
            if let Some(base) = segment::parse_log_file_name(stem) {
                swaps.push(base);
            }
        } else if name.ends_with(&format!(".{REPLACED_SUFFIX}")) {
            markers.push(entry.path());
        } else if let Some(base) = segment::parse_log_file_name(&name) {
            bases.push(base);
        }
    }
    for &swap in &swaps {
        let end = checkpoint::read(dir, &marker_name(swap))
            .ctx(|| format!("reading {}", marker_name(swap)))?
            .unwrap_or(swap + 1);
        for &base in bases.iter().filter(|&&b| b >= swap && b < end) {
            for suffix in [LOG_SUFFIX, segment::INDEX_SUFFIX, segment::TIME_INDEX_SUFFIX] {
                remove_if_exists(&dir.join(segment::file_name(base, suffix)))?;
            }
        }
        // The swap's own index files were never written; stale ones of the same base are gone.
        let log = dir.join(segment::file_name(swap, LOG_SUFFIX));
        let from = dir.join(format!("{}.{SWAP_SUFFIX}", segment::file_name(swap, LOG_SUFFIX)));
        fs::rename(&from, &log).ctx(|| format!("renaming {}", from.display()))?;
        tracing::info!(dir = %dir.display(), base = swap, end, "completed an interrupted segment swap");
    }
    if !swaps.is_empty() {
        fileio::sync_dir(dir).ctx(|| format!("fsync {}", dir.display()))?;
    }
    for marker in markers {
        remove_if_exists(&marker)?;
    }
    Ok(())
}

/// A group of adjacent segments cleaned into one: bounded by `segment.bytes`, the index size
/// and a 32-bit relative offset, as Kafka's `groupSegmentsBySize`.
fn group_segments(segs: Vec<Arc<Segment>>, config: &LogConfig, end_offset: i64) -> Vec<Vec<Arc<Segment>>> {
    let max_bytes = config.effective_segment_bytes();
    let interval = u64::from(config.index_interval_bytes.max(1));
    let mut groups: Vec<Vec<Arc<Segment>>> = Vec::new();
    let mut current: Vec<Arc<Segment>> = Vec::new();
    let (mut bytes, mut entries) = (0u64, 0u64);
    for (i, seg) in segs.iter().enumerate() {
        let last_offset = segs.get(i + 1).map_or(end_offset, |n| n.base_offset()) - 1;
        let fits = current.first().is_some_and(|first| {
            bytes + seg.size() <= max_bytes
                && entries + seg.size() / interval < MAX_OFFSET_ENTRIES as u64
                && last_offset - first.base_offset() <= i64::from(i32::MAX)
        });
        if !fits && !current.is_empty() {
            groups.push(std::mem::take(&mut current));
            (bytes, entries) = (0, 0);
        }
        bytes += seg.size();
        entries += seg.size() / interval + 1;
        current.push(Arc::clone(seg));
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// Everything the record filter needs for one round.
struct Round<'a> {
    map: &'a OffsetMap,
    /// Producer id → last offset it wrote (its last batch must survive).
    producer_last: HashMap<i64, i64>,
    /// The map's end: the last batch before it is kept even if empty (Kafka keeps it so the
    /// last offset of the round is not lost).
    end_offset: i64,
    now: i64,
    delete_retention_ms: i64,
    txns: TxnTracker,
    earliest_horizon: Option<i64>,
    stats: CleanStats,
}

impl Round<'_> {
    fn should_retain(&mut self, batch: &Batch<'_>, r: &RawRecord<'_>) -> bool {
        let offset = batch.base_offset() + i64::from(r.offset_delta);
        if offset > self.map.latest_offset {
            return true;
        }
        let Some(key) = r.key else {
            // Kafka counts it as an invalid message and drops it.
            return false;
        };
        let latest_for_key = offset >= self.map.get(key);
        let retain_deletes = records::delete_horizon(batch).is_none_or(|h| self.now < h);
        latest_for_key && (r.value.is_some() || retain_deletes)
    }

    /// Kafka's `checkBatchRetention` + `filterTo` for one batch: appends what survives.
    fn filter_batch(&mut self, batch: &Batch<'_>, out: &mut Vec<u8>) -> Result<(), LogError> {
        let section = records::records_section(batch)?;
        let recs = records::parse_records(&section, batch.record_count())?;
        self.stats.records_read += recs.len() as u64;
        let can_discard = self.txns.on_batch(batch, &recs);
        let horizon = records::delete_horizon(batch);
        let discard_records =
            if batch.is_control() { can_discard && horizon.is_some_and(|h| h <= self.now) } else { can_discard };
        let last_of_producer =
            batch.producer_id() >= 0 && self.producer_last.get(&batch.producer_id()) == Some(&batch.last_offset());
        let retain_empty = last_of_producer || batch.next_offset() == self.end_offset;
        if discard_records && !retain_empty {
            return Ok(());
        }
        let marker_for_empty_txn = can_discard && batch.is_control();
        let mut retained = Vec::with_capacity(recs.len());
        for r in &recs {
            let keep = !discard_records && (batch.is_control() || self.should_retain(batch, r));
            if keep {
                retained.push(*r);
            }
        }
        if retained.is_empty() {
            if retain_empty {
                // Header only: keeps the producer's last sequence and epoch (or the round's
                // last offset) without any record.
                out.extend_from_slice(&records::rebuild_batch(batch, &[], None)?);
            }
            return Ok(());
        }
        self.stats.records_written += retained.len() as u64;
        let tombstones = retained.iter().any(|r| r.value.is_none());
        let need_horizon = (tombstones || marker_for_empty_txn) && horizon.is_none();
        let new_horizon = if need_horizon { Some(self.now.saturating_add(self.delete_retention_ms)) } else { horizon };
        if tombstones || marker_for_empty_txn {
            if let Some(h) = new_horizon {
                self.earliest_horizon = Some(self.earliest_horizon.map_or(h, |e| e.min(h)));
            }
        }
        if retained.len() == recs.len() && !need_horizon {
            out.extend_from_slice(batch.as_bytes());
        } else {
            out.extend_from_slice(&records::rebuild_batch(batch, &retained, new_horizon)?);
        }
        Ok(())
    }
}

impl PartitionLog {
    /// Runs one cleaning round if the log is compacted and due: its dirty ratio exceeds
    /// `min.cleanable.dirty.ratio`, or a kept tombstone's delete horizon has passed.
    /// `None` when nothing was done.
    pub fn clean(&self, now_ms: i64, cleaner: &CleanerConfig) -> Result<Option<CleanStats>, LogError> {
        self.clean_round(now_ms, cleaner, false)
    }

    /// Like [`PartitionLog::clean`] but ignores the dirty ratio (Kafka's tests and tools force
    /// a clean the same way). Still a no-op for a log that is not compacted.
    pub fn clean_now(&self, now_ms: i64, cleaner: &CleanerConfig) -> Result<Option<CleanStats>, LogError> {
        self.clean_round(now_ms, cleaner, true)
    }

    /// The first offset the cleaner has not compacted yet (its checkpoint).
    pub fn first_dirty_offset(&self) -> Result<i64, LogError> {
        let mut state = ignore_poison(self.cleaner.lock());
        self.load_first_dirty(&mut state)
    }

    fn load_first_dirty(&self, state: &mut CleanerState) -> Result<i64, LogError> {
        let stored = match state.first_dirty {
            Some(o) => o,
            None => checkpoint::read(&self.dir, CLEANER_CHECKPOINT_FILE)
                .ctx(|| format!("reading cleaner checkpoint in {}", self.dir.display()))?
                .unwrap_or(-1),
        };
        // Out of range (truncation, DeleteRecords): start over from the log start, as Kafka.
        let active_base = ignore_poison(self.segments.read()).last().map_or(0, |s| s.base_offset());
        let log_start = self.log_start_offset();
        let first_dirty = if stored < log_start || stored > active_base { log_start } else { stored };
        state.first_dirty = Some(first_dirty);
        Ok(first_dirty)
    }

    fn clean_round(&self, now: i64, cleaner: &CleanerConfig, force: bool) -> Result<Option<CleanStats>, LogError> {
        let config = self.config();
        if !config.cleanup_compact {
            return Ok(None);
        }
        let started = Instant::now();
        let mut state = ignore_poison(self.cleaner.lock());
        let first_dirty = self.load_first_dirty(&mut state)?;
        let segs: Vec<Arc<Segment>> = ignore_poison(self.segments.read()).clone();
        let Some((active, sealed)) = segs.split_last() else {
            return Ok(None);
        };
        // The first uncleanable offset: the active segment, or the first dirty segment holding
        // records younger than min.compaction.lag.ms.
        let mut uncleanable = active.base_offset();
        // Nor above the high watermark (its last checkpoint, which trails the live value):
        // a replica may still truncate what is not committed, and a cleaned segment cannot
        // be truncated into. Rounded down to the segment holding it.
        if let Some(hw) = self.high_watermark_checkpoint() {
            let holding = sealed.iter().rev().find(|s| s.base_offset() <= hw).map_or(i64::MIN, |s| s.base_offset());
            if holding < uncleanable && sealed.iter().any(|s| s.base_offset() <= hw && s.next_offset() > hw) {
                uncleanable = holding;
            }
        }
        if config.min_compaction_lag_ms > 0 {
            let young = sealed.iter().find(|s| {
                s.next_offset() > first_dirty
                    && s.largest_timestamp() > now.saturating_sub(config.min_compaction_lag_ms)
            });
            if let Some(s) = young {
                uncleanable = uncleanable.min(s.base_offset().max(first_dirty));
            }
        }
        let clean_bytes: u64 = overlapping(sealed, i64::MIN, first_dirty).iter().map(|s| s.size()).sum();
        let dirty = if uncleanable > first_dirty { overlapping(sealed, first_dirty, uncleanable) } else { Vec::new() };
        let dirty_bytes: u64 = dirty.iter().map(|s| s.size()).sum();
        let ratio =
            if clean_bytes + dirty_bytes == 0 { 0.0 } else { dirty_bytes as f64 / (clean_bytes + dirty_bytes) as f64 };
        let horizon_due = state.earliest_horizon.is_some_and(|h| h <= now);
        let due = (dirty_bytes > 0 && ratio > config.min_cleanable_dirty_ratio) || horizon_due;
        if sealed.is_empty() || !(due || force) {
            return Ok(None);
        }

        // Key → latest offset over the dirty range, stopping early when the map is full.
        let mut map = OffsetMap { map: HashMap::new(), capacity: cleaner.map_capacity(), latest_offset: -1 };
        'segments: for seg in &dirty {
            let mut full = false;
            let walk = seg.for_each_batch(|b| {
                if full || b.last_offset() < first_dirty || b.base_offset() >= uncleanable {
                    return Ok(());
                }
                if !b.is_control() {
                    if map.map.len() + b.record_count().max(0) as usize > map.capacity && !map.map.is_empty() {
                        full = true;
                        return Ok(());
                    }
                    let section = records::records_section(b)?;
                    for r in records::parse_records(&section, b.record_count())? {
                        let offset = b.base_offset() + i64::from(r.offset_delta);
                        if let (Some(key), true) = (r.key, offset >= first_dirty) {
                            map.map.insert(key_hash(key), offset);
                        }
                    }
                }
                map.latest_offset = b.last_offset();
                Ok(())
            });
            walk?;
            if full {
                tracing::debug!(dir = %self.dir.display(), "cleaner offset map full; cleaning a partial range");
                break 'segments;
            }
        }
        let end_offset = if map.latest_offset >= 0 { map.latest_offset + 1 } else { first_dirty };
        // The clean part is already one record per key: with an empty map every record in it
        // is its key's latest, and only expired tombstones go.
        map.latest_offset = map.latest_offset.max(first_dirty - 1);
        let producer_last = self.lock_append()?.producers.last_offsets();
        let mut round = Round {
            map: &map,
            producer_last,
            end_offset,
            now,
            delete_retention_ms: config.delete_retention_ms,
            txns: TxnTracker::default(),
            earliest_horizon: None,
            stats: CleanStats {
                first_dirty_offset: first_dirty,
                end_offset,
                segments_before: segs.len(),
                ..CleanStats::default()
            },
        };
        // Every segment below the map's end (Kafka's `logSegments(0, endOffset)`); without
        // dirty data the round only drops expired tombstones from the clean part.
        let upper = end_offset;
        let to_clean = overlapping(sealed, i64::MIN, upper);
        for group in group_segments(to_clean, &config, end_offset) {
            self.clean_group(&group, &mut round, &config)?;
        }
        checkpoint::write(&self.dir, CLEANER_CHECKPOINT_FILE, end_offset)
            .ctx(|| format!("writing cleaner checkpoint in {}", self.dir.display()))?;
        state.first_dirty = Some(end_offset);
        state.earliest_horizon = round.earliest_horizon;
        let mut stats = round.stats;
        stats.segments_after = self.segment_count();
        stats.elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            dir = %self.dir.display(),
            first_dirty,
            end_offset,
            read_bytes = stats.bytes_read,
            written_bytes = stats.bytes_written,
            records_read = stats.records_read,
            records_written = stats.records_written,
            segments_before = stats.segments_before,
            segments_after = stats.segments_after,
            elapsed_ms = stats.elapsed_ms,
            "cleaned log"
        );
        Ok(Some(stats))
    }

    /// Cleans `group` into one new segment and swaps it in.
    fn clean_group(&self, group: &[Arc<Segment>], round: &mut Round<'_>, config: &LogConfig) -> Result<(), LogError> {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return Ok(());
        };
        let base = first.base_offset();
        let (cleaned, cleaned_path) = Segment::create_cleaned(&self.dir, base, round.now)?;
        let result = self.write_cleaned(group, &cleaned, round, config);
        let result = result.and_then(|()| {
            cleaned.on_roll_in_memory();
            cleaned.sync_log()?;
            if let Some(ms) = last.modified_ms() {
                cleaned.set_modified_ms(ms)?;
            }
            self.swap_in(group, cleaned, &cleaned_path)
        });
        if result.is_err() {
            let _ = fs::remove_file(&cleaned_path);
            let swap = self.dir.join(format!("{}.{SWAP_SUFFIX}", segment::file_name(base, LOG_SUFFIX)));
            // A swap left behind by an I/O error is finished by the next open, which needs
            // its marker; without a swap the sources are intact and the marker is junk.
            if !swap.exists() {
                let _ = fs::remove_file(self.dir.join(marker_name(base)));
            }
        }
        result
    }

    fn write_cleaned(
        &self,
        group: &[Arc<Segment>],
        cleaned: &Segment,
        round: &mut Round<'_>,
        config: &LogConfig,
    ) -> Result<(), LogError> {
        let mut out: Vec<u8> = Vec::with_capacity(WRITE_CHUNK + 64 * 1024);
        for seg in group {
            round.stats.bytes_read += seg.size();
            seg.for_each_batch(|b| {
                round.filter_batch(b, &mut out)?;
                if out.len() >= WRITE_CHUNK {
                    write_out(cleaned, &mut out, config, &mut round.stats)?;
                }
                Ok(())
            })?;
        }
        write_out(cleaned, &mut out, config, &mut round.stats)
    }

    /// Replaces `group` by `cleaned` (see the module docs for the order of renames).
    fn swap_in(&self, group: &[Arc<Segment>], cleaned: Segment, cleaned_path: &Path) -> Result<(), LogError> {
        let base = cleaned.base_offset();
        let last = group.last().map_or(base, |s| s.base_offset());
        let _st = self.lock_append()?;
        let mut segs = ignore_poison(self.segments.write());
        let Some(at) = segs.iter().position(|s| Arc::ptr_eq(s, &group[0])) else {
            return Err(LogError::Io(
                format!("cleaning {}", self.dir.display()),
                std::io::Error::other("segments changed during cleaning (retention or truncation); clean aborted"),
            ));
        };
        let intact = group.iter().enumerate().all(|(i, g)| segs.get(at + i).is_some_and(|s| Arc::ptr_eq(s, g)))
            && at + group.len() < segs.len();
        if !intact {
            return Err(LogError::Io(
                format!("cleaning {}", self.dir.display()),
                std::io::Error::other("segments changed during cleaning; clean aborted"),
            ));
        }
        // The replaced range ends where the segment after the group starts.
        let range_end = segs[at + group.len()].base_offset();
        checkpoint::write(&self.dir, &marker_name(base), range_end)
            .ctx(|| format!("writing swap marker in {}", self.dir.display()))?;
        let swap_path = self.dir.join(format!("{}.{SWAP_SUFFIX}", segment::file_name(base, LOG_SUFFIX)));
        fs::rename(cleaned_path, &swap_path).ctx(|| format!("renaming {}", cleaned_path.display()))?;
        fileio::sync_dir(&self.dir).ctx(|| format!("fsync {}", self.dir.display()))?;
        // Past the commit point: recovery would finish the swap, so do the same here.
        let mut doomed = Vec::new();
        for old in group {
            old.retire();
            for path in std::iter::once(old.log_path()).chain(old.index_paths()) {
                let to = path.with_file_name(format!(
                    "{}.{DELETED_SUFFIX}",
                    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                ));
                match fs::rename(path, &to) {
                    Ok(()) => doomed.push(to),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(LogError::Io(format!("renaming {}", path.display()), e)),
                }
            }
        }
        fs::rename(&swap_path, cleaned.log_path()).ctx(|| format!("renaming {}", swap_path.display()))?;
        fileio::sync_dir(&self.dir).ctx(|| format!("fsync {}", self.dir.display()))?;
        let cleaned = Arc::new(cleaned);
        segs.splice(at..at + group.len(), [Arc::clone(&cleaned)]);
        drop(segs);
        for path in doomed {
            remove_if_exists(&path)?;
        }
        cleaned.seal()?;
        cleaned.flush(true)?;
        remove_if_exists(&self.dir.join(marker_name(base)))?;
        tracing::debug!(dir = %self.dir.display(), base, last_replaced = last, range_end, "swapped in cleaned segment");
        Ok(())
    }
}

fn write_out(cleaned: &Segment, out: &mut Vec<u8>, config: &LogConfig, stats: &mut CleanStats) -> Result<(), LogError> {
    if out.is_empty() {
        return Ok(());
    }
    let mut metas = Vec::new();
    for item in crate::batch::BatchIter::headers_only(out) {
        let (_, b) = item?;
        metas.push(BatchMeta::of(&b));
    }
    cleaned.append(out, &metas, config.index_interval_bytes)?;
    stats.bytes_written += out.len() as u64;
    out.clear();
    Ok(())
}
