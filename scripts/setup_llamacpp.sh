#!/usr/bin/env bash
# Install llama-cpp-python[server] (the llama.cpp backend) into a virtualenv; called by setup.sh:
#   scripts/setup_llamacpp.sh VENV STATE_DIR LOG
# The first run builds it from its source (about 3 minutes of two idle cores) and keeps the wheel in
# STATE_DIR/wheels/llama-cpp-python-<version>-<key>/; later runs, and new venvs on the same
# machine, install that wheel in seconds. The key covers the version, the build options and the
# CPU's flags (the build is tuned to this CPU). Only the text-model library is built: no
# multimodal (mtmd/llava), tools, tests, examples or HTTPS. AMX is left out: in VMs that list AMX
# in /proc/cpuinfo without enabling its register state, the first matmul dies with a general
# protection fault (seen on this machine kind).
# Idempotent; every failure ends with one line "setup: <what failed> -- <what to do>" and exit 1.
set -uo pipefail
VENV="$1"; STATE="$2"; LOG="$3"
LLAMA_CPP_VERSION=0.3.36
LLAMA_CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON"
LLAMA_CPU_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }
key=$( { echo "$LLAMA_CPP_VERSION $LLAMA_CMAKE_ARGS $LLAMA_CPU_FLAGS"; grep -m1 '^flags' /proc/cpuinfo; } | sha256sum | cut -c1-12)
stamp="$VENV/.ablbench-llamacpp"  # the key of the build installed in this venv
llama_ok() {
  [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] \
    && "$VENV/bin/python" -c 'import llama_cpp, sse_starlette, starlette_context' 2>/dev/null
}
llama_ok && exit 0

wheel_dir="$STATE/wheels/llama-cpp-python-$LLAMA_CPP_VERSION-$key"
wheel=$(ls "$wheel_dir"/llama_cpp_python-*.whl 2>/dev/null | head -1)
if [ -z "$wheel" ]; then
  if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null; then
    say "installing cmake and g++ (to build llama.cpp)"
    as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    { as_root apt-get update && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y cmake g++ ninja-build; } >>"$LOG" 2>&1 \
      || die "apt-get install cmake g++ failed -- see $LOG"
  fi
  say "building llama.cpp (llama-cpp-python $LLAMA_CPP_VERSION) once, about 3-10 minutes; the wheel is kept in $wheel_dir"
  mkdir -p "$STATE/wheels"
  build_tmp=$(mktemp -d "$STATE/wheels/.build.XXXX")
  t0=$(date +%s)
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CFLAGS="$LLAMA_CPU_FLAGS" CXXFLAGS="$LLAMA_CPU_FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$VENV/bin/pip" wheel --no-deps --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_CPP_VERSION" -w "$build_tmp" >>"$LOG" 2>&1 \
    || { rm -rf "$build_tmp"; die "building llama-cpp-python $LLAMA_CPP_VERSION failed -- see $LOG (needs cmake >= 3.21 and a C++17 compiler)"; }
  mkdir -p "$wheel_dir" && mv "$build_tmp"/llama_cpp_python-*.whl "$wheel_dir"/ && rm -rf "$build_tmp"
  wheel=$(ls "$wheel_dir"/llama_cpp_python-*.whl | head -1)
  say "llama.cpp built in $(( $(date +%s) - t0 )) s"
fi
{ "$VENV/bin/pip" install -q --force-reinstall --no-deps "$wheel" && "$VENV/bin/pip" install -q "$wheel[server]"; } >>"$LOG" 2>&1 \
  || die "installing $wheel failed -- see $LOG"
echo "$key" > "$stamp"
llama_ok || die "llama-cpp-python does not import after installing $wheel -- see $LOG; delete $wheel_dir to rebuild"
