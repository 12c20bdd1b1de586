//! `PartitionLog`: the segments of one partition, appends (leader and follower), reads,
//! retention, flushing, truncation and crash recovery.
//!
//! Locking: one mutex (`append`) serialises everything that changes the log (append, roll,
//! truncation, retention); it is held only for the write itself, never for an fsync of old
//! data. Readers take the segment-list lock briefly to pick a segment and then read the file
//! with positional reads bounded by that segment's published size.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};

use crate::batch::{self, Batch, BatchIter};
use crate::checkpoint::{self, HIGH_WATERMARK_FILE, LOG_START_FILE, RECOVERY_POINT_FILE};
use crate::cleaner::{self, CleanerState};
use crate::config::LogConfig;
use crate::epoch::LeaderEpochCache;
use crate::error::{IoContext, LogError};
use crate::fileio;
use crate::producer::{self, ProducerStateManager, SequenceCheck, Undo};
use crate::records;
use crate::segment::{self, BatchMeta, Segment};

/// Result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended (for a duplicate: of the original batch).
    pub first_offset: i64,
    pub last_offset: i64,
    /// Largest `maxTimestamp` among the batches.
    pub max_timestamp: i64,
    pub record_count: i64,
    /// The batch was a producer retry already in the log; nothing was written.
    pub duplicate: bool,
    pub log_start_offset: i64,
}

/// Result of a read: whole batches exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadInfo {
    pub records: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// State owned by whoever holds the append lock.
pub(crate) struct AppendState {
    pub(crate) producers: ProducerStateManager,
    /// Every offset below this is fsynced.
    recovery_point: i64,
    unflushed_messages: u64,
    last_flush_ms: i64,
}

/// The log of one partition. `Send + Sync`; every method takes `&self`.
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    config: RwLock<LogConfig>,
    pub(crate) segments: RwLock<Vec<Arc<Segment>>>,
    log_start: AtomicI64,
    log_end: AtomicI64,
    pub(crate) append: Mutex<AppendState>,
    /// Cleaner progress; its lock also keeps two cleanings of this log from overlapping.
    pub(crate) cleaner: Mutex<CleanerState>,
    epochs: Mutex<LeaderEpochCache>,
    /// Last high watermark written to disk (-1: none); the lock also orders its writes.
    high_watermark: Mutex<i64>,
    deleted: AtomicBool,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset())
            .field("log_end_offset", &self.log_end_offset())
            .finish()
    }
}

fn remove_stray(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove stray file");
    }
}

pub(crate) fn ignore_poison<T>(r: std::sync::LockResult<T>) -> T {
    // A panic in another thread does not leave these structures torn in a way that is worse
    // than refusing all further service, so keep going.
    r.unwrap_or_else(|e| e.into_inner())
}

impl PartitionLog {
    /// Opens (recovering if needed) or creates the log in `dir`.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        fs::create_dir_all(dir).ctx(|| format!("creating log dir {}", dir.display()))?;
        cleaner::finish_interrupted(dir)?;
        let now = now_ms();
        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        for entry in fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
            let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = segment::parse_log_file_name(&name) {
                bases.push(base);
            } else if let Some(base) = segment::parse_index_file_name(&name) {
                index_files.push((base, entry.path()));
            } else if name.ends_with(".tmp") {
                // Left by an interrupted atomic checkpoint write; the old file is intact.
                remove_stray(&entry.path());
            }
        }
        bases.sort_unstable();
        for (base, path) in index_files {
            if bases.binary_search(&base).is_err() {
                // An index whose segment is gone (deleted by retention or truncation just
                // before a crash) would be mistaken for a new segment's index later.
                remove_stray(&path);
            }
        }
        let recovery_point = checkpoint::read(dir, RECOVERY_POINT_FILE)
            .ctx(|| format!("reading recovery point in {}", dir.display()))?;
        let start_checkpoint =
            checkpoint::read(dir, LOG_START_FILE).ctx(|| format!("reading log start offset in {}", dir.display()))?;
        let high_watermark = checkpoint::read(dir, HIGH_WATERMARK_FILE)
            .ctx(|| format!("reading high watermark in {}", dir.display()))?
            .unwrap_or(-1);
        let (mut epochs, epochs_loaded) =
            LeaderEpochCache::load(dir).ctx(|| format!("reading leader epochs in {}", dir.display()))?;

        let interval = config.index_interval_bytes;
        // A snapshot from the last clean shutdown spares walking every batch header again.
        let snapshot_path = dir.join(producer::SNAPSHOT_FILE);
        let snapshot = fileio::read_optional(&snapshot_path)
            .ctx(|| format!("reading {}", snapshot_path.display()))?
            .and_then(|text| ProducerStateManager::decode_snapshot(&text));
        let (snapshot_offset, mut producers) = snapshot.unwrap_or_default();
        let mut epochs_changed = false;
        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len().max(1));
        let mut recovered_any = false;
        let mut corrupt = false;
        let mut prev_next = i64::MIN;
        for base in bases {
            let seg = Segment::open(dir, base, now)?;
            if corrupt {
                // Everything after a corrupt batch is unreachable by offset; Kafka drops it too.
                tracing::warn!(segment = %seg.log_path().display(), "deleting segment after a corrupt one");
                seg.delete_files()?;
                continue;
            }
            let mut on_batch = |b: &Batch<'_>| {
                if b.base_offset() >= snapshot_offset {
                    producers.record(b, None);
                }
                // Fills in epochs the checkpoint missed (a crash between the append and the
                // checkpoint write) or rebuilds a lost checkpoint entirely.
                epochs_changed |= epochs.assign(b.partition_leader_epoch(), b.base_offset());
            };
            let trusted = match recovery_point {
                Some(rp) => seg.load()? && seg.next_offset() <= rp,
                None => false,
            };
            if trusted {
                if !epochs_loaded || seg.next_offset() > snapshot_offset {
                    seg.for_each_header(&mut on_batch)?;
                }
            } else {
                recovered_any = true;
                let cut = seg.recover(interval, prev_next.max(base), &mut on_batch)?;
                corrupt = cut > 0;
                // Rewrite the rebuilt indexes now so the next open can trust them.
                seg.flush(false)?;
            }
            prev_next = seg.next_offset();
            segments.push(Arc::new(seg));
        }
        if segments.is_empty() {
            let base = start_checkpoint.unwrap_or(0).max(0);
            segments.push(Arc::new(Segment::create(dir, base, now)?));
        }
        for seg in &segments[..segments.len() - 1] {
            seg.seal()?;
        }
        let first_base = segments[0].base_offset();
        let log_end = segments.last().map_or(first_base, |s| s.next_offset());
        let log_start = start_checkpoint.unwrap_or(first_base).max(first_base).min(log_end);
        if snapshot_offset > log_end {
            // The snapshot describes data that recovery had to drop: rebuild from the log.
            tracing::warn!(dir = %dir.display(), snapshot_offset, log_end, "discarding producer snapshot");
            fs::remove_file(&snapshot_path).ctx(|| format!("removing {}", snapshot_path.display()))?;
            producers.clear();
            for seg in &segments {
                seg.for_each_header(|b| producers.record(b, None))?;
            }
        }
        producers.remove_before(log_start);
        // Epochs starting past the end belong to data lost in the crash. One starting exactly
        // at the end stays: it is how an emptied log (DeleteRecords up to its end) still
        // knows its latest epoch.
        epochs_changed |= epochs.truncate_from_end(log_end.saturating_add(1));
        epochs_changed |= epochs.truncate_from_start(log_start);
        if epochs_changed || !epochs_loaded {
            epochs.persist().ctx(|| format!("writing leader epochs in {}", dir.display()))?;
        }
        let log = Self {
            dir: dir.to_path_buf(),
            config: RwLock::new(config),
            segments: RwLock::new(segments),
            log_start: AtomicI64::new(log_start),
            log_end: AtomicI64::new(log_end),
            append: Mutex::new(AppendState {
                producers,
                recovery_point: recovery_point.unwrap_or(0).min(log_end),
                unflushed_messages: 0,
                last_flush_ms: now,
            }),
            epochs: Mutex::new(epochs),
            cleaner: Mutex::new(CleanerState::default()),
            high_watermark: Mutex::new(high_watermark),
            deleted: AtomicBool::new(false),
        };
        if recovered_any {
            // Recovered data is now known good: make it durable and move the recovery point,
            // so the next start does not scan it again.
            log.flush()?;
        }
        let producer_count = ignore_poison(log.append.lock()).producers.len();
        tracing::debug!(
            dir = %dir.display(),
            log_start,
            log_end,
            segments = log.segment_count(),
            producers = producer_count,
            "opened partition log"
        );
        Ok(log)
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn lock_append(&self) -> Result<MutexGuard<'_, AppendState>, LogError> {
        let guard = ignore_poison(self.append.lock());
        if self.deleted.load(Ordering::Acquire) {
            return Err(LogError::Deleted(self.dir.display().to_string()));
        }
        Ok(guard)
    }

    pub(crate) fn config(&self) -> LogConfig {
        ignore_poison(self.config.read()).clone()
    }

    fn active_segment(&self) -> Arc<Segment> {
        let segs = ignore_poison(self.segments.read());
        // The list is never empty: open creates a segment and nothing removes the last one.
        Arc::clone(&segs[segs.len() - 1])
    }

    /// Leader append of one or more batches as received from a producer: validates them,
    /// assigns offsets and the leader epoch in place and writes them with one write.
    pub fn append(&self, mut batches: BytesMut, leader_epoch: i32) -> Result<AppendInfo, LogError> {
        let config = self.config();
        let mut layout: Vec<(usize, usize)> = Vec::with_capacity(1);
        for item in BatchIter::new(&batches) {
            let (pos, b) = item?;
            if b.size() > config.max_message_bytes {
                return Err(LogError::MessageTooLarge { size: b.size(), max: config.max_message_bytes });
            }
            if b.record_count() <= 0 {
                return Err(LogError::InvalidRecord(format!(
                    "batch at byte {pos} has recordCount {}",
                    b.record_count()
                )));
            }
            if i64::from(b.last_offset_delta()) != i64::from(b.record_count()) - 1 {
                return Err(LogError::InvalidRecord(format!(
                    "batch at byte {pos}: lastOffsetDelta {} does not match recordCount {}",
                    b.last_offset_delta(),
                    b.record_count()
                )));
            }
            if config.cleanup_compact {
                records::check_keys(&b)?;
            }
            layout.push((pos, b.size()));
        }
        if layout.is_empty() {
            return Err(LogError::InvalidRecord("no record batches".into()));
        }

        let mut st = self.lock_append()?;
        let first_offset = self.log_end.load(Ordering::Acquire);
        let mut next = first_offset;
        let mut undo = Undo::new();
        let mut duplicate = None;
        let mut metas = Vec::with_capacity(layout.len());
        let mut max_timestamp = -1;
        let mut record_count = 0i64;
        for &(pos, size) in &layout {
            let verdict = {
                let b = Batch::parse_header(&batches[pos..pos + size], pos)?;
                if b.producer_id() >= 0 {
                    st.producers.check(&b)
                } else {
                    Ok(SequenceCheck::Accept)
                }
            };
            match verdict {
                Err(e) => {
                    st.producers.rollback(undo);
                    return Err(e);
                }
                Ok(SequenceCheck::Duplicate(range)) => {
                    duplicate = Some(range);
                    continue;
                }
                Ok(SequenceCheck::Accept) => {}
            }
            batch::patch_header(&mut batches[pos..pos + size], next, leader_epoch);
            let b = Batch::parse_header(&batches[pos..pos + size], pos)?;
            st.producers.record(&b, Some(&mut undo));
            let meta = BatchMeta::of(&b);
            max_timestamp = max_timestamp.max(meta.max_timestamp);
            record_count += i64::from(b.record_count());
            next = meta.last_offset + 1;
            metas.push(meta);
        }
        if let Some(range) = duplicate {
            st.producers.rollback(undo);
            if !metas.is_empty() {
                return Err(LogError::InvalidRecord(
                    "request mixes a retried (duplicate) batch with new batches".into(),
                ));
            }
            return Ok(AppendInfo {
                first_offset: range.first_offset,
                last_offset: range.last_offset,
                max_timestamp: -1,
                record_count: range.last_offset - range.first_offset + 1,
                duplicate: true,
                log_start_offset: self.log_start_offset(),
            });
        }

        if let Err(e) = self.write_locked(&mut st, &config, &batches, &metas, first_offset) {
            st.producers.rollback(undo);
            return Err(e);
        }
        if leader_epoch >= 0 {
            self.assign_epochs(&[(leader_epoch, first_offset)])?;
        }
        st.unflushed_messages = st.unflushed_messages.saturating_add(record_count as u64);
        let flush = st.unflushed_messages >= config.flush_interval_messages;
        drop(st);
        if flush {
            self.flush()?;
        }
        Ok(AppendInfo {
            first_offset,
            last_offset: next - 1,
            max_timestamp,
            record_count,
            duplicate: false,
            log_start_offset: self.log_start_offset(),
        })
    }

    /// Follower append: the batches already carry the leader's offsets and epochs. They must
    /// start at or after the log end offset and increase.
    pub fn append_replicated(&self, batches: Bytes) -> Result<AppendInfo, LogError> {
        let config = self.config();
        let mut metas = Vec::with_capacity(4);
        let mut epochs: Vec<(i32, i64)> = Vec::new();
        let mut record_count = 0i64;
        let mut prev_next = i64::MIN;
        for item in BatchIter::new(&batches) {
            let (_, b) = item?;
            if b.base_offset() < prev_next {
                return Err(LogError::InvalidRecord(format!(
                    "replicated batch offsets go backwards: {} after {}",
                    b.base_offset(),
                    prev_next - 1
                )));
            }
            prev_next = b.next_offset();
            let epoch = b.partition_leader_epoch();
            if epochs.last().is_none_or(|&(e, _)| epoch > e) {
                epochs.push((epoch, b.base_offset()));
            }
            record_count += i64::from(b.record_count());
            metas.push(BatchMeta::of(&b));
        }
        let (Some(first), Some(last)) = (metas.first().copied(), metas.last().copied()) else {
            return Err(LogError::InvalidRecord("no record batches".into()));
        };
        let mut st = self.lock_append()?;
        let log_end = self.log_end.load(Ordering::Acquire);
        if first.base_offset < log_end {
            return Err(LogError::UnexpectedAppendOffset { expected: log_end, found: first.base_offset });
        }
        self.write_locked(&mut st, &config, &batches, &metas, first.base_offset)?;
        for item in BatchIter::headers_only(&batches) {
            let (_, b) = item?;
            st.producers.record(&b, None);
        }
        self.assign_epochs(&epochs)?;
        st.unflushed_messages = st.unflushed_messages.saturating_add(record_count as u64);
        let flush = st.unflushed_messages >= config.flush_interval_messages;
        drop(st);
        if flush {
            self.flush()?;
        }
        Ok(AppendInfo {
            first_offset: first.base_offset,
            last_offset: last.last_offset,
            max_timestamp: metas.iter().map(|m| m.max_timestamp).max().unwrap_or(-1),
            record_count,
            duplicate: false,
            log_start_offset: self.log_start_offset(),
        })
    }

    /// Rolls if needed, writes, and publishes the new log end offset. Taking the append state
    /// proves the caller holds the append lock.
    fn write_locked(
        &self,
        _held: &mut AppendState,
        config: &LogConfig,
        bytes: &[u8],
        metas: &[BatchMeta],
        first_offset: i64,
    ) -> Result<(), LogError> {
        let Some(last) = metas.last() else {
            return Ok(());
        };
        let now = now_ms();
        let mut active = self.active_segment();
        let size = active.size();
        let must_roll = !active.is_empty()
            && (size + bytes.len() as u64 > config.effective_segment_bytes()
                || now - active.created_ms() >= config.segment_ms
                || active.index_full()
                || last.last_offset - active.base_offset() > i64::from(i32::MAX)
                || size + bytes.len() as u64 > i32::MAX as u64);
        if must_roll {
            active = self.roll_locked(first_offset, now)?;
        }
        active.append(bytes, metas, config.index_interval_bytes)?;
        self.log_end.store(last.last_offset + 1, Ordering::Release);
        Ok(())
    }

    /// Makes a new empty segment starting at `base_offset` the active one.
    fn roll_locked(&self, base_offset: i64, now: i64) -> Result<Arc<Segment>, LogError> {
        let old = self.active_segment();
        old.on_roll()?;
        old.seal()?;
        let seg = Arc::new(Segment::create(&self.dir, base_offset, now)?);
        ignore_poison(self.segments.write()).push(Arc::clone(&seg));
        tracing::debug!(dir = %self.dir.display(), base_offset, "rolled new segment");
        Ok(seg)
    }

    fn assign_epochs(&self, epochs: &[(i32, i64)]) -> Result<(), LogError> {
        let mut cache = ignore_poison(self.epochs.lock());
        let mut changed = false;
        for &(epoch, start) in epochs {
            changed |= cache.assign(epoch, start);
        }
        if changed {
            cache.persist().ctx(|| format!("writing leader epochs in {}", self.dir.display()))?;
        }
        Ok(())
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes` (at least one batch)
    /// and never a batch reaching `max_offset` (exclusive; the high watermark).
    pub fn read(&self, offset: i64, max_bytes: usize, max_offset: Option<i64>) -> Result<ReadInfo, LogError> {
        let log_end = self.log_end_offset();
        let log_start = self.log_start_offset();
        if offset < log_start || offset > log_end {
            return Err(LogError::OffsetOutOfRange { offset, log_start_offset: log_start, log_end_offset: log_end });
        }
        let limit = max_offset.map_or(log_end, |m| m.min(log_end));
        let mut info = ReadInfo { records: Bytes::new(), log_start_offset: log_start, log_end_offset: log_end };
        if offset >= limit {
            return Ok(info);
        }
        // Walk forward from the segment that may hold `offset`, skipping segments that end
        // before it (offset gaps left by compaction or a follower's truncation).
        let mut after_base: Option<i64> = None;
        loop {
            let seg = {
                let segs = ignore_poison(self.segments.read());
                let idx = match after_base {
                    None => segs.partition_point(|s| s.base_offset() <= offset).saturating_sub(1),
                    Some(b) => segs.partition_point(|s| s.base_offset() <= b),
                };
                match segs.get(idx) {
                    Some(s) => Arc::clone(s),
                    None => return Ok(info),
                }
            };
            if let Some(records) = seg.read(offset, max_bytes, limit)? {
                info.records = records;
                return Ok(info);
            }
            after_base = Some(seg.base_offset());
        }
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// ListOffsets by time: the first record with timestamp >= `ts`, as (offset, timestamp).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let log_start = self.log_start_offset();
        let segs: Vec<Arc<Segment>> = ignore_poison(self.segments.read()).clone();
        for seg in segs {
            if seg.next_offset() <= log_start {
                continue;
            }
            if let Some(found) = seg.find_by_timestamp(ts, log_start)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// OffsetForLeaderEpoch: the largest known epoch <= `epoch` and its end offset.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        ignore_poison(self.epochs.lock()).end_offset_for(epoch, self.log_end_offset())
    }

    /// A new leader stamps its epoch at its log end offset before taking writes (Kafka's
    /// `maybeAssignEpochStartOffset`), so a returning follower from an older epoch learns
    /// where its history stops matching even before any batch of the new epoch exists.
    pub fn assign_epoch_start(&self, epoch: i32) -> Result<(), LogError> {
        let _st = self.lock_append()?;
        let mut epochs = ignore_poison(self.epochs.lock());
        if epochs.assign(epoch, self.log_end_offset()) {
            epochs.persist().ctx(|| format!("writing leader epochs in {}", self.dir.display()))?;
        }
        Ok(())
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        ignore_poison(self.epochs.lock()).latest_epoch()
    }

    /// Follower truncation: removes every batch at or above `offset`. A batch straddling
    /// `offset` goes entirely (batches are never split), so the new log end offset can be
    /// below `offset`.
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        self.truncate(offset, false)
    }

    /// A follower whose whole log lies below the leader's log start offset (it was away while
    /// retention deleted what it missed) cannot catch up by fetching: it drops every segment
    /// and continues empty at `offset`, as Kafka's `truncateFullyAndStartAt`.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError> {
        self.truncate(offset, true)
    }

    fn truncate(&self, offset: i64, fully: bool) -> Result<(), LogError> {
        let mut st = self.lock_append()?;
        if !fully && offset >= self.log_end_offset() {
            // No data goes, but an epoch this replica started as leader without writing in
            // it must: the new leader's history decides what comes after `offset`.
            let mut epochs = ignore_poison(self.epochs.lock());
            if epochs.truncate_from_end(offset) {
                epochs.persist().ctx(|| format!("writing leader epochs in {}", self.dir.display()))?;
            }
            return Ok(());
        }
        let config = self.config();
        let now = now_ms();
        // The snapshot may describe batches about to be removed; drop it before touching data.
        let snapshot_path = self.dir.join(producer::SNAPSHOT_FILE);
        if let Err(e) = fs::remove_file(&snapshot_path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(LogError::Io(format!("removing {}", snapshot_path.display()), e));
            }
        }
        let removed: Vec<Arc<Segment>> = {
            let mut segs = ignore_poison(self.segments.write());
            if fully || segs[0].base_offset() > offset || offset < 0 {
                // Nothing to keep: start over at `offset`, as Kafka's truncateFullyAndStartAt.
                let start = offset.max(0);
                let fresh = Arc::new(Segment::create(&self.dir, start, now)?);
                let old = std::mem::replace(&mut *segs, vec![fresh]);
                self.log_start.store(start, Ordering::Release);
                old.into_iter().filter(|s| s.base_offset() != start).collect()
            } else {
                let keep = segs.partition_point(|s| s.base_offset() <= offset);
                let removed = segs.split_off(keep);
                segs[keep - 1].truncate_to(offset, config.index_interval_bytes)?;
                removed
            }
        };
        for seg in &removed {
            seg.delete_files()?;
        }
        // Removed segments must stay removed across a crash (they hold divergent data).
        fileio::sync_dir(&self.dir).ctx(|| format!("fsync {}", self.dir.display()))?;
        let new_end = self.active_segment().next_offset();
        self.log_end.store(new_end, Ordering::Release);
        if self.log_start_offset() > new_end {
            self.log_start.store(new_end, Ordering::Release);
        }
        checkpoint::write(&self.dir, LOG_START_FILE, self.log_start_offset())
            .ctx(|| format!("writing log start offset in {}", self.dir.display()))?;
        st.recovery_point = st.recovery_point.min(new_end);
        checkpoint::write(&self.dir, RECOVERY_POINT_FILE, st.recovery_point)
            .ctx(|| format!("writing recovery point in {}", self.dir.display()))?;
        {
            let mut epochs = ignore_poison(self.epochs.lock());
            // Starting over, none of the old epochs describe this log any more.
            if epochs.truncate_from_end(if fully { i64::MIN } else { new_end }) {
                epochs.persist().ctx(|| format!("writing leader epochs in {}", self.dir.display()))?;
            }
        }
        st.producers.clear();
        let segs: Vec<Arc<Segment>> = ignore_poison(self.segments.read()).clone();
        for seg in segs {
            seg.for_each_header(|b| st.producers.record(b, None))?;
        }
        tracing::info!(dir = %self.dir.display(), offset, new_end, "truncated log");
        Ok(())
    }

    /// Advances the log start offset to `offset` (DeleteRecords) and deletes segments that
    /// are now entirely below it. Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut st = self.lock_append()?;
        let log_end = self.log_end_offset();
        if offset < 0 || offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: log_end,
            });
        }
        if offset > self.log_start_offset() {
            self.advance_log_start(&mut st, offset)?;
        }
        self.delete_prefix(&mut st, None, now_ms())?;
        Ok(self.log_start_offset())
    }

    fn advance_log_start(&self, st: &mut AppendState, offset: i64) -> Result<(), LogError> {
        self.log_start.store(offset, Ordering::Release);
        checkpoint::write(&self.dir, LOG_START_FILE, offset)
            .ctx(|| format!("writing log start offset in {}", self.dir.display()))?;
        st.producers.remove_before(offset);
        let mut epochs = ignore_poison(self.epochs.lock());
        if epochs.truncate_from_start(offset) {
            epochs.persist().ctx(|| format!("writing leader epochs in {}", self.dir.display()))?;
        }
        Ok(())
    }

    /// Deletes the oldest segments that are below the log start offset or, with a config,
    /// past retention by time or size. Never deletes the active segment.
    fn delete_prefix(&self, st: &mut AppendState, retention: Option<&LogConfig>, now: i64) -> Result<usize, LogError> {
        let log_start = self.log_start_offset();
        let removed: Vec<Arc<Segment>> = {
            let mut segs = ignore_poison(self.segments.write());
            let total: u64 = segs.iter().map(|s| s.size()).sum();
            let mut excess = match retention {
                Some(c) if c.retention_bytes >= 0 => total as i64 - c.retention_bytes,
                _ => i64::MIN,
            };
            let mut count = 0;
            for pair in segs.windows(2) {
                let (seg, next) = (&pair[0], &pair[1]);
                let below_start = next.base_offset() <= log_start;
                let expired =
                    retention.is_some_and(|c| c.retention_ms >= 0 && now - seg.largest_timestamp() > c.retention_ms);
                let over_size = excess >= seg.size() as i64;
                if !(below_start || expired || over_size) {
                    break;
                }
                excess = excess.saturating_sub(seg.size() as i64);
                count += 1;
            }
            segs.drain(..count).collect()
        };
        if removed.is_empty() {
            return Ok(0);
        }
        let new_first = self.segments_first_base();
        if new_first > log_start {
            self.advance_log_start(st, new_first)?;
        }
        for seg in &removed {
            seg.delete_files()?;
        }
        tracing::info!(
            dir = %self.dir.display(),
            deleted = removed.len(),
            log_start_offset = self.log_start_offset(),
            "deleted old segments"
        );
        Ok(removed.len())
    }

    fn segments_first_base(&self) -> i64 {
        ignore_poison(self.segments.read())[0].base_offset()
    }

    /// Applies `retention_ms` / `retention_bytes`; returns how many segments were deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let config = self.config();
        let mut st = self.lock_append()?;
        // `cleanup.policy=compact` alone keeps every segment (only the cleaner shrinks the
        // log); segments below the log start offset still go.
        let retention = config.cleanup_delete.then_some(&config);
        self.delete_prefix(&mut st, retention, now_ms)
    }

    /// Time-based roll (`segment_ms`), the flush of segments rolled since the last flush, and
    /// the `flush_interval_ms` policy.
    pub fn maybe_roll_and_flush(&self, now_ms: i64) -> Result<(), LogError> {
        let config = self.config();
        let target = {
            let st = self.lock_append()?;
            let active = self.active_segment();
            let active = if !active.is_empty() && now_ms - active.created_ms() >= config.segment_ms {
                self.roll_locked(self.log_end_offset(), now_ms)?
            } else {
                active
            };
            let log_end = self.log_end_offset();
            if config.flush_interval_ms != i64::MAX
                && now_ms - st.last_flush_ms >= config.flush_interval_ms
                && log_end > st.recovery_point
            {
                Some(log_end)
            } else if st.recovery_point < active.base_offset() {
                // Kafka flushes a segment once it is rolled; do it here, off the append path.
                Some(active.base_offset())
            } else {
                None
            }
        };
        match target {
            Some(offset) => self.flush_upto(offset),
            None => Ok(()),
        }
    }

    /// fsyncs everything appended so far and records the recovery point.
    pub fn flush(&self) -> Result<(), LogError> {
        self.flush_upto(self.log_end_offset())
    }

    /// fsyncs segments holding offsets below `offset` without holding the append lock, then
    /// advances the recovery point.
    fn flush_upto(&self, offset: i64) -> Result<(), LogError> {
        let recovery_point = ignore_poison(self.append.lock()).recovery_point;
        let to_sync: Vec<Arc<Segment>> = ignore_poison(self.segments.read())
            .iter()
            .filter(|s| s.base_offset() < offset && s.next_offset() > recovery_point)
            .cloned()
            .collect();
        for seg in &to_sync {
            seg.flush(true)?;
        }
        fileio::sync_dir(&self.dir).ctx(|| format!("fsync {}", self.dir.display()))?;
        let mut st = self.lock_append()?;
        let point = offset.min(self.log_end_offset());
        if point > st.recovery_point {
            st.recovery_point = point;
            checkpoint::write(&self.dir, RECOVERY_POINT_FILE, point)
                .ctx(|| format!("writing recovery point in {}", self.dir.display()))?;
        }
        st.unflushed_messages = 0;
        st.last_flush_ms = now_ms();
        Ok(())
    }

    /// Persists the high watermark so a restarted broker does not expose offsets that were
    /// never committed (Kafka writes it every `replica.high.watermark.checkpoint.interval.ms`;
    /// call it periodically, not per request — it costs an fsync). Unchanged values are skipped.
    pub fn checkpoint_high_watermark(&self, high_watermark: i64) -> Result<(), LogError> {
        let mut last = ignore_poison(self.high_watermark.lock());
        if *last == high_watermark {
            return Ok(());
        }
        if self.deleted.load(Ordering::Acquire) {
            return Err(LogError::Deleted(self.dir.display().to_string()));
        }
        checkpoint::write(&self.dir, HIGH_WATERMARK_FILE, high_watermark)
            .ctx(|| format!("writing high watermark in {}", self.dir.display()))?;
        *last = high_watermark;
        Ok(())
    }

    /// The last checkpointed high watermark clamped to `[log_start, log_end]`, or `None` if
    /// none was ever written.
    pub fn high_watermark_checkpoint(&self) -> Option<i64> {
        let hw = *ignore_poison(self.high_watermark.lock());
        (hw >= 0).then(|| hw.clamp(self.log_start_offset(), self.log_end_offset()))
    }

    /// Replaces the settings; they apply to the next append, roll, flush and retention check.
    pub fn update_config(&self, config: LogConfig) {
        *ignore_poison(self.config.write()) = config;
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        ignore_poison(self.segments.read()).iter().map(|s| s.size()).sum()
    }

    /// Number of segments (the active one included).
    pub fn segment_count(&self) -> usize {
        ignore_poison(self.segments.read()).len()
    }

    /// Flushes and writes every checkpoint, so the next open skips recovery.
    pub fn close(&self) -> Result<(), LogError> {
        self.flush()?;
        let st = self.lock_append()?;
        let snapshot = st.producers.encode_snapshot(self.log_end_offset());
        let snapshot_path = self.dir.join(producer::SNAPSHOT_FILE);
        fileio::write_atomic(&snapshot_path, snapshot.as_bytes())
            .ctx(|| format!("writing {}", snapshot_path.display()))?;
        checkpoint::write(&self.dir, LOG_START_FILE, self.log_start_offset())
            .ctx(|| format!("writing log start offset in {}", self.dir.display()))?;
        ignore_poison(self.epochs.lock()).persist().ctx(|| format!("writing leader epochs in {}", self.dir.display()))
    }

    /// Removes the partition directory and everything in it.
    pub fn delete(self) -> Result<(), LogError> {
        self.delete_in_place()
    }

    /// Like [`PartitionLog::delete`] for a shared log: later calls on any handle fail with
    /// [`LogError::Deleted`].
    pub fn delete_in_place(&self) -> Result<(), LogError> {
        let _st = self.lock_append()?;
        self.deleted.store(true, Ordering::Release);
        fs::remove_dir_all(&self.dir).ctx(|| format!("deleting {}", self.dir.display()))
    }
}
