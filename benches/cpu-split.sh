#!/usr/bin/env bash
# User and kernel CPU a request of one sluice build under one load, from /proc/PID/stat:
# the split callgrind cannot show (it counts user-space instructions only). For A/B of two
# builds, run it for each in turn, A B A B, and compare the pairs.
#
#   benches/cpu-split.sh [sluice binary]        # the release build by default
#
# Environment: N requests measured (30000, after 2000 to warm up), CONNS (64), PROTO
# (h1 | h2; h1), STREAMS per HTTP/2 connection (10), SYNC (fsync | flush; fsync), SYSCALLS
# (1: also count sluice's syscalls and context switches a request with `perf stat`), BODY
# (bytes of each answer; 1000), AGENTS (agents in credentials.yaml; 1), FRESH (1: CONNS
# clients each making a new connection and TLS handshake for every request, for DUR seconds
# (5), instead of N requests over kept connections). Needs
# h2load (installed with apt-get if missing) and a release build of benches/e2e/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$(realpath "${1:-$TARGET/release/sluice}")   # absolute: sluice runs from its work dir
N=${N:-30000}
CONNS=${CONNS:-64}
PROTO=${PROTO:-h1}
STREAMS=${STREAMS:-10}
PORT_UP=18470 PORT_SLUICE=18471
TOKEN=sluice_bench-token-for-claude-code
source "$(dirname "$0")/e2e-lib.sh"
need h2load nghttp2-client

find_helper
make_workdir cpu-split
PIDS=()
trap stop_pids EXIT

start_upstream "$W"
write_sluice_yaml "$W/sluice.yaml" $PORT_SLUICE . "${SYNC:-fsync}"
(cd "$W" && SLUICE_LOG=info exec "$BIN" serve --config sluice.yaml > sluice.out 2> sluice.log) &
SLUICE=$!
PIDS+=($SLUICE)
wait_port $PORT_SLUICE

URL=https://127.0.0.1:$PORT_SLUICE/api/v1/namespaces/default/configmaps/bench
if [[ ${FRESH:-0} == 1 ]]; then
    # A connection a request, CONNS clients for DUR seconds (1 to warm up): N is how many
    # connections they made.
    DUR=${DUR:-5}
    load() { # warm | anything
        local secs=$DUR
        [[ $1 == warm ]] && secs=1
        read -r _ N RATE < <(fresh_connections "$URL" "$PROTO" "$CONNS" "$secs" "$W/fresh.log")
    }
else
    load() { # requests
        load_exactly "$1" "$URL" "$W/h2load.out"
        RATE=$(awk '/^finished/ { print $4 }' "$W/h2load.out")
    }
fi
ticks() { awk '{ print $14, $15 }' "/proc/$SLUICE/stat"; }

if [[ ${FRESH:-0} == 1 ]]; then load warm; else load 2000; fi
if [[ ${SYSCALLS:-0} == 1 ]]; then
    need perf linux-perf
    events=raw_syscalls:sys_enter,context-switches
    for call in read write writev recvfrom sendto epoll_wait futex fdatasync ${EXTRA_CALLS:-}; do
        events+=,syscalls:sys_enter_$call
    done
    perf stat -x, -e "$events" -p "$SLUICE" -o "$W/perf.out" &
    PERF=$!
    sleep 0.5   # perf attaches to every thread before the load starts
fi
read -r user0 sys0 < <(ticks)
load "$N"
read -r user1 sys1 < <(ticks)
if [[ ${SYSCALLS:-0} == 1 ]]; then
    kill -INT "$PERF" 2>/dev/null || true
    wait "$PERF" || true
    if [[ -s $W/perf.out ]] && grep -q '^[0-9]' "$W/perf.out"; then
        awk -F, -v n="$N" '/^[0-9]/ { printf "  %-34s %6.2f a request\n", $3, $1 / n }' "$W/perf.out"
    else
        log "perf stat counted nothing (tracepoints not readable here? perf_event_paranoid)"
    fi
fi
hz=$(getconf CLK_TCK)
awk -v u=$((user1 - user0)) -v s=$((sys1 - sys0)) -v n="$N" -v hz="$hz" \
    -v bin="$BIN" -v rate="$RATE" -v what="$PROTO x $CONNS" 'BEGIN {
    printf "%s, %d requests, %s req/s: user %.1f us, system %.1f us, total %.1f us a request (%s)\n",
        what, n, rate, u * 1e6 / hz / n, s * 1e6 / hz / n, (u + s) * 1e6 / hz / n, bin }'
