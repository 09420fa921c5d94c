#!/usr/bin/env bash
# smoke_abliterated.sh BASE_DIR EDITED_DIR [OUT_DIR] [extra `ablbench smoke` options]
# Base vs abliterated on a handful of shell prompts, side by side: greedy generations,
# refusal markers, first-token KL(base || edited). Writes evaluation.json/.md to OUT_DIR.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -lt 2 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
  exit $([ $# -lt 2 ] && [ "${1:-}" != "-h" ] && [ "${1:-}" != "--help" ] && echo 2 || echo 0)
fi
base="$1"; edited="$2"; out="${3:-$HERE/results/smoke}"; shift $(( $# >= 3 ? 3 : 2 ))
exec "${ABLBENCH:-$HERE/.venv/bin/ablbench}" smoke --base "$base" --edited "$edited" --out "$out" "$@"
