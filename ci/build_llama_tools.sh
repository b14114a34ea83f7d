#!/usr/bin/env bash
# Build llama.cpp's native tools (llama-bench, llama-cli) from the llama.cpp that the pinned llama-cpp-python sdist
# vendors: no other source is fetched. Cached by (version, arch, cmake args) under $EDGEFARM_CACHE/llama-tools.
#   ci/build_llama_tools.sh            host (x86-64 here), portable (GGML_NATIVE=OFF), shared libs beside the tools
#   ci/build_llama_tools.sh aarch64    cross-compiled with Debian's aarch64 toolchain, static, for qemu-user/boards
# Prints the directory holding bin/ on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-host}
CACHE=${EDGEFARM_CACHE:-$HOME/.cache/edgefarm}
VERSION=$(sed -n 's/^llama-cpp-python==//p' ci/constraints.txt)
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
TARGETS=(llama-bench llama-cli)
ARGS=(-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON)
LOG_TAG=llama-tools
# shellcheck source=ci/common.sh
. ci/common.sh

apt_install cmake build-essential
if [ "$ARCH" = aarch64 ]; then
  TARGETS=(llama-bench)  # what the native agent drives; the emulated board needs nothing else
  apt_install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user
  ARGS+=(-DBUILD_SHARED_LIBS=OFF -DGGML_OPENMP=OFF -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64
         -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++
         -DCMAKE_FIND_ROOT_PATH=/usr/aarch64-linux-gnu -DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER
         -DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY -DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY)
elif [ "$ARCH" != host ]; then
  echo "build_llama_tools.sh: unknown architecture '$ARCH' (host or aarch64)" >&2; exit 2
fi

key=$(printf '%s|%s|%s|%s' "$VERSION" "$ARCH" "${ARGS[*]}" "${TARGETS[*]}" | sha256sum | cut -c1-16)
dest="$CACHE/llama-tools/$VERSION-$ARCH-$key"
if [ -x "$dest/bin/llama-bench" ]; then echo "$dest"; exit 0; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "fetching the llama-cpp-python $VERSION sdist (it vendors llama.cpp)"
"$PY" -m pip download -q --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$VERSION"
tar xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
src=$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)
log "building ${TARGETS[*]} for $ARCH (host: ~13 min, aarch64: ~8 min on 2 cores)"
cmake -S "$src" -B "$work/build" "${ARGS[@]}" >"$work/cmake.log" 2>&1 || { tail -30 "$work/cmake.log" >&2; exit 1; }
cmake --build "$work/build" --target "${TARGETS[@]}" -j"$(nproc)" >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }
mkdir -p "$dest.tmp/bin"
cp -a "$work/build/bin/." "$dest.tmp/bin/"
find "$work/build" -name '*.so*' -exec cp -a {} "$dest.tmp/bin/" \; 2>/dev/null || true
git -C "$src" rev-parse HEAD >"$dest.tmp/build_commit" 2>/dev/null || printf 'llama-cpp-python-%s\n' "$VERSION" >"$dest.tmp/build_commit"
rm -rf "$dest"; mv "$dest.tmp" "$dest"
log "ready: $dest/bin"
echo "$dest"
