#!/usr/bin/env bash
# Builds the container image (Dockerfile) with podman and checks it as an operator would,
# on a machine with no Docker engine and no container registry: the base images the
# Dockerfile names are made here from Debian's packages (debootstrap) and this machine's
# Rust toolchain, then tagged with the Dockerfile's pinned names.
#
#   scripts/image-check.sh          # as root; minutes (a first build ~10+ min on 2 cores)
#
# Checks: the image builds; its runtime holds no shell, package manager or setuid binary;
# it starts against a tansu broker with the production settings pointed at a plaintext
# broker by environment variables alone; it runs as uid 10001 with no capabilities; its own
# HEALTHCHECK passes on a non-default port; a produce gets offsets; SIGTERM with a produce in
# flight answers that produce and exits 0. Prints the build time and the image size.
#
# On demand, not in CI (.ci/run, scripts/test.sh): it needs root and takes minutes. The image
# (kafka-rest-proxy:check), the local base images and the build's cache mounts stay for the
# next run: `podman rmi kafka-rest-proxy:check` and `podman system reset` remove them.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "image-check: $*" >&2; }
fail() {
    log "FAILED: $*"
    exit 1
}

[[ "$(id -u)" == 0 ]] || fail "run as root: podman builds rootful here and debootstrap needs root"

# The packages, from Debian, when missing. runc rather than crun: crun refuses a hybrid
# cgroup v1/v2 host ("cgroups in hybrid mode not supported"), which this sandbox is.
missing=()
for tool in podman runc debootstrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/krp-image.XXXXXX")"
CONTAINER="krp-image-check-$$"
PIDS=()
cleanup() {
    podman rm -f "$CONTAINER" >/dev/null 2>&1 || true
    for pid in "${PIDS[@]}"; do
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# podman's settings for this sandbox, for the build's RUN steps and the checked container:
# - the runtime may not raise rlimits (no CAP_SYS_RESOURCE) and podman's defaults (nofile
#   1048576, nproc 4194304) are above the hard limits, so the container fails to start with
#   "setrlimit ... operation not permitted"; `--ulimit host` fails the same way. Limits at or
#   below the hard limits work (nproc above 32768 does not, here).
# - no bridge network (netavark finds no firewall tooling): the host's, which also lets the
#   build download crates and Debian packages and the container reach tansu on loopback.
# - cgroupfs and file events: no systemd.
NOFILE="$(ulimit -Hn)"
cat >"$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=4096:4096"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$WORK/containers.conf"

# The Dockerfile's pinned base images.
RUST_IMAGE="$(sed -n 's/^ARG RUST_IMAGE=//p' Dockerfile)"
DEBIAN_IMAGE="$(sed -n 's/^ARG DEBIAN_IMAGE=//p' Dockerfile)"
RUST_VERSION="${RUST_IMAGE##*:}"
RUST_VERSION="${RUST_VERSION%%-*}"
SUITE="${RUST_IMAGE##*-}"

# A Debian root file system from the archive, as the official images are made (minbase is
# the slim variant's package set), without the downloaded .debs and package lists.
debootstrap_rootfs() {
    local dir="$1" include="${2:-}"
    debootstrap --variant=minbase ${include:+--include="$include"} "$SUITE" "$dir" \
        http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 ||
        fail "debootstrap (see $WORK/debootstrap.log)"
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
}

if ! podman image exists "$DEBIAN_IMAGE"; then
    log "making $DEBIAN_IMAGE with debootstrap"
    debootstrap_rootfs "$WORK/debian"
    tar -C "$WORK/debian" -c . |
        podman import --change 'CMD ["bash"]' - "$DEBIAN_IMAGE" >/dev/null
    log "$DEBIAN_IMAGE is Debian $(cat "$WORK/debian/etc/debian_version") (the tag names the pinned point release)"
    rm -rf "$WORK/debian"
fi

# The official rust image's layout and environment: rustup in /usr/local/cargo/bin, the
# toolchain under /usr/local/rustup, on a Debian with a C toolchain's prerequisites (the
# Dockerfile installs the rest). The toolchain is this machine's (static.rust-lang.org is
# not reachable here): its docs left out, as the image's minimal profile does.
if ! podman image exists "$RUST_IMAGE"; then
    sysroot="$(rustup run "$RUST_VERSION" rustc --print sysroot 2>/dev/null)" ||
        fail "the Dockerfile pins Rust $RUST_VERSION: rustup toolchain install $RUST_VERSION"
    log "making $RUST_IMAGE with debootstrap and the toolchain in $sysroot"
    root="$WORK/rust"
    debootstrap_rootfs "$root" ca-certificates,curl,gcc,libc6-dev,make
    toolchain="$root/usr/local/rustup/toolchains/$RUST_VERSION-x86_64-unknown-linux-gnu"
    mkdir -p "$toolchain" "$root/usr/local/cargo/bin"
    tar -C "$sysroot" --exclude=./share/doc -c . | tar -C "$toolchain" -x
    install -m 0755 "$(command -v rustup)" "$root/usr/local/cargo/bin/rustup"
    for proxy in cargo rustc rustdoc; do
        ln -s rustup "$root/usr/local/cargo/bin/$proxy"
    done
    printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' \
        "$RUST_VERSION-x86_64-unknown-linux-gnu" >"$root/usr/local/rustup/settings.toml"
    # The CAs this machine adds to Debian's (a TLS-inspecting egress proxy's, which signs
    # what cargo downloads from crates.io), for the build stage only: the runtime's bundle
    # stays Debian's.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null
    fi
    tar -C "$root" -c . | podman import \
        --change "ENV RUSTUP_HOME=/usr/local/rustup" \
        --change "ENV CARGO_HOME=/usr/local/cargo" \
        --change "ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV RUST_VERSION=$RUST_VERSION" \
        --change 'CMD ["bash"]' - "$RUST_IMAGE" >/dev/null
    rm -rf "$root"
fi

IMAGE=localhost/kafka-rest-proxy:check
log "building $IMAGE"
started=$(date +%s)
# --format docker keeps the HEALTHCHECK (the OCI format has none); --pull=never uses the
# local base images.
podman build --format docker --pull=never --network host -t "$IMAGE" \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" . >"$WORK/build.log" 2>&1 ||
    {
        tail -40 "$WORK/build.log" >&2
        fail "podman build"
    }
BUILD_S=$(($(date +%s) - started))
SIZE_BYTES="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
SIZE_MB="$(awk -v b="$SIZE_BYTES" 'BEGIN { printf "%.1f", b / 1e6 }')"
log "built in $BUILD_S s; image $SIZE_MB MB"

log "the runtime's files: no shell, package manager or setuid binary"
podman create --name "$CONTAINER-files" "$IMAGE" >/dev/null
podman export "$CONTAINER-files" | tar -tv >"$WORK/files"
podman rm "$CONTAINER-files" >/dev/null
for unwanted in bin/sh bin/bash bin/dash usr/bin/perl usr/bin/apt usr/bin/dpkg; do
    if grep -qE "[ /]$unwanted( |$)" "$WORK/files"; then
        fail "the image holds $unwanted"
    fi
done
if awk '$1 ~ /^-..[sS]|^-.....[sS]/' "$WORK/files" | grep -q .; then
    fail "the image holds setuid/setgid files: $(awk '$1 ~ /^-..[sS]|^-.....[sS]/' "$WORK/files")"
fi
log "$(wc -l <"$WORK/files") entries, e.g. $(awk '$1 ~ /^-/ {print $NF}' "$WORK/files" | head -8 | tr '\n' ' ')"

# shellcheck source=scripts/lib.sh
source scripts/lib.sh
TANSU="$(scripts/install-tansu.sh)"
BROKER_PORT="$(free_port)"
mkdir -p "$WORK/tansu"
(cd "$WORK/tansu" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --storage-engine memory://tansu/ >broker.log 2>&1) &
TANSU_PID=$!
PIDS+=("$TANSU_PID")
wait_port "$BROKER_PORT"
"$TANSU" topic create image-check --partitions 1 --broker "tcp://127.0.0.1:$BROKER_PORT" >/dev/null

# The image's production settings (SASL_SSL, SCRAM, authentication on) pointed at a
# plaintext broker with variables only, sasl_mechanism cleared by an empty value; the API
# on a port other than 8082, which the HEALTHCHECK must follow.
API_KEY="image-check-key-$$"
POLICY="$(printf '[[api_keys]]\nprincipal = "image-check"\nsha256 = "%s"\n[[grants]]\nprincipals = ["api_key:image-check"]\ntopics = ["image-check"]\noperations = ["produce"]\n' \
    "$(printf %s "$API_KEY" | sha256sum | cut -d' ' -f1)")"
PORT="$(free_port)"
METRICS_PORT="$(free_port)"
log "running it against tansu on $BROKER_PORT, listening on $PORT"
podman run -d --name "$CONTAINER" \
    -e KRP_SERVER__LISTEN="0.0.0.0:$PORT" \
    -e KRP_METRICS__LISTEN="127.0.0.1:$METRICS_PORT" \
    -e KRP_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$BROKER_PORT" \
    -e KRP_KAFKA__SECURITY_PROTOCOL=PLAINTEXT \
    -e KRP_KAFKA__SASL_MECHANISM= \
    -e KRP_AUTH__POLICY="$POLICY" \
    "$IMAGE" >/dev/null 2>"$WORK/run.err" || {
    cat "$WORK/run.err" >&2
    fail "podman run"
}

# Its own health check, as the engine runs it (podman runs it through systemd timers, absent
# here, so the check is run by hand): unhealthy until the listener is up, then healthy.
healthy=
for _ in $(seq 1 60); do
    if podman healthcheck run "$CONTAINER" >/dev/null 2>&1; then
        healthy=yes
        break
    fi
    [[ "$(podman inspect --format '{{.State.Running}}' "$CONTAINER")" == true ]] || break
    sleep 0.5
done
[[ -n "$healthy" ]] || {
    podman logs "$CONTAINER" 2>&1 | tail -20 >&2
    fail "the image's HEALTHCHECK never passed on port $PORT"
}
log "its HEALTHCHECK passes on port $PORT"

pid="$(podman inspect --format '{{.State.Pid}}' "$CONTAINER")"
uid="$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")"
caps="$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")"
[[ "$uid" == 10001 ]] || fail "runs as uid $uid"
[[ "$caps" =~ ^0+$ ]] || fail "runs with capabilities $caps"
log "runs as uid $uid, effective capabilities $caps"

produce() {
    curl -sS --max-time 30 -o "$1" -w '%{http_code}' -X POST \
        -H 'Content-Type: application/vnd.kafka.json.v2+json' -H "X-API-Key: $API_KEY" \
        --data '{"records":[{"value":{"check":"image"}}]}' \
        "http://127.0.0.1:$PORT/topics/image-check"
}
status="$(produce "$WORK/first.json")"
if [[ "$status" != 200 ]] || ! grep -q '"offset"' "$WORK/first.json"; then
    fail "produce answered $status: $(cat "$WORK/first.json")"
fi
log "a produce gets offsets: $(cat "$WORK/first.json")"

# A produce held in flight by a paused broker, then SIGTERM: the service must answer it
# (the broker resumes within the drain) and exit 0.
kill -STOP "$TANSU_PID"
produce "$WORK/second.json" >"$WORK/second.status" &
CURL_PID=$!
in_flight=
for _ in $(seq 1 100); do
    if curl -s "http://127.0.0.1:$METRICS_PORT/metrics" |
        grep -qE '^kafka_rest_http_requests_in_flight [1-9]'; then
        in_flight=yes
        break
    fi
    sleep 0.1
done
[[ -n "$in_flight" ]] || fail "the second produce never was in flight"
podman kill --signal TERM "$CONTAINER" >/dev/null
sleep 1
kill -CONT "$TANSU_PID"
wait "$CURL_PID" || true
exit_code="$(timeout 40 podman wait "$CONTAINER")" || fail "still running 40 s after SIGTERM"
status="$(cat "$WORK/second.status")"
if [[ "$status" != 200 ]] || ! grep -q '"offset"' "$WORK/second.json"; then
    fail "the produce in flight at SIGTERM answered $status: $(cat "$WORK/second.json")"
fi
[[ "$exit_code" == 0 ]] || {
    podman logs "$CONTAINER" 2>&1 | tail -20 >&2
    fail "exit status $exit_code after SIGTERM"
}
log "SIGTERM with a produce in flight: answered $(cat "$WORK/second.json"), exit 0"

echo "image-check: passed; build ${BUILD_S} s, image ${SIZE_MB} MB ($SIZE_BYTES bytes, uncompressed)"
