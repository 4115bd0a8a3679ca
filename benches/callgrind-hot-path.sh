#!/usr/bin/env bash
# Instructions one request's parse + classify + decide costs, counted by callgrind in the
# hot_path bench: a figure that repeats exactly for the same build, for comparing two builds
# (or two commits) on a machine whose wall clock swings too much to show 5%.
#
#   benches/callgrind-hot-path.sh                                # the tree's hot_path bench
#   benches/callgrind-hot-path.sh path/to/hot_path_a path/to/hot_path_b   # A/B
#
# A bench binary is what `cargo bench --bench hot_path --no-run` prints. Environment: CASES
# (the parse_classify_decide benchmarks, all by default). Needs valgrind.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CASES=${CASES:-"get_pod list_deployments watch_pods runbook_scale read_secret_denied exec_denied discovery"}
source "$(dirname "$0")/e2e-lib.sh"
need valgrind valgrind

BINS=("$@")
if [[ ${#BINS[@]} -eq 0 ]]; then
    log "building the hot_path bench"
    bin=$(cd "$ROOT" && cargo bench --bench hot_path --no-run 2>&1 |
        sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
    [[ -n $bin ]] || { echo "could not find the hot_path bench binary" >&2; exit 1; }
    [[ $bin == /* ]] || bin=$ROOT/$bin
    BINS=("$bin")
fi

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for ((b = 0; b < ${#BINS[@]}; b++)); do
    for case in $CASES; do
        # --profile-time runs the routine without criterion's analysis; the count a call
        # comes from callgrind's call counts, so how long it ran does not matter.
        valgrind --tool=callgrind --callgrind-out-file="$W/$b.$case" "${BINS[$b]}" --bench \
            --profile-time 1 "^parse_classify_decide/$case\$" >/dev/null 2>&1
    done
done

python3 - "$W" "${#BINS[@]}" "$CASES" "${BINS[@]}" <<'PY'
import re, sys
work, nbins, cases, bins = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
STAGES = ("RequestInfo::parse", "classify::classify", "Policy::decide")

def per_call(path):
    """Inclusive instructions a call of each stage: the cost callgrind records at each call."""
    names, calls, cost = {}, {}, {}
    callee = pending = None
    for line in open(path):
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?", line)
        if m:
            kind, ident, name = m.groups()
            if name:
                names[ident] = name.strip()
            callee = ident if kind == "cfn" else None
            continue
        m = re.match(r"^calls=(\d+)", line)
        if m and callee:
            calls[callee] = calls.get(callee, 0) + int(m.group(1))
            pending = callee
            continue
        if pending:
            fields = line.split()
            if len(fields) >= 2:
                cost[pending] = cost.get(pending, 0) + int(fields[1])
            pending = None
    out = {}
    for ident, name in names.items():
        for stage in STAGES:
            if name.endswith(stage) and calls.get(ident):
                out[stage] = out.get(stage, 0) + cost[ident] / calls[ident]
    missing = [s for s in STAGES if s not in out]
    if missing:
        sys.exit(f"{path}: no calls of {missing} (inlined into the bench?)")
    return out

print("instructions a request: parse + classify + decide (parse / classify / decide)")
header = f"{'case':20}" + "".join(f"{'build ' + chr(65 + b):>30}" for b in range(nbins))
if nbins == 2:
    header += f"{'B/A':>7}"
print(header)
for case in cases:
    row, totals = f"{case:20}", []
    for b in range(nbins):
        c = per_call(f"{work}/{b}.{case}")
        total = sum(c.values())
        totals.append(total)
        parts = " / ".join(f"{c[s]:.0f}" for s in STAGES)
        row += f"{total:>10.0f} ({parts})".rjust(30)
    if nbins == 2:
        row += f"{totals[1] / totals[0]:>7.3f}"
    print(row)
for b, path in enumerate(bins):
    print(f"build {chr(65 + b)}: {path}")
PY
