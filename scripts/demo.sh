#!/usr/bin/env bash
# The main job (run by `make demo` after set-up), on the bundled SmolLM2-135M-Instruct GGUF or
# on your own model with DEMO_MODEL=FILE.gguf:
#   1. find the refusal direction with the abliteration pipeline (contrast set, capture,
#      directions, a small Optuna search (8 trials; DEMO_SEARCH=0: the one-layer choice); it also
#      bakes and evaluates an HF copy: refusal markers and first-token KL, base vs edited),
#   2. bake that direction into a GGUF copy of the model (`ablbench abliterate bake`), and with
#      DEMO_CONTROL=1 a control: a random direction orthogonal to it, same strengths,
#   3. serve each GGUF in turn with llama.cpp (same server, same settings: the arms differ
#      only in the weights) and run the bundled tasks with the agent in parallel containers,
#   4. compare the runs (`ablbench analyze`: pass counts, exact McNemar, overlap, and what the
#      edit changed in the trajectories), writing report.md and report.html.
# Everything lands in results/demo/ (override with DEMO_OUT); rerunning resumes.
#
# Knobs: DEMO_MODEL (a GGUF; default the bundled one), DEMO_EDITED (an already edited GGUF:
# skips steps 1-2), DEMO_PARALLEL (2), DEMO_MAX_TURNS (4), DEMO_MAX_TOKENS (256),
# DEMO_STRUCTURED (1: schema-constrained actions in both arms; 0: free-form replies),
# DEMO_TIMEOUT_MULTIPLIER (0.5), DEMO_ABLITERATE_ARGS (default: 4 candidate layers, 16
# evaluation and 16 report prompts of 64 tokens, to keep the demo within 20 minutes on 2 cores)
# and DEMO_BENCH_ARGS (extra arguments).
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
die() { echo "demo: $*" >&2; exit 1; }

step "model"
if [ -n "${DEMO_MODEL:-}" ]; then
  BASE="$(cd "$(dirname "$DEMO_MODEL")" && pwd)/$(basename "$DEMO_MODEL")"
  [ -f "$BASE" ] || die "DEMO_MODEL=$DEMO_MODEL is not a file -- pass a .gguf file"
  SOURCE="$BASE"                      # the pipeline reads the GGUF through transformers
else
  BASE=$("$ABL" model embedded --format gguf)
  SOURCE=$("$ABL" model embedded)     # the same weights as an HF folder (materialized once)
fi
echo "base GGUF: $BASE"

arms=()
if [ -n "${DEMO_EDITED:-}" ]; then
  EDITED="$DEMO_EDITED"
  [ -f "$EDITED" ] || die "DEMO_EDITED=$EDITED is not a file -- pass an edited .gguf file"
  step "edited model given (DEMO_EDITED): skipping abliteration"
else
  search=(); [ "${DEMO_SEARCH:-1}" = 1 ] && search=(--demo-search)
  step "abliterate: contrast -> capture -> directions -> ${search:+search -> }choose -> bake (HF copy) -> evaluate"
  # shellcheck disable=SC2086 # DEMO_ABLITERATE_ARGS is a list of arguments
  "$ABL" abliterate pipeline --model "$SOURCE" --out "$OUT/abliteration" ${search[@]+"${search[@]}"} \
    ${DEMO_ABLITERATE_ARGS:---n-candidates 4 --eval-limit 16 --eval-tokens 64 --report-prompts 16 --report-tokens 64}
  DIRECTION="$OUT/abliteration/vectors/refusal_dir.pt"
  EDITED="$OUT/abliterated/abliterated.gguf"
  # the search's partial strengths leave a residual that Q8_0 rejects: store edited tensors as F16
  gtype=(); [ "${DEMO_SEARCH:-1}" = 1 ] && gtype=(--gguf-type f16)
  step "bake the run's edit (direction, components, strengths) into a GGUF"
  if [ -f "$EDITED" ] && [ "$EDITED" -nt "$DIRECTION" ]; then
    echo "up to date: $EDITED"
  else
    rm -rf "$OUT/abliterated"; mkdir -p "$OUT/abliterated"
    "$ABL" abliterate bake-run --model "$BASE" --run "$OUT/abliteration" --out "$EDITED" ${gtype[@]+"${gtype[@]}"}
  fi
  if [ "${DEMO_CONTROL:-0}" = 1 ]; then
    step "control: a random direction orthogonal to the found one, same layers and strengths"
    [ -f "$OUT/control/abliteration.json" ] \
      || "$ABL" abliterate control --model "$BASE" --run "$OUT/abliteration" --out "$OUT/control" --seed 0 --quiet \
           ${gtype[@]+"${gtype[@]}"}
    arms+=(--model "control=$(ls "$OUT"/control/*.gguf | head -1)")
  fi
fi
echo "edited GGUF: $EDITED"

structured=(); [ "${DEMO_STRUCTURED:-1}" = 1 ] && structured=(--structured)
step "benchmark the models on the bundled tasks (llama.cpp, -n $PARALLEL${structured:+, --structured})"
# shellcheck disable=SC2086 # DEMO_BENCH_ARGS is a list of arguments
scripts/full_bench_parallel.sh --model "base=$BASE" --model "abliterated=$EDITED" ${arms[@]+"${arms[@]}"} \
  --backend llamacpp -n "$PARALLEL" --max-turns "$MAX_TURNS" --max-tokens "$MAX_TOKENS" \
  --timeout-multiplier "${DEMO_TIMEOUT_MULTIPLIER:-0.5}" "${structured[@]}" --out "$OUT/bench" ${DEMO_BENCH_ARGS:-}

step "done in $(( $(date +%s) - start )) s"
[ -d "$OUT/abliteration" ] && echo "abliteration report: $OUT/abliteration/reports/evaluation.md"
echo "comparison report:   $OUT/bench/report.md (plots in $OUT/bench/plots)"
echo "HTML report:         $OUT/bench/report.html"
