"""Issue 5, test 5: committed consumer-group offsets survive the loss of the group
coordinator's broker, because `__consumer_offsets` is replicated like any topic."""
import struct
import time
import uuid

from .harness import FAILOVER_TIMEOUT, produce

PARTITIONS = 3
PER_PARTITION = 100
OFFSETS_PARTITIONS = 6  # offsets.topic.num.partitions in the harness's server.properties


def java_hash_partition(group, partitions):
    """Kafka's coordinator partition: Utils.abs(group.hashCode()) % partitions."""
    raw = group.encode("utf-16-be")  # String.hashCode runs over UTF-16 code units
    h = 0
    for unit in struct.unpack(f">{len(raw) // 2}H", raw):
        h = (31 * h + unit) & 0xFFFFFFFF
    if h >= 1 << 31:
        h -= 1 << 32
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def consumer(bootstrap, group):
    from confluent_kafka import Consumer

    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "session.timeout.ms": 6000})


def test_committed_offsets_survive_coordinator_loss(cluster3, topic_name):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    cluster3.create_topic(topic_name, PARTITIONS, 3)
    for p in range(PARTITIONS):
        produce(cluster3.bootstrap(), topic_name, [f"{p}:{i}".encode() for i in range(PER_PARTITION)], partition=p)
    group = f"g-{uuid.uuid4().hex[:10]}"

    first = consumer(cluster3.bootstrap(), group)
    consumed = {p: [] for p in range(PARTITIONS)}
    try:
        first.subscribe([topic_name])
        deadline = time.monotonic() + 60
        while sum(map(len, consumed.values())) < PARTITIONS * PER_PARTITION // 2:
            assert time.monotonic() < deadline, f"first consumer read only {consumed} in 60s"
            m = first.poll(0.5)
            if m is None or m.error():
                continue
            consumed[m.partition()].append(m.offset())
        first.commit(asynchronous=False)
        committed = {tp.partition: tp.offset for tp in
                     first.committed([TopicPartition(topic_name, p) for p in range(PARTITIONS)], timeout=10)}
    finally:
        first.close()
    for p in range(PARTITIONS):
        expected = consumed[p][-1] + 1 if consumed[p] else -1001  # OFFSET_INVALID: nothing committed
        assert committed[p] == expected, f"partition {p}: committed {committed[p]}, consumed up to {consumed[p][-1:]}"

    admin = AdminClient({"bootstrap.servers": cluster3.bootstrap()})
    desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    coordinator = desc.coordinator.id
    offsets_partition = java_hash_partition(group, OFFSETS_PARTITIONS)
    st = cluster3.zk_state("__consumer_offsets", offsets_partition)
    assert st["leader"] == coordinator, f"coordinator {coordinator} does not lead __consumer_offsets-{offsets_partition}: {st}"
    assert len(st["isr"]) >= 2, f"the committed offsets live on the coordinator alone: {st}"

    killed_at = time.monotonic()
    cluster3.kill9(coordinator)
    cluster3.wait_leader_change("__consumer_offsets", offsets_partition, coordinator)

    second = consumer(cluster3.bootstrap(), group)
    resumed = {p: [] for p in range(PARTITIONS)}
    first_record_at = None
    try:
        second.subscribe([topic_name])
        remaining = sum(PER_PARTITION - max(committed[p], 0) for p in range(PARTITIONS))
        deadline = time.monotonic() + FAILOVER_TIMEOUT + 60
        while sum(map(len, resumed.values())) < remaining:
            assert time.monotonic() < deadline, f"resumed consumer read {({p: len(v) for p, v in resumed.items()})}, expected {remaining}"
            m = second.poll(0.5)
            if m is None or m.error():
                continue
            first_record_at = first_record_at or time.monotonic()
            resumed[m.partition()].append(m.offset())
        # Nothing else arrives: everything beyond the committed offsets has been read once.
        extra = [m for m in (second.poll(1.0) for _ in range(3)) if m is not None and not m.error()]
        assert not extra, f"records beyond the log's end: {[(m.partition(), m.offset()) for m in extra]}"
    finally:
        second.close()
    print(f"coordinator broker {coordinator} killed; the group resumed {first_record_at - killed_at:.2f}s later")
    for p in range(PARTITIONS):
        start = max(committed[p], 0)
        assert resumed[p] == list(range(start, PER_PARTITION)), (
            f"partition {p}: committed {committed[p]} but resumed at {resumed[p][:3]}...")
