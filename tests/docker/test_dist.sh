#!/usr/bin/env bash
# Tests the release archive of deploy/dist.sh: its Kafka-like layout, and that the unpacked
# folder runs a keeper and a broker from its own config/ files (with ports and data dirs
# moved to free ports and a temporary folder), then creates a topic and round-trips records
# with the console tools from bin/.
#
# Builds the archive (honouring STROM_PROFILE=debug) unless STROM_DIST_ARCHIVE names one
# already built.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
work="$(mktemp -d)"
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "$rc" != 0 ]; then
        say "FAILED (exit $rc)"
        tail -n 20 "$work"/*.log 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

archive="${STROM_DIST_ARCHIVE:-}"
if [ -z "$archive" ]; then
    STROM_DIST_DIR="$work/out" deploy/dist.sh
    archive="$(ls "$work"/out/strom-*.tar.gz)"
fi
tar -C "$work" -xzf "$archive"
home="$(ls -d "$work"/strom-*/)"
passed=0
step() { say "ok: $*"; passed=$((passed + 1)); }

for f in bin/zookeeper-server-start bin/kafka-server-start bin/kafka-topics bin/zookeeper-shell \
    bin/kafka-console-producer bin/kafka-console-consumer bin/windows/zookeeper-server-start.bat \
    bin/windows/kafka-server-start.bat config/zookeeper.properties config/server.properties; do
    [ -e "$home/$f" ] || { say "archive lacks $f"; exit 1; }
done
[ -x "$home/bin/kafka-server-start" ] || { say "bin/kafka-server-start is not executable"; exit 1; }
step "archive has bin/, bin/windows/*.bat and config/ like Kafka's"

read -r zk_port kafka_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1", 0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')

cd "$home"
# The shipped files, with only the port and the data folder moved.
sed -e "s|^clientPort=.*|clientPort=$zk_port|" -e "s|^dataDir=.*|dataDir=$work/zk|" \
    config/zookeeper.properties >"$work/zookeeper.properties"
bin/zookeeper-server-start "$work/zookeeper.properties" >"$work/keeper.log" 2>&1 &
pids+=($!)
bin/kafka-server-start config/server.properties \
    --override "listeners=PLAINTEXT://127.0.0.1:$kafka_port" \
    --override "zookeeper.connect=127.0.0.1:$zk_port" \
    --override "log.dirs=$work/logs" >"$work/broker.log" 2>&1 &
pids+=($!)

deadline=$((SECONDS + 60))
until bin/kafka-topics --bootstrap-server "127.0.0.1:$kafka_port" --list >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { say "broker did not answer within 60s"; exit 1; }
    sleep 0.5
done
step "keeper and broker started from the unpacked folder's config/"

bin/kafka-topics --bootstrap-server "127.0.0.1:$kafka_port" --create --topic dist --partitions 1 --replication-factor 1
seq 1 20 | sed 's/^/record-/' | bin/kafka-console-producer --bootstrap-server "127.0.0.1:$kafka_port" --topic dist
got="$(bin/kafka-console-consumer --bootstrap-server "127.0.0.1:$kafka_port" --topic dist --from-beginning \
    --max-messages 20 --timeout-ms 20000 2>/dev/null)"
[ "$got" = "$(seq 1 20 | sed 's/^/record-/')" ] || { say "consumed: $got"; exit 1; }
bin/zookeeper-shell "127.0.0.1:$zk_port" get /brokers/topics/dist >/dev/null
step "bin/ tools created a topic and round-tripped 20 records"

echo "dist: $passed passed, 0 failed"
