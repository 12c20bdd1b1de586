//! The crate's error type and its mapping to Kafka error codes.

use std::io;

use thiserror::Error;

use crate::batch::BatchError;

/// Everything a partition log operation can fail with.
#[derive(Debug, Error)]
pub enum LogError {
    /// A file operation failed; the string says which file and what was being done.
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
    /// Stored or received bytes fail the CRC or structural checks.
    #[error("corrupt record batch: {0}")]
    CorruptRecord(String),
    /// Well-formed bytes the log refuses (wrong magic, inconsistent header, bad offsets).
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// The requested offset is outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { offset: i64, log_start_offset: i64, log_end_offset: i64 },
    /// One batch is larger than `max_message_bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    /// The producer's sequence number is not the next one expected.
    #[error(
        "out of order sequence for producer {producer_id} (epoch {producer_epoch}): expected {expected}, got {found}"
    )]
    OutOfOrderSequence { producer_id: i64, producer_epoch: i16, expected: i32, found: i32 },
    /// The producer's epoch is older than the one the log already saw.
    #[error("producer {producer_id} epoch {found} is older than current epoch {current}")]
    InvalidProducerEpoch { producer_id: i64, current: i16, found: i16 },
    /// A replicated batch starts below the log end offset.
    #[error("replicated batch base offset {found} is below the log end offset {expected}")]
    UnexpectedAppendOffset { expected: i64, found: i64 },
    /// A topic name that cannot be a directory name (or a partition < 0).
    #[error("invalid topic partition {0}")]
    InvalidTopic(String),
    /// The log was deleted; its handle can no longer be used.
    #[error("partition log {0} was deleted")]
    Deleted(String),
}

impl LogError {
    /// The Kafka protocol error code a broker should answer with.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            LogError::Io(..) => 56,                        // KAFKA_STORAGE_ERROR
            LogError::CorruptRecord(_) => 2,               // CORRUPT_MESSAGE
            LogError::InvalidRecord(_) => 87,              // INVALID_RECORD
            LogError::OffsetOutOfRange { .. } => 1,        // OFFSET_OUT_OF_RANGE
            LogError::MessageTooLarge { .. } => 10,        // MESSAGE_TOO_LARGE
            LogError::OutOfOrderSequence { .. } => 45,     // OUT_OF_ORDER_SEQUENCE_NUMBER
            LogError::InvalidProducerEpoch { .. } => 47,   // INVALID_PRODUCER_EPOCH
            LogError::UnexpectedAppendOffset { .. } => -1, // UNKNOWN_SERVER_ERROR
            LogError::InvalidTopic(_) => 17,               // INVALID_TOPIC_EXCEPTION
            LogError::Deleted(_) => 3,                     // UNKNOWN_TOPIC_OR_PARTITION
        }
    }
}

impl From<BatchError> for LogError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::UnsupportedMagic { .. } | BatchError::InvalidHeader { .. } => {
                LogError::InvalidRecord(e.to_string())
            }
            _ => LogError::CorruptRecord(e.to_string()),
        }
    }
}

/// Attaches a description (file and action) to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, LogError>;
}

impl<T> IoContext<T> for Result<T, io::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, LogError> {
        self.map_err(|e| LogError::Io(what(), e))
    }
}
