#!/usr/bin/env bash
# segda against PyTorch on the same networks, steps, shapes and threads, in the same run.
# Prints, per (network, step): both median times, the ratio PyTorch time / segda time (> 1: segda
# is faster) and both peak memories. PyTorch comes from a throwaway venv (installed if missing).
#
# Usage: bash bench/compare.sh            (both networks, all steps, all cores)
#   NETS="mobilenet_v2" STEPS="train infer" THREADS=2 ITERS=5 WARMUP=2 DEVICE=cpu \
#   TRAIN_SIZE=256x512 INFER_SIZE=512x1024 BATCH=1 ROUNDS=3 TORCH_VENV=target/torchvenv bash bench/compare.sh
# ROUNDS > 1 repeats the whole comparison; the table gives the median and every round's ratio.
# On a GPU machine: DEVICE=cuda (segda must be built with --features cuda; segda uses cuda:0), or
# DEVICE=wgpu (built with --features wgpu; PyTorch then runs on the CPU). TORCH_PYTHON=python3 uses
# an installed PyTorch instead of the venv; SEGDA= names the binary; BENCH_OUT= the JSON folder.
set -euo pipefail
cd "$(dirname "$0")/.."
NETS=${NETS:-"mobilenet_v2 resnet101"}
STEPS=${STEPS:-"train adapt apoda infer"}
THREADS=${THREADS:-$(nproc)}
ITERS=${ITERS:-5}
WARMUP=${WARMUP:-2}
BATCH=${BATCH:-1}
TRAIN_SIZE=${TRAIN_SIZE:-256x512}
INFER_SIZE=${INFER_SIZE:-512x1024}
DEVICE=${DEVICE:-cpu}
VENV=${TORCH_VENV:-target/torchvenv}
OUT=${BENCH_OUT:-target/bench}
SEGDA=${SEGDA:-target/release/segda}
PYTHON=${TORCH_PYTHON:-$VENV/bin/python}

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  [ -n "${TORCH_PYTHON:-}" ] && { echo "$TORCH_PYTHON cannot import torch" >&2; exit 2; }
  echo "installing PyTorch into $VENV (once; a few GB)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch safetensors
fi
[ -x "$SEGDA" ] || cargo build --release
mkdir -p "$OUT"
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

common=(--batch "$BATCH" --train-size "$TRAIN_SIZE" --infer-size "$INFER_SIZE" --warmup "$WARMUP" --iters "$ITERS")
segda_dev=$DEVICE torch_dev=$DEVICE
[ "$DEVICE" = cuda ] && segda_dev=cuda:0
[ "$DEVICE" = wgpu ] && torch_dev=cpu

# Row by row, segda then PyTorch, ROUNDS times: the two sides of a ratio run minutes apart at most,
# so a machine whose speed drifts (shared VMs do) biases the ratio less than two whole passes would.
rm -f "$OUT"/segda_*.json "$OUT"/torch_*.json
for r in $(seq 1 "${ROUNDS:-1}"); do
  for n in $NETS; do
    for s in $STEPS; do
      echo "== round $r: $n $s ==" >&2
      # a row that fails is reported and left out of the table; the others still run
      "$SEGDA" bench "${common[@]}" --net "$n" --step "$s" --device "$segda_dev" --json "$OUT/segda_${r}_${n}_${s}.json" >/dev/null \
        || echo "segda failed on $n $s" >&2
      "$PYTHON" bench/torch_reference.py "${common[@]}" --net "$n" --step "$s" --threads "$THREADS" \
        --device "$torch_dev" --json "$OUT/torch_${r}_${n}_${s}.json" >/dev/null || echo "PyTorch failed on $n $s" >&2
    done
  done
done

"$PYTHON" - "$OUT" <<'PY'
import glob, json, os, statistics, sys
def load(side):
    rows = {}
    for f in sorted(glob.glob(f"{sys.argv[1]}/{side}_*.json"), key=os.path.getmtime):  # run order
        for r in json.load(open(f)):
            rows.setdefault((r["net"], r["step"]), []).append(r)
    return rows
ours, ref = load("segda"), load("torch")
fmt = lambda v: "-" if v is None else f"{v:.0f}"
med = lambda rows, key: statistics.median(r[key] for r in rows) if all(r.get(key) for r in rows) else None
gpu = any(r.get("device_mib") for rows in ref.values() for r in rows)
mem_key, mem_name = ("device_mib", "GPU MiB") if gpu else ("peak_rss_mib", "MiB")
print(f"\n| net | step | size | PyTorch s | segda s | speed ratio (PyTorch/segda) | ratio per round | PyTorch {mem_name} | segda {mem_name} | memory ratio (segda/PyTorch) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for k, o in ours.items():
    t = ref.get(k)
    if not t:
        continue
    ratios = [a["median_s"] / b["median_s"] for a, b in zip(t, o)]
    tm, om = med(t, mem_key), med(o, mem_key)
    mem = om / tm if tm and om else None
    print(f"| {k[0]} | {k[1]} | {'x'.join(map(str, o[0]['size']))} | {med(t, 'median_s'):.3f} | {med(o, 'median_s'):.3f} | "
          f"**{statistics.median(ratios):.2f}×** | {' / '.join(f'{x:.2f}' for x in ratios)} | {fmt(tm)} | {fmt(om)} | "
          f"{'-' if mem is None else f'{mem:.2f}'} |")
PY
