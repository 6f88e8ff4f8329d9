#!/usr/bin/env bash
# Starts the two tansu brokers the integration tests share, in the background, and writes
# the environment the tests read to "$1/env":
#   IT_BOOTSTRAP        a plaintext broker
#   IT_SCRAM_BOOTSTRAP  a SASL_PLAINTEXT broker requiring SCRAM-SHA-512
#   IT_SCRAM_USERNAME / IT_SCRAM_PASSWORD  the user it knows
#   IT_TANSU            the tansu binary, for tests that need a broker of their own
# The pids go to "$1/pids"; stop them with `scripts/brokers.sh stop DIR`.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
ACTION="$1"
WORK="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    local port="$1" log="$2"
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "tansu did not open port $port; its log:" >&2
    tail -n 50 "$log" >&2
    return 1
}

# start_broker NAME PORT [extra tansu args...]: runs tansu from WORK/NAME on sqlite storage.
start_broker() {
    local name="$1" port="$2"
    shift 2
    mkdir -p "$WORK/$name"
    (
        cd "$WORK/$name"
        exec "$TANSU" broker \
            --listener-url "tcp://127.0.0.1:$port" \
            --advertised-listener-url "tcp://127.0.0.1:$port" \
            --storage-engine "sqlite://broker.db" "$@" \
            >>"$WORK/$name/broker.log" 2>&1
    ) &
    echo $! >>"$WORK/pids"
    LAST_PID=$!
    wait_port "$port" "$WORK/$name/broker.log"
}

case "$ACTION" in
start)
    mkdir -p "$WORK"
    : >"$WORK/pids"
    TANSU="$("$HERE/install-tansu.sh")"

    PLAIN_PORT="$(free_port)"
    start_broker plain "$PLAIN_PORT"

    SCRAM_PORT="$(free_port)"
    SCRAM_USER="krp-test"
    SCRAM_PASSWORD="krp-test-$(date +%s%N | sha256sum | cut -c1-16)"
    # Users are created while authentication is off, then the broker restarts with it on
    # the same database: tansu's own client cannot authenticate.
    start_broker scram "$SCRAM_PORT"
    "$TANSU" user create "$SCRAM_USER" "$SCRAM_PASSWORD" --mechanism scram512 \
        --broker "tcp://127.0.0.1:$SCRAM_PORT" >>"$WORK/scram/broker.log" 2>&1
    kill "$LAST_PID"
    wait "$LAST_PID" 2>/dev/null || true
    sed -i "/^$LAST_PID\$/d" "$WORK/pids"
    start_broker scram "$SCRAM_PORT" --authentication

    cat >"$WORK/env" <<ENV
export IT_TANSU="$TANSU"
export IT_BOOTSTRAP="127.0.0.1:$PLAIN_PORT"
export IT_SCRAM_BOOTSTRAP="127.0.0.1:$SCRAM_PORT"
export IT_SCRAM_USERNAME="$SCRAM_USER"
export IT_SCRAM_PASSWORD="$SCRAM_PASSWORD"
ENV
    echo "brokers up: plaintext 127.0.0.1:$PLAIN_PORT, SCRAM-SHA-512 127.0.0.1:$SCRAM_PORT" >&2
    ;;
stop)
    if [[ -f "$WORK/pids" ]]; then
        while read -r pid; do
            kill "$pid" 2>/dev/null || true
        done <"$WORK/pids"
        rm -f "$WORK/pids"
    fi
    ;;
*)
    usage
    ;;
esac
