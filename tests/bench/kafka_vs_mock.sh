#!/usr/bin/env bash
# The broker's throughput beside the client's ceiling, in one run: ../shared/bench/kafka_bench.py
# (confluent-kafka; 100-byte records, linger.ms=5, 1 MiB batches, acks=1, 1 partition) against
# librdkafka's in-memory mock broker (mockhold.py), then against a release Strom (keeper +
# broker, `strom` quick start, on-disk log). Prints each JSON result and the ratios.
# Usage: tests/bench/kafka_vs_mock.sh [RECORDS]      (SHARED=path to shared/bench if elsewhere)
set -euo pipefail
cd "$(dirname "$0")/../.."
RECORDS=${1:-1000000}
SHARED=${SHARED:-$(cd ../shared/bench 2>/dev/null && pwd || echo /work/shared/bench)}
BIN=${STROM_BIN:-$PWD/target/release}
WORK=$(mktemp -d /tmp/kafka-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && { kill -9 "$p"; wait "$p"; } 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
[ -x "$BIN/strom" ] || cargo build --release -j2 -p strom-cli --bin strom
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

python3 "$SHARED/mockhold.py" 600 > "$WORK/mock.addr" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$WORK/mock.addr" ] && break; sleep 0.1; done
MOCK=$(head -1 "$WORK/mock.addr")
echo "mock: $MOCK"
python3 "$SHARED/kafka_bench.py" --bootstrap "$MOCK" --topic bench --records "$RECORDS" produce | tee "$WORK/mock.json"

KP=$(free_port); ZP=$(free_port)
start=$(date +%s%N)
RUST_LOG=warn "$BIN/strom" --data-dir "$WORK/strom" --kafka-port "$KP" --keeper-port "$ZP" --advertised-host 127.0.0.1 > "$WORK/strom.log" 2>&1 &
SPID=$!; PIDS+=($SPID)
for _ in $(seq 1 300); do grep -q "Strom is up" "$WORK/strom.log" && break; sleep 0.01; done
echo "strom: cold start to serving $(( ($(date +%s%N) - start) / 1000000 )) ms (process start to 'Strom is up', keeper and broker)"
sleep 2
echo "strom: idle RSS $(awk '/VmRSS/ {printf "%.1f MB", $2/1024}' /proc/$SPID/status) (keeper and broker in one process)"
python3 "$SHARED/kafka_bench.py" --bootstrap "127.0.0.1:$KP" --topic bench --create --records "$RECORDS" --broker-pid "$SPID" produce | tee "$WORK/strom-produce.json"
python3 "$SHARED/kafka_bench.py" --bootstrap "127.0.0.1:$KP" --topic bench --records "$RECORDS" --broker-pid "$SPID" consume | tee "$WORK/strom-consume.json"
# The same consumer with librdkafka's queue-full pause cut from 1 s to 10 ms (nothing else
# changed): how fast the client can take what the broker serves.
python3 tests/bench/consume_backoff.py "$SHARED" 10 --bootstrap "127.0.0.1:$KP" --topic bench --records "$RECORDS" --broker-pid "$SPID" consume | tee "$WORK/strom-consume-10.json"
python3 - "$WORK" <<'PY'
import json, sys, pathlib
w = pathlib.Path(sys.argv[1])
def rate(name):
    return json.loads((w / name).read_text().strip().splitlines()[-1])["records_per_s"]
mock = rate("mock.json"); p = rate("strom-produce.json"); c = rate("strom-consume.json")
c10 = rate("strom-consume-10.json")
print(f"ratios vs mock produce ({mock:,.0f}/s): produce {p/mock:.2f}x (target >= 0.9), consume {c/mock:.2f}x (target >= 1.3); "
      f"consume with fetch.queue.backoff.ms=10 {c10/mock:.2f}x")
PY
