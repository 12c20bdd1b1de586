//! Test harness: an embedded keeper, a broker on port 0, and a minimal Kafka client that
//! speaks the protocol through `kafka-protocol`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strom_broker::{Broker, BrokerConfig};
use strom_keeper::config::KeeperConfig;
use strom_keeper::server::KeeperServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A keeper and a broker, each with its own temp dir.
pub struct Cluster {
    pub keeper: Option<KeeperServer>,
    pub broker: Broker,
    pub keeper_addr: SocketAddr,
    pub chroot: String,
    _dirs: Vec<tempfile::TempDir>,
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

impl Cluster {
    pub async fn start(extra: &str) -> Cluster {
        init_tracing();
        let kdir = tempfile::tempdir().unwrap();
        let keeper = KeeperServer::start(KeeperConfig::standalone(kdir.path(), "127.0.0.1:0".parse().unwrap()))
            .await
            .expect("keeper starts");
        let keeper_addr = keeper.client_addr();
        let ldir = tempfile::tempdir().unwrap();
        let chroot = "/strom".to_string();
        let props = format!(
            "broker.id=1\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs={}\nzookeeper.connect={}{}\nzookeeper.session.timeout.ms=6000\n{extra}\n",
            ldir.path().display(),
            keeper_addr,
            chroot
        );
        let config = BrokerConfig::from_properties_str(&props).unwrap();
        let broker = tokio::time::timeout(TIMEOUT, Broker::start(config))
            .await
            .expect("broker start in time")
            .expect("broker starts");
        Cluster { keeper: Some(keeper), broker, keeper_addr, chroot, _dirs: vec![kdir, ldir] }
    }

    /// The keeper's data dir.
    pub fn keeper_dir(&self) -> std::path::PathBuf {
        self._dirs[0].path().to_path_buf()
    }

    /// The broker's log dir.
    pub fn log_dir(&self) -> std::path::PathBuf {
        self._dirs[1].path().to_path_buf()
    }

    pub async fn connect(&self) -> Conn {
        Conn::connect(self.broker.local_addr()).await
    }

    pub async fn stop(mut self) {
        self.broker.shutdown().await;
        if let Some(k) = self.keeper.take() {
            k.shutdown().await;
        }
    }
}

/// A raw Kafka protocol connection.
pub struct Conn {
    pub stream: TcpStream,
    correlation: i32,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Conn {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr)).await.unwrap().unwrap();
        Conn { stream, correlation: 0 }
    }

    /// Encodes a request frame (length prefix included).
    pub fn frame<R: Request>(&mut self, version: i16, req: &R) -> (i32, Bytes) {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("strom-test")));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version)).unwrap();
        req.encode(&mut body, version).unwrap();
        let mut out = BytesMut::with_capacity(body.len() + 4);
        out.put_i32(body.len() as i32);
        out.extend_from_slice(&body);
        (self.correlation, out.freeze())
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one response frame body (after the length); None on EOF.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let read = async {
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await.ok()?;
            let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(Bytes::from(body))
        };
        tokio::time::timeout(TIMEOUT, read).await.expect("response in time")
    }

    pub async fn read_response<R: Request>(&mut self, version: i16, correlation: i32) -> R::Response {
        let mut body = self.read_frame().await.expect("connection open");
        let header =
            ResponseHeader::decode(&mut body, <R::Response as HeaderVersion>::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation, "responses in request order");
        R::Response::decode(&mut body, version).unwrap()
    }

    pub async fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        let (corr, frame) = self.frame(version, req);
        self.send_raw(&frame).await;
        self.read_response::<R>(version, corr).await
    }
}

/// A v2 batch of `values` (keys `k<i>`), uncompressed.
pub fn batch(values: &[&str]) -> Bytes {
    batch_with(values, -1, -1, -1, 1_700_000_000_000)
}

pub fn batch_with(values: &[&str], producer_id: i64, epoch: i16, base_seq: i32, ts: i64) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch when offset - sequence changes; base_seq -1
            // (no idempotence) still yields one batch with baseSequence -1.
            sequence: base_seq + i as i32,
            timestamp: ts + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .unwrap();
    buf.freeze()
}

/// Decodes fetched records into (offset, value) pairs.
pub fn decode_values(mut records: Bytes) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    while records.has_remaining() {
        let sets = RecordBatchDecoder::decode(&mut records).unwrap();
        for r in sets.records {
            out.push((r.offset, String::from_utf8(r.value.unwrap_or_default().to_vec()).unwrap()));
        }
    }
    out
}
