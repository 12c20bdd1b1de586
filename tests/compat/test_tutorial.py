"""The quick-start tutorial, step for step: kafka-topics --zookeeper, --list, the console
producer and consumer, then the classic kafka-python JSON program."""
import time
from json import dumps, loads

from kafka import KafkaConsumer, KafkaProducer


def wait_for_leader(tools, cluster, topic, timeout=20, via="--zookeeper"):
    """The controller writes the partition state, then the broker's cache learns it from a
    watch: both views converge shortly after the create returns, so wait for each (bounded)."""
    deadline = time.monotonic() + timeout
    out = ""
    where = cluster.zookeeper if via == "--zookeeper" else cluster.bootstrap
    while time.monotonic() < deadline:
        r = tools("kafka-topics", "--describe", via, where, "--topic", topic)
        out = r.stdout.decode()
        if r.returncode == 0 and "\tLeader: none" not in out and "\tLeader: " in out:
            return out
        time.sleep(0.1)
    raise TimeoutError(f"no leader for {topic} after {timeout}s:\n{out}")


def test_quickstart_with_console_tools(cluster, tools, topic_name):
    topic = "test-" + topic_name
    r = tools("kafka-topics", "--create", "--zookeeper", cluster.zookeeper, "--replication-factor", "1",
              "--partitions", "1", "--topic", topic)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == f"Created topic {topic}.\n"

    r = tools("kafka-topics", "--create", "--zookeeper", cluster.zookeeper, "--replication-factor", "1",
              "--partitions", "1", "--topic", topic)
    assert r.returncode != 0
    # Log lines (e.g. a keeper reconnect under load) may precede it; the error is its own line.
    assert f"Error while executing topic command : Topic '{topic}' already exists." in r.stderr.decode().splitlines()

    r = tools("kafka-topics", "--list", "--zookeeper", cluster.zookeeper)
    assert r.returncode == 0, r.stderr.decode()
    assert topic in r.stdout.decode().splitlines()

    described = wait_for_leader(tools, cluster, topic)
    lines = described.splitlines()
    assert lines[0].startswith(f"Topic: {topic}\t")
    assert "\tPartitionCount: 1\tReplicationFactor: 1\tConfigs: " in lines[0]
    assert lines[1] == f"\tTopic: {topic}\tPartition: 0\tLeader: {cluster.broker_id}\tReplicas: {cluster.broker_id}\tIsr: {cluster.broker_id}"

    # The same topic seen through the broker.
    out = wait_for_leader(tools, cluster, topic, via="--bootstrap-server")
    assert f"\tTopic: {topic}\tPartition: 0\tLeader: {cluster.broker_id}" in out

    messages = ["This is a message", "This is another message", "and a third"]
    r = tools("kafka-console-producer", "--broker-list", cluster.bootstrap, "--topic", topic,
              input="\n".join(messages).encode() + b"\n")
    assert r.returncode == 0, r.stderr.decode()

    r = tools("kafka-console-consumer", "--bootstrap-server", cluster.bootstrap, "--topic", topic,
              "--from-beginning", "--max-messages", str(len(messages)))
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().splitlines() == messages
    assert "Processed a total of 3 messages" in r.stderr.decode()

    # Keys through the console tools.
    r = tools("kafka-console-producer", "--bootstrap-server", cluster.bootstrap, "--topic", topic,
              "--property", "parse.key=true", "--property", "key.separator=:", input=b"k1:v1\nk2:v2\n")
    assert r.returncode == 0, r.stderr.decode()
    r = tools("kafka-console-consumer", "--bootstrap-server", cluster.bootstrap, "--topic", topic,
              "--partition", "0", "--offset", "3", "--property", "print.key=true", "--timeout-ms", "3000")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().splitlines() == ["k1\tv1", "k2\tv2"]
    assert "Processed a total of 2 messages" in r.stderr.decode()

    r = tools("kafka-console-producer", "--bootstrap-server", cluster.bootstrap, "--topic", topic,
              "--property", "parse.key=true", input=b"no separator here\n")
    assert r.returncode != 0
    assert "line number 1" in r.stderr.decode()

    r = tools("kafka-topics", "--delete", "--zookeeper", cluster.zookeeper, "--topic", topic)
    assert r.returncode == 0, r.stderr.decode()
    assert f"Topic {topic} is marked for deletion." in r.stdout.decode()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = tools("kafka-topics", "--list", "--zookeeper", cluster.zookeeper)
        if topic not in r.stdout.decode():
            break
        time.sleep(0.2)
    assert topic not in r.stdout.decode()


def test_kafka_python_tutorial_program(cluster, topic_name):
    topic = "numtest-" + topic_name
    producer = KafkaProducer(bootstrap_servers=[cluster.bootstrap],
                             value_serializer=lambda x: dumps(x).encode('utf-8'))
    for e in range(100):
        data = {'number': e}
        producer.send(topic, value=data)
    producer.flush()
    producer.close()

    # Without a group: the consumer assigns itself every partition.
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=[cluster.bootstrap],
        auto_offset_reset='earliest',
        consumer_timeout_ms=10000,
        value_deserializer=lambda x: loads(x.decode('utf-8')))
    numbers = []
    for message in consumer:
        numbers.append(message.value['number'])
        if len(numbers) == 100:
            break
    consumer.close()
    assert numbers == list(range(100))

    # The tutorial's consumer exactly: a group member with auto-commit.
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=[cluster.bootstrap],
        auto_offset_reset='earliest',
        enable_auto_commit=True,
        group_id='my-group',
        value_deserializer=lambda x: loads(x.decode('utf-8')),
        consumer_timeout_ms=15000)
    numbers = []
    for message in consumer:
        message = message.value
        numbers.append(message['number'])
        if len(numbers) == 100:
            break
    consumer.commit()
    consumer.close()
    assert numbers == list(range(100))

    # The group resumes after its committed offsets: only new records arrive.
    producer = KafkaProducer(bootstrap_servers=[cluster.bootstrap],
                             value_serializer=lambda x: dumps(x).encode('utf-8'))
    producer.send(topic, value={'number': 100})
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=[cluster.bootstrap], auto_offset_reset='earliest',
                             enable_auto_commit=True, group_id='my-group', consumer_timeout_ms=15000,
                             value_deserializer=lambda x: loads(x.decode('utf-8')))
    first = next(iter(consumer))
    consumer.close()
    assert first.value == {'number': 100}
