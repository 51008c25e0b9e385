#!/usr/bin/env bash
# The `gemm` crate against PyTorch's sgemm on the ResNet-101 DeepLab's convolution shapes, same
# threads, same run: is a convolution row's gap the GEMM or the work around it?
# Usage: THREADS=2 bash bench/gemm_compare.sh   (PyTorch from the venv of bench/compare.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-$(nproc)}
VENV=${TORCH_VENV:-target/torchvenv}
"$VENV/bin/python" -c "import torch" 2>/dev/null || { python3 -m venv "$VENV"; "$VENV/bin/pip" install -q torch; }
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
ours=$(cargo bench -q --bench gemm)
theirs=$("$VENV/bin/python" bench/torch_gemm.py "$THREADS")
echo "| m × k × n | PyTorch ms | gemm crate ms | PyTorch GFLOP/s | gemm GFLOP/s | ratio (PyTorch/gemm) |"
echo "|---|---|---|---|---|---|"
paste -d' ' <(echo "$theirs") <(echo "$ours") | awk '{printf "| %s × %s × %s | %s | %s | %s | %s | %.2f× |\n", $1, $2, $3, $4, $9, $5, $10, $4 / $9}'
