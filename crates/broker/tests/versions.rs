//! Every advertised (API, version) pair gets a decodable response: the encoder rejects
//! fields a version lacks, so this catches handlers that set them unconditionally.

mod common;

use common::*;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::protocol::SUPPORTED_APIS;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create(topic: &str) -> CreateTopicsRequest {
    CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(1)
        .with_replication_factor(1)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_answers() {
    let cluster = Cluster::start("").await;
    let mut conn = cluster.connect().await;
    assert_eq!(conn.call(5, &create("vt")).await.topics[0].error_code, 0);
    for &(api, min, max) in SUPPORTED_APIS {
        for v in min..=max {
            let ctx = format!("{api:?} v{v}");
            match api {
                ApiKey::Produce => {
                    let req = ProduceRequest::default()
                        .with_transactional_id(None)
                        .with_acks(1)
                        .with_timeout_ms(5000)
                        .with_topic_data(vec![TopicProduceData::default().with_name(name("vt")).with_partition_data(
                            vec![PartitionProduceData::default().with_index(0).with_records(Some(batch(&["v"])))],
                        )]);
                    let r = conn.call(v, &req).await;
                    assert_eq!(r.responses[0].partition_responses[0].error_code, 0, "{ctx}");
                    // An error response (with a message on v8+) must encode too.
                    let bad = ProduceRequest::default().with_transactional_id(None).with_acks(1).with_topic_data(vec![
                        TopicProduceData::default().with_name(name("vt")).with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(bytes::Bytes::from_static(&[0u8; 70]))),
                        ]),
                    ]);
                    let r = conn.call(v, &bad).await;
                    assert_ne!(r.responses[0].partition_responses[0].error_code, 0, "{ctx}");
                }
                ApiKey::Fetch => {
                    let mut req = FetchRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_max_bytes(1 << 20)
                        .with_topics(vec![FetchTopic::default().with_topic(name("vt")).with_partitions(vec![
                            FetchPartition::default().with_partition(0).with_partition_max_bytes(1 << 20),
                        ])]);
                    if v >= 7 {
                        req.session_epoch = -1;
                    }
                    let r = conn.call(v, &req).await;
                    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{ctx}");
                    assert!(!decode_values(r.responses[0].partitions[0].records.clone().unwrap()).is_empty(), "{ctx}");
                }
                ApiKey::ListOffsets => {
                    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                        ListOffsetsTopic::default().with_name(name("vt")).with_partitions(vec![
                            ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1),
                        ]),
                    ]);
                    let r = conn.call(v, &req).await;
                    assert_eq!(r.topics[0].partitions[0].error_code, 0, "{ctx}");
                    assert!(r.topics[0].partitions[0].offset > 0, "{ctx}");
                }
                ApiKey::Metadata => {
                    let req = MetadataRequest::default()
                        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("vt")))]));
                    let r = conn.call(v, &req).await;
                    assert_eq!(r.topics[0].error_code, 0, "{ctx}");
                    assert_eq!(r.brokers.len(), 1, "{ctx}");
                }
                ApiKey::ApiVersions => {
                    let mut req = ApiVersionsRequest::default();
                    if v >= 3 {
                        req.client_software_name = StrBytes::from_static_str("t");
                        req.client_software_version = StrBytes::from_static_str("1");
                    }
                    assert_eq!(conn.call(v, &req).await.error_code, 0, "{ctx}");
                }
                ApiKey::CreateTopics => {
                    let r = conn.call(v, &create(&format!("ct{v}"))).await;
                    assert_eq!(r.topics[0].error_code, 0, "{ctx}: {:?}", r.topics[0].error_message);
                }
                ApiKey::DeleteTopics => {
                    let t = format!("dt{v}");
                    assert_eq!(conn.call(5, &create(&t)).await.topics[0].error_code, 0);
                    let req = DeleteTopicsRequest::default().with_timeout_ms(10_000).with_topic_names(vec![name(&t)]);
                    assert_eq!(conn.call(v, &req).await.responses[0].error_code, 0, "{ctx}");
                }
                ApiKey::InitProducerId => {
                    let req =
                        InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(1000);
                    assert_eq!(conn.call(v, &req).await.error_code, 0, "{ctx}");
                }
                ApiKey::DescribeConfigs => {
                    let req = DescribeConfigsRequest::default().with_resources(vec![
                        DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(StrBytes::from_static_str("vt")),
                        DescribeConfigsResource::default()
                            .with_resource_type(4)
                            .with_resource_name(StrBytes::from_static_str("1")),
                    ]);
                    let r = conn.call(v, &req).await;
                    assert!(r.results.iter().all(|x| x.error_code == 0 && !x.configs.is_empty()), "{ctx}");
                }
                ApiKey::CreatePartitions => {
                    let t = format!("cp{v}");
                    assert_eq!(conn.call(5, &create(&t)).await.topics[0].error_code, 0);
                    let req = CreatePartitionsRequest::default().with_timeout_ms(10_000).with_topics(vec![
                        CreatePartitionsTopic::default().with_name(name(&t)).with_count(2).with_assignments(None),
                    ]);
                    let r = conn.call(v, &req).await;
                    assert_eq!(r.results[0].error_code, 0, "{ctx}: {:?}", r.results[0].error_message);
                }
                ApiKey::DescribeCluster => {
                    let r = conn.call(v, &DescribeClusterRequest::default()).await;
                    assert_eq!((r.error_code, r.brokers.len()), (0, 1), "{ctx}");
                }
                ApiKey::ElectLeaders => {
                    // "vt" has one replica, which leads: nothing to elect, in every version.
                    let req = ElectLeadersRequest::default().with_timeout_ms(5000).with_topic_partitions(Some(vec![
                        elect_leaders_request::TopicPartitions::default()
                            .with_topic(name("vt"))
                            .with_partitions(vec![0]),
                    ]));
                    let r = conn.call(v, &req).await;
                    let p = &r.replica_election_results[0].partition_result[0];
                    assert_eq!((r.error_code, p.partition_id, p.error_code), (0, 0, 84), "{ctx}");
                }
                // Every version of the group APIs is exercised by tests/groups.rs
                // (every_group_api_version_answers), which sets up the groups they need.
                ApiKey::FindCoordinator
                | ApiKey::JoinGroup
                | ApiKey::SyncGroup
                | ApiKey::Heartbeat
                | ApiKey::LeaveGroup
                | ApiKey::OffsetCommit
                | ApiKey::OffsetFetch
                | ApiKey::ListGroups
                | ApiKey::DescribeGroups
                | ApiKey::DeleteGroups
                | ApiKey::OffsetDelete => {}
                other => panic!("advertised {other:?} has no version test"),
            }
        }
    }
    cluster.stop().await;
}
