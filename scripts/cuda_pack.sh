#!/usr/bin/env bash
# Builds, on a machine with a Rust toolchain, what the CUDA check (scripts/cuda_check.sh) needs on
# a GPU machine that has none: segda and the GPU test suite (tests/gpu.rs) built with
# `--features cuda`, stripped and xz-compressed into target/cuda-check/. Kernels are compiled at
# run time by NVRTC, so nothing here needs a GPU or the CUDA toolkit.
#
#   CUDARC_CUDA_VERSION=13000 bash scripts/cuda_pack.sh     # the GPU machine's CUDA: 13.0 → 13000
#
# The build goes to target/cuda (its own target directory, so the CPU build in target/release is
# left alone); a first build takes ~15-25 min on 2 cores, a rebuild after a change a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
out=target/cuda-check
mkdir -p "$out"

cargo build --release --features cuda --bin segda
tests=$(cargo test --release --features cuda --test gpu --no-run --message-format=json \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "gpu" and m.get("executable"):
        print(m["executable"])')
[ -n "$tests" ] || { echo "cuda_pack: the GPU test binary was not built" >&2; exit 1; }

strip -o "$out/segda" "$CARGO_TARGET_DIR/release/segda"
strip -o "$out/gpu-tests" "$tests"
xz -T0 -6 -f "$out/segda" "$out/gpu-tests"
git describe --always --dirty > "$out/commit"
echo "CUDA $CUDARC_CUDA_VERSION, commit $(cat "$out/commit")" > "$out/built-for"
du -b "$out"/* | awk '{printf "%8.1f MiB  %s\n", $1 / 1048576, $2}'
echo "carry target/cuda-check to the GPU machine and run: bash scripts/cuda_check.sh"
