//! End-to-end protocol tests: an embedded keeper, a broker on port 0, raw Kafka requests.

mod common;

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn create_topic(conn: &mut Conn, topic: &str, partitions: i32) -> i16 {
    let req = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    let resp = conn.call(5, &req).await;
    resp.topics[0].error_code
}

fn produce_req(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![PartitionProduceData::default().with_index(partition).with_records(Some(records))])])
}

fn fetch_req(topic: &str, partition: i32, offset: i64, max_wait_ms: i32, min_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(vec![
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20),
        ])])
}

async fn produce(conn: &mut Conn, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let resp = conn.call(9, &produce_req(topic, partition, records, -1)).await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_and_unsupported_version() {
    let cluster = Cluster::start("").await;
    let mut conn = cluster.connect().await;
    let resp = conn
        .call(
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("test"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        )
        .await;
    assert_eq!(resp.error_code, 0);
    let produce = resp.api_keys.iter().find(|k| k.api_key == ApiKey::Produce as i16).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (3, 9));
    assert!(resp.api_keys.iter().all(|k| k.api_key != ApiKey::AddPartitionsToTxn as i16));

    // A version from the future: v0 error response with the API list (KIP-511), the
    // connection stays usable.
    let (corr, frame) = conn.frame(3, &ApiVersionsRequest::default());
    let mut patched = BytesMut::from(&frame[..]);
    patched[6..8].copy_from_slice(&9i16.to_be_bytes());
    conn.send_raw(&patched).await;
    let resp = conn.read_response::<ApiVersionsRequest>(0, corr).await;
    assert_eq!(resp.error_code, ResponseError::UnsupportedVersion.code());
    assert!(!resp.api_keys.is_empty());
    let again = conn.call(0, &ApiVersionsRequest::default()).await;
    assert_eq!(again.error_code, 0);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_fetch_list_offsets_round_trip() {
    let cluster = Cluster::start("").await;
    let mut conn = cluster.connect().await;
    assert_eq!(create_topic(&mut conn, "orders", 2).await, 0);

    let meta = conn
        .call(
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("orders")))])),
        )
        .await;
    assert_eq!(meta.brokers.len(), 1);
    assert_eq!(meta.controller_id.0, 1);
    assert!(meta.cluster_id.is_some());
    let t = &meta.topics[0];
    assert_eq!(t.error_code, 0);
    assert_eq!(t.partitions.len(), 2);
    assert!(t.partitions.iter().all(|p| p.leader_id.0 == 1));
    assert!(!t.topic_id.is_nil());

    assert_eq!(produce(&mut conn, "orders", 0, batch(&["a", "b", "c"])).await, (0, 0));
    assert_eq!(produce(&mut conn, "orders", 0, batch(&["d"])).await, (0, 3));
    assert_eq!(produce(&mut conn, "orders", 1, batch(&["x"])).await, (0, 0));

    let resp = conn.call(12, &fetch_req("orders", 0, 0, 0, 0)).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 4);
    let values = decode_values(p.records.clone().unwrap());
    assert_eq!(values, vec![(0, "a".into()), (1, "b".into()), (2, "c".into()), (3, "d".into())]);
    // Fetching mid-batch returns the whole batch containing the offset.
    let resp = conn.call(4, &fetch_req("orders", 0, 1, 0, 0)).await;
    let values = decode_values(resp.responses[0].partitions[0].records.clone().unwrap());
    assert_eq!(values.first().map(|v| v.0), Some(0), "{values:?}");

    // Out of range.
    let resp = conn.call(12, &fetch_req("orders", 0, 99, 0, 0)).await;
    assert_eq!(resp.responses[0].partitions[0].error_code, ResponseError::OffsetOutOfRange.code());
    // Unknown partition / topic.
    let resp = conn.call(12, &fetch_req("orders", 7, 0, 0, 0)).await;
    assert_eq!(resp.responses[0].partitions[0].error_code, ResponseError::UnknownTopicOrPartition.code());

    let list = |ts: i64| {
        ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("orders"))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(ts)])])
    };
    let earliest = conn.call(6, &list(-2)).await;
    assert_eq!(earliest.topics[0].partitions[0].offset, 0);
    let latest = conn.call(6, &list(-1)).await;
    assert_eq!(latest.topics[0].partitions[0].offset, 4);
    // Batch timestamps are 1_700_000_000_000 + index; "d" was the first record of its batch.
    let by_ts = conn.call(6, &list(1_700_000_000_001)).await;
    let p = &by_ts.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert!(p.offset == 0 || p.offset == 1 || p.offset == 3, "offset {}", p.offset);
    let future = conn.call(6, &list(1_900_000_000_000)).await;
    assert_eq!(future.topics[0].partitions[0].offset, -1);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_get_kafka_errors() {
    let cluster = Cluster::start("message.max.bytes=2000").await;
    let mut conn = cluster.connect().await;
    assert_eq!(create_topic(&mut conn, "t", 1).await, 0);

    let good = batch(&["hello"]);
    let mut corrupt = BytesMut::from(&good[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let (code, _) = produce(&mut conn, "t", 0, corrupt.freeze()).await;
    assert_eq!(code, ResponseError::CorruptMessage.code());

    let big = "x".repeat(5000);
    let (code, _) = produce(&mut conn, "t", 0, batch(&[&big])).await;
    assert_eq!(code, ResponseError::MessageTooLarge.code());

    // Nothing bad was stored; a good batch lands at offset 0.
    assert_eq!(produce(&mut conn, "t", 0, good).await, (0, 0));

    let (code, _) = produce(&mut conn, "nope", 0, batch(&["a"])).await;
    assert_eq!(code, ResponseError::UnknownTopicOrPartition.code());

    // Idempotent producer: a duplicate answers with the original offset, a gap is rejected.
    let init_req = InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000);
    let init = conn.call(4, &init_req).await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    assert!(pid >= 0);
    let b0 = batch_with(&["i0", "i1"], pid, 0, 0, 1_700_000_000_000);
    assert_eq!(produce(&mut conn, "t", 0, b0.clone()).await, (0, 1));
    assert_eq!(produce(&mut conn, "t", 0, b0).await, (0, 1));
    let gap = batch_with(&["i5"], pid, 0, 5, 1_700_000_000_000);
    assert_eq!(produce(&mut conn, "t", 0, gap).await.0, ResponseError::OutOfOrderSequenceNumber.code());
    let init2 = conn.call(4, &init_req).await;
    assert_ne!(init2.producer_id.0, pid, "producer ids are unique");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_admin_errors_and_delete() {
    let cluster = Cluster::start("").await;
    let mut conn = cluster.connect().await;
    let topics = |list: Vec<CreatableTopic>| CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(list);
    let resp = conn
        .call(
            5,
            &topics(vec![
                CreatableTopic::default().with_name(name("bad name")).with_num_partitions(1).with_replication_factor(1),
                CreatableTopic::default().with_name(name("zero")).with_num_partitions(0).with_replication_factor(1),
                CreatableTopic::default().with_name(name("rf3")).with_num_partitions(1).with_replication_factor(3),
                CreatableTopic::default()
                    .with_name(name("cfg"))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
                    .with_configs(vec![CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_value(Some(StrBytes::from_static_str("soon")))]),
                CreatableTopic::default()
                    .with_name(name(&"a".repeat(250)))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
        )
        .await;
    let codes: Vec<i16> = resp.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(
        codes,
        vec![
            ResponseError::InvalidTopicException.code(),
            ResponseError::InvalidPartitions.code(),
            ResponseError::InvalidReplicationFactor.code(),
            ResponseError::InvalidConfig.code(),
            ResponseError::InvalidTopicException.code(),
        ]
    );
    assert!(resp.topics[3].error_message.as_deref().unwrap().contains("retention.ms"));

    // validate_only writes nothing.
    let resp = conn
        .call(
            5,
            &topics(vec![CreatableTopic::default()
                .with_name(name("dry"))
                .with_num_partitions(3)
                .with_replication_factor(1)])
            .with_validate_only(true),
        )
        .await;
    assert_eq!((resp.topics[0].error_code, resp.topics[0].num_partitions), (0, 3));
    assert_eq!(create_topic(&mut conn, "dry", 1).await, 0, "dry run left no topic behind");

    // Explicit assignment + configs, then duplicate.
    let resp = conn
        .call(
            5,
            &topics(vec![CreatableTopic::default()
                .with_name(name("assigned"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![
                    CreatableReplicaAssignment::default().with_partition_index(0).with_broker_ids(vec![BrokerId(1)]),
                    CreatableReplicaAssignment::default().with_partition_index(1).with_broker_ids(vec![BrokerId(1)]),
                ])
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("60000")))])]),
        )
        .await;
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);
    assert_eq!(create_topic(&mut conn, "assigned", 1).await, ResponseError::TopicAlreadyExists.code());

    // DescribeConfigs shows the override and the defaults.
    let dc = conn
        .call(
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("assigned")),
            ]),
        )
        .await;
    let configs = &dc.results[0].configs;
    let get = |n: &str| configs.iter().find(|c| &*c.name == n).and_then(|c| c.value.clone()).map(|v| v.to_string());
    assert_eq!(get("retention.ms").as_deref(), Some("60000"), "{dc:?}");
    assert_eq!(get("cleanup.policy").as_deref(), Some("delete"));

    // CreatePartitions grows the topic.
    let cp = conn
        .call(
            1,
            &CreatePartitionsRequest::default().with_timeout_ms(10_000).with_topics(vec![
                kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name("assigned"))
                    .with_count(4),
            ]),
        )
        .await;
    assert_eq!(cp.results[0].error_code, 0, "{:?}", cp.results[0].error_message);
    assert_eq!(produce(&mut conn, "assigned", 3, batch(&["p3"])).await, (0, 0));

    // Delete, then the topic is gone and its partitions unknown.
    assert_eq!(produce(&mut conn, "dry", 0, batch(&["z"])).await, (0, 0));
    let del =
        conn.call(4, &DeleteTopicsRequest::default().with_timeout_ms(10_000).with_topic_names(vec![name("dry")])).await;
    assert_eq!(del.responses[0].error_code, 0);
    // (Metadata without auto-create: a Produce would re-create it, auto.create is on.)
    let meta = conn
        .call(
            9,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(false)
                .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("dry")))])),
        )
        .await;
    assert_eq!(meta.topics[0].error_code, ResponseError::UnknownTopicOrPartition.code());
    let del =
        conn.call(4, &DeleteTopicsRequest::default().with_timeout_ms(1000).with_topic_names(vec![name("never")])).await;
    assert_eq!(del.responses[0].error_code, ResponseError::UnknownTopicOrPartition.code());
    // Re-create after delete starts empty.
    let again = conn
        .call(
            5,
            &topics(vec![CreatableTopic::default()
                .with_name(name("dry"))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
        )
        .await;
    assert_eq!(again.topics[0].error_code, 0, "{:?}", again.topics[0].error_message);
    assert_eq!(produce(&mut conn, "dry", 0, batch(&["fresh"])).await, (0, 0));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_auto_creates_topics() {
    let cluster = Cluster::start("num.partitions=3").await;
    let mut conn = cluster.connect().await;
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("auto")))]));
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let resp = conn.call(9, &req).await;
        let t = &resp.topics[0];
        if t.error_code == 0 && t.partitions.iter().all(|p| p.leader_id.0 == 1) {
            assert_eq!(t.partitions.len(), 3);
            break;
        }
        assert!(t.error_code == ResponseError::LeaderNotAvailable.code() || t.error_code == 0, "code {}", t.error_code);
        assert!(Instant::now() < deadline, "auto-created topic never got leaders");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let invalid = conn
        .call(
            9,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("no/slash")))])),
        )
        .await;
    assert_eq!(invalid.topics[0].error_code, ResponseError::InvalidTopicException.code());
    let no_auto = conn
        .call(
            9,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(false)
                .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("manual")))])),
        )
        .await;
    assert_eq!(no_auto.topics[0].error_code, ResponseError::UnknownTopicOrPartition.code());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_on_produce_and_responses_stay_ordered() {
    let cluster = Cluster::start("").await;
    let mut conn = cluster.connect().await;
    assert_eq!(create_topic(&mut conn, "poll", 1).await, 0);

    // Pipeline: a fetch that must wait, then a metadata request behind it.
    let (c1, f1) = conn.frame(12, &fetch_req("poll", 0, 0, 10_000, 1));
    let (c2, f2) = conn.frame(12, &MetadataRequest::default().with_topics(None));
    let mut both = BytesMut::new();
    both.put_slice(&f1);
    both.put_slice(&f2);
    conn.send_raw(&both).await;

    let mut producer = cluster.connect().await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(produce(&mut producer, "poll", 0, batch(&["wake"])).await, (0, 0));
    let fetched = conn.read_response::<FetchRequest>(12, c1).await;
    assert!(started.elapsed() < Duration::from_secs(5), "woken by the append, not the timeout");
    let values = decode_values(fetched.responses[0].partitions[0].records.clone().unwrap());
    assert_eq!(values, vec![(0, "wake".to_string())]);
    let meta = conn.read_response::<MetadataRequest>(12, c2).await;
    assert_eq!(meta.topics.len(), 1);

    // An empty long poll returns after max_wait.
    let started = Instant::now();
    let resp = conn.call(12, &fetch_req("poll", 0, 1, 300, 1)).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(resp.responses[0].partitions[0].records.as_ref().map_or(0, |r| r.len()), 0);

    // acks=0 gets no response: the next response on the wire answers the request after it.
    let (_, f0) = conn.frame(9, &produce_req("poll", 0, batch(&["quiet"]), 0));
    conn.send_raw(&f0).await;
    let resp = conn.call(12, &fetch_req("poll", 0, 1, 0, 0)).await;
    let values = decode_values(resp.responses[0].partitions[0].records.clone().unwrap());
    assert_eq!(values, vec![(1, "quiet".to_string())]);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_connection() {
    let cluster = Cluster::start("socket.request.max.bytes=100000").await;
    let mut healthy = cluster.connect().await;
    assert_eq!(create_topic(&mut healthy, "m", 1).await, 0);

    // Garbage body with a plausible header.
    let mut bad = cluster.connect().await;
    let mut frame = BytesMut::new();
    frame.put_i32(12);
    frame.put_i16(ApiKey::Produce as i16);
    frame.put_i16(9);
    frame.put_i32(1);
    frame.put_slice(&[0xff, 0xff, 0xff, 0xff]);
    bad.send_raw(&frame).await;
    assert!(bad.read_frame().await.is_none(), "connection closed");

    // Oversized frame.
    let mut big = cluster.connect().await;
    big.send_raw(&200_000i32.to_be_bytes()).await;
    assert!(big.read_frame().await.is_none());

    // Unknown api key.
    let mut unknown = cluster.connect().await;
    let mut frame = BytesMut::new();
    frame.put_i32(10);
    frame.put_i16(999);
    frame.put_i16(0);
    frame.put_i32(1);
    frame.put_i16(-1);
    unknown.send_raw(&frame).await;
    assert!(unknown.read_frame().await.is_none());

    // Negative length.
    let mut neg = cluster.connect().await;
    neg.send_raw(&(-5i32).to_be_bytes()).await;
    assert!(neg.read_frame().await.is_none());

    // The healthy connection and the stored data are unaffected.
    assert_eq!(produce(&mut healthy, "m", 0, batch(&["still"])).await, (0, 0));
    let resp = healthy.call(12, &fetch_req("m", 0, 0, 0, 0)).await;
    assert_eq!(decode_values(resp.responses[0].partitions[0].records.clone().unwrap()).len(), 1);
    cluster.stop().await;
}
