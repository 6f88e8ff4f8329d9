#!/usr/bin/env bash
# The chaos run (issue 15): proof that no acknowledged record is lost while the service and
# the broker fail. On loopback only:
#
# 1. a tansu broker on sqlite storage (so that one killed restarts on the same data), a
#    topic, and the service's binary in front of it, with a short delivery timeout;
# 2. the load client (scripts/chaos/load.py): API v2 json requests of records with unique
#    ids, a few connections, paced; it logs every id acknowledged (a 2xx whose offsets entry
#    for the record has no error) and what happened to every other one;
# 3. meanwhile, in cycles with steady load between them:
#      proxy_sigterm   SIGTERM to the service (it must finish in-flight requests and exit
#                      0), then start it again on the same port;
#      broker_sigkill  SIGKILL to the broker, then start it again on the same storage;
#      broker_sigstop  SIGSTOP to the broker for longer than the delivery timeout, then
#                      SIGCONT;
#      tansu_restart   not a fault of ours: tansu panics after each pause (see
#                      check_broker), and the broker and the service are restarted;
# 4. the load stops, the service gets SIGTERM, and scripts/chaos/report.py reads the whole
#    topic back with an independent consumer and reports: ids acknowledged, found,
#    acknowledged but missing (must be 0), misplaced (not at the partition and offset the
#    answer gave), acknowledged with offset -1 (written, offset unknown), duplicates (and of
#    acknowledged ids), records written although their answer was an error, requests by
#    status, connection errors, each cycle with the answers after it and the time to the
#    next acknowledgement.
#    A few lines for people, then one JSON line, on stdout; progress goes to stderr.
#
# Exits 1 when an acknowledged record is missing or misplaced, or the service crashed or
# did not exit 0 on SIGTERM.
#
#   scripts/chaos.sh                        # the long run: 10 minutes
#   CHAOS_SECONDS=50 scripts/chaos.sh       # the short run (tests/api/chaos.rs)
#
# Settings (environment):
#   CHAOS_SECONDS        load and cycles last this long (600)
#   CHAOS_MAX_REQUESTS   the load client sends at most this many requests (100000)
#   CHAOS_RATE           requests/s over all connections (100)
#   CHAOS_CONNECTIONS    keep-alive connections (4)
#   CHAOS_RECORDS        records per request (5)
#   CHAOS_PARTITIONS     partitions of the topic (3)
#   CHAOS_MESSAGE_TIMEOUT_MS  the service's kafka.message_timeout_ms (5000); a pause lasts
#                        this plus 2 s
#   CHAOS_STEADY_SECONDS steady load before the first cycle and after each (5)
#   CHAOS_PROXY_BIN      the service's binary (default: cargo build --release, and its
#                        binary)
#   CHAOS_DIR            where the logs go (kept); default a temporary directory, removed
#                        unless the run fails
#   IT_TANSU, IT_PYTHON  tansu and the venv's python (default: scripts/install-tansu.sh
#                        and scripts/install-test-venv.sh, as scripts/test.sh sets them)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

CHAOS_SECONDS="${CHAOS_SECONDS:-600}"
MAX_REQUESTS="${CHAOS_MAX_REQUESTS:-100000}"
RATE="${CHAOS_RATE:-100}"
CONNECTIONS="${CHAOS_CONNECTIONS:-4}"
RECORDS="${CHAOS_RECORDS:-5}"
PARTITIONS="${CHAOS_PARTITIONS:-3}"
MESSAGE_TIMEOUT_MS="${CHAOS_MESSAGE_TIMEOUT_MS:-5000}"
STEADY="${CHAOS_STEADY_SECONDS:-5}"
PAUSE_S=$(((MESSAGE_TIMEOUT_MS + 2000 + 999) / 1000))
# Long enough for requests in flight at SIGTERM to settle (the delivery timeout), small
# enough that a hung shutdown shows soon.
SHUTDOWN_TIMEOUT_MS=$((MESSAGE_TIMEOUT_MS + 5000))

log() { echo "chaos: $*" >&2; }

TANSU="${IT_TANSU:-$(scripts/install-tansu.sh)}"
PYTHON="${IT_PYTHON:-$(scripts/install-test-venv.sh)}"
if [[ -n "${CHAOS_PROXY_BIN:-}" ]]; then
    PROXY_BIN="$CHAOS_PROXY_BIN"
else
    cargo build --release --bin kafka-rest-proxy >&2
    PROXY_BIN="${CARGO_TARGET_DIR:-target}/release/kafka-rest-proxy"
fi

if [[ -n "${CHAOS_DIR:-}" ]]; then
    WORK="$CHAOS_DIR"
    KEEP=1
    mkdir -p "$WORK"
else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/krp-chaos.XXXXXX")"
    KEEP=""
fi

BROKER_PID=""
PROXY_PID=""
LOAD_PID=""
# Ends only what this run started, by pid (a paused broker is woken first).
cleanup() {
    [[ -z "$BROKER_PID" ]] || kill -CONT "$BROKER_PID" 2>/dev/null || true
    for pid in $LOAD_PID $PROXY_PID $BROKER_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -z "$KEEP" ]]; then
        rm -rf "$WORK"
    else
        log "logs kept in $WORK"
    fi
}
trap cleanup EXIT

now_ms() { date +%s%3N; }

# alive PID: the process runs (it is not gone, nor a zombie waiting to be reaped).
alive() {
    [[ -r "/proc/$1/stat" ]] && [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != "Z" ]]
}

# wait_exit PID SECONDS: waits for PID to exit and sets EXIT_STATUS; SIGKILLs it past
# SECONDS (EXIT_STATUS is then "hung").
wait_exit() {
    local pid="$1" limit=$(($2 * 10))
    for _ in $(seq 1 "$limit"); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null || true
        EXIT_STATUS="hung"
        return
    fi
    EXIT_STATUS=0
    wait "$pid" || EXIT_STATUS=$?
}

BROKER_PORT="$(free_port)"
mkdir -p "$WORK/broker"
start_broker() {
    (cd "$WORK/broker" && exec "$TANSU" broker \
        --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" \
        --storage-engine "sqlite://broker.db" >>"$WORK/broker/broker.log" 2>&1) &
    BROKER_PID=$!
    wait_port "$BROKER_PORT"
}

PROXY_PORT="$(free_port)"
METRICS_PORT="$(free_port)"
PROXY_CRASHES=0
PROXY_UNCLEAN_EXITS=0
# start_proxy [ready]: starts the service with a clean environment (nothing of the caller's
# KRP_* reaches it) and waits up to 30 s for /readyz; with "ready", a service that is not
# ready by then ends the run, else (the broker may be down on purpose) only one that exited.
start_proxy() {
    env -i PATH="$PATH" \
        KRP_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$BROKER_PORT" \
        KRP_KAFKA__MESSAGE_TIMEOUT_MS="$MESSAGE_TIMEOUT_MS" \
        KRP_SERVER__SHUTDOWN_TIMEOUT_MS="$SHUTDOWN_TIMEOUT_MS" \
        KRP_SERVER__WORKERS=2 \
        KRP_METADATA__REFRESH_INTERVAL_MS=1000 \
        KRP_METRICS__LISTEN="127.0.0.1:$METRICS_PORT" \
        KRP_LOG__ACCESS_LOG=false \
        "$PROXY_BIN" --listen "127.0.0.1:$PROXY_PORT" >>"$WORK/proxy.log" 2>&1 &
    PROXY_PID=$!
    for _ in $(seq 1 150); do
        if "$PROXY_BIN" healthcheck --url "http://127.0.0.1:$PROXY_PORT/readyz" \
            --timeout-ms 1000 >/dev/null 2>&1; then
            return 0
        fi
        alive "$PROXY_PID" || break
        sleep 0.2
    done
    if alive "$PROXY_PID" && [[ "${1:-}" != "ready" ]]; then
        log "the service is not ready after 30 s; going on"
        return 0
    fi
    log "the service did not become ready; its log:"
    tail -n 30 "$WORK/proxy.log" >&2
    exit 1
}

# stop_proxy: SIGTERM, and an exit within the shutdown timeout with status 0.
stop_proxy() {
    kill -TERM "$PROXY_PID"
    wait_exit "$PROXY_PID" $((SHUTDOWN_TIMEOUT_MS / 1000 + 5))
    if [[ "$EXIT_STATUS" != 0 ]]; then
        PROXY_UNCLEAN_EXITS=$((PROXY_UNCLEAN_EXITS + 1))
        log "the service did not exit cleanly on SIGTERM: $EXIT_STATUS"
    fi
}

# check_proxy: a service that exited unasked crashed; it is counted and started again.
check_proxy() {
    if ! alive "$PROXY_PID"; then
        wait_exit "$PROXY_PID" 1
        PROXY_CRASHES=$((PROXY_CRASHES + 1))
        log "the service exited by itself ($EXIT_STATUS); its log:"
        tail -n 30 "$WORK/proxy.log" >&2
        start_proxy
    fi
}

proxy_sigterm() {
    stop_proxy
    start_proxy
}

broker_sigkill() {
    kill -KILL "$BROKER_PID"
    wait "$BROKER_PID" 2>/dev/null || true
    start_broker
}

broker_sigstop() {
    kill -STOP "$BROKER_PID"
    sleep "$PAUSE_S"
    kill -CONT "$BROKER_PID"
}

# Rough durations of the cycles, to start none that would overrun CHAOS_SECONDS; a pause
# also costs the restarts and steady load of check_broker (below).
declare -A COST=([proxy_sigterm]=5 [broker_sigkill]=5 [broker_sigstop]=$((PAUSE_S + 10 + STEADY)))
KINDS=(proxy_sigterm broker_sigkill broker_sigstop)

# tansu 0.6.0 does not survive a delivery timeout: librdkafka's idempotent producer then
# bumps its producer epoch itself (KIP-360; Kafka 2.5+ accepts it), tansu finds no row for
# that epoch (tansu-storage lite.rs producer_select_for_update, query_one) and panics in its
# storage task, and from then on the broker process answers every request with an error.
# check_broker notices the panic in the broker's log after a cycle and restarts the broker
# (on the same storage) and the service (a new producer id), as a cycle of its own,
# "tansu_restart", that the report shows, then lets the load run steadily again.
broker_panics() { grep -c "panicked at" "$WORK/broker/broker.log" || true; }
PANICS_SEEN=0
check_broker() {
    local panics start_ms
    panics="$(broker_panics)"
    ((panics > PANICS_SEEN)) || return 0
    PANICS_SEEN="$panics"
    start_ms="$(now_ms)"
    log "tansu panicked (broker/broker.log); restarting it and the service"
    stop_proxy
    kill -KILL "$BROKER_PID"
    wait "$BROKER_PID" 2>/dev/null || true
    start_broker
    start_proxy
    echo "tansu_restart $start_ms $(now_ms)" >>"$WORK/cycles.log"
    sleep "$STEADY"
}

TOPIC="chaos-$(date +%s)"
start_broker
"$TANSU" topic create "$TOPIC" --partitions "$PARTITIONS" \
    --broker "tcp://127.0.0.1:$BROKER_PORT" >>"$WORK/broker/broker.log" 2>&1
start_proxy ready
log "broker 127.0.0.1:$BROKER_PORT, service 127.0.0.1:$PROXY_PORT ($PROXY_BIN), topic $TOPIC,"
log "  ${CHAOS_SECONDS} s, at most $MAX_REQUESTS requests of $RECORDS records at $RATE/s, logs in $WORK"

: >"$WORK/cycles.log"
STARTED_MS="$(now_ms)"
DEADLINE=$(($(date +%s) + CHAOS_SECONDS))
python3 scripts/chaos/load.py --url "http://127.0.0.1:$PROXY_PORT" --topic "$TOPIC" \
    --out "$WORK" --connections "$CONNECTIONS" --records "$RECORDS" --rate "$RATE" \
    --seconds $((CHAOS_SECONDS + 60)) --max-requests "$MAX_REQUESTS" \
    --stop-file "$WORK/stop" &
LOAD_PID=$!

sleep "$STEADY"
cycle=0
while alive "$LOAD_PID"; do
    kind="${KINDS[cycle % ${#KINDS[@]}]}"
    (($(date +%s) + COST[$kind] + STEADY <= DEADLINE)) || break
    check_proxy
    start_ms="$(now_ms)"
    log "cycle $((cycle + 1)): $kind"
    "$kind"
    echo "$kind $start_ms $(now_ms)" >>"$WORK/cycles.log"
    cycle=$((cycle + 1))
    sleep "$STEADY"
    check_broker
done
while alive "$LOAD_PID" && (($(date +%s) < DEADLINE)); do
    sleep 1
done
check_proxy
check_broker
touch "$WORK/stop"
wait_exit "$LOAD_PID" 60
[[ "$EXIT_STATUS" == 0 ]] || { log "the load client failed: $EXIT_STATUS"; exit 1; }
LOAD_PID=""
DURATION_S="$(((($(now_ms) - STARTED_MS) + 500) / 1000))"
stop_proxy
PROXY_PID=""

log "reading the topic back"
status=0
"$PYTHON" scripts/chaos/report.py --bootstrap "127.0.0.1:$BROKER_PORT" --topic "$TOPIC" \
    --partitions "$PARTITIONS" --out "$WORK" --seconds "$DURATION_S" \
    --proxy-crashes "$PROXY_CRASHES" --proxy-unclean-exits "$PROXY_UNCLEAN_EXITS" \
    --broker-panics "$PANICS_SEEN" || status=$?
[[ "$status" == 0 ]] || KEEP=1
exit "$status"
