#!/usr/bin/env bash
# harbor_sweep.sh: one model's sweep through `harbor run` (what `full_bench_parallel.sh --engine harbor`
# runs per model), then a check of the job's result files: harbor exits 0 even when every trial errors.
#
# Usage: scripts/harbor_sweep.sh --url URL --model NAME --job DIR [options]
#   --url URL              the model server root (OpenAI-compatible, no /v1); the agent runs on this
#                          host, so a server on 127.0.0.1 works with cloud sandboxes too
#   --model NAME           the model name as served
#   --job DIR              the harbor job folder (its parent is harbor's jobs dir); an existing job
#                          is resumed (`harbor job resume`), with the URL and model updated
#   --agent A              ablbench (default: ablbench's agent, harness.agents.harbor_agent:AblbenchTerminus)
#                          | terminus-2 (harbor's own, for leaderboard-comparable numbers)
#   -e, --env ENV          harbor environment: docker, modal, daytona, ... or module:Class
#                          (default runners.harbor_environment:AblbenchDocker: local docker with
#                          ablbench's hardening, honouring allow_internet = false)
#   --tasks PATH           task folder (default: the bundled tasks)
#   -n N, -k K             concurrent trials (default 2), attempts per task (default 1)
#   --max-turns T --max-tokens M --temperature X --timeout-multiplier X
#   --include GLOB --exclude GLOB (repeatable)
# Exit: 0 when at least one trial was graded; 1 when none was (every trial errored before its
# verifier) or the job left no result; 2 on bad usage.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
HARBOR="$HERE/scripts/harbor.sh"
PY="${ABLBENCH_PYTHON:-$HERE/.venv/bin/python}"
AGENT_IMPORT="harness.agents.harbor_agent:AblbenchTerminus"

url=""; model=""; job=""; agent="ablbench"; env="runners.harbor_environment:AblbenchDocker"; tasks=""
parallel=2; attempts=1; mult=1.0; filters=()
# the agent's defaults are written once, in harness/agents/defaults.py
eval "$("$PY" -c 'from harness.agents import defaults as d
print(f"max_turns={d.MAX_TURNS}; max_tokens={d.MAX_TOKENS}; temperature={d.TEMPERATURE}")')"
die() { echo "harbor_sweep: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --url) url="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --job) job="$2"; shift 2 ;;
    --agent) agent="$2"; shift 2 ;;
    -e|--env) env="$2"; shift 2 ;;
    --tasks) tasks="$2"; shift 2 ;;
    -n) parallel="$2"; shift 2 ;;
    -k) attempts="$2"; shift 2 ;;
    --max-turns) max_turns="$2"; shift 2 ;;
    --max-tokens) max_tokens="$2"; shift 2 ;;
    --temperature) temperature="$2"; shift 2 ;;
    --timeout-multiplier) mult="$2"; shift 2 ;;
    --include) filters+=(-i "$2"); shift 2 ;;
    --exclude) filters+=(-x "$2"); shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 -- see --help" ;;
  esac
done
[ -n "$url" ] && [ -n "$model" ] && [ -n "$job" ] || die "--url, --model and --job are required -- see --help"
[ -x "$HERE/.venv-harbor/bin/harbor" ] || die "harbor is not set up -- run 'make setup-harbor' first"
[ -n "$tasks" ] || tasks=$("$PY" -c 'from ablbench.paths import BUNDLED_TASKS; print(BUNDLED_TASKS)')
job=$(realpath -m "$job")

case "$agent" in
  ablbench) agent_args=(-a "$AGENT_IMPORT" --ak "api_base=$url" --ak "model=$model" --ak "max_turns=$max_turns"
                        --ak "max_tokens=$max_tokens" --ak "temperature=$temperature") ;;
  terminus-2) export OPENAI_API_KEY="${OPENAI_API_KEY:-EMPTY}"  # litellm wants one; local servers ignore it
              agent_args=(-a terminus-2 -m "openai/$model" --ak "api_base=$url/v1" --ak "max_turns=$max_turns"
                          --ak "temperature=$temperature") ;;
  *) die "--agent must be ablbench or terminus-2, got '$agent'" ;;
esac

if [ -f "$job/config.json" ]; then
  echo "== resuming harbor job $job"
  # a restarted server may listen elsewhere: point the job's agent at the current URL and model
  "$PY" -m harness.harbor_job retarget "$job/config.json" "$url" "$model" "$agent"
  "$HARBOR" job resume -p "$job" || echo "harbor_sweep: harbor job resume exited $?" >&2
else
  mkdir -p "$(dirname "$job")"
  "$HARBOR" run -p "$tasks" "${filters[@]}" -e "$env" -n "$parallel" -k "$attempts" \
      --timeout-multiplier "$mult" -o "$(dirname "$job")" --job-name "$(basename "$job")" -y -q \
      "${agent_args[@]}" || echo "harbor_sweep: harbor run exited $?" >&2
fi

# harbor exits 0 even when every trial errored: count what the result files say
exec "$PY" -m harness.harbor_job check "$job"
