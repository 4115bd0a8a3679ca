#!/usr/bin/env bash
# End-to-end benchmark: direct vs sluice vs nginx vs kubectl proxy, in front of one upstream
# that answers a 1 KB JSON object at once (benches/e2e/). Everything on 127.0.0.1.
# Runs are interleaved (A B C D, A B C D, … with the order rotated each round) and the report
# gives medians over rounds and medians of per-round pair ratios. See BENCHMARKS.md.
#
#   benches/run-e2e.sh                       # full run, a few minutes
#   ROUNDS=5 DUR=3 CONNS="64" PROTOS=h2 benches/run-e2e.sh
#   PROXIES="sluice sluice_b" SLUICE_B_BIN=/path/to/other/sluice benches/run-e2e.sh   # A/B
#   (a third build: sluice_c with SLUICE_C_BIN)
#   PROXIES="sluice sluice_quiet" benches/run-e2e.sh    # cost of the info log line a request
#   PROXIES="sluice sluice_flush" benches/run-e2e.sh    # cost of fsync (audit.sync: flush)
#   PROXIES="sluice sluice_1w nginx" benches/run-e2e.sh # one agent thread, as the Deployment runs
#   BODY=4194304 CONNS="1 8" STREAMS=1 WATCHES=0 PROXIES="direct sluice nginx" benches/run-e2e.sh
#                                                       # large responses (4 MB each): MB/s
#   FRESH=1 CONNS="1 8 64" WATCHES=0 benches/run-e2e.sh # a new connection and TLS handshake
#                                                       # for every request, as each kubectl run
#
# Environment: ROUNDS (3), DUR seconds a run (3), WARMUP (1), CONNS ("8 64 256"),
# PROTOS ("h2 h1"), STREAMS per h2 connection (10), FRESH (1: CONNS clients each making a
# new connection for every request, `bench_e2e connections` (benches/e2e/), instead of h2load), BODY (bytes of each response; 1000), AGENTS (in credentials.yaml; 1), PROXIES ("direct sluice nginx kubectl"),
# WATCHES (2000; 0 skips the idle-watch RSS check), WATCH_PER_CONN (200 watches a connection;
# 1: every watch on its own connection, as many agents each holding one), PIN (0; 1 = load generator on CPU 1,
# servers on CPU 0), SLUICE_BIN / SLUICE_B_BIN / SLUICE_C_BIN (default: the release build), OUT (results dir),
# TIME_LIMIT (1200 s for the whole script), NO_BUILD (1: use the binaries already built, for
# A/B runs of saved builds while the tree is being edited).
set -euo pipefail

if [[ -z "${SLUICE_E2E_TIMED:-}" ]]; then
    export SLUICE_E2E_TIMED=1
    exec timeout --kill-after=10 "${TIME_LIMIT:-1200}" "$0" "$@"
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-3}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-"8 64 256"}
PROTOS=${PROTOS:-"h2 h1"}
STREAMS=${STREAMS:-10}
PROXIES=${PROXIES:-"direct sluice nginx kubectl"}
FRESH=${FRESH:-0}
WATCHES=${WATCHES:-2000}
WATCH_PER_CONN=${WATCH_PER_CONN:-200}
PIN=${PIN:-0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET/bench-e2e/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

PORT_UP=18443 PORT_SLUICE=18444 PORT_NGINX=18445 PORT_KUBECTL=18446 PORT_SLUICE_B=18447
PORT_SLUICE_Q=18448 PORT_SLUICE_F=18450 PORT_SLUICE_C=18451 PORT_SLUICE_1W=18452
# 18449 and 18453: the sluice and nginx that hold the idle watches
TOKEN=sluice_bench-token-for-claude-code
PATH_GET=/api/v1/namespaces/default/configmaps/bench

source "$(dirname "$0")/e2e-lib.sh"
make_workdir work
need h2load nghttp2-client
[[ " $PROXIES " == *" nginx "* ]] && need nginx nginx
KUBECTL=${KUBECTL:-/usr/bin/kubectl}

if [[ ${NO_BUILD:-0} != 1 ]]; then
    log "building (release)"
    (cd "$ROOT" && cargo build --release -q --bin sluice) && build_helper
fi
SLUICE_BIN=${SLUICE_BIN:-$TARGET/release/sluice}
HELPER=$TARGET/release/bench_e2e

PIDS=()
trap stop_pids EXIT

SRV=() GEN=()
if [[ $PIN == 1 ]]; then SRV=(taskset -c 0) GEN=(taskset -c 1); fi

"$HELPER" pki "$W"
UPSTREAM_TOKEN=$(upstream_token)
printf %s "$UPSTREAM_TOKEN" > "$W/upstream-token"

"${SRV[@]}" "$HELPER" upstream "$W/server.crt" "$W/server.key" "127.0.0.1:$PORT_UP" ${BODY:+"$BODY"} \
    > "$W/upstream.log" 2>&1 &
PID_UP=$!; PIDS+=($PID_UP)
wait_port $PORT_UP
write_agent_files "$W"

start_sluice() { # name port binary log-filter [audit sync] [tokio workers]
    local dir=$W/$1
    mkdir -p "$dir"
    write_sluice_yaml "$dir/sluice.yaml" "$2" .. "${5:-fsync}"
    local workers=()   # sluice refuses an empty TOKIO_WORKER_THREADS: set it only if asked
    [[ -n ${6:-} ]] && workers=("TOKIO_WORKER_THREADS=$6")
    env "${workers[@]}" SLUICE_LOG=$4 "${SRV[@]}" "$3" serve --config "$dir/sluice.yaml" > "$dir/stdout" 2> "$dir/sluice.log" &
    local pid=$!
    PIDS+=($pid)
    wait_port "$2"
    echo $pid
}

# nginx in front of the upstream on PORT, its files in DIR, EXTRA directives in its location.
start_nginx() { # dir port [extra]
    local dir=$1 port=$2 extra=${3:-}
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" <<EOF
daemon off;
user root;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
    keepalive_requests 1000000;
    http2_max_requests 1000000;
    http2_max_concurrent_streams 250;
    upstream apiserver {
        server 127.0.0.1:$PORT_UP;
        keepalive 256;
        keepalive_requests 1000000;
        keepalive_timeout 90s;
    }
    server {
        listen 127.0.0.1:$port ssl http2;
        ssl_certificate $W/server.crt;
        ssl_certificate_key $W/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        location / {
            proxy_pass https://apiserver;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer $UPSTREAM_TOKEN";
            proxy_ssl_session_reuse on;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $W/ca.crt;
            proxy_ssl_name localhost;
            proxy_ssl_server_name off;
            # Large responses stream through memory buffers, never a temp file on disk.
            proxy_max_temp_file_size 0;
            $extra
        }
    }
}
EOF
    "${SRV[@]}" nginx -c "$dir/nginx.conf" -p "$dir" > "$dir/stdout" 2>&1 &
    PIDS+=($!)
    wait_port "$port"
    sleep 0.2
}

nginx_pids() { # dir
    echo "$(cat "$1/nginx.pid") $(pgrep -P "$(cat "$1/nginx.pid")" | tr '\n' ' ')"
}

declare -A PORT PROCS SCHEME
PORT[direct]=$PORT_UP; PROCS[direct]=""; SCHEME[direct]=https
for p in $PROXIES; do
    case $p in
    direct) ;;
    sluice)
        PORT[sluice]=$PORT_SLUICE; SCHEME[sluice]=https
        PROCS[sluice]=$(start_sluice sluice $PORT_SLUICE "$SLUICE_BIN" "${SLUICE_LOG:-info}"); PIDS+=(${PROCS[sluice]}) ;;
    sluice_b)
        PORT[sluice_b]=$PORT_SLUICE_B; SCHEME[sluice_b]=https
        PROCS[sluice_b]=$(start_sluice sluice_b $PORT_SLUICE_B "${SLUICE_B_BIN:?set SLUICE_B_BIN}" "${SLUICE_B_LOG:-${SLUICE_LOG:-info}}"); PIDS+=(${PROCS[sluice_b]}) ;;
    sluice_c)
        PORT[sluice_c]=$PORT_SLUICE_C; SCHEME[sluice_c]=https
        PROCS[sluice_c]=$(start_sluice sluice_c $PORT_SLUICE_C "${SLUICE_C_BIN:?set SLUICE_C_BIN}" "${SLUICE_LOG:-info}"); PIDS+=(${PROCS[sluice_c]}) ;;
    sluice_quiet)
        PORT[sluice_quiet]=$PORT_SLUICE_Q; SCHEME[sluice_quiet]=https
        PROCS[sluice_quiet]=$(start_sluice sluice_quiet $PORT_SLUICE_Q "$SLUICE_BIN" warn); PIDS+=(${PROCS[sluice_quiet]}) ;;
    sluice_flush)
        PORT[sluice_flush]=$PORT_SLUICE_F; SCHEME[sluice_flush]=https
        PROCS[sluice_flush]=$(start_sluice sluice_flush $PORT_SLUICE_F "$SLUICE_BIN" "${SLUICE_LOG:-info}" flush); PIDS+=(${PROCS[sluice_flush]}) ;;
    sluice_1w)
        # One tokio worker: what the shipped Deployment (limits.cpu: "1") runs with.
        PORT[sluice_1w]=$PORT_SLUICE_1W; SCHEME[sluice_1w]=https
        PROCS[sluice_1w]=$(start_sluice sluice_1w $PORT_SLUICE_1W "$SLUICE_BIN" "${SLUICE_LOG:-info}" fsync 1); PIDS+=(${PROCS[sluice_1w]}) ;;
    nginx)
        start_nginx "$W/nginx" $PORT_NGINX
        PORT[nginx]=$PORT_NGINX; SCHEME[nginx]=https
        PROCS[nginx]=$(nginx_pids "$W/nginx") ;;
    kubectl)
        cat > "$W/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: up, cluster: {server: "https://127.0.0.1:$PORT_UP", certificate-authority: $W/ca.crt}}]
users: [{name: u, user: {token: $UPSTREAM_TOKEN}}]
contexts: [{name: c, context: {cluster: up, user: u}}]
current-context: c
EOF
        "${SRV[@]}" "$KUBECTL" proxy --kubeconfig "$W/kubeconfig" --address 127.0.0.1 --port $PORT_KUBECTL > "$W/kubectl.log" 2>&1 &
        PIDS+=($!); PROCS[kubectl]=$!
        wait_port $PORT_KUBECTL
        PORT[kubectl]=$PORT_KUBECTL; SCHEME[kubectl]=http ;;
    *) log "unknown proxy $p"; exit 2 ;;
    esac
done

cpu_ticks() { # pids... → utime+stime clock ticks
    local t=0 p
    for p in "$@"; do
        [[ -r /proc/$p/stat ]] || continue
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo $t
}

RESULTS=$OUT/results.tsv
echo -e "round\tproto\tconns\tproxy\trps\tp50_ms\tp99_ms\tproxy_cpu_s_per_10k\tupstream_cpu_s_per_10k\tfailed" > "$RESULTS"
HZ=$(getconf CLK_TCK)

run_one() { # round proto conns proxy
    local round=$1 proto=$2 conns=$3 proxy=$4
    [[ $proxy == kubectl && $proto == h2 ]] && return 0   # kubectl proxy speaks plain HTTP/1.1 only
    local url="${SCHEME[$proxy]}://127.0.0.1:${PORT[$proxy]}$PATH_GET"
    local args=(-c "$conns" -t 1 -D "$DUR" --warm-up-time="$WARMUP" -H "authorization: Bearer $TOKEN")
    if [[ $proto == h1 ]]; then args+=(--h1 -m 1); else args+=(-m "$STREAMS"); fi
    local logf=$W/h2load.log
    rm -f "$logf"
    # shellcheck disable=SC2086
    local before=$(cpu_ticks ${PROCS[$proxy]}) up_before=$(cpu_ticks $PID_UP)
    local out rps ok
    if [[ $FRESH == 1 ]]; then
        # A new connection and TLS handshake for every request, no warm-up to discount.
        read -r ok _ rps < <(fresh_connections "$url" "$proto" "$conns" "$DUR" "$logf") || true
        out=$(cat "$logf.out")
    else
        out=$("${GEN[@]}" timeout $((DUR + WARMUP + 30)) h2load "${args[@]}" --log-file="$logf" "$url" 2>&1) || true
        rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
        ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
    fi
    # shellcheck disable=SC2086
    local after=$(cpu_ticks ${PROCS[$proxy]}) up_after=$(cpu_ticks $PID_UP)
    if [[ -z $rps || -z $ok || $ok == 0 ]]; then
        log "run failed: $proxy $proto c=$conns"; echo "$out" >> "$OUT/failures.log"; return 0
    fi
    read -r p50 p99 _ failed < <("$HELPER" stats "$logf")
    if [[ $failed != 0 ]]; then
        # Keep what the generator said and the requests that were not answered 2xx.
        { echo "== round $round $proxy $proto c=$conns: $failed not 2xx"; echo "$out"
          awk -F'\t' '$2 !~ /^2/' "$logf" | head -20; } >> "$OUT/not-2xx.log"
    fi
    # Ticks during warm-up are counted too: scale by the requests of the whole run.
    local total=$ok
    [[ $FRESH == 1 ]] || total=$(( ok * (DUR + WARMUP) / DUR ))
    local cpu up
    cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$total" 'BEGIN{printf "%.3f", t/hz/n*10000}')
    up=$(awk -v t=$((up_after - up_before)) -v hz="$HZ" -v n="$total" 'BEGIN{printf "%.3f", t/hz/n*10000}')
    echo -e "$round\t$proto\t$conns\t$proxy\t$rps\t$p50\t$p99\t$cpu\t$up\t$failed" | tee -a "$RESULTS" >&2
}

read -r -a LIST <<<"$PROXIES"
for round in $(seq "$ROUNDS"); do
    for proto in $PROTOS; do
        for conns in $CONNS; do
            n=${#LIST[@]}
            for i in $(seq 0 $((n - 1))); do
                run_one "$round" "$proto" "$conns" "${LIST[$(((i + round) % n))]}"
            done
        done
    done
done

# Idle watches: RSS of a fresh sluice (and nginx, if it ran) holding WATCHES open HTTP/2
# watch streams, WATCH_PER_CONN a connection.
rss_kb() { # pids...
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '/VmRSS/{print $2}' "/proc/$p/status"))); done
    echo $t
}
hold_watches() { # name port pids...
    local name=$1 port=$2
    shift 2
    local rss0 rss hold=$((10 + WATCHES / 200)) wpid opened
    rss0=$(rss_kb "$@")
    "$HELPER" watchers "https://127.0.0.1:$port" "$W/ca.crt" "$TOKEN" "$WATCHES" "$hold" "$WATCH_PER_CONN" \
        > "$W/watchers-$name.log" 2>&1 &
    wpid=$!
    sleep $((hold - 2))
    rss=$(rss_kb "$@")
    wait $wpid || true
    opened=$(sed -n 's/^watchers: \([0-9]*\) open at the end/\1/p' "$W/watchers-$name.log")
    echo -e "$name\twatches\t${opened:-0}\tper_conn\t$WATCH_PER_CONN\trss_idle_kb\t$rss0\trss_kb\t$rss" |
        tee -a "$OUT/watches.tsv" >&2
}
if [[ $WATCHES -gt 0 && -n ${PROCS[sluice]:-} ]]; then
    pid=$(start_sluice watch-rss 18449 "$SLUICE_BIN" "${SLUICE_LOG:-info}")
    PIDS+=($pid)
    hold_watches sluice 18449 "$pid"
fi
if [[ $WATCHES -gt 0 && -n ${PROCS[nginx]:-} ]]; then
    # A fresh nginx configured for watches: events go out as they come (no buffering) and
    # an idle watch is not cut after nginx's default 60 s.
    start_nginx "$W/nginx-watch" 18453 "proxy_buffering off; proxy_read_timeout 3600s;"
    # shellcheck disable=SC2046
    hold_watches nginx 18453 $(nginx_pids "$W/nginx-watch")
fi

python3 "$ROOT/benches/summarize.py" "$RESULTS" "${OUT}/watches.tsv" | tee "$OUT/summary.md"
log "results in $OUT"
[[ -s "$OUT/failures.log" ]] && cp -r "$W" "$OUT/work" && log "failures: work dir kept in $OUT/work"
rm -rf "$W"
