#!/usr/bin/env bash
# The CUDA check, on a GPU machine with an NVIDIA driver, the CUDA toolkit (or NVRTC) and PyTorch,
# and no Rust toolchain or network: runs the GPU test suite on cuda:0 and then bench/compare.sh on
# CUDA (both networks, every step, PyTorch on the same GPU in the same run), with the binaries
# scripts/cuda_pack.sh built, carried in target/cuda-check/. Writes everything under $OUT.
#
#   OUT=/tmp/out bash scripts/cuda_check.sh
#
# Each part has its own time limit, so one that hangs cannot take the other's time: the tests
# TEST_LIMIT seconds (default 150), the comparison BENCH_LIMIT (default 180). At most ~6 minutes
# in all, so that a rerun still fits a 15-minute lease.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/cuda-check/out}
mkdir -p "$OUT"
pack=target/cuda-check
log() { echo "== $*" | tee -a "$OUT/summary.txt" >&2; }

for f in segda gpu-tests; do
  [ -f "$pack/$f.xz" ] || { log "missing $pack/$f.xz: run scripts/cuda_pack.sh first and carry target/cuda-check"; exit 2; }
  xz -dkfc "$pack/$f.xz" > "/tmp/segda-$f" && chmod +x "/tmp/segda-$f"
done
log "built for: $(cat "$pack/built-for" 2>/dev/null)"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || log "nvidia-smi failed"
log "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"

# NVRTC compiles the kernels at run time and needs the toolkit's headers (CUDA_PATH/include);
# the driver library comes with the driver. pip's NVIDIA wheels are a fallback for NVRTC.
export CUDA_PATH=${CUDA_PATH:-$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")}
libs="$CUDA_PATH/lib64"
for mod in nvidia.cuda_nvrtc nvidia.nccl; do
  d=$(python3 -c "import $mod, os; print(os.path.join(list($mod.__path__)[0], 'lib'))" 2>/dev/null) && libs="$libs:$d"
done
# data-parallel training loads NCCL as libnccl.so, a name runtime-only installs (pip's wheel:
# libnccl.so.2) do not have
nccl=$(ldconfig -p | awk '/libnccl\.so/ {print $NF; exit}')
[ -n "$nccl" ] || nccl=$(find / -name 'libnccl.so*' -not -path '/proc/*' 2>/dev/null | head -1)
if [ -n "$nccl" ]; then mkdir -p /tmp/segda-nccl && ln -sf "$nccl" /tmp/segda-nccl/libnccl.so && libs="$libs:/tmp/segda-nccl"; fi
export LD_LIBRARY_PATH="$libs:${LD_LIBRARY_PATH:-}"
log "CUDA_PATH=$CUDA_PATH; LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

log "GPU test suite on cuda:0"
start=$(date +%s)
# the tests time nothing: autotune's quickest pass will do
SEGDA_TEST_DEVICE=cuda:0 SEGDA_REQUIRE_GPU_TESTS=1 CUBECL_AUTOTUNE_LEVEL=minimal timeout "${TEST_LIMIT:-150}" \
  /tmp/segda-gpu-tests --test-threads=1 > "$OUT/gpu-tests.log" 2>&1
rc=$?
log "tests: exit $rc after $(( $(date +%s) - start )) s; $(grep -E '^test result' "$OUT/gpu-tests.log" | tail -1)"

log "segda against PyTorch on CUDA (bench/compare.sh)"
start=$(date +%s)
DEVICE=cuda SEGDA=/tmp/segda-segda TORCH_PYTHON=python3 BENCH_OUT=/tmp/segda-bench ROUNDS=${ROUNDS:-1} \
  ITERS=${ITERS:-5} WARMUP=${WARMUP:-3} TRAIN_SIZE=${TRAIN_SIZE:-512x1024} THREADS=$(nproc) \
  timeout "${BENCH_LIMIT:-180}" bash bench/compare.sh > "$OUT/compare.md" 2> "$OUT/compare.log"
log "compare: exit $? after $(( $(date +%s) - start )) s"
cat "$OUT/compare.md" >&2
exit $rc
