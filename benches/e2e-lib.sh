# Shared by the end-to-end bench scripts (sourced, not run): logging, installing a missing
# tool, waiting for a port, and the bench agent's credentials and policy.

log() { echo "[$(date +%T)] $*" >&2; }

need() { # command package
    command -v "$1" >/dev/null && return
    log "installing $2"
    apt-get install -y -q "$2" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$2" >/dev/null; }
}

wait_port() { # port [tries of 0.05 s]
    for _ in $(seq "${2:-200}"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    log "nothing listens on $1"; return 1
}

# The one agent the benches send as ($TOKEN), allowed every tier everywhere.
write_agent_files() { # dir
    cat > "$1/credentials.yaml" <<EOT
agents:
  - {name: claude-code, token_sha256: "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)"}
approvers: []
EOT
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
