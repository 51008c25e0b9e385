#!/usr/bin/env bash
# Render a `segda report` page in headless Chromium and take a screenshot, to see that the page
# renders (charts, tables, image grid) without any network access.
#
#   scripts/report_screenshot.sh RUN_DIR... [-- extra `segda report` options]
#   scripts/report_screenshot.sh page.html          (screenshot an existing report)
#
# Writes $OUT/report.html (unless given one) and $OUT/report.png; OUT defaults to
# target/report-screenshot. Needs Debian's chromium (apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/report-screenshot}
SEGDA=${SEGDA:-target/release/segda}
SIZE=${SIZE:-1400,3000}
[ $# -ge 1 ] || { sed -n 2,9p "$0"; exit 2; }
command -v chromium >/dev/null || { echo "chromium not found: apt-get install -y chromium" >&2; exit 2; }
mkdir -p "$OUT"

if [ $# -eq 1 ] && [[ "$1" == *.html ]]; then
    page=$1
else
    [ -x "$SEGDA" ] || cargo build --release
    runs=() extra=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do runs+=("$1"); shift; done
    [ $# -gt 0 ] && shift && extra=("$@")
    page=$OUT/report.html
    "$SEGDA" report "${runs[@]}" --out "$page" "${extra[@]}"
fi
url="file://$(realpath "$page")"

# the page must not reach out: any http(s) reference is a failure
if grep -Eq "(src|href)=\"https?://|url\\(https?://" "$page"; then
    echo "FAIL: $page references the network" >&2
    exit 1
fi
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$SIZE")
# the DOM after loading: charts and images must be there
dom=$(chromium "${flags[@]}" --dump-dom "$url" 2>/dev/null)
count() { { grep -o "$1" <<<"$dom" || true; } | wc -l; }
svgs=$(count "<svg")
imgs=$(count '<img src="data:image/png')
echo "rendered DOM: $svgs SVG charts, $imgs inline PNG images"
[ "$svgs" -gt 0 ] || { echo "FAIL: no chart in the rendered page" >&2; exit 1; }
chromium "${flags[@]}" --screenshot="$OUT/report.png" "$url" 2>/dev/null
size=$(stat -c %s "$OUT/report.png" 2>/dev/null || echo 0)
[ "$size" -gt 20000 ] || { echo "FAIL: screenshot missing or blank ($size bytes)" >&2; exit 1; }
echo "screenshot: $OUT/report.png ($size bytes)"
