"""Tier 1: the vectorised sigmoid and tanh against float64, on every instruction set.

The bounds are the ones csrc/kernels/activations/activations.h states: max abs error
≤ 3e-7 (sigmoid) and ≤ 1e-7 (tanh, also ≤ 1 ulp of the result) over all finite floats; sigmoid(±inf) = 1 / 0,
tanh(±inf) = ±1, tanh(±0) = ±0, NaN → NaN, tanh(x) = x exactly for subnormal x.

"All finite floats" is sampled by bit pattern (every 4099th of the 2^32 patterns, so every
exponent and both signs) plus a dense linear grid over [-20, 20], where both functions move.
Measured when this file was written (every 61st pattern, 70 M floats): 8.9e-8 (sigmoid), the
same on every ISA; tanh since 2026-12 (x + x³·P(x²) below |x| = 0.9, 1 − 2/(1 + e^{2|x|})
above): 5.7e-8, 0.96 ulp at most, 0.17 ulp on average.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastrnn import _core
from support import reference
from support.common import assert_close, record_error

SIGMOID_BOUND = 3e-7
TANH_BOUND = 1e-7


def _grid() -> np.ndarray:
    patterns = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32).view(np.float32)
    linear = np.linspace(-20.0, 20.0, 2_000_001, dtype=np.float32)
    x = np.concatenate([patterns, linear])
    return x[np.isfinite(x)]


GRID = _grid()
GRID64 = GRID.astype(np.float64)


@pytest.fixture(scope="module")
def truth():
    with np.errstate(all="ignore"):
        return {"sigmoid": reference.sigmoid(GRID64), "tanh": np.tanh(GRID64)}


@pytest.mark.parametrize(("fn", "bound"), [("sigmoid", SIGMOID_BOUND), ("tanh", TANH_BOUND)])
def test_dense_grid_within_stated_bound(fn, bound, isa, truth):
    got = getattr(_core, fn)(GRID)
    assert got.dtype == np.float32 and got.shape == GRID.shape
    err = assert_close(got, truth[fn], bound, f"{fn} [{isa}] over {GRID.size} floats")
    record_error(fn, isa, err, f"{fn} dense grid")


def test_grid_reaches_every_exponent():
    exponents = np.unique((GRID.view(np.uint32) >> 23) & 0xFF)
    assert len(exponents) == 255  # all but 0xFF (inf/NaN): subnormals included
    assert (GRID < 0).any() and (GRID > 0).any()


SPECIAL = np.array(
    [
        np.inf,
        -np.inf,
        1e30,
        -1e30,
        3.4028235e38,
        -3.4028235e38,
        # exp's clamps and overflow / underflow edges
        88.72,
        -88.72,
        88.73,
        -88.73,
        89.0,
        -89.0,
        103.9,
        -103.9,
        104.0,
        -104.0,
        200.0,
        -200.0,
        0.4,
        -0.4,
        1.0,
        -1.0,
        # tanh's clamp at ±9 and its neighbours
        9.0,
        -9.0,
        np.nextafter(np.float32(9), np.float32(0)),
        np.nextafter(np.float32(9), np.float32(10)),
        # just below saturation, where the rational form would overshoot 1 unclamped
        7.0,
        -7.0,
        1e-4,
        -1e-4,
        1e-20,
        -1e-20,
    ],
    dtype=np.float32,
)


@pytest.mark.parametrize(("fn", "bound"), [("sigmoid", SIGMOID_BOUND), ("tanh", TANH_BOUND)])
def test_special_values_within_bound(fn, bound, isa):
    with np.errstate(all="ignore"):
        want = (
            reference.sigmoid(SPECIAL.astype(np.float64))
            if fn == "sigmoid"
            else np.tanh(SPECIAL.astype(np.float64))
        )
    assert_close(getattr(_core, fn)(SPECIAL), want, bound, f"{fn} [{isa}] special values")


def test_infinities(isa):
    inf = np.array([np.inf, -np.inf], dtype=np.float32)
    assert _core.sigmoid(inf).tolist() == [1.0, 0.0]
    assert _core.tanh(inf).tolist() == [1.0, -1.0]


def test_huge_inputs_saturate(isa):
    big = np.array([1e30, -1e30, 3.4028235e38, -3.4028235e38, 200.0, -200.0], dtype=np.float32)
    assert _core.sigmoid(big).tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert _core.tanh(big).tolist() == [1.0, -1.0, 1.0, -1.0, 1.0, -1.0]


def test_nan_gives_nan(isa):
    nan = np.array([np.nan, -np.nan, np.float32(np.nan) * 0], dtype=np.float32)
    assert np.isnan(_core.sigmoid(nan)).all()
    assert np.isnan(_core.tanh(nan)).all()


def test_tanh_of_positive_zero(isa):
    y = _core.tanh(np.array([0.0], dtype=np.float32))
    assert y[0] == 0 and not np.signbit(y[0])


def test_tanh_of_negative_zero(isa):
    y = _core.tanh(np.array([-0.0], dtype=np.float32))
    assert y[0] == 0 and np.signbit(y[0]), f"tanh(-0.0) = {y[0]!r}, expected -0.0"


def test_sigmoid_of_zeros(isa):
    assert _core.sigmoid(np.array([0.0, -0.0], dtype=np.float32)).tolist() == [0.5, 0.5]


def _subnormals() -> np.ndarray:
    # Every 997th subnormal bit pattern of both signs, plus the extremes.
    mags = np.concatenate(
        [
            np.arange(1, 1 << 23, 997, dtype=np.uint32),
            np.array([1, 2, 3, (1 << 23) - 1], dtype=np.uint32),
        ]
    )
    pos = mags.view(np.float32)
    return np.concatenate([pos, -pos])


def test_subnormals(isa):
    x = _subnormals()
    assert (np.abs(x) < np.finfo(np.float32).tiny).all() and (x != 0).all()
    t = _core.tanh(x)
    bad = np.flatnonzero(t.view(np.uint32) != x.view(np.uint32))
    assert bad.size == 0, f"tanh(x) != x for subnormal x = {x[bad[0]]!r}: got {t[bad[0]]!r}"
    assert (_core.sigmoid(x) == 0.5).all()


def test_ranges_and_symmetry(isa):
    """Outputs stay in the functions' ranges and tanh is exactly odd (it copies the sign)."""
    s, t = _core.sigmoid(GRID), _core.tanh(GRID)
    assert s.min() >= 0.0 and s.max() <= 1.0
    assert t.min() >= -1.0 and t.max() <= 1.0
    nonzero = GRID[GRID != 0]
    assert np.array_equal(_core.tanh(-nonzero), -_core.tanh(nonzero))


@pytest.mark.parametrize("fn", ["sigmoid", "tanh"])
def test_vector_tails_and_shapes(fn, isa):
    """Any length (not only multiples of the 16-lane vector) and any shape: element i of the
    result depends on element i of the input only."""
    f = getattr(_core, fn)
    x = np.random.default_rng(0).standard_normal(100, dtype=np.float32) * 5
    full = f(x)
    for n in list(range(40)) + [63, 64, 65, 99]:
        assert np.array_equal(f(x[:n]), full[:n]), f"{fn}: length {n}"
        assert np.array_equal(f(x[100 - n :]), full[100 - n :]), f"{fn}: offset {100 - n}"
    assert np.array_equal(f(x.reshape(4, 25)), full.reshape(4, 25))


def test_tanh_within_one_ulp(isa):
    """tanh's error in units of the result's last place: ≤ 1 ulp everywhere (the trained
    tanh RNNs of test_trained_parity.py need it: at 4 ulp, fastrnn's error against float64
    was 3.5x torch's)."""
    y = _core.tanh(GRID).astype(np.float64)
    ref = np.tanh(GRID64)
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    ulps = np.abs(y - ref) / ulp
    assert ulps.max() <= 1.0, float(ulps.max())
    assert ulps.mean() <= 0.25, float(ulps.mean())
