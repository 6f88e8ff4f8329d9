#!/usr/bin/env bash
# Installs the Debian tools the tests use when they are missing: prometheus and promtool
# (a real Prometheus scrapes the service; promtool checks the exposition and the alert
# rules), wrk (the benchmark's load generator) and redis-server with redis-cli (the shared
# idempotency store; each test starts its own on a free loopback port), and shellcheck
# (CI checks the scripts with it).
set -euo pipefail

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v wrk >/dev/null || missing+=(wrk)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v shellcheck >/dev/null || missing+=(shellcheck)
if [[ ${#missing[@]} -gt 0 ]]; then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "installing ${missing[*]} from Debian" >&2
    $sudo apt-get update -qq >&2 || true
    mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${packages[@]}" >&2
fi
