#!/usr/bin/env bash
# Replication cost and failover time, in one run on this machine: one keeper and three brokers
# on loopback (release binaries), then
#   1. kafka-producer-perf-test, 100-byte records, acks=all, as fast as it goes, to a topic with
#      RF=1 (all 6 partitions on broker 1) and to a topic with RF=3 (6 partitions spread over the
#      three brokers, min.insync.replicas=2): records/s, p50/p99/p99.9 latency, ratio RF3/RF1;
#   2. the same at a fixed rate (LAT_RATE records/s), where latency is not queueing time;
#   3. failover: a confluent-kafka producer (acks=all, idempotent) writes to a 1-partition RF=3
#      topic; the partition's leader is killed with SIGKILL; the time from the kill to the
#      keeper naming a new leader and to the first write the new leader acknowledges
#      (zookeeper.session.timeout.ms=3000). Repeated FAILOVERS times, restarting the victim and
#      waiting for it to rejoin the ISR in between.
# Usage: tests/bench/replication_bench.sh [RECORDS]   (env: LAT_RATE, FAILOVERS, STROM_BIN)
set -euo pipefail
cd "$(dirname "$0")/../.."
RECORDS=${1:-1000000}
LAT_RATE=${LAT_RATE:-20000}
FAILOVERS=${FAILOVERS:-3}
SESSION_MS=3000
if [ -z "${STROM_BIN:-}" ]; then
    # A no-op when target/release is fresh; rebuilds what changed otherwise.
    cargo build --release -j2 -p strom-cli --bins
    BIN=$PWD/target/release
else
    BIN=$STROM_BIN
fi
WORK=$(mktemp -d /tmp/repl-bench.XXXXXX)
declare -A PID PORT
KEEPER_PID=
cleanup() {
    for id in "${!PID[@]}"; do kill -9 "${PID[$id]}" 2>/dev/null || true; done
    [ -n "$KEEPER_PID" ] && kill -9 "$KEEPER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.1 s, fail after SECONDS
    local limit=$1 what=$2; shift 2
    local deadline=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then echo "timed out after ${limit}s waiting for $what" >&2; tail -n 20 "$WORK"/*.log >&2; exit 1; fi
        sleep 0.1
    done
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ZP=$(free_port)
ZK=127.0.0.1:$ZP
mkdir -p "$WORK/keeper"
# tickTime=500 so that the 3 s session timeout is inside the negotiable [2, 20] x tickTime range.
printf 'dataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\ntickTime=500\nmaxClientCnxns=0\n' "$WORK/keeper" "$ZP" > "$WORK/zookeeper.properties"
(RUST_LOG=warn "$BIN/zookeeper-server-start" "$WORK/zookeeper.properties" > "$WORK/keeper.log" 2>&1 &
 echo $! > "$WORK/keeper.pid")
KEEPER_PID=$(cat "$WORK/keeper.pid")
wait_for 30 "keeper" port_open "$ZP"

start_broker() {
    local id=$1
    # Started from a subshell that exits at once, so the broker is not a job of this shell and
    # killing it prints no "Killed" job notice (the keeper likewise).
    (RUST_LOG=warn "$BIN/kafka-server-start" "$WORK/server-$id.properties" >> "$WORK/broker-$id.log" 2>&1 &
     echo $! > "$WORK/broker-$id.pid")
    PID[$id]=$(cat "$WORK/broker-$id.pid")
    wait_for 30 "broker $id port" port_open "${PORT[$id]}"
}
registered() { "$BIN/zookeeper-shell" "$ZK" ls /brokers/ids 2>/dev/null | tail -1 | grep -q "$1"; }
for id in 1 2 3; do
    PORT[$id]=$(free_port)
    cat > "$WORK/server-$id.properties" <<EOF
broker.id=$id
listeners=PLAINTEXT://127.0.0.1:${PORT[$id]}
log.dirs=$WORK/broker-$id
zookeeper.connect=$ZK
zookeeper.session.timeout.ms=$SESSION_MS
replica.lag.time.max.ms=10000
default.replication.factor=3
offsets.topic.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=false
# Off so that a preferred-leader move after the previous round's restart cannot coincide with
# a kill and pass for a failover.
auto.leader.rebalance.enable=false
EOF
    start_broker "$id"
done
for id in 1 2 3; do wait_for 30 "broker $id registered" registered "$id"; done
BOOT="127.0.0.1:${PORT[1]},127.0.0.1:${PORT[2]},127.0.0.1:${PORT[3]}"
echo "cluster: keeper $ZK, brokers $BOOT ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"

"$BIN/kafka-topics" --bootstrap-server "$BOOT" --create --topic rf1 --replica-assignment 1,1,1,1,1,1 --config min.insync.replicas=1 >/dev/null
"$BIN/kafka-topics" --bootstrap-server "$BOOT" --create --topic rf3 --partitions 6 --replication-factor 3 >/dev/null
"$BIN/kafka-topics" --bootstrap-server "$BOOT" --create --topic failover --partitions 1 --replication-factor 3 >/dev/null
sleep 2
"$BIN/kafka-topics" --bootstrap-server "$BOOT" --describe --topic rf3

perf() {  # perf NAME TOPIC RECORDS THROUGHPUT: prints and keeps kafka-producer-perf-test's summary
    local name=$1 topic=$2 n=$3 rate=$4
    timeout 900 "$BIN/kafka-producer-perf-test" --topic "$topic" --num-records "$n" --record-size 100 --throughput "$rate" \
        --producer-props bootstrap.servers="$BOOT" acks=all linger.ms=5 batch.size=65536 \
        > "$WORK/perf-$name.out"
    local summary
    summary=$(tail -1 "$WORK/perf-$name.out")
    echo "$name: $summary"
    echo "$summary" > "$WORK/summary-$name"
}
perf rf1-max rf1 "$RECORDS" -1
perf rf3-max rf3 "$RECORDS" -1
LAT_N=$(( LAT_RATE * 15 ))
perf rf1-paced rf1 "$LAT_N" "$LAT_RATE"
perf rf3-paced rf3 "$LAT_N" "$LAT_RATE"
python3 - "$WORK" <<'PY'
import re, sys, pathlib
w = pathlib.Path(sys.argv[1])
def parse(name):
    s = (w / f"summary-{name}").read_text()
    m = re.search(r"([\d.]+) records/sec.*?(\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", s)
    return float(m.group(1)), int(m.group(2)), int(m.group(4)), int(m.group(5))
rows = {n: parse(n) for n in ("rf1-max", "rf3-max", "rf1-paced", "rf3-paced")}
for n, (rate, p50, p99, p999) in rows.items():
    print(f"{n:10s} {rate:12,.0f} records/s   p50 {p50} ms   p99 {p99} ms   p99.9 {p999} ms")
ratio = rows["rf3-max"][0] / rows["rf1-max"][0]
print(f"RF3/RF1 throughput ratio: {ratio:.2f} (target >= 0.50); RF3 paced p99 {rows['rf3-paced'][2]} ms (target < 20 ms)")
PY

leader_of() {  # leader of failover-0 according to the keeper
    "$BIN/zookeeper-shell" "$ZK" get /brokers/topics/failover/partitions/0/state 2>/dev/null | tail -1 \
        | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["leader"])'
}
full_isr() {
    "$BIN/zookeeper-shell" "$ZK" get /brokers/topics/failover/partitions/0/state 2>/dev/null | tail -1 \
        | python3 -c 'import json,sys; sys.exit(0 if sorted(json.loads(sys.stdin.read())["isr"]) == [1,2,3] else 1)'
}
for round in $(seq 1 "$FAILOVERS"); do
    wait_for 120 "failover-0 ISR back to 1,2,3" full_isr
    victim=$(leader_of)
    python3 - "$BOOT" "$ZK" "$BIN/zookeeper-shell" "$victim" "${PID[$victim]}" "$round" <<'PY'
import json, os, signal, subprocess, sys, threading, time
from confluent_kafka import Producer
boot, zk, shell, victim, pid, round_no = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
acks, errors = [], []
p = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True, "linger.ms": 1,
              "message.timeout.ms": 60000, "retry.backoff.ms": 20, "topic.metadata.refresh.interval.ms": 1000})
def report(err, msg):
    (errors if err else acks).append(time.monotonic())
stop = threading.Event()
def write():
    n = 0
    while not stop.is_set():  # 1,000 records/s
        p.produce("failover", value=b"%d" % n, partition=0, on_delivery=report)
        n += 1
        p.poll(0.001)
t = threading.Thread(target=write, daemon=True)
t.start()
time.sleep(2)
assert acks and not errors, "producer not acknowledged before the kill"
killed = time.monotonic()
os.kill(pid, signal.SIGKILL)
elected = None
while time.monotonic() - killed < 60:
    out = subprocess.run([shell, zk, "get", "/brokers/topics/failover/partitions/0/state"], capture_output=True).stdout
    leader = json.loads(out.decode().strip().splitlines()[-1])["leader"]
    if leader not in (-1, victim):
        elected = time.monotonic()
        break
    time.sleep(0.02)
deadline = time.monotonic() + 60
first = None
while time.monotonic() < deadline and first is None:
    after = [a for a in acks if a > killed + 0.1]
    first = min(after) if after else None
    time.sleep(0.01)
stop.set()
t.join()
left = p.flush(60)
e = f"{elected - killed:.2f} s" if elected else "none within 60 s"
f = f"{first - killed:.2f} s" if first else "none within 60 s"
print(f"failover round {round_no}: killed leader broker {victim}; new leader in the keeper after {e}; "
      f"first acknowledged write after {f}; {len(errors)} failed deliveries, {left} undelivered")
PY
    start_broker "$victim"
done
wait_for 120 "failover-0 ISR back to 1,2,3" full_isr
echo "done (session timeout $SESSION_MS ms; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
