#!/usr/bin/env bash
# The synthetic-benchmark comparison of docs/benchmarks.md: every method for 3 seeds with the
# same iteration budget, then the table. Runs are resumable: re-running skips finished seeds.
# Usage: scripts/bench_synth.sh [METHOD ...]   (default: all of them)
set -euo pipefail
cd "$(dirname "$0")/.."
segda=target/release/segda
[ -x "$segda" ] || cargo build --release
[ -f data/synth/synth.json ] || "$segda" synth --out data/synth
weights=$("$segda" fetch-weights mobilenet_v2)
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(source_only adaptsegnet advent minent apoda oracle)
for m in "${methods[@]}"; do
  /usr/bin/time -f "$m: %e s wall" "$segda" sweep --config "configs/synth/$m.toml" --seeds 3 --out "runs/bench/$m" \
    --set model.init="\"$weights\""
done
runs=()
for m in "${methods[@]}"; do for s in 1 2 3; do runs+=(--run "runs/bench/$m/seed$s"); done; done
"$segda" eval "${runs[@]}"
