#!/usr/bin/env bash
# Builds Strom's release programs and the FROM-scratch container image.
#
#   deploy/build-image.sh              # builds target/release/* and the image strom:latest
#   STROM_IMAGE=strom:dev deploy/build-image.sh
#   STROM_SKIP_CARGO=1 deploy/build-image.sh   # reuse target/release as it is
#   STROM_PROFILE=debug deploy/build-image.sh  # debug programs (bigger, slower, but no
#                                              # release build: for CI runs that test the
#                                              # image, not its speed)
#
# The image holds the programs (debug info stripped) and, for a dynamically linked build,
# every shared library `ldd` lists plus the dynamic loader, copied to the same paths they
# have here, so the programs run exactly as on this machine. Nothing host-specific is in the
# Dockerfile: this script stages a build context and the Dockerfile copies from it.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
image="${STROM_IMAGE:-strom:latest}"
profile="${STROM_PROFILE:-release}"
case "$profile" in
    release) cargo_profile=(--release) ;;
    debug) cargo_profile=() ;;
    *) echo "build-image: STROM_PROFILE must be release or debug, not '$profile'" >&2; exit 1 ;;
esac
bins="${CARGO_TARGET_DIR:-$root/target}/$profile"

# The programs the image carries: the entrypoint, the launchers and the everyday tools.
programs=(
    strom-container
    zookeeper-server-start
    kafka-server-start
    zookeeper-shell
    kafka-topics
    kafka-leader-election
    kafka-console-producer
    kafka-console-consumer
    kafka-producer-perf-test
    kafka-consumer-perf-test
)

if [ "${STROM_SKIP_CARGO:-0}" != 1 ]; then
    cargo build ${cargo_profile[@]+"${cargo_profile[@]}"} -j"${CARGO_BUILD_JOBS:-2}" -p strom-cli --bins --manifest-path "$root/Cargo.toml"
fi

ctx="$(mktemp -d "${TMPDIR:-/tmp}/strom-image.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
rootfs="$ctx/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/tmp" "$ctx/data/keeper" "$ctx/data/kafka-logs"
chmod 1777 "$rootfs/tmp"

libs=()
for p in "${programs[@]}"; do
    bin="$bins/$p"
    [ -x "$bin" ] || { echo "build-image: $bin is missing (build with: cargo build ${cargo_profile[*]+"${cargo_profile[*]}"} -p strom-cli)" >&2; exit 1; }
    # Debug info is most of each file; symbols stay so panics still name functions.
    objcopy --strip-debug "$bin" "$rootfs/usr/local/bin/$p"
    # `ldd` prints "name => /path (addr)" for libraries and "/path (addr)" for the loader;
    # a static binary prints "not a dynamic executable" and exits non-zero.
    while read -r lib; do
        libs+=("$lib")
    done < <( (ldd "$bin" 2>/dev/null || true) | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }')
done

for lib in $(printf '%s\n' "${libs[@]}" | sort -u); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done

cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
strom:x:1000:1000:Strom:/var/lib/strom:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
strom:x:1000:
nogroup:x:65534:
EOF
# Without this file glibc asks DNS before /etc/hosts; containers need hosts first.
cat >"$rootfs/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF

cp "$root/deploy/Dockerfile" "$ctx/Dockerfile"

# The legacy builder does everything this Dockerfile needs; use it where buildx is absent.
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
docker build --quiet --tag "$image" "$ctx" >/dev/null
size="$(docker image inspect --format '{{.Size}}' "$image")"
echo "built $image ($profile): $((size / 1024 / 1024)) MiB ($size bytes), ${#programs[@]} programs, $(printf '%s\n' "${libs[@]}" | sort -u | wc -l) shared libraries"
