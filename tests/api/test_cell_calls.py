"""Cells (LSTMCell, GRUCell, RNNCell): float32 C-contiguous inputs of the right shapes take
the core's one-call path (`_core.Model.cell`); everything else goes through the cell's Python
checks and conversions. Both give the same bits, and the errors stay the Python ones."""

import numpy as np
import pytest

import fastrnn
from fastrnn import _core

CELLS = ["LSTMCell", "GRUCell", "RNNCell"]


def as_float64(state):
    """The same values in float64: the core does not take them, so the cell converts."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(a.astype(np.float64) for a in state)
    return state.astype(np.float64)


def assert_same(got, expected):
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.dtype == np.float32 and g.shape == e.shape and np.array_equal(g, e)
    else:
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        assert got.shape == expected.shape and np.array_equal(got, expected)


@pytest.mark.parametrize("dtype", ["float32", "bf16", "int8"])
@pytest.mark.parametrize("batch", [None, 1, 3])
@pytest.mark.parametrize("name", CELLS)
def test_core_path_equals_the_converting_path(name, batch, dtype):
    cell = getattr(fastrnn, name)(5, 7, seed=0)
    if dtype != "float32":
        cell = fastrnn.quantize(cell, dtype)
    rng = np.random.default_rng(1)
    shape = (5,) if batch is None else (batch, 5)
    fast_state = slow_state = None
    for t in range(5):
        x = rng.standard_normal(shape).astype(np.float32)
        fast = cell(x, fast_state)
        slow = cell(x.astype(np.float64), as_float64(slow_state))
        assert_same(fast, slow)
        # The next call's state as tuples, lists and arrays alike.
        fast_state = list(fast) if name == "LSTMCell" and t % 2 else fast
        slow_state = slow


def test_core_path_takes_only_what_it_can_and_leaves_the_rest():
    cell = fastrnn.LSTMCell(4, 6, seed=0)
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
    h = np.full((2, 6), 0.25, np.float32)
    c = np.full((2, 6), -0.5, np.float32)
    core = cell._layer._core
    expected = cell(x.astype(np.float64), (h, c))
    assert_same(core.cell(x, (h, c)), expected)
    assert_same(core.cell(x, [h, c]), expected)
    # Not as the core takes it: None, and the cell converts.
    for x_, state in [
        (np.asfortranarray(x), (h, c)),
        (x.astype(np.float64), (h, c)),
        (x, (h.astype(np.float64), c)),
        (x, (h, c[:1])),
        (x, (h, c, c)),
        (x, h),
        (x[:, :3], (h, c)),
        (x[:0], None),
    ]:
        assert core.cell(x_, state) is None
    assert_same(cell(np.asfortranarray(x), (h, c)), expected)
    y0 = cell(x[:0])  # an empty batch, as torch: empty outputs
    assert y0[0].shape == (0, 6) and y0[1].shape == (0, 6)


def test_errors_stay_the_cells_own():
    cell = fastrnn.LSTMCell(4, 6, seed=0)
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"LSTMCell: x must have shape \(B, 4\) or \(4,\)"):
        cell(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match=r"LSTMCell: state must be a tuple \(h, c\)"):
        cell(x, np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match=r"LSTMCell: h must have shape \(2, 6\)"):
        cell(x, (np.zeros((3, 6), np.float32), np.zeros((2, 6), np.float32)))
    gru = fastrnn.GRUCell(4, 6, seed=0)
    with pytest.raises(ValueError, match=r"GRUCell: h must have shape \(6,\)"):
        gru(np.zeros(4, np.float32), np.zeros((1, 6), np.float32))


def test_core_cell_refuses_what_is_not_a_cell():
    model = fastrnn.LSTM(4, 6, num_layers=2, seed=0)
    with pytest.raises(ValueError, match="a cell is one unidirectional layer"):
        model._core.cell(np.zeros(4, np.float32), None)
    assert isinstance(model._core, _core.Model)
