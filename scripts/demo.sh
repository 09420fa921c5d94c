#!/usr/bin/env bash
# The main job (run by `make demo` after set-up): the user's three arms on the bundled
# SmolLM2-135M-Instruct (or your own model with DEMO_MODEL=FILE.gguf + DEMO_MODEL_HF=FOLDER):
#   1-2. SFT in one command (`ablbench sft --replay --tasks tasks/train`): replay the bundled
#      TRAINING tasks (tasks/train, disjoint from the 12 evaluation tasks) with their reference
#      solutions through the real agent loop, then LoRA fine-tuning on the passed replays, merged
#      into an HF folder and a GGUF copy of the base (cached: a rerun with the same data and
#      settings reuses it, a killed one resumes its replays and then its last epoch),
#   3. abliterate the SFT model with the abliteration pipeline (contrast set, capture,
#      directions, the one-layer choice; DEMO_SEARCH=1: a small Optuna search) and bake the edit
#      into the SFT GGUF; DEMO_CONTROL=1 also bakes the control edit of the SFT model (a random
#      direction orthogonal to the found one, same strengths),
#   4. serve each GGUF in turn with llama.cpp (same server, same settings: the arms differ only
#      in the weights) and run the 12 evaluation tasks with the agent in parallel containers,
#   5. compare the runs (`ablbench analyze`: pass counts, exact McNemar, overlap, and what each
#      edit changed in the trajectories), writing report.md and report.html.
# Everything lands in results/demo/ (override with DEMO_OUT); rerunning resumes.
#
# Knobs: DEMO_MODEL (a GGUF; default the bundled one) with DEMO_MODEL_HF (its HF folder),
# DEMO_EDITED (an already edited GGUF: skips the SFT and abliteration steps, two arms),
# DEMO_SFT=0 (no SFT: base vs abliterated base, the old demo), DEMO_SFT_ARGS (default
# `--epochs 1 --lora-layers 1 --batch-tokens 2048 --lr 2e-3 --val-fraction 0.1`), DEMO_PARALLEL (2), DEMO_MAX_TURNS (4), DEMO_MAX_TOKENS (256),
# DEMO_TEMPERATURE (0.7, every arm), DEMO_STRUCTURED (1: schema-constrained actions in every arm;
# 0: free-form replies), DEMO_TIMEOUT_MULTIPLIER (0.5), DEMO_SEARCH (0), DEMO_ABLITERATE_ARGS
# (default: 4 candidate layers, 8 evaluation and 8 report prompts of 64 tokens) and
# DEMO_BENCH_ARGS (extra arguments).
#
# What the defaults trade to stay near 20 minutes on 2 cores (measured, README "The two
# commands"): 1 epoch of SFT on one replay per training task (a second epoch doubled the
# training time and solved the two reachable tasks no more often: 2/6 against 3/6 tries;
# adapters on every layer, as measured: the top half learns less per epoch); 4 turns per task,
# which is what a trained trajectory needs (act, show the result, complete, confirm) and what
# bounds the base arm, which always uses every turn; one attempt per task at temperature 0.7 (greedy
# was no better: it repeats one wrong command); the abliteration's evaluation on 8 + 8 prompts
# instead of 16 + 16 (its refusal rates are a side report here; the benchmark is the result).
set -euo pipefail
cd "$(dirname "$0")/.."
ABL=.venv/bin/ablbench
OUT="${DEMO_OUT:-results/demo}"
PARALLEL="${DEMO_PARALLEL:-2}"
MAX_TURNS="${DEMO_MAX_TURNS:-4}"
MAX_TOKENS="${DEMO_MAX_TOKENS:-256}"
TEMPERATURE="${DEMO_TEMPERATURE:-0.7}"
mkdir -p "$OUT"
start=$(date +%s)
: > "$OUT/timings.tsv"
# each step's wall time goes to $OUT/timings.tsv (printed at the end): the split of the demo's time
step() {
  local now; now=$(date +%s)
  [ -n "${step_name:-}" ] && printf '%s\t%s\n' "$(( now - step_t ))" "$step_name" >> "$OUT/timings.tsv"
  step_name="$*"; step_t=$now
  printf '\n\033[1m== [%s] %s\033[0m\n' "$(date -u +%H:%M:%S)" "$*"
}
die() { echo "demo: $*" >&2; exit 1; }

step "model"
if [ -n "${DEMO_MODEL:-}" ]; then
  BASE="$(cd "$(dirname "$DEMO_MODEL")" && pwd)/$(basename "$DEMO_MODEL")"
  [ -f "$BASE" ] || die "DEMO_MODEL=$DEMO_MODEL is not a file -- pass a .gguf file"
  SOURCE="${DEMO_MODEL_HF:-$BASE}"    # the pipeline reads a GGUF through transformers
else
  BASE=$("$ABL" model embedded --format gguf)
  SOURCE=$("$ABL" model embedded)     # the same weights as an HF folder (materialized once)
fi
echo "base GGUF: $BASE"

arms=(--model "base=$BASE")
TARGET="$BASE"; TARGET_HF="$SOURCE"; NAME=abliterated; CTRL_NAME=control
if [ -n "${DEMO_EDITED:-}" ]; then
  EDITED="$DEMO_EDITED"
  [ -f "$EDITED" ] || die "DEMO_EDITED=$EDITED is not a file -- pass an edited .gguf file"
  step "edited model given (DEMO_EDITED): skipping SFT and abliteration"
else
  if [ "${DEMO_SFT:-1}" = 1 ]; then
    [ -d "$SOURCE" ] || die "SFT needs the model as an HF folder: set DEMO_MODEL_HF=FOLDER (or DEMO_SFT=0)"
    step "SFT: replay the training tasks (tasks/train) -> LoRA on the passed replays -> merged HF folder + merged GGUF"
    # shellcheck disable=SC2086 # DEMO_SFT_ARGS is a list of arguments
    "$ABL" sft --model "$SOURCE" --replay --tasks tasks/train --parallel "$PARALLEL" --gguf "$BASE" --out "$OUT/sft" --quiet \
      ${DEMO_SFT_ARGS:---epochs 1 --lora-layers 1 --batch-tokens 2048 --lr 2e-3 --val-fraction 0.1}
    TARGET="$OUT/sft/merged.gguf"; TARGET_HF="$OUT/sft/merged"; NAME=sft-abliterated; CTRL_NAME=sft-control
    arms+=(--model "sft=$TARGET")
  fi
  search=(); [ "${DEMO_SEARCH:-0}" = 1 ] && search=(--demo-search)
  step "abliterate $(basename "$TARGET_HF"): contrast -> capture -> directions -> ${search:+search -> }choose -> bake (HF copy) -> evaluate"
  # shellcheck disable=SC2086 # DEMO_ABLITERATE_ARGS is a list of arguments
  "$ABL" abliterate pipeline --model "$TARGET_HF" --out "$OUT/abliteration" ${search[@]+"${search[@]}"} \
    ${DEMO_ABLITERATE_ARGS:---n-candidates 4 --eval-limit 8 --eval-tokens 64 --report-prompts 8 --report-tokens 64}
  DIRECTION="$OUT/abliteration/vectors/refusal_dir.pt"
  EDITED="$OUT/abliterated/abliterated.gguf"
  # the search's partial strengths leave a residual that Q8_0 rejects: store edited tensors as F16
  gtype=(); [ "${DEMO_SEARCH:-0}" = 1 ] && gtype=(--gguf-type f16)
  step "bake the run's edit (direction, components, strengths) into $(basename "$TARGET")"
  if [ -f "$EDITED" ] && [ "$EDITED" -nt "$DIRECTION" ] && [ "$EDITED" -nt "$TARGET" ]; then
    echo "up to date: $EDITED"
  else
    rm -rf "$OUT/abliterated"; mkdir -p "$OUT/abliterated"
    "$ABL" abliterate bake-run --model "$TARGET" --run "$OUT/abliteration" --out "$EDITED" ${gtype[@]+"${gtype[@]}"}
  fi
  if [ "${DEMO_CONTROL:-0}" = 1 ]; then
    step "control: a random direction orthogonal to the found one, same layers and strengths"
    [ -f "$OUT/control/abliteration.json" ] \
      || "$ABL" abliterate control --model "$TARGET" --run "$OUT/abliteration" --out "$OUT/control" --seed 0 --quiet \
           ${gtype[@]+"${gtype[@]}"}
    CONTROL="$(ls "$OUT"/control/*.gguf | head -1)"
  fi
fi
arms+=(--model "$NAME=$EDITED")
if [ -n "${CONTROL:-}" ]; then arms+=(--model "$CTRL_NAME=$CONTROL"); fi
echo "edited GGUF: $EDITED"

structured=(); [ "${DEMO_STRUCTURED:-1}" = 1 ] && structured=(--structured)
step "benchmark the models on the bundled tasks (llama.cpp, -n $PARALLEL${structured:+, --structured})"
# shellcheck disable=SC2086 # DEMO_BENCH_ARGS is a list of arguments
scripts/full_bench_parallel.sh "${arms[@]}" \
  --backend llamacpp -n "$PARALLEL" --max-turns "$MAX_TURNS" --max-tokens "$MAX_TOKENS" --temperature "$TEMPERATURE" \
  --timeout-multiplier "${DEMO_TIMEOUT_MULTIPLIER:-0.5}" "${structured[@]}" --out "$OUT/bench" ${DEMO_BENCH_ARGS:-}

step "done in $(( $(date +%s) - start )) s (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "wall time per step (s):"; cat "$OUT/timings.tsv"
if [ -f "$OUT/sft/sft.json" ]; then  # the SFT step's own split, from its provenance
  .venv/bin/python - "$OUT/sft/sft.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t, replay = r["timings"], r["data"].get("replay") or {}
print(f"  SFT step: replay {replay.get('seconds', 0):.0f} s, data {t['data_s']:.0f} s, "
      f"validation {t['val_before_s'] + t['val_after_s']:.0f} s, training {t['train_s']:.0f} s "
      f"({r['throughput_tokens_per_s']} tokens/s on {r['hyperparameters']['threads']} threads), merge {t['merge_s']:.0f} s")
PY
fi
[ -f "$OUT/sft/sft.json" ] && echo "SFT provenance:      $OUT/sft/sft.json (validation loss before/after, loss curve)"
[ -d "$OUT/abliteration" ] && echo "abliteration report: $OUT/abliteration/reports/evaluation.md"
echo "comparison report:   $OUT/bench/report.md (plots in $OUT/bench/plots)"
echo "HTML report:         $OUT/bench/report.html"
