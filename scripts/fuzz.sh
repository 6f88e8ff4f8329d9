#!/usr/bin/env bash
# Fuzzing on demand (issue 15, RELIABILITY.md "Fuzzing"): one libFuzzer session per target,
# resumed from the committed corpus and everything earlier sessions kept, stopped early at
# a plateau or else at a time cap; with --cmin, the committed corpus is then replaced by the
# minimized union, ready to commit.
#
#   scripts/fuzz.sh [--cap SECONDS] [--min SECONDS] [--cmin] TARGET...
#   scripts/fuzz.sh --cmin-only TARGET...     shrink into fuzz/corpus without a session
#
# Plateau: no new covered edge (libFuzzer's cov) in the session's last half and in at least
# its last 2 minutes. Checked every 5 s once --min seconds (default 300) have passed; a
# session that never gets there ends at --cap seconds (default 1800). One process on one
# core: run two at once on two cores from two shells, not more.
#
# Sessions, their logs, crash inputs and a summary line per session are kept under
# $KRP_FUZZ_DIR (default ~/.cache/kafka-rest-proxy/fuzz/<target>/). The first run installs
# cargo-fuzz and builds the targets (~25 minutes on 2 cores); later runs rebuild what
# changed. Exits 1 when a session found a crash, a hang, a timeout or an OOM: its input is
# named on stderr. Ctrl-C (or SIGTERM, for a script started in the background, which
# ignores SIGINT) stops the session and still writes its summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

cap=1800 min=300 cmin=false session=true
targets=()
while [[ $# -gt 0 ]]; do
    case "$1" in
    --cap) cap=${2:?--cap takes seconds}; shift 2 ;;
    --min) min=${2:?--min takes seconds}; shift 2 ;;
    --cmin) cmin=true; shift ;;
    --cmin-only) cmin=true session=false; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
known=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^kafka-rest-proxy-fuzz$' |
    tr '\n' ' ')
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "usage: scripts/fuzz.sh [--cap S] [--min S] [--cmin | --cmin-only] TARGET..." >&2
    echo "targets: $known" >&2
    exit 2
fi
for t in "${targets[@]}"; do
    [[ " $known" == *" $t "* ]] || { echo "no fuzz target $t; targets: $known" >&2; exit 2; }
done

home=$(realpath -m "${KRP_FUZZ_DIR:-$HOME/.cache/kafka-rest-proxy/fuzz}")
triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=$PWD/fuzz/target/$triple/release

# The stable toolchain runs cargo-fuzz's nightly flags with RUSTC_BOOTSTRAP; the C
# dependencies stay uninstrumented (cc would pass rustc's AddressSanitizer on to zstd, and
# librdkafka's configure could not link with it).
export RUSTC_BOOTSTRAP=1 CFLAGS=-fno-sanitize=address CXXFLAGS=-fno-sanitize=address
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
for t in "${targets[@]}"; do
    cargo fuzz build "$t" >&2
done

# The JSON dictionary helps the targets that read JSON, not the header and text parsers.
dict_for() {
    case "$1" in
    forwarded_for | media_type | idempotency_key | config | schema_text) ;;
    *) echo "-dict=$PWD/fuzz/json.dict" ;;
    esac
}

# The newest "cov: N" libFuzzer printed to the log, or nothing yet.
latest_cov() {
    grep -a -o '^#[0-9]*[[:space:]]*[A-Z]*[[:space:]]*cov: [0-9]*' "$1" 2>/dev/null |
        tail -1 | sed 's/.*cov: //'
}

# One session of target $1; prints its summary line; returns 1 on a find.
run_session() {
    local t=$1 dir=$home/$1 n log pid started best=-1 last=0 now elapsed quiet need
    local ended=cap rc=0
    mkdir -p "$dir/corpus" "$dir/artifacts"
    # Seeds: the committed corpus. New inputs go to the work corpus only.
    cp -n -t "$dir/corpus" fuzz/corpus/"$t"/* 2>/dev/null || true
    n=$(find "$dir" -maxdepth 1 -name 'session*.log' | sed 's/.*session\([0-9]*\)\.log/\1/' |
        sort -n | tail -1)
    n=$((${n:-0} + 1))
    log=$dir/session$n.log
    local dict
    dict=$(dict_for "$t")
    started=$(date +%s)
    # An empty environment and a directory of its own: the config target layers KRP_*
    # variables of the process over its input (a variable of the caller's, KRP_FUZZ_DIR
    # itself, would change what every input does), and a path in an input is read relative
    # to the working directory.
    # shellcheck disable=SC2086 # $dict is one flag or none
    (cd "$dir" && exec setsid env -i "$bin_dir/$t" "$dir/corpus" $dict -max_total_time="$cap" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
        >"$log" 2>&1) &
    pid=$!
    trap 'kill -INT -- -'"$pid"' 2>/dev/null' INT TERM
    while kill -0 "$pid" 2>/dev/null; do
        sleep 5
        now=$(date +%s)
        elapsed=$((now - started))
        local cov
        cov=$(latest_cov "$log")
        if [[ -n "$cov" && "$cov" -gt "$best" ]]; then
            best=$cov last=$elapsed
        fi
        quiet=$((elapsed - last))
        need=$((elapsed / 2 > 120 ? elapsed / 2 : 120))
        if [[ $elapsed -ge $min && $quiet -ge $need ]]; then
            ended=plateau
            kill -INT -- "-$pid" 2>/dev/null || true
            break
        fi
    done
    wait "$pid" || rc=$?
    trap - INT TERM
    local inited execs secs finds
    inited=$(grep -a -m1 'INITED' "$log" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(($(date +%s) - started))
    finds=$(grep -a -o 'Test unit written to .*' "$log" | sed 's/Test unit written to //' || true)
    if [[ -n "$finds" ]]; then
        ended="a find"
    elif [[ $ended == cap && $rc -ne 0 ]]; then
        ended="stopped (rc $rc)"
    fi
    local rise="last new edge at ${last}s"
    [[ -n "$inited" && $best -le $inited ]] && rise="no edge beyond the start"
    printf '%s session%s %s: %ss, %s execs, cov %s -> %s, %s, ended: %s\n' \
        "$(date -u +%FT%H:%MZ)" "$n" "$t" "$secs" "${execs:-?}" "${inited:-?}" "$best" "$rise" \
        "$ended" | tee -a "$home/summary"
    if [[ -n "$finds" ]]; then
        echo "$t: libFuzzer kept the failing input(s): $finds (log $log)" >&2
        return 1
    fi
}

# Replaces fuzz/corpus/<target> with the minimized union of itself and the work corpus;
# files not named by their SHA-1 (regression inputs, named for what they caught) are kept
# as they are.
shrink() {
    local t=$1 committed=$PWD/fuzz/corpus/$1 work=$home/$1/corpus before after
    local merged
    merged=$(mktemp -d)
    mkdir -p "$work"
    before=$(find -H "$committed" "$work" -type f -printf '%f\n' | sort -u | wc -l)
    (cd "$home/$t" && exec env -i "$bin_dir/$t" -merge=1 -timeout=10 -rss_limit_mb=2048 \
        "$merged" "$committed" "$work") >"$home/$t/cmin.log" 2>&1
    find "$committed" -maxdepth 1 -type f -regextype posix-extended ! -regex '.*/[0-9a-f]{40}' \
        -exec cp -t "$merged" {} +
    find "$committed" -maxdepth 1 -type f -delete
    cp -t "$committed" "$merged"/*
    # Later sessions resume from the minimized set.
    find -H "$work" -maxdepth 1 -type f -delete
    cp -t "$work" "$merged"/*
    rm -rf "$merged"
    after=$(find "$committed" -type f | wc -l)
    echo "$(date -u +%FT%H:%MZ) cmin $t: $before files -> $after ($(du -sh "$committed" | cut -f1))" |
        tee -a "$home/summary"
}

status=0
for t in "${targets[@]}"; do
    if $session; then
        run_session "$t" || status=1
    fi
    if $cmin; then
        shrink "$t"
    fi
done
exit $status
