#!/usr/bin/env bash
# End-to-end test of the container image and deploy/docker-compose.yml: three keepers, three
# brokers, a topic created from inside a container, a Python client on the host producing and
# consuming through the published ports, a keeper killed (the cluster keeps serving) and
# brought back (it rejoins and catches up).
#
# Then it kills the leader broker while producing with acks=all to an RF=3 topic and reads back
# every acknowledged record, and cuts a broker off the network and back
# (STROM_DOCKER_REPLICATION=0 skips those two, with a message).
#
# Skips (exit 0, with the reason) when `docker info` fails. Builds the image with
# deploy/build-image.sh (STROM_PROFILE=debug packs the debug programs: no release build)
# unless STROM_DOCKER_SKIP_BUILD=1. Ports: asks the OS for free ones. Always removes the project's
# containers, network and volumes on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

if ! docker info >/dev/null 2>&1; then
    say "SKIP tests/docker/test_compose.sh: 'docker info' fails (no Docker engine reachable)"
    echo "docker: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    say "SKIP tests/docker/test_compose.sh: neither 'docker compose' nor 'docker-compose' is installed"
    echo "docker: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
if ! python3 -c 'import confluent_kafka' 2>/dev/null; then
    python3 -m pip install -q -r tests/compat/requirements.txt
fi

if [ "${STROM_DOCKER_SKIP_BUILD:-0}" != 1 ]; then
    say "building the image"
    deploy/build-image.sh
fi

project="stromtest$$"
export STROM_IMAGE="${STROM_IMAGE:-strom:latest}"
read -r STROM_BROKER1_PORT STROM_BROKER2_PORT STROM_BROKER3_PORT \
    STROM_KEEPER1_PORT STROM_KEEPER2_PORT STROM_KEEPER3_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)
export STROM_BROKER1_PORT STROM_BROKER2_PORT STROM_BROKER3_PORT STROM_KEEPER1_PORT STROM_KEEPER2_PORT STROM_KEEPER3_PORT
bootstrap="localhost:$STROM_BROKER1_PORT,localhost:$STROM_BROKER2_PORT,localhost:$STROM_BROKER3_PORT"
work="$(mktemp -d)"

dc() { "${compose[@]}" -p "$project" -f deploy/docker-compose.yml "$@"; }
client() { python3 tests/docker/client.py "$@"; }

cleanup() {
    local rc=$?
    if [ "$rc" != 0 ]; then
        say "FAILED (exit $rc); last log lines of each container:"
        dc ps || true
        for s in keeper1 keeper2 keeper3 broker1 broker2 broker3; do
            echo "----- $s"
            dc logs --no-color --tail 25 "$s" 2>&1 || true
        done
    fi
    [ -f "$work/stop" ] || touch "$work/stop"
    docker rm -f -v "$project-mk" "$project-mb" >/dev/null 2>&1 || true
    dc down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

container() { dc ps -q "$1"; }

health() {
    local id
    id="$(container "$1")"
    [ -n "$id" ] || { echo missing; return; }
    docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id"
}

# wait_healthy TIMEOUT_S SERVICE... : every service's health check passes, or fail.
wait_healthy() {
    local limit=$1
    shift
    local deadline=$((SECONDS + limit)) s pending
    while :; do
        pending=()
        for s in "$@"; do
            [ "$(health "$s")" = healthy ] || pending+=("$s")
        done
        [ "${#pending[@]}" = 0 ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "not healthy within ${limit}s: ${pending[*]}"
            return 1
        fi
        sleep 1
    done
}

# until_ok TIMEOUT_S CMD... : retries CMD until it succeeds, or fail with its last output.
until_ok() {
    local limit=$1
    shift
    local deadline=$((SECONDS + limit))
    until "$@" >"$work/last" 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "gave up after ${limit}s: $*"
            cat "$work/last"
            return 1
        fi
        sleep 1
    done
    cat "$work/last"
}

# led_by_other_than KEEPER ID: KEEPER is healthy and its leader is not keeper ID.
led_by_other_than() {
    local out
    out="$(dc exec -T "$1" strom-container health keeper)" || return 1
    echo "$out"
    ! grep -q "(leader $2)" <<<"$out"
}

passed=0
step() { say "ok: $*"; passed=$((passed + 1)); }

# Mounted properties files, as the Kafka and ZooKeeper images take them, with variables on top:
# the shipped standalone configs, a keeper and a broker sharing one network namespace.
generated() { docker cp "$1:/var/lib/strom/$2" - | tar -xO; }
docker run -d --name "$project-mk" -e ZOO_TICK_TIME=1000 \
    -v "$PWD/deploy/config/zookeeper.properties:/etc/strom/zookeeper.properties:ro" \
    "$STROM_IMAGE" strom-container keeper >/dev/null
docker run -d --name "$project-mb" --network "container:$project-mk" -e KAFKA_BROKER_ID=7 \
    -v "$PWD/deploy/config/server.properties:/etc/strom/server.properties:ro" \
    "$STROM_IMAGE" strom-container broker >/dev/null
until_ok 60 docker exec "$project-mb" strom-container health broker
generated "$project-mk" zookeeper.properties >"$work/zk.props"
generated "$project-mb" server.properties >"$work/server.props"
grep -q '^clientPort=2181' "$work/zk.props" && [ "$(grep -c '^tickTime=' "$work/zk.props")" = 2 ] \
    && [ "$(tail -n 1 "$work/zk.props")" = tickTime=1000 ] || { cat "$work/zk.props"; exit 1; }
[ "$(tail -n 1 "$work/server.props")" = broker.id=7 ] || { cat "$work/server.props"; exit 1; }
docker rm -f -v "$project-mk" "$project-mb" >/dev/null
step "mounted zookeeper.properties / server.properties with ZOO_* / KAFKA_* overrides (broker 7 registered)"

say "starting project $project (brokers on $bootstrap)"
dc up -d
wait_healthy 120 keeper1 keeper2 keeper3 broker1 broker2 broker3
step "three keepers and three brokers healthy"

for s in keeper1 broker1; do
    # The server process itself, as the host's process table sees it.
    uids="$(docker top "$(container "$s")" -o pid,uid | awk 'NR > 1 { print $2 }' | sort -u | tr '\n' ' ')"
    [ "$uids" = "1000 " ] || { say "$s runs with uid(s) '$uids', expected 1000"; exit 1; }
done
step "containers run as uid 1000"

dc exec -T broker1 kafka-topics --bootstrap-server "localhost:$STROM_BROKER1_PORT" \
    --create --topic smoke --partitions 3 --replication-factor 3
dc exec -T broker2 kafka-topics --bootstrap-server "localhost:$STROM_BROKER2_PORT" --describe --topic smoke \
    | tee "$work/describe"
grep -q "PartitionCount: *3" "$work/describe"
step "topic created and described from inside the containers (via the loopback forwards)"

client produce "$bootstrap" smoke first 300
client consume "$bootstrap" smoke first 300
step "host client produced and consumed 300 records through the published ports"

# Kill the keeper that leads the ensemble: the strongest case for the rest carrying on.
victim=""
for k in keeper1 keeper2 keeper3; do
    if dc exec -T "$k" strom-container health keeper | grep -q " is leader"; then victim=$k; fi
done
[ -n "$victim" ] || { say "no keeper reports itself leader"; exit 1; }
say "killing the keeper leader $victim"
docker kill "$(container "$victim")" >/dev/null
others=()
for k in keeper1 keeper2 keeper3; do [ "$k" = "$victim" ] || others+=("$k"); done
# A survivor is healthy again only once it follows (or is) a leader other than the victim.
until_ok 60 led_by_other_than "${others[0]}" "${victim#keeper}"
client produce "$bootstrap" smoke second 300
client consume "$bootstrap" smoke second 300
# Metadata writes need the keeper quorum: creating a topic proves the two survivors lead.
until_ok 60 dc exec -T broker3 kafka-topics --bootstrap-server "localhost:$STROM_BROKER3_PORT" \
    --create --topic after-keeper-loss --partitions 2 --replication-factor 3
client produce "$bootstrap" after-keeper-loss third 50
client consume "$bootstrap" after-keeper-loss third 50 --partitions 2
step "with $victim killed: new keeper leader, produce/consume and topic creation work"

say "bringing $victim back"
dc start "$victim"
wait_healthy 90 "$victim"
# The znode written while it was down must be readable from the returning keeper itself.
until_ok 60 dc exec -T "$victim" zookeeper-shell localhost:2181 get /brokers/topics/after-keeper-loss
wait_healthy 30 keeper1 keeper2 keeper3 broker1 broker2 broker3
step "$victim rejoined the ensemble and caught up"

if [ "${STROM_DOCKER_REPLICATION:-1}" = 1 ]; then
    isr_is() { [ "$(client isr "$bootstrap" durable 0)" = "$1" ]; }
    leader_is_not() { [ "$(client leader "$bootstrap" durable 0)" != "$1" ]; }
    lines_over() { [ "$(wc -l <"$1")" -gt "$2" ]; }

    dc exec -T broker1 kafka-topics --bootstrap-server "localhost:$STROM_BROKER1_PORT" \
        --create --topic durable --partitions 1 --replication-factor 3 --config min.insync.replicas=2
    until_ok 60 isr_is 3
    touch "$work/acked"
    client durable "$bootstrap" durable "$work/acked" "$work/stop" --min 10000 &
    producer=$!
    until_ok 30 lines_over "$work/acked" 0
    lead="$(client leader "$bootstrap" durable 0)"
    say "killing broker$lead, the leader of durable-0, under acks=all load"
    docker kill "$(container "broker$lead")" >/dev/null
    until_ok 60 leader_is_not "$lead"
    # Acknowledgements must resume under the new leader; the producer keeps going while the
    # killed broker restarts and catches up, and stops after at least 10,000 records.
    until_ok 60 lines_over "$work/acked" "$(wc -l <"$work/acked")"
    dc start "broker$lead"
    wait_healthy 90 "broker$lead"
    until_ok 90 isr_is 3
    touch "$work/stop"
    wait "$producer"
    client verify "$bootstrap" durable "$work/acked"
    step "leader broker killed under acks=all (10,000+ records): every acknowledged record read back once and in order, ISR back to 3"

    lead="$(client leader "$bootstrap" durable 0)"
    cid="$(container "broker$lead")"
    net="$(docker inspect --format '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "$cid")"
    say "cutting broker$lead (leader of durable-0) off network $net"
    rm -f "$work/stop"
    touch "$work/acked2"
    client durable "$bootstrap" durable "$work/acked2" "$work/stop" --prefix cut &
    producer=$!
    until_ok 30 lines_over "$work/acked2" 0
    docker network disconnect "$net" "$cid"
    until_ok 90 leader_is_not "$lead"
    until_ok 60 lines_over "$work/acked2" "$(wc -l <"$work/acked2")"
    docker network connect --alias "broker$lead" "$net" "$cid"
    until_ok 90 isr_is 3
    touch "$work/stop"
    wait "$producer"
    cat "$work/acked2" >>"$work/acked"
    client verify "$bootstrap" durable "$work/acked"
    wait_healthy 90 broker1 broker2 broker3
    step "partitioned leader: writes moved on, it rejoined, every acknowledged record read back"
else
    say "skipped: broker failover and network partition (STROM_DOCKER_REPLICATION=0)"
fi

echo "docker: $passed passed, 0 failed"
