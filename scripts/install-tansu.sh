#!/usr/bin/env bash
# Installs the tansu Kafka-protocol broker that the tests run against, once, into a cache
# outside the repository, and prints the path of its binary.
#
# tansu 0.6.0 with the libsql (sqlite:// storage, needed for SCRAM users that survive a
# restart) and dynostore (memory:// storage) engines; the default features build no storage
# engine at all. The build takes about 18 minutes on 2 cores; later runs reuse the binary.
set -euo pipefail

TANSU_VERSION="0.6.0"
CACHE_DIR="${IT_CACHE_DIR:-$HOME/.cache/kafka-rest-proxy}"
ROOT="$CACHE_DIR/tansu-$TANSU_VERSION"
BIN="$ROOT/bin/tansu"

if [[ ! -x "$BIN" ]]; then
    echo "installing tansu $TANSU_VERSION into $ROOT (about 18 minutes on 2 cores)" >&2
    mkdir -p "$CACHE_DIR"
    started=$(date +%s)
    cargo install tansu --version "$TANSU_VERSION" --locked \
        --features libsql,dynostore --root "$ROOT" >&2
    echo "tansu installed in $(( $(date +%s) - started )) s" >&2
fi
echo "$BIN"
