"""What tests share besides fixtures: the ISAs to run, pinned caches, the comparison that
explains its failures, the error records the run's summary prints (tests/conftest.py), and
the build of small native programs from the checkout's sources."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

import fastrnn
from fastrnn import _core

REPO = Path(__file__).resolve().parents[2]
GXX = shutil.which("g++")

# The ISA fastrnn chose at import: the best one, or the one FASTRNN_ISA forced.
SESSION_ISA = _core.isa()
FORCED_ISA = os.environ.get("FASTRNN_ISA", "").strip().lower()
ISAS = [SESSION_ISA] if FORCED_ISA not in ("", "auto") else list(_core.isa_available())


# The caches of the Zen 4 the blocking was tuned on (csrc/ops/blocking.cc): under them the
# blocking is the one the tests' sizes were chosen for (G_x chunks of 128 Ki floats, spans
# of 256 Ki, the batch-1 ahead projection up to 8 MiB of weights), on any CPU.
ZEN4_CACHES = {"l1d": 32 << 10, "l2": 1 << 20, "l3": 32 << 20, "l3_near": True}


@contextlib.contextmanager
def caches_pinned(**caches):
    """Runs with the blocking derived from these caches (see fastrnn._core.cpu_caches_override),
    then restores the session's: the detected caches and any FASTRNN_CACHE_* overrides."""
    _core.cpu_caches_override(**caches)
    try:
        yield
    finally:
        _core.cpu_caches_override()
        fastrnn._runtime.caches_select_from_env()


def error_report(actual, expected, name: str = "", scaled: bool = False) -> tuple[float, str]:
    """(error, description). The error is the max abs error, or with scaled=True the max of
    |Δ| / max(1, |expected|): absolute for values of size ≤ 1, relative above. The
    description gives max abs error, max rel error (and the scaled one) with their indices."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return np.inf, f"{name}: shape {a.shape} != expected {e.shape}"
    if a.size == 0:
        return 0.0, f"{name}: empty"
    bad_nan = np.isnan(a) != np.isnan(e)
    if bad_nan.any():
        where = tuple(int(i) for i in np.argwhere(bad_nan)[0])
        return np.inf, f"{name}: NaN mismatch at {where}: got {a[where]!r}, expected {e[where]!r}"
    with np.errstate(invalid="ignore"):
        same = (np.isnan(a) & np.isnan(e)) | (a == e)  # NaN = NaN, inf = inf
        diff = np.where(same, 0.0, np.abs(a - e))
        rel = np.where(same, 0.0, diff / np.abs(e))
        sc = np.where(same, 0.0, diff / np.maximum(1.0, np.abs(e)))

    def at(m):
        i = np.unravel_index(int(np.argmax(m)), m.shape)
        return float(m[i]), f"at {tuple(int(k) for k in i)} (got {a[i]:.9g}, expected {e[i]:.9g})"

    (max_abs, w_abs), (max_rel, w_rel), (max_sc, w_sc) = at(diff), at(rel), at(sc)
    text = f"{name}: max abs error {max_abs:.3g} {w_abs}; max rel error {max_rel:.3g} {w_rel}"
    if scaled:
        text += f"; max |Δ|/max(1,|expected|) {max_sc:.3g} {w_sc}"
    return (max_sc if scaled else max_abs), text + f"; shape {a.shape}"


def assert_close(actual, expected, atol: float, name: str = "", scaled: bool = False) -> float:
    """Asserts max |actual − expected| ≤ atol (NaN must match NaN; with scaled=True the error
    is |Δ| / max(1, |expected|)); returns that error. On failure the message gives the max
    abs error, the max rel error and their indices."""
    err, text = error_report(actual, expected, name, scaled)
    assert err <= atol, f"{text}; tolerance {atol:g}"
    return err


def flatten(result) -> list:
    """(out, h_n) or (out, (h_n, c_n)) or h or (h, c) as a flat list of arrays."""
    flat = []
    for a in result if isinstance(result, tuple) else (result,):
        flat.extend(a if isinstance(a, tuple) else (a,))
    return flat


def assert_same_bits(model, reference, x: np.ndarray, stream: bool = True) -> None:
    """model gives reference's bits on x (T, B, I) at 1 and 2 threads, and (stream) a stream
    of model stepping through x gives forward's outputs: two packings of one model (layouts
    that every table reads to the same sums)."""
    want = flatten(reference(x))
    for threads in (1, 2):
        for a, b in zip(flatten(model(x, num_threads=threads)), want):
            np.testing.assert_array_equal(a, b, err_msg=f"{threads} threads")
    if stream:
        s = model.stream(batch=x.shape[1])
        ys = np.stack([s.step(x[t]) for t in range(x.shape[0])])
        np.testing.assert_array_equal(ys, want[0])


def assert_results(
    actual,
    expected,
    atol: float,
    names=None,
    label: str = "",
    suite: str = "",
    isa: str = "",
    scaled: bool = True,
) -> float:
    """Compares every array of a result (output and every state) with the sequence tiers'
    measure |Δ| / max(1, |expected|) (scaled=True; see tests/README.md); returns the max.
    With suite and isa given, the error is recorded (see LARGEST_ERRORS) before asserting."""
    got, want = flatten(actual), flatten(expected)
    assert len(got) == len(want), f"{label}: {len(got)} arrays, expected {len(want)}"
    names = names or [f"result[{i}]" for i in range(len(got))]
    reports = [error_report(g, w, f"{label} {n}", scaled) for g, w, n in zip(got, want, names)]
    worst = max(err for err, _ in reports)
    if suite:
        record_error(suite, isa, worst, label)
        max_abs = max(error_report(g, w)[0] for g, w in zip(got, want))
        record_error(suite + " abs", isa, max_abs, label)
    failed = [text for err, text in reports if not err <= atol]
    assert not failed, "\n".join(failed) + f"\ntolerance {atol:g}"
    return worst


# The largest error each parity suite saw per ISA: {(suite, isa): (error, test id)}.
# Printed at the end of the run, so that a report can quote the margin to the tolerance.
LARGEST_ERRORS: dict[tuple[str, str], tuple[float, str]] = {}


def record_error(suite: str, isa: str, err: float, where: str) -> None:
    key = (suite, isa)
    if err > LARGEST_ERRORS.get(key, (-1.0, ""))[0]:
        LARGEST_ERRORS[key] = (err, where)


# test_trained_parity.py: {(model, isa): (fastrnn error / torch error against float64,
# fastrnn's error, torch's error, the largest |value| of the float64 outputs and states)}.
TRAINED_RATIOS: dict[tuple[str, str], tuple[float, float, float, float]] = {}


def build_native(program: Path, sources: list[str], flags: list[str]) -> None:
    """Compiles sources (paths in the checkout) with g++, C++17, csrc/ on the include path and
    the given flags (after the sources, so libraries too), into the program; asserts that it
    built (the compiler's errors shown)."""
    build = subprocess.run(
        [GXX, "-std=c++17", "-Icsrc", *sources, "-o", str(program), "-pthread", *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
