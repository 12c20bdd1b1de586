//! Sparse in-memory indexes of one segment and their on-disk form.
//!
//! `.index` holds 8-byte entries (relative offset u32, file position u32) and `.timeindex`
//! 12-byte entries (timestamp i64, relative offset u32), big-endian as in Kafka. The in-memory
//! vectors are authoritative while the log is open; files are brought up to date on roll, flush
//! and close, and validated (or rebuilt from the segment) when the log opens.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::fileio;

/// Kafka's `segment.index.bytes` default (10 MiB) expressed in entries; a full index rolls.
pub(crate) const MAX_OFFSET_ENTRIES: usize = 10 * 1024 * 1024 / OFFSET_ENTRY_SIZE;
pub(crate) const MAX_TIME_ENTRIES: usize = 10 * 1024 * 1024 / TIME_ENTRY_SIZE;
const OFFSET_ENTRY_SIZE: usize = 8;
const TIME_ENTRY_SIZE: usize = 12;

/// Relative offset → file position of the batch starting there.
#[derive(Debug, Default, Clone)]
pub(crate) struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub(crate) fn push(&mut self, relative_offset: u32, position: u32) {
        if self.entries.last().is_none_or(|&(o, p)| relative_offset > o && position > p) {
            self.entries.push((relative_offset, position));
        }
    }

    /// Position of the last indexed batch starting at or before `relative_offset` (0 if none).
    pub(crate) fn lookup(&self, relative_offset: u32) -> u32 {
        let idx = self.entries.partition_point(|&(o, _)| o <= relative_offset);
        if idx == 0 {
            0
        } else {
            self.entries[idx - 1].1
        }
    }

    pub(crate) fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= MAX_OFFSET_ENTRIES
    }

    /// Parses an `.index` file; `None` when its shape is wrong (size, ordering, positions
    /// beyond `file_size`), in which case the caller rebuilds it.
    pub(crate) fn decode(bytes: &[u8], file_size: u64) -> Option<Self> {
        if bytes.len() % OFFSET_ENTRY_SIZE != 0 {
            return None;
        }
        let mut index = OffsetIndex { entries: Vec::with_capacity(bytes.len() / OFFSET_ENTRY_SIZE) };
        for chunk in bytes.chunks_exact(OFFSET_ENTRY_SIZE) {
            let rel = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let pos = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            let ordered = index.entries.last().is_none_or(|&(o, p)| rel > o && pos > p);
            if !ordered || u64::from(pos) >= file_size {
                return None;
            }
            index.entries.push((rel, pos));
        }
        Some(index)
    }

    fn encode_from(&self, from: usize, out: &mut Vec<u8>) {
        for &(rel, pos) in &self.entries[from..] {
            out.extend_from_slice(&rel.to_be_bytes());
            out.extend_from_slice(&pos.to_be_bytes());
        }
    }
}

/// Max timestamp so far → relative offset of the record batch carrying it.
#[derive(Debug, Default, Clone)]
pub(crate) struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Adds an entry if `timestamp` is newer than the last one (entries stay strictly increasing).
    pub(crate) fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) {
        if self.entries.last().is_none_or(|&(t, o)| timestamp > t && relative_offset >= o) {
            self.entries.push((timestamp, relative_offset));
        }
    }

    /// Relative offset of the last entry whose timestamp is strictly below `timestamp`: every
    /// batch up to that entry is older than `timestamp`, so a search may start there.
    pub(crate) fn lookup_before(&self, timestamp: i64) -> Option<u32> {
        let idx = self.entries.partition_point(|&(t, _)| t < timestamp);
        if idx == 0 {
            None
        } else {
            Some(self.entries[idx - 1].1)
        }
    }

    pub(crate) fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= MAX_TIME_ENTRIES
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() % TIME_ENTRY_SIZE != 0 {
            return None;
        }
        let mut index = TimeIndex { entries: Vec::with_capacity(bytes.len() / TIME_ENTRY_SIZE) };
        for chunk in bytes.chunks_exact(TIME_ENTRY_SIZE) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let ts = i64::from_be_bytes(ts);
            let rel = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            let ordered = index.entries.last().is_none_or(|&(t, o)| ts > t && rel >= o);
            if !ordered {
                return None;
            }
            index.entries.push((ts, rel));
        }
        Some(index)
    }

    fn encode_from(&self, from: usize, out: &mut Vec<u8>) {
        for &(ts, rel) in &self.entries[from..] {
            out.extend_from_slice(&ts.to_be_bytes());
            out.extend_from_slice(&rel.to_be_bytes());
        }
    }
}

/// Indexes of a sealed (no longer active) segment, binary-searched in their files with
/// positional reads instead of being held in memory: an idle broker with many full segments
/// keeps a few bytes per segment, not megabytes (Kafka gets the same from mmap). The files are
/// opened per lookup so sealed segments hold no extra file descriptors.
#[derive(Debug)]
pub(crate) struct SealedIndexes {
    offset_path: PathBuf,
    offset_entries: usize,
    time_path: PathBuf,
    time_entries: usize,
}

impl SealedIndexes {
    /// Checks that the files hold exactly the given number of entries (`None` if not, and then
    /// the caller keeps the indexes in memory).
    pub(crate) fn open(
        offset_path: &Path,
        time_path: &Path,
        offset_entries: usize,
        time_entries: usize,
    ) -> io::Result<Option<Self>> {
        let exact = fs::metadata(offset_path)?.len() == (offset_entries * OFFSET_ENTRY_SIZE) as u64
            && fs::metadata(time_path)?.len() == (time_entries * TIME_ENTRY_SIZE) as u64;
        Ok(exact.then(|| Self {
            offset_path: offset_path.to_path_buf(),
            offset_entries,
            time_path: time_path.to_path_buf(),
            time_entries,
        }))
    }

    /// Same answer as [`OffsetIndex::lookup`].
    pub(crate) fn lookup(&self, relative_offset: u32) -> io::Result<u32> {
        if self.offset_entries == 0 {
            return Ok(0);
        }
        let file = File::open(&self.offset_path)?;
        let idx = file_partition_point(&file, self.offset_entries, OFFSET_ENTRY_SIZE, |e| {
            u32::from_be_bytes([e[0], e[1], e[2], e[3]]) <= relative_offset
        })?;
        if idx == 0 {
            return Ok(0);
        }
        let e = read_entry::<OFFSET_ENTRY_SIZE>(&file, idx - 1)?;
        Ok(u32::from_be_bytes([e[4], e[5], e[6], e[7]]))
    }

    /// Same answer as [`TimeIndex::lookup_before`].
    pub(crate) fn lookup_before(&self, timestamp: i64) -> io::Result<Option<u32>> {
        if self.time_entries == 0 {
            return Ok(None);
        }
        let file = File::open(&self.time_path)?;
        let idx = file_partition_point(&file, self.time_entries, TIME_ENTRY_SIZE, |e| time_entry(e).0 < timestamp)?;
        if idx == 0 {
            return Ok(None);
        }
        let e = read_entry::<TIME_ENTRY_SIZE>(&file, idx - 1)?;
        Ok(Some(time_entry(&e).1))
    }

    pub(crate) fn sync(&self) -> io::Result<()> {
        for path in [&self.offset_path, &self.time_path] {
            match OpenOptions::new().write(true).open(path) {
                Ok(f) => f.sync_data()?,
                // Deleted by retention meanwhile: nothing left to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn time_entry(e: &[u8]) -> (i64, u32) {
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&e[..8]);
    (i64::from_be_bytes(ts), u32::from_be_bytes([e[8], e[9], e[10], e[11]]))
}

fn read_entry<const N: usize>(file: &File, index: usize) -> io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    let n = fileio::read_at(file, &mut buf, (index * N) as u64)?;
    if n < N {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "index file shorter than expected"));
    }
    Ok(buf)
}

/// `partition_point` over the fixed-size entries of a file.
fn file_partition_point(
    file: &File,
    entries: usize,
    entry_size: usize,
    pred: impl Fn(&[u8]) -> bool,
) -> io::Result<usize> {
    let (mut lo, mut hi) = (0usize, entries);
    let mut buf = [0u8; TIME_ENTRY_SIZE];
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let n = fileio::read_at(file, &mut buf[..entry_size], (mid * entry_size) as u64)?;
        if n < entry_size {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "index file shorter than expected"));
        }
        if pred(&buf[..entry_size]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// How many entries of each index are already in the files, so a flush appends only the
/// new ones instead of rewriting megabytes.
#[derive(Debug, Default)]
pub(crate) struct PersistedIndexes {
    offset_entries: usize,
    time_entries: usize,
}

impl PersistedIndexes {
    /// Records that the files hold exactly these indexes (after loading them).
    pub(crate) fn loaded(offset: &OffsetIndex, time: &TimeIndex) -> Self {
        Self { offset_entries: offset.len(), time_entries: time.len() }
    }

    /// Forces a full rewrite next time (after a truncation or rebuild).
    pub(crate) fn invalidate(&mut self) {
        self.offset_entries = usize::MAX;
        self.time_entries = usize::MAX;
    }

    /// Brings both files up to date; `sync` also fsyncs them.
    pub(crate) fn write(
        &mut self,
        offset: &OffsetIndex,
        time: &TimeIndex,
        offset_path: &Path,
        time_path: &Path,
        sync: bool,
    ) -> io::Result<()> {
        self.offset_entries = write_entries(
            offset_path,
            self.offset_entries,
            offset.len(),
            OFFSET_ENTRY_SIZE,
            |from, out| offset.encode_from(from, out),
            sync,
        )?;
        self.time_entries = write_entries(
            time_path,
            self.time_entries,
            time.len(),
            TIME_ENTRY_SIZE,
            |from, out| time.encode_from(from, out),
            sync,
        )?;
        Ok(())
    }
}

fn write_entries(
    path: &Path,
    persisted: usize,
    total: usize,
    entry_size: usize,
    encode_from: impl Fn(usize, &mut Vec<u8>),
    sync: bool,
) -> io::Result<usize> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    let on_disk = file.metadata()?.len();
    // Append only when the file is exactly what we last wrote; otherwise rewrite it whole.
    let from = if persisted <= total && on_disk == (persisted * entry_size) as u64 {
        persisted
    } else {
        file.set_len(0)?;
        0
    };
    if from < total {
        let mut buf = Vec::with_capacity((total - from) * entry_size);
        encode_from(from, &mut buf);
        fileio::write_all_at(&file, &buf, (from * entry_size) as u64)?;
    }
    if sync {
        file.sync_data()?;
    }
    Ok(total)
}

/// Loads both index files; `None` if either is missing or malformed.
pub(crate) fn load(
    offset_path: &Path,
    time_path: &Path,
    log_size: u64,
) -> io::Result<Option<(OffsetIndex, TimeIndex)>> {
    let offset_bytes = match fs::read(offset_path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let time_bytes = match fs::read(time_path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(OffsetIndex::decode(&offset_bytes, log_size).zip(TimeIndex::decode(&time_bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let mut idx = OffsetIndex::default();
        idx.push(0, 0);
        idx.push(10, 4096);
        idx.push(20, 8200);
        assert_eq!(idx.lookup(0), 0);
        assert_eq!(idx.lookup(9), 0);
        assert_eq!(idx.lookup(10), 4096);
        assert_eq!(idx.lookup(25), 8200);
        idx.push(15, 6000); // not increasing: ignored
        assert_eq!(idx.len(), 3);
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let mut idx = OffsetIndex::default();
        idx.push(3, 100);
        idx.push(7, 5000);
        let mut bytes = Vec::new();
        idx.encode_from(0, &mut bytes);
        let back = OffsetIndex::decode(&bytes, 10_000).expect("valid");
        assert_eq!(back.last(), Some((7, 5000)));
        assert!(OffsetIndex::decode(&bytes, 4000).is_none(), "position past the log");
        assert!(OffsetIndex::decode(&bytes[..5], 10_000).is_none(), "partial entry");
        let zeros = vec![0u8; 16];
        assert!(OffsetIndex::decode(&zeros, 10_000).is_none(), "not increasing");
    }

    #[test]
    fn sealed_lookups_match_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (op, tp) = (dir.path().join("0.index"), dir.path().join("0.timeindex"));
        let mut offsets = OffsetIndex::default();
        let mut times = TimeIndex::default();
        for i in 1..200u32 {
            offsets.push(i * 3, i * 1000);
            times.maybe_push(1000 + i64::from(i) * 7, i * 3);
        }
        PersistedIndexes::default().write(&offsets, &times, &op, &tp, false).expect("write");
        let sealed = SealedIndexes::open(&op, &tp, offsets.len(), times.len()).expect("open").expect("exact");
        for rel in [0, 1, 2, 3, 4, 299, 300, 596, 597, 598, 10_000] {
            assert_eq!(sealed.lookup(rel).expect("lookup"), offsets.lookup(rel), "rel {rel}");
        }
        for ts in [0, 1006, 1007, 1008, 1500, 2393, 2394, 9999] {
            assert_eq!(sealed.lookup_before(ts).expect("lookup"), times.lookup_before(ts), "ts {ts}");
        }
        assert!(SealedIndexes::open(&op, &tp, offsets.len() + 1, times.len()).expect("open").is_none());
    }

    #[test]
    fn time_lookup_is_strictly_before() {
        let mut t = TimeIndex::default();
        t.maybe_push(100, 0);
        t.maybe_push(90, 3); // older: ignored
        t.maybe_push(200, 5);
        assert_eq!(t.lookup_before(100), None);
        assert_eq!(t.lookup_before(101), Some(0));
        assert_eq!(t.lookup_before(500), Some(5));
    }
}
