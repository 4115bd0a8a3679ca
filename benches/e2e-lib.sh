# Shared by the end-to-end bench scripts (sourced, not run): logging, installing a missing
# tool, waiting for a port, and the bench agent's credentials and policy.

log() { echo "[$(date +%T)] $*" >&2; }

need() { # command package
    command -v "$1" >/dev/null && return
    log "installing $2"
    apt-get install -y -q "$2" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$2" >/dev/null; }
}

# W: a new work directory for one run, TARGET/bench-e2e/NAME.XXXXXX (on the real disk under
# target/, so fsync costs what it costs).
make_workdir() { # name
    mkdir -p "$TARGET/bench-e2e"
    W=$(mktemp -d "$TARGET/bench-e2e/$1.XXXXXX")
}

# Builds the driver (benches/e2e/, a bench target) in release mode and copies it to
# $TARGET/release/bench_e2e, a name that does not change with each build's hash.
build_helper() {
    local exe
    exe=$(cd "$ROOT" && cargo build --release -q --bench e2e --message-format=json |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
    [[ -n $exe ]] || { echo "could not build benches/e2e/" >&2; return 1; }
    cp "$exe" "$TARGET/release/bench_e2e"
}

# HELPER: the driver, built in release mode if missing.
find_helper() {
    HELPER=$TARGET/release/bench_e2e
    [[ -x $HELPER ]] || build_helper
}

# Stops every process in PIDS (the upstream, sluice, …): the scripts' exit trap.
stop_pids() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

wait_port() { # port [tries of 0.05 s]
    for _ in $(seq "${2:-200}"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    log "nothing listens on $1"; return 1
}

# The one agent the benches send as ($TOKEN), allowed every tier everywhere.
# AGENTS (1 unless set): how many agents credentials.yaml lists; the bench agent is the last.
write_agent_files() { # dir
    {
        echo "agents:"
        python3 -c 'import hashlib, sys
for i in range(int(sys.argv[1]) - 1):
    print("  - {name: agent-%d, token_sha256: \"%s\"}" % (i, hashlib.sha256(b"sluice_other-%d" % i).hexdigest()))' "${AGENTS:-1}"
        echo "  - {name: claude-code, token_sha256: \"$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)\"}"
        echo "approvers: []"
    } > "$1/credentials.yaml"
    cat > "$1/policy.yaml" <<'EOT'
default: deny
agents:
  claude-code:
    rules:
      - namespaces: ["*"]
        tiers: {0: allow, 1: allow, 2: allow, 3: allow, 4: allow}
EOT
}

# The credential sluice (nginx, kubectl proxy) presents upstream, shaped and sized like the
# projected ServiceAccount token a pod is given (an RS256 JWT, ~1 KB): every request
# carries it, so a short stand-in would hide what sending it costs. Same bytes every run.
upstream_token() {
    python3 - <<'PY'
import base64, hashlib, json
def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
def part(obj):
    return b64(json.dumps(obj, separators=(",", ":")).encode())
uid = lambda seed: hashlib.md5(seed.encode()).hexdigest()
header = {"alg": "RS256", "kid": b64(hashlib.sha256(b"sluice-bench-kid").digest())}
claims = {
    "aud": ["https://kubernetes.default.svc.cluster.local"],
    "exp": 1796000000, "iat": 1795996400, "nbf": 1795996400,
    "iss": "https://kubernetes.default.svc.cluster.local",
    "jti": uid("jti"),
    "kubernetes.io": {
        "namespace": "sluice-system",
        "node": {"name": "worker-pool-a-7f9c2d-x1", "uid": uid("node")},
        "pod": {"name": "sluice-6d8f9b7c5d-4kq2z", "uid": uid("pod")},
        "serviceaccount": {"name": "sluice", "uid": uid("sa")},
        "warnafter": 1795999007,
    },
    "sub": "system:serviceaccount:sluice-system:sluice",
}
signature = b"".join(hashlib.sha512(bytes([i])).digest() for i in range(4))  # 256 bytes
print(f"{part(header)}.{part(claims)}.{b64(signature)}", end="")
PY
}

# The bench upstream, and what sluice needs to reach it, in DIR: the PKI, the upstream token
# and the bench agent's credentials and policy. Starts `bench_e2e upstream` ($HELPER) on
# $PORT_UP, its pid added to PIDS.
start_upstream() { # dir
    "$HELPER" pki "$1" > /dev/null
    upstream_token > "$1/upstream-token"
    # BODY: bytes of the object every GET gets (1 KB unless set).
    "$HELPER" upstream "$1/server.crt" "$1/server.key" "127.0.0.1:$PORT_UP" ${BODY:+"$BODY"} \
        > "$1/upstream.log" 2>&1 &
    PIDS+=($!)
    wait_port "$PORT_UP"
    write_agent_files "$1"
}

# sluice.yaml serving the bench agent on 127.0.0.1:PORT in front of the upstream on $PORT_UP,
# with the files start_upstream wrote in SHARED (relative to the config file's directory).
write_sluice_yaml() { # file port shared-dir [audit sync]
    cat > "$1" <<EOT
listen: 127.0.0.1:$2
tls: {cert: $3/server.crt, key: $3/server.key}
upstream: {server: "https://127.0.0.1:$PORT_UP", ca: $3/ca.crt, token_file: $3/upstream-token}
credentials: $3/credentials.yaml
policy: $3/policy.yaml
audit: {path: audit.jsonl, sync: ${4:-fsync}}
admin: {listen: 127.0.0.1:0}
EOT
}

# A new connection and TLS handshake for every request: CLIENTS clients in a loop for SECS
# seconds (`bench_e2e connections` (benches/e2e/), what every kubectl run makes), each request's
# line in LOG. Prints "answered-2xx attempted per-second"; the helper's own output goes to
# LOG.out. Runs under GEN (run-e2e.sh's PIN) if set.
fresh_connections() { # url proto clients secs log
    ${GEN[@]+"${GEN[@]}"} timeout $(($4 + 30)) "$HELPER" connections "$1" "$W/ca.crt" "$TOKEN" \
        "$2" "$3" "$4" "$5" > "$5.out" 2>&1 || true
    sed -n 's/^connections: \([0-9]*\) answered 2xx of \([0-9]*\) in .*, \([0-9.]*\) a second$/\1 \2 \3/p' "$5.out"
}

# Exactly N requests to URL as the bench agent with h2load: PROTO (h1 | h2), CONNS, STREAMS a
# connection over HTTP/2 (1 unless set). h2load's report goes to OUT; fails unless every
# request succeeded.
load_exactly() { # requests url out
    local args=(-n "$1" -c "$CONNS" -t 1 -H "authorization: Bearer $TOKEN")
    if [[ $PROTO == h1 ]]; then args+=(--h1 -m 1); else args+=(-m "${STREAMS:-1}"); fi
    h2load "${args[@]}" "$2" > "$3"
    local ok
    ok=$(awk '/^requests:/ { print $8 }' "$3")
    [[ $ok == "$1" ]] || { log "only $ok of $1 requests succeeded"; cat "$3" >&2; return 1; }
}
