#!/usr/bin/env python3
"""The per-round LSE table of docs/benchmarks.md from finished runs.

Usage: scripts/lse_table.py RUN_DIR ...   (e.g. runs/bench/lse/seed1 runs/pilot/lse_l2/seed1)

Per run: the setting (the run's `name`), its seed, the mIoU of the model it started from (the
last evaluation of `train.init_from`'s run), the mIoU after each round, and each round's
pseudo-labels (pixel accuracy and mIoU against the held target labels, coverage, images), then
the share of the selected pixels labelled road and sidewalk with their precision (from the
rounds' summary.json), where the drift of this benchmark shows.
"""
import json
import pathlib
import re
import sys


def rows(run):
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]


def last_eval(run):
    ev = [r for r in rows(run) if r["kind"] == "eval"]
    return ev[-1]["miou"] if ev else None


def config_value(run, key):
    m = re.search(rf'^{key}\s*=\s*"?([^"\n]*)"?', (run / "config.toml").read_text(), re.M)
    return m.group(1) if m else None


def fmt(xs, digits=2):
    return " / ".join("–" if x is None else f"{x:.{digits}f}" for x in xs)


def main(runs):
    print("| setting | seed | start | after each round | pseudo-label acc. | pseudo-label mIoU | coverage | images | road share / prec. | sidewalk share / prec. |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in map(pathlib.Path, runs):
        rs = rows(run)
        rounds = [r for r in rs if r["kind"] == "round"]
        evals = {r["iter"]: r["miou"] for r in rs if r["kind"] == "eval"}
        # the evaluation closing round k is the one at the iteration where round k+1 starts (or the last)
        last = max(evals, default=-1)
        ends = [r["iter"] for r in rounds[1:]] + [last if rounds and last > rounds[-1]["iter"] else None]
        after = [evals.get(e) for e in ends]
        init = config_value(run, "init_from")
        start = None
        if init:
            src = pathlib.Path(init.replace("/checkpoints/last", "").replace("/checkpoints/best", ""))
            start = last_eval(src) if (src / "metrics.jsonl").is_file() else None
        classes = []
        for k in range(len(rounds)):
            f = run / "lse" / f"round_{k}" / "summary.json"
            classes.append(json.loads(f.read_text()).get("classes", {}) if f.is_file() else {})

        def share(c):
            return " / ".join(
                "–" if c not in t else f"{t[c]['share']:.1f} ({t[c].get('precision') or 0:.0f})" for t in classes
            )

        seed = config_value(run, "seed")
        print(
            f"| {config_value(run, 'name')} | {seed} | {'–' if start is None else f'{start:.2f}'} | {fmt(after)} "
            f"| {fmt([r.get('lse_pseudo_acc') for r in rounds], 1)} | {fmt([r.get('lse_pseudo_miou') for r in rounds], 1)} "
            f"| {fmt([r.get('lse_coverage') for r in rounds], 1)} | {' / '.join(str(int(r['lse_selected'])) for r in rounds)} "
            f"| {share('road')} | {share('sidewalk')} |"
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
