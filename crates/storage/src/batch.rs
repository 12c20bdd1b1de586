//! Kafka v2 (magic 2) record batch headers: a zero-copy view, an iterator over concatenated
//! batches and the validation the log applies before it stores anything.
//!
//! Records inside a batch are never decoded here (compressed batches are opaque); the log only
//! ever patches `baseOffset` and `partitionLeaderEpoch`, which the CRC does not cover, so a batch
//! is stored byte-for-byte as the producer sent it.

use thiserror::Error;

/// Byte offset of `baseOffset` (i64).
pub const BASE_OFFSET_OFFSET: usize = 0;
/// Byte offset of `batchLength` (i32, counts the bytes after this field).
pub const LENGTH_OFFSET: usize = 8;
/// Byte offset of `partitionLeaderEpoch` (i32).
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
/// Byte offset of `magic` (i8).
pub const MAGIC_OFFSET: usize = 16;
/// Byte offset of `crc` (u32, crc32c of every byte from `attributes` to the end).
pub const CRC_OFFSET: usize = 17;
/// Byte offset of `attributes` (i16); the CRC covers the batch from here.
pub const ATTRIBUTES_OFFSET: usize = 21;
/// Byte offset of `lastOffsetDelta` (i32).
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Byte offset of `baseTimestamp` (i64).
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
/// Byte offset of `maxTimestamp` (i64).
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
/// Byte offset of `producerId` (i64).
pub const PRODUCER_ID_OFFSET: usize = 43;
/// Byte offset of `producerEpoch` (i16).
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
/// Byte offset of `baseSequence` (i32).
pub const BASE_SEQUENCE_OFFSET: usize = 53;
/// Byte offset of `recordCount` (i32).
pub const RECORD_COUNT_OFFSET: usize = 57;
/// Size of the fixed batch header; records start here.
pub const HEADER_SIZE: usize = 61;
/// `baseOffset` + `batchLength`: the bytes not counted by `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// The only record batch format the log stores.
pub const MAGIC_V2: i8 = 2;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_MASK: i16 = 0x08;
const TRANSACTIONAL_MASK: i16 = 0x10;
const CONTROL_MASK: i16 = 0x20;

/// Why a byte range is not a valid v2 record batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    /// Fewer bytes than a batch header (or than the batch's declared length) remain.
    #[error("truncated record batch at byte {position}: need {needed} bytes, have {available}")]
    Truncated { position: usize, needed: usize, available: usize },
    /// `batchLength` is smaller than the fixed header or absurdly large.
    #[error("invalid batchLength {length} at byte {position}")]
    InvalidLength { position: usize, length: i32 },
    /// Only magic 2 is supported.
    #[error("unsupported record batch magic {magic} at byte {position} (only v2 is supported)")]
    UnsupportedMagic { position: usize, magic: i8 },
    /// The stored CRC does not match the crc32c of the batch.
    #[error("record batch CRC mismatch at byte {position}: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { position: usize, stored: u32, computed: u32 },
    /// Header fields that contradict each other (record count vs. offset delta, negatives).
    #[error("invalid record batch header at byte {position}: {reason}")]
    InvalidHeader { position: usize, reason: &'static str },
}

impl BatchError {
    /// True when the bytes simply end early, as after a torn write.
    pub fn is_truncation(&self) -> bool {
        matches!(self, BatchError::Truncated { .. })
    }
}

/// A read-only view of one record batch: the whole batch, or only its 61-byte header when
/// made by [`Batch::parse_header`] (then [`Batch::as_bytes`] is just the header).
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    bytes: &'a [u8],
    size: usize,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Total size of the batch starting at `bytes[0]`, read from its `batchLength` field.
///
/// Only needs the first 12 bytes; does not check magic or CRC.
pub fn batch_size(bytes: &[u8], position: usize) -> Result<usize, BatchError> {
    if bytes.len() < LOG_OVERHEAD {
        return Err(BatchError::Truncated { position, needed: LOG_OVERHEAD, available: bytes.len() });
    }
    let length = i32_at(bytes, LENGTH_OFFSET);
    if length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
        return Err(BatchError::InvalidLength { position, length });
    }
    Ok(length as usize + LOG_OVERHEAD)
}

impl<'a> Batch<'a> {
    /// Views the batch at the start of `bytes` after checking the header's shape (length,
    /// magic, field consistency) but not the CRC. `position` is only used in error messages.
    /// The view covers exactly the batch; `bytes` may continue past it.
    pub fn parse(bytes: &'a [u8], position: usize) -> Result<Self, BatchError> {
        let size = batch_size(bytes, position)?;
        if bytes.len() < size {
            return Err(BatchError::Truncated { position, needed: size, available: bytes.len() });
        }
        let batch = Batch { bytes: &bytes[..size], size };
        batch.check_header(position)?;
        Ok(batch)
    }

    /// Views only the header at the start of `bytes` (at least [`HEADER_SIZE`] bytes); the
    /// records need not be present. Used to walk stored batches without reading them.
    pub fn parse_header(bytes: &'a [u8], position: usize) -> Result<Self, BatchError> {
        let size = batch_size(bytes, position)?;
        if bytes.len() < HEADER_SIZE {
            return Err(BatchError::Truncated { position, needed: HEADER_SIZE, available: bytes.len() });
        }
        let batch = Batch { bytes: &bytes[..HEADER_SIZE], size };
        batch.check_header(position)?;
        Ok(batch)
    }

    /// Like [`Batch::parse`] and also verifies the CRC.
    pub fn parse_validated(bytes: &'a [u8], position: usize) -> Result<Self, BatchError> {
        let batch = Self::parse(bytes, position)?;
        batch.check_crc(position)?;
        Ok(batch)
    }

    fn check_header(&self, position: usize) -> Result<(), BatchError> {
        let magic = self.magic();
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { position, magic });
        }
        if self.last_offset_delta() < 0 {
            return Err(BatchError::InvalidHeader { position, reason: "negative lastOffsetDelta" });
        }
        if self.record_count() < 0 {
            return Err(BatchError::InvalidHeader { position, reason: "negative recordCount" });
        }
        Ok(())
    }

    /// Verifies the crc32c over `attributes..end`.
    pub fn check_crc(&self, position: usize) -> Result<(), BatchError> {
        if self.bytes.len() < self.size {
            return Err(BatchError::Truncated { position, needed: self.size, available: self.bytes.len() });
        }
        let stored = self.crc();
        let computed = crc32c::crc32c(&self.bytes[ATTRIBUTES_OFFSET..]);
        if stored != computed {
            return Err(BatchError::CrcMismatch { position, stored, computed });
        }
        Ok(())
    }

    /// The whole batch, header included (only the header for a header-only view).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Total size in bytes (`batchLength + 12`).
    pub fn size(&self) -> usize {
        self.size
    }
    pub fn base_offset(&self) -> i64 {
        i64_at(self.bytes, BASE_OFFSET_OFFSET)
    }
    /// Offset of the batch's last record (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }
    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        i32_at(self.bytes, PARTITION_LEADER_EPOCH_OFFSET)
    }
    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC_OFFSET] as i8
    }
    pub fn crc(&self) -> u32 {
        i32_at(self.bytes, CRC_OFFSET) as u32
    }
    pub fn attributes(&self) -> i16 {
        i16_at(self.bytes, ATTRIBUTES_OFFSET)
    }
    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes() & COMPRESSION_MASK) as u8
    }
    /// Whether the timestamps are broker append time rather than producer create time.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & TIMESTAMP_TYPE_MASK != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_MASK != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_MASK != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        i32_at(self.bytes, LAST_OFFSET_DELTA_OFFSET)
    }
    pub fn base_timestamp(&self) -> i64 {
        i64_at(self.bytes, BASE_TIMESTAMP_OFFSET)
    }
    pub fn max_timestamp(&self) -> i64 {
        i64_at(self.bytes, MAX_TIMESTAMP_OFFSET)
    }
    pub fn producer_id(&self) -> i64 {
        i64_at(self.bytes, PRODUCER_ID_OFFSET)
    }
    pub fn producer_epoch(&self) -> i16 {
        i16_at(self.bytes, PRODUCER_EPOCH_OFFSET)
    }
    pub fn base_sequence(&self) -> i32 {
        i32_at(self.bytes, BASE_SEQUENCE_OFFSET)
    }
    /// Sequence number of the last record, wrapping at `i32::MAX` as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        let seq = self.base_sequence();
        if seq < 0 {
            return seq;
        }
        let last = i64::from(seq) + i64::from(self.last_offset_delta());
        (last % (i64::from(i32::MAX) + 1)) as i32
    }
    pub fn record_count(&self) -> i32 {
        i32_at(self.bytes, RECORD_COUNT_OFFSET)
    }

    /// First record whose timestamp is `>= ts`, as `(offset, timestamp)`.
    ///
    /// Exact for uncompressed batches (reads only each record's length, timestamp and offset
    /// deltas); a compressed batch is opaque, so it answers with the batch's base offset and
    /// max timestamp, which errs towards returning a few earlier records, never skipping any.
    pub fn first_record_at_or_after(&self, ts: i64) -> Option<(i64, i64)> {
        if self.max_timestamp() < ts {
            return None;
        }
        if self.is_log_append_time() {
            return Some((self.base_offset(), self.max_timestamp()));
        }
        if self.compression() != 0 || self.bytes.len() < self.size {
            return Some((self.base_offset(), self.max_timestamp()));
        }
        let mut cursor = &self.bytes[HEADER_SIZE..];
        for _ in 0..self.record_count() {
            let (len, rest) = read_varint(cursor)?;
            let len = usize::try_from(len).ok()?;
            if rest.len() < len {
                return None;
            }
            let (record, after) = rest.split_at(len);
            // record: attributes i8, timestampDelta varlong, offsetDelta varint, ...
            let body = record.get(1..)?;
            let (ts_delta, body) = read_varint(body)?;
            let (offset_delta, _) = read_varint(body)?;
            let record_ts = self.base_timestamp().wrapping_add(ts_delta);
            if record_ts >= ts {
                return Some((self.base_offset() + offset_delta, record_ts));
            }
            cursor = after;
        }
        Some((self.base_offset(), self.max_timestamp()))
    }
}

/// Reads one zig-zag varint (Kafka's varint/varlong encoding).
pub(crate) fn read_varint(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let mut value: u64 = 0;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let decoded = ((value >> 1) as i64) ^ -((value & 1) as i64);
            return Some((decoded, &bytes[i + 1..]));
        }
    }
    None
}

/// Iterates over concatenated batches, checking each header (and optionally its CRC).
///
/// Stops after the first error; the error's `position` is relative to the start of the slice.
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    position: usize,
    validate_crc: bool,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// Iterates with full validation (header and CRC).
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0, validate_crc: true, failed: false }
    }

    /// Iterates checking headers only (for bytes already validated when they were written).
    pub fn headers_only(bytes: &'a [u8]) -> Self {
        Self { validate_crc: false, ..Self::new(bytes) }
    }

    /// Byte position of the next batch (after the last one returned).
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(usize, Batch<'a>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.bytes.len() {
            return None;
        }
        let rest = &self.bytes[self.position..];
        let parsed = if self.validate_crc {
            Batch::parse_validated(rest, self.position)
        } else {
            Batch::parse(rest, self.position)
        };
        match parsed {
            Ok(batch) => {
                let at = self.position;
                self.position += batch.size();
                Some(Ok((at, batch)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Overwrites `baseOffset` and `partitionLeaderEpoch` of the batch at the start of `bytes`.
/// The CRC stays valid because it does not cover these fields.
pub fn patch_header(bytes: &mut [u8], base_offset: i64, leader_epoch: i32) {
    bytes[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    bytes[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Builders used by this crate's tests and benchmarks (not part of the stable API).
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// Fields for a synthetic uncompressed batch.
    #[derive(Clone, Debug)]
    pub struct BatchSpec {
        pub base_offset: i64,
        pub leader_epoch: i32,
        pub base_timestamp: i64,
        pub producer_id: i64,
        pub producer_epoch: i16,
        pub base_sequence: i32,
        /// One entry per record; each record's value.
        pub values: Vec<Vec<u8>>,
    }

    impl Default for BatchSpec {
        fn default() -> Self {
            Self {
                base_offset: 0,
                leader_epoch: -1,
                base_timestamp: 1_700_000_000_000,
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
                values: vec![b"value".to_vec()],
            }
        }
    }

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            if z < 0x80 {
                out.push(z as u8);
                return;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }

    /// Encodes an uncompressed v2 batch; record `i` has timestamp `base_timestamp + i`.
    pub fn build_batch(spec: &BatchSpec) -> Vec<u8> {
        let mut records = Vec::new();
        for (i, value) in spec.values.iter().enumerate() {
            let mut body = Vec::with_capacity(value.len() + 16);
            body.push(0); // attributes
            put_varint(&mut body, i as i64); // timestamp delta
            put_varint(&mut body, i as i64); // offset delta
            put_varint(&mut body, -1); // key: null
            put_varint(&mut body, value.len() as i64);
            body.extend_from_slice(value);
            put_varint(&mut body, 0); // headers
            put_varint(&mut records, body.len() as i64);
            records.extend_from_slice(&body);
        }
        let count = spec.values.len() as i32;
        let mut out = Vec::with_capacity(HEADER_SIZE + records.len());
        out.extend_from_slice(&spec.base_offset.to_be_bytes());
        out.extend_from_slice(&((HEADER_SIZE - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
        out.extend_from_slice(&spec.leader_epoch.to_be_bytes());
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&[0; 4]); // crc, filled below
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&(count - 1).max(0).to_be_bytes());
        out.extend_from_slice(&spec.base_timestamp.to_be_bytes());
        let max_ts = spec.base_timestamp + i64::from(count - 1).max(0);
        out.extend_from_slice(&max_ts.to_be_bytes());
        out.extend_from_slice(&spec.producer_id.to_be_bytes());
        out.extend_from_slice(&spec.producer_epoch.to_be_bytes());
        out.extend_from_slice(&spec.base_sequence.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&records);
        let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn parses_and_validates_a_built_batch() {
        let spec = BatchSpec { values: vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()], ..BatchSpec::default() };
        let bytes = build_batch(&spec);
        let batch = Batch::parse_validated(&bytes, 0).expect("valid batch");
        assert_eq!(batch.record_count(), 3);
        assert_eq!(batch.last_offset_delta(), 2);
        assert_eq!(batch.size(), bytes.len());
        assert_eq!(batch.max_timestamp(), spec.base_timestamp + 2);
        assert_eq!(batch.first_record_at_or_after(spec.base_timestamp + 1), Some((1, spec.base_timestamp + 1)));
        assert_eq!(batch.first_record_at_or_after(spec.base_timestamp + 3), None);
    }

    #[test]
    fn patching_keeps_crc_valid() {
        let mut bytes = build_batch(&BatchSpec::default());
        patch_header(&mut bytes, 42, 7);
        let batch = Batch::parse_validated(&bytes, 0).expect("still valid");
        assert_eq!(batch.base_offset(), 42);
        assert_eq!(batch.partition_leader_epoch(), 7);
    }

    #[test]
    fn detects_flipped_byte_and_truncation() {
        let mut bytes = build_batch(&BatchSpec::default());
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert!(matches!(Batch::parse_validated(&bytes, 0), Err(BatchError::CrcMismatch { .. })));
        let bytes = build_batch(&BatchSpec::default());
        let err = Batch::parse(&bytes[..bytes.len() - 3], 0).expect_err("truncated");
        assert!(err.is_truncation());
        let mut bad_magic = build_batch(&BatchSpec::default());
        bad_magic[MAGIC_OFFSET] = 1;
        assert!(matches!(Batch::parse(&bad_magic, 0), Err(BatchError::UnsupportedMagic { magic: 1, .. })));
    }

    #[test]
    fn iterates_concatenated_batches_and_stops_at_garbage() {
        let mut bytes = build_batch(&BatchSpec::default());
        let second = bytes.len();
        bytes.extend(build_batch(&BatchSpec { base_offset: 1, ..BatchSpec::default() }));
        bytes.extend_from_slice(&[0, 0, 0]);
        let items: Vec<_> = BatchIter::new(&bytes).collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[1].as_ref().map(|(p, _)| *p).ok(), Some(second));
        assert!(items[2].is_err());
    }
}
