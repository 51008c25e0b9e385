#!/usr/bin/env bash
# The test suite (CI runs exactly this): rustfmt and clippy, unit and integration tests, with
# - the evaluation-equality test against cityscapesscripts, installed into a throwaway virtualenv
#   under target/ on first use;
# - the GPU-path suite (tests/gpu.rs) on burn's wgpu backend over Mesa's software Vulkan driver
#   (lavapipe), installed with apt when missing: the kernels CUDA runs, compiled for the CPU
#   (docs/gpu.md). The build leaves out burn's kernel fusion and autotuning (`wgpu-unfused`),
#   which would multiply the kernels lavapipe has to compile.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/csvenv
if ! "$venv/bin/python" -c "import cityscapesscripts" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check cityscapesscripts "numpy<2.4"
fi
export SEGDA_PYTHON="$PWD/$venv/bin/python" SEGDA_REQUIRE_CSSCRIPTS=1

if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  echo "installing Mesa's software Vulkan driver (lavapipe) for the GPU-path tests" >&2
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi
# wgpu:cpu = the CPU adapter lavapipe offers; the Vulkan loader wants a runtime directory
export SEGDA_TEST_DEVICE=${SEGDA_TEST_DEVICE:-wgpu:cpu} SEGDA_REQUIRE_GPU_TESTS=1
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
# formatting, then clippy on the very build the tests run (clippy-driver compiles this crate, rustc
# its dependencies: no second compilation), every rustc and clippy warning an error
if command -v rustup >/dev/null; then rustup component add rustfmt clippy >/dev/null 2>&1 || true; fi
cargo fmt --check
clippy="$(rustc --print sysroot)/bin/clippy-driver"
[ -x "$clippy" ] || { echo "clippy is not installed (rustup component add clippy)" >&2; exit 1; }
export RUSTC_WORKSPACE_WRAPPER="$clippy" CLIPPY_ARGS=-Dwarnings
cargo test --release --features wgpu-unfused "$@"
