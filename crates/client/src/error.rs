//! The client's error type.

use kafka_protocol::error::ResponseError;

/// Everything that can go wrong talking to a Kafka-protocol broker.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o error talking to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection to {0} is closed")]
    ConnectionClosed(String),
    #[error("request to {addr} timed out after {ms} ms")]
    Timeout { addr: String, ms: u128 },
    #[error("could not encode or decode {what}: {message}")]
    Protocol { what: String, message: String },
    #[error("broker {addr} does not support {api} in any version this client implements")]
    UnsupportedVersion { addr: String, api: String },
    #[error("{context}: {error}{}", .message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka { error: ResponseError, context: String, message: Option<String> },
    #[error("no broker reachable (tried {0})")]
    NoBrokerAvailable(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl ClientError {
    pub(crate) fn protocol(what: impl Into<String>, err: impl std::fmt::Display) -> Self {
        ClientError::Protocol { what: what.into(), message: err.to_string() }
    }

    /// Builds the error for a non-zero Kafka error code.
    pub fn kafka(code: i16, context: impl Into<String>, message: Option<String>) -> Self {
        ClientError::Kafka {
            error: ResponseError::try_from_code(code).unwrap_or(ResponseError::Unknown(code)),
            context: context.into(),
            message,
        }
    }

    /// The Kafka error carried by this error, if it is one.
    pub fn kafka_error(&self) -> Option<ResponseError> {
        match self {
            ClientError::Kafka { error, .. } => Some(*error),
            _ => None,
        }
    }

    /// Whether retrying (usually after refreshing metadata) can succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kafka { error, .. } => error.is_retriable(),
            ClientError::Io { .. } | ClientError::ConnectionClosed(_) | ClientError::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// Converts a response error code into `Ok(())` or a [`ClientError::Kafka`].
pub(crate) fn check(code: i16, context: impl FnOnce() -> String, message: Option<&str>) -> Result<(), ClientError> {
    if code == 0 {
        Ok(())
    } else {
        Err(ClientError::kafka(code, context(), message.map(str::to_owned)))
    }
}
