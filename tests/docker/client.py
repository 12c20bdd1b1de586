#!/usr/bin/env python3
"""Host-side Kafka client for tests/docker/test_compose.sh (confluent-kafka, i.e. librdkafka).

  client.py produce  BOOTSTRAP TOPIC PREFIX COUNT [--acks all]
  client.py consume  BOOTSTRAP TOPIC PREFIX COUNT [--partitions N] [--timeout S]
  client.py leader   BOOTSTRAP TOPIC PARTITION            prints the leader's broker id
  client.py isr      BOOTSTRAP TOPIC PARTITION            prints the in-sync replica count
  client.py durable  BOOTSTRAP TOPIC ACKED_FILE STOP_FILE  acks=all until STOP_FILE exists;
                                                           every acknowledged value -> ACKED_FILE
  client.py verify   BOOTSTRAP TOPIC ACKED_FILE [--partitions N] [--timeout S]

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
    while not os.path.exists(args.stop_file):
        p.produce(args.topic, value=f"durable-{i}".encode(), on_delivery=done)
        i += 1
        p.poll(0.01)
    left = p.flush(120)
    acked.close()
    n = sum(1 for _ in open(args.acked_file))
    print(f"durable: sent {i}, acknowledged {n}, failed {len(failed)}, unresolved {left}")
    if n == 0:
        fail("no record was acknowledged")


def verify(args):
    acked = {line.strip() for line in open(args.acked_file) if line.strip()}
    values = read_all(args.bootstrap, args.topic, args.partitions,
                      lambda vs: acked.issubset(vs), args.timeout)
    missing = acked.difference(values)
    if missing:
        fail(f"verify {args.topic}: {len(missing)} of {len(acked)} acknowledged records lost, "
             f"e.g. {sorted(missing)[:5]}")
    print(f"verify: all {len(acked)} acknowledged records read back from {args.topic}")


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
