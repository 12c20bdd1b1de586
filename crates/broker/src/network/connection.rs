//! One client connection: frame reading, pipelined dispatch, in-order batched replies.
//!
//! The reader parses frames and hands each request to [`handlers::dispatch`]; replies (ready
//! bytes or a task still running, e.g. a long-polling Fetch) go through a bounded channel to
//! the writer, which awaits them in request order — Kafka clients match responses by
//! position as well as by correlation id. The writer only flushes when the next reply is not
//! ready yet, so a burst of pipelined responses leaves in one `write`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::handlers::{self, BrokerState, Reply};

/// Requests a connection may have in flight before the reader stops reading (backpressure).
const MAX_IN_FLIGHT: usize = 64;
/// Write buffer per connection; replies larger than this bypass it.
const WRITE_BUFFER: usize = 32 * 1024;
/// Smallest possible request: api key, api version, correlation id, client id length.
const MIN_REQUEST: usize = 10;

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("request of {size} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: i64, max: usize },
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Serves one connection until the client goes away, a frame is malformed, or shutdown.
pub(crate) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set_nodelay failed");
    }
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
    let mut writer = tokio::spawn(write_loop(wr, rx));
    let max = state.config.socket_request_max_bytes;
    tokio::select! {
        res = read_loop(rd, tx, &state, peer, max) => match res {
            Ok(()) => {
                // Client closed its side: let queued replies drain, as Kafka does.
                if let Err(e) = (&mut writer).await.unwrap_or(Ok(())) {
                    tracing::debug!(%peer, error = %e, "write after client close failed");
                }
            }
            Err(e) => {
                match &e {
                    ConnectionError::Io(io) => tracing::debug!(%peer, error = %io, "connection read failed"),
                    other => tracing::error!(%peer, error = %other, "closing connection"),
                }
                writer.abort();
            }
        },
        res = &mut writer => {
            if let Ok(Err(e)) = res {
                tracing::debug!(%peer, error = %e, "connection write failed");
            }
        }
        _ = shutdown.changed() => writer.abort(),
    }
}

async fn read_loop(
    mut rd: OwnedReadHalf,
    tx: mpsc::Sender<Reply>,
    state: &Arc<BrokerState>,
    peer: SocketAddr,
    max: usize,
) -> Result<(), ConnectionError> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        while buf.len() < 4 {
            if rd.read_buf(&mut buf).await? == 0 {
                return if buf.is_empty() {
                    Ok(())
                } else {
                    Err(ConnectionError::Malformed("connection closed mid-frame".into()))
                };
            }
        }
        let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as i64;
        if size < 0 || size as u64 > max as u64 {
            return Err(ConnectionError::TooLarge { size, max });
        }
        let total = 4 + size as usize;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            while buf.len() < total {
                if rd.read_buf(&mut buf).await? == 0 {
                    return Err(ConnectionError::Malformed("connection closed mid-frame".into()));
                }
            }
        }
        let mut frame = buf.split_to(total).freeze();
        frame.advance(4);
        if frame.len() < MIN_REQUEST {
            return Err(ConnectionError::Malformed(format!(
                "frame of {} bytes is shorter than a request header",
                frame.len()
            )));
        }
        let api_raw = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        // Kafka closes the connection on an api key it does not know; so do we.
        let api =
            ApiKey::try_from(api_raw).map_err(|_| ConnectionError::Malformed(format!("unknown api key {api_raw}")))?;
        let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
            .map_err(|e| ConnectionError::Malformed(format!("{api:?} request header: {e}")))?;
        tracing::trace!(%peer, ?api, version, correlation_id = header.correlation_id, "request");
        let reply = handlers::dispatch(state, api, header, frame, Some(peer))
            .await
            .map_err(|e| ConnectionError::Malformed(e.to_string()))?;
        if tx.send(reply).await.is_err() {
            // Writer is gone (socket error); nothing more can be answered.
            return Ok(());
        }
    }
}

async fn write_loop(wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Reply>) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, wr);
    loop {
        let reply = match rx.try_recv() {
            Ok(r) => r,
            Err(mpsc::error::TryRecvError::Empty) => {
                out.flush().await?;
                match rx.recv().await {
                    Some(r) => r,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        let bytes = match reply {
            Reply::Now(bytes) => bytes,
            Reply::Later(handle) => {
                if !handle.is_finished() {
                    out.flush().await?;
                }
                match handle.await {
                    Ok(Ok(bytes)) => bytes,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "request failed; closing connection");
                        return Err(std::io::Error::other(e.to_string()));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "request handler panicked; closing connection");
                        return Err(std::io::Error::other(e.to_string()));
                    }
                }
            }
        };
        if let Some(bytes) = bytes {
            out.write_all(&bytes).await?;
        }
    }
    out.flush().await?;
    out.into_inner().shutdown().await
}
