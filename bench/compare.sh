#!/usr/bin/env bash
# segda against PyTorch on the same networks, steps, shapes and threads, in the same run.
# Prints, per (network, step): both median times, the ratio PyTorch time / segda time (> 1: segda
# is faster) and both peak memories. PyTorch comes from a throwaway venv (installed if missing).
#
# Usage: bash bench/compare.sh            (both networks, all steps, all cores)
#   NETS="mobilenet_v2" STEPS="train infer" THREADS=2 ITERS=5 WARMUP=2 DEVICE=cpu \
#   TRAIN_SIZE=256x512 INFER_SIZE=512x1024 BATCH=1 TORCH_VENV=target/torchvenv bash bench/compare.sh
# On a GPU machine: DEVICE=cuda (segda must be built with --features cuda; segda uses cuda:0).
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
OUT=${OUT:-target/bench}
SEGDA=${SEGDA:-target/release/segda}

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "installing PyTorch into $VENV (once; a few GB)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch safetensors
fi
[ -x "$SEGDA" ] || cargo build --release
mkdir -p "$OUT"
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

seg_args=(--batch "$BATCH" --train-size "$TRAIN_SIZE" --infer-size "$INFER_SIZE" --warmup "$WARMUP" --iters "$ITERS")
for n in $NETS; do seg_args+=(--net "$n"); done
for s in $STEPS; do seg_args+=(--step "$s"); done
segda_dev=$DEVICE; [ "$DEVICE" = cuda ] && segda_dev=cuda:0

echo "== segda ==" >&2
"$SEGDA" bench "${seg_args[@]}" --device "$segda_dev" --json "$OUT/segda.json"
echo "== PyTorch ==" >&2
# shellcheck disable=SC2086
"$VENV/bin/python" bench/torch_reference.py --net $NETS --step $STEPS --batch "$BATCH" --train-size "$TRAIN_SIZE" \
  --infer-size "$INFER_SIZE" --warmup "$WARMUP" --iters "$ITERS" --threads "$THREADS" --device "$DEVICE" --json "$OUT/torch.json"

"$VENV/bin/python" - "$OUT/segda.json" "$OUT/torch.json" <<'PY'
import json, sys
ours = {(r["net"], r["step"]): r for r in json.load(open(sys.argv[1]))}
ref = {(r["net"], r["step"]): r for r in json.load(open(sys.argv[2]))}
fmt = lambda v: "-" if v is None else f"{v:.0f}"
print(f"\n| net | step | size | PyTorch s | segda s | speed ratio (PyTorch/segda) | PyTorch MiB | segda MiB | memory ratio (segda/PyTorch) |")
print("|---|---|---|---|---|---|---|---|---|")
for k, o in ours.items():
    t = ref.get(k)
    if t is None:
        continue
    mem = (o["peak_rss_mib"] / t["peak_rss_mib"]) if o["peak_rss_mib"] and t["peak_rss_mib"] else None
    print(f"| {k[0]} | {k[1]} | {'x'.join(map(str, o['size']))} | {t['median_s']:.3f} | {o['median_s']:.3f} | "
          f"**{t['median_s'] / o['median_s']:.2f}×** | {fmt(t['peak_rss_mib'])} | {fmt(o['peak_rss_mib'])} | "
          f"{'-' if mem is None else f'{mem:.2f}'} |")
PY
