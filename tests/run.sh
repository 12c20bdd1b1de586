#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (keeper ensembles, broker, storage),
# then the real-client suites (kafka-python, confluent-kafka, kcat, the tutorial flow) against
# the built binaries. Installs the Python packages and kcat it needs when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

if ! python3 -c 'import kafka, confluent_kafka, pytest, snappy, lz4, zstandard' 2>/dev/null; then
    python3 -m pip install -q -r tests/compat/requirements.txt
fi
if ! command -v kcat >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat) >/dev/null
    else
        echo "kcat is not installed (apt-get install kcat); its suite will fail" >&2
    fi
fi

cargo build -j2 --workspace --bins
cargo test -j2 --workspace
STROM_BIN="$PWD/target/debug" python3 -m pytest -c tests/pytest.ini --rootdir tests tests --ignore tests/cluster "$@"
# Replication and failover on three keepers + three brokers (docs/replication.md), in a run of
# its own: each module starts its own six-process cluster.
STROM_BIN="$PWD/target/debug" python3 -m pytest -c tests/pytest.ini --rootdir tests tests/cluster

# Release archive and the docker-compose cluster, packed from the debug programs built above
# (a release build takes too long on a small CI machine). The compose suite skips itself,
# saying why, when no Docker engine answers.
STROM_PROFILE=debug bash tests/docker/test_dist.sh
STROM_PROFILE=debug bash tests/docker/test_compose.sh
