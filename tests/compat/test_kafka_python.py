"""kafka-python (3.x) against a real Strom broker: produce/consume, every codec, headers,
timestamps, seeks by offset and by timestamp, admin create/delete."""
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError


def create_topic(cluster, name, partitions=1):
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()
    wait_for_partitions(cluster, name, partitions)


def wait_for_partitions(cluster, name, partitions, timeout=15):
    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(name)
            if parts is not None and len(parts) == partitions:
                return
            consumer._client.cluster.request_update()
            consumer._client.poll(timeout_ms=100)
        raise TimeoutError(f"topic {name} did not show {partitions} partitions")
    finally:
        consumer.close()


def read_all(cluster, name, partitions, expected, timeout=20, **kwargs):
    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap, group_id=None,
                             enable_auto_commit=False, **kwargs)
    try:
        tps = [TopicPartition(name, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                out.extend(recs)
        return out
    finally:
        consumer.close()


def test_keyed_and_unkeyed_roundtrip(cluster, topic_name):
    create_topic(cluster, topic_name, partitions=3)
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all")
    futures = []
    for i in range(60):
        key = f"k{i % 5}".encode() if i % 2 == 0 else None
        futures.append(producer.send(topic_name, key=key, value=f"v{i}".encode()))
    producer.flush()
    metas = [f.get(timeout=10) for f in futures]
    producer.close()

    got = read_all(cluster, topic_name, 3, 60)
    assert sorted(r.value for r in got) == sorted(f"v{i}".encode() for i in range(60))
    # Records of one key stay on one partition, in send order.
    by_key = {}
    for r in got:
        if r.key is not None:
            by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    for p in range(3):
        offsets = [r.offset for r in got if r.partition == p]
        assert offsets == sorted(offsets)
    assert {m.topic for m in metas} == {topic_name}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(cluster, topic_name, codec):
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, compression_type=codec, linger_ms=20)
    values = [(f"{codec}-{i}-" + "x" * (i % 50)).encode() for i in range(200)]
    for v in values:
        producer.send(topic_name, value=v)
    producer.flush()
    producer.close()
    got = read_all(cluster, topic_name, 1, len(values))
    assert [r.value for r in got] == values


def test_headers_and_timestamps(cluster, topic_name):
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap)
    base = 1_700_000_000_000
    for i in range(5):
        producer.send(topic_name, value=f"h{i}".encode(), timestamp_ms=base + i * 1000,
                      headers=[("trace", f"id-{i}".encode()), ("empty", b"")])
    producer.flush()
    producer.close()
    got = read_all(cluster, topic_name, 1, 5)
    assert [r.timestamp for r in got] == [base + i * 1000 for i in range(5)]
    assert [r.headers for r in got] == [[("trace", f"id-{i}".encode()), ("empty", b"")] for i in range(5)]


def test_seek_by_offset_and_timestamp(cluster, topic_name):
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap)
    base = 1_600_000_000_000
    for i in range(10):
        producer.send(topic_name, value=str(i).encode(), timestamp_ms=base + i * 1000)
    producer.flush()
    producer.close()
    wait_for_partitions(cluster, topic_name, 1)

    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic_name, 0)
        consumer.assign([tp])
        assert consumer.beginning_offsets([tp])[tp] == 0
        assert consumer.end_offsets([tp])[tp] == 10
        found = consumer.offsets_for_times({tp: base + 6500})[tp]
        assert found.offset == 7 and found.timestamp == base + 7000
        assert consumer.offsets_for_times({tp: base + 60_000})[tp] is None

        consumer.seek(tp, 4)
        got = []
        deadline = time.monotonic() + 15
        while len(got) < 6 and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                got.extend(recs)
        assert [r.value for r in got] == [str(i).encode() for i in range(4, 10)]
    finally:
        consumer.close()


def test_admin_create_and_delete(cluster, topic_name):
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(topic_name, num_partitions=2, replication_factor=1,
                                      topic_configs={"retention.ms": "3600000"})])
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(topic_name, num_partitions=2, replication_factor=1)])
        deadline = time.monotonic() + 10
        while topic_name not in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert topic_name in admin.list_topics()
        described = admin.describe_topics([topic_name])[0]
        assert len(described["partitions"]) == 2

        admin.delete_topics([topic_name])
        deadline = time.monotonic() + 15
        while topic_name in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert topic_name not in admin.list_topics()
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topics(["never-created-" + topic_name])
    finally:
        admin.close()
