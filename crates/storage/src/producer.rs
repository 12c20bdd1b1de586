//! Idempotent-producer state (a simplified Kafka ProducerStateManager): per producer id the
//! current epoch and the last few batches' sequence and offset ranges, enough to drop retried
//! duplicates and refuse gaps.

use std::collections::{HashMap, VecDeque};

use crate::batch::Batch;
use crate::error::LogError;

/// How many recent batches per producer are remembered (Kafka's in-flight request limit).
const RETAINED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchRange {
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) first_offset: i64,
    pub(crate) last_offset: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchRange>,
}

impl ProducerEntry {
    fn last_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }
}

/// The verdict on a batch from an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// Next in sequence (or first seen): append it.
    Accept,
    /// A retry of a batch already in the log at these offsets.
    Duplicate(BatchRange),
}

#[derive(Debug, Default)]
pub(crate) struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

/// Previous state of producers touched by an append, to restore if the append fails.
pub(crate) type Undo = Vec<(i64, Option<ProducerEntry>)>;

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStateManager {
    /// Checks a leader append of `batch` (whose producer id is >= 0) against the state.
    pub(crate) fn check(&self, batch: &Batch<'_>) -> Result<SequenceCheck, LogError> {
        let producer_id = batch.producer_id();
        let epoch = batch.producer_epoch();
        let first_seq = batch.base_sequence();
        let Some(entry) = self.producers.get(&producer_id) else {
            // State may have been lost to retention; Kafka >= 2.5 accepts any sequence here.
            return Ok(SequenceCheck::Accept);
        };
        if epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch { producer_id, current: entry.epoch, found: epoch });
        }
        if epoch > entry.epoch {
            if first_seq != 0 {
                return Err(LogError::OutOfOrderSequence {
                    producer_id,
                    producer_epoch: epoch,
                    expected: 0,
                    found: first_seq,
                });
            }
            return Ok(SequenceCheck::Accept);
        }
        let last_seq = batch.last_sequence();
        if let Some(dup) = entry.batches.iter().find(|b| b.first_seq == first_seq && b.last_seq == last_seq) {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        let expected = entry.batches.back().map_or(0, |b| next_seq(b.last_seq));
        if entry.batches.is_empty() || first_seq == expected {
            Ok(SequenceCheck::Accept)
        } else {
            Err(LogError::OutOfOrderSequence { producer_id, producer_epoch: epoch, expected, found: first_seq })
        }
    }

    /// Records an appended batch (leader, follower or recovery) at its assigned offsets.
    pub(crate) fn record(&mut self, batch: &Batch<'_>, undo: Option<&mut Undo>) {
        let producer_id = batch.producer_id();
        if producer_id < 0 {
            return;
        }
        if let Some(undo) = undo {
            if !undo.iter().any(|(id, _)| *id == producer_id) {
                undo.push((producer_id, self.producers.get(&producer_id).cloned()));
            }
        }
        let epoch = batch.producer_epoch();
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry { epoch, batches: VecDeque::with_capacity(RETAINED_BATCHES) });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == RETAINED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchRange {
            first_seq: batch.base_sequence(),
            last_seq: batch.last_sequence(),
            first_offset: batch.base_offset(),
            last_offset: batch.last_offset(),
        });
    }

    pub(crate) fn rollback(&mut self, undo: Undo) {
        for (id, previous) in undo.into_iter().rev() {
            match previous {
                Some(entry) => self.producers.insert(id, entry),
                None => self.producers.remove(&id),
            };
        }
    }

    /// Forgets producers whose last batch is entirely below the new log start offset.
    pub(crate) fn remove_before(&mut self, log_start_offset: i64) {
        self.producers.retain(|_, e| e.last_offset() >= log_start_offset);
    }

    /// Last offset written by each known producer (what the cleaner must keep so sequence
    /// checks survive compaction).
    pub(crate) fn last_offsets(&self) -> HashMap<i64, i64> {
        self.producers.iter().map(|(id, e)| (*id, e.last_offset())).collect()
    }

    pub(crate) fn clear(&mut self) {
        self.producers.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.producers.len()
    }

    /// Text snapshot taken at `offset` (the log end offset): `0\n<offset>\n<producers>\n`
    /// then per producer `<id> <epoch> <n>` and `n` lines `<first_seq> <last_seq>
    /// <first_offset> <last_offset>`.
    pub(crate) fn encode_snapshot(&self, offset: i64) -> String {
        let mut out = format!("{SNAPSHOT_VERSION}\n{offset}\n{}\n", self.producers.len());
        for (id, entry) in &self.producers {
            out.push_str(&format!("{id} {} {}\n", entry.epoch, entry.batches.len()));
            for b in &entry.batches {
                out.push_str(&format!("{} {} {} {}\n", b.first_seq, b.last_seq, b.first_offset, b.last_offset));
            }
        }
        out
    }

    /// Parses a snapshot; `None` if it is malformed (then the log is scanned instead).
    pub(crate) fn decode_snapshot(text: &str) -> Option<(i64, Self)> {
        let mut lines = text.lines();
        if lines.next()? != SNAPSHOT_VERSION {
            return None;
        }
        let offset: i64 = lines.next()?.parse().ok()?;
        let count: usize = lines.next()?.parse().ok()?;
        let mut producers = HashMap::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let mut head = lines.next()?.split(' ');
            let id: i64 = head.next()?.parse().ok()?;
            let epoch: i16 = head.next()?.parse().ok()?;
            let n: usize = head.next()?.parse().ok()?;
            if n > RETAINED_BATCHES {
                return None;
            }
            let mut batches = VecDeque::with_capacity(RETAINED_BATCHES);
            for _ in 0..n {
                let mut f = lines.next()?.split(' ');
                batches.push_back(BatchRange {
                    first_seq: f.next()?.parse().ok()?,
                    last_seq: f.next()?.parse().ok()?,
                    first_offset: f.next()?.parse().ok()?,
                    last_offset: f.next()?.parse().ok()?,
                });
            }
            producers.insert(id, ProducerEntry { epoch, batches });
        }
        Some((offset, Self { producers }))
    }
}

/// File name of the producer-state snapshot written on clean shutdown.
pub(crate) const SNAPSHOT_FILE: &str = "producer-state-snapshot";
const SNAPSHOT_VERSION: &str = "0";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{build_batch, BatchSpec};

    fn batch(epoch: i16, seq: i32, records: usize, offset: i64) -> Vec<u8> {
        build_batch(&BatchSpec {
            base_offset: offset,
            producer_id: 9,
            producer_epoch: epoch,
            base_sequence: seq,
            values: vec![b"v".to_vec(); records],
            ..BatchSpec::default()
        })
    }

    fn view(bytes: &[u8]) -> Batch<'_> {
        Batch::parse(bytes, 0).expect("valid")
    }

    #[test]
    fn sequence_rules() {
        let mut s = ProducerStateManager::default();
        let b0 = batch(0, 5, 2, 0); // unknown producer, seq != 0: accepted
        assert_eq!(s.check(&view(&b0)).ok(), Some(SequenceCheck::Accept));
        s.record(&view(&b0), None);
        let b1 = batch(0, 7, 3, 2);
        assert_eq!(s.check(&view(&b1)).ok(), Some(SequenceCheck::Accept));
        s.record(&view(&b1), None);
        match s.check(&view(&batch(0, 5, 2, 99))) {
            Ok(SequenceCheck::Duplicate(r)) => assert_eq!((r.first_offset, r.last_offset), (0, 1)),
            other => panic!("expected duplicate, got {other:?}"),
        }
        assert!(matches!(
            s.check(&view(&batch(0, 11, 1, 5))),
            Err(LogError::OutOfOrderSequence { expected: 10, found: 11, .. })
        ));
        assert!(matches!(s.check(&view(&batch(1, 3, 1, 5))), Err(LogError::OutOfOrderSequence { expected: 0, .. })));
        assert_eq!(s.check(&view(&batch(1, 0, 1, 5))).ok(), Some(SequenceCheck::Accept));
        s.record(&view(&batch(1, 0, 1, 5)), None);
        assert!(matches!(
            s.check(&view(&batch(0, 10, 1, 6))),
            Err(LogError::InvalidProducerEpoch { current: 1, found: 0, .. })
        ));
    }

    #[test]
    fn snapshot_round_trip() {
        let mut s = ProducerStateManager::default();
        for (i, seq) in [0, 1, 2, 3, 4, 5, 6].into_iter().enumerate() {
            s.record(&view(&batch(2, seq, 1, i as i64)), None);
        }
        s.record(&view(&batch(2, 7, 3, 7)), None);
        let text = s.encode_snapshot(10);
        let (offset, back) = ProducerStateManager::decode_snapshot(&text).expect("valid");
        assert_eq!(offset, 10);
        assert_eq!(back.len(), 1);
        let entry = &back.producers[&9];
        assert_eq!(entry.batches.len(), RETAINED_BATCHES);
        assert_eq!(entry.batches.back().map(|b| b.last_offset), Some(9));
        assert!(ProducerStateManager::decode_snapshot(&text[..text.len() - 4]).is_none());
        assert!(ProducerStateManager::decode_snapshot("0\n5\n1\n9 0 7\n").is_none());
    }

    #[test]
    fn rollback_restores_previous_state() {
        let mut s = ProducerStateManager::default();
        s.record(&view(&batch(0, 0, 1, 0)), None);
        let mut undo = Undo::new();
        s.record(&view(&batch(0, 1, 1, 1)), Some(&mut undo));
        s.rollback(undo);
        assert!(matches!(s.check(&view(&batch(0, 1, 1, 1))), Ok(SequenceCheck::Accept)));
        assert!(matches!(s.check(&view(&batch(0, 2, 1, 1))), Err(LogError::OutOfOrderSequence { .. })));
    }
}
