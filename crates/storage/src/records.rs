//! The records inside a v2 batch: decompression with the batch's codec, a zero-copy view of
//! each record, and re-encoding a filtered set of records into a new batch (what the cleaner
//! does; the append path only needs [`check_keys`]).
//!
//! Record layout (Kafka's `DefaultRecord`): `length varint, attributes i8, timestampDelta
//! varlong, offsetDelta varint, keyLength varint, key, valueLength varint, value, headers`.
//! Headers are never interpreted here: they are carried over byte for byte.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use crate::batch::{self, read_varint, Batch, HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2};
use crate::error::LogError;

/// Attribute bit 6: `baseTimestamp` holds the delete horizon of the batch's tombstones and
/// markers (KIP-534).
pub(crate) const DELETE_HORIZON_MASK: i16 = 0x40;
const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_MASK: i16 = 0x08;

/// One record of a decompressed batch, borrowing from the decompressed bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRecord<'a> {
    pub(crate) timestamp_delta: i64,
    pub(crate) offset_delta: i32,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    /// The header count and headers, exactly as stored.
    pub(crate) headers: &'a [u8],
}

fn corrupt(what: &str) -> LogError {
    LogError::CorruptRecord(what.to_string())
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A length-prefixed byte field; -1 is null.
fn read_field(bytes: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
    let (len, rest) = read_varint(bytes)?;
    if len < 0 {
        return Some((None, rest));
    }
    let len = usize::try_from(len).ok()?;
    (rest.len() >= len).then(|| (Some(&rest[..len]), &rest[len..]))
}

fn put_field(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// The batch's records section, decompressed if the batch is compressed.
pub(crate) fn records_section(batch: &Batch<'_>) -> Result<Bytes, LogError> {
    let raw = batch
        .as_bytes()
        .get(HEADER_SIZE..batch.size())
        .ok_or_else(|| corrupt("record batch view does not hold the records"))?;
    let mut input = Bytes::copy_from_slice(raw);
    let take = |b: &mut Bytes| Ok(std::mem::take(b));
    let out = match batch.compression() {
        0 => Ok(input),
        1 => Gzip::decompress(&mut input, take),
        2 => Snappy::decompress(&mut input, take),
        3 => Lz4::decompress(&mut input, take),
        4 => Zstd::decompress(&mut input, take),
        c => return Err(LogError::CorruptRecord(format!("unknown compression codec {c}"))),
    };
    out.map_err(|e| LogError::CorruptRecord(format!("decompressing a batch at offset {}: {e}", batch.base_offset())))
}

/// Parses `count` records from a (decompressed) records section.
pub(crate) fn parse_records(mut section: &[u8], count: i32) -> Result<Vec<RawRecord<'_>>, LogError> {
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1 << 16));
    for _ in 0..count {
        let (len, rest) = read_varint(section).ok_or_else(|| corrupt("bad record length"))?;
        let len = usize::try_from(len).map_err(|_| corrupt("negative record length"))?;
        if rest.len() < len {
            return Err(corrupt("record extends past its batch"));
        }
        let (body, after) = rest.split_at(len);
        out.push(parse_record(body).ok_or_else(|| corrupt("malformed record"))?);
        section = after;
    }
    Ok(out)
}

fn parse_record(body: &[u8]) -> Option<RawRecord<'_>> {
    let body = body.get(1..)?; // attributes: unused by v2
    let (timestamp_delta, body) = read_varint(body)?;
    let (offset_delta, body) = read_varint(body)?;
    let (key, body) = read_field(body)?;
    let (value, headers) = read_field(body)?;
    Some(RawRecord { timestamp_delta, offset_delta: i32::try_from(offset_delta).ok()?, key, value, headers })
}

/// Kafka's `LogValidator` rule for compacted topics: every record needs a key.
pub(crate) fn check_keys(batch: &Batch<'_>) -> Result<(), LogError> {
    if batch.is_control() {
        return Ok(());
    }
    let section = records_section(batch)?;
    for record in parse_records(&section, batch.record_count())? {
        if record.key.is_none() {
            return Err(LogError::InvalidRecord("Compacted topic cannot accept message without key".into()));
        }
    }
    Ok(())
}

fn compress(codec: u8, raw: Vec<u8>) -> Result<Vec<u8>, LogError> {
    let fill = |b: &mut BytesMut| {
        b.put_slice(&raw);
        Ok(())
    };
    let mut out = BytesMut::new();
    let done = match codec {
        0 => return Ok(raw),
        1 => Gzip::compress(&mut out, fill),
        2 => Snappy::compress(&mut out, fill),
        3 => Lz4::compress(&mut out, fill),
        4 => Zstd::compress(&mut out, fill),
        c => return Err(LogError::CorruptRecord(format!("unknown compression codec {c}"))),
    };
    done.map_err(|e| LogError::CorruptRecord(format!("recompressing a cleaned batch: {e}")))?;
    Ok(out.to_vec())
}

/// Rebuilds `original` keeping only `retained` (records of `original`, in order), as Kafka's
/// `MemoryRecords.buildRetainedRecordsInto`: same base offset, last offset (so the producer's
/// last sequence survives), producer fields, leader epoch and codec. With `delete_horizon`
/// the horizon becomes the base timestamp and the record timestamps are re-based on it.
pub(crate) fn rebuild_batch(
    original: &Batch<'_>,
    retained: &[RawRecord<'_>],
    delete_horizon: Option<i64>,
) -> Result<Vec<u8>, LogError> {
    let base_ts = original.base_timestamp();
    let abs = |r: &RawRecord<'_>| base_ts.wrapping_add(r.timestamp_delta);
    let log_append_time = original.attributes() & TIMESTAMP_TYPE_MASK != 0;
    let max_ts = if log_append_time {
        original.max_timestamp()
    } else {
        retained.iter().map(abs).max().unwrap_or(original.max_timestamp())
    };
    let new_base_ts = match (delete_horizon, retained.first()) {
        (Some(h), _) => h,
        (None, Some(first)) => abs(first),
        (None, None) => max_ts,
    };
    let mut section = Vec::with_capacity(retained.iter().map(|r| r.headers.len() + 32).sum());
    let mut body = Vec::with_capacity(64);
    for r in retained {
        body.clear();
        body.push(0);
        put_varint(&mut body, abs(r).wrapping_sub(new_base_ts));
        put_varint(&mut body, i64::from(r.offset_delta));
        put_field(&mut body, r.key);
        put_field(&mut body, r.value);
        body.extend_from_slice(r.headers);
        put_varint(&mut section, body.len() as i64);
        section.extend_from_slice(&body);
    }
    let codec = if retained.is_empty() { 0 } else { original.compression() };
    let records = compress(codec, section)?;
    let mut attributes = original.attributes() & !COMPRESSION_MASK & !DELETE_HORIZON_MASK;
    attributes |= i16::from(codec);
    if delete_horizon.is_some() {
        attributes |= DELETE_HORIZON_MASK;
    }
    let mut out = Vec::with_capacity(HEADER_SIZE + records.len());
    out.extend_from_slice(&original.base_offset().to_be_bytes());
    let length = i32::try_from(HEADER_SIZE - LOG_OVERHEAD + records.len())
        .map_err(|_| LogError::InvalidRecord("cleaned batch exceeds 2 GiB".into()))?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&original.partition_leader_epoch().to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&original.last_offset_delta().to_be_bytes());
    out.extend_from_slice(&new_base_ts.to_be_bytes());
    out.extend_from_slice(&max_ts.to_be_bytes());
    out.extend_from_slice(&original.producer_id().to_be_bytes());
    out.extend_from_slice(&original.producer_epoch().to_be_bytes());
    out.extend_from_slice(&original.base_sequence().to_be_bytes());
    out.extend_from_slice(&(retained.len() as i32).to_be_bytes());
    out.extend_from_slice(&records);
    let crc = crc32c::crc32c(&out[batch::ATTRIBUTES_OFFSET..]);
    out[batch::CRC_OFFSET..batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// The delete horizon a batch carries (KIP-534), if any.
pub(crate) fn delete_horizon(batch: &Batch<'_>) -> Option<i64> {
    (batch.attributes() & DELETE_HORIZON_MASK != 0).then(|| batch.base_timestamp())
}

/// Encoding helpers for tests and benchmarks: keyed records with any codec.
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// A record as `(key, value)`; `None` is null.
    pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

    /// An offset-0 batch of `(key, value)` records (`None` value = tombstone) compressed with
    /// `codec`; producer fields as given (-1 for a non-idempotent producer).
    pub fn keyed_batch(records: &[KeyValue<'_>], codec: u8, base_timestamp: i64, producer: (i64, i16, i32)) -> Vec<u8> {
        let mut section = Vec::new();
        let mut body = Vec::new();
        for (i, (k, v)) in records.iter().enumerate() {
            body.clear();
            body.push(0);
            put_varint(&mut body, i as i64);
            put_varint(&mut body, i as i64);
            put_field(&mut body, *k);
            put_field(&mut body, *v);
            put_varint(&mut body, 0);
            put_varint(&mut section, body.len() as i64);
            section.extend_from_slice(&body);
        }
        let records_bytes = compress(codec, section).unwrap_or_default();
        let count = records.len() as i32;
        let mut out = Vec::new();
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&((HEADER_SIZE - LOG_OVERHEAD + records_bytes.len()) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&i16::from(codec).to_be_bytes());
        out.extend_from_slice(&(count - 1).max(0).to_be_bytes());
        out.extend_from_slice(&base_timestamp.to_be_bytes());
        out.extend_from_slice(&(base_timestamp + i64::from(count - 1).max(0)).to_be_bytes());
        out.extend_from_slice(&producer.0.to_be_bytes());
        out.extend_from_slice(&producer.1.to_be_bytes());
        out.extend_from_slice(&producer.2.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&records_bytes);
        let crc = crc32c::crc32c(&out[batch::ATTRIBUTES_OFFSET..]);
        out[batch::CRC_OFFSET..batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Every `(offset, key, value)` in concatenated batches (decompressing as needed).
    #[allow(clippy::type_complexity)]
    pub fn decode_all(bytes: &[u8]) -> Result<Vec<(i64, Option<Vec<u8>>, Option<Vec<u8>>)>, LogError> {
        let mut out = Vec::new();
        for item in batch::BatchIter::new(bytes) {
            let (_, b) = item?;
            let section = records_section(&b)?;
            for r in parse_records(&section, b.record_count())? {
                out.push((
                    b.base_offset() + i64::from(r.offset_delta),
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::to_vec),
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn rebuild_keeps_offsets_and_codec() {
        for codec in 0..=4u8 {
            let bytes = keyed_batch(
                &[(Some(b"a"), Some(b"1")), (Some(b"b"), None), (Some(b"c"), Some(b"3"))],
                codec,
                1000,
                (7, 1, 10),
            );
            let b = Batch::parse_validated(&bytes, 0).expect("valid");
            let section = records_section(&b).expect("decompress");
            let recs = parse_records(&section, b.record_count()).expect("parse");
            let kept = [recs[1], recs[2]];
            let out = rebuild_batch(&b, &kept, Some(5000)).expect("rebuild");
            let nb = Batch::parse_validated(&out, 0).expect("rebuilt batch valid");
            assert_eq!(nb.compression(), codec);
            assert_eq!(nb.last_offset(), 2);
            assert_eq!(nb.record_count(), 2);
            assert_eq!(nb.base_sequence(), 10);
            assert_eq!(delete_horizon(&nb), Some(5000));
            assert_eq!(nb.max_timestamp(), 1002);
            let all = decode_all(&out).expect("decode");
            assert_eq!(all, vec![(1, Some(b"b".to_vec()), None), (2, Some(b"c".to_vec()), Some(b"3".to_vec()))]);
        }
    }

    #[test]
    fn keyless_records_are_refused() {
        let bytes = keyed_batch(&[(Some(b"a"), Some(b"1")), (None, Some(b"2"))], 1, 0, (-1, -1, -1));
        let b = Batch::parse_validated(&bytes, 0).expect("valid");
        let err = check_keys(&b).expect_err("keyless");
        assert_eq!(err.kafka_error_code(), 87);
        assert!(err.to_string().contains("Compacted topic cannot accept message without key"));
    }
}
