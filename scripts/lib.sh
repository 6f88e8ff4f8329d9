# shellcheck shell=bash
# Shell helpers shared by scripts/load-check.sh, scripts/profile.sh and scripts/bench-ab.sh
# (sourced).

# A loopback port nothing listens on right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits up to 30 s for something to listen on loopback port $1.
wait_port() {
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    exit 1
}
