#!/usr/bin/env bash
# The test suite: unit and integration tests, including the evaluation-equality test against
# cityscapesscripts, which is installed into a throwaway virtualenv under target/ on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/csvenv
if ! "$venv/bin/python" -c "import cityscapesscripts" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check cityscapesscripts "numpy<2.4"
fi
export SEGDA_PYTHON="$PWD/$venv/bin/python" SEGDA_REQUIRE_CSSCRIPTS=1
cargo test --release "$@"
