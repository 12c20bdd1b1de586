"""Fixtures for the real-client suites: a real Strom keeper and broker, started from the built
binaries on free loopback ports in a temp dir, waited for with a bound, killed at the end.

Binaries come from $STROM_BIN (default: <repo>/target/debug)."""
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("STROM_BIN", REPO / "target" / "debug"))
START_TIMEOUT = float(os.environ.get("STROM_START_TIMEOUT", "30"))


def free_port():
    """A port the OS just handed out (bound to 0, read, closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name):
    path = BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: build it first (cargo build -p strom-cli) or set STROM_BIN")
    return str(path)


def wait_until(what, predicate, timeout=START_TIMEOUT, interval=0.05, proc=None, log=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{tail}")
        try:
            if predicate():
                return
        except Exception as e:  # keep polling until the deadline; report the last failure
            last = e
        time.sleep(interval)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready within {timeout}s (last error: {last!r})\n{tail}")


def port_open(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def broker_serves_metadata(port):
    """True once the broker answers Metadata listing itself (kafka-python's view)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=3000)
    try:
        return len(admin.describe_cluster()["brokers"]) >= 1
    finally:
        admin.close()


class Process:
    def __init__(self, name, args, log):
        self.name = name
        self.log = log
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self._log_file.close()


class Cluster:
    """One keeper and one broker; `bootstrap` and `zookeeper` are their connect strings."""

    def __init__(self, workdir, broker_id=1):
        self.workdir = Path(workdir)
        self.broker_id = broker_id
        self.zk_port = free_port()
        self.broker_port = free_port()
        self.zookeeper = f"127.0.0.1:{self.zk_port}"
        self.bootstrap = f"127.0.0.1:{self.broker_port}"
        self.procs = []

    def start_keeper(self):
        data = self.workdir / "keeper-data"
        data.mkdir(parents=True, exist_ok=True)
        props = self.workdir / "zookeeper.properties"
        props.write_text(f"dataDir={data}\nclientPort={self.zk_port}\nclientPortAddress=127.0.0.1\n"
                         "tickTime=2000\nmaxClientCnxns=0\n")
        p = Process("keeper", [binary("zookeeper-server-start"), str(props)], self.workdir / "keeper.log")
        self.procs.append(p)
        wait_until("keeper", lambda: port_open(self.zk_port), proc=p.proc, log=p.log)

    def start_broker(self, extra=""):
        logs = self.workdir / "broker-logs"
        props = self.workdir / "server.properties"
        props.write_text(
            f"broker.id={self.broker_id}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.broker_port}\n"
            f"log.dirs={logs}\n"
            f"zookeeper.connect={self.zookeeper}\n"
            "num.partitions=1\ndefault.replication.factor=1\n"
            "offsets.topic.replication.factor=1\n"
            "auto.create.topics.enable=true\n"
            "zookeeper.session.timeout.ms=6000\n"
            + extra)
        p = Process("broker", [binary("kafka-server-start"), str(props)], self.workdir / "broker.log")
        self.procs.append(p)
        wait_until("broker port", lambda: port_open(self.broker_port), proc=p.proc, log=p.log)
        wait_until("broker metadata", lambda: broker_serves_metadata(self.broker_port), proc=p.proc, log=p.log)

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()

    def logs(self):
        return "\n".join(f"--- {p.name} log tail ---\n{p.log.read_text(errors='replace')[-2000:]}"
                         for p in self.procs if p.log.exists())


def _start_cluster(tmp_path_factory, name):
    workdir = tmp_path_factory.mktemp(name)
    cluster = Cluster(workdir)
    try:
        cluster.start_keeper()
        cluster.start_broker()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A keeper + broker shared by the whole session; tests use their own topic names."""
    c = _start_cluster(tmp_path_factory, "strom")
    yield c
    c.stop()


@pytest.fixture
def topic_name():
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def tools():
    """Runs a kafka-* tool: tools(name, *args, input=None, timeout=60) -> CompletedProcess."""

    def run(name, *args, input=None, timeout=60):
        return subprocess.run([binary(name), *args], input=input, capture_output=True, timeout=timeout)

    return run


def pytest_report_header(config):
    return f"strom binaries: {BIN}; kcat: {shutil.which('kcat')}"
