#!/usr/bin/env bash
# Soak run (issue 15, on demand): steady load at about half the measured maximum, with
# authentication on (an API key on every request), for SOAK_MINUTES; samples the proxy's
# resident memory, peak memory, open file descriptors, throughput and p99 each minute, and
# fails on any refused request or on memory or descriptors that keep growing.
#
#   scripts/soak.sh                       # 30 minutes
#   SOAK_MINUTES=5 scripts/soak.sh        # a shorter look
#
# Environment:
#   SOAK_MINUTES       minutes of steady load (default 30)
#   SOAK_RATE          requests/s to hold (default: half of the maximum measured first, in a
#                      10 s run at SOAK_CONNECTIONS, capped by SOAK_MAX_RATE)
#   SOAK_MAX_RATE      cap of the measured half (default 20000): the broker keeps every
#                      record in memory (tansu memory storage), ~100 bytes x rate x seconds
#   SOAK_CONNECTIONS   wrk connections (default 64)
#   SOAK_OUT           results file (default target/soak/results.md)
#
# Growth rule: after a warm-up (the first SOAK_WARMUP_MINUTES, default 3, while caches,
# pools and allocator arenas fill), the resident memory of the last minute may exceed the
# warm-up's last sample by at most 10% (and 8 MiB), and the descriptors by at most 4.
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${SOAK_MINUTES:-30}"
CONNECTIONS="${SOAK_CONNECTIONS:-64}"
MAX_RATE="${SOAK_MAX_RATE:-20000}"
WARMUP_MINUTES="${SOAK_WARMUP_MINUTES:-3}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="${SOAK_OUT:-$TARGET_DIR/soak/results.md}"
LUA="scripts/bench/produce.lua"
API_KEY="soak-partner-key-0123456789"
VALUE='{"id":1234567,"name":"soak-record-abcdefghijklmnopqrstuvwxyz-0123456789-ABCDEFGHIJKLMN","amount":12.34}'

scripts/install-test-tools.sh
TANSU="$(scripts/install-tansu.sh)"
cargo build --release --bins >&2

WORK="$(mktemp -d "${TMPDIR:-/tmp}/krp-soak.XXXXXX")"
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ $rc -ne 0 ]]; then echo "soak: work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
log() { echo "soak: $*" >&2; }
die() { echo "soak: FAILED: $*" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }

BROKER_PORT="$(free_port)"
mkdir -p "$WORK/tansu"
(cd "$WORK/tansu" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --storage-engine memory://tansu/ >broker.log 2>&1) &
BROKER_PID=$!
PIDS+=("$BROKER_PID")
wait_port "$BROKER_PORT"
"$TANSU" topic create soak --partitions 3 --broker "tcp://127.0.0.1:$BROKER_PORT" >/dev/null

# Authentication on: one partner with an API key (stored as its SHA-256) and a grant.
cat >"$WORK/policy.toml" <<TOML
[[api_keys]]
principal = "soak"
sha256 = "$(printf '%s' "$API_KEY" | sha256sum | cut -d' ' -f1)"

[[grants]]
principals = ["api_key:soak"]
topics = ["soak"]
operations = ["produce"]
TOML
PROXY_PORT="$(free_port)"
KRP_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$BROKER_PORT" KRP_LOG__ACCESS_LOG=false KRP_LOG__LEVEL=warn \
    KRP_METRICS__LISTEN=127.0.0.1:0 KRP_AUTH__ENABLED=true KRP_AUTH__POLICY_FILE="$WORK/policy.toml" \
    "$TARGET_DIR/release/kafka-rest-proxy" --listen "127.0.0.1:$PROXY_PORT" >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_port "$PROXY_PORT"
for _ in $(seq 1 100); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PROXY_PORT/readyz")" == 200 ]] && break
    sleep 0.2
done
URL="http://127.0.0.1:$PROXY_PORT/topics/soak"
unauth="$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL" \
    -H 'Content-Type: application/vnd.kafka.json.v2+json' -d '{"records":[{"value":1}]}')"
[[ "$unauth" == 401 ]] || die "authentication is not on: a request without a key got $unauth"

export BENCH_FORMAT=json BENCH_BATCH=1 BENCH_VALUE="$VALUE" BENCH_LABEL=soak \
    BENCH_THREADS=2 BENCH_HEADER="X-API-Key: $API_KEY"
# run_wrk SECONDS [RATE] > result json
run_wrk() {
    local out="$WORK/wrk-$RANDOM.txt"
    BENCH_RATE="${2:-}" wrk -t2 -c"$CONNECTIONS" -d"$1s" --timeout 30s --latency -s "$LUA" "$URL" \
        >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
    local line
    line="$(grep '^BENCH_RESULT ' "$out" | sed 's/^BENCH_RESULT //')" || die "no wrk result: $(cat "$out")"
    local bad
    bad="$(jq '.non200 + .record_errors + .errors_connect + .errors_read + .errors_write + .errors_timeout + .errors_status' <<<"$line")"
    [[ "$bad" == 0 ]] || die "$bad failed requests: $(jq -r .first_failure <<<"$line")"
    echo "$line"
}

if [[ -n "${SOAK_RATE:-}" ]]; then
    RATE="$SOAK_RATE"
    log "holding $RATE requests/s (SOAK_RATE)"
else
    MAX="$(run_wrk 10 | jq -r '.requests_per_s | floor')"
    RATE=$((MAX / 2))
    ((RATE <= MAX_RATE)) || RATE="$MAX_RATE"
    log "maximum ~$MAX requests/s with an API key at c=$CONNECTIONS; holding $RATE requests/s"
fi

mkdir -p "$(dirname "$OUT")"
SAMPLES="$WORK/samples.jsonl"
: >"$SAMPLES"
STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
for minute in $(seq 1 "$MINUTES"); do
    line="$(run_wrk 60 "$RATE")"
    jq -c --argjson minute "$minute" --argjson rss "$(kib "$PROXY_PID" VmRSS)" \
        --argjson hwm "$(kib "$PROXY_PID" VmHWM)" --argjson fds "$(fds "$PROXY_PID")" \
        --argjson broker_rss "$(kib "$BROKER_PID" VmRSS)" \
        '{minute: $minute, requests_per_s, p50_ms, p99_ms, max_ms, rss_kib: $rss, hwm_kib: $hwm,
          fds: $fds, broker_rss_kib: $broker_rss}' <<<"$line" | tee -a "$SAMPLES" >&2
done

status=0
python3 - "$SAMPLES" "$RATE" "$MINUTES" "$WARMUP_MINUTES" "$STARTED" "$(git rev-parse --short HEAD)" >"$OUT" <<'PY' || status=$?
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rate, minutes, warmup, started, commit = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
print(f"## Soak run, {started} (commit {commit})\n")
print(f"{minutes} minutes at {rate} requests/s (1-record json, an API key on every request), "
      f"tansu memory storage; one sample per minute.\n")
print("| minute | requests/s | p50 ms | p99 ms | max ms | RSS MiB | peak RSS MiB | fds | broker RSS MiB |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['minute']} | {r['requests_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
          f"{r['max_ms']:.1f} | {r['rss_kib']/1024:.1f} | {r['hwm_kib']/1024:.1f} | {r['fds']} | "
          f"{r['broker_rss_kib']/1024:.0f} |")
base = rows[min(warmup, len(rows)) - 1]
last = rows[-1]
growth = last["rss_kib"] - base["rss_kib"]
rss_ok = growth <= max(base["rss_kib"] * 0.10, 8 * 1024)
fds_ok = last["fds"] - base["fds"] <= 4
print(f"\n- resident memory after the {warmup}-minute warm-up {base['rss_kib']/1024:.1f} MiB, at the end "
      f"{last['rss_kib']/1024:.1f} MiB ({growth/1024:+.1f} MiB): {'PASS' if rss_ok else 'FAIL'}")
print(f"- open descriptors after the warm-up {base['fds']}, at the end {last['fds']}: "
      f"{'PASS' if fds_ok else 'FAIL'}")
print(f"- peak RSS over the run {max(r['hwm_kib'] for r in rows)/1024:.1f} MiB; p99 per minute "
      f"{min(r['p99_ms'] for r in rows):.2f}-{max(r['p99_ms'] for r in rows):.2f} ms; "
      f"every request answered 200")
sys.exit(0 if rss_ok and fds_ok else 1)
PY
cat "$OUT"
log "results written to $OUT"
exit "$status"
