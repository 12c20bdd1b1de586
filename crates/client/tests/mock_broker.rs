//! Round trips against librdkafka's in-memory mock broker (a real protocol peer we did not
//! write), held open by a small confluent-kafka script (`pip install confluent-kafka`).

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use strom_client::{
    Client, ClientConfig, Compression, Consumer, ConsumerConfig, OffsetSpec, Producer, ProducerConfig, ProducerRecord,
    StartOffset,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts librdkafka's mock cluster inside a Python process and prints its bootstrap address;
/// the mock lives until the process is killed (the test drops it) or 120 s pass.
const MOCK_SCRIPT: &str = r#"
import time
from confluent_kafka import Producer
p = Producer({"test.mock.num.brokers": 1, "log_level": 0})
md = p.list_topics(timeout=10)
b = next(iter(md.brokers.values()))
print(f"{b.host}:{b.port}", flush=True)
time.sleep(120)
"#;

struct Mock {
    _child: Child,
    addr: String,
}

async fn start_mock() -> Mock {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(MOCK_SCRIPT)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start python3 for the mock broker: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(30), BufReader::new(stdout).read_line(&mut line))
        .await
        .unwrap_or_else(|_| panic!("mock broker did not print its address in 30 s"))
        .unwrap_or_else(|e| panic!("reading mock address: {e}"));
    Mock { _child: child, addr: line.trim().to_owned() }
}

async fn client(addr: &str) -> Client {
    let mut cfg = ClientConfig::new(addr);
    cfg.request_timeout = Duration::from_secs(10);
    Client::connect(cfg).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

async fn read_all(consumer: &mut Consumer, want: usize) -> Vec<strom_client::ConsumerRecord> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < want && tokio::time::Instant::now() < deadline {
        let batch = consumer.poll(Duration::from_millis(500)).await.unwrap_or_else(|e| panic!("poll: {e}"));
        got.extend(batch);
    }
    got
}

#[tokio::test]
async fn produce_consume_roundtrip_every_codec() {
    let mock = start_mock().await;
    let client = client(&mock.addr).await;
    for (i, codec) in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let topic = format!("codec-{i}");
        let producer =
            Producer::new(client.clone(), ProducerConfig { compression: codec, acks: 1, ..Default::default() });
        let mut deliveries = Vec::new();
        for n in 0..200 {
            let mut rec = ProducerRecord::new(Bytes::from(format!("value-{n}")))
                .with_timestamp(1_700_000_000_000 + n)
                .with_header("h", Some(Bytes::from_static(b"hv")));
            if n % 2 == 0 {
                rec = rec.with_key(Bytes::from(format!("key-{}", n % 7)));
            }
            deliveries.push(producer.send(&topic, rec).await.unwrap_or_else(|e| panic!("send: {e}")));
        }
        producer.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
        let mut offsets: HashMap<i32, Vec<i64>> = HashMap::new();
        for d in deliveries {
            let md = d.wait().await.unwrap_or_else(|e| panic!("delivery ({codec:?}): {e}"));
            offsets.entry(md.partition).or_default().push(md.offset);
        }
        for offs in offsets.values() {
            assert!(offs.windows(2).all(|w| w[1] == w[0] + 1), "offsets contiguous per partition: {offs:?}");
        }

        let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
        consumer.assign_topic(&topic).await.unwrap_or_else(|e| panic!("assign: {e}"));
        consumer.seek_all(StartOffset::Earliest);
        let got = read_all(&mut consumer, 200).await;
        assert_eq!(got.len(), 200, "codec {codec:?}");
        let mut by_key_partition: HashMap<Bytes, i32> = HashMap::new();
        let mut seen: Vec<i64> = Vec::new();
        for r in &got {
            let value = r.value.clone().unwrap_or_default();
            let n: i64 = std::str::from_utf8(&value)
                .ok()
                .and_then(|s| s.strip_prefix("value-"))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("unexpected value {value:?}"));
            assert_eq!(r.timestamp, 1_700_000_000_000 + n);
            assert_eq!(r.headers.get(b"h".as_slice()).cloned().flatten(), Some(Bytes::from_static(b"hv")));
            if n % 2 == 0 {
                let key = r.key.clone().unwrap_or_default();
                assert_eq!(key, Bytes::from(format!("key-{}", n % 7)));
                // The same key always lands on the same partition.
                assert_eq!(*by_key_partition.entry(key).or_insert(r.partition), r.partition);
            } else {
                assert!(r.key.is_none());
            }
            seen.push(n);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn list_offsets_and_seek_by_timestamp() {
    let mock = start_mock().await;
    let client = client(&mock.addr).await;
    let producer = Producer::new(client.clone(), ProducerConfig { acks: -1, ..Default::default() });
    let mut last = None;
    for n in 0..10 {
        let rec =
            ProducerRecord::new(Bytes::from(format!("{n}"))).with_partition(0).with_timestamp(1_000_000 + n * 1000);
        last = Some(producer.send("ts", rec).await.unwrap_or_else(|e| panic!("send: {e}")));
    }
    producer.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
    let last = last.unwrap_or_else(|| panic!("nothing sent")).wait().await.unwrap_or_else(|e| panic!("{e}"));
    let earliest = client.list_offsets("ts", &[0], OffsetSpec::Earliest).await.unwrap_or_else(|e| panic!("{e}"));
    let latest = client.list_offsets("ts", &[0], OffsetSpec::Latest).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(latest[0].1.offset, last.offset + 1);
    assert_eq!(latest[0].1.offset - earliest[0].1.offset, 10);

    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
    consumer.assign(&[("ts", 0)]);
    consumer.seek("ts", 0, StartOffset::Offset(earliest[0].1.offset + 7)).unwrap_or_else(|e| panic!("{e}"));
    let got = read_all(&mut consumer, 3).await;
    let values: Vec<_> = got.iter().filter_map(|r| r.value.clone()).collect();
    assert_eq!(values, vec![Bytes::from("7"), Bytes::from("8"), Bytes::from("9")]);
    assert_eq!(consumer.position("ts", 0).await.unwrap_or_else(|e| panic!("{e}")), latest[0].1.offset);
}
