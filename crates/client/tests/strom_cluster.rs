//! strom-client against a real Strom: an embedded keeper and a broker on port 0.

use std::time::Duration;

use bytes::Bytes;
use strom_broker::{Broker, BrokerConfig};
use strom_client::{
    Admin, Client, ClientConfig, Compression, Consumer, ConsumerConfig, NewTopic, OffsetSpec, Producer, ProducerConfig,
    ProducerRecord, ResourceType, StartOffset,
};
use strom_keeper::config::KeeperConfig;
use strom_keeper::server::KeeperServer;

const TIMEOUT: Duration = Duration::from_secs(20);

struct Strom {
    keeper: KeeperServer,
    broker: Broker,
    _dirs: Vec<tempfile::TempDir>,
}

impl Strom {
    async fn start() -> Strom {
        let kdir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let addr = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("addr: {e}"));
        let keeper = KeeperServer::start(KeeperConfig::standalone(kdir.path(), addr))
            .await
            .unwrap_or_else(|e| panic!("keeper: {e}"));
        let ldir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let props = format!(
            "broker.id=1\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs={}\nzookeeper.connect={}/strom\nzookeeper.session.timeout.ms=6000\nnum.partitions=1\n",
            ldir.path().display(),
            keeper.client_addr()
        );
        let config = BrokerConfig::from_properties_str(&props).unwrap_or_else(|e| panic!("config: {e}"));
        let broker = tokio::time::timeout(TIMEOUT, Broker::start(config))
            .await
            .unwrap_or_else(|_| panic!("broker did not start in {TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("broker: {e}"));
        Strom { keeper, broker, _dirs: vec![kdir, ldir] }
    }

    async fn client(&self) -> Client {
        let mut cfg = ClientConfig::new(&self.broker.local_addr().to_string());
        cfg.request_timeout = Duration::from_secs(10);
        Client::connect(cfg).await.unwrap_or_else(|e| panic!("connect: {e}"))
    }

    async fn stop(self) {
        self.broker.shutdown().await;
        self.keeper.shutdown().await;
    }
}

async fn wait_for_leaders(client: &Client, topic: &str, partitions: usize) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Ok(resp) = client.refresh_metadata(Some(&[topic])).await {
            let ready = resp.topics.iter().any(|t| {
                t.error_code == 0
                    && t.partitions.len() == partitions
                    && t.partitions.iter().all(|p| p.error_code == 0 && p.leader_id.0 >= 0)
            });
            if ready {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{topic} has no leaders after {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_produce_consume_against_strom() {
    let strom = Strom::start().await;
    let client = strom.client().await;
    let admin = Admin::new(client.clone());

    let mut topic = NewTopic::new("orders", 3, 1);
    topic.configs = vec![("retention.ms".into(), "3600000".into())];
    let created = admin.create_topics(&[topic.clone()], false).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(created[0].1.is_ok(), "{:?}", created[0].1);
    let again = admin.create_topics(&[topic], false).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        again[0].1.as_ref().err().and_then(|e| e.kafka_error()),
        Some(kafka_protocol::error::ResponseError::TopicAlreadyExists)
    );
    wait_for_leaders(&client, "orders", 3).await;
    let configs = admin.describe_configs(ResourceType::Topic, "orders").await.unwrap_or_else(|e| panic!("{e}"));
    let retention = configs.iter().find(|c| c.name == "retention.ms");
    assert_eq!(retention.and_then(|c| c.value.as_deref()), Some("3600000"));
    assert!(retention.is_some_and(|c| c.is_override()));

    for (i, codec) in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let producer = Producer::new(client.clone(), ProducerConfig { compression: codec, ..Default::default() });
        let mut deliveries = Vec::new();
        for n in 0..100i64 {
            let rec = ProducerRecord::new(Bytes::from(format!("{i}-{n}")))
                .with_key(Bytes::from(format!("key-{}", n % 10)))
                .with_timestamp(1_000_000 + n)
                .with_header("codec", Some(Bytes::from(format!("{codec:?}"))));
            deliveries.push(producer.send("orders", rec).await.unwrap_or_else(|e| panic!("send: {e}")));
        }
        producer.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
        for d in deliveries {
            d.wait().await.unwrap_or_else(|e| panic!("delivery with {codec:?}: {e}"));
        }
    }

    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
    assert_eq!(consumer.assign_topic("orders").await.unwrap_or_else(|e| panic!("{e}")), 3);
    consumer.seek_all(StartOffset::Earliest);
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while got.len() < 500 && tokio::time::Instant::now() < deadline {
        got.extend(consumer.poll(Duration::from_millis(500)).await.unwrap_or_else(|e| panic!("poll: {e}")));
    }
    assert_eq!(got.len(), 500);
    for p in 0..3 {
        let offsets: Vec<i64> = got.iter().filter(|r| r.partition == p).map(|r| r.offset).collect();
        assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "partition {p} offsets {offsets:?}");
    }
    assert_eq!(consumer.lag(), 0);

    let by_time = client
        .list_offsets("orders", &[0, 1, 2], OffsetSpec::Timestamp(1_000_050))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (p, found) in by_time {
        let first =
            got.iter().filter(|r| r.partition == p && r.timestamp >= 1_000_050).map(|r| r.offset).min().unwrap_or(-1);
        assert_eq!(found.offset, first, "partition {p}");
    }

    admin.create_partitions("orders", 5, false).await.unwrap_or_else(|e| panic!("{e}"));
    wait_for_leaders(&client, "orders", 5).await;
    let deleted = admin.delete_topics(&["orders"]).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(deleted[0].1.is_ok(), "{:?}", deleted[0].1);
    strom.stop().await;
}
