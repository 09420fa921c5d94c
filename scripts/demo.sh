#!/usr/bin/env bash
# The main job on the embedded default (run by `make demo` after set-up):
#   1. abliterate the bundled SmolLM2-135M-Instruct with the shell-prompt contrast set, with a
#      small Optuna search (--demo-search; DEMO_SEARCH=0 for the one-layer choice instead),
#   2. bake a control: a random direction orthogonal to the found one, same strengths
#      (DEMO_CONTROL=0 to skip),
#   3. smoke-test base vs abliterated side by side (refusal markers, KL),
#   4. serve each with `transformers serve`, run the bundled tasks with the agent in parallel
#      docker containers, and
#   5. compare the runs (pass counts, exact McNemar, overlap): "abliterated vs base" beside
#      "control vs base", writing a report.
# Everything lands in results/demo/ (override with DEMO_OUT); rerunning resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
ABL=.venv/bin/ablbench
OUT="${DEMO_OUT:-results/demo}"
PARALLEL="${DEMO_PARALLEL:-2}"
MAX_TURNS="${DEMO_MAX_TURNS:-4}"
MAX_TOKENS="${DEMO_MAX_TOKENS:-256}"
mkdir -p "$OUT"
start=$(date +%s)
step() { printf '\n\033[1m== [%s] %s\033[0m\n' "$(date -u +%H:%M:%S)" "$*"; }

step "bundled model"
BASE=$("$ABL" model embedded)
echo "$BASE"

search=(--demo-search); [ "${DEMO_SEARCH:-1}" = 1 ] || search=()
step "abliterate: contrast -> capture -> directions -> search -> report -> bake -> evaluate"
"$ABL" abliterate pipeline --model "$BASE" --out "$OUT/abliteration" ${search[@]+"${search[@]}"} ${DEMO_ABLITERATE_ARGS:-}
ABLITERATED="$OUT/abliteration/abliterated_model"

arms=(--model "base=$BASE" --model "abliterated=$ABLITERATED")
if [ "${DEMO_CONTROL:-1}" = 1 ]; then
  step "control: random direction orthogonal to the found one, same layers and strengths"
  [ -f "$OUT/control/abliteration.json" ] \
    || "$ABL" abliterate control --model "$BASE" --run "$OUT/abliteration" --out "$OUT/control" --seed 0 --quiet
  arms+=(--model "control=$OUT/control")
fi

step "smoke: base vs abliterated"
"$ABL" smoke --base "$BASE" --edited "$ABLITERATED" --out "$OUT/smoke"

step "benchmark the models on the bundled tasks (transformers serve, -n $PARALLEL)"
scripts/full_bench_parallel.sh "${arms[@]}" \
  --backend transformers -n "$PARALLEL" --max-turns "$MAX_TURNS" --max-tokens "$MAX_TOKENS" \
  --timeout-multiplier "${DEMO_TIMEOUT_MULTIPLIER:-0.5}" --out "$OUT/bench" ${DEMO_BENCH_ARGS:-}

step "done in $(( $(date +%s) - start )) s"
echo "abliteration report: $OUT/abliteration"
echo "smoke report:        $OUT/smoke"
echo "comparison report:   $OUT/bench/report.md (plots in $OUT/bench/plots)"
echo "HTML report:         $OUT/bench/report.html"
