"""float32 W_ih and W_hh in 16-column strips and in whole panel rows.

The AVX2 table packs a float32 model's W_ih and W_hh with each panel's 16-column vectors
apart (strips of K rows of 64 contiguous bytes, for its 6-row x 16-column GEMM tile, which
many-row steps take too: csrc/kernels/vec/vec-avx2.h kGemmStrips); the others keep whole
panel rows. A model keeps the layout it was packed in. Every table's GEMM reads both to the
same bits (the input projection over a chunk of time steps, a stream's own per-step
projection, the classic GRU's); the AVX2 table's steps read both to the same bits (batch 1,
the 2- and 3-row tiles on some of a panel's gates at a time, many rows), and another table
runs a W_hh in strips from the model's copy in whole rows: every layer and direction, at 1
and 2 threads.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import fastrnn
from fastrnn import _core
from support.common import SESSION_ISA, assert_same_bits, flatten

f32 = np.float32

STRIPS = "avx2"  # the table that packs W_ih and W_hh in strips

needs_strips = pytest.mark.skipif(
    STRIPS not in _core.isa_available(), reason="only the AVX2 table packs strips"
)


@pytest.fixture
def layout_restored():
    yield
    _core.f32_strips(True)
    _core.set_isa(SESSION_ISA)


def _layouts(make):
    """The model make() builds, packed (built) while the AVX2 table is in use twice: in strips
    and (switched off) in whole panel rows; the layout stays the model's whichever table then
    runs it. Returns (strips, whole)."""
    models = {}
    _core.set_isa(STRIPS)
    for strips in (True, False):
        _core.f32_strips(strips)
        assert _core.f32_strips() is strips
        models[strips] = make()
    _core.f32_strips(True)
    _core.set_isa(SESSION_ISA)
    return models[True], models[False]


CASES = [
    ("LSTM", {"num_layers": 2}),
    ("LSTM", {"proj_size": 13}),
    ("GRU", {"bidirectional": True}),
    ("GRU", {"linear_before_reset": False}),
    ("RNN", {"nonlinearity": "relu"}),
]


@needs_strips
@pytest.mark.parametrize(("mode", "kw"), CASES)
@pytest.mark.parametrize("batch", [1, 2, 3, 8, 70])
def test_strips_give_whole_rows_bits(isa, layout_restored, mode, kw, batch):
    """Both layouts on the table under test: bit for bit, 1 and 2 threads, and (one
    direction) a stream's steps (each projecting its own x_t) give forward's bits."""
    # I = 37: not a multiple of the strip loop's 4 k; H = 45: the last panel partly padding.
    strips, whole = _layouts(lambda: getattr(fastrnn, mode)(37, 45, seed=5, **kw))
    _core.set_isa(isa)
    x = np.random.default_rng(batch).standard_normal((9, batch, 37)).astype(f32)
    assert_same_bits(strips, whole, x, stream=not kw.get("bidirectional"))


@needs_strips
@pytest.mark.parametrize("inputs", [1, 3, 255, 256, 257, 600])
def test_strips_depth_blocks(layout_restored, inputs):
    """Input sizes around the strips' depth blocks (256 k) and their 4-k loop: the bits of
    whole panel rows, on the AVX2 table, over a chunk of many rows."""
    strips, whole = _layouts(lambda: fastrnn.LSTM(inputs, 20, seed=3))
    _core.set_isa(STRIPS)
    x = np.random.default_rng(inputs).standard_normal((5, 13, inputs)).astype(f32)
    assert_same_bits(strips, whole, x)


@needs_strips
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("hidden", [1, 17, 255, 257])
@pytest.mark.parametrize("batch", [1, 2, 3, 13])
def test_strips_hidden_sizes(layout_restored, mode, hidden, batch):
    """Hidden sizes (W_hh's depth) around the many-row steps' depth blocks (256 k) and their
    4-k loop, and a last panel mostly padding: the bits of whole panel rows on the AVX2
    table, batch 1 to 3 (the few-row tiles) and many rows."""
    strips, whole = _layouts(lambda: getattr(fastrnn, mode)(8, hidden, seed=4))
    _core.set_isa(STRIPS)
    x = np.random.default_rng(hidden).standard_normal((6, batch, 8)).astype(f32)
    assert_same_bits(strips, whole, x)


@needs_strips
def test_whole_rows_copy_made_once_under_threads(layout_restored):
    """A model in strips first run by a table that reads W_hh in whole rows, from several
    Python threads at once (the copy is made by one of them, once): every thread gets the
    bits of the model packed in whole rows."""
    strips, whole = _layouts(lambda: fastrnn.LSTM(37, 45, seed=5, num_layers=2))
    _core.set_isa("scalar")
    x = np.random.default_rng(7).standard_normal((9, 4, 37)).astype(f32)
    expected = flatten(whole(x))
    results = [None] * 4
    barrier = threading.Barrier(len(results))

    def run(i):
        barrier.wait()
        results[i] = flatten(strips(x))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


@needs_strips
def test_strips_switch_and_where_it_packs(layout_restored):
    """The switch reports the table's choice and turns it off and on; only the AVX2 table
    packs strips."""
    for name in _core.isa_available():
        _core.set_isa(name)
        assert _core.f32_strips() is (name == STRIPS)
        assert _core.f32_strips(False) is False
        assert _core.f32_strips(True) is (name == STRIPS)


@needs_strips
def test_strips_never_project_ahead(layout_restored):
    """A model packed in strips, run by a table that projects batch-1 steps ahead (its tiles
    read W_ih in whole rows: the scalar table, forced on), projects plainly instead, to the
    same bits."""
    # 128 Ki multiply-adds a step
    strips, whole = _layouts(lambda: fastrnn.LSTM(128, 128, seed=2))
    _core.set_isa("scalar")
    _core.ahead_override(True)
    try:
        assert whole.plan(1, 50, num_threads=1)["ahead"] == [1]
        assert strips.plan(1, 50, num_threads=1)["ahead"] == [0]
        x = np.random.default_rng(0).standard_normal((50, 1, 128)).astype(f32)
        for a, b in zip(flatten(strips(x)), flatten(whole(x))):
            np.testing.assert_array_equal(a, b)
    finally:
        _core.ahead_override(None)


@needs_strips
@pytest.mark.parametrize(
    ("mode", "kw"),
    [
        ("LSTM", {"num_layers": 2}),
        ("LSTM", {"proj_size": 13}),
        ("GRU", {"bidirectional": True}),
        ("GRU", {"linear_before_reset": False}),
    ],
)
def test_bf16_widened_into_strips(layout_restored, mode, kw):
    """A batched bf16 call on the AVX2 table widens W_ih and W_hh once into strips, the
    layout its float32 kernels run (the classic GRU's W_hh and the projection's W_hr stay in
    whole rows), or, switched off, into whole panel rows: either way the bits of the float32
    model of the rounded weights, at 1 and 2 threads."""
    model = fastrnn.quantize(getattr(fastrnn, mode)(37, 45, seed=6, **kw), "bf16")
    rounded = fastrnn.quantize(model, "float32")
    _core.set_isa(STRIPS)
    x = np.random.default_rng(6).standard_normal((10, 40, 37)).astype(f32)
    assert model.plan(40, 10)["widen"]
    expected = {t: flatten(rounded(x, num_threads=t)) for t in (1, 2)}
    for strips in (True, False):
        _core.f32_strips(strips)
        for t in (1, 2):
            for a, b in zip(flatten(model(x, num_threads=t)), expected[t]):
                np.testing.assert_array_equal(a, b)
