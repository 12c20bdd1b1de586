"""Cluster metadata across three brokers: replica placement, the controller and its failover,
RF=1 partitions going offline and coming back with their broker, Leader/Replicas/Isr in
Metadata and `kafka-topics --describe`, dead brokers leaving ISRs, and topic deletion removing
every replica's directory (issue 5, test 6)."""
import re
import subprocess
import time
from collections import Counter

from .harness import BROKER_IDS, FAILOVER_TIMEOUT, binary, consume_all, produce, wait_until


DESCRIBE_LINE = re.compile(r"Topic: (\S+)\s+Partition: (\d+)\s+Leader: (-?\d+|none)\s+Replicas: ([\d,]*)\s+Isr: ([\d,]*)")


def describe(args):
    r = subprocess.run([binary("kafka-topics"), "--describe", *args], capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, f"kafka-topics --describe {args}: {out} {r.stderr.decode(errors='replace')}"
    parts = {}
    for m in DESCRIBE_LINE.finditer(out):
        leader = -1 if m.group(3) == "none" else int(m.group(3))
        parts[int(m.group(2))] = (leader, [int(x) for x in m.group(4).split(",") if x],
                                  sorted(int(x) for x in m.group(5).split(",") if x))
    return parts, out


def test_replicas_spread_and_every_view_agrees(cluster3, topic_name):
    cluster3.create_topic(topic_name, 6, 3)
    assignment = cluster3.zk_assignment(topic_name)
    assert sorted(assignment) == list(range(6))
    for p, replicas in assignment.items():
        assert sorted(replicas) == list(BROKER_IDS), f"partition {p} replicas {replicas}"
    # Round-robin placement: each broker is the preferred (first) replica of two partitions.
    assert Counter(r[0] for r in assignment.values()) == {1: 2, 2: 2, 3: 2}, assignment

    # The keeper's state, every broker's Metadata and both kafka-topics paths agree.
    cluster3.wait_full_isr(topic_name, 6)
    zk = {p: cluster3.zk_state(topic_name, p) for p in range(6)}
    for p, st in zk.items():
        assert st["leader"] == assignment[p][0], f"partition {p}: leader {st['leader']} is not the preferred replica"
    for i in BROKER_IDS:
        md = cluster3.metadata([topic_name], via=i)
        assert md["controller"] == cluster3.controller()[0]
        assert sorted(md["brokers"]) == list(BROKER_IDS)
        for p, m in md["topics"][topic_name]["partitions"].items():
            assert m["error"] == 0
            assert (m["leader"], m["replicas"], sorted(m["isr"])) == (zk[p]["leader"], assignment[p], sorted(zk[p]["isr"]))
            assert m["leader_epoch"] == zk[p]["leader_epoch"]
            assert m["offline"] == []
    for args in (["--bootstrap-server", cluster3.bootstrap()], ["--zookeeper", cluster3.zookeeper]):
        parts, out = describe([*args, "--topic", topic_name])
        assert sorted(parts) == list(range(6)), out
        assert "ReplicationFactor: 3" in out and "PartitionCount: 6" in out, out
        for p, (leader, replicas, isr) in parts.items():
            assert (leader, replicas, isr) == (zk[p]["leader"], assignment[p], sorted(zk[p]["isr"])), out


def test_controller_failover(cluster3, topic_name):
    old, epoch = cluster3.controller()
    assert old in BROKER_IDS and epoch is not None
    killed_at = time.monotonic()
    cluster3.kill9(old)
    found = {}

    def new_controller():
        c, e = cluster3.controller()
        if c is not None and c != old:
            found["c"], found["e"] = c, e
            return True
        return False

    wait_until(f"a controller other than {old}", new_controller, timeout=FAILOVER_TIMEOUT, interval=0.05)
    took = time.monotonic() - killed_at
    print(f"controller failover: broker {old} killed, broker {found['c']} controller after {took:.2f}s "
          f"(epoch {epoch} -> {found['e']})")
    assert found["e"] > epoch
    # Every surviving broker learns the new controller.
    wait_until("surviving brokers report the new controller",
               lambda: all(cluster3.metadata(via=i)["controller"] == found["c"] for i in cluster3.live_ids()),
               timeout=FAILOVER_TIMEOUT, interval=0.2)
    # The new controller does its job: a topic created now gets states and leaders on live brokers.
    cluster3.create_topic(topic_name, 3, 2)
    for p in range(3):
        st = cluster3.zk_state(topic_name, p)
        assert st["leader"] in cluster3.live_ids(), st
    # The old controller returns as an ordinary broker; the controller stays put.
    cluster3.restart(old)
    time.sleep(1)
    assert cluster3.controller() == (found["c"], found["e"])


def test_rf1_partition_offline_while_its_broker_is_down(cluster3, topic_name):
    # min.insync.replicas=1: the brokers' 2 would refuse every acks=all write to one replica.
    cluster3.create_topic(topic_name, 3, 1, config={"min.insync.replicas": "1"})
    owner = {p: cluster3.leader(topic_name, p) for p in range(3)}
    assert sorted(owner.values()) == list(BROKER_IDS), owner
    victim = owner[0]
    values = [f"v{i}".encode() for i in range(50)]
    assert [o for _, o in produce(cluster3.bootstrap(), topic_name, values, partition=0)] == list(range(50))

    cluster3.kill9(victim)
    cluster3.wait_unregistered(victim)

    def offline():
        st = cluster3.zk_state(topic_name, 0)
        if st["leader"] != -1:
            return False
        for i in cluster3.live_ids():
            m = cluster3.metadata([topic_name], via=i)["topics"][topic_name]["partitions"][0]
            if m["leader"] != -1 or m["offline"] != [victim]:
                return False
        return True

    # Unclean election is off and the only replica is gone: the partition has no leader and
    # Metadata lists its replica as offline; the other partitions keep their leaders.
    wait_until(f"{topic_name}-0 offline", offline, timeout=FAILOVER_TIMEOUT, interval=0.2)
    for p in (1, 2):
        assert cluster3.leader(topic_name, p) == owner[p]

    cluster3.restart(victim)
    wait_until(f"{topic_name}-0 led by broker {victim} again",
               lambda: cluster3.leader(topic_name, 0) == victim
               and all(cluster3.partitions(topic_name, via=i)[0][0] == victim for i in cluster3.live_ids()),
               timeout=FAILOVER_TIMEOUT, interval=0.2)
    got = consume_all(cluster3.bootstrap(), topic_name, 3)
    assert [(o, v) for o, _, v in got[0]] == list(enumerate(values))


def test_dead_broker_leaves_every_isr(cluster3, topic_name):
    cluster3.create_topic(topic_name, 6, 3)
    cluster3.wait_full_isr(topic_name, 6)
    victim = cluster3.controller()[0] % 3 + 1  # not the controller: this test is about ISRs
    led = [p for p in range(6) if cluster3.leader(topic_name, p) == victim]
    assert led, "round-robin placement gives every broker leaderships"
    cluster3.kill9(victim)

    def gone():
        for p in range(6):
            st = cluster3.zk_state(topic_name, p)
            if victim in st["isr"] or st["leader"] in (victim, -1):
                return False
        for i in cluster3.live_ids():
            for p, (leader, replicas, isr) in cluster3.partitions(topic_name, via=i).items():
                if victim in isr or leader == victim or victim not in replicas:
                    return False
        return True

    wait_until(f"broker {victim} out of every ISR of {topic_name}", gone, timeout=FAILOVER_TIMEOUT, interval=0.2)
    parts, out = describe(["--bootstrap-server", cluster3.bootstrap(), "--topic", topic_name])
    for p, (leader, replicas, isr) in parts.items():
        assert victim not in isr and leader != victim and victim in replicas, out
    for i in cluster3.live_ids():
        for p in led:
            m = cluster3.metadata([topic_name], via=i)["topics"][topic_name]["partitions"][p]
            assert m["offline"] == [victim], m
    cluster3.restart(victim)
    # Back in every ISR once it has caught up (needs replica fetch).
    cluster3.wait_full_isr(topic_name, 6)


def test_delete_topic_removes_every_replica(cluster3, topic_name):
    cluster3.create_topic(topic_name, 3, 3)
    produce(cluster3.bootstrap(), topic_name, [f"d{i}".encode() for i in range(30)])
    expected = {i: sorted(f"{topic_name}-{p}" for p in range(3)) for i in BROKER_IDS}
    wait_until("every broker holds a replica directory of every partition",
               lambda: cluster3.partition_dirs(topic_name) == expected, timeout=FAILOVER_TIMEOUT, interval=0.2)
    admin = cluster3.admin()
    admin.delete_topics([topic_name], operation_timeout=30)[topic_name].result(timeout=30)

    def removed():
        if any(cluster3.partition_dirs(topic_name).values()):
            return False
        return all(topic_name not in cluster3.metadata(via=i)["topics"] for i in cluster3.live_ids())

    wait_until(f"{topic_name} gone from every broker's disk and Metadata", removed, timeout=FAILOVER_TIMEOUT, interval=0.2)
    assert cluster3.zk_assignment(topic_name) is None
