#!/usr/bin/env bash
# Before/after measurement of two (or more) builds of the proxy under the same load: each
# binary in turn, ROUNDS times, on one tansu broker (memory storage), a fresh 3-partition
# topic per run, 2 s of warm-up then SECONDS measured with wrk (scripts/bench/produce.lua).
# Prints requests/s, the proxy's CPU (utime+stime) per 1,000 requests, p99 and peak RSS per
# run. Alternating the binaries spreads the machine's drift over both; CPU per request is
# the steadier figure when other work shares the cores.
#
#   scripts/bench-ab.sh ROUNDS SECONDS CONNECTIONS FORMAT BATCH BINARY...
#   cp target/release/kafka-rest-proxy /tmp/before   # ... change, build, then:
#   scripts/bench-ab.sh 3 8 64 json 1 /tmp/before target/release/kafka-rest-proxy
#
# FORMAT: json, binary, avro (not here: no registry), or v3 (BATCH records per stream).
# PROXY_ENV: extra VAR=value settings for every proxy (e.g. "KRP_KAFKA__LINGER_MS=0").
set -euo pipefail
cd "$(dirname "$0")/.."
(($# >= 6)) || { sed -n '2,15p' "$0" >&2; exit 2; }
ROUNDS=$1 SECS=$2 CONNS=$3 FORMAT=$4 BATCH=$5
shift 5
TANSU="$(scripts/install-tansu.sh)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/krp-ab.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

BROKER_PORT="$(free_port)"
(cd "$WORK" && exec "$TANSU" broker --cluster-id krp-ab --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" --storage-engine memory://tansu/ \
    >broker.log 2>&1) &
PIDS+=("$!")
wait_port "$BROKER_PORT"
VALUE='{"id":1234567,"name":"benchmark-record-abcdefghijklmnopqrstuvwxyz-0123456789-ABCDEF","amount":12.34}'
VALUE_B64="$(printf '%s' "$VALUE" | base64 -w0)"
export BENCH_FORMAT="$FORMAT" BENCH_BATCH="$BATCH" BENCH_VALUE="$VALUE" BENCH_VALUE_B64="$VALUE_B64"
HZ="$(getconf CLK_TCK)"
n=0
for round in $(seq 1 "$ROUNDS"); do
    for bin in "$@"; do
        n=$((n + 1))
        "$TANSU" topic create "ab-$n" --partitions 3 --broker "tcp://127.0.0.1:$BROKER_PORT" >/dev/null
        proxy_port="$(free_port)"
        # shellcheck disable=SC2086 # PROXY_ENV is a list of assignments
        env KRP_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$BROKER_PORT" KRP_LOG__ACCESS_LOG=false \
            KRP_LOG__LEVEL=warn KRP_METRICS__LISTEN=127.0.0.1:0 ${PROXY_ENV:-} \
            "$bin" --listen "127.0.0.1:$proxy_port" >"$WORK/proxy-$n.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        for _ in $(seq 1 100); do
            [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$proxy_port/readyz")" == 200 ]] && break
            sleep 0.2
        done
        url="http://127.0.0.1:$proxy_port/topics/ab-$n"
        [[ "$FORMAT" != v3 ]] || url="http://127.0.0.1:$proxy_port/v3/clusters/krp-ab/topics/ab-$n/records"
        wrk -t2 -c"$CONNS" -d2s -s scripts/bench/produce.lua "$url" >/dev/null
        before="$(ticks "$pid")"
        wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s scripts/bench/produce.lua "$url" >"$WORK/wrk-$n.txt"
        after="$(ticks "$pid")"
        rss="$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")"
        grep '^BENCH_RESULT ' "$WORK/wrk-$n.txt" | sed 's/^BENCH_RESULT //' |
            python3 -c '
import json, sys
r = json.load(sys.stdin)
name, rnd, cpu, rss = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
bad = sum(r[k] for k in ("non200", "record_errors", "errors_connect", "errors_read",
                         "errors_write", "errors_timeout"))
rps, recs, p99 = r["requests_per_s"], r["records_per_s"], r["p99_ms"]
per_1k = 1e6 * cpu / r["requests"]
print(f"{name} round {rnd}: {rps:9,.0f} req/s {recs:10,.0f} rec/s  CPU {per_1k:6.1f} ms/1k req"
      f"  p99 {p99:6.2f} ms  peak RSS {rss / 1024:5.1f} MiB  failed {bad}")
' "$bin" "$round" "$(awk -v t=$((after - before)) -v hz="$HZ" 'BEGIN {print t / hz}')" "$rss"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
done
