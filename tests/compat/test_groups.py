"""Consumer groups against a real Strom broker: the tutorial's group consumer with committed
offsets, three-member groups (kafka-python and confluent-kafka) including a killed member,
`kafka-consumer-groups`, and committed offsets across a broker restart."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from json import dumps, loads

import pytest
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic

from conftest import Cluster

SESSION_MS = 6000  # the broker's default group.min.session.timeout.ms

# A group member in its own process, so it can be killed outright. It prints one JSON line
# per event: its assignment, each consumed record, each successful commit.
WORKER = r'''
import json, sys, time
kind, bootstrap, topic, group = sys.argv[1:5]
session = int(sys.argv[5])

def emit(**ev):
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()

if kind == "kafka-python":
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, session_timeout_ms=session, heartbeat_interval_ms=500,
                      max_poll_interval_ms=15000, metadata_max_age_ms=1000)
    last = None
    while True:
        # A long enough poll lets a rebalance finish inside it: kafka-python 3.0 can lose a
        # join that completes after poll() returned early (its heartbeat then stays off).
        batch = c.poll(timeout_ms=1000)
        parts = sorted(tp.partition for tp in c.assignment())
        if parts != last:
            emit(event="assign", parts=parts)
            last = parts
        for tp, records in batch.items():
            for r in records:
                emit(event="msg", p=r.partition, o=r.offset)
        if batch:
            c.commit()
            for tp, records in batch.items():
                emit(event="commit", p=tp.partition, o=records[-1].offset + 1)
else:
    from confluent_kafka import Consumer
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": session,
            "heartbeat.interval.ms": 500, "max.poll.interval.ms": 15000,
            "topic.metadata.refresh.interval.ms": 1000}
    if kind == "confluent-kafka-cooperative":
        # Incremental (KIP-429) rebalancing: the broker only relays, the assignor is client-side.
        conf["partition.assignment.strategy"] = "cooperative-sticky"
    c = Consumer(conf)
    c.subscribe([topic])
    last = None
    while True:
        msgs = c.consume(num_messages=100, timeout=0.2)
        parts = sorted(tp.partition for tp in c.assignment())
        if parts != last:
            emit(event="assign", parts=parts)
            last = parts
        good = [m for m in msgs if m.error() is None]
        for m in good:
            emit(event="msg", p=m.partition(), o=m.offset())
        if good:
            for tp in c.commit(asynchronous=False):
                if tp.error is None and tp.offset >= 0:
                    emit(event="commit", p=tp.partition, o=tp.offset)
'''


class Worker:
    def __init__(self, path, kind, bootstrap, topic, group):
        self.proc = subprocess.Popen([sys.executable, str(path), kind, bootstrap, topic, group, str(SESSION_MS)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lock = threading.Lock()
        self.assigned = None
        self.msgs = []  # (partition, offset)
        self.commits = {}  # partition -> next offset
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                if ev["event"] == "assign":
                    self.assigned = ev["parts"]
                elif ev["event"] == "msg":
                    self.msgs.append((ev["p"], ev["o"]))
                elif ev["event"] == "commit":
                    self.commits[ev["p"]] = max(self.commits.get(ev["p"], 0), ev["o"])

    def snapshot(self):
        with self.lock:
            return list(self.assigned or []), list(self.msgs), dict(self.commits)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(what, cond, timeout, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} {detail()}")


def create_topic(bootstrap, topic, partitions):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


def produce(bootstrap, topic, count, partitions, start=0):
    p = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(start, start + count):
        p.send(topic, value=str(i).encode(), partition=i % partitions)
    p.flush()
    p.close()


def tutorial_consumer(bootstrap, topic, group, expect):
    """The tutorial's consumer; reads until `expect` records or a quiet second after them."""
    consumer = KafkaConsumer(topic, bootstrap_servers=[bootstrap], auto_offset_reset='earliest',
                             enable_auto_commit=True, auto_commit_interval_ms=200, group_id=group,
                             consumer_timeout_ms=1500 if expect == 0 else 20000,
                             value_deserializer=lambda x: loads(x.decode('utf-8')))
    numbers = []
    for message in consumer:
        numbers.append(message.value['number'])
        if len(numbers) == expect:
            break
    consumer.close()  # commits the final position
    return numbers


def test_tutorial_group_consumer_commits_and_resumes(cluster, topic_name):
    topic, group = "numtest-" + topic_name, "my-group-" + topic_name
    producer = KafkaProducer(bootstrap_servers=[cluster.bootstrap], value_serializer=lambda x: dumps(x).encode('utf-8'))
    for e in range(1000):
        producer.send(topic, value={'number': e})
    producer.flush()

    assert tutorial_consumer(cluster.bootstrap, topic, group, 1000) == list(range(1000))
    assert tutorial_consumer(cluster.bootstrap, topic, group, 0) == [], "the group resumes after what it read"

    for e in range(1000, 1500):
        producer.send(topic, value={'number': e})
    producer.flush()
    producer.close()
    assert tutorial_consumer(cluster.bootstrap, topic, group, 500) == list(range(1000, 1500))


@pytest.mark.parametrize("kind", ["kafka-python", "confluent-kafka", "confluent-kafka-cooperative"])
def test_three_members_share_partitions_and_survive_a_killed_member(cluster, topic_name, tmp_path, kind):
    topic, group = "grp-" + topic_name, "g-" + topic_name
    create_topic(cluster.bootstrap, topic, 6)
    produce(cluster.bootstrap, topic, 300, 6)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [Worker(script, kind, cluster.bootstrap, topic, group) for _ in range(3)]
    try:
        def balanced():
            owned = [w.snapshot()[0] for w in workers]
            flat = sorted(p for parts in owned for p in parts)
            return flat == list(range(6)) and all(owned)

        wait_for("every partition owned by exactly one of three members", balanced, 60)
        wait_for("all 300 records consumed",
                 lambda: len({m for w in workers for m in w.snapshot()[1]}) == 300, 30)
        wait_for("commits of everything consumed",
                 lambda: sum(sum(w.snapshot()[2].values()) for w in workers) == 300, 30)

        victim, survivors = workers[0], workers[1:]
        victim_parts, _, victim_commits = victim.snapshot()
        victim.kill()
        killed_at = time.monotonic()
        produce(cluster.bootstrap, topic, 300, 6, start=300)

        def taken_over():
            owned = [w.snapshot()[0] for w in survivors]
            return sorted(p for parts in owned for p in parts) == list(range(6))

        wait_for("survivors own all six partitions", taken_over, SESSION_MS / 1000 + 15)
        took = time.monotonic() - killed_at
        assert took < SESSION_MS / 1000 + 15, took
        wait_for("the second 300 records consumed by the survivors",
                 lambda: len({m for w in survivors for m in w.snapshot()[1] if m[1] >= 50}) >= 300, 30)
        # Nothing the victim committed is consumed again.
        for w in survivors:
            _, msgs, _ = w.snapshot()
            for p, o in msgs:
                if p in victim_parts:
                    assert o >= victim_commits.get(p, 0), (p, o, victim_commits)
    finally:
        for w in workers:
            w.stop()


@pytest.mark.parametrize("kind", ["kafka-python", "confluent-kafka"])
def test_group_rebalances_when_its_topic_gains_partitions(cluster, topic_name, tmp_path, kind):
    topic, group = "grow-" + topic_name, "grow-" + topic_name
    create_topic(cluster.bootstrap, topic, 2)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [Worker(script, kind, cluster.bootstrap, topic, group) for _ in range(2)]
    try:
        def owned(n):
            parts = [w.snapshot()[0] for w in workers]
            return sorted(p for ps in parts for p in ps) == list(range(n)) and all(parts)

        wait_for("two partitions split between two members", lambda: owned(2), 60)
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
        try:
            admin.create_partitions({topic: NewPartitions(total_count=4)})
        finally:
            admin.close()
        # The clients notice the new partitions through metadata and rejoin; the broker
        # rebalances when asked.
        wait_for("four partitions split between two members", lambda: owned(4), 45,
                 lambda: [w.snapshot()[0] for w in workers])
        produce(cluster.bootstrap, topic, 40, 4)
        wait_for("records of the new partitions consumed",
                 lambda: {p for w in workers for p, _ in w.snapshot()[1]} == {0, 1, 2, 3}, 30)
    finally:
        for w in workers:
            w.stop()


def group_lines(out):
    """Data rows of a `kafka-consumer-groups --describe` table, keyed by partition."""
    lines = [l.split() for l in out.splitlines() if l.strip()]
    header = lines[0]
    assert header[:6] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"], header
    return {int(row[2]): row for row in lines[1:]}


def test_consumer_groups_tool_lists_describes_resets_and_deletes(cluster, tools, topic_name):
    topic, group = "cg-" + topic_name, "cg-" + topic_name
    create_topic(cluster.bootstrap, topic, 2)
    produce(cluster.bootstrap, topic, 10, 2)
    consumer = KafkaConsumer(topic, bootstrap_servers=cluster.bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False, client_id="cg-client")
    wait_for("an assignment", lambda: consumer.poll(timeout_ms=200) is not None and len(consumer.assignment()) == 2, 30)
    consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2), TopicPartition(topic, 1): OffsetAndMetadata(1)})

    r = tools("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--list")
    assert r.returncode == 0, r.stderr.decode()
    assert group in r.stdout.decode().splitlines()

    r = tools("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", "--group", group)
    assert r.returncode == 0, r.stderr.decode()
    rows = group_lines(r.stdout.decode())
    assert rows[0][3:6] == ["2", "5", "3"] and rows[1][3:6] == ["1", "5", "4"], rows
    assert rows[0][6].startswith("cg-client-") and rows[0][7] == "/127.0.0.1" and rows[0][8] == "cg-client"

    r = tools("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", "--group", group,
              "--members")
    assert r.returncode == 0, r.stderr.decode()
    out = [l for l in r.stdout.decode().splitlines() if l.strip()]
    assert out[0].split() == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]
    assert out[1].split()[-1] == "2"

    r = tools("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", "--group", group,
              "--state")
    assert r.returncode == 0, r.stderr.decode()
    out = [l for l in r.stdout.decode().splitlines() if l.strip()]
    assert out[0].split() == ["GROUP", "COORDINATOR", "(ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"]
    assert out[1].split() == [group, cluster.bootstrap, f"({cluster.broker_id})", "range", "Stable", "1"]

    # Resetting or deleting needs an empty group.
    r = tools("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--delete", "--group", group)
    assert r.returncode != 0 and "not empty" in (r.stdout + r.stderr).decode().lower()
    consumer.close(autocommit=False)

    r = tools("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--reset-offsets", "--group", group,
              "--topic", topic, "--to-earliest", "--dry-run")
    assert r.returncode == 0, r.stderr.decode()
    rows = [l.split() for l in r.stdout.decode().splitlines() if l.strip()]
    assert rows[0] == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]
    assert sorted(tuple(x[2:]) for x in rows[1:]) == [("0", "0"), ("1", "0")]
    r = tools("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", "--group", group)
    assert group_lines(r.stdout.decode())[0][3] == "2", "a dry run changes nothing"

    for args, want in ((["--to-latest"], ("5", "5")), (["--to-offset", "3"], ("3", "3")),
                       (["--shift-by", "-2"], ("1", "1")), (["--to-earliest"], ("0", "0"))):
        r = tools("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--reset-offsets", "--group",
                  group, "--topic", topic, *args, "--execute")
        assert r.returncode == 0, r.stderr.decode()
        r = tools("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", "--group", group)
        rows = group_lines(r.stdout.decode())
        assert (rows[0][3], rows[1][3]) == want, (args, rows)
        assert rows[0][5] == str(5 - int(want[0]))

    r = tools("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--delete", "--group", group)
    assert r.returncode == 0, r.stderr.decode()
    assert f"Deletion of requested consumer groups ('{group}') was successful." in r.stdout.decode()
    r = tools("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--list")
    assert group not in r.stdout.decode().splitlines()


def test_committed_offsets_and_lag_survive_a_broker_restart(tmp_path, tools):
    c = Cluster(tmp_path)
    try:
        c.start_keeper()
        c.start_broker()
        topic, group = "restart-" + uuid.uuid4().hex[:8], "restart-group"
        create_topic(c.bootstrap, topic, 1)
        produce(c.bootstrap, topic, 20, 1)
        assert len(tutorial_consumer_plain(c.bootstrap, topic, group, 12)) == 12
        r = tools("kafka-consumer-groups", "--bootstrap-server", c.bootstrap, "--describe", "--group", group)
        assert group_lines(r.stdout.decode())[0][3:6] == ["12", "20", "8"], r.stdout.decode()

        broker = c.procs.pop()
        broker.stop()
        c.start_broker()
        deadline = time.monotonic() + 30
        while True:
            r = tools("kafka-consumer-groups", "--bootstrap-server", c.bootstrap, "--describe", "--group", group)
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.returncode == 0, r.stderr.decode()
        assert group_lines(r.stdout.decode())[0][3:6] == ["12", "20", "8"], r.stdout.decode()
        rest = tutorial_consumer_plain(c.bootstrap, topic, group, 8)
        assert rest == [str(i) for i in range(12, 20)]
        r = tools("kafka-consumer-groups", "--bootstrap-server", c.bootstrap, "--describe", "--group", group)
        assert group_lines(r.stdout.decode())[0][3:6] == ["20", "20", "0"], r.stdout.decode()
    finally:
        c.stop()


def tutorial_consumer_plain(bootstrap, topic, group, count):
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=20000)
    got = []
    for m in consumer:
        got.append(m.value.decode())
        if len(got) == count:
            break
    consumer.commit()
    consumer.close(autocommit=False)
    return got


def test_console_consumer_with_group_commits_and_resumes(cluster, tools, topic_name):
    topic, group = "console-" + topic_name, "console-" + topic_name
    create_topic(cluster.bootstrap, topic, 1)
    produce(cluster.bootstrap, topic, 10, 1)
    r = tools("kafka-console-consumer", "--bootstrap-server", cluster.bootstrap, "--topic", topic, "--group", group,
              "--from-beginning", "--max-messages", "6")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().splitlines() == [str(i) for i in range(6)]

    r = tools("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", "--group", group)
    assert r.returncode == 0, r.stderr.decode()
    assert group_lines(r.stdout.decode())[0][3:6] == ["6", "10", "4"], r.stdout.decode()

    r = tools("kafka-console-consumer", "--bootstrap-server", cluster.bootstrap, "--topic", topic, "--group", group,
              "--timeout-ms", "3000")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().splitlines() == [str(i) for i in range(6, 10)]
    assert "Processed a total of 4 messages" in r.stderr.decode()
