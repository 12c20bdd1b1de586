//! One log segment: a `.log` file of whole record batches plus its sparse `.index` and
//! `.timeindex`. The appender (holding the log's append lock) is the only writer; readers use
//! positional reads bounded by the published `size`, so they never see a half-written batch.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;

use crate::batch::{self, Batch, BatchError, HEADER_SIZE, LOG_OVERHEAD};
use crate::error::{IoContext, LogError};
use crate::fileio;
use crate::index::{self, OffsetIndex, PersistedIndexes, SealedIndexes, TimeIndex};

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";
/// The cleaner's output while it is written (discarded by recovery).
pub(crate) const CLEANED_SUFFIX: &str = "cleaned";
/// A complete cleaned segment about to replace its sources (recovery finishes the swap).
pub(crate) const SWAP_SUFFIX: &str = "swap";
/// A replaced segment's files, deleted right after the swap (or by recovery).
pub(crate) const DELETED_SUFFIX: &str = "deleted";

/// Recovery reads the log in chunks of this size.
const SCAN_CHUNK: usize = 1024 * 1024;
/// Bytes read at once while walking headers from an index entry to the wanted offset.
const LOCATE_CHUNK: usize = 8 * 1024;
/// A stored batch claiming to be larger than this is treated as corruption, so a garbage
/// length field cannot make recovery allocate gigabytes.
const MAX_STORED_BATCH: usize = 256 * 1024 * 1024;

/// `<20-digit base offset>.<suffix>`, Kafka's segment file naming.
pub(crate) fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// Base offset of a `.log` file name, if it is one.
pub(crate) fn parse_log_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Base offset of a `.index` or `.timeindex` file name, if it is one.
pub(crate) fn parse_index_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".timeindex").or_else(|| name.strip_suffix(".index"))?;
    parse_log_file_name(&format!("{stem}.log"))
}

/// What the appender knows about each batch it writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchMeta {
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) size: u32,
}

impl BatchMeta {
    pub(crate) fn of(batch: &Batch<'_>) -> Self {
        Self {
            base_offset: batch.base_offset(),
            last_offset: batch.last_offset(),
            max_timestamp: batch.max_timestamp(),
            // Batches are bounded by MAX_STORED_BATCH / max.message.bytes, far below u32::MAX.
            size: batch.size() as u32,
        }
    }
}

/// Index state, changed only by the appender and by recovery/truncation.
#[derive(Debug)]
struct SegmentState {
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Set once the segment is no longer active: lookups go to the files and the vectors
    /// above are empty.
    sealed: Option<SealedIndexes>,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    bytes_since_index: u64,
}

impl SegmentState {
    fn empty(base_offset: i64) -> Self {
        Self {
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            sealed: None,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            bytes_since_index: 0,
        }
    }

    /// Kafka's indexing rule: after `interval` bytes, index the next batch's start, and note
    /// the newest timestamp so far in the time index.
    fn index_batch(&mut self, segment_base: i64, meta: &BatchMeta, position: u32, interval: u32) {
        if meta.max_timestamp > self.max_timestamp {
            self.max_timestamp = meta.max_timestamp;
            self.offset_of_max_timestamp = meta.base_offset;
        }
        if self.bytes_since_index >= u64::from(interval) {
            self.offset_index.push(relative(segment_base, meta.base_offset), position);
            self.time_index.maybe_push(self.max_timestamp, relative(segment_base, self.offset_of_max_timestamp));
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += u64::from(meta.size);
    }

    // A sealed segment's index files vanish when retention deletes the segment while a reader
    // still holds it; starting the scan at the segment's first batch is then still correct.
    fn lookup_position(&self, relative_offset: u32) -> io::Result<u32> {
        match &self.sealed {
            Some(sealed) => match sealed.lookup(relative_offset) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
                other => other,
            },
            None => Ok(self.offset_index.lookup(relative_offset)),
        }
    }

    fn lookup_time_before(&self, timestamp: i64) -> io::Result<Option<u32>> {
        match &self.sealed {
            Some(sealed) => match sealed.lookup_before(timestamp) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                other => other,
            },
            None => Ok(self.time_index.lookup_before(timestamp)),
        }
    }
}

fn relative(base: i64, offset: i64) -> u32 {
    // The log rolls before a relative offset could exceed i32::MAX.
    (offset - base).clamp(0, i64::from(u32::MAX)) as u32
}

/// Result of walking batches in a byte range of the file.
struct ScanEnd {
    /// Position after the last good batch.
    valid_end: u64,
    /// Why the walk stopped before the end, if it did.
    error: Option<BatchError>,
}

pub(crate) struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    index_path: PathBuf,
    time_index_path: PathBuf,
    file: File,
    /// Bytes of complete batches; readers never look past it.
    size: AtomicU64,
    /// Offset after the last batch (`base_offset` when empty).
    next_offset: AtomicI64,
    state: RwLock<SegmentState>,
    persisted: Mutex<PersistedIndexes>,
    /// Wall-clock creation (or load) time, the base of `segment.ms` rolling.
    created_ms: i64,
    /// Replaced by a cleaned segment: the index files at this segment's paths now belong to
    /// its replacement, so readers still holding it scan from the start instead.
    retired: AtomicBool,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("base_offset", &self.base_offset)
            .field("size", &self.size())
            .field("next_offset", &self.next_offset())
            .finish()
    }
}

impl Segment {
    fn new(dir: &Path, base_offset: i64, file: File, size: u64, created_ms: i64) -> Self {
        Self {
            base_offset,
            log_path: dir.join(file_name(base_offset, LOG_SUFFIX)),
            index_path: dir.join(file_name(base_offset, INDEX_SUFFIX)),
            time_index_path: dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
            file,
            size: AtomicU64::new(size),
            next_offset: AtomicI64::new(base_offset),
            state: RwLock::new(SegmentState::empty(base_offset)),
            persisted: Mutex::new(PersistedIndexes::default()),
            created_ms,
            retired: AtomicBool::new(false),
        }
    }

    /// Creates the cleaner's output for `base_offset` in `<base>.log.cleaned`. The segment
    /// carries its final paths: it is only renamed into place by the swap, and its indexes
    /// (built in memory) must not be written before then.
    pub(crate) fn create_cleaned(dir: &Path, base_offset: i64, now_ms: i64) -> Result<(Self, PathBuf), LogError> {
        let path = dir.join(format!("{}.{CLEANED_SUFFIX}", file_name(base_offset, LOG_SUFFIX)));
        let file = create_empty(&path).ctx(|| format!("creating {}", path.display()))?;
        Ok((Self::new(dir, base_offset, file, 0, now_ms), path))
    }

    pub(crate) fn index_paths(&self) -> [&Path; 2] {
        [&self.index_path, &self.time_index_path]
    }

    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// fsyncs the log file only (the cleaner's output before it is swapped in).
    pub(crate) fn sync_log(&self) -> Result<(), LogError> {
        self.file.sync_data().ctx(|| format!("fsync {}", self.log_path.display()))
    }

    /// Modification time of the log file in ms (what `delete.retention.ms` and retention by
    /// time fall back to).
    pub(crate) fn modified_ms(&self) -> Option<i64> {
        let t = self.file.metadata().and_then(|m| m.modified()).ok()?;
        t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_millis() as i64)
    }

    /// Sets the log file's modification time (a cleaned segment keeps its source's).
    pub(crate) fn set_modified_ms(&self, ms: i64) -> Result<(), LogError> {
        let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
        self.file.set_modified(t).ctx(|| format!("setting mtime of {}", self.log_path.display()))
    }

    /// Every batch, fully read and CRC-checked, in order; `f` errors stop the walk.
    pub(crate) fn for_each_batch(&self, mut f: impl FnMut(&Batch<'_>) -> Result<(), LogError>) -> Result<(), LogError> {
        let mut failed = None;
        let end = self.scan_full(0, self.size(), |_, b| match f(b) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        match end.error {
            Some(e) => Err(LogError::CorruptRecord(format!("{}: {e}", self.log_path.display()))),
            None => Ok(()),
        }
    }

    /// Creates an empty segment, replacing any stale files of the same name.
    pub(crate) fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self, LogError> {
        let path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let file = create_empty(&path).ctx(|| format!("creating segment {}", path.display()))?;
        let segment = Self::new(dir, base_offset, file, 0, now_ms);
        for p in [&segment.index_path, &segment.time_index_path] {
            remove_if_exists(p).ctx(|| format!("removing stale index {}", p.display()))?;
        }
        Ok(segment)
    }

    /// Opens an existing segment file; call [`Segment::load`] or [`Segment::recover`] next.
    pub(crate) fn open(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self, LogError> {
        let path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .ctx(|| format!("opening segment {}", path.display()))?;
        let len = file.metadata().ctx(|| format!("reading size of {}", path.display()))?.len();
        Ok(Self::new(dir, base_offset, file, len, now_ms))
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.size() == 0
    }
    pub(crate) fn created_ms(&self) -> i64 {
        self.created_ms
    }
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn state(&self) -> RwLockReadGuard<'_, SegmentState> {
        // A panic while holding the lock cannot leave the indexes half-updated in a way that
        // matters more than losing the segment, so poisoning is ignored.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
    fn state_mut(&self) -> RwLockWriteGuard<'_, SegmentState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.state().max_timestamp
    }

    /// Newest record timestamp, or the file's modification time when batches carry none
    /// (what retention by time compares against).
    pub(crate) fn largest_timestamp(&self) -> i64 {
        let ts = self.max_timestamp();
        if ts >= 0 {
            return ts;
        }
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(self.created_ms, |d| d.as_millis() as i64)
    }

    pub(crate) fn index_full(&self) -> bool {
        let st = self.state();
        st.sealed.is_none() && (st.offset_index.is_full() || st.time_index.is_full())
    }

    /// Trusts a segment written before the recovery point: loads its index files and walks
    /// the headers after the last index entry. `false` means the files did not agree and the
    /// segment needs [`Segment::recover`].
    pub(crate) fn load(&self) -> Result<bool, LogError> {
        let size = self.size();
        let Some((offset_index, time_index)) = index::load(&self.index_path, &self.time_index_path, size)
            .ctx(|| format!("reading indexes of {}", self.log_path.display()))?
        else {
            return Ok(false);
        };
        let (start_rel, start_pos) = offset_index.last().unwrap_or((0, 0));
        let mut state = SegmentState::empty(self.base_offset);
        if let Some((ts, rel)) = time_index.last() {
            state.max_timestamp = ts;
            state.offset_of_max_timestamp = self.base_offset + i64::from(rel);
        }
        let mut next = self.base_offset;
        let mut first_matches = true;
        let mut first = true;
        let end = self.scan_headers(u64::from(start_pos), size, |_, b| {
            if first && start_pos > 0 {
                first_matches = b.base_offset() == self.base_offset + i64::from(start_rel);
            }
            first = false;
            let meta = BatchMeta::of(b);
            if meta.max_timestamp > state.max_timestamp {
                state.max_timestamp = meta.max_timestamp;
                state.offset_of_max_timestamp = meta.base_offset;
            }
            state.bytes_since_index += u64::from(meta.size);
            next = meta.last_offset + 1;
            true
        })?;
        if end.error.is_some() || !first_matches || (size > 0 && next == self.base_offset) {
            return Ok(false);
        }
        let persisted = PersistedIndexes::loaded(&offset_index, &time_index);
        state.offset_index = offset_index;
        state.time_index = time_index;
        *self.state_mut() = state;
        *self.persisted.lock().unwrap_or_else(|e| e.into_inner()) = persisted;
        self.next_offset.store(next, Ordering::Release);
        Ok(true)
    }

    /// Validates every batch (length, magic, CRC, offsets increasing from `min_offset`),
    /// rebuilds both indexes and cuts the file after the last good batch. Calls `on_batch` for
    /// each good batch. Returns how many bytes were cut (0 when the segment was intact).
    pub(crate) fn recover(
        &self,
        index_interval: u32,
        min_offset: i64,
        mut on_batch: impl FnMut(&Batch<'_>),
    ) -> Result<u64, LogError> {
        let size = self.size();
        let mut state = SegmentState::empty(self.base_offset);
        let mut next = self.base_offset.max(min_offset);
        let mut last_end = self.base_offset;
        let mut out_of_order = None;
        let scan = self.scan_full(0, size, |pos, b| {
            if b.base_offset() < next {
                out_of_order = Some(pos);
                return false;
            }
            let meta = BatchMeta::of(b);
            state.index_batch(self.base_offset, &meta, pos as u32, index_interval);
            next = meta.last_offset + 1;
            last_end = next;
            on_batch(b);
            true
        })?;
        let valid_end = out_of_order.unwrap_or(scan.valid_end);
        let cut = size - valid_end;
        if cut > 0 {
            let why = match (&scan.error, out_of_order) {
                (_, Some(_)) => "batch offsets go backwards".to_string(),
                (Some(e), None) => e.to_string(),
                (None, None) => "unknown".to_string(),
            };
            tracing::warn!(
                segment = %self.log_path.display(),
                valid_end,
                cut_bytes = cut,
                reason = %why,
                "truncating corrupt or torn segment tail"
            );
            self.file.set_len(valid_end).ctx(|| format!("truncating {}", self.log_path.display()))?;
            self.size.store(valid_end, Ordering::Release);
        }
        *self.state_mut() = state;
        self.persisted.lock().unwrap_or_else(|e| e.into_inner()).invalidate();
        self.next_offset.store(last_end, Ordering::Release);
        Ok(cut)
    }

    /// Appends already validated, offset-assigned batches with one positional write.
    pub(crate) fn append(&self, bytes: &[u8], batches: &[BatchMeta], index_interval: u32) -> Result<(), LogError> {
        let Some(last) = batches.last() else {
            return Ok(());
        };
        let position = self.size.load(Ordering::Acquire);
        if let Err(e) = fileio::write_all_at(&self.file, bytes, position) {
            // A partial write (disk full) must not leave bytes a later recovery would have to
            // sort out; the published size never covered them.
            if let Err(cut) = self.file.set_len(position) {
                tracing::error!(segment = %self.log_path.display(), error = %cut, "cannot cut a failed append");
            }
            return Err(LogError::Io(format!("appending to {}", self.log_path.display()), e));
        }
        {
            let mut state = self.state_mut();
            let mut pos = position;
            for meta in batches {
                state.index_batch(self.base_offset, meta, pos as u32, index_interval);
                pos += u64::from(meta.size);
            }
        }
        self.next_offset.store(last.last_offset + 1, Ordering::Release);
        self.size.store(position + bytes.len() as u64, Ordering::Release);
        Ok(())
    }

    /// Finds the batch containing `offset` (or the first after it): its position and header.
    fn locate(&self, offset: i64, size: u64) -> Result<Option<(u64, BatchMeta)>, LogError> {
        let mut pos = if self.is_retired() {
            0
        } else {
            u64::from(
                self.state()
                    .lookup_position(relative(self.base_offset, offset))
                    .ctx(|| format!("reading index of {}", self.log_path.display()))?,
            )
        };
        // One read usually covers the whole index interval, so small batches cost no extra
        // syscalls; a header crossing the chunk's end triggers a read at that header.
        let mut chunk = [0u8; LOCATE_CHUNK];
        let mut chunk_pos = pos;
        let mut chunk_len = 0usize;
        while pos + HEADER_SIZE as u64 <= size {
            let in_chunk = pos >= chunk_pos && pos + HEADER_SIZE as u64 <= chunk_pos + chunk_len as u64;
            if !in_chunk {
                let want = LOCATE_CHUNK.min((size - pos) as usize);
                chunk_len = fileio::read_at(&self.file, &mut chunk[..want], pos)
                    .ctx(|| format!("reading {}", self.log_path.display()))?;
                chunk_pos = pos;
            }
            let at = (pos - chunk_pos) as usize;
            let batch = Batch::parse_header(&chunk[at..chunk_len], pos as usize)
                .map_err(|e| LogError::CorruptRecord(format!("{}: {e}", self.log_path.display())))?;
            if batch.last_offset() >= offset {
                return Ok(Some((pos, BatchMeta::of(&batch))));
            }
            pos += batch.size() as u64;
        }
        Ok(None)
    }

    /// Whole batches starting with the one containing `offset`, up to `max_bytes` (but at least
    /// the first batch) and only batches ending below `limit`. `None` if no batch in this
    /// segment holds `offset` or a later one.
    pub(crate) fn read(&self, offset: i64, max_bytes: usize, limit: i64) -> Result<Option<Bytes>, LogError> {
        let size = self.size();
        let Some((pos, first)) = self.locate(offset, size)? else {
            return Ok(None);
        };
        if first.last_offset >= limit {
            return Ok(Some(Bytes::new()));
        }
        let available = usize::try_from(size - pos).unwrap_or(usize::MAX);
        let want = max_bytes.max(first.size as usize).min(available);
        let mut buf = vec![0u8; want];
        let n = fileio::read_at(&self.file, &mut buf, pos).ctx(|| format!("reading {}", self.log_path.display()))?;
        buf.truncate(n);
        let mut end = 0;
        while end < buf.len() {
            let Ok(b) = Batch::parse_header(&buf[end..], pos as usize + end) else {
                break;
            };
            if end + b.size() > buf.len() || b.last_offset() >= limit {
                break;
            }
            end += b.size();
        }
        buf.truncate(end);
        Ok(Some(Bytes::from(buf)))
    }

    /// First record at or after `timestamp` with offset >= `min_offset`, as (offset, timestamp).
    pub(crate) fn find_by_timestamp(&self, timestamp: i64, min_offset: i64) -> Result<Option<(i64, i64)>, LogError> {
        let start_pos = {
            let st = self.state();
            if st.max_timestamp < timestamp {
                return Ok(None);
            }
            if self.is_retired() {
                0
            } else {
                let from = st
                    .lookup_time_before(timestamp)
                    .ctx(|| format!("reading time index of {}", self.log_path.display()))?
                    .map_or(self.base_offset, |rel| self.base_offset + i64::from(rel))
                    .max(min_offset);
                let pos = st
                    .lookup_position(relative(self.base_offset, from))
                    .ctx(|| format!("reading index of {}", self.log_path.display()))?;
                u64::from(pos)
            }
        };
        let size = self.size();
        let mut found = None;
        self.scan_headers(start_pos, size, |pos, b| {
            if b.last_offset() >= min_offset && b.max_timestamp() >= timestamp {
                found = Some((pos, b.size()));
                return false;
            }
            true
        })?;
        let Some((pos, len)) = found else {
            return Ok(None);
        };
        let mut buf = vec![0u8; len];
        let n = fileio::read_at(&self.file, &mut buf, pos).ctx(|| format!("reading {}", self.log_path.display()))?;
        let batch = Batch::parse(&buf[..n], pos as usize)?;
        Ok(batch.first_record_at_or_after(timestamp).map(|(o, t)| (o.max(min_offset), t)))
    }

    /// Removes every batch whose last offset is >= `offset`; returns the new next offset.
    pub(crate) fn truncate_to(&self, offset: i64, index_interval: u32) -> Result<i64, LogError> {
        let size = self.size();
        let Some((pos, _)) = self.locate(offset, size)? else {
            return Ok(self.next_offset());
        };
        // Durable at once: divergent batches that came back after a crash would pass recovery.
        self.file.set_len(pos).ctx(|| format!("truncating {}", self.log_path.display()))?;
        self.file.sync_all().ctx(|| format!("fsync {}", self.log_path.display()))?;
        self.size.store(pos, Ordering::Release);
        let mut state = SegmentState::empty(self.base_offset);
        let mut next = self.base_offset;
        let end = self.scan_headers(0, pos, |p, b| {
            let meta = BatchMeta::of(b);
            state.index_batch(self.base_offset, &meta, p as u32, index_interval);
            next = meta.last_offset + 1;
            true
        })?;
        if let Some(e) = end.error {
            return Err(LogError::CorruptRecord(format!("{}: {e}", self.log_path.display())));
        }
        *self.state_mut() = state;
        self.persisted.lock().unwrap_or_else(|e| e.into_inner()).invalidate();
        self.next_offset.store(next, Ordering::Release);
        Ok(next)
    }

    /// Walks every batch header (no CRC), e.g. to rebuild producer state.
    pub(crate) fn for_each_header(&self, mut f: impl FnMut(&Batch<'_>)) -> Result<(), LogError> {
        let end = self.scan_headers(0, self.size(), |_, b| {
            f(b);
            true
        })?;
        match end.error {
            Some(e) => Err(LogError::CorruptRecord(format!("{}: {e}", self.log_path.display()))),
            None => Ok(()),
        }
    }

    /// Seals the segment when a newer one becomes active: records its newest timestamp in
    /// the time index and writes both index files (fsync comes with the next flush).
    pub(crate) fn on_roll(&self) -> Result<(), LogError> {
        self.on_roll_in_memory();
        self.write_indexes(false)
    }

    /// The in-memory part of [`Segment::on_roll`]: the final time index entry.
    pub(crate) fn on_roll_in_memory(&self) {
        let mut st = self.state_mut();
        let (ts, off) = (st.max_timestamp, st.offset_of_max_timestamp);
        if ts >= 0 {
            st.time_index.maybe_push(ts, relative(self.base_offset, off));
        }
    }

    /// Writes pending index entries and, with `sync`, makes the segment durable.
    pub(crate) fn flush(&self, sync: bool) -> Result<(), LogError> {
        if sync {
            self.file.sync_data().ctx(|| format!("fsync {}", self.log_path.display()))?;
        }
        self.write_indexes(sync)
    }

    fn write_indexes(&self, sync: bool) -> Result<(), LogError> {
        let mut persisted = self.persisted.lock().unwrap_or_else(|e| e.into_inner());
        let st = self.state();
        if let Some(sealed) = &st.sealed {
            // The files are complete since sealing; only durability may be missing.
            return match sync {
                true => sealed.sync().ctx(|| format!("fsync indexes of {}", self.log_path.display())),
                false => Ok(()),
            };
        }
        persisted
            .write(&st.offset_index, &st.time_index, &self.index_path, &self.time_index_path, sync)
            .ctx(|| format!("writing indexes of {}", self.log_path.display()))
    }

    /// Moves the indexes of a segment that will not be appended to again out of memory.
    /// Writes the index files first; keeps the in-memory copy if they cannot be trusted.
    pub(crate) fn seal(&self) -> Result<(), LogError> {
        self.write_indexes(false)?;
        let _persisted = self.persisted.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = self.state_mut();
        if st.sealed.is_some() {
            return Ok(());
        }
        let sealed =
            SealedIndexes::open(&self.index_path, &self.time_index_path, st.offset_index.len(), st.time_index.len())
                .ctx(|| format!("opening indexes of {}", self.log_path.display()))?;
        match sealed {
            Some(sealed) => {
                st.sealed = Some(sealed);
                st.offset_index = OffsetIndex::default();
                st.time_index = TimeIndex::default();
            }
            None => {
                tracing::warn!(segment = %self.log_path.display(), "index files disagree with memory; keeping them in memory")
            }
        }
        Ok(())
    }

    pub(crate) fn delete_files(&self) -> Result<(), LogError> {
        for p in [&self.log_path, &self.index_path, &self.time_index_path] {
            remove_if_exists(p).ctx(|| format!("deleting {}", p.display()))?;
        }
        Ok(())
    }

    /// Header-by-header walk of `[start, end)` with positional reads of 61 bytes; `f`
    /// returning false stops the walk.
    fn scan_headers(
        &self,
        start: u64,
        end: u64,
        mut f: impl FnMut(u64, &Batch<'_>) -> bool,
    ) -> Result<ScanEnd, LogError> {
        let mut pos = start;
        let mut header = [0u8; HEADER_SIZE];
        while pos < end {
            let n =
                fileio::read_at(&self.file, &mut header, pos).ctx(|| format!("reading {}", self.log_path.display()))?;
            let parsed = Batch::parse_header(&header[..n], pos as usize).and_then(|b| {
                if pos + b.size() as u64 > end {
                    Err(BatchError::Truncated {
                        position: pos as usize,
                        needed: b.size(),
                        available: (end - pos) as usize,
                    })
                } else {
                    Ok(b)
                }
            });
            match parsed {
                Ok(b) => {
                    if !f(pos, &b) {
                        break;
                    }
                    pos += b.size() as u64;
                }
                Err(e) => return Ok(ScanEnd { valid_end: pos, error: Some(e) }),
            }
        }
        Ok(ScanEnd { valid_end: pos, error: None })
    }

    /// Reads `[start, end)` in large chunks and validates each whole batch (CRC included);
    /// `f` returning false stops the walk at that batch.
    fn scan_full(&self, start: u64, end: u64, mut f: impl FnMut(u64, &Batch<'_>) -> bool) -> Result<ScanEnd, LogError> {
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_pos = start; // file position of buf[0]
        loop {
            let mut off = 0;
            let mut need = 0;
            while off < buf.len() {
                let at = buf_pos + off as u64;
                let size = match batch::batch_size(&buf[off..], at as usize) {
                    Ok(s) if s > MAX_STORED_BATCH => {
                        return Ok(ScanEnd {
                            valid_end: at,
                            error: Some(BatchError::InvalidLength {
                                position: at as usize,
                                length: (s - LOG_OVERHEAD) as i32,
                            }),
                        })
                    }
                    Ok(s) => s,
                    Err(e) if e.is_truncation() => {
                        need = LOG_OVERHEAD;
                        break;
                    }
                    Err(e) => return Ok(ScanEnd { valid_end: at, error: Some(e) }),
                };
                if off + size > buf.len() {
                    need = size;
                    break;
                }
                match Batch::parse_validated(&buf[off..off + size], at as usize) {
                    Ok(b) => {
                        if !f(at, &b) {
                            return Ok(ScanEnd { valid_end: at, error: None });
                        }
                    }
                    Err(e) => return Ok(ScanEnd { valid_end: at, error: Some(e) }),
                }
                off += size;
            }
            buf.drain(..off);
            buf_pos += off as u64;
            let file_left = end - (buf_pos + buf.len() as u64);
            if file_left == 0 {
                let error = (!buf.is_empty()).then(|| BatchError::Truncated {
                    position: buf_pos as usize,
                    needed: need.max(buf.len() + 1),
                    available: buf.len(),
                });
                return Ok(ScanEnd { valid_end: buf_pos, error });
            }
            let grow = (SCAN_CHUNK.max(need.saturating_sub(buf.len()))).min(file_left as usize);
            let old_len = buf.len();
            buf.resize(old_len + grow, 0);
            let n = fileio::read_at(&self.file, &mut buf[old_len..], buf_pos + old_len as u64)
                .ctx(|| format!("reading {}", self.log_path.display()))?;
            buf.truncate(old_len + n);
            if n == 0 {
                return Ok(ScanEnd {
                    valid_end: buf_pos,
                    error: Some(BatchError::Truncated {
                        position: buf_pos as usize,
                        needed: need,
                        available: buf.len(),
                    }),
                });
            }
        }
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Opens `path` for reading and writing, created or emptied.
fn create_empty(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)
}
