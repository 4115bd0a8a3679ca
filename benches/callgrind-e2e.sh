#!/usr/bin/env bash
# Instructions a request costs sluice, counted by callgrind: a repeatable figure for the
# per-request CPU of the whole proxy (TLS, HTTP, auth, classify, policy, audit, forwarding),
# for comparing two builds on a machine whose wall clock is too noisy to show a few percent.
# User-space instructions only: the kernel's share (sockets, fdatasync) is not counted.
#
#   benches/callgrind-e2e.sh                          # the release build
#   benches/callgrind-e2e.sh path/to/sluice_a path/to/sluice_b   # A/B, same load
#
# Environment: N requests measured (2000), WARM requests before counting (200), CONNS (8),
# PROTO (h1 | h2; h1), ROUNDS per binary (2, interleaved A B A B), FRESH (1: a new
# connection and TLS handshake for every request, CONNS clients for DUR seconds (10)). Needs valgrind and
# h2load (installed with apt-get if missing). See BENCHMARKS.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
N=${N:-2000}
WARM=${WARM:-200}
CONNS=${CONNS:-8}
PROTO=${PROTO:-h1}
ROUNDS=${ROUNDS:-2}
PORT_UP=18460 PORT_SLUICE=18461
TOKEN=sluice_bench-token-for-claude-code
PATH_GET=/api/v1/namespaces/default/configmaps/bench

source "$(dirname "$0")/e2e-lib.sh"
need h2load nghttp2-client
need valgrind valgrind

if [[ ${NO_BUILD:-0} != 1 ]]; then
    log "building (release)"
    (cd "$ROOT" && cargo build --release -q --bin sluice) && build_helper
fi
BINS=("$@")
[[ ${#BINS[@]} -gt 0 ]] || BINS=("$TARGET/release/sluice")
find_helper
make_workdir callgrind
PIDS=()
trap stop_pids EXIT

start_upstream "$W"
URL=https://127.0.0.1:$PORT_SLUICE$PATH_GET
if [[ ${FRESH:-0} == 1 ]]; then
    # A connection a request, CONNS clients for DUR seconds (3 to warm up): N is how many
    # connections they made.
    load() { # warm | anything
        local secs=${DUR:-10}
        [[ $1 == warm ]] && secs=3
        read -r _ N _ < <(fresh_connections "$URL" "$PROTO" "$CONNS" "$secs" "$W/fresh.log")
    }
else
    load() { load_exactly "$1" "$URL" "$W/h2load.out"; }
fi

# One measurement: a fresh sluice under callgrind (instrumentation off), WARM requests, then
# N counted ones; prints instructions per request.
measure() { # binary tag
    local dir=$W/$2
    rm -rf "$dir" && mkdir -p "$dir"
    write_sluice_yaml "$dir/sluice.yaml" $PORT_SLUICE ..
    SLUICE_LOG=info valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$dir/callgrind.out.%p" \
        "$1" serve --config "$dir/sluice.yaml" > "$dir/stdout" 2> "$dir/sluice.log" &
    local pid=$!
    PIDS+=($pid)
    wait_port $PORT_SLUICE 1200
    if [[ ${FRESH:-0} == 1 ]]; then load warm; else load "$WARM"; fi
    callgrind_control -i on "$pid" > /dev/null 2>&1
    load "$N"
    callgrind_control -d "$pid" > /dev/null 2>&1
    kill "$pid"; wait "$pid" 2>/dev/null || true
    # The dump taken after the load: instructions since instrumentation was switched on.
    local part total sha
    part=$(grep -l '^summary:' "$dir"/callgrind.out.* | xargs grep -H '^summary:' | sort -t' ' -k2 -n | tail -1 | cut -d: -f1)
    total=$(awk '/^summary:/ { print $2 }' "$part")
    # Valgrind hides SHA-NI from the program, so the audit chain's SHA-256 runs on sha2's
    # portable code here (a third of all instructions); on the real CPU it is ~1% of the
    # time. The second figure leaves it out.
    sha=$(callgrind_annotate --auto=no --inclusive=no --threshold=100 "$part" 2>/dev/null |
        awk '/sha256::soft::compress/ { gsub(",", "", $1); s += $1 } END { print s + 0 }')
    awk -v t="$total" -v s="$sha" -v n="$N" 'BEGIN { printf "%.0f\t%.0f\n", t / n, (t - s) / n }'
}

printf 'round\tbinary\tinstructions\twithout_sha256\n' > "$W/results.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
    for i in "${!BINS[@]}"; do
        ir=$(measure "${BINS[$i]}" "b$i")
        log "round $r ${BINS[$i]}: $ir instructions a request (all, without SHA-256)"
        printf '%s\t%s\t%s\n' "$r" "${BINS[$i]}" "$ir" >> "$W/results.tsv"
    done
done
echo "$PROTO x $CONNS connections${FRESH:+ (FRESH: a connection a request)}, instructions a request, median over $ROUNDS rounds (results: $W):"
python3 - "$W/results.tsv" "${BINS[@]}" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
print(f"  {'all':>12}  {'ratio':>5}  {'no SHA-256':>12}  {'ratio':>5}  binary")
base = None
for b in sys.argv[2:]:
    m = [statistics.median(float(r[k]) for r in rows if r[1] == b) for k in (2, 3)]
    base = base or m
    print(f"  {m[0]:>12,.0f}  {m[0] / base[0]:5.3f}  {m[1]:>12,.0f}  {m[1] / base[1]:5.3f}  {b}")
EOF
