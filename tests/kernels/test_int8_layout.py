"""int8 weights in split panels and in whole panel rows.

The AVX2 table packs int8 models with each panel's 16-column vectors apart (split panels, for
its 4-row x 16-column tile: csrc/kernels/reduced/rvec-avx2.h kRedSplit); the others keep whole
panel rows. A model keeps the layout it was packed in, and every table reads both layouts to
the same exact integer sums: the same bits on every kernel (few-row and many-row steps, the
GEMM over time steps, the projection, the classic GRU's two steps), at 1 and 2 threads.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from fastrnn import _core
from support.common import SESSION_ISA, assert_same_bits, flatten

f32 = np.float32

SPLITS = "avx2"  # the table that packs int8 models split

needs_split = pytest.mark.skipif(
    SPLITS not in _core.isa_available(), reason="only the AVX2 table packs split panels"
)


@pytest.fixture
def layout_restored():
    yield
    _core.int8_split(True)
    _core.set_isa(SESSION_ISA)


def _packed(model, dtype: str, split: bool):
    """model quantised, packed by the AVX2 table (split panels, or whole rows where switched
    off): the layout stays the model's whichever table then runs it."""
    _core.set_isa(SPLITS)
    _core.int8_split(split)
    assert _core.int8_split() is split
    q = fastrnn.quantize(model, dtype)
    _core.int8_split(True)
    _core.set_isa(SESSION_ISA)
    return q


CASES = [
    ("LSTM", {"num_layers": 2}),
    ("LSTM", {"proj_size": 13}),
    ("GRU", {"bidirectional": True}),
    ("GRU", {"linear_before_reset": False}),
    ("RNN", {}),
]


@needs_split
@pytest.mark.parametrize("dtype", ["int8", "int7"])
@pytest.mark.parametrize(("mode", "kw"), CASES)
@pytest.mark.parametrize("batch", [1, 3, 8, 70])
def test_split_panels_give_whole_rows_bits(isa, layout_restored, dtype, mode, kw, batch):
    """Both layouts on the table under test: bit for bit, 1 and 2 threads, and (one
    direction) a stream's steps give forward's bits."""
    # I = 37 and H = 45: the last panel and the last k quad are partly padding.
    model = getattr(fastrnn, mode)(37, 45, seed=5, **kw)
    split = _packed(model, dtype, True)
    whole = _packed(model, dtype, False)
    _core.set_isa(isa)
    x = np.random.default_rng(batch).standard_normal((9, batch, 37)).astype(f32)
    assert_same_bits(split, whole, x, stream=not kw.get("bidirectional"))


@needs_split
def test_split_switch_and_where_it_packs(layout_restored):
    """The switch reports the table's choice and turns it off and on; only the AVX2 table
    (and its narrow sibling's models) packs split."""
    for name in _core.isa_available():
        _core.set_isa(name)
        assert _core.int8_split() is (name == SPLITS)
        assert _core.int8_split(False) is False
        assert _core.int8_split(True) is (name == SPLITS)


@needs_split
def test_split_model_round_trips_through_a_file(tmp_path, layout_restored):
    """The file holds the weights, not the packing: a split model saved and loaded on
    another table gives the same bits."""
    q = _packed(fastrnn.LSTM(24, 40, seed=8, proj_size=10), "int8", True)
    path = tmp_path / "m.safetensors"
    q.save(path)
    x = np.random.default_rng(1).standard_normal((5, 3, 24)).astype(f32)
    want = flatten(q(x))
    _core.set_isa("scalar")
    back = fastrnn.load(path)
    for a, b in zip(flatten(back(x)), want):
        np.testing.assert_array_equal(a, b)
