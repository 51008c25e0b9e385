#!/usr/bin/env bash
# The adaptation protocol of docs/benchmarks.md: every method starts from the source-only model of
# its seed (runs/bench/source_only/seedK: 800 iterations, trained first if missing) and adapts for
# ITERS more iterations at LR (poly to 0). source_only continued for the same iterations is the
# baseline, so every row has the same budget. Runs are resumable: finished seeds are skipped.
# Usage: scripts/bench_adapt.sh [METHOD ...]
#   JOBS=2 (default) runs two seeds at a time with one thread each (more throughput than one
#   run on two threads); ITERS=400, LR=0.001, SEEDS=3, OUT=runs/adapt.
set -euo pipefail
cd "$(dirname "$0")/.."
segda=target/release/segda
[ -x "$segda" ] || cargo build --release
[ -f data/synth/synth.json ] || "$segda" synth --out data/synth
JOBS=${JOBS:-2} ITERS=${ITERS:-400} LR=${LR:-0.001} SEEDS=${SEEDS:-3} OUT=${OUT:-runs/adapt}
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(source_only adaptsegnet advent minent apoda pit selftrain t2s ass)
threads=$(( $(nproc) / JOBS )); [ "$threads" -ge 1 ] || threads=1
weights=$("$segda" fetch-weights mobilenet_v2)
# stage 1: the source-only models every method starts from
RAYON_NUM_THREADS=$(nproc) "$segda" sweep --config configs/synth/source_only.toml --seeds "$SEEDS" --out runs/bench/source_only \
  --set model.init="\"$weights\"" >/dev/null
# stage 2: (method, seed) pairs, seed-major so that every method has k seeds before any has k+1
adapt() {
  local budget=(--set "train.iters=$ITERS" --set "train.max_iters=$ITERS" --set "train.lr=$LR" --set train.eval_every=100)
  case $1 in
    # the self-training methods' source-only warm-up is the stage-1 model here
    selftrain) budget+=(--set method.selftrain.warmup=0) ;;
    t2s) budget+=(--set method.t2s.base.warmup=0) ;;
    # LSE's schedule is its rounds (configs/synth/lse.toml); LSE_PMAX=0.20 stops after 3 of the 7
    lse | lse_asn) budget=(--set "method.lse.p_max=${LSE_PMAX:-0.40}") ;;&
    # the paper's protocol: LSE from the AdaptSegNet model of the seed (run `adaptsegnet` first)
    lse_asn) budget+=(--set "train.init_from=\"$OUT/adaptsegnet/seed{seed}/checkpoints/last\"") ;;
  esac
  RAYON_NUM_THREADS=$threads "$segda" sweep --config "configs/synth/$1.toml" --seeds "$SEEDS" --only "$2" --out "$OUT/$1" \
    --set "name=\"$1\"" --set "train.init_from=\"runs/bench/source_only/seed{seed}/checkpoints/last\"" "${budget[@]}" >/dev/null \
    && echo "$1 seed $2 done" || echo "$1 seed $2 FAILED"
}
export -f adapt; export segda threads SEEDS OUT ITERS LR LSE_PMAX
for s in $(seq 1 "$SEEDS"); do for m in "${methods[@]}"; do echo "$m $s"; done; done | xargs -P "$JOBS" -L 1 bash -c 'adapt "$@"' _
python3 scripts/bench_table.py "$OUT"
