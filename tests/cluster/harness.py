"""The multi-broker harness for the replication suites: three keepers in a Raft ensemble and
three brokers (`broker.id` 1..3), all started from the built launchers on free loopback ports.

Brokers can be killed (SIGKILL, as `kill -9`), stopped (SIGTERM) and restarted with the same
config and data directory. Leader, replicas and ISR are read both from the brokers (a raw
Metadata v7 request sent to each broker in turn) and from the keeper (`zookeeper-shell get` of the
partition `state` znode, which is what the controller writes). Every wait is bounded; a failed
test prints the log tail of every process.

Helpers shared with the single-broker suites (free ports, binaries, bounded waits, the process
wrapper) are imported from `tests/conftest.py`. The fixtures are in this directory's
`conftest.py`."""
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

# tests/conftest.py, already loaded by pytest as `conftest` (this directory is a package, so its
# own conftest is `cluster.conftest` and does not shadow it).
from conftest import Process, binary, free_port, port_open, wait_until

# The session timeout the brief and issue 5 measure failover against; the keepers' tickTime is
# small enough that the negotiated range ([2, 20] x tickTime) does not round it up.
SESSION_TIMEOUT_MS = 3000
KEEPER_TICK_MS = 500
REPLICA_LAG_MS = 3000
# Bound for "the cluster noticed a death and re-elected": session expiry plus controller work,
# with room for debug builds on a loaded 2-core machine.
FAILOVER_TIMEOUT = float(os.environ.get("STROM_FAILOVER_TIMEOUT", "30"))
# Bound for "a restarted follower caught up and is back in the ISR".
REJOIN_TIMEOUT = float(os.environ.get("STROM_REJOIN_TIMEOUT", "60"))
BROKER_IDS = (1, 2, 3)


class KeeperEnsemble:
    """Three `zookeeper-server-start` processes with `server.N` lines and `myid` files."""

    def __init__(self, workdir, n=3):
        self.workdir = Path(workdir)
        self.client_ports = [free_port() for _ in range(n)]
        peers = [(free_port(), free_port()) for _ in range(n)]
        self.procs = {}
        for i in range(1, n + 1):
            data = self.workdir / f"keeper-{i}"
            data.mkdir(parents=True, exist_ok=True)
            (data / "myid").write_text(f"{i}\n")
            servers = "".join(f"server.{j}=127.0.0.1:{p}:{e}\n" for j, (p, e) in enumerate(peers, start=1))
            (self.workdir / f"zookeeper-{i}.properties").write_text(
                f"dataDir={data}\nclientPort={self.client_ports[i - 1]}\nclientPortAddress=127.0.0.1\n"
                f"tickTime={KEEPER_TICK_MS}\ninitLimit=10\nsyncLimit=5\nmaxClientCnxns=0\n" + servers)

    @property
    def connect(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    def start(self):
        for i in range(1, len(self.client_ports) + 1):
            self.procs[i] = Process(f"keeper-{i}", [binary("zookeeper-server-start"),
                                                   str(self.workdir / f"zookeeper-{i}.properties")],
                                    self.workdir / f"keeper-{i}.log")
        for i, p in self.procs.items():
            wait_until(f"keeper {i} port", lambda i=i: port_open(self.client_ports[i - 1]), proc=p.proc, log=p.log)
        # Serving writes needs an elected Raft leader, not just open ports.
        wait_until("keeper ensemble quorum", lambda: zk_shell(self.connect, "create", f"/strom-probe-{uuid.uuid4().hex[:8]}", "x",
                                                               check=True) is not None, timeout=60, interval=0.5)

    def stop(self):
        for p in self.procs.values():
            p.stop()


def zk_shell(connect, *args, check=False, timeout=20):
    """Runs one `zookeeper-shell` command; returns stdout, or None when it failed (check=False)."""
    r = subprocess.run([binary("zookeeper-shell"), connect, *args], capture_output=True, timeout=timeout)
    out = r.stdout.decode(errors="replace").strip()
    if r.returncode != 0:
        if check:
            raise RuntimeError(f"zookeeper-shell {' '.join(args)}: exit {r.returncode}: {out} {r.stderr.decode(errors='replace')[-500:]}")
        return None
    return out


class Broker:
    """One `kafka-server-start` with a fixed id, port, properties file and data directory, so
    that a restart brings back the same broker with the same logs."""

    def __init__(self, workdir, broker_id, zookeeper, extra=""):
        self.id = broker_id
        self.workdir = Path(workdir)
        self.port = free_port()
        self.log_dir = self.workdir / f"broker-{broker_id}-data"
        self.props = self.workdir / f"server-{broker_id}.properties"
        self.props.write_text(
            f"broker.id={broker_id}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.port}\n"
            f"log.dirs={self.log_dir}\n"
            f"zookeeper.connect={zookeeper}\n"
            f"zookeeper.session.timeout.ms={SESSION_TIMEOUT_MS}\n"
            f"replica.lag.time.max.ms={REPLICA_LAG_MS}\n"
            "num.partitions=1\n"
            "default.replication.factor=3\n"
            "offsets.topic.replication.factor=3\n"
            "offsets.topic.num.partitions=6\n"
            "min.insync.replicas=2\n"
            "auto.create.topics.enable=false\n"
            "group.initial.rebalance.delay.ms=0\n"
            # Retention runs every second, so a test can have a leader delete what a stopped
            # follower missed (every topic but that test's keeps the 7-day default).
            "log.retention.check.interval.ms=1000\n"
            + extra)
        self.restarts = 0
        self.process = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self):
        return self.process is not None and self.process.proc.poll() is None

    def start(self):
        log = self.workdir / f"broker-{self.id}.{self.restarts}.log"
        self.restarts += 1
        self.process = Process(f"broker-{self.id}", [binary("kafka-server-start"), str(self.props)], log)
        wait_until(f"broker {self.id} port", lambda: port_open(self.port), proc=self.process.proc, log=log)

    def kill9(self):
        """SIGKILL: no clean shutdown, the keeper session expires after the session timeout."""
        if self.alive:
            self.process.proc.kill()
            self.process.proc.wait(timeout=10)
        if self.process is not None:
            self.process.stop()

    def terminate(self):
        """SIGTERM: a clean shutdown (logs flushed, keeper session closed)."""
        if self.process is not None:
            self.process.stop(timeout=30)


class StromCluster:
    def __init__(self, workdir, broker_extra=""):
        self.workdir = Path(workdir)
        self.keepers = KeeperEnsemble(self.workdir)
        self.brokers = {i: Broker(self.workdir, i, self.keepers.connect, broker_extra) for i in BROKER_IDS}

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self):
        self.keepers.start()
        for b in self.brokers.values():
            b.start()
        self.wait_registered(BROKER_IDS)

    def stop(self):
        for b in self.brokers.values():
            b.terminate()
        self.keepers.stop()

    def kill9(self, broker_id):
        self.brokers[broker_id].kill9()

    def terminate(self, broker_id):
        self.brokers[broker_id].terminate()

    def restart(self, broker_id):
        b = self.brokers[broker_id]
        if b.alive:
            b.kill9()
        b.start()
        self.wait_registered([broker_id])

    def ensure_all_up(self):
        """Restarts any broker a test left down (a failed test must not break the next one)."""
        for i, b in self.brokers.items():
            if not b.alive:
                self.restart(i)

    def live_ids(self):
        return [i for i, b in self.brokers.items() if b.alive]

    @property
    def zookeeper(self):
        return self.keepers.connect

    def bootstrap(self, ids=None):
        ids = self.live_ids() if ids is None else ids
        return ",".join(self.brokers[i].address for i in ids)

    # ---- keeper view (what the controller decided) -------------------------------------------

    def zk_get(self, path):
        out = zk_shell(self.zookeeper, "get", path)
        return None if out is None else out.splitlines()[-1]

    def registered_ids(self):
        out = zk_shell(self.zookeeper, "ls", "/brokers/ids")
        if out is None:
            return []
        last = out.splitlines()[-1].strip().strip("[]")
        return sorted(int(x) for x in last.split(",") if x.strip())

    def wait_registered(self, ids, timeout=FAILOVER_TIMEOUT):
        wait_until(f"brokers {list(ids)} registered in /brokers/ids",
                   lambda: set(ids) <= set(self.registered_ids()), timeout=timeout, interval=0.2)

    def wait_unregistered(self, broker_id, timeout=FAILOVER_TIMEOUT):
        wait_until(f"broker {broker_id} gone from /brokers/ids",
                   lambda: broker_id not in self.registered_ids(), timeout=timeout, interval=0.1)

    def controller(self):
        """(broker id, controller epoch) from `/controller` and `/controller_epoch`."""
        node = self.zk_get("/controller")
        epoch = self.zk_get("/controller_epoch")
        if node is None:
            return None, None
        return json.loads(node)["brokerid"], (int(epoch) if epoch is not None else None)

    def zk_state(self, topic, partition):
        """The partition's `state` znode: {"leader", "leader_epoch", "isr", ...} or None."""
        raw = self.zk_get(f"/brokers/topics/{topic}/partitions/{partition}/state")
        return None if raw is None else json.loads(raw)

    def zk_assignment(self, topic):
        raw = self.zk_get(f"/brokers/topics/{topic}")
        return None if raw is None else {int(p): r for p, r in json.loads(raw)["partitions"].items()}

    # ---- broker view (Metadata) --------------------------------------------------------------

    def admin(self, ids=None):
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap(ids), "socket.timeout.ms": 5000})

    def metadata(self, topics=None, via=None):
        """Metadata v7 as broker `via` (default: the first live one) answers it; see `metadata_v7`."""
        via = self.live_ids()[0] if via is None else via
        return metadata_v7(self.brokers[via].address, topics)

    def partitions(self, topic, via=None):
        """{partition: (leader, replicas, isr)} as broker `via` reports it in Metadata."""
        t = self.metadata([topic], via=via)["topics"][topic]
        if t["error"] != 0:
            raise RuntimeError(f"metadata for {topic}: error code {t['error']}")
        return {p: (m["leader"], m["replicas"], sorted(m["isr"])) for p, m in t["partitions"].items()}

    def create_topic(self, topic, partitions, rf=3, config=None, timeout=30):
        from confluent_kafka.admin import NewTopic

        admin = self.admin()  # must outlive the future, or librdkafka destroys the request
        fut = admin.create_topics([NewTopic(topic, partitions, rf, config=config or {})],
                                         operation_timeout=timeout)[topic]
        fut.result(timeout=timeout)
        # Every live broker must know every partition's leader before clients are let loose.
        self.wait_topic_ready(topic, partitions, rf, timeout=timeout)

    def wait_topic_ready(self, topic, partitions, rf, timeout=30):
        def ready():
            for i in self.live_ids():
                parts = self.partitions(topic, via=i)
                if len(parts) != partitions:
                    return False
                if any(l < 0 or len(r) != rf for l, r, _ in parts.values()):
                    return False
            return True

        wait_until(f"topic {topic} ready on every live broker", ready, timeout=timeout, interval=0.2)

    def leader(self, topic, partition):
        st = self.zk_state(topic, partition)
        return None if st is None else st["leader"]

    def wait_leader_change(self, topic, partition, old_leader, timeout=FAILOVER_TIMEOUT):
        """Waits until the keeper names a live leader other than `old_leader`; returns it."""
        found = {}

        def changed():
            st = self.zk_state(topic, partition)
            if st and st["leader"] not in (-1, old_leader):
                found["leader"] = st["leader"]
                return True
            return False

        wait_until(f"{topic}-{partition} leader moves off broker {old_leader}", changed, timeout=timeout, interval=0.05)
        return found["leader"]

    def wait_isr(self, topic, partition, predicate, what, timeout=REJOIN_TIMEOUT):
        """Waits until the keeper's ISR for the partition satisfies `predicate(isr)` and every
        live broker's Metadata agrees with it."""

        def ok():
            st = self.zk_state(topic, partition)
            if not st or not predicate(st["isr"]):
                return False
            for i in self.live_ids():
                leader, _, isr = self.partitions(topic, via=i)[partition]
                if leader != st["leader"] or sorted(isr) != sorted(st["isr"]):
                    return False
            return True

        wait_until(f"{topic}-{partition} ISR: {what}", ok, timeout=timeout, interval=0.2)
        return self.zk_state(topic, partition)

    def wait_full_isr(self, topic, partitions, timeout=REJOIN_TIMEOUT):
        for p in range(partitions):
            self.wait_isr(topic, p, lambda isr: sorted(isr) == sorted(self.live_ids()) and len(isr) == len(BROKER_IDS),
                          "all three brokers", timeout=timeout)

    def lead_alone(self, topic, partition, broker_id):
        """Kills every other broker, followers first and the leader last, so that `broker_id`
        (an ISR member) ends up the partition's only live replica and its leader. Returns the
        killed ids for `restart`. (SIGKILL rather than SIGTERM: a leader's clean shutdown is
        covered by its own test and must not slow down every read-back.)"""
        st = self.zk_state(topic, partition)
        assert broker_id in st["isr"], f"broker {broker_id} is not in the ISR of {topic}-{partition}: {st}"
        others = sorted((i for i in self.live_ids() if i != broker_id), key=lambda i: i == st["leader"])
        for i in others:
            self.kill9(i)
            self.wait_isr(topic, partition, lambda isr, i=i: i not in isr, f"broker {i} out", timeout=FAILOVER_TIMEOUT)
        self.wait_isr(topic, partition, lambda isr: isr == [broker_id], f"broker {broker_id} alone", timeout=FAILOVER_TIMEOUT)
        assert self.leader(topic, partition) == broker_id
        return others

    def pid(self, broker_id):
        return self.brokers[broker_id].process.proc.pid

    def partition_dirs(self, topic):
        """{broker id: [partition directory names of `topic`]} on every broker's disk."""
        out = {}
        for i, b in self.brokers.items():
            names = []
            if b.log_dir.exists():
                for d in b.log_dir.iterdir():
                    head, _, tail = d.name.partition(".")
                    stem, _, num = head.rpartition("-")
                    if d.is_dir() and stem == topic and num.isdigit():
                        names.append(d.name)
            out[i] = sorted(names)
        return out

    def logs(self):
        parts = []
        for i, p in self.keepers.procs.items():
            if p.log.exists():
                parts.append(f"--- keeper {i} log tail ---\n{p.log.read_text(errors='replace')[-2000:]}")
        for i, b in self.brokers.items():
            for log in sorted(self.workdir.glob(f"broker-{i}.*.log")):
                parts.append(f"--- broker {i} {log.name} tail ---\n{log.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


def produce(bootstrap, topic, values, partition=None, acks="all", timeout=30):
    """Produces `values` (bytes) and returns [(partition, offset)], raising on any failed delivery."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "enable.idempotence": acks == "all",
                  "message.timeout.ms": int(timeout * 1000), "linger.ms": 5})
    results, errors = [], []

    def report(err, msg):
        (errors if err else results).append(err or (msg.partition(), msg.offset()))

    for v in values:
        kwargs = {} if partition is None else {"partition": partition}
        p.produce(topic, value=v, on_delivery=report, **kwargs)
        p.poll(0)
    left = p.flush(timeout + 5)
    assert left == 0 and not errors, f"{left} undelivered, errors: {errors[:5]}"
    return results


def consume_all(bootstrap, topic, partitions, timeout=60, isolation="read_committed"):
    """Reads every partition of `topic` from the beginning with confluent-kafka (no group, manual
    assignment) until each partition's high watermark; returns {partition: [(offset, key, value)]}."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "isolation.level": isolation, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out = {p: [] for p in range(partitions)}
        eof = set()
        deadline = time.monotonic() + timeout
        while len(eof) < partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: only partitions {sorted(eof)} reached their end; "
                                   f"{ {p: len(v) for p, v in out.items()} } records")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                if m.error().retriable():
                    continue
                raise RuntimeError(f"reading {topic}: {m.error()}")
            eof.discard(m.partition())
            out[m.partition()].append((m.offset(), m.key(), m.value()))
        return out
    finally:
        c.close()


def metadata_v7(address, topics=None, timeout=5.0):
    """One Metadata v7 request to exactly the broker at `address` (a client library would pick
    any broker it knows), so tests can check what each broker believes. Returns
    {"controller": id, "brokers": {id: (host, port)}, "topics": {name: {"error": code,
    "partitions": {p: {"error", "leader", "leader_epoch", "replicas", "isr", "offline"}}}}}."""
    import socket
    import struct

    def string(s):
        b = s.encode()
        return struct.pack(">h", len(b)) + b

    body = struct.pack(">hhi", 3, 7, 1) + string("strom-cluster-tests")
    if topics is None:
        body += struct.pack(">i", -1)
    else:
        body += struct.pack(">i", len(topics)) + b"".join(string(t) for t in topics)
    body += b"\x00"  # allow_auto_topic_creation = false
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)

        def read_exact(n):
            buf = b""
            while len(buf) < n:
                chunk = sock.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError(f"{address} closed the connection during Metadata")
                buf += chunk
            return buf

        (size,) = struct.unpack(">i", read_exact(4))
        data = read_exact(size)

    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return vals[0] if len(vals) == 1 else vals

    def nstring():
        n = take(">h")
        if n < 0:
            return None
        nonlocal pos
        s = data[pos:pos + n].decode()
        pos += n
        return s

    def int_array():
        n = take(">i")
        return [take(">i") for _ in range(max(n, 0))]

    take(">i")  # correlation id
    take(">i")  # throttle_time_ms
    brokers = {}
    for _ in range(take(">i")):
        node = take(">i")
        h = nstring()
        p = take(">i")
        nstring()  # rack
        brokers[node] = (h, p)
    nstring()  # cluster id
    controller = take(">i")
    out_topics = {}
    for _ in range(take(">i")):
        err = take(">h")
        name = nstring()
        take(">b")  # is_internal
        parts = {}
        for _ in range(take(">i")):
            perr = take(">h")
            index = take(">i")
            leader = take(">i")
            epoch = take(">i")
            parts[index] = {"error": perr, "leader": leader, "leader_epoch": epoch, "replicas": int_array(),
                            "isr": int_array(), "offline": int_array()}
        out_topics[name] = {"error": err, "partitions": parts}
    return {"controller": controller, "brokers": brokers, "topics": out_topics}
