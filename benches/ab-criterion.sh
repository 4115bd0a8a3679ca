#!/usr/bin/env bash
# Compares two builds of one criterion bench on a noisy machine: runs them interleaved
# (A B A B …), takes each benchmark's median time per run, and prints per benchmark the
# median of A and of B over the rounds and the median of the per-round ratios B/A.
#
#   benches/ab-criterion.sh BENCH_BINARY_A BENCH_BINARY_B [FILTER] [ROUNDS]
#
# The bench binaries are what `cargo bench --bench NAME --no-run` prints (build the other
# commit in a worktree with its own CARGO_TARGET_DIR). FILTER is a criterion filter (regex).
set -euo pipefail
a=${1:?bench binary A}
b=${2:?bench binary B}
filter=${3:-}
rounds=${4:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() { # binary label round
    "$1" --bench --warm-up-time 1 --measurement-time 2 ${filter:+"$filter"} 2>/dev/null |
        awk -v label="$2" -v round="$3" '
            /^Benchmarking / { next }
            /time:/ { if ($2 == "time:") name = $1;
                      split($0, t, "[][]"); split(t[2], v, " +"); mid = v[3]; unit = v[4];
                      f = (unit == "µs" ? 1000 : unit == "ms" ? 1e6 : unit == "ps" ? 0.001 : 1);
                      print label, round, name, mid * f; next }
            NF == 1 { name = $1 }'
}
for ((r = 1; r <= rounds; r++)); do
    run "$a" A "$r" >>"$out/all"
    run "$b" B "$r" >>"$out/all"
done
python3 - "$out/all" <<'PY'
import sys, statistics, collections
t = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    label, rnd, name, ns = line.split()
    t[name].setdefault(label, {})[rnd] = float(ns)
print(f"{'benchmark':48} {'A ns':>8} {'B ns':>8} {'B/A':>6}")
for name, runs in t.items():
    if name == "change:":  # criterion's comparison with its previous run, not a benchmark
        continue
    a, b = runs.get("A", {}), runs.get("B", {})
    ratios = [b[r] / a[r] for r in a if r in b and a[r] > 0]
    if not ratios:
        continue
    print(f"{name:48} {statistics.median(a.values()):8.1f} {statistics.median(b.values()):8.1f} "
          f"{statistics.median(ratios):6.2f}")
PY
