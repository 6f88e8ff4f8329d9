#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need (the tansu broker
# into a cache, prometheus/promtool from Debian), starts the brokers, runs every test, stops
# the brokers.
#
#   scripts/test.sh [extra cargo test args...]
set -euo pipefail
cd "$(dirname "$0")/.."

WORK="$(mktemp -d "${TMPDIR:-/tmp}/krp-test.XXXXXX")"
cleanup() {
    scripts/brokers.sh stop "$WORK"
    if [[ "${IT_KEEP_DIR:-}" == "" ]]; then
        rm -rf "$WORK"
    else
        echo "broker logs kept in $WORK" >&2
    fi
}
trap cleanup EXIT

scripts/install-test-tools.sh
scripts/brokers.sh start "$WORK"
# shellcheck disable=SC1091
source "$WORK/env"

started=$(date +%s)
cargo test --all-targets --no-fail-fast "$@"
echo "test suite finished in $(( $(date +%s) - started )) s" >&2
