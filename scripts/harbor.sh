#!/usr/bin/env bash
# `harbor` from .venv-harbor with what it needs here: the private docker config holding the
# Compose v2 plug-in (DOCKER_CONFIG), litellm's bundled price list instead of a download at start-up
# (LITELLM_LOCAL_MODEL_COST_MAP), and this checkout on the import path (the ablbench agent and
# environment). Set it up first with `make setup-harbor`. Usage: scripts/harbor.sh run ...
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv-harbor"
[ -x "$VENV/bin/harbor" ] || { echo "harbor.sh: $VENV/bin/harbor not found -- run 'make setup-harbor' first" >&2; exit 2; }
export DOCKER_CONFIG="$VENV/docker-config"
export LITELLM_LOCAL_MODEL_COST_MAP=True
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$VENV/bin/harbor" "$@"
