#!/usr/bin/env bash
# Installs Confluent's Python client with its Schema Registry deserializers (Avro, JSON
# Schema, Protobuf) and schemathesis into a venv under
# ${IT_CACHE_DIR:-~/.cache/kafka-rest-proxy}/test-venv, and prints the path of the venv's
# python. The integration tests run tests/api/confluent_decode.py with it to decode what the
# proxy wrote to Kafka the way a partner's consumer would, and the venv's schemathesis
# against the served OpenAPI document (tests/api/openapi.rs).
#
# Created on first use (under a minute) and reused while the Python version and the pins
# below are unchanged. The pins are confluent-kafka and what its avro, json and protobuf
# extras bring that decides how a value decodes: fastavro reads Avro, protobuf parses the
# messages and renders them as JSON, jsonschema validates JSON Schema values, httpx2 talks
# to the registry. schemathesis comes with hypothesis, which generates the requests, and
# jsonschema-rs, which checks the answers against the document.
#
#   IT_PYTHON="$(scripts/install-test-venv.sh)"
set -euo pipefail

CACHE_DIR="${IT_CACHE_DIR:-$HOME/.cache/kafka-rest-proxy}"
VENV="$CACHE_DIR/test-venv"
PYTHON="${PYTHON:-python3}"
REQUIREMENTS=(
    "confluent-kafka[avro,json,protobuf]==2.16.1"
    "fastavro==1.13.1"
    "avro==1.12.2"
    "protobuf==7.36.2"
    "googleapis-common-protos==1.76.0"
    "jsonschema==4.26.0"
    "referencing==0.37.0"
    "httpx2==2.16.2"
    "schemathesis==4.32.5"
    "hypothesis==6.170.17"
    "jsonschema-rs==0.60.3"
)
STAMP="$VENV/.requirements"
wanted="$("$PYTHON" -c 'import sys; print(sys.version.split()[0])') ${REQUIREMENTS[*]}"

if [[ ! -x "$VENV/bin/python" || "$(cat "$STAMP" 2>/dev/null)" != "$wanted" ]]; then
    echo "install-test-venv: installing ${REQUIREMENTS[*]} into $VENV" >&2
    mkdir -p "$CACHE_DIR"
    "$PYTHON" -m venv --clear "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input "${REQUIREMENTS[@]}" >&2
    printf '%s' "$wanted" >"$STAMP"
fi
echo "$VENV/bin/python"
