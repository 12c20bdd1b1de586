#!/usr/bin/env bash
# Builds Strom's release archive, laid out like Apache Kafka's:
#
#   strom-<version>/
#     bin/                  the programs (zookeeper-server-start, kafka-server-start, kafka-topics, ...)
#     bin/windows/*.bat     Windows launchers calling bin\<program>.exe
#     config/               zookeeper.properties, server.properties, ensemble/zookeeper-{1,2,3}.properties
#     README.md, docs/
#
# so that, unpacked, `bin/zookeeper-server-start config/zookeeper.properties` and
# `bin/kafka-server-start config/server.properties` start a keeper and a broker.
#
#   deploy/dist.sh                       # -> target/dist/strom-<version>-<target>.tar.gz
#   STROM_SKIP_CARGO=1 deploy/dist.sh    # package target/release as it is
#   STROM_DIST_DIR=/some/dir deploy/dist.sh
#   STROM_PROFILE=debug deploy/dist.sh   # debug programs: for tests that check the layout
#
# On Windows (Git Bash) the same script packages the .exe programs.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
profile="${STROM_PROFILE:-release}"
case "$profile" in
    release) cargo_profile=(--release) ;;
    debug) cargo_profile=() ;;
    *) echo "dist: STROM_PROFILE must be release or debug, not '$profile'" >&2; exit 1 ;;
esac
release="${CARGO_TARGET_DIR:-$root/target}/$profile"
out="${STROM_DIST_DIR:-$root/target/dist}"

programs=(
    zookeeper-server-start
    zookeeper-shell
    kafka-server-start
    kafka-topics
    kafka-leader-election
    kafka-console-producer
    kafka-console-consumer
    kafka-producer-perf-test
    kafka-consumer-perf-test
    keeper-bench
    strom
)

version="$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml")"
[ -n "$version" ] || { echo "dist: no [workspace.package] version in Cargo.toml" >&2; exit 1; }
triple="$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')"
triple="${triple:-unknown}"

if [ "${STROM_SKIP_CARGO:-0}" != 1 ]; then
    cargo build ${cargo_profile[@]+"${cargo_profile[@]}"} -j"${CARGO_BUILD_JOBS:-2}" -p strom-cli --bins \
        --manifest-path "$root/Cargo.toml"
fi

exe=""
[ -f "$release/kafka-topics.exe" ] && exe=".exe"

name="strom-$version"
stage="$(mktemp -d "${TMPDIR:-/tmp}/strom-dist.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
dir="$stage/$name"
mkdir -p "$dir/bin/windows" "$dir/config/ensemble" "$dir/docs"

for p in "${programs[@]}"; do
    src="$release/$p$exe"
    [ -f "$src" ] || { echo "dist: $src is missing (build with: cargo build ${cargo_profile[*]+"${cargo_profile[*]}"} -p strom-cli)" >&2; exit 1; }
    if [ -z "$exe" ] && command -v objcopy >/dev/null 2>&1; then
        objcopy --strip-debug "$src" "$dir/bin/$p"
    else
        cp "$src" "$dir/bin/$p$exe"
    fi
done
cp "$root"/deploy/windows/*.bat "$dir/bin/windows/"
cp "$root/deploy/config/zookeeper.properties" "$root/deploy/config/server.properties" "$dir/config/"
cp "$root"/deploy/config/ensemble/*.properties "$dir/config/ensemble/"
cp "$root/README.md" "$dir/"
for f in LICENSE LICENSE-APACHE NOTICE; do
    [ -f "$root/$f" ] && cp "$root/$f" "$dir/"
done
cp "$root"/docs/*.md "$dir/docs/"

mkdir -p "$out"
archive="$out/$name-$triple.tar.gz"
tar -C "$stage" -czf "$archive" "$name"
echo "built $archive ($(($(wc -c <"$archive") / 1024 / 1024)) MiB)"
