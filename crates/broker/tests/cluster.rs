//! Cluster-metadata tests: topics written straight into the keeper (as `kafka-topics
//! --zookeeper` does), broker restarts over the same log dirs, and registration.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::{Broker, BrokerConfig};
use strom_keeper::client::KeeperClient;
use strom_keeper::{CreateMode, Op};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn wait_for_leaders(conn: &mut Conn, topic: &str, partitions: usize) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]));
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let resp = conn.call(9, &req).await;
        let t = &resp.topics[0];
        if t.error_code == 0 && t.partitions.len() == partitions && t.partitions.iter().all(|p| p.leader_id.0 >= 0) {
            return resp;
        }
        assert!(Instant::now() < deadline, "topic {topic} never became ready: {resp:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn produce(conn: &mut Conn, topic: &str, partition: i32, values: &[&str]) -> (i16, i64) {
    let req =
        ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch(values)))])]);
    let resp = conn.call(7, &req).await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn fetch_all(conn: &mut Conn, topic: &str, partition: i32) -> Vec<(i64, String)> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(vec![
            FetchPartition::default().with_partition(partition).with_partition_max_bytes(1 << 20),
        ])]);
    let resp = conn.call(11, &req).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    decode_values(p.records.clone().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_written_directly_to_keeper_becomes_usable() {
    let cluster = Cluster::start("").await;
    let zk = KeeperClient::connect(&format!("{}{}", cluster.keeper_addr, cluster.chroot), Duration::from_secs(6))
        .await
        .unwrap();
    // Exactly what `kafka-topics --zookeeper --create` writes (no topic id, version 2).
    zk.multi(vec![
        Op::Create {
            path: "/config/topics/legacy".into(),
            data: br#"{"version":1,"config":{"retention.ms":"86400000"}}"#.to_vec(),
            mode: CreateMode::Persistent,
        },
        Op::Create {
            path: "/brokers/topics/legacy".into(),
            data: br#"{"version":2,"partitions":{"0":[1],"1":[1]},"adding_replicas":{},"removing_replicas":{}}"#
                .to_vec(),
            mode: CreateMode::Persistent,
        },
    ])
    .await
    .unwrap();
    let mut conn = cluster.connect().await;
    let meta = wait_for_leaders(&mut conn, "legacy", 2).await;
    assert_eq!(meta.topics[0].partitions[1].leader_id.0, 1);
    assert_eq!(produce(&mut conn, "legacy", 1, &["via-zk"]).await, (0, 0));
    assert_eq!(fetch_all(&mut conn, "legacy", 1).await, vec![(0, "via-zk".to_string())]);

    // The controller wrote the partition state and gave the topic an id.
    let (state, _) = zk.get_data("/brokers/topics/legacy/partitions/0/state", false).await.unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
    assert_eq!(state["leader"], 1);
    assert_eq!(state["isr"], serde_json::json!([1]));
    let (assignment, _) = zk.get_data("/brokers/topics/legacy", false).await.unwrap();
    let assignment: serde_json::Value = serde_json::from_slice(&assignment).unwrap();
    assert!(assignment["topic_id"].is_string());

    // Broker registration and controller as Kafka lays them out.
    let (reg, stat) = zk.get_data("/brokers/ids/1", false).await.unwrap();
    assert_ne!(stat.ephemeral_owner, 0);
    let reg: serde_json::Value = serde_json::from_slice(&reg).unwrap();
    assert_eq!(reg["port"], cluster.broker.local_addr().port());
    let (ctl, _) = zk.get_data("/controller", false).await.unwrap();
    let ctl: serde_json::Value = serde_json::from_slice(&ctl).unwrap();
    assert_eq!(ctl["brokerid"], 1);

    // Deletion through the marker, as `kafka-topics --delete` does.
    zk.create("/admin/delete_topics/legacy", b"", CreateMode::Persistent).await.unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while zk.exists("/brokers/topics/legacy", false).await.unwrap().is_some()
        || zk.exists("/admin/delete_topics/legacy", false).await.unwrap().is_some()
    {
        assert!(Instant::now() < deadline, "controller never deleted the topic");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    zk.close().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_broker_keeps_data_and_leadership() {
    let mut cluster = Cluster::start("").await;
    let mut conn = cluster.connect().await;
    let create = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
            .with_name(name("durable"))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    assert_eq!(conn.call(5, &create).await.topics[0].error_code, 0);
    assert_eq!(produce(&mut conn, "durable", 0, &["one", "two"]).await, (0, 0));
    drop(conn);

    // Same config, same log dir: the shutdown closed the session, so re-registration is
    // immediate; stored records survive.
    let log_dir = cluster.log_dir();
    cluster.broker.shutdown().await;
    let props = format!(
        "broker.id=1\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs={}\nzookeeper.connect={}{}\nzookeeper.session.timeout.ms=6000\n",
        log_dir.display(),
        cluster.keeper_addr,
        cluster.chroot
    );
    let started = Instant::now();
    let broker = Broker::start(BrokerConfig::from_properties_str(&props).unwrap()).await.unwrap();
    let startup = started.elapsed();
    cluster.broker = broker;
    let mut conn = cluster.connect().await;
    wait_for_leaders(&mut conn, "durable", 1).await;
    let values: Vec<String> = fetch_all(&mut conn, "durable", 0).await.into_iter().map(|v| v.1).collect();
    assert_eq!(values, vec!["one", "two"]);
    assert_eq!(produce(&mut conn, "durable", 0, &["three"]).await, (0, 2));
    assert!(startup < Duration::from_secs(5), "restart took {startup:?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_broker_id_is_refused() {
    let cluster = Cluster::start("").await;
    let dir = tempfile::tempdir().unwrap();
    let props = format!(
        "broker.id=1\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs={}\nzookeeper.connect={}{}\nzookeeper.session.timeout.ms=4000\n",
        dir.path().display(),
        cluster.keeper_addr,
        cluster.chroot
    );
    let second = tokio::time::timeout(TIMEOUT, Broker::start(BrokerConfig::from_properties_str(&props).unwrap()))
        .await
        .expect("gives up within the bound");
    assert!(matches!(second, Err(strom_broker::BrokerError::DuplicateBrokerId(1))));
    // The first broker still serves.
    let mut conn = cluster.connect().await;
    let resp = conn.call(3, &ApiVersionsRequest::default()).await;
    assert_eq!(resp.error_code, 0);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_survives_keeper_restart() {
    let mut cluster = Cluster::start("").await;
    let mut conn = cluster.connect().await;
    let create = |t: &str| {
        CreateTopicsRequest::default().with_timeout_ms(15_000).with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(name(t))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ])
    };
    assert_eq!(conn.call(5, &create("k")).await.topics[0].error_code, 0);
    assert_eq!(produce(&mut conn, "k", 0, &["before"]).await, (0, 0));

    let keeper = cluster.keeper.take().expect("keeper running");
    keeper.shutdown().await;
    // The broker keeps serving the partitions it leads while the keeper is away.
    assert_eq!(produce(&mut conn, "k", 0, &["during"]).await, (0, 1));

    let config = strom_keeper::config::KeeperConfig::standalone(cluster.keeper_dir(), cluster.keeper_addr);
    cluster.keeper = Some(strom_keeper::server::KeeperServer::start(config).await.expect("keeper restarts"));
    let zk = KeeperClient::connect(&format!("{}{}", cluster.keeper_addr, cluster.chroot), Duration::from_secs(6))
        .await
        .unwrap();
    // Registered again (same session, or a new one after expiry) and admin works again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let registered = zk.exists("/brokers/ids/1", false).await.ok().flatten().is_some();
        let controller = zk.exists("/controller", false).await.ok().flatten().is_some();
        if registered && controller {
            break;
        }
        assert!(Instant::now() < deadline, "broker never re-registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = conn.call(5, &create("after")).await;
        let code = resp.topics[0].error_code;
        if code == 0 || code == kafka_protocol::error::ResponseError::TopicAlreadyExists.code() {
            break;
        }
        assert!(Instant::now() < deadline, "CreateTopics never recovered: {resp:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_leaders(&mut conn, "after", 1).await;
    assert_eq!(produce(&mut conn, "after", 0, &["x"]).await, (0, 0));
    let values: Vec<String> = fetch_all(&mut conn, "k", 0).await.into_iter().map(|v| v.1).collect();
    assert_eq!(values, vec!["before", "during"]);
    zk.close().await;
    cluster.stop().await;
}
