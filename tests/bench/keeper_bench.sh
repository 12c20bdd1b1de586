#!/usr/bin/env bash
# Side-by-side keeper benchmark on this machine: a 3-node Strom keeper ensemble driven by
# keeper-bench, then (when Debian's `zookeeper` package is installed) a 3-node Apache ZooKeeper
# ensemble driven by ZkBench.java with the same workload. Prints ops/s, latency percentiles and
# each server's resident memory idle and after the load. Usage:
#   tests/bench/keeper_bench.sh [--ops N] [--inflight N] [--sessions N]    (args go to both drivers)
# Every server it starts is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${STROM_BIN:-$ROOT/target/release}
WORK=$(mktemp -d /tmp/keeper-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && { kill -9 "$p"; wait "$p"; } 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$BIN/zookeeper-server-start" ] && [ -x "$BIN/keeper-bench" ] || cargo build --release -j2 -p strom-cli --bin zookeeper-server-start --bin keeper-bench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
wait_port() { for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

echo "== Strom keeper: 3 nodes on loopback ($(nproc) cores) =="
CP=(); PP=(); EP=()
for i in 1 2 3; do CP+=("$(free_port)"); PP+=("$(free_port)"); EP+=("$(free_port)"); done
for i in 1 2 3; do
  d=$WORK/strom$i; mkdir -p "$d"; echo $i > "$d/myid"
  { echo "dataDir=$d"; echo "clientPort=${CP[$((i-1))]}"; echo "tickTime=2000"; echo "maxClientCnxns=0"
    for j in 1 2 3; do echo "server.$j=127.0.0.1:${PP[$((j-1))]}:${EP[$((j-1))]}"; done; } > "$d/zk.properties"
  RUST_LOG=warn "$BIN/zookeeper-server-start" "$d/zk.properties" > "$d/log" 2>&1 &
  PIDS+=($!); SPIDS[$i]=$!
done
for i in 1 2 3; do wait_port "${CP[$((i-1))]}"; done
CONNECT="127.0.0.1:${CP[0]},127.0.0.1:${CP[1]},127.0.0.1:${CP[2]}"
for _ in $(seq 1 100); do "$BIN/zookeeper-shell" "$CONNECT" ls / >/dev/null 2>&1 && break; sleep 0.1; done
sleep 3
echo "idle RSS (MB): $(rss_mb ${SPIDS[1]}) $(rss_mb ${SPIDS[2]}) $(rss_mb ${SPIDS[3]})"
"$BIN/keeper-bench" --connect "$CONNECT" "$@"
echo "after-load RSS (MB): $(rss_mb ${SPIDS[1]}) $(rss_mb ${SPIDS[2]}) $(rss_mb ${SPIDS[3]})"
for i in 1 2 3; do kill -9 "${SPIDS[$i]}" 2>/dev/null || true; wait "${SPIDS[$i]}" 2>/dev/null || true; done

ZKJAR=/usr/share/java/zookeeper.jar
if [ ! -f "$ZKJAR" ] || ! command -v javac >/dev/null; then
  echo "Apache ZooKeeper not installed (apt-get install zookeeper); reference skipped"
  exit 0
fi
echo "== Apache ZooKeeper $(unzip -p $ZKJAR META-INF/MANIFEST.MF 2>/dev/null | awk -F': ' '/Implementation-Version/ {print $2}' | tr -d '\r'): 3 nodes on loopback, 1 GB heap each =="
mkdir -p "$WORK/zkbench" && javac -cp "$ZKJAR" -d "$WORK/zkbench" tests/bench/ZkBench.java
CP=(); PP=(); EP=()
for i in 1 2 3; do CP+=("$(free_port)"); PP+=("$(free_port)"); EP+=("$(free_port)"); done
for i in 1 2 3; do
  d=$WORK/zk$i; mkdir -p "$d"; echo $i > "$d/myid"
  { echo "dataDir=$d"; echo "clientPort=${CP[$((i-1))]}"; echo "tickTime=2000"; echo "initLimit=10"; echo "syncLimit=5"
    echo "maxClientCnxns=0"; echo "admin.enableServer=false"
    for j in 1 2 3; do echo "server.$j=127.0.0.1:${PP[$((j-1))]}:${EP[$((j-1))]}"; done; } > "$d/zoo.cfg"
  java -Xmx1g -Xms1g -Dzookeeper.log.dir="$d" -cp "$ZKJAR:/etc/zookeeper/conf" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" > "$d/log" 2>&1 &
  PIDS+=($!); ZPIDS[$i]=$!
done
for i in 1 2 3; do wait_port "${CP[$((i-1))]}"; done
sleep 5
echo "idle RSS (MB): $(rss_mb ${ZPIDS[1]}) $(rss_mb ${ZPIDS[2]}) $(rss_mb ${ZPIDS[3]})"
java -cp "$WORK/zkbench:$ZKJAR" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn ZkBench \
  --connect "127.0.0.1:${CP[0]},127.0.0.1:${CP[1]},127.0.0.1:${CP[2]}" "$@" 2> "$WORK/zkbench.err" || { tail -20 "$WORK/zkbench.err"; exit 1; }
echo "after-load RSS (MB): $(rss_mb ${ZPIDS[1]}) $(rss_mb ${ZPIDS[2]}) $(rss_mb ${ZPIDS[3]})"
