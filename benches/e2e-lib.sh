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
