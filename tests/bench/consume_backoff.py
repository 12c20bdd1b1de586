#!/usr/bin/env python3
"""Runs ../shared/bench/kafka_bench.py unchanged except for one librdkafka consumer setting,
`fetch.queue.backoff.ms` (default 1000 ms): how long librdkafka stops fetching a partition once
its local queue holds `queued.min.messages` (100,000). It shows how much of the probe's consume
figure is that client-side pause rather than the broker.

usage: consume_backoff.py SHARED_BENCH_DIR BACKOFF_MS <kafka_bench.py arguments>
"""
import importlib.util
import sys

shared, backoff = sys.argv[1], int(sys.argv[2])
spec = importlib.util.spec_from_file_location("kafka_bench", f"{shared}/kafka_bench.py")
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)
real_consumer = probe.Consumer


def consumer(conf):
    return real_consumer({**conf, "fetch.queue.backoff.ms": backoff})


probe.Consumer = consumer
sys.argv = [sys.argv[0]] + sys.argv[3:]
probe.main()
