"""The kafka-* tools' flags, output and errors, in both --bootstrap-server and --zookeeper mode."""
import re
import time


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout.decode()}\nstderr: {r.stderr.decode()}"
    return r.stdout.decode()


def fails_with(r, message):
    assert r.returncode != 0, r.stdout.decode()
    assert f"Error while executing topic command : {message}" in r.stderr.decode().splitlines(), r.stderr.decode()


def describe_until(tools, mode, topic, predicate, timeout=20):
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        r = tools("kafka-topics", "--describe", *mode, "--topic", topic)
        out = r.stdout.decode()
        if r.returncode == 0 and predicate(out):
            return out
        time.sleep(0.1)
    raise AssertionError(f"describe never satisfied the condition:\n{out}\n{r.stderr.decode()}")


def test_topics_via_bootstrap_server(cluster, tools, topic_name):
    bs = ["--bootstrap-server", cluster.bootstrap]
    out = ok(tools("kafka-topics", "--create", *bs, "--topic", topic_name, "--partitions", "2",
                   "--replication-factor", "1", "--config", "retention.ms=3600000", "--config", "cleanup.policy=delete"))
    assert out == f"Created topic {topic_name}.\n"
    fails_with(tools("kafka-topics", "--create", *bs, "--topic", topic_name, "--partitions", "2"),
               f"Topic '{topic_name}' already exists.")
    assert ok(tools("kafka-topics", "--create", *bs, "--topic", topic_name, "--if-not-exists")) == ""
    assert topic_name in ok(tools("kafka-topics", "--list", *bs)).splitlines()

    out = describe_until(tools, bs, topic_name, lambda o: o.count("\tLeader: 1") == 2)
    head, *parts = out.splitlines()
    assert re.fullmatch(rf"Topic: {topic_name}\tTopicId: [A-Za-z0-9_-]{{22}}\tPartitionCount: 2\t"
                        rf"ReplicationFactor: 1\tConfigs: .*", head), head
    assert "retention.ms=3600000" in head and "cleanup.policy=delete" in head
    assert parts == [f"\tTopic: {topic_name}\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1" for p in range(2)]

    assert ok(tools("kafka-topics", "--describe", *bs, "--topic", topic_name, "--under-replicated-partitions")) == ""
    assert ok(tools("kafka-topics", "--describe", *bs, "--topic", topic_name, "--unavailable-partitions")) == ""
    assert ok(tools("kafka-topics", "--describe", *bs, "--topic", topic_name, "--topics-with-overrides")) == head + "\n"

    ok(tools("kafka-topics", "--alter", *bs, "--topic", topic_name, "--partitions", "4"))
    describe_until(tools, bs, topic_name, lambda o: "PartitionCount: 4" in o and o.count("\tLeader: 1") == 4)
    r = tools("kafka-topics", "--alter", *bs, "--topic", topic_name, "--partitions", "3")
    assert r.returncode != 0 and "Error while executing topic command" in r.stderr.decode()

    ok(tools("kafka-topics", "--delete", *bs, "--topic", topic_name))
    deadline = time.monotonic() + 20
    while topic_name in ok(tools("kafka-topics", "--list", *bs)).splitlines():
        assert time.monotonic() < deadline, "topic still listed after delete"
        time.sleep(0.1)
    fails_with(tools("kafka-topics", "--delete", *bs, "--topic", topic_name),
               f"Topic '{topic_name}' does not exist as expected")
    assert ok(tools("kafka-topics", "--delete", *bs, "--topic", topic_name, "--if-exists")) == ""


def test_topics_errors(cluster, tools):
    bs = ["--bootstrap-server", cluster.bootstrap]
    r = tools("kafka-topics", "--create", *bs, "--topic", "bad name!", "--partitions", "1")
    assert r.returncode != 0 and "illegal" in r.stderr.decode()
    fails_with(tools("kafka-topics", "--create", "--zookeeper", cluster.zookeeper, "--topic", "rf-too-big",
                     "--partitions", "1", "--replication-factor", "3"),
               "Replication factor: 3 larger than available brokers: 1.")
    fails_with(tools("kafka-topics", "--describe", *bs, "--topic", "does-not-exist"),
               "Topic 'does-not-exist' does not exist as expected")
    r = tools("kafka-topics", "--list")
    assert r.returncode != 0 and "--bootstrap-server or --zookeeper" in r.stderr.decode()
    r = tools("kafka-topics", "--list", "--bootstrap-server", "127.0.0.1:1")
    assert r.returncode != 0 and r.stderr.decode().startswith("Error while executing topic command : ")


def test_topics_via_zookeeper_alter_and_configs(cluster, tools, topic_name):
    zk = ["--zookeeper", cluster.zookeeper]
    ok(tools("kafka-topics", "--create", *zk, "--topic", topic_name, "--partitions", "1",
             "--replication-factor", "1", "--config", "retention.ms=1000"))
    out = describe_until(tools, zk, topic_name, lambda o: "\tLeader: 1" in o)
    assert "Configs: retention.ms=1000" in out
    out = ok(tools("kafka-topics", "--alter", *zk, "--topic", topic_name, "--partitions", "3"))
    assert out.endswith("Adding partitions succeeded!\n")
    describe_until(tools, zk, topic_name, lambda o: o.count("\tLeader: 1") == 3)
    # The broker sees the new partitions too.
    describe_until(tools, ["--bootstrap-server", cluster.bootstrap], topic_name,
                   lambda o: "PartitionCount: 3" in o and o.count("\tLeader: 1") == 3)
    r = tools("kafka-topics", "--alter", *zk, "--topic", topic_name, "--partitions", "2")
    assert r.returncode != 0 and "can only be increased" in r.stderr.decode()


def test_console_consumer_group_with_partition_is_a_clear_error(cluster, tools, topic_name):
    # --group itself works (tests/compat/test_groups.py); mixing it with --partition does not.
    r = tools("kafka-console-consumer", "--bootstrap-server", cluster.bootstrap, "--topic", topic_name,
              "--group", "g1", "--partition", "0", "--timeout-ms", "1000")
    assert r.returncode != 0
    assert "group and partition" in r.stderr.decode()


def test_perf_tools_print_kafka_lines(cluster, tools, topic_name):
    out = ok(tools("kafka-producer-perf-test", "--topic", topic_name, "--num-records", "20000",
                   "--record-size", "100", "--throughput", "-1", "--producer-props",
                   f"bootstrap.servers={cluster.bootstrap}", "acks=1", "linger.ms=5", "batch.size=65536"))
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"20000 records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency, "
                        r"[\d.]+ ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.", last), last
    out = ok(tools("kafka-consumer-perf-test", "--bootstrap-server", cluster.bootstrap, "--topic", topic_name,
                   "--messages", "20000", "--timeout", "10000"))
    header, line = out.strip().splitlines()
    assert header == ("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
                      "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
    fields = line.split(", ")
    assert len(fields) == 10 and fields[4] == "20000"
    assert abs(float(fields[2]) - 20000 * 100 / 1024 / 1024) < 0.01


def test_console_producer_acks_and_codecs(cluster, tools, topic_name):
    sent = []
    for acks, codec in [("0", "none"), ("1", "gzip"), ("all", "snappy"), ("-1", "lz4"), ("1", "zstd")]:
        lines = [f"{codec}-{acks}-{i}" for i in range(20)]
        sent += lines
        ok(tools("kafka-console-producer", "--bootstrap-server", cluster.bootstrap, "--topic", topic_name,
                 "--request-required-acks", acks, "--compression-codec", codec,
                 input=("\n".join(lines) + "\n").encode()))
    r = tools("kafka-console-consumer", "--bootstrap-server", cluster.bootstrap, "--topic", topic_name,
              "--from-beginning", "--max-messages", str(len(sent)), "--timeout-ms", "15000",
              "--property", "print.offset=true", "--property", "print.partition=true")
    out = ok(r).splitlines()
    assert [line.split("\t")[2] for line in out] == sent
    assert [line.split("\t")[1] for line in out] == [f"Offset:{i}" for i in range(len(sent))]
    assert f"Processed a total of {len(sent)} messages" in r.stderr.decode()
    r = tools("kafka-console-producer", "--bootstrap-server", cluster.bootstrap, "--topic", topic_name,
              "--compression-codec", "brotli", input=b"x\n")
    assert r.returncode != 0 and "compression.type" in r.stderr.decode()


def test_console_consumer_reports_on_sigterm(cluster, tools, topic_name):
    import signal
    import subprocess

    ok(tools("kafka-console-producer", "--bootstrap-server", cluster.bootstrap, "--topic", topic_name,
             input=b"one\ntwo\n"))
    from conftest import binary
    p = subprocess.Popen([binary("kafka-console-consumer"), "--bootstrap-server", cluster.bootstrap,
                          "--topic", topic_name, "--from-beginning"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import threading
    watchdog = threading.Timer(30, p.kill)  # bounds the blocking reads below
    watchdog.start()
    try:
        assert p.stdout.readline() == b"one\n"
        assert p.stdout.readline() == b"two\n"
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=10)
    finally:
        watchdog.cancel()
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0
    assert "Processed a total of 2 messages" in err.decode()
