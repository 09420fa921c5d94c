#!/usr/bin/env bash
# full_bench_parallel.sh: serve each model in turn, run every task with the agent in parallel
# docker containers, stop the server, and compare the runs at the end. A thin layer over
# `ablbench serve`, `ablbench run` and `ablbench analyze`; rerunning it resumes unfinished runs.
# Signals: SIGINT/SIGTERM go at once to the ablbench command running (exactly once: children run
# in their own process group), then the server this script started is stopped and the script
# exits with that command's code (130/143), without serving the next model or analysing.
set -euo pipefail
set -m  # each child in its own process group: a terminal Ctrl-C reaches it only through forward()
HERE="$(cd "$(dirname "$0")/.." && pwd)"
ABL="${ABLBENCH:-$HERE/.venv/bin/ablbench}"

usage() {
  cat <<'EOF'
Usage: scripts/full_bench_parallel.sh --model NAME=PATH [--model NAME=PATH ...] [options] [-- SERVER_ARGS...]

Serves each model, runs the tasks with the Terminus-style agent, stops the server, and ends
with `ablbench analyze` over all runs (pass counts, exact McNemar, overlap, plots).

  --model NAME=PATH       a model to benchmark: an HF folder or a GGUF file (repeat: e.g.
                          base=..., sft=..., abl=...). The first one is the reference in the
                          comparison tables.
  --tasks PATH            task folder: the 89 Terminal-Bench 2 tasks from a path you give,
                          or any folder of TB2/tb tasks (default: the bundled tasks/)
  --backend B             sglang | vllm | transformers | llamacpp | auto (default auto: llamacpp
                          for a GGUF file; sglang when a GPU and the sglang image are present,
                          else transformers)
  -n, --parallel N        trials running at once (default 6 with a GPU, 2 without)
  -k, --attempts K        attempts per task (default 1; the TB2 leaderboard uses 5)
  --max-turns T           agent turns per trial (default 20)
  --max-tokens M          tokens per model reply (default 4096)
  --temperature X         sampling temperature (default 0.7)
  --timeout-multiplier X  multiply task agent timeouts (default 1.0)
  --structured            constrain replies to the action JSON schema (needs llama.cpp, sglang
                          or vLLM); changes what is measured, so it applies to every model
  --out DIR               results root; each model's run goes to DIR/NAME (default
                          results/fullpar). Rerunning with the same DIR resumes.
  --include GLOB          only tasks matching GLOB (repeatable)
  --exclude GLOB          skip tasks matching GLOB (repeatable)
  --offline               never pull images; map missing base images to the local one
  --no-network            no network in task containers
  --health-budget S       seconds to wait for a server to become healthy
  --engine E              builtin (default: `ablbench run`) | harbor (`harbor run` from .venv-harbor,
                          `make setup-harbor`; each model's run is a harbor job folder DIR/NAME)
  --agent A               with --engine harbor: ablbench (default: ablbench's agent as a harbor
                          plug-in) | terminus-2 (harbor's own, for leaderboard-comparable numbers)
  -e, --env ENV           with --engine harbor: docker | modal | daytona | ... | module:Class
                          (default runners.harbor_environment:AblbenchDocker: local docker with the
                          built-in runner's hardening; it keeps allow_internet = false tasks offline)
  -h, --help              this help
Anything after `--` is passed to the model server (e.g. -- --context-length 32768).

Example (the user's Qwen3.5-4B experiment on a GPU box):
  scripts/full_bench_parallel.sh --model base=/models/Qwen3.5-4B \
      --model abl=/runs/qwen35/abliterated_model --tasks ~/terminal-bench-2 \
      --backend sglang -n 6 --max-turns 20 --max-tokens 4096 -- --reasoning-parser qwen3

Three arms, with a control edit (`ablbench abliterate control --run RUN --out CTRL`: a random
direction orthogonal to the run's, same layers and strengths); the report then reads
"abl vs base" beside "control vs base":
  scripts/full_bench_parallel.sh --model base=/models/M --model abl=RUN/abliterated_model \
      --model control=CTRL
EOF
}

models=(); tasks=""; backend="auto"; parallel=""; attempts=1; max_turns=20; max_tokens=4096
temperature=0.7; mult=1.0; out="$HERE/results/fullpar"; run_extra=(); server_extra=(); budget=()
engine=builtin; harbor_agent=ablbench; harbor_env=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) models+=("$2"); shift 2 ;;
    --tasks) tasks="$2"; shift 2 ;;
    --backend) backend="$2"; shift 2 ;;
    -n|--parallel) parallel="$2"; shift 2 ;;
    -k|--attempts) attempts="$2"; shift 2 ;;
    --max-turns) max_turns="$2"; shift 2 ;;
    --max-tokens) max_tokens="$2"; shift 2 ;;
    --temperature) temperature="$2"; shift 2 ;;
    --timeout-multiplier) mult="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --include|--exclude) run_extra+=("$1" "$2"); shift 2 ;;
    --offline|--no-network|--structured) run_extra+=("$1"); shift ;;
    --health-budget) budget=(--health-budget "$2"); shift 2 ;;
    --engine) engine="$2"; shift 2 ;;    # --engine/--agent/-e: the harbor engine (scripts/harbor_sweep.sh)
    --agent) harbor_agent="$2"; shift 2 ;;
    -e|--env) harbor_env=(--env "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; server_extra=("$@"); break ;;
    *) echo "full_bench_parallel: unknown option $1 -- see --help" >&2; exit 2 ;;
  esac
done
[ ${#models[@]} -gt 0 ] || { echo "full_bench_parallel: no --model NAME=PATH given -- see --help" >&2; exit 2; }
[ -x "$ABL" ] || { echo "full_bench_parallel: $ABL not found -- run 'make setup' first" >&2; exit 2; }
case "$engine" in
  builtin) [ "$harbor_agent" = ablbench ] && [ ${#harbor_env[@]} -eq 0 ] \
             || { echo "full_bench_parallel: --agent and --env need --engine harbor" >&2; exit 2; } ;;
  harbor) for x in "${run_extra[@]}"; do case "$x" in --offline|--no-network)
            echo "full_bench_parallel: $x is for the builtin engine; under harbor the task's allow_internet and --env decide" >&2; exit 2;;
          esac; done ;;
  *) echo "full_bench_parallel: --engine must be builtin or harbor, got '$engine'" >&2; exit 2 ;;
esac

gpu=0; command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && gpu=1
backend_args=()  # auto: `ablbench serve` picks per model (llamacpp for a GGUF file)
[ "$backend" = auto ] || backend_args=(--backend "$backend")
[ -n "$parallel" ] || { [ $gpu = 1 ] && parallel=6 || parallel=2; }
task_args=(); [ -n "$tasks" ] && task_args=(--tasks "$tasks")
mkdir -p "$out"

current=""; child=""; caught=""
cleanup() { [ -n "$current" ] && "$ABL" serve stop "$current" >/dev/null 2>&1 || true; }
forward() {  # $1 = INT | TERM: pass it on to the running child now; the script exits once it has ended
  [ -n "$caught" ] || caught=$1
  [ -n "$child" ] && kill -s "$1" "$child" 2>/dev/null || true
}
trap 'forward INT' INT
trap 'forward TERM' TERM
# run_child CMD...: run CMD in the background and wait for it (a trapped signal interrupts `wait`
# but not the child: keep waiting until it has really ended); returns its exit code
run_child() {
  if [ -n "$caught" ]; then [ "$caught" = INT ] && return 130 || return 143; fi  # caught between two children
  "$@" & child=$!
  local rc=0
  while :; do
    rc=0; wait "$child" || rc=$?
    kill -0 "$child" 2>/dev/null || break
  done
  child=""
  return "$rc"
}
# after a child ended: if a signal came, stop the server and exit with the child's code (or 128+signal)
stop_if_caught() {
  [ -n "$caught" ] || return 0
  local rc=$1
  [ "$rc" -ne 0 ] || { [ "$caught" = INT ] && rc=130 || rc=143; }
  echo "full_bench_parallel: interrupted by SIG$caught; stopping; rerun the same command to resume" >&2
  cleanup; current=""
  exit "$rc"
}
served_file=$(mktemp "${TMPDIR:-/tmp}/full_bench_parallel.XXXXXX")
trap 'cleanup; rm -f "$served_file"' EXIT

names=(); runs=()
for spec in "${models[@]}"; do
  name="${spec%%=*}"; dir="${spec#*=}"
  [ "$name" != "$spec" ] && [ -n "$name" ] || { echo "full_bench_parallel: --model needs NAME=PATH, got '$spec'" >&2; exit 2; }
  [ -e "$dir" ] || { echo "full_bench_parallel: model $dir does not exist -- check --model $spec" >&2; exit 2; }
  names+=("$name"); runs+=("$out/$name")
  resume=(); [ -f "$out/$name/run.json" ] && resume=(--resume)
  echo "== $name: serving $dir with $backend"
  server_name="fullpar-$name-$$"
  current="$server_name"  # from here on, cleanup stops it (also if serve is interrupted while starting)
  rc=0; run_child "$ABL" serve ${backend_args[@]+"${backend_args[@]}"} --model "$dir" --name "$server_name" --detach "${budget[@]}" \
           ${server_extra[@]+-- "${server_extra[@]}"} > "$served_file" || rc=$?
  stop_if_caught "$rc"
  [ "$rc" -eq 0 ] || { echo "full_bench_parallel: serving $name failed (exit $rc)" >&2; exit "$rc"; }
  served=$(cat "$served_file")
  url=$(printf '%s\n' "$served" | sed -n 's/^url: //p' | head -1)
  served_model=$(printf '%s\n' "$served" | sed -n 's/^model: //p' | head -1)
  # the context the server allocated (llama.cpp does not report it in /v1/models)
  ctx=$(printf '%s\n' "$served" | sed -n 's/^ *"max_model_len": \([0-9][0-9]*\).*/\1/p' | head -1)
  ctx_args=(); [ -n "$ctx" ] && ctx_args=(--context-length "$ctx")
  echo "== $name: $url ($served_model); running tasks with -n $parallel -k $attempts"
  rc=0
  if [ "$engine" = harbor ]; then  # one harbor job per model; it checks the result files itself
    run_child "$HERE/scripts/harbor_sweep.sh" --url "$url" --model "$served_model" --job "$out/$name" \
        --agent "$harbor_agent" ${harbor_env[@]+"${harbor_env[@]}"} "${task_args[@]}" -n "$parallel" \
        -k "$attempts" --max-turns "$max_turns" --max-tokens "$max_tokens" --temperature "$temperature" \
        --timeout-multiplier "$mult" ${run_extra[@]+"${run_extra[@]}"} || rc=$?
  else
    run_child "$ABL" run "${task_args[@]}" --agent terminus --model-url "$url" --model "$served_model" \
        -n "$parallel" -k "$attempts" --max-turns "$max_turns" --max-tokens "$max_tokens" \
        --temperature "$temperature" --timeout-multiplier "$mult" --out "$out/$name" \
        ${ctx_args[@]+"${ctx_args[@]}"} ${resume[@]+"${resume[@]}"} ${run_extra[@]+"${run_extra[@]}"} || rc=$?
  fi
  stop_if_caught "$rc"
  [ "$rc" -eq 0 ] || echo "== $name: the run ended with errors, exit $rc (see $out/$name)" >&2
  "$ABL" serve stop "$server_name" >/dev/null; current=""
done

echo "== analysis"
IFS=,; joined="${names[*]}"; unset IFS
rc=0; run_child "$ABL" analyze "${runs[@]}" --names "$joined" --markdown "$out/report.md" --json "$out/report.json" \
  --plots "$out/plots" --html "$out/report.html" || rc=$?
stop_if_caught "$rc"
[ "$rc" -eq 0 ] || exit "$rc"
echo "report: $out/report.md and $out/report.html (open it in a browser; every trajectory is one click away)"
