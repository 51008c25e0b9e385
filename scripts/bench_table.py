#!/usr/bin/env python3
"""Summarise runs/bench/<method>/seed*/metrics.jsonl (or runs/adapt/...): per method, the final and the best val mIoU
(mean ± std over seeds, with the seeds' values), as a Markdown table for docs/benchmarks.md.
Usage: python3 scripts/bench_table.py [runs/bench] [METHOD ...]"""
import json, os, statistics, sys

root = sys.argv[1] if len(sys.argv) > 1 else "runs/bench"
only = sys.argv[2:]
def ms(v):
    if not v:
        return "–"
    if len(v) == 1:
        return f"{v[0]:.2f}"
    return f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}"
print("| method | seeds | final mIoU | best mIoU | per seed: final / best |")
print("|---|---|---|---|---|")
for m in only or sorted(os.listdir(root)):
    final, best, cells = [], [], []
    d = os.path.join(root, m)
    for s in sorted(os.listdir(d)):
        p = os.path.join(d, s, "metrics.jsonl")
        if not os.path.exists(p):
            continue
        ev = [json.loads(l) for l in open(p) if '"eval"' in l]
        if not ev:
            continue
        done = os.path.exists(os.path.join(d, s, "checkpoints", "last", "progress.json")) and \
            json.load(open(os.path.join(d, s, "checkpoints", "last", "progress.json"))).get("finished")
        if not done:
            continue
        f, b = ev[-1]["miou"], max(e["miou"] for e in ev)
        final.append(f); best.append(b); cells.append(f"{f:.1f} / {b:.1f}")
    print(f"| {m} | {len(final)} | {ms(final)} | {ms(best)} | {', '.join(cells)} |")
