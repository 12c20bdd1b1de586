//! Leader elections on request and by the controller's balance check: the ElectLeaders API's
//! per-partition answers, the `/admin/preferred_replica_election` znode, and
//! `auto.leader.rebalance.enable`. Two brokers share one keeper; partition states are set up
//! by writing them into the keeper, as a failover would have left them.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::{Broker, BrokerConfig};
use strom_keeper::client::KeeperClient;
use strom_keeper::{CreateMode, Op};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn elect(kind: i8, partitions: Option<Vec<(&str, Vec<i32>)>>) -> ElectLeadersRequest {
    ElectLeadersRequest::default().with_election_type(kind).with_timeout_ms(10_000).with_topic_partitions(
        partitions.map(|list| {
            list.into_iter().map(|(t, ps)| TopicPartitions::default().with_topic(name(t)).with_partitions(ps)).collect()
        }),
    )
}

/// (topic, partition, error code) for every result, in response order.
fn codes(resp: &ElectLeadersResponse) -> Vec<(String, i32, i16)> {
    resp.replica_election_results
        .iter()
        .flat_map(|t| t.partition_result.iter().map(move |p| (t.topic.0.to_string(), p.partition_id, p.error_code)))
        .collect()
}

/// (leader, leader epoch, isr) of a partition, as the broker's Metadata reports it.
async fn leadership(conn: &mut Conn, topic: &str, partition: usize) -> Option<(i32, i32, Vec<i32>)> {
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]));
    let resp = conn.call(9, &req).await;
    let p = resp.topics.first()?.partitions.get(partition)?;
    Some((p.leader_id.0, p.leader_epoch, p.isr_nodes.iter().map(|b| b.0).collect()))
}

async fn wait_leadership(conn: &mut Conn, topic: &str, partition: usize, want: impl Fn(&(i32, i32, Vec<i32>)) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got = leadership(conn, topic, partition).await;
        if got.as_ref().is_some_and(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "{topic}-{partition} never reached the wanted leadership: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A second broker (id 2) on the cluster's keeper.
async fn second_broker(cluster: &Cluster, extra: &str) -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let props = format!(
        "broker.id=2\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs={}\nzookeeper.connect={}{}\nzookeeper.session.timeout.ms=6000\n{extra}\n",
        dir.path().display(),
        cluster.keeper_addr,
        cluster.chroot
    );
    let broker = tokio::time::timeout(TIMEOUT, Broker::start(BrokerConfig::from_properties_str(&props).unwrap()))
        .await
        .expect("start in time")
        .unwrap();
    (broker, dir)
}

async fn keeper(cluster: &Cluster) -> KeeperClient {
    KeeperClient::connect(&format!("{}{}", cluster.keeper_addr, cluster.chroot), Duration::from_secs(6)).await.unwrap()
}

/// Creates `topic` with the given assignment straight in the keeper (as `kafka-topics
/// --zookeeper` does) and waits until every partition has a leader.
async fn create_assigned(zk: &KeeperClient, conn: &mut Conn, topic: &str, assignment: &str, partitions: usize) {
    zk.multi(vec![
        Op::Create {
            path: format!("/config/topics/{topic}"),
            data: br#"{"version":1,"config":{}}"#.to_vec(),
            mode: CreateMode::Persistent,
        },
        Op::Create {
            path: format!("/brokers/topics/{topic}"),
            data: format!(r#"{{"version":2,"partitions":{assignment}}}"#).into_bytes(),
            mode: CreateMode::Persistent,
        },
    ])
    .await
    .unwrap();
    for p in 0..partitions {
        wait_leadership(conn, topic, p, |(leader, _, _)| *leader >= 0).await;
    }
}

/// Overwrites a partition's state (version-checked against what is there).
async fn set_state(zk: &KeeperClient, topic: &str, partition: i32, leader: i32, isr: &[i32]) {
    let path = format!("/brokers/topics/{topic}/partitions/{partition}/state");
    let (data, stat) = zk.get_data(&path, false).await.unwrap();
    let mut state: serde_json::Value = serde_json::from_slice(&data).unwrap();
    state["leader"] = leader.into();
    state["leader_epoch"] = (state["leader_epoch"].as_i64().unwrap() + 1).into();
    state["isr"] = serde_json::json!(isr);
    zk.set_data(&path, &serde_json::to_vec(&state).unwrap(), Some(stat.version)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_broker_answers_not_needed_and_unknown() {
    let cluster = Cluster::start("auto.leader.rebalance.enable=false").await;
    let mut conn = cluster.connect().await;
    let zk = keeper(&cluster).await;
    create_assigned(&zk, &mut conn, "one", r#"{"0":[1],"1":[1]}"#, 2).await;

    let resp = conn.call(2, &elect(0, Some(vec![("one", vec![0, 1, 7]), ("nope", vec![0])]))).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(
        codes(&resp),
        vec![("nope".into(), 0, 3), ("one".into(), 0, 84), ("one".into(), 1, 84), ("one".into(), 7, 3)]
    );
    // Unclean election of a partition that has a live leader is not needed either.
    let resp = conn.call(1, &elect(1, Some(vec![("one", vec![1])]))).await;
    assert_eq!(codes(&resp), vec![("one".into(), 1, 84)]);
    // All partitions: those that need no election are left out, as Kafka does.
    let resp = conn.call(2, &elect(0, None)).await;
    assert_eq!((resp.error_code, codes(&resp)), (0, vec![]));
    // An election type Kafka does not define is refused as a whole.
    let resp = conn.call(2, &elect(5, Some(vec![("one", vec![0])]))).await;
    assert_eq!(resp.error_code, 42);
    zk.close().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_election_moves_leadership_back() {
    let cluster = Cluster::start("auto.leader.rebalance.enable=false").await;
    let (second, _dir) = second_broker(&cluster, "auto.leader.rebalance.enable=false").await;
    let mut conn = cluster.connect().await;
    let zk = keeper(&cluster).await;
    // Wait until the first broker sees the second, or the assignment would leave it out.
    wait_brokers(&mut conn, 2).await;
    create_assigned(&zk, &mut conn, "pref", r#"{"0":[1,2],"1":[2,1],"2":[1,2]}"#, 3).await;
    wait_leadership(&mut conn, "pref", 0, |(l, _, isr)| *l == 1 && isr.len() == 2).await;

    // As a failover would leave it: 2 leads partition 0 with 1 back in sync; partition 2's
    // preferred replica 1 is out of sync.
    set_state(&zk, "pref", 0, 2, &[2, 1]).await;
    set_state(&zk, "pref", 2, 2, &[2]).await;
    wait_leadership(&mut conn, "pref", 0, |(l, _, _)| *l == 2).await;
    wait_leadership(&mut conn, "pref", 2, |(l, _, _)| *l == 2).await;
    let (_, epoch, _) = leadership(&mut conn, "pref", 0).await.unwrap();

    let resp = conn.call(2, &elect(0, Some(vec![("pref", vec![0, 1, 2])]))).await;
    let got = codes(&resp);
    assert_eq!(got[..2], [("pref".into(), 0, 0), ("pref".into(), 1, 84)]);
    // Partition 2: 80 while broker 1 is out of its ISR; replication may already have
    // brought it back (the leader expands the ISR as soon as 1 catches up), and then the
    // election simply happens.
    assert!(got[2] == ("pref".into(), 2, 80) || got[2] == ("pref".into(), 2, 0), "{got:?}");
    let (leader, new_epoch, isr) = leadership(&mut conn, "pref", 0).await.unwrap();
    assert_eq!((leader, new_epoch, isr), (1, epoch + 1, vec![2, 1]), "answer given only once the cache shows it");

    // Kafka's ZooKeeper-mode tool writes the znode directly; the controller acts and removes it.
    set_state(&zk, "pref", 0, 2, &[2, 1]).await;
    wait_leadership(&mut conn, "pref", 0, |(l, _, _)| *l == 2).await;
    zk.create(
        "/admin/preferred_replica_election",
        br#"{"version":1,"partitions":[{"topic":"pref","partition":0}]}"#,
        CreateMode::Persistent,
    )
    .await
    .unwrap();
    wait_leadership(&mut conn, "pref", 0, |(l, _, _)| *l == 1).await;
    let deadline = Instant::now() + TIMEOUT;
    while zk.exists("/admin/preferred_replica_election", false).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "controller never removed the election request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    zk.close().await;
    second.shutdown().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclean_election_on_request_elects_an_out_of_sync_replica() {
    let cluster = Cluster::start("auto.leader.rebalance.enable=false").await;
    let (second, _dir) = second_broker(&cluster, "auto.leader.rebalance.enable=false").await;
    let mut conn = cluster.connect().await;
    let zk = keeper(&cluster).await;
    wait_brokers(&mut conn, 2).await;
    create_assigned(&zk, &mut conn, "dirty", r#"{"0":[2,1]}"#, 1).await;
    // Broker 2 goes away while it is the only ISR member: the partition is left offline.
    // (With replication running, broker 1 would rejoin 2's ISR within moments, so the
    // offline state is written the way a controller leaves it, once 2 is gone.)
    second.shutdown().await;
    wait_brokers_exactly(&mut conn, 1).await;
    set_state(&zk, "dirty", 0, -1, &[2]).await;
    wait_leadership(&mut conn, "dirty", 0, |(l, _, isr)| *l == -1 && *isr == [2]).await;

    let resp = conn.call(2, &elect(0, Some(vec![("dirty", vec![0])]))).await;
    assert_eq!(codes(&resp), vec![("dirty".into(), 0, 80)], "preferred replica 2 is dead");
    let resp = conn.call(2, &elect(1, Some(vec![("dirty", vec![0])]))).await;
    assert_eq!(codes(&resp), vec![("dirty".into(), 0, 0)]);
    let (leader, _, isr) = leadership(&mut conn, "dirty", 0).await.unwrap();
    assert_eq!((leader, isr), (1, vec![1]));
    zk.close().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_rebalance_restores_preferred_leaders() {
    let extra = "auto.leader.rebalance.enable=true\nleader.imbalance.check.interval.seconds=1";
    let cluster = Cluster::start(extra).await;
    let (second, _dir) = second_broker(&cluster, extra).await;
    let mut conn = cluster.connect().await;
    let zk = keeper(&cluster).await;
    wait_brokers(&mut conn, 2).await;
    create_assigned(&zk, &mut conn, "bal", r#"{"0":[1,2],"1":[2,1]}"#, 2).await;
    wait_leadership(&mut conn, "bal", 0, |(l, _, isr)| *l == 1 && isr.len() == 2).await;
    let (_, epoch, _) = leadership(&mut conn, "bal", 0).await.unwrap();
    set_state(&zk, "bal", 0, 2, &[1, 2]).await;
    // Broker 1 prefers one partition and leads none of them (100% > 10%): it gets it back,
    // in a new epoch after the one the failover (set_state) made.
    wait_leadership(&mut conn, "bal", 0, |(l, e, _)| *l == 1 && *e >= epoch + 2).await;
    wait_leadership(&mut conn, "bal", 1, |(l, _, _)| *l == 2).await;
    zk.close().await;
    second.shutdown().await;
    cluster.stop().await;
}

/// Waits until Metadata lists exactly `n` brokers (one has left).
async fn wait_brokers_exactly(conn: &mut Conn, n: usize) {
    let deadline = Instant::now() + TIMEOUT;
    while conn.call(9, &MetadataRequest::default().with_topics(Some(vec![]))).await.brokers.len() != n {
        assert!(Instant::now() < deadline, "the broker count never reached {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_brokers(conn: &mut Conn, n: usize) {
    let deadline = Instant::now() + TIMEOUT;
    while conn.call(9, &MetadataRequest::default().with_topics(Some(vec![]))).await.brokers.len() < n {
        assert!(Instant::now() < deadline, "brokers never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_override_enables_unclean_election() {
    let cluster = Cluster::start("auto.leader.rebalance.enable=false").await;
    let (second, _dir) = second_broker(&cluster, "auto.leader.rebalance.enable=false").await;
    let mut conn = cluster.connect().await;
    let zk = keeper(&cluster).await;
    wait_brokers(&mut conn, 2).await;
    create_assigned(&zk, &mut conn, "lossy", r#"{"0":[2,1]}"#, 1).await;
    // Broker 2, the only ISR member, is gone and the partition offline (as in the test above).
    second.shutdown().await;
    wait_brokers_exactly(&mut conn, 1).await;
    set_state(&zk, "lossy", 0, -1, &[2]).await;
    wait_leadership(&mut conn, "lossy", 0, |(l, _, isr)| *l == -1 && *isr == [2]).await;
    // The broker default forbids unclean election; the topic's override allows it. Touching
    // the topic node makes the controller look again.
    let (data, stat) = zk.get_data("/brokers/topics/lossy", false).await.unwrap();
    zk.set_data("/config/topics/lossy", br#"{"version":1,"config":{"unclean.leader.election.enable":"true"}}"#, None)
        .await
        .unwrap();
    zk.set_data("/brokers/topics/lossy", &data, Some(stat.version)).await.unwrap();
    wait_leadership(&mut conn, "lossy", 0, |(l, _, isr)| *l == 1 && *isr == [1]).await;
    zk.close().await;
    cluster.stop().await;
}
