"""kcat (Debian's, librdkafka 2.0.x) against a real Strom broker."""
import shutil
import subprocess

import pytest

KCAT = shutil.which("kcat") or shutil.which("kafkacat")


def kcat(*args, input=None, timeout=30):
    if KCAT is None:
        pytest.fail("kcat is not installed (apt-get install kcat)")
    return subprocess.run([KCAT, *args], input=input, capture_output=True, timeout=timeout)


def test_metadata_listing(cluster):
    r = kcat("-b", cluster.bootstrap, "-L")
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert "1 brokers:" in out
    assert f"broker {cluster.broker_id} at 127.0.0.1:{cluster.broker_port}" in out


def test_produce_then_consume_to_end(cluster, topic_name):
    lines = b"".join(f"line {i}\n".encode() for i in range(50))
    r = kcat("-b", cluster.bootstrap, "-P", "-t", topic_name, input=lines)
    assert r.returncode == 0, r.stderr.decode()
    r = kcat("-b", cluster.bootstrap, "-C", "-t", topic_name, "-o", "beginning", "-e", "-q")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == lines


def test_keyed_produce_and_formatted_consume(cluster, topic_name):
    r = kcat("-b", cluster.bootstrap, "-P", "-t", topic_name, "-K", ":", "-z", "snappy",
             input=b"a:1\nb:2\nc:3\n")
    assert r.returncode == 0, r.stderr.decode()
    r = kcat("-b", cluster.bootstrap, "-C", "-t", topic_name, "-o", "beginning", "-e", "-q",
             "-f", "%k=%s@%o\n")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().splitlines() == ["a=1@0", "b=2@1", "c=3@2"]
