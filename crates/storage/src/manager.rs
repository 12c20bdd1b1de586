//! `LogManager`: every partition log under the broker's `log.dirs`, keyed by
//! (topic, partition) and stored in `<log_dir>/<topic>-<partition>/`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cleaner::CleanerConfig;
use crate::config::LogConfig;
use crate::error::{IoContext, LogError};
use crate::log::{now_ms, PartitionLog};

type Key = (String, i32);

/// topic → partition → log; keyed by `&str` so lookups on the request path do not allocate.
#[derive(Default)]
struct LogTable {
    topics: HashMap<String, HashMap<i32, Arc<PartitionLog>>>,
}

impl LogTable {
    fn get(&self, topic: &str, partition: i32) -> Option<&Arc<PartitionLog>> {
        self.topics.get(topic)?.get(&partition)
    }

    fn insert(&mut self, (topic, partition): Key, log: Arc<PartitionLog>) {
        self.topics.entry(topic).or_default().insert(partition, log);
    }

    fn remove(&mut self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        let partitions = self.topics.get_mut(topic)?;
        let log = partitions.remove(&partition);
        if partitions.is_empty() {
            self.topics.remove(topic);
        }
        log
    }

    fn iter(&self) -> impl Iterator<Item = (&str, i32, &Arc<PartitionLog>)> {
        self.topics.iter().flat_map(|(t, ps)| ps.iter().map(move |(p, log)| (t.as_str(), *p, log)))
    }

    fn len(&self) -> usize {
        self.topics.values().map(HashMap::len).sum()
    }
}

/// All partition logs of a broker.
pub struct LogManager {
    dirs: Vec<PathBuf>,
    default_config: LogConfig,
    /// Shared with the cleaner thread.
    logs: Arc<RwLock<LogTable>>,
    /// The cleaner thread started by [`LogManager::start_cleaner`], stopped by `shutdown`.
    cleaner: Mutex<Option<CleanerHandle>>,
}

/// The running log cleaner thread. Dropping the handle stops it (and waits for the round in
/// progress, so no cleaning runs after the logs are closed).
#[derive(Debug)]
pub struct CleanerHandle {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl CleanerHandle {
    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let (flag, cvar) = &*self.stop;
        *ignore_poison(flag.lock()) = true;
        cvar.notify_all();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("log cleaner thread panicked");
            }
        }
    }
}

impl Drop for CleanerHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl std::fmt::Debug for LogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogManager").field("dirs", &self.dirs).field("logs", &self.read_logs().len()).finish()
    }
}

/// Kafka's legal topic names: 1..=249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(topic: &str) -> Result<(), LogError> {
    let legal = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if legal {
        Ok(())
    } else {
        Err(LogError::InvalidTopic(format!(
            "topic name {topic:?} must be 1-249 characters of [a-zA-Z0-9._-] and not '.' or '..'"
        )))
    }
}

/// `<topic>-<partition>` → (topic, partition); the topic itself may contain dashes.
fn parse_dir_name(name: &str) -> Option<Key> {
    let (topic, partition) = name.rsplit_once('-')?;
    let partition: i32 = partition.parse().ok()?;
    if partition < 0 || validate_topic_name(topic).is_err() {
        return None;
    }
    Some((topic.to_string(), partition))
}

/// Opens the partitions on a few threads (Kafka's `num.recovery.threads.per.data.dir`): after a
/// crash, recovery is CRC-bound and partitions are independent.
fn open_all(found: Vec<(Key, PathBuf)>, config: &LogConfig) -> Result<Vec<(Key, PartitionLog)>, LogError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4).min(found.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Vec<Result<Vec<(usize, PartitionLog)>, LogError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut opened = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((_, path)) = found.get(i) else {
                            return Ok(opened);
                        };
                        opened.push((i, PartitionLog::open(path, config.clone())?));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(LogError::Io(
                        "opening partition logs".into(),
                        std::io::Error::other("a log recovery thread panicked"),
                    ))
                })
            })
            .collect()
    });
    let mut slots: Vec<Option<PartitionLog>> = found.iter().map(|_| None).collect();
    for result in results {
        for (i, log) in result? {
            slots[i] = Some(log);
        }
    }
    Ok(found.into_iter().zip(slots).filter_map(|((key, _), log)| log.map(|l| (key, l))).collect())
}

fn ignore_poison<T>(r: std::sync::LockResult<T>) -> T {
    r.unwrap_or_else(|e| e.into_inner())
}

fn all_logs(table: &RwLock<LogTable>) -> Vec<((String, i32), Arc<PartitionLog>)> {
    ignore_poison(table.read()).iter().map(|(t, p, log)| ((t.to_string(), p), Arc::clone(log))).collect()
}

fn clean_logs(table: &RwLock<LogTable>, now_ms: i64, config: &CleanerConfig) -> usize {
    let mut cleaned = 0;
    for ((topic, partition), log) in all_logs(table) {
        match log.clean(now_ms, config) {
            Ok(Some(_)) => cleaned += 1,
            Ok(None) | Err(LogError::Deleted(_)) => {}
            Err(e) => tracing::warn!(%topic, partition, error = %e, "log cleaning failed"),
        }
    }
    cleaned
}

impl LogManager {
    /// Opens every `<topic>-<partition>` directory under `dirs` (creating missing dirs).
    /// Each log starts with `default`; the broker applies per-topic overrides with
    /// [`PartitionLog::update_config`].
    pub fn open(dirs: &[PathBuf], default: LogConfig) -> Result<Self, LogError> {
        if dirs.is_empty() {
            return Err(LogError::Io(
                "opening the log manager".into(),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "no log directories configured (log.dirs)"),
            ));
        }
        let mut found: Vec<(Key, PathBuf)> = Vec::new();
        let mut seen: HashSet<Key> = HashSet::new();
        for dir in dirs {
            fs::create_dir_all(dir).ctx(|| format!("creating log dir {}", dir.display()))?;
            for entry in fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
                let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = entry.file_name();
                let Some(key) = parse_dir_name(&name.to_string_lossy()) else {
                    tracing::debug!(path = %entry.path().display(), "skipping non-partition directory");
                    continue;
                };
                if !seen.insert(key.clone()) {
                    tracing::warn!(
                        path = %entry.path().display(),
                        "partition present in several log dirs, keeping the first"
                    );
                    continue;
                }
                found.push((key, entry.path()));
            }
        }
        let mut logs = LogTable::default();
        for (key, log) in open_all(found, &default)? {
            logs.insert(key, Arc::new(log));
        }
        tracing::info!(partitions = logs.len(), "loaded partition logs");
        Ok(Self {
            dirs: dirs.to_vec(),
            default_config: default,
            logs: Arc::new(RwLock::new(logs)),
            cleaner: Mutex::new(None),
        })
    }

    fn read_logs(&self) -> std::sync::RwLockReadGuard<'_, LogTable> {
        ignore_poison(self.logs.read())
    }

    /// The log directories, in configuration order (for DescribeLogDirs).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The config new logs get when the caller has nothing more specific.
    pub fn default_config(&self) -> &LogConfig {
        &self.default_config
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        self.read_logs().get(topic, partition).cloned()
    }

    /// The existing log (config untouched), or a new one in the log dir holding the fewest
    /// partitions.
    pub fn get_or_create(&self, topic: &str, partition: i32, config: LogConfig) -> Result<Arc<PartitionLog>, LogError> {
        if let Some(log) = self.get(topic, partition) {
            return Ok(log);
        }
        validate_topic_name(topic)?;
        if partition < 0 {
            return Err(LogError::InvalidTopic(format!("partition {partition} of topic {topic} is negative")));
        }
        let mut logs = ignore_poison(self.logs.write());
        if let Some(log) = logs.get(topic, partition) {
            return Ok(Arc::clone(log));
        }
        let dir = self.least_loaded_dir(&logs);
        let log = Arc::new(PartitionLog::open(&dir.join(format!("{topic}-{partition}")), config)?);
        logs.insert((topic.to_string(), partition), Arc::clone(&log));
        Ok(log)
    }

    fn least_loaded_dir(&self, logs: &LogTable) -> &Path {
        self.dirs
            .iter()
            .min_by_key(|d| logs.iter().filter(|(_, _, l)| l.dir().starts_with(d)).count())
            .map_or_else(|| Path::new("."), |d| d.as_path())
    }

    /// Deletes the partition's files; handles still held elsewhere start failing with
    /// [`LogError::Deleted`]. Removing an unknown partition is a no-op.
    pub fn remove(&self, topic: &str, partition: i32) -> Result<(), LogError> {
        let removed = ignore_poison(self.logs.write()).remove(topic, partition);
        match removed {
            Some(log) => log.delete_in_place(),
            None => Ok(()),
        }
    }

    pub fn all(&self) -> Vec<((String, i32), Arc<PartitionLog>)> {
        all_logs(&self.logs)
    }

    /// Retention, time-based roll and flush policy across all logs; errors are logged per
    /// partition so one bad disk does not stop the others.
    pub fn tick(&self, now_ms: i64) {
        for ((topic, partition), log) in self.all() {
            match log.enforce_retention(now_ms) {
                Ok(0) | Err(LogError::Deleted(_)) => {}
                Ok(n) => tracing::debug!(%topic, partition, deleted = n, "retention"),
                Err(e) => tracing::warn!(%topic, partition, error = %e, "retention failed"),
            }
            match log.maybe_roll_and_flush(now_ms) {
                Ok(()) | Err(LogError::Deleted(_)) => {}
                Err(e) => tracing::warn!(%topic, partition, error = %e, "roll/flush failed"),
            }
        }
    }

    /// One cleaner pass over every compacted log that is due (see [`PartitionLog::clean`]);
    /// returns how many logs were cleaned. Errors are logged per partition.
    pub fn clean_all(&self, now_ms: i64, config: &CleanerConfig) -> usize {
        clean_logs(&self.logs, now_ms, config)
    }

    /// Starts Kafka's log cleaner on its own thread (cleaning is CPU and disk work that must
    /// stay off the async workers): a pass over all logs, then `backoff_ms` of sleep when no
    /// log was due. A no-op with `enable = false` or when already running.
    pub fn start_cleaner(&self, config: CleanerConfig) -> Result<(), LogError> {
        let mut slot = ignore_poison(self.cleaner.lock());
        if !config.enable || slot.is_some() {
            return Ok(());
        }
        let backoff_ms = config.backoff_ms;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let table = Arc::clone(&self.logs);
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("log-cleaner".into())
            .spawn(move || {
                let (flag, cvar) = &*stop2;
                loop {
                    let cleaned = clean_logs(&table, now_ms(), &config);
                    let wait = if cleaned > 0 { Duration::ZERO } else { Duration::from_millis(config.backoff_ms) };
                    let stopped = ignore_poison(flag.lock());
                    let (stopped, _) = ignore_poison(cvar.wait_timeout_while(stopped, wait, |s| !*s));
                    if *stopped {
                        return;
                    }
                }
            })
            .map_err(|e| LogError::Io("starting the log cleaner thread".into(), e))?;
        *slot = Some(CleanerHandle { stop, thread: Some(thread) });
        tracing::info!(backoff_ms, "log cleaner started");
        Ok(())
    }

    /// Flushes and checkpoints every log; returns the first error after trying them all.
    /// Stops the cleaner first.
    pub fn shutdown(&self) -> Result<(), LogError> {
        if let Some(handle) = ignore_poison(self.cleaner.lock()).take() {
            handle.stop();
        }
        let mut first_err = None;
        for ((topic, partition), log) in self.all() {
            if let Err(e) = log.close() {
                tracing::error!(%topic, partition, error = %e, "closing log failed");
                first_err.get_or_insert(e);
            }
        }
        tracing::info!(at_ms = now_ms(), "log manager shut down");
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_and_topic_validation() {
        assert_eq!(parse_dir_name("my-topic-3"), Some(("my-topic".into(), 3)));
        assert_eq!(parse_dir_name("noprt"), None);
        assert_eq!(parse_dir_name("t-x"), None);
        assert_eq!(parse_dir_name("t-1.abc-delete"), None);
        assert!(validate_topic_name("../etc").is_err());
        assert!(validate_topic_name("ok.topic_1-x").is_ok());
        assert!(validate_topic_name("..").is_err());
    }
}
