"""kafka-leader-election: Kafka's options, checks and output, against one broker (nothing to
elect) and a two-broker cluster where a partition's preferred replica does not lead."""
import json
import time

from conftest import Cluster, wait_until


def brokers_seen_by(port):
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=3000)
    try:
        return len(admin.describe_cluster()["brokers"])
    finally:
        admin.close()


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout.decode()}\nstderr: {r.stderr.decode()}"
    return r.stdout.decode()


def describe_until(tools, bootstrap, topic, predicate, timeout=20):
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        r = tools("kafka-topics", "--describe", "--bootstrap-server", bootstrap, "--topic", topic)
        out = r.stdout.decode()
        if r.returncode == 0 and predicate(out):
            return out
        time.sleep(0.1)
    raise AssertionError(f"describe never satisfied the condition:\n{out}")


def test_leader_election_options_and_noop(cluster, tools, topic_name, tmp_path):
    bs = ["--bootstrap-server", cluster.bootstrap]
    ok(tools("kafka-topics", "--create", *bs, "--topic", topic_name, "--partitions", "2", "--replication-factor", "1"))
    describe_until(tools, cluster.bootstrap, topic_name, lambda o: o.count("\tLeader: 1") == 2)

    out = ok(tools("kafka-leader-election", *bs, "--election-type", "preferred", "--topic", topic_name,
                   "--partition", "0"))
    assert out == f"Valid replica already elected for partitions {topic_name}-0\n"
    spec = tmp_path / "election.json"
    spec.write_text(json.dumps({"partitions": [{"topic": topic_name, "partition": 1},
                                               {"topic": topic_name, "partition": 0}]}))
    out = ok(tools("kafka-leader-election", *bs, "--election-type", "PREFERRED", "--path-to-json-file", str(spec)))
    assert out == f"Valid replica already elected for partitions {topic_name}-0, {topic_name}-1\n"
    # Every partition of the single broker is led by its preferred replica: nothing to print.
    assert ok(tools("kafka-leader-election", *bs, "--election-type", "preferred", "--all-topic-partitions")) == ""

    r = tools("kafka-leader-election", *bs, "--election-type", "unclean", "--topic", topic_name, "--partition", "9")
    assert r.returncode == 1
    assert r.stdout.decode().startswith(
        f"Error completing leader election (UNCLEAN) for partition: {topic_name}-9: "
        "org.apache.kafka.common.errors.UnknownTopicOrPartitionException: "), r.stdout.decode()
    assert "1 replica(s) could not be elected" in r.stderr.decode()

    for args, message in [
        ([], "Missing required option(s): bootstrap-server, election-type"),
        ([*bs, "--election-type", "preferred"],
         "One and only one of the following options is required: topic, all-topic-partitions, path-to-json-file"),
        ([*bs, "--election-type", "preferred", "--topic", topic_name], "Missing required option(s): partition"),
        ([*bs, "--election-type", "preferred", "--all-topic-partitions", "--partition", "0"],
         "Option partition is only allowed if topic is used"),
    ]:
        r = tools("kafka-leader-election", *args)
        assert r.returncode == 1 and message in r.stderr.decode(), r.stderr.decode()


def test_preferred_election_moves_leadership_back(tmp_path, tools, topic_name):
    no_auto = "auto.leader.rebalance.enable=false\n"
    (tmp_path / "b1").mkdir()
    (tmp_path / "b2").mkdir()
    one = Cluster(tmp_path / "b1")
    two = Cluster(tmp_path / "b2", broker_id=2)
    try:
        one.start_keeper()
        one.start_broker(no_auto)
        two.zk_port, two.zookeeper = one.zk_port, one.zookeeper
        two.start_broker(no_auto)
        bs = ["--bootstrap-server", one.bootstrap]
        # Broker 1 learns of broker 2 through its keeper watch, a moment after 2 is up; an
        # assignment naming a broker it has not seen yet is refused, as Kafka refuses it.
        wait_until("broker 1 sees broker 2", lambda: brokers_seen_by(one.broker_port) >= 2, timeout=20)
        ok(tools("kafka-topics", "--create", *bs, "--topic", topic_name, "--replica-assignment", "1:2,2:1"))
        describe_until(tools, one.bootstrap, topic_name,
                       lambda o: "Partition: 0\tLeader: 1\tReplicas: 1,2\tIsr: 1,2" in o
                       and "Partition: 1\tLeader: 2\tReplicas: 2,1\tIsr: 2,1" in o)

        # Leadership of partition 0 moved to broker 2 (as a failover leaves it), broker 1 in sync.
        state = "/brokers/topics/%s/partitions/0/state" % topic_name
        ok(tools("zookeeper-shell", one.zookeeper, "set", state,
                 '{"controller_epoch":1,"leader":2,"version":1,"leader_epoch":5,"isr":[2,1]}'))
        describe_until(tools, one.bootstrap, topic_name, lambda o: "Partition: 0\tLeader: 2\t" in o)

        out = ok(tools("kafka-leader-election", *bs, "--election-type", "preferred", "--all-topic-partitions"))
        assert out == f"Successfully completed leader election (PREFERRED) for partitions {topic_name}-0\n"
        out = describe_until(tools, one.bootstrap, topic_name, lambda o: "Partition: 0\tLeader: 1\t" in o)
        assert "Partition: 0\tLeader: 1\tReplicas: 1,2\tIsr: 2,1" in out

        # With broker 2 gone, partition 1 fails over to 1 and broker 2 leaves the ISRs.
        two.stop()
        out = describe_until(tools, one.bootstrap, topic_name, lambda o: "Partition: 1\tLeader: 1\t" in o)
        under = ok(tools("kafka-topics", "--describe", *bs, "--topic", topic_name, "--under-replicated-partitions"))
        assert under.count("\tTopic: ") == 2 and "PartitionCount" not in under, under
        assert ok(tools("kafka-topics", "--describe", *bs, "--topic", topic_name, "--unavailable-partitions")) == ""
        r = tools("kafka-leader-election", *bs, "--election-type", "preferred", "--topic", topic_name,
                  "--partition", "1")
        assert r.returncode == 1
        assert (f"Error completing leader election (PREFERRED) for partition: {topic_name}-1: "
                "org.apache.kafka.common.errors.PreferredLeaderNotAvailableException: ") in r.stdout.decode()
    finally:
        two.stop()
        one.stop()
