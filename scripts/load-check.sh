#!/usr/bin/env bash
# Load check (issue 5): offer the proxy about 10x what the broker accepts and show that
# memory stays bounded and the excess is refused (429 by a rate limit, 503 when the
# producer queue or the in-flight budget is full) instead of queued without bound.
#
#   scripts/load-check.sh            # LOAD_SECONDS=30 per phase
#
# 1. Starts tansu on sqlite storage (a slow, durable broker) and measures what it accepts:
#    examples/direct_producer, 100-record batches, 16 in flight, 10 s.
# 2. Phase "shed": the proxy with its default guard rails and a small producer queue
#    (kafka.librdkafka."queue.buffering.max.messages" = 20000) and 512 requests in flight,
#    offered 10x that rate in 100-record requests (wrk, paced, 2000 connections).
# 3. Phase "rate limit": the same, with a global rate limit at the broker's rate.
# Prints, per phase: offered and achieved records/s, answers by status, the share of
# 429/503, and the proxy's peak RSS (VmHWM).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_PHASE="${LOAD_SECONDS:-30}"
# A closed-loop client cannot offer more than its connections allow once latency grows,
# so the offered load needs many connections (and file descriptors).
CONNECTIONS="${LOAD_CONNECTIONS:-2000}"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

scripts/install-test-tools.sh
TANSU="$(scripts/install-tansu.sh)"
cargo build --release --examples --bins >&2

WORK="$(mktemp -d "${TMPDIR:-/tmp}/krp-load.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
log() { echo "load-check: $*" >&2; }

# shellcheck source=scripts/lib.sh
source scripts/lib.sh
peak_rss_mib() { awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

BROKER_PORT="$(free_port)"
mkdir -p "$WORK/tansu"
(cd "$WORK/tansu" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --storage-engine sqlite://broker.db >broker.log 2>&1) &
PIDS+=($!)
wait_port "$BROKER_PORT"
topic() {
    "$TANSU" topic create "$1" --partitions 3 --broker "tcp://127.0.0.1:$BROKER_PORT" >/dev/null
}

topic capacity
log "measuring what the broker accepts (direct producer, 10 s)"
CAPACITY="$("$TARGET_DIR/release/examples/direct_producer" --bootstrap "127.0.0.1:$BROKER_PORT" \
    --topic capacity --seconds 10 --in-flight 16 --batch 100 | jq -r '.records_per_s | floor')"
OFFERED=$((CAPACITY * 10))
RATE=$((OFFERED / 100))
log "broker accepts ~$CAPACITY records/s; offering $OFFERED records/s ($RATE requests/s of 100)"

VALUE='{"id":1234567,"name":"load-check-record-abcdefghijklmnopqrstuvwxyz-0123456789-ABCDEFGHIJ","amount":12.34}'
printf '| phase | target rec/s | sent rec/s | written rec/s | 200 | 429 | 503 | other | refused share | peak RSS MiB |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'

# phase NAME [EXTRA TOML]: one proxy with the guard rails' defaults, a 20,000-message
# producer queue and EXTRA settings, under the offered load.
phase() {
    local name="$1" extra="${2:-}"
    local port
    port="$(free_port)"
    topic "load-$name"
    cat >"$WORK/$name.toml" <<TOML
[kafka]
bootstrap_servers = "127.0.0.1:$BROKER_PORT"
[kafka.librdkafka]
"queue.buffering.max.messages" = "20000"
[log]
access_log = false
level = "error"
[metrics]
listen = "127.0.0.1:0"
[limits]
max_in_flight_requests = 512
$extra
TOML
    env -i PATH="$PATH" "$TARGET_DIR/release/kafka-rest-proxy" --config "$WORK/$name.toml" \
        --listen "127.0.0.1:$port" >"$WORK/proxy-$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_port "$port"
    BENCH_FORMAT=json BENCH_BATCH=100 BENCH_VALUE="$VALUE" BENCH_LABEL="$name" \
        BENCH_RATE="$RATE" BENCH_THREADS=2 \
        wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_PHASE}s" --timeout 30s \
        -s scripts/bench/produce.lua "http://127.0.0.1:$port/topics/load-$name" >"$WORK/wrk-$name.txt" 2>&1
    local result
    result="$(grep '^BENCH_RESULT ' "$WORK/wrk-$name.txt" | sed 's/^BENCH_RESULT //')"
    local rss
    rss="$(peak_rss_mib "$pid")"
    kill "$pid"
    echo "$result" | jq -r --arg name "$name" --arg rss "$rss" --argjson offered "$OFFERED" '
        (.status_200 + .status_429 + .status_503 + .status_other) as $all
        | "| \($name) | \($offered) | \($all * 100 / .duration_s | floor) | \(.status_200 * 100 / .duration_s | floor) | \(.status_200) | \(.status_429) | \(.status_503) | \(.status_other) | \(if $all > 0 then ((.status_429 + .status_503) * 1000 / $all | floor) / 10 else 0 end)% | \($rss) |"'
}

phase shed
phase rate-limit "[limits.rate.global]
records_per_second = $CAPACITY
records_burst = $((CAPACITY > 1000 ? CAPACITY : 1000))"
log "done: $(date -u +%FT%TZ), $(nproc) cores"
