#!/usr/bin/env bash
# Builds fastrnn._core with AddressSanitizer and UBSan (FASTRNN_SANITIZE, see CMakeLists.txt)
# and runs the parity and boundary tests against it. Any sanitizer report fails the run.
#
#   tools/sanitize.sh                          # the default tests (SANITIZE_TESTS below)
#   tools/sanitize.sh tests/api/test_io.py -k npz  # any pytest arguments instead
#
# The build goes to its own directory (FASTRNN_SANITIZE_BUILD, default build/sanitize) and
# the package under test is a copy in a temporary directory: python/fastrnn/_core*.so and any
# installed fastrnn are never touched. The sanitizer runtimes are preloaded into the Python
# process (it is not instrumented itself); torch and numpy run under them unchanged.
#
# Needs: cmake, ninja, the compiler CMake finds, pybind11, and the test dependencies
# (pip install ".[test]").
set -euo pipefail
cd "$(dirname "$0")/.."

SANITIZE_TESTS=(
  tests/parity/test_parity_torch.py        # every ISA, mode and option against torch
  tests/parity/test_reference.py           # the same grid against the float64 NumPy reference
  tests/parity/test_variants.py            # ONNX / Keras cell variants, classic GRU, reverse
  tests/parity/test_precision.py           # bf16 / int8 kernels (stack buffers, AMX tiles)
  tests/hardening/test_errors.py           # every rejected argument
  tests/hardening/test_sizes_native.py     # absurd sizes straight into the core
  tests/api/test_stream.py                 # step(): state arrays updated in place
  tests/api/test_io.py                     # files and state dicts
  tests/parity/test_threads.py             # teams of 2 threads from the pool: bit-identity
  tests/hardening/test_threads_runtime.py  # callers sharing the cores, queued calls, fork
  tests/kernels/test_batch1_ahead.py       # batch 1: projection inside the steps, bit-identity
  tests/kernels/test_cpu_caches.py         # cache detection; tiny and huge caches: same bits
  tests/kernels/test_row_blocks.py         # every row block tail: same bits for any batch
  tests/kernels/test_f32_strips.py         # AVX2 strips against panel rows; the whole-rows copy
  tests/kernels/test_plan.py               # the plan; the workspace size check
  tests/hardening/test_concurrency.py      # many Python threads in the core, GIL released
  tests/kernels/test_activations.py        # the vector activations on every ISA, NaN and ±inf
  tests/parity/test_edge_numerics.py       # NaN, ±inf, 1e30 and subnormals through every kernel
  tests/parity/test_property.py            # hypothesis: shapes, strides, states, lengths
  tests/hardening/test_fuzz_load.py        # corrupted and adversarial model files
)
# Not here: test_trained_parity.py (T = 1000 on every ISA: 76 s under ASan, with the kernels
# test_parity_torch.py runs already); test_leaks.py and test_resources.py measure resident
# memory, which ASan's shadow memory and quarantine change by design.
# test_torch_and_fastrnn_in_one_process times torch against fastrnn: under ASan only fastrnn
# is slowed, so its ratios mean nothing there. test_precision.py's end-to-end bounds and
# trained models (T = 1000, a training loop) run the kernels its other tests cover, longer.
if [ $# -gt 0 ]; then
  tests=("$@")
else
  tests=("${SANITIZE_TESTS[@]}" --deselect
    tests/hardening/test_threads_runtime.py::test_torch_and_fastrnn_in_one_process
    -k "not within_the_stated_bound and not trained")
fi

# float-cast-overflow is not part of GCC's "undefined": a NaN, inf or huge float converted to
# an int is undefined behaviour, and the kernels convert floats to ints (exp's 2^n).
sanitizers=address,undefined,float-cast-overflow
build=${FASTRNN_SANITIZE_BUILD:-build/sanitize}
python=$(python -c 'import sys; print(sys.executable)')

start=$SECONDS
echo "== sanitize: building _core with -fsanitize=$sanitizers in $build"
nice -n 10 cmake -S . -B "$build" -G Ninja -DFASTRNN_SANITIZE="$sanitizers" \
  -DPython_EXECUTABLE="$python" -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" >/dev/null
nice -n 10 ninja -C "$build"
so=$(ls "$build"/_core*.so)
build_time=$((SECONDS - start))

# Both runtimes must be loaded before anything else: the interpreter is not instrumented, so
# they come in through LD_PRELOAD (ASan first, as it requires).
cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
preload="$("$cxx" -print-file-name=libasan.so) $("$cxx" -print-file-name=libubsan.so)"
for lib in $preload; do
  [ -f "$lib" ] || { echo "sanitize: $lib not found (compiler $cxx)" >&2; exit 1; }
done
# The build must really be sanitized, and UBSan built not to recover: every check calls an
# __ubsan_handle_*_abort handler (the two below exist only in a fatal form).
symbols=$(nm -D --undefined-only "$so" | awk '{print $NF}')
grep -q '^__asan_init' <<<"$symbols" || { echo "sanitize: $so lacks ASan" >&2; exit 1; }
grep -q '^__ubsan_handle_' <<<"$symbols" || { echo "sanitize: $so lacks UBSan" >&2; exit 1; }
recoverable=$(grep '^__ubsan_handle_' <<<"$symbols" |
  grep -v -e '_abort$' -e '^__ubsan_handle_builtin_unreachable$' \
    -e '^__ubsan_handle_missing_return$' || true)
if [ -n "$recoverable" ]; then
  echo "sanitize: recoverable UBSan checks in $so (needs -fno-sanitize-recover=all):" >&2
  echo "$recoverable" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/pkg" "$work/logs"
# The whole package (its subpackages too), without an in-place build's extension or caches.
cp -r python/fastrnn "$work/pkg/"
rm -f "$work"/pkg/fastrnn/_core*.so
find "$work/pkg" -name __pycache__ -prune -exec rm -rf {} +
cp "$so" "$work/pkg/fastrnn/"

# detect_leaks=0: CPython keeps interned objects and arenas to exit by design, so LeakSanitizer
# would report the interpreter, not us. ASan reports go to files (log_path), printed below;
# UBSan reports ignore log_path when ASan is loaded and go to stderr, which pytest must not
# capture (--capture=sys captures Python's sys.stderr only): a report printed into captured
# output would be lost when the process aborts.
export LD_PRELOAD="$preload"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$work/logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export PYTHONPATH="$work/pkg${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONFAULTHANDLER=1

fail() {
  echo "sanitize: FAILED ($1)" >&2
  for f in "$work"/logs/*; do [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done
  exit 1
}

# The package under test is the sanitized copy, and a real report does fail the process:
# a read after free through an intercepted memmove must abort with ASan's report.
"$python" -c "
import fastrnn._core as c
assert c.__file__.startswith('$work/pkg/'), c.__file__
maps = open('/proc/self/maps').read()
assert 'libasan' in maps and 'libubsan' in maps, 'sanitizer runtimes not loaded'
" || fail "the sanitized package is not the one imported"
if "$python" -c "
import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
p = libc.malloc(64)
libc.free(p)
ctypes.memmove(ctypes.create_string_buffer(64), p, 64)
" 2>/dev/null || ! grep -qs 'heap-use-after-free' "$work"/logs/asan.*; then
  fail "the canary use-after-free was not reported"
fi
rm -f "$work"/logs/*

start=$SECONDS
echo "== sanitize: pytest ${tests[*]}"
status=0
nice -n 10 "$python" -m pytest -q -p no:cacheprovider --capture=sys "${tests[@]}" 2>&1 |
  tee "$work/pytest.log" || status=$?
test_time=$((SECONDS - start))
if compgen -G "$work/logs/*" >/dev/null; then fail "ASan reports below"; fi
if grep -qE 'runtime error:|ERROR: AddressSanitizer|SUMMARY: [A-Za-z]+Sanitizer' "$work/pytest.log"
then
  fail "sanitizer reports above"
fi
[ "$status" -eq 0 ] || fail "pytest exit status $status (a sanitizer abort is 134)"
echo "== sanitize: OK, 0 sanitizer reports (build ${build_time}s, tests ${test_time}s)"
