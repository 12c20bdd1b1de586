"""confluent-kafka (librdkafka) against a real Strom broker."""
import time

import pytest
from confluent_kafka import Consumer, KafkaError, OFFSET_BEGINNING, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def admin(cluster):
    return AdminClient({"bootstrap.servers": cluster.bootstrap})


def create_topic(cluster, name, partitions=1):
    client = admin(cluster)  # must outlive the future, or librdkafka cancels it
    futures = client.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=15)


def produce(cluster, name, records, **conf):
    errors = []
    p = Producer({"bootstrap.servers": cluster.bootstrap, "linger.ms": 5, **conf})
    for rec in records:
        p.produce(name, on_delivery=lambda err, msg: errors.append(err) if err else None, **rec)
        p.poll(0)
    assert p.flush(20) == 0
    assert errors == []


def consume(cluster, name, partitions, expected, start=OFFSET_BEGINNING, timeout=20):
    # No group membership: partitions are assigned explicitly, offsets never committed.
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "unused-" + name,
                  "enable.auto.commit": False, "enable.auto.offset.store": False})
    try:
        c.assign([TopicPartition(name, p, start) for p in range(partitions)])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"consume error: {m.error()}")
            out.append(m)
        return out
    finally:
        c.close()


def test_keyed_and_unkeyed_roundtrip(cluster, topic_name):
    create_topic(cluster, topic_name, partitions=3)
    records = [{"key": (f"k{i % 4}" if i % 2 == 0 else None), "value": f"v{i}"} for i in range(90)]
    produce(cluster, topic_name, records, acks="all")
    got = consume(cluster, topic_name, 3, 90)
    assert sorted(m.value() for m in got) == sorted(f"v{i}".encode() for i in range(90))
    by_key = {}
    for m in got:
        if m.key() is not None:
            by_key.setdefault(m.key(), set()).add(m.partition())
    assert all(len(p) == 1 for p in by_key.values())


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(cluster, topic_name, codec):
    values = [f"{codec}-{i}-" + "y" * (i % 64) for i in range(300)]
    produce(cluster, topic_name, [{"value": v} for v in values], **{"compression.type": codec})
    got = consume(cluster, topic_name, 1, len(values))
    assert [m.value().decode() for m in got] == values


def test_headers_and_timestamps(cluster, topic_name):
    base = 1_650_000_000_000
    produce(cluster, topic_name, [
        {"value": f"m{i}", "timestamp": base + i, "headers": [("a", f"{i}".encode()), ("nil", None)]}
        for i in range(5)
    ])
    got = consume(cluster, topic_name, 1, 5)
    assert [m.timestamp()[1] for m in got] == [base + i for i in range(5)]
    assert [m.headers() for m in got] == [[("a", f"{i}".encode()), ("nil", None)] for i in range(5)]


def test_offsets_for_times_and_watermarks(cluster, topic_name):
    base = 1_500_000_000_000
    produce(cluster, topic_name, [{"value": str(i), "timestamp": base + i * 10} for i in range(20)])
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "unused-" + topic_name})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10) == (0, 20)
        found = c.offsets_for_times([TopicPartition(topic_name, 0, base + 55)], timeout=10)
        assert found[0].offset == 6
    finally:
        c.close()
    got = consume(cluster, topic_name, 1, 5, start=15)
    assert [m.value() for m in got] == [str(i).encode() for i in range(15, 20)]


def test_admin_create_and_delete(cluster, topic_name):
    a = admin(cluster)
    a.create_topics([NewTopic(topic_name, num_partitions=4, replication_factor=1,
                              config={"cleanup.policy": "delete"})])[topic_name].result(timeout=15)
    again = a.create_topics([NewTopic(topic_name, num_partitions=4, replication_factor=1)])[topic_name]
    with pytest.raises(Exception) as err:
        again.result(timeout=15)
    assert err.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    md = a.list_topics(topic=topic_name, timeout=10)
    assert len(md.topics[topic_name].partitions) == 4

    a.delete_topics([topic_name])[topic_name].result(timeout=15)
    deadline = time.monotonic() + 15
    while topic_name in a.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.1)
    assert topic_name not in a.list_topics(timeout=10).topics
