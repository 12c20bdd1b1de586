//! One TCP connection to a broker: framing, correlation ids, pipelining and version negotiation.
//!
//! A writer task coalesces queued frames into few socket writes; a reader task matches each
//! response to the oldest pending request (Kafka answers in request order on a connection) and
//! hands the raw body to the caller, who decodes it. Any number of requests may be in flight.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::ClientError;
use crate::versions::NegotiatedVersions;

/// Responses larger than this are treated as a corrupt stream rather than allocated.
const MAX_RESPONSE_BYTES: usize = 1 << 30;
/// Coalesce at most this much queued request data into one socket write.
const WRITE_COALESCE_BYTES: usize = 1 << 20;
const QUEUE_DEPTH: usize = 256;

type Reply = oneshot::Sender<Result<Bytes, ClientError>>;
type Pending = Arc<Mutex<VecDeque<(i32, Reply)>>>;

struct Outgoing {
    correlation_id: i32,
    frame: Bytes,
    reply: Option<Reply>,
}

/// A connection to one broker. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Connection {
    addr: String,
    client_id: StrBytes,
    correlation: AtomicI32,
    tx: mpsc::Sender<Outgoing>,
    closed: Arc<AtomicBool>,
    versions: NegotiatedVersions,
    request_timeout: Duration,
    reader: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The writer stops when `tx` drops; the reader would otherwise wait on the socket forever.
        self.reader.abort();
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`) and negotiates API versions.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let io_err = |source| ClientError::Io { addr: addr.to_owned(), source };
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout { addr: addr.to_owned(), ms: connect_timeout.as_millis() })?
            .map_err(io_err)?;
        stream.set_nodelay(true).map_err(io_err)?;
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let closed = Arc::new(AtomicBool::new(false));
        let pending: Pending = Arc::default();
        tokio::spawn(write_loop(addr.to_owned(), write, rx, pending.clone(), closed.clone()));
        let reader = tokio::spawn(read_loop(addr.to_owned(), read, pending, closed.clone()));
        let mut conn = Connection {
            addr: addr.to_owned(),
            client_id: StrBytes::from_string(client_id.to_owned()),
            correlation: AtomicI32::new(0),
            tx,
            closed,
            versions: NegotiatedVersions::default(),
            request_timeout,
            reader,
        };
        conn.versions = conn.negotiate().await?;
        Ok(conn)
    }

    /// `host:port` this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// False once the socket failed or a request timed out; such a connection is replaced.
    pub fn is_usable(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// The version this connection uses for `api`, if any.
    pub fn version(&self, api: ApiKey) -> Option<i16> {
        self.versions.version(api as i16)
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub async fn send<R: Request>(&self, req: &R) -> Result<R::Response, ClientError> {
        let version = self.required_version(R::KEY)?;
        self.send_versioned(req, version).await
    }

    /// Sends `req` at an explicit `version` and waits for its response.
    pub async fn send_versioned<R: Request>(&self, req: &R, version: i16) -> Result<R::Response, ClientError> {
        let rx = self.enqueue(req, version, true).await?;
        let rx = rx.ok_or_else(|| ClientError::ConnectionClosed(self.addr.clone()))?;
        let body = match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(ClientError::ConnectionClosed(self.addr.clone())),
            Err(_) => {
                // The stream position is unknown now: Kafka clients drop the connection too.
                self.closed.store(true, Ordering::Release);
                return Err(ClientError::Timeout { addr: self.addr.clone(), ms: self.request_timeout.as_millis() });
            }
        };
        decode_response::<R::Response>(body, version, R::KEY)
    }

    /// Sends a request that the broker does not answer (Produce with acks=0).
    pub async fn send_no_response<R: Request>(&self, req: &R) -> Result<(), ClientError> {
        let version = self.required_version(R::KEY)?;
        self.enqueue(req, version, false).await.map(|_| ())
    }

    fn required_version(&self, key: i16) -> Result<i16, ClientError> {
        self.versions.version(key).ok_or_else(|| ClientError::UnsupportedVersion {
            addr: self.addr.clone(),
            api: ApiKey::try_from(key).map(|k| format!("{k:?}")).unwrap_or_else(|_| key.to_string()),
        })
    }

    async fn enqueue<R: Request>(
        &self,
        req: &R,
        version: i16,
        expect_response: bool,
    ) -> Result<Option<oneshot::Receiver<Result<Bytes, ClientError>>>, ClientError> {
        if !self.is_usable() {
            return Err(ClientError::ConnectionClosed(self.addr.clone()));
        }
        let correlation_id = self.correlation.fetch_add(1, Ordering::Relaxed);
        let frame = self.encode_frame(req, version, correlation_id)?;
        let (reply, rx) = if expect_response {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.tx
            .send(Outgoing { correlation_id, frame, reply })
            .await
            .map_err(|_| ClientError::ConnectionClosed(self.addr.clone()))?;
        Ok(rx)
    }

    fn encode_frame<R: Request>(&self, req: &R, version: i16, correlation_id: i32) -> Result<Bytes, ClientError> {
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let header_version = R::header_version(version);
        let enc = |e| ClientError::protocol(format!("request api {} v{version}", R::KEY), e);
        let size = header.compute_size(header_version).map_err(enc)? + req.compute_size(version).map_err(enc)?;
        let mut buf = BytesMut::with_capacity(4 + size);
        buf.put_i32(size as i32);
        header.encode(&mut buf, header_version).map_err(enc)?;
        req.encode(&mut buf, version).map_err(enc)?;
        Ok(buf.freeze())
    }

    async fn negotiate(&self) -> Result<NegotiatedVersions, ClientError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strom-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut version = 3;
        loop {
            let rx = self
                .enqueue(&req, version, true)
                .await?
                .ok_or_else(|| ClientError::ConnectionClosed(self.addr.clone()))?;
            let body = tokio::time::timeout(self.request_timeout, rx)
                .await
                .map_err(|_| ClientError::Timeout { addr: self.addr.clone(), ms: self.request_timeout.as_millis() })?
                .map_err(|_| ClientError::ConnectionClosed(self.addr.clone()))??;
            // KIP-511: a broker that does not know our ApiVersions version answers
            // UNSUPPORTED_VERSION with a v0 body listing what it does support.
            let unsupported = body.len() >= 6 && (&body[4..6]).get_i16() == 35;
            if unsupported {
                if version == 0 {
                    return Err(ClientError::kafka(35, "ApiVersions v0", None));
                }
                // Some peers (librdkafka's mock) garble that v0 body: then step down one version.
                let broker_max = decode_response::<ApiVersionsResponse>(body, 0, ApiKey::ApiVersions as i16)
                    .ok()
                    .and_then(|r| {
                        r.api_keys.iter().find(|k| k.api_key == ApiKey::ApiVersions as i16).map(|k| k.max_version)
                    })
                    .unwrap_or(version - 1);
                version = broker_max.clamp(0, version - 1);
                continue;
            }
            let resp: ApiVersionsResponse = decode_response(body, version, ApiKey::ApiVersions as i16)?;
            crate::error::check(resp.error_code, || format!("ApiVersions from {}", self.addr), None)?;
            return Ok(NegotiatedVersions::negotiate(
                resp.api_keys.iter().map(|k| (k.api_key, k.min_version, k.max_version)),
            ));
        }
    }
}

fn decode_response<T: Decodable + HeaderVersion>(mut body: Bytes, version: i16, key: i16) -> Result<T, ClientError> {
    let what = || format!("response api {key} v{version}");
    ResponseHeader::decode(&mut body, T::header_version(version)).map_err(|e| ClientError::protocol(what(), e))?;
    T::decode(&mut body, version).map_err(|e| ClientError::protocol(what(), e))
}

fn fail_all(pending: &Pending, err: impl Fn() -> ClientError) {
    let drained: Vec<_> = match pending.lock() {
        Ok(mut q) => q.drain(..).collect(),
        Err(poisoned) => poisoned.into_inner().drain(..).collect(),
    };
    for (_, reply) in drained {
        let _ = reply.send(Err(err()));
    }
}

async fn write_loop(
    addr: String,
    mut write: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    pending: Pending,
    closed: Arc<AtomicBool>,
) {
    let mut buf = BytesMut::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            if let Some(reply) = out.reply {
                if closed.load(Ordering::Acquire) {
                    // The reader is gone; nobody would ever answer this request.
                    let _ = reply.send(Err(ClientError::ConnectionClosed(addr.clone())));
                    next = rx.try_recv().ok();
                    continue;
                } else if let Ok(mut q) = pending.lock() {
                    q.push_back((out.correlation_id, reply));
                }
            }
            buf.extend_from_slice(&out.frame);
            if buf.len() < WRITE_COALESCE_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = write.write_all(&buf).await {
            tracing::debug!(%addr, error = %e, "write failed");
            closed.store(true, Ordering::Release);
            fail_all(&pending, || ClientError::ConnectionClosed(addr.clone()));
            return;
        }
        buf.clear();
    }
}

async fn read_loop(addr: String, read: OwnedReadHalf, pending: Pending, closed: Arc<AtomicBool>) {
    let mut read = BufReader::with_capacity(64 * 1024, read);
    let result: Result<(), ClientError> = async {
        loop {
            let len = match read.read_i32().await {
                Ok(len) => len,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(ClientError::ConnectionClosed(addr.clone()))
                }
                Err(source) => return Err(ClientError::Io { addr: addr.clone(), source }),
            };
            if len < 4 || len as usize > MAX_RESPONSE_BYTES {
                return Err(ClientError::protocol("response frame", format!("invalid length {len}")));
            }
            let mut body = BytesMut::zeroed(len as usize);
            read.read_exact(&mut body).await.map_err(|source| ClientError::Io { addr: addr.clone(), source })?;
            let correlation_id = (&body[..4]).get_i32();
            let next = pending.lock().ok().and_then(|mut q| q.pop_front());
            match next {
                Some((expected, reply)) if expected == correlation_id => {
                    let _ = reply.send(Ok(body.freeze()));
                }
                Some((expected, reply)) => {
                    let err = ClientError::protocol(
                        "response",
                        format!("correlation id {correlation_id}, expected {expected}"),
                    );
                    let _ = reply.send(Err(ClientError::ConnectionClosed(addr.clone())));
                    return Err(err);
                }
                None => {
                    return Err(ClientError::protocol(
                        "response",
                        format!("unsolicited response with correlation id {correlation_id}"),
                    ))
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(%addr, error = %e, "connection closed");
    }
    closed.store(true, Ordering::Release);
    fail_all(&pending, || ClientError::ConnectionClosed(addr.clone()));
}
