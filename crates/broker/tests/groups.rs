//! Group coordinator end to end: an embedded keeper and broker, raw Kafka requests for
//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit/Fetch/Delete,
//! ListGroups, DescribeGroups and DeleteGroups, and a broker restart over the same logs.

mod common;

use std::time::Duration;

use bytes::{Buf, Bytes};
use common::{init_tracing, Conn, TIMEOUT};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use strom_broker::group::records::RecordKey;
use strom_broker::{Broker, BrokerConfig};
use strom_keeper::config::KeeperConfig;
use strom_keeper::server::KeeperServer;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// A keeper and a broker whose log dir outlives the broker, so it can be restarted.
struct Env {
    keeper: KeeperServer,
    broker: Option<Broker>,
    props: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Env {
    async fn start() -> Env {
        Env::start_with("").await
    }

    /// Starts with extra `server.properties` lines.
    async fn start_with(extra: &str) -> Env {
        init_tracing();
        let kdir = tempfile::tempdir().unwrap();
        let keeper =
            KeeperServer::start(KeeperConfig::standalone(kdir.path(), "127.0.0.1:0".parse().unwrap())).await.unwrap();
        let ldir = tempfile::tempdir().unwrap();
        let props = format!(
            "broker.id=1\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs={}\nzookeeper.connect={}/strom\n\
             zookeeper.session.timeout.ms=6000\noffsets.topic.num.partitions=4\n\
             offsets.topic.replication.factor=1\ngroup.min.session.timeout.ms=100\n{extra}",
            ldir.path().display(),
            keeper.client_addr()
        );
        let mut env = Env { keeper, broker: None, props, _dirs: (kdir, ldir) };
        env.start_broker().await;
        env
    }

    async fn start_broker(&mut self) {
        let config = BrokerConfig::from_properties_str(&self.props).unwrap();
        let broker = tokio::time::timeout(TIMEOUT, Broker::start(config)).await.expect("start in time").unwrap();
        self.broker = Some(broker);
    }

    async fn conn(&self) -> Conn {
        Conn::connect(self.broker.as_ref().unwrap().local_addr()).await
    }

    async fn restart_broker(&mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown().await;
        }
        self.start_broker().await;
    }

    async fn stop(mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown().await;
        }
        self.keeper.shutdown().await;
    }
}

async fn create_topic(conn: &mut Conn, topic: &str, partitions: i32) {
    let req = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default()
        .with_name(s(topic).into())
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    assert_eq!(conn.call(5, &req).await.topics[0].error_code, 0);
}

/// FindCoordinator until the coordinator is ready (the first call creates the offsets topic).
async fn find_coordinator(conn: &mut Conn, group: &str) -> FindCoordinatorResponse {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let resp = conn.call(3, &FindCoordinatorRequest::default().with_key(s(group))).await;
        if resp.error_code == 0 || tokio::time::Instant::now() > deadline {
            return resp;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn join_req(group: &str, member: &str, session_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(s(group).into())
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(5_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x06orders\xff\xff\xff\xff"))])
}

/// JoinGroup, retrying while the coordinator loads; answers MEMBER_ID_REQUIRED as a client does.
async fn join(conn: &mut Conn, group: &str, member: &str, session_ms: i32) -> JoinGroupResponse {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut member = member.to_string();
    loop {
        let resp = conn.call(7, &join_req(group, &member, session_ms)).await;
        if resp.error_code == code(ResponseError::MemberIdRequired) {
            member = resp.member_id.to_string();
            continue;
        }
        if !coordinator_busy(resp.error_code) || tokio::time::Instant::now() > deadline {
            return resp;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Errors a client answers by asking again (the coordinator is loading or moving).
fn coordinator_busy(error: i16) -> bool {
    [ResponseError::CoordinatorLoadInProgress, ResponseError::CoordinatorNotAvailable, ResponseError::NotCoordinator]
        .iter()
        .any(|e| e.code() == error)
}

/// OffsetCommit, retrying while the coordinator is busy, as clients do.
async fn commit(conn: &mut Conn, version: i16, req: &OffsetCommitRequest) -> OffsetCommitResponse {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let resp = conn.call(version, req).await;
        if !commit_codes(&resp).into_iter().any(coordinator_busy) || tokio::time::Instant::now() > deadline {
            return resp;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sync_req(group: &str, member: &str, generation: i32, assignments: &[(&str, &[u8])]) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(s(group).into())
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::copy_from_slice(a))
                })
                .collect(),
        )
}

fn heartbeat_req(group: &str, member: &str, generation: i32) -> HeartbeatRequest {
    HeartbeatRequest::default().with_group_id(s(group).into()).with_member_id(s(member)).with_generation_id(generation)
}

fn commit_req(group: &str, member: &str, generation: i32, topic: &str, offsets: &[(i32, i64)]) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(s(group).into())
        .with_member_id(s(member))
        .with_generation_id_or_member_epoch(generation)
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(s(topic).into()).with_partitions(
            offsets
                .iter()
                .map(|(p, o)| {
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(*o)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(s("meta")))
                })
                .collect(),
        )])
}

fn commit_codes(resp: &OffsetCommitResponse) -> Vec<i16> {
    resp.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
}

fn fetch_req(group: &str, topic: &str, partitions: &[i32]) -> OffsetFetchRequest {
    OffsetFetchRequest::default().with_group_id(s(group).into()).with_topics(Some(vec![
        OffsetFetchRequestTopic::default().with_name(s(topic).into()).with_partition_indexes(partitions.to_vec()),
    ]))
}

fn fetched(resp: &OffsetFetchResponse) -> Vec<(i32, i64)> {
    resp.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.committed_offset))).collect()
}

/// OffsetFetch, retrying while the (restarted) coordinator loads.
async fn fetch_retrying(conn: &mut Conn, group: &str, topic: &str, partitions: &[i32]) -> OffsetFetchResponse {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let r = conn.call(5, &fetch_req(group, topic, partitions)).await;
        let retriable = [
            ResponseError::CoordinatorLoadInProgress,
            ResponseError::CoordinatorNotAvailable,
            ResponseError::NotCoordinator,
        ]
        .iter()
        .any(|e| e.code() == r.error_code);
        if !retriable || tokio::time::Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The decoded keys of every record in one `__consumer_offsets` partition.
async fn offsets_topic_keys(conn: &mut Conn, partition: i32) -> Vec<RecordKey> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(s("__consumer_offsets").into()).with_partitions(vec![
            FetchPartition::default().with_partition(partition).with_fetch_offset(0).with_partition_max_bytes(1 << 20),
        ])]);
    let resp = conn.call(12, &req).await;
    let data = &resp.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    let mut records = data.records.clone().unwrap_or_default();
    let mut keys = Vec::new();
    while records.has_remaining() {
        for r in RecordBatchDecoder::decode(&mut records).unwrap().records {
            if let Some(k) = RecordKey::decode(r.key.unwrap()).unwrap() {
                keys.push(k);
            }
        }
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_sync_heartbeat_commit_fetch_and_errors() {
    let env = Env::start().await;
    let mut conn = env.conn().await;
    create_topic(&mut conn, "orders", 2).await;
    let coordinator = find_coordinator(&mut conn, "g1").await;
    assert_eq!(coordinator.error_code, 0, "{:?}", coordinator.error_message);
    assert_eq!(coordinator.node_id.0, 1);
    assert_eq!(coordinator.port, i32::from(env.broker.as_ref().unwrap().local_addr().port()));
    let batched = conn.call(4, &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g1"), s("")])).await;
    assert_eq!(batched.coordinators[0].error_code, 0);
    assert_eq!(batched.coordinators[1].error_code, code(ResponseError::InvalidRequest));

    // v4+ hands out a member id first.
    let first = conn.call(5, &join_req("g1", "", 10_000)).await;
    assert_eq!(first.error_code, code(ResponseError::MemberIdRequired));
    assert!(!first.member_id.is_empty());
    let joined = join(&mut conn, "g1", &first.member_id, 10_000).await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, joined.member_id);
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    let me = joined.member_id.to_string();

    let synced = conn.call(5, &sync_req("g1", &me, 1, &[(&me, b"assignment")])).await;
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"assignment");
    assert_eq!(conn.call(4, &heartbeat_req("g1", &me, 1)).await.error_code, 0);

    // Error codes: stale generation, unknown member, inconsistent protocols.
    assert_eq!(conn.call(4, &heartbeat_req("g1", &me, 0)).await.error_code, code(ResponseError::IllegalGeneration));
    assert_eq!(conn.call(4, &heartbeat_req("g1", "ghost", 1)).await.error_code, code(ResponseError::UnknownMemberId));
    assert_eq!(conn.call(5, &sync_req("g1", &me, 7, &[])).await.error_code, code(ResponseError::IllegalGeneration));
    let empty = join_req("g1", "", 10_000).with_protocols(vec![]);
    assert_eq!(conn.call(5, &empty).await.error_code, code(ResponseError::InconsistentGroupProtocol));
    assert_eq!(conn.call(5, &join_req("", "", 10_000)).await.error_code, code(ResponseError::InvalidGroupId));

    // Commits: checked against the membership, unknown partitions refused.
    let ok = commit(&mut conn, 7, &commit_req("g1", &me, 1, "orders", &[(0, 5), (1, 7)])).await;
    assert_eq!(commit_codes(&ok), vec![0, 0]);
    let stale = commit(&mut conn, 7, &commit_req("g1", &me, 0, "orders", &[(0, 9)])).await;
    assert_eq!(commit_codes(&stale), vec![code(ResponseError::IllegalGeneration)]);
    let stranger = commit(&mut conn, 7, &commit_req("g1", "ghost", 1, "orders", &[(0, 9)])).await;
    assert_eq!(commit_codes(&stranger), vec![code(ResponseError::UnknownMemberId)]);
    let simple = commit(&mut conn, 7, &commit_req("g1", "", -1, "orders", &[(0, 9)])).await;
    assert_eq!(commit_codes(&simple), vec![code(ResponseError::UnknownMemberId)], "group is not empty");
    let unknown = commit(&mut conn, 7, &commit_req("g1", &me, 1, "orders", &[(5, 1)])).await;
    assert_eq!(commit_codes(&unknown), vec![code(ResponseError::UnknownTopicOrPartition)]);

    let resp = conn.call(5, &fetch_req("g1", "orders", &[0, 1, 2])).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(fetched(&resp), vec![(0, 5), (1, 7), (2, -1)]);
    assert_eq!(resp.topics[0].partitions[0].metadata.as_deref(), Some("meta"));
    // v8: a batch of groups, null topics meaning everything committed.
    let all = conn
        .call(
            8,
            &OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default().with_group_id(s("g1").into()).with_topics(None),
                OffsetFetchRequestGroup::default().with_group_id(s("nobody").into()).with_topics(None),
            ]),
        )
        .await;
    let g1: Vec<(i32, i64)> = all.groups[0]
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.committed_offset)))
        .collect();
    assert_eq!(g1, vec![(0, 5), (1, 7)]);
    assert!(all.groups[1].topics.is_empty());

    let listed = conn.call(4, &ListGroupsRequest::default()).await;
    assert_eq!(listed.error_code, 0);
    let g = listed.groups.iter().find(|g| g.group_id.as_str() == "g1").expect("g1 listed");
    assert_eq!((g.protocol_type.as_str(), g.group_state.as_str()), ("consumer", "Stable"));
    let described = conn.call(5, &DescribeGroupsRequest::default().with_groups(vec![s("g1").into()])).await;
    let d = &described.groups[0];
    assert_eq!((d.group_state.as_str(), d.protocol_data.as_str()), ("Stable", "range"));
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].client_id.as_str(), "strom-test");
    assert_eq!(d.members[0].client_host.as_str(), "/127.0.0.1");
    assert_eq!(&d.members[0].member_assignment[..], b"assignment");

    // A member that is still there blocks deletion; after it leaves the group is empty.
    let del = conn.call(2, &DeleteGroupsRequest::default().with_groups_names(vec![s("g1").into()])).await;
    assert_eq!(del.results[0].error_code, code(ResponseError::NonEmptyGroup));
    let od = OffsetDeleteRequest::default().with_group_id(s("g1").into()).with_topics(vec![
        OffsetDeleteRequestTopic::default()
            .with_name(s("orders").into())
            .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(1)]),
    ]);
    let od_resp = conn.call(0, &od).await;
    assert_eq!(od_resp.topics[0].partitions[0].error_code, code(ResponseError::GroupSubscribedToTopic));
    let left = conn
        .call(
            4,
            &LeaveGroupRequest::default()
                .with_group_id(s("g1").into())
                .with_members(vec![MemberIdentity::default().with_member_id(s(&me))]),
        )
        .await;
    assert_eq!((left.error_code, left.members[0].error_code), (0, 0));
    let simple = commit(&mut conn, 7, &commit_req("g1", "", -1, "orders", &[(0, 9)])).await;
    assert_eq!(commit_codes(&simple), vec![0], "simple commits are fine on an empty group");
    assert_eq!(conn.call(0, &od).await.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetched(&conn.call(5, &fetch_req("g1", "orders", &[0, 1])).await), vec![(0, 9), (1, -1)]);
    let del =
        conn.call(2, &DeleteGroupsRequest::default().with_groups_names(vec![s("g1").into(), s("nope").into()])).await;
    assert_eq!(del.results[0].error_code, 0);
    assert_eq!(del.results[1].error_code, code(ResponseError::GroupIdNotFound));
    assert_eq!(fetched(&conn.call(5, &fetch_req("g1", "orders", &[0])).await), vec![(0, -1)]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_on_join_and_on_session_expiry() {
    let env = Env::start().await;
    let mut a = env.conn().await;
    let mut b = env.conn().await;
    create_topic(&mut a, "orders", 2).await;
    assert_eq!(find_coordinator(&mut a, "g2").await.error_code, 0);
    let ja = join(&mut a, "g2", "", 400).await;
    assert_eq!((ja.error_code, ja.generation_id), (0, 1));
    let ida = ja.member_id.to_string();
    assert_eq!(a.call(3, &sync_req("g2", &ida, 1, &[(&ida, b"A")])).await.error_code, 0);

    // B joins: the group rebalances; A learns it from its heartbeat and rejoins.
    let b_join = tokio::spawn(async move {
        let r = join(&mut b, "g2", "", 5_000).await;
        (b, r)
    });
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let hb = a.call(3, &heartbeat_req("g2", &ida, 1)).await.error_code;
        if hb == code(ResponseError::RebalanceInProgress) {
            break;
        }
        assert_eq!(hb, 0);
        assert!(tokio::time::Instant::now() < deadline, "no rebalance signalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ja2 = join(&mut a, "g2", &ida, 400).await;
    let (mut b, jb) = tokio::time::timeout(TIMEOUT, b_join).await.unwrap().unwrap();
    assert_eq!((ja2.error_code, jb.error_code), (0, 0));
    assert_eq!((ja2.generation_id, jb.generation_id), (2, 2));
    assert_eq!(ja2.leader.as_str(), ida, "the leader stays the leader");
    assert_eq!(ja2.members.len(), 2);
    assert!(jb.members.is_empty());
    let idb = jb.member_id.to_string();

    // Sync: B waits for the leader's assignment.
    let b_sync = tokio::spawn(async move { b.call(3, &sync_req("g2", &idb, 2, &[])).await });
    let sa = a.call(3, &sync_req("g2", &ida, 2, &[(&ida, b"A"), (jb.member_id.as_str(), b"B")])).await;
    assert_eq!((sa.error_code, &sa.assignment[..]), (0, &b"A"[..]));
    let sb = tokio::time::timeout(TIMEOUT, b_sync).await.unwrap().unwrap();
    assert_eq!((sb.error_code, &sb.assignment[..]), (0, &b"B"[..]));

    // A stops heartbeating; its 400 ms session expires and B is told to rejoin.
    let started = tokio::time::Instant::now();
    let mut b = Conn::connect(env.broker.as_ref().unwrap().local_addr()).await;
    loop {
        let hb = b.call(3, &heartbeat_req("g2", jb.member_id.as_str(), 2)).await.error_code;
        if hb == code(ResponseError::RebalanceInProgress) {
            break;
        }
        assert_eq!(hb, 0);
        assert!(started.elapsed() < Duration::from_secs(5), "session of A never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let jb2 = join(&mut b, "g2", jb.member_id.as_str(), 5_000).await;
    assert_eq!((jb2.error_code, jb2.generation_id), (0, 3));
    assert_eq!(jb2.leader, jb.member_id, "B leads alone");
    assert_eq!(jb2.members.len(), 1);
    // The expired member is gone for good.
    assert_eq!(a.call(3, &heartbeat_req("g2", &ida, 3)).await.error_code, code(ResponseError::UnknownMemberId));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_member_rejoins_without_rebalance() {
    let env = Env::start().await;
    let mut conn = env.conn().await;
    assert_eq!(find_coordinator(&mut conn, "g3").await.error_code, 0);
    let req = |member: &str| join_req("g3", member, 10_000).with_group_instance_id(Some(s("instance-1")));
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let first = loop {
        let r = conn.call(7, &req("")).await;
        if r.error_code != code(ResponseError::CoordinatorLoadInProgress) || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((first.error_code, first.generation_id), (0, 1), "static members need no member-id round");
    let old = first.member_id.to_string();
    let synced =
        conn.call(5, &sync_req("g3", &old, 1, &[(&old, b"A")]).with_group_instance_id(Some(s("instance-1")))).await;
    assert_eq!(synced.error_code, 0);
    // Restarted with a new member id: same generation, no rebalance, old id fenced.
    let again = conn.call(7, &req("")).await;
    assert_eq!((again.error_code, again.generation_id), (0, 1));
    assert_ne!(again.member_id.as_str(), old);
    let hb = heartbeat_req("g3", &old, 1).with_group_instance_id(Some(s("instance-1")));
    assert_eq!(conn.call(3, &hb).await.error_code, code(ResponseError::FencedInstanceId));
    let hb = heartbeat_req("g3", again.member_id.as_str(), 1).with_group_instance_id(Some(s("instance-1")));
    assert_eq!(conn.call(3, &hb).await.error_code, 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_groups_survive_a_broker_restart() {
    let mut env = Env::start().await;
    let mut conn = env.conn().await;
    create_topic(&mut conn, "orders", 2).await;
    assert_eq!(find_coordinator(&mut conn, "g4").await.error_code, 0);
    assert_eq!(
        commit_codes(&commit(&mut conn, 7, &commit_req("g4", "", -1, "orders", &[(0, 11), (1, 22)])).await),
        vec![0, 0]
    );
    assert_eq!(find_coordinator(&mut conn, "g5").await.error_code, 0);
    let joined = join(&mut conn, "g5", "", 10_000).await;
    assert_eq!(joined.error_code, 0);
    let me = joined.member_id.to_string();
    assert_eq!(conn.call(5, &sync_req("g5", &me, 1, &[(&me, b"A")])).await.error_code, 0);
    assert_eq!(commit_codes(&commit(&mut conn, 7, &commit_req("g5", &me, 1, "orders", &[(1, 3)])).await), vec![0]);

    // A deleted group must stay deleted: its tombstones are replayed too.
    assert_eq!(find_coordinator(&mut conn, "g6").await.error_code, 0);
    assert_eq!(commit_codes(&commit(&mut conn, 7, &commit_req("g6", "", -1, "orders", &[(0, 1)])).await), vec![0]);
    let del = conn.call(2, &DeleteGroupsRequest::default().with_groups_names(vec![s("g6").into()])).await;
    assert_eq!(del.results[0].error_code, 0);

    // The commits are Kafka-format records in the group's __consumer_offsets partition.
    let partition = strom_broker::group::partition_for("g4", 4);
    let keys = offsets_topic_keys(&mut conn, partition).await;
    let g4 = RecordKey::Offset { group: "g4".into(), topic: "orders".into(), partition: 1 };
    assert!(keys.contains(&g4), "{keys:?}");
    drop(conn);

    env.restart_broker().await;
    let mut conn = env.conn().await;
    let resp = fetch_retrying(&mut conn, "g4", "orders", &[0, 1]).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(fetched(&resp), vec![(0, 11), (1, 22)]);
    assert_eq!(fetched(&fetch_retrying(&mut conn, "g5", "orders", &[1]).await), vec![(1, 3)]);
    assert_eq!(fetched(&fetch_retrying(&mut conn, "g6", "orders", &[0]).await), vec![(0, -1)]);
    // The member and its generation came back too: it keeps heartbeating without a rejoin.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let heartbeat = loop {
        let code = conn.call(3, &heartbeat_req("g5", &me, 1)).await.error_code;
        if !coordinator_busy(code) || tokio::time::Instant::now() > deadline {
            break code;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(heartbeat, 0);
    let described = conn.call(5, &DescribeGroupsRequest::default().with_groups(vec![s("g5").into()])).await;
    assert_eq!(described.groups[0].group_state.as_str(), "Stable");
    assert_eq!(&described.groups[0].members[0].member_assignment[..], b"A");
    env.stop().await;
}

/// Every advertised version of every group API gets a decodable, successful answer (the
/// encoder rejects fields a version lacks, so this catches version-gating mistakes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_api_version_answers() {
    let env = Env::start().await;
    let mut conn = env.conn().await;
    create_topic(&mut conn, "orders", 2).await;
    let versions = |api: ApiKey| {
        let (_, min, max) = strom_broker::protocol::SUPPORTED_APIS.iter().copied().find(|(k, _, _)| *k == api).unwrap();
        min..=max
    };
    // Every group below hashes to some partition: make sure all are led and loaded.
    for i in 0..4 {
        let g = (0..).map(|n| format!("warm{n}")).find(|g| strom_broker::group::partition_for(g, 4) == i).unwrap();
        assert_eq!(find_coordinator(&mut conn, &g).await.error_code, 0);
    }
    for v in versions(ApiKey::FindCoordinator) {
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("gv")])
        } else {
            FindCoordinatorRequest::default().with_key(s("gv"))
        };
        let r = conn.call(v, &req).await;
        let code = if v >= 4 { r.coordinators[0].error_code } else { r.error_code };
        assert_eq!(code, 0, "FindCoordinator v{v}");
    }
    // A stable one-member group per JoinGroup version, then the other APIs at every version.
    for v in versions(ApiKey::JoinGroup) {
        let group = format!("jg{v}");
        let mut req = join_req(&group, "", 10_000);
        if v == 0 {
            req.rebalance_timeout_ms = -1;
        }
        let mut r = conn.call(v, &req).await;
        if v >= 4 {
            assert_eq!(r.error_code, code(ResponseError::MemberIdRequired), "JoinGroup v{v}");
            req.member_id = r.member_id.clone();
            r = conn.call(v, &req).await;
        }
        assert_eq!((r.error_code, r.generation_id, r.members.len()), (0, 1, 1), "JoinGroup v{v}");
        let me = r.member_id.to_string();
        assert_eq!(conn.call(3, &sync_req(&group, &me, 1, &[(&me, b"A")])).await.error_code, 0);
        // A rejoin of the leader in a stable group rebalances; answers at this version too.
        let again = conn.call(v, &req.clone().with_member_id(s(&me))).await;
        assert_eq!((again.error_code, again.generation_id), (0, 2), "JoinGroup v{v} rejoin");
    }
    for v in versions(ApiKey::SyncGroup) {
        let group = format!("sg{v}");
        let me = join(&mut conn, &group, "", 10_000).await.member_id.to_string();
        let mut req = sync_req(&group, &me, 1, &[(&me, b"A")]);
        if v < 5 {
            req.protocol_type = None;
            req.protocol_name = None;
        }
        let r = conn.call(v, &req).await;
        assert_eq!((r.error_code, &r.assignment[..]), (0, &b"A"[..]), "SyncGroup v{v}");
        let hb_v = versions(ApiKey::Heartbeat).filter(|h| *h <= v).max().unwrap_or(0);
        assert_eq!(conn.call(hb_v, &heartbeat_req(&group, &me, 1)).await.error_code, 0, "Heartbeat v{hb_v}");
        let commit_v = versions(ApiKey::OffsetCommit).nth(v as usize).unwrap_or(9);
        let c = commit(&mut conn, commit_v, &commit_req(&group, &me, 1, "orders", &[(0, 4)])).await;
        assert_eq!(commit_codes(&c), vec![0], "OffsetCommit v{commit_v}");
    }
    for v in versions(ApiKey::Heartbeat) {
        let group = format!("hb{v}");
        let me = join(&mut conn, &group, "", 10_000).await.member_id.to_string();
        assert_eq!(conn.call(3, &sync_req(&group, &me, 1, &[])).await.error_code, 0);
        assert_eq!(conn.call(v, &heartbeat_req(&group, &me, 1)).await.error_code, 0, "Heartbeat v{v}");
    }
    for v in versions(ApiKey::LeaveGroup) {
        let group = format!("lg{v}");
        let me = join(&mut conn, &group, "", 10_000).await.member_id.to_string();
        let req = if v >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(s(&group).into())
                .with_members(vec![MemberIdentity::default().with_member_id(s(&me))])
        } else {
            LeaveGroupRequest::default().with_group_id(s(&group).into()).with_member_id(s(&me))
        };
        let r = conn.call(v, &req).await;
        assert_eq!(r.error_code, 0, "LeaveGroup v{v}");
        if v >= 3 {
            assert_eq!(r.members[0].error_code, 0, "LeaveGroup v{v}");
        }
    }
    for v in versions(ApiKey::OffsetCommit) {
        let mut req = commit_req("oc", "", -1, "orders", &[(0, 10 + i64::from(v))]);
        if v >= 6 {
            req.topics[0].partitions[0].committed_leader_epoch = 3;
        }
        assert_eq!(commit_codes(&commit(&mut conn, v, &req).await), vec![0], "OffsetCommit v{v}");
    }
    for v in versions(ApiKey::OffsetFetch) {
        let r = if v >= 8 {
            let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(s("oc").into())
                .with_topics(Some(vec![
                    kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(s("orders").into())
                        .with_partition_indexes(vec![0, 1]),
                ]))]);
            let r = conn.call(v, &req).await;
            let g = &r.groups[0];
            assert_eq!(g.error_code, 0, "OffsetFetch v{v}");
            g.topics[0].partitions.iter().map(|p| (p.partition_index, p.committed_offset)).collect::<Vec<_>>()
        } else {
            let r = conn.call(v, &fetch_req("oc", "orders", &[0, 1])).await;
            assert_eq!(r.error_code, 0, "OffsetFetch v{v}");
            fetched(&r)
        };
        assert_eq!(r, vec![(0, 19), (1, -1)], "OffsetFetch v{v}");
    }
    for v in versions(ApiKey::ListGroups) {
        let r = conn.call(v, &ListGroupsRequest::default()).await;
        assert_eq!(r.error_code, 0, "ListGroups v{v}");
        assert!(r.groups.iter().any(|g| g.group_id.as_str() == "jg0"), "ListGroups v{v}");
    }
    for v in versions(ApiKey::DescribeGroups) {
        let r =
            conn.call(v, &DescribeGroupsRequest::default().with_groups(vec![s("sg0").into(), s("nope").into()])).await;
        assert_eq!((r.groups[0].error_code, r.groups[0].group_state.as_str()), (0, "Stable"), "DescribeGroups v{v}");
        assert_eq!(r.groups[0].members.len(), 1, "DescribeGroups v{v}");
        assert_eq!(r.groups[1].group_state.as_str(), "Dead", "DescribeGroups v{v}");
    }
    for v in versions(ApiKey::OffsetDelete) {
        let req = OffsetDeleteRequest::default().with_group_id(s("oc").into()).with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(s("orders").into())
                .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(0)]),
        ]);
        let r = conn.call(v, &req).await;
        assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0), "OffsetDelete v{v}");
    }
    for v in versions(ApiKey::DeleteGroups) {
        let group = format!("dg{v}");
        assert_eq!(
            commit_codes(&commit(&mut conn, 7, &commit_req(&group, "", -1, "orders", &[(0, 1)])).await),
            vec![0]
        );
        let r = conn.call(v, &DeleteGroupsRequest::default().with_groups_names(vec![s(&group).into()])).await;
        assert_eq!(r.results[0].error_code, 0, "DeleteGroups v{v}");
    }
    env.stop().await;
}

/// With two brokers, each group is coordinated by the leader of its offsets partition:
/// FindCoordinator on either broker names it, the other one answers NOT_COORDINATOR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offsets_partition_leader_coordinates() {
    let env = Env::start().await;
    let ldir = tempfile::tempdir().unwrap();
    let props = env
        .props
        .replace("broker.id=1", "broker.id=2")
        .replace(&env._dirs.1.path().display().to_string(), &ldir.path().display().to_string());
    let second = tokio::time::timeout(TIMEOUT, Broker::start(BrokerConfig::from_properties_str(&props).unwrap()))
        .await
        .expect("start in time")
        .unwrap();
    let mut one = env.conn().await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while one.call(12, &MetadataRequest::default().with_topics(Some(vec![]))).await.brokers.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "second broker never appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut two = Conn::connect(second.local_addr()).await;
    let mut seen = std::collections::BTreeSet::new();
    for n in 0..40 {
        let group = format!("spread{n}");
        let on_one = find_coordinator(&mut one, &group).await;
        assert_eq!(on_one.error_code, 0, "{:?}", on_one.error_message);
        let on_two = find_coordinator(&mut two, &group).await;
        assert_eq!(on_two.node_id, on_one.node_id, "both brokers name the same coordinator");
        let (coordinator, other) = if on_one.node_id.0 == 1 { (&mut one, &mut two) } else { (&mut two, &mut one) };
        let refused = other.call(7, &join_req(&group, "", 10_000)).await;
        assert_eq!(refused.error_code, code(ResponseError::NotCoordinator), "{group}");
        let commit = other.call(7, &commit_req(&group, "", -1, "orders", &[(0, 1)])).await;
        assert_eq!(commit_codes(&commit), vec![code(ResponseError::NotCoordinator)]);
        let joined = join(coordinator, &group, "", 10_000).await;
        assert_eq!((joined.error_code, joined.generation_id), (0, 1), "{group}");
        seen.insert(on_one.node_id.0);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "offsets partitions are led by both brokers");
    second.shutdown().await;
    env.stop().await;
}

/// Bytes of `.log` files in one partition directory.
fn partition_log_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_topic_is_compacted_and_survives_a_restart() {
    let mut env = Env::start_with(
        "offsets.topic.segment.bytes=1024\nlog.cleaner.backoff.ms=20\nlog.cleaner.min.cleanable.ratio=0.1\n",
    )
    .await;
    let mut conn = env.conn().await;
    create_topic(&mut conn, "orders", 2).await;
    assert_eq!(find_coordinator(&mut conn, "gc").await.error_code, 0);
    const COMMITS: i64 = 300;
    for i in 1..=COMMITS {
        let resp = commit(&mut conn, 7, &commit_req("gc", "", -1, "orders", &[(0, i), (1, 2 * i)])).await;
        assert_eq!(commit_codes(&resp), vec![0, 0], "commit {i}");
    }
    let partition = strom_broker::group::partition_for("gc", 4);
    let dir = env._dirs.1.path().join(format!("__consumer_offsets-{partition}"));
    // Each commit appends a ~200-byte batch: uncompacted, the partition would hold ~60 KB in
    // ~60 segments. The cleaner (running concurrently with the commits) keeps it small.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut size = partition_log_bytes(&dir);
    while size > 8 * 1024 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        size = partition_log_bytes(&dir);
    }
    assert!(size <= 8 * 1024, "offsets partition still holds {size} bytes");
    let checkpoint = std::fs::read_to_string(dir.join("cleaner-offset-checkpoint")).expect("cleaner checkpoint");
    assert!(checkpoint.lines().nth(1).and_then(|l| l.parse::<i64>().ok()).is_some_and(|o| o > 100), "{checkpoint}");
    drop(conn);

    env.restart_broker().await;
    let mut conn = env.conn().await;
    let resp = fetch_retrying(&mut conn, "gc", "orders", &[0, 1]).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(fetched(&resp), vec![(0, COMMITS), (1, 2 * COMMITS)]);
    assert!(partition_log_bytes(&dir) <= 8 * 1024);
    env.stop().await;
}
