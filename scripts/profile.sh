#!/usr/bin/env bash
# Profiles the proxy's produce path with perf: tansu on memory storage, the release
# binary, wrk for 10 s with `perf record -g` attached, then the top symbols.
#
#   scripts/profile.sh                   # json, 1 record, 256 connections
#   BATCH=100 CONNS=64 scripts/profile.sh
#
# The "perf harness" figures in BENCHMARKS.md and the commit messages come from this.
set -euo pipefail
cd "$(dirname "$0")/.."
TANSU="$(scripts/install-tansu.sh)"
cargo build --release --bins >&2
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
WORK="$(mktemp -d)"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
BP="$(free_port)"
(cd "$WORK" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$BP" \
    --advertised-listener-url "tcp://127.0.0.1:$BP" --storage-engine memory://tansu/ >broker.log 2>&1) &
PIDS+=($!)
wait_port "$BP"
"$TANSU" topic create prof --partitions 3 --broker "tcp://127.0.0.1:$BP" >/dev/null
PP="$(free_port)"
env -i PATH="$PATH" KRP_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$BP" KRP_LOG__ACCESS_LOG=false \
    KRP_METRICS__LISTEN=127.0.0.1:0 \
    KRP_LOG__LEVEL=warn target/release/kafka-rest-proxy --listen "127.0.0.1:$PP" >"$WORK/proxy.log" 2>&1 &
PID=$!
PIDS+=("$PID")
wait_port "$PP"
export BENCH_FORMAT=json BENCH_BATCH="${BATCH:-1}" BENCH_THREADS=2
URL="http://127.0.0.1:$PP/topics/prof"
wrk -t2 -c"${CONNS:-256}" -d2s -s scripts/bench/produce.lua "$URL" >/dev/null
perf record -F 999 -g -p "$PID" -o "$WORK/perf.data" -- sleep 10 >/dev/null 2>&1 &
PERF=$!
wrk -t2 -c"${CONNS:-256}" -d10s -s scripts/bench/produce.lua "$URL" | grep -E "Requests/sec"
wait "$PERF" || true
perf report -i "$WORK/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -5
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | cut -c1-140 | head -"${TOP:-40}"
