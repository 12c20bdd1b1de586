#!/usr/bin/env python3
"""Host-side Kafka client for tests/docker/test_compose.sh (confluent-kafka, i.e. librdkafka).

  client.py produce  BOOTSTRAP TOPIC PREFIX COUNT [--acks all]
  client.py consume  BOOTSTRAP TOPIC PREFIX COUNT [--partitions N] [--timeout S]
  client.py leader   BOOTSTRAP TOPIC PARTITION            prints the leader's broker id
  client.py isr      BOOTSTRAP TOPIC PARTITION            prints the in-sync replica count
  client.py durable  BOOTSTRAP TOPIC ACKED_FILE STOP_FILE [--prefix P] [--min N]
                     numbered records P-0, P-1, ... with acks=all (idempotent) until STOP_FILE
                     exists and at least N were sent; every acknowledged value -> ACKED_FILE
  client.py verify   BOOTSTRAP TOPIC ACKED_FILE [--partitions N] [--timeout S]
                     every acknowledged value is in the topic exactly once, and each prefix's
                     numbers increase along every partition

Every wait is bounded; a failure exits non-zero with a message naming what was missing.
"""

import argparse
import os
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient


def fail(msg):
    print(f"client.py: {msg}", file=sys.stderr)
    sys.exit(1)


def produce(args):
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": args.acks,
                  "enable.idempotence": False, "message.timeout.ms": 60000,
                  "linger.ms": 5})
    errors = []

    def done(err, _msg):
        if err is not None:
            errors.append(str(err))

    for i in range(args.count):
        p.produce(args.topic, key=str(i).encode(), value=f"{args.prefix}-{i}".encode(), on_delivery=done)
        p.poll(0)
    left = p.flush(90)
    if left or errors:
        fail(f"produce to {args.topic}: {left} undelivered, errors: {errors[:5]}")
    print(f"produced {args.count} records to {args.topic}")


def read_all(bootstrap, topic, partitions, want, timeout):
    """Reads every partition from offset 0 until `want(values)` or the deadline."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"unused-{topic}",
                  "enable.auto.commit": False, "enable.auto.offset.store": False,
                  "auto.offset.reset": "earliest"})
    values = []
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while not want(values) and time.monotonic() < deadline:
            for m in c.consume(500, timeout=1.0):
                if m.error() is None:
                    values.append(m.value().decode())
    finally:
        c.close()
    return values


def consume(args):
    expected = {f"{args.prefix}-{i}" for i in range(args.count)}
    values = read_all(args.bootstrap, args.topic, args.partitions,
                      lambda vs: expected.issubset(vs), args.timeout)
    missing = expected.difference(values)
    if missing:
        fail(f"consume {args.topic}: {len(missing)} of {args.count} records with prefix "
             f"{args.prefix} missing after {args.timeout}s (read {len(values)})")
    print(f"consumed all {args.count} records with prefix {args.prefix} from {args.topic}")


def partition_meta(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=args.topic, timeout=10)
        t = md.topics.get(args.topic)
        if t is not None and t.error is None and args.partition in t.partitions:
            p = t.partitions[args.partition]
            if p.leader >= 0:
                return p
        time.sleep(0.5)
    fail(f"no leader for {args.topic}-{args.partition} within 30s")


def leader(args):
    print(partition_meta(args).leader)


def isr(args):
    print(len(partition_meta(args).isrs))


def durable(args):
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": "all",
                  "enable.idempotence": True, "message.timeout.ms": 120000,
                  "linger.ms": 1})
    acked = open(args.acked_file, "w", buffering=1)
    failed = []

    def done(err, msg):
        if err is None:
            acked.write(msg.value().decode() + "\n")
        else:
            failed.append(str(err))

    i = 0
    while i < args.min or not os.path.exists(args.stop_file):
        try:
            p.produce(args.topic, value=f"{args.prefix}-{i}".encode(), on_delivery=done)
        except BufferError:
            p.poll(0.05)
            continue
        i += 1
        # About 1,000 records/s, so the run spans the failure the test injects.
        p.poll(0.001)
    left = p.flush(120)
    acked.close()
    n = sum(1 for _ in open(args.acked_file))
    print(f"durable: sent {i}, acknowledged {n}, failed {len(failed)}, unresolved {left}")
    if n == 0:
        fail("no record was acknowledged")


def read_partitions(bootstrap, topic, partitions, want, timeout):
    """Every partition from offset 0, as {partition: [values in offset order]}, until
    `want(set of values)` holds or the deadline passes."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"unused-{topic}",
                  "enable.auto.commit": False, "enable.auto.offset.store": False,
                  "auto.offset.reset": "earliest"})
    out = {p: [] for p in range(partitions)}
    seen = set()
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while not want(seen) and time.monotonic() < deadline:
            for m in c.consume(500, timeout=1.0):
                if m.error() is None:
                    v = m.value().decode()
                    out[m.partition()].append(v)
                    seen.add(v)
        # Drain what is left, so a duplicate after the last wanted record is seen too.
        for m in c.consume(10000, timeout=2.0):
            if m.error() is None:
                out[m.partition()].append(m.value().decode())
    finally:
        c.close()
    return out


def verify(args):
    acked = {line.strip() for line in open(args.acked_file) if line.strip()}
    per_partition = read_partitions(args.bootstrap, args.topic, args.partitions,
                                    lambda vs: acked.issubset(vs), args.timeout)
    counts = {}
    for p, values in per_partition.items():
        last = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
            prefix, _, num = v.rpartition("-")
            if num.isdigit():
                if int(num) <= last.get(prefix, -1):
                    fail(f"verify {args.topic}: partition {p} has {v} after {prefix}-{last[prefix]}")
                last[prefix] = int(num)
    missing = sorted(v for v in acked if v not in counts)
    if missing:
        fail(f"verify {args.topic}: {len(missing)} of {len(acked)} acknowledged records lost, "
             f"e.g. {missing[:5]}")
    twice = sorted(v for v in acked if counts[v] > 1)
    if twice:
        fail(f"verify {args.topic}: {len(twice)} acknowledged records stored more than once, e.g. {twice[:5]}")
    print(f"verify: all {len(acked)} acknowledged records read back from {args.topic}, "
          f"each once and in order")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("produce", "consume"):
        s = sub.add_parser(name)
        s.add_argument("bootstrap")
        s.add_argument("topic")
        s.add_argument("prefix")
        s.add_argument("count", type=int)
        s.add_argument("--acks", default="1")
        s.add_argument("--partitions", type=int, default=3)
        s.add_argument("--timeout", type=float, default=60)
    for name in ("leader", "isr"):
        s = sub.add_parser(name)
        s.add_argument("bootstrap")
        s.add_argument("topic")
        s.add_argument("partition", type=int)
    s = sub.add_parser("durable")
    s.add_argument("bootstrap")
    s.add_argument("topic")
    s.add_argument("acked_file")
    s.add_argument("stop_file")
    s.add_argument("--prefix", default="durable")
    s.add_argument("--min", type=int, default=0)
    s = sub.add_parser("verify")
    s.add_argument("bootstrap")
    s.add_argument("topic")
    s.add_argument("acked_file")
    s.add_argument("--partitions", type=int, default=1)
    s.add_argument("--timeout", type=float, default=90)
    args = ap.parse_args()
    {"produce": produce, "consume": consume, "leader": leader, "isr": isr,
     "durable": durable, "verify": verify}[args.cmd](args)


if __name__ == "__main__":
    main()
