//! The keeper's write-ahead log: the Raft entries, in segment files of our own.
//!
//! Why not sled: a synchronous create pays for the log write on the leader and on a follower,
//! and sled's `flush_async` cost more than one `fdatasync` of an append-only file (about 17%
//! of a synchronous create, `docs/benchmarks.md`). Here an append is one `write` into the page
//! cache; making it durable is handed to a syncer thread, which reports the entries flushed
//! only after its `fdatasync` and covers every append queued meanwhile with one sync. The
//! thread keeps the blocking sync off the async runtime's workers (syncing inline stalled
//! other tasks for tens of milliseconds). openraft 0.9 still waits for the flush before it
//! replicates, so in practice one append is in flight at a time.
//!
//! Layout: `<dir>/<20-digit first index>.wal`. Each record is
//! `[payload len: u32 LE][crc32c of index and payload: u32 LE][index: u64 LE][payload]`.
//! Segments are extended with zeros ahead of the writes ([`PREALLOC`] at a time), as
//! ZooKeeper preallocates its transaction log: overwriting blocks that already exist lets
//! `fdatasync` skip the file-size journal commit that an appending write needs (on this
//! machine's disk the difference was within the noise). A zero header therefore marks a
//! segment's end.
//!
//! On open every segment is scanned: a torn or corrupt record at the tail of the last segment
//! is cut off (it was never reported durable); anywhere else it is an error, because entries
//! after it may have been acknowledged.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

const HEADER: usize = 16;
const SUFFIX: &str = ".wal";
/// A segment is closed once it passes this size; purging deletes whole segments.
const SEGMENT_BYTES: u64 = 16 << 20;
/// How far ahead of the writes a segment is zero-filled.
const PREALLOC: u64 = 4 << 20;
/// A payload larger than this is a corrupt length field, not an entry.
const MAX_RECORD: usize = 512 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("write-ahead log {path}: corrupt record at byte {pos} ({why}) before the last segment's tail")]
    Corrupt { path: String, pos: u64, why: &'static str },
    #[error("write-ahead log: entry {got} appended where {want} was expected")]
    Gap { want: u64, got: u64 },
    #[error("write-ahead log: entry {0} is not in the log")]
    Missing(u64),
    #[error("write-ahead log: the syncer thread has stopped")]
    SyncerGone,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io { path: path.display().to_string(), source }
}

/// Where one entry's payload sits.
#[derive(Clone, Copy)]
struct Loc {
    segment: u64,
    pos: u64,
    len: u32,
}

struct Segment {
    path: PathBuf,
    file: Arc<File>,
    /// Bytes of records.
    len: u64,
    /// The file's length: records, then zeros.
    allocated: u64,
    /// The index its next record must carry; a record that does not starts a new segment,
    /// so a scan never meets a jump inside one.
    next: u64,
}

struct Inner {
    dir: PathBuf,
    /// By first index; the last one is written to.
    segments: BTreeMap<u64, Segment>,
    /// Index of `locs[0]`: entries before it are purged.
    first: u64,
    locs: VecDeque<Loc>,
}

impl Inner {
    fn next_index(&self) -> u64 {
        self.first + self.locs.len() as u64
    }
}

/// Called once the entries it was queued with are durable (or could not be made so).
pub type OnSynced = Box<dyn FnOnce(Result<(), std::io::Error>) + Send>;

struct SyncJob {
    file: Arc<File>,
    done: OnSynced,
}

#[derive(Clone)]
pub struct Wal {
    inner: Arc<Mutex<Inner>>,
    syncer: mpsc::Sender<SyncJob>,
}

impl Wal {
    /// Opens (or creates) the log in `dir`, dropping entries at or below `purged`, and
    /// starts its syncer thread.
    pub fn open(dir: &Path, purged: Option<u64>) -> Result<Wal, WalError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut names = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io(dir))? {
            let item = item.map_err(io(dir))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if let Some(first) = name.strip_suffix(SUFFIX).and_then(|n| n.parse::<u64>().ok()) {
                names.push(first);
            }
        }
        names.sort_unstable();
        let keep_from = purged.map_or(0, |p| p + 1);
        let mut inner =
            Inner { dir: dir.to_path_buf(), segments: BTreeMap::new(), first: keep_from, locs: VecDeque::new() };
        let count = names.len();
        for (i, first) in names.into_iter().enumerate() {
            let path = segment_path(dir, first);
            let last_segment = i + 1 == count;
            let (file, len, allocated, next) = scan_segment(&path, first, last_segment, keep_from, &mut inner)?;
            inner.segments.insert(first, Segment { path, file: Arc::new(file), len, allocated, next });
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new().name("keeper-wal-sync".into()).spawn(move || syncer(rx)).map_err(io(dir))?;
        Ok(Wal { inner: Arc::new(Mutex::new(inner)), syncer: tx })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind, still consistent enough to
        // report errors from; poisoning would only turn them into panics.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Index of the first entry kept, and of the one after the last.
    pub fn bounds(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.first, inner.next_index())
    }

    /// Appends `(index, payload)` records, which must continue the log, and queues `done`
    /// for when they are durable. Returns once they are written to the page cache.
    pub fn append(&self, records: &[(u64, Vec<u8>)], done: OnSynced) -> Result<(), WalError> {
        let mut inner = self.lock();
        let Some(&(first_new, _)) = records.first() else {
            drop(inner);
            done(Ok(()));
            return Ok(());
        };
        if inner.locs.is_empty() && inner.segments.is_empty() {
            inner.first = first_new;
        }
        if first_new != inner.next_index() {
            if !inner.locs.is_empty() || first_new < inner.first {
                return Err(WalError::Gap { want: inner.next_index(), got: first_new });
            }
            // An empty log continues wherever the leader says (after a snapshot install).
            inner.first = first_new;
        }
        let need_new = match inner.segments.values().next_back() {
            None => true,
            Some(s) => s.len >= SEGMENT_BYTES || s.next != first_new,
        };
        if need_new {
            open_segment(&mut inner, first_new)?;
        }
        let (&seg_first, seg) = inner.segments.iter_mut().next_back().ok_or(WalError::Missing(first_new))?;
        let mut buf = Vec::with_capacity(records.iter().map(|(_, p)| p.len() + HEADER).sum());
        let mut locs = Vec::with_capacity(records.len());
        let mut expect = first_new;
        for (index, payload) in records {
            if *index != expect {
                return Err(WalError::Gap { want: expect, got: *index });
            }
            expect += 1;
            let pos = seg.len + buf.len() as u64;
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&record_crc(*index, payload).to_le_bytes());
            buf.extend_from_slice(&index.to_le_bytes());
            buf.extend_from_slice(payload);
            locs.push(Loc { segment: seg_first, pos: pos + HEADER as u64, len: payload.len() as u32 });
        }
        let end = seg.len + buf.len() as u64;
        if end > seg.allocated {
            let target = end.max(seg.allocated + PREALLOC);
            zero_fill(&seg.file, seg.allocated, target).map_err(io(&seg.path))?;
            seg.allocated = target;
        }
        seg.file.write_all_at(&buf, seg.len).map_err(io(&seg.path))?;
        seg.len += buf.len() as u64;
        seg.next = expect;
        let file = seg.file.clone();
        inner.locs.extend(locs);
        drop(inner);
        self.syncer.send(SyncJob { file, done }).map_err(|_| WalError::SyncerGone)
    }

    /// The payloads of entries `from..to` that are in the log (fewer if the range runs past
    /// either end).
    pub fn read(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, WalError> {
        // Positions and file handles are taken under the lock, the reads done without it, so
        // appends are not held up by replication reads.
        let (start, dir, wanted) = {
            let inner = self.lock();
            let start = from.max(inner.first);
            let end = to.min(inner.next_index());
            if start >= end {
                return Ok(Vec::new());
            }
            let skip = (start - inner.first) as usize;
            let mut wanted: Vec<(Loc, Arc<File>)> = Vec::with_capacity((end - start) as usize);
            for (i, loc) in inner.locs.iter().skip(skip).take((end - start) as usize).enumerate() {
                let file = match wanted.last() {
                    // Entries run in order, so most share the previous one's segment.
                    Some((prev, file)) if prev.segment == loc.segment => file.clone(),
                    _ => inner.segments.get(&loc.segment).ok_or(WalError::Missing(start + i as u64))?.file.clone(),
                };
                wanted.push((*loc, file));
            }
            (start, inner.dir.clone(), wanted)
        };
        let mut out = Vec::with_capacity(wanted.len());
        for (i, (loc, file)) in wanted.into_iter().enumerate() {
            let mut payload = vec![0u8; loc.len as usize];
            file.read_exact_at(&mut payload, loc.pos).map_err(io(&segment_path(&dir, loc.segment)))?;
            out.push((start + i as u64, payload));
        }
        Ok(out)
    }

    /// Removes entries at `index` and after, durably, before returning.
    pub fn truncate(&self, index: u64) -> Result<(), WalError> {
        let mut inner = self.lock();
        if index >= inner.next_index() {
            return Ok(());
        }
        let keep = index.saturating_sub(inner.first) as usize;
        let cut = inner.locs.get(keep).copied();
        inner.locs.truncate(keep);
        let Some(cut) = cut else { return Ok(()) };
        // Later segments go first, so a crash half way leaves a log without a gap.
        let later: Vec<u64> = inner.segments.range(cut.segment + 1..).map(|(k, _)| *k).collect();
        for k in later.into_iter().rev() {
            if let Some(s) = inner.segments.remove(&k) {
                std::fs::remove_file(&s.path).map_err(io(&s.path))?;
            }
        }
        sync_dir(&inner.dir)?;
        if let Some(seg) = inner.segments.get_mut(&cut.segment) {
            let at = cut.pos - HEADER as u64;
            seg.file.set_len(at).map_err(io(&seg.path))?;
            seg.file.sync_data().map_err(io(&seg.path))?;
            seg.len = at;
            seg.allocated = at;
            seg.next = index;
        }
        Ok(())
    }

    /// Forgets entries up to and including `index`; deletes the segments that hold only such
    /// entries. The caller records the purge point durably first.
    pub fn purge(&self, index: u64) -> Result<(), WalError> {
        let mut inner = self.lock();
        let next = inner.next_index();
        if index + 1 >= next {
            inner.locs.clear();
        } else if index >= inner.first {
            let n = (index + 1 - inner.first) as usize;
            inner.locs.drain(..n);
        }
        inner.first = inner.first.max(index + 1);
        let first_kept = inner.locs.front().map(|l| l.segment);
        let doomed: Vec<u64> = inner
            .segments
            .keys()
            .copied()
            .filter(|k| match first_kept {
                Some(seg) => *k < seg,
                // Nothing left: every segment goes; the next append opens a new one.
                None => true,
            })
            .collect();
        for k in doomed {
            if let Some(s) = inner.segments.remove(&k) {
                std::fs::remove_file(&s.path).map_err(io(&s.path))?;
            }
        }
        Ok(())
    }

    /// Bytes the segments occupy.
    pub fn size_on_disk(&self) -> u64 {
        self.lock().segments.values().map(|s| s.allocated).sum()
    }
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}{SUFFIX}"))
}

fn record_crc(index: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&index.to_le_bytes()), payload)
}

fn open_segment(inner: &mut Inner, first: u64) -> Result<(), WalError> {
    let path = segment_path(&inner.dir, first);
    let file = OpenOptions::new().create(true).truncate(false).write(true).read(true).open(&path).map_err(io(&path))?;
    let allocated = file.metadata().map_err(io(&path))?.len();
    // The new file's name must survive a crash before anything in it is called durable.
    sync_dir(&inner.dir)?;
    inner.segments.insert(first, Segment { path, file: Arc::new(file), len: 0, allocated, next: first });
    Ok(())
}

fn zero_fill(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Reads one segment, adding the locations of entries at or after `keep_from` to `inner`.
fn scan_segment(
    path: &Path,
    first: u64,
    last_segment: bool,
    keep_from: u64,
    inner: &mut Inner,
) -> Result<(File, u64, u64, u64), WalError> {
    let mut file = OpenOptions::new().write(true).read(true).open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io(path))?;
    let mut pos = 0usize;
    let mut expect = first;
    let mut allocated = bytes.len() as u64;
    let bad = loop {
        if pos == bytes.len() {
            break None;
        }
        let Some(header) = bytes.get(pos..pos + HEADER) else { break Some("torn header") };
        if header.iter().all(|b| *b == 0) {
            // The preallocated zeros: the end, if nothing but zeros follows.
            if bytes[pos..].iter().all(|b| *b == 0) {
                break None;
            }
            break Some("data after a zero header");
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut ix = [0u8; 8];
        ix.copy_from_slice(&header[8..16]);
        let index = u64::from_le_bytes(ix);
        if len > MAX_RECORD {
            break Some("impossible length");
        }
        let Some(payload) = bytes.get(pos + HEADER..pos + HEADER + len) else { break Some("torn payload") };
        if record_crc(index, payload) != crc {
            break Some("checksum mismatch");
        }
        if index != expect {
            break Some("out-of-sequence index");
        }
        if index >= keep_from {
            if inner.locs.is_empty() {
                inner.first = index;
            } else if index != inner.next_index() {
                break Some("gap after the previous segment");
            }
            inner.locs.push_back(Loc { segment: first, pos: (pos + HEADER) as u64, len: len as u32 });
        }
        expect += 1;
        pos += HEADER + len;
    };
    if let Some(why) = bad {
        if !last_segment {
            return Err(WalError::Corrupt { path: path.display().to_string(), pos: pos as u64, why });
        }
        // Never reported durable: a write cut short by a crash.
        tracing::warn!(path = %path.display(), pos, why, "cutting the write-ahead log's torn tail");
        file.set_len(pos as u64).map_err(io(path))?;
        file.sync_data().map_err(io(path))?;
        allocated = pos as u64;
    }
    Ok((file, pos as u64, allocated, expect))
}

/// Group commit: one `fdatasync` per file for every append queued since the last one.
fn syncer(rx: mpsc::Receiver<SyncJob>) {
    while let Ok(job) = rx.recv() {
        let mut jobs = vec![job];
        while let Ok(more) = rx.try_recv() {
            jobs.push(more);
        }
        let mut files: Vec<Arc<File>> = Vec::new();
        for j in &jobs {
            if !files.iter().any(|f| Arc::ptr_eq(f, &j.file)) {
                files.push(j.file.clone());
            }
        }
        let mut failure = None;
        for f in &files {
            if let Err(e) = f.sync_data() {
                failure = Some(e);
            }
        }
        for j in jobs {
            let result = match &failure {
                None => Ok(()),
                Some(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            (j.done)(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    fn append_sync(wal: &Wal, records: &[(u64, Vec<u8>)]) {
        let (tx, rx) = channel();
        wal.append(records, Box::new(move |r| tx.send(r.is_ok()).unwrap_or(()))).expect("append");
        assert!(rx.recv().expect("synced"));
    }

    /// Where a segment's records end and its zeros begin.
    fn data_end(seg: &Path) -> usize {
        let bytes = std::fs::read(seg).expect("read seg");
        let mut pos = 0;
        while pos + HEADER <= bytes.len() && bytes[pos..pos + HEADER].iter().any(|b| *b != 0) {
            let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]) as usize;
            pos += HEADER + len;
        }
        pos
    }

    /// Writes entries `1..n` to a fresh log in `dir`, then lets `damage` change the bytes of
    /// its segment (given where the records end) as a crash might have.
    fn written_then_damaged(dir: &Path, n: u64, damage: impl FnOnce(&mut Vec<u8>, usize)) {
        let wal = Wal::open(dir, None).expect("open");
        append_sync(&wal, &entries(1, n));
        drop(wal);
        let seg = segment_path(dir, 1);
        let end = data_end(&seg);
        let mut bytes = std::fs::read(&seg).expect("read seg");
        damage(&mut bytes, end);
        std::fs::write(&seg, &bytes).expect("write seg");
    }

    fn entries(from: u64, to: u64) -> Vec<(u64, Vec<u8>)> {
        (from..to).map(|i| (i, format!("entry {i}").into_bytes())).collect()
    }

    #[test]
    fn reopens_with_every_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(dir.path(), None).expect("open");
        append_sync(&wal, &entries(1, 50));
        append_sync(&wal, &entries(50, 60));
        drop(wal);
        let wal = Wal::open(dir.path(), None).expect("reopen");
        assert_eq!(wal.bounds(), (1, 60));
        assert_eq!(wal.read(0, 100).expect("read"), entries(1, 60));
        assert_eq!(wal.read(10, 12).expect("read"), entries(10, 12));
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The end of the last record never reached the disk.
        written_then_damaged(dir.path(), 11, |bytes, end| bytes[end - 3..end].fill(0));
        let wal = Wal::open(dir.path(), None).expect("reopen");
        assert_eq!(wal.bounds(), (1, 10));
        append_sync(&wal, &entries(10, 12));
        drop(wal);
        let wal = Wal::open(dir.path(), None).expect("reopen again");
        assert_eq!(wal.read(0, 100).expect("read"), entries(1, 12));
    }

    #[test]
    fn a_flipped_byte_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        written_then_damaged(dir.path(), 6, |bytes, end| bytes[end - 2] ^= 0x40);
        let wal = Wal::open(dir.path(), None).expect("reopen");
        assert_eq!(wal.bounds(), (1, 5), "the corrupt last record is dropped");
    }

    #[test]
    fn truncate_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(dir.path(), None).expect("open");
        append_sync(&wal, &entries(1, 21));
        wal.truncate(15).expect("truncate");
        assert_eq!(wal.bounds(), (1, 15));
        append_sync(&wal, &[(15, b"rewritten".to_vec())]);
        wal.purge(4).expect("purge");
        assert_eq!(wal.bounds(), (5, 16));
        drop(wal);
        let wal = Wal::open(dir.path(), Some(4)).expect("reopen");
        assert_eq!(wal.bounds(), (5, 16));
        let got = wal.read(0, 100).expect("read");
        assert_eq!(got.first().map(|e| e.0), Some(5));
        assert_eq!(got.last(), Some(&(15, b"rewritten".to_vec())));
    }

    #[test]
    fn purging_past_the_end_lets_the_log_continue_elsewhere() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(dir.path(), None).expect("open");
        append_sync(&wal, &entries(1, 5));
        // A snapshot up to 100 was installed: the log restarts after it.
        wal.purge(100).expect("purge");
        assert_eq!(wal.bounds(), (101, 101));
        append_sync(&wal, &entries(101, 104));
        drop(wal);
        let wal = Wal::open(dir.path(), Some(100)).expect("reopen");
        assert_eq!(wal.read(0, 1000).expect("read"), entries(101, 104));
    }

    #[test]
    fn a_log_restarted_after_a_stale_segment_reopens_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(dir.path(), None).expect("open");
        append_sync(&wal, &entries(1, 5));
        drop(wal);
        // The purge point was recorded, but the crash came before the segment was deleted.
        let wal = Wal::open(dir.path(), Some(50)).expect("reopen");
        assert_eq!(wal.bounds(), (51, 51));
        append_sync(&wal, &entries(51, 54));
        drop(wal);
        let wal = Wal::open(dir.path(), Some(50)).expect("reopen again");
        assert_eq!(wal.read(0, 1000).expect("read"), entries(51, 54));
    }

    #[test]
    fn garbage_after_the_end_of_the_last_segment_is_cleared() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A later page of a torn write landed, an earlier one did not.
        written_then_damaged(dir.path(), 4, |bytes, end| bytes[end + 100] = 9);
        let wal = Wal::open(dir.path(), None).expect("reopen");
        append_sync(&wal, &entries(4, 6));
        drop(wal);
        let wal = Wal::open(dir.path(), None).expect("reopen again");
        assert_eq!(wal.read(0, 100).expect("read"), entries(1, 6));
    }

    #[test]
    fn appends_must_continue_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(dir.path(), None).expect("open");
        append_sync(&wal, &entries(1, 3));
        let err = wal.append(&entries(5, 6), Box::new(|_| {})).err();
        assert!(matches!(err, Some(WalError::Gap { want: 3, got: 5 })), "{err:?}");
    }

    #[test]
    fn segments_roll_and_purge_deletes_whole_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(dir.path(), None).expect("open");
        let big = vec![7u8; (SEGMENT_BYTES / 4) as usize];
        for i in 1..=10 {
            append_sync(&wal, &[(i, big.clone())]);
        }
        let count = || std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0);
        assert!(count() >= 2, "rolled into several segments");
        let before = count();
        wal.purge(8).expect("purge");
        assert!(count() < before, "whole segments below the purge point are deleted");
        assert_eq!(wal.read(9, 11).expect("read").len(), 2);
    }
}
