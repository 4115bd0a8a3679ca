#!/usr/bin/env bash
# What a sluice build keeps of the memory a burst used: RSS idle, just after a burst of
# requests on many connections (all closed at its end), and WAIT seconds later. A process
# that gives freed memory back returns near its idle RSS; one that does not keeps its peak.
#
#   benches/rss-after-burst.sh [sluice binary …]   # the release build by default; A/B: the
#                                                  # binaries in turn, ROUNDS times
#
# Environment: N requests in the burst (60000), CONNS (256), PROTO (h1 | h2; h2), STREAMS per
# HTTP/2 connection (10), WAIT (30 s), ROUNDS (2). Needs h2load (installed with apt-get if
# missing) and a release build of benches/e2e/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
N=${N:-60000}
CONNS=${CONNS:-256}
PROTO=${PROTO:-h2}
STREAMS=${STREAMS:-10}
WAIT=${WAIT:-30}
ROUNDS=${ROUNDS:-2}
PORT_UP=18475 PORT_SLUICE=18476
TOKEN=sluice_bench-token-for-claude-code
source "$(dirname "$0")/e2e-lib.sh"
need h2load nghttp2-client

BINS=()
for bin in "${@:-$TARGET/release/sluice}"; do BINS+=("$(realpath "$bin")"); done
find_helper
make_workdir rss-burst
PIDS=()
trap 'stop_pids; rm -rf "$W"' EXIT

start_upstream "$W"
URL=https://127.0.0.1:$PORT_SLUICE/api/v1/namespaces/default/configmaps/bench
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

echo -e "round\tidle_kb\tafter_burst_kb\tafter_${WAIT}s_kb\tbinary"
for ((round = 1; round <= ROUNDS; round++)); do
    for bin in "${BINS[@]}"; do
        dir=$W/run
        rm -rf "$dir" && mkdir -p "$dir"
        write_sluice_yaml "$dir/sluice.yaml" $PORT_SLUICE ..
        (cd "$dir" && exec "$bin" serve --config sluice.yaml > sluice.out 2> sluice.log) &
        pid=$!
        PIDS+=($pid)
        wait_port $PORT_SLUICE
        sleep 0.5
        idle=$(rss $pid)
        load_exactly "$N" "$URL" "$W/h2load.out"
        burst=$(rss $pid)
        sleep "$WAIT"
        echo -e "$round\t$idle\t$burst\t$(rss $pid)\t$bin"
        kill $pid
        wait $pid 2>/dev/null || true
    done
done
