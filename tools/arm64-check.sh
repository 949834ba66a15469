#!/usr/bin/env bash
# The core on AArch64, without ARM hardware: cross-compiles tests/native/core_check.cc and
# the core (the scalar and NEON kernel tables, the thread pool, the driver) with Debian's
# g++-aarch64-linux-gnu and runs it under qemu-aarch64 (user-mode emulation) on every CPU
# model below; then runs the same driver natively. Each run checks every table it has
# against the scalar table and against tests/native/core-expected.bin, the scalar table's
# outputs stored from an x86 run: the same bits on both architectures (see core_check.cc).
#
#   tools/arm64-check.sh            install what is missing (apt-get), build, run
#   tools/arm64-check.sh --update   also rewrite core-expected.bin from this machine's scalar
#                                   table first (after a change of the kernels' arithmetic)
#
# Emulation tests correctness only: qemu's timings mean nothing. Takes ~2 min (the packages
# are ~300 MB on a machine without them).
set -euo pipefail
cd "$(dirname "$0")/.."

expected=tests/native/core-expected.bin
build_arm=${FASTRNN_ARM64_BUILD:-build/arm64}
build_host=${FASTRNN_HOST_NATIVE_BUILD:-build/native}

need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v cmake >/dev/null || need+=(cmake)
command -v ninja >/dev/null || need+=(ninja-build)
if [ ${#need[@]} -gt 0 ]; then
  echo "== arm64-check: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "== arm64-check: host build (no Python)"
cmake -S . -B "$build_host" -G Ninja -DFASTRNN_PYTHON=OFF -DFASTRNN_NATIVE_TESTS=ON >/dev/null
ninja -C "$build_host" core_check >/dev/null
if [ "${1:-}" = "--update" ]; then
  FASTRNN_ISA=scalar "$build_host/core_check" --write "$expected"
fi

echo "== arm64-check: cross build for AArch64"
cmake -S . -B "$build_arm" -G Ninja -DFASTRNN_PYTHON=OFF -DFASTRNN_NATIVE_TESTS=ON \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/tools/aarch64-linux-gnu.cmake" >/dev/null
ninja -C "$build_arm" core_check >/dev/null
file_type=$(od -An -tx1 -j18 -N2 "$build_arm/core_check" | tr -d ' ')
[ "$file_type" = "b700" ] || { echo "arm64-check: $build_arm/core_check is not an AArch64 ELF" >&2; exit 1; }

status=0
# max: every feature qemu emulates; cortex-a57: plain ARMv8.0 (NEON, no later extension);
# neoverse-n1: Graviton 2 / Ampere Altra class.
for cpu in max cortex-a57 neoverse-n1; do
  echo "== arm64-check: qemu-aarch64 -cpu $cpu"
  qemu-aarch64 -cpu "$cpu" -L /usr/aarch64-linux-gnu "$build_arm/core_check" --check "$expected" ||
    status=1
done
echo "== arm64-check: host ($(uname -m))"
"$build_host/core_check" --check "$expected" || status=1
[ $status -eq 0 ] && echo "== arm64-check: OK" || echo "== arm64-check: FAILED"
exit $status
