#!/usr/bin/env python3
"""Summarise runs/<group>/<method>/seed*/metrics.jsonl: per method, the final and the best val mIoU
(mean ± std over seeds, with the seeds' values), as a Markdown table for docs/benchmarks.md. With
--baseline NAME, also the gain of the final mIoU over that method's run of the same seed (paired:
in runs/adapt every method starts from the source-only model of its seed).
Usage: python3 scripts/bench_table.py [runs/bench] [--baseline source_only] [METHOD ...]"""
import json, os, statistics, sys

args = sys.argv[1:]
baseline = None
if "--baseline" in args:
    i = args.index("--baseline")
    baseline = args[i + 1]
    del args[i:i + 2]
root = args[0] if args else "runs/bench"
only = args[1:]

def ms(v):
    if not v:
        return "–"
    if len(v) == 1:
        return f"{v[0]:.2f}"
    return f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}"

def finished_runs(m):
    """{seed: (final, best)} of the finished runs of method m"""
    out = {}
    d = os.path.join(root, m)
    for s in sorted(os.listdir(d)):
        p = os.path.join(d, s, "metrics.jsonl")
        prog = os.path.join(d, s, "checkpoints", "last", "progress.json")
        if not (os.path.exists(p) and os.path.exists(prog) and json.load(open(prog)).get("finished")):
            continue
        ev = [json.loads(l) for l in open(p) if '"eval"' in l]
        if ev:
            out[s] = (ev[-1]["miou"], max(e["miou"] for e in ev))
    return out

base = finished_runs(baseline) if baseline else {}
print("| method | seeds | final mIoU | best mIoU | per seed: final / best |" + (f" final − {baseline} (paired) |" if baseline else ""))
print("|---|---|---|---|---|" + ("---|" if baseline else ""))
for m in only or sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e))):
    runs = finished_runs(m)
    final = [f for f, _ in runs.values()]
    best = [b for _, b in runs.values()]
    cells = ", ".join(f"{f:.1f} / {b:.1f}" for f, b in runs.values())
    row = f"| {m} | {len(runs)} | {ms(final)} | {ms(best)} | {cells} |"
    if baseline:
        gains = [runs[s][0] - base[s][0] for s in runs if s in base]
        row += f" {ms(gains)} |" if m != baseline else " – |"
    print(row)
