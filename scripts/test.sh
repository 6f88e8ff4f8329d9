#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need (the tansu broker
# and a venv with Confluent's Python deserializers into a cache, prometheus/promtool from
# Debian), starts the brokers, runs every test, stops the brokers.
#
#   scripts/test.sh [extra cargo test args...]
#   scripts/test.sh --test api produce_v2::     one module of the integration tests
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
# The Python that runs tests/api/confluent_decode.py.
IT_PYTHON="$(scripts/install-test-venv.sh)"
export IT_PYTHON
scripts/brokers.sh start "$WORK"
# shellcheck disable=SC1091
source "$WORK/env"

# Every target, unless the arguments pick some: cargo runs --all-targets even beside
# --test api, and a filter such as produce_v2:: would then pick unit tests too.
targets=(--all-targets)
for arg in "$@"; do
    case "$arg" in
    --) break ;;
    --lib | --bins | --bin | --bin=* | --tests | --test | --test=* | --examples | --example | \
        --example=* | --benches | --bench | --bench=* | --doc | --all-targets)
        targets=()
        ;;
    esac
done

started=$(date +%s)
cargo test "${targets[@]}" --no-fail-fast "$@"
echo "test suite finished in $(( $(date +%s) - started )) s" >&2
