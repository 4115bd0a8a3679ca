#!/usr/bin/env python3
"""Summarises benches/run-e2e.sh results: medians over rounds per (protocol, connections,
proxy), and medians of per-round pair ratios sluice/direct, sluice/nginx (and sluice_b/sluice,
sluice_quiet/sluice when those ran). Prints Markdown."""

import csv
import statistics
import sys
from collections import defaultdict


def main(results, watches=None):
    rows = list(csv.DictReader(open(results), delimiter="\t"))
    by = defaultdict(dict)  # (proto, conns, round) -> proxy -> row
    for r in rows:
        by[(r["proto"], int(r["conns"]), r["round"])][r["proxy"]] = r
    proxies = list(dict.fromkeys(r["proxy"] for r in rows))
    keys = sorted({(p, c) for p, c, _ in by}, key=lambda k: (k[0] != "h2", k[1]))
    med = lambda xs: statistics.median(xs) if xs else float("nan")

    print("| proto | conns | proxy | req/s | p50 ms | p99 ms | proxy CPU s/10k req | upstream CPU s/10k req |")
    print("|---|---|---|---|---|---|---|---|")
    for proto, conns in keys:
        rounds = [v for (p, c, _), v in by.items() if (p, c) == (proto, conns)]
        for proxy in proxies:
            rs = [r[proxy] for r in rounds if proxy in r]
            if not rs:
                continue
            f = lambda col: med([float(r[col]) for r in rs])
            cpu = "–" if proxy == "direct" else f"{f('proxy_cpu_s_per_10k'):.2f}"
            print(
                f"| {proto} | {conns} | {proxy} | {f('rps'):,.0f} | {f('p50_ms'):.2f} | "
                f"{f('p99_ms'):.2f} | {cpu} | {f('upstream_cpu_s_per_10k'):.2f} |"
            )

    pairs = [(a, b) for a, b in [
        ("sluice", "direct"), ("sluice", "nginx"), ("sluice", "kubectl"),
        ("sluice_b", "sluice"), ("sluice_c", "sluice"), ("sluice_quiet", "sluice"),
        ("sluice_flush", "sluice"), ("sluice_1w", "sluice"), ("sluice_1w", "nginx"),
    ] if a in proxies and b in proxies]
    if pairs:
        print()
        print("Medians of per-round pair ratios (throughput: higher is better for the first; "
              "p99 and CPU: lower is better for the first).")
        print()
        print("| proto | conns | ratio | req/s | p99 | proxy CPU/req |")
        print("|---|---|---|---|---|---|")
        for proto, conns in keys:
            rounds = [v for (p, c, _), v in by.items() if (p, c) == (proto, conns)]
            for a, b in pairs:
                both = [r for r in rounds if a in r and b in r]
                if not both:
                    continue
                ratio = lambda col: med([float(r[a][col]) / float(r[b][col]) for r in both
                                         if float(r[b][col]) > 0])
                cpu = "–" if b == "direct" else f"{ratio('proxy_cpu_s_per_10k'):.2f}"
                print(f"| {proto} | {conns} | {a}/{b} | {ratio('rps'):.2f} | "
                      f"{ratio('p99_ms'):.2f} | {cpu} |")

    if watches:
        try:
            lines = open(watches).read().splitlines()
        except OSError:
            return
        print()
        for line in lines:
            cols = line.split("\t")
            name, d = cols[0], dict(zip(cols[1::2], cols[2::2]))
            print(f"Idle watches through {name}: {d.get('watches')} open, "
                  f"{d.get('per_conn')} a connection; RSS "
                  f"{int(d['rss_idle_kb']) / 1024:.1f} MB idle → {int(d['rss_kb']) / 1024:.1f} MB "
                  f"holding them.")

if __name__ == "__main__":
    main(*sys.argv[1:])
