#!/usr/bin/env bash
# An aarch64 Python for an emulated "ARM board": Debian's arm64 python3 (debootstrap --foreign, every .deb unpacked
# with dpkg -x: the second stage would need binfmt_misc, which CI machines may lack), the agent's runtimes as aarch64
# wheels from PyPI, and bin/python3 -> root/usr/bin/python3-qemu, a wrapper that runs it under qemu-user. Cached by key under
# $EDGEFARM_CACHE/arm-python. Prints the directory holding root/ and bin/python3 on its last line.
#
# Why the wrapper passes `-0 "$0"`: the guest Python's sys.executable becomes the wrapper itself, so the agent's
# model child process (started as sys.executable, natively: no binfmt_misc) goes through qemu again.
# Why root/proc/cpuinfo: qemu's -L looks there first, and onnxruntime's aarch64 build segfaults on import when
# /proc/cpuinfo describes an x86 CPU. It says that the CPU is emulated.
# llama-cpp-python publishes no aarch64 wheel (sdist only), so GGUF on this board goes through the native agent.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${EDGEFARM_CACHE:-$HOME/.cache/edgefarm}
SUITE=bookworm
MIRROR=${EDGEFARM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
# ai-edge-litert publishes aarch64 Linux wheels up to 1.4.0 (2.x: x86-64 and macOS only); numpy and onnxruntime
# as on the controller (ci/constraints.txt).
pin() { sed -n "s/^$1==//p" ci/constraints.txt; }
WHEELS=("numpy==$(pin numpy)" "onnxruntime==$(pin onnxruntime)" "ai-edge-litert==1.4.0")
PLATFORMS=(--platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux_2_28_aarch64)
LOG_TAG=arm-python
# shellcheck source=ci/common.sh
. ci/common.sh

apt_install debootstrap qemu-user-static
VERSION=1  # bump when the layout below changes
key=$(printf '%s|%s|%s|%s' "$VERSION" "$SUITE" "${WHEELS[*]}" "$(sha256sum "$0" | cut -c1-16)" | sha256sum | cut -c1-16)
dest="$CACHE/arm-python/$SUITE-$key"
if [ -x "$dest/bin/python3" ] && [ -x "$dest/root/usr/bin/python3.11" ]; then echo "$dest"; exit 0; fi

mkdir -p "$CACHE/arm-python"
tmp="$dest.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
log "debootstrap --foreign arm64 $SUITE with python3 (about a minute)"
debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 "$SUITE" "$tmp/root" "$MIRROR" \
  >"$tmp.log" 2>&1 || { tail -20 "$tmp.log" >&2; rm -f "$tmp.log"; exit 1; }
rm -f "$tmp.log"
for deb in "$tmp"/root/var/cache/apt/archives/*.deb; do dpkg -x "$deb" "$tmp/root"; done
rm -rf "$tmp"/root/var/cache/apt/archives/*.deb "$tmp"/root/usr/share/doc "$tmp"/root/usr/share/man \
       "$tmp"/root/usr/share/locale
[ -x "$tmp/root/usr/bin/python3.11" ] || { log "no usr/bin/python3.11 in the arm64 root"; exit 1; }

log "aarch64 wheels: ${WHEELS[*]}"
"$PY" -m pip download -q --disable-pip-version-check -d "$tmp/wheels" "${PLATFORMS[@]}" --only-binary=:all: \
  --python-version 3.11 --implementation cp "${WHEELS[@]}"
# Debian's python3.11 searches <prefix>/lib/python3/dist-packages, with the prefix found from the executable.
"$PY" -m pip install -q --disable-pip-version-check --no-deps --no-index --target \
  "$tmp/root/usr/lib/python3/dist-packages" "${PLATFORMS[@]}" --only-binary=:all: --python-version 3.11 \
  --implementation cp "$tmp"/wheels/*.whl
rm -rf "$tmp/wheels"

mkdir -p "$tmp/root/proc"
cpu() {
  printf 'processor\t: %s\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n' "$1"
  printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n'
}
{ for i in $(seq 0 $(( $(nproc) - 1 ))); do cpu "$i"; done
  printf 'Hardware\t: edgefarm emulated ARM board (qemu-user on %s)\n' "$(uname -m)"; } >"$tmp/root/proc/cpuinfo"

# The wrapper lives in root/usr/bin so that the guest Python finds its prefix (root/usr) from sys.executable.
cat >"$tmp/root/usr/bin/python3-qemu" <<'EOF'
#!/bin/sh
# aarch64 python3.11 under qemu-user (written by ci/build_arm_python.sh); the root is two levels above this file.
root=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64) || {
  echo "python3 (aarch64): qemu-user is not installed (apt-get install qemu-user-static)" >&2; exit 127; }
exec "$qemu" -L "$root" -0 "$0" "$root/usr/bin/python3.11" "$@"
EOF
chmod 755 "$tmp/root/usr/bin/python3-qemu"
mkdir -p "$tmp/bin"
ln -s ../root/usr/bin/python3-qemu "$tmp/bin/python3"
rm -rf "$dest"; mv "$tmp" "$dest"
trap - EXIT
log "ready: $dest/bin/python3"
echo "$dest"
