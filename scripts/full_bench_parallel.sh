#!/usr/bin/env bash
# full_bench_parallel.sh: serve each model in turn, run every task with the agent in parallel
# docker containers, stop the server, and compare the runs at the end (`ablbench analyze`).
# Rerunning it resumes unfinished runs. The sweep is Python: harness/sweep.py (the Python API:
# harness.api.Sweep); this script only finds the project's Python. `--help` lists the flags.
# Signals: SIGINT/SIGTERM stop the run in progress, then the server this sweep started is
# stopped and it exits 130/143, without serving the next model or analysing.
#
# Example (the user's Qwen3.5-4B experiment on a GPU box):
#   scripts/full_bench_parallel.sh --model base=/models/Qwen3.5-4B \
#       --model abl=/runs/qwen35/abliterated_model --tasks ~/terminal-bench-2 \
#       --backend sglang -n 6 -- --reasoning-parser qwen3
# Three arms, with a control edit (`ablbench abliterate control --run RUN --out CTRL`: a random
# direction orthogonal to the run's, same layers and strengths):
#   scripts/full_bench_parallel.sh --model base=/models/M --model abl=RUN/abliterated_model \
#       --model control=CTRL
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
ABL="${ABLBENCH:-$HERE/.venv/bin/ablbench}"  # the Python beside this ablbench runs the sweep
PY="${ABLBENCH_PYTHON:-$(dirname "$ABL")/python}"
[ -x "$PY" ] || { echo "full_bench_parallel: $PY not found -- run 'make setup' first" >&2; exit 2; }
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m harness.sweep "$@"
