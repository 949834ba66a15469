"""The compiled core's own size bounds (csrc/bindings/module.cc), called directly: absurd or
overflowing sizes are a ValueError naming them, raised before anything is allocated, never
a MemoryError, a wrapped-around allocation or a crash. The public API checks the same
bounds first (tests/test_errors.py); these are the last line of defence behind it."""

from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest

import fastrnn
from fastrnn import _core
from fastrnn._checks import MAX_LAYERS, MAX_SIZE


def model(
    mode="LSTM",
    input_size=5,
    hidden_size=7,
    num_layers=1,
    bidirectional=False,
    proj_size=0,
    bias=True,
    weights=(),
):
    return _core.Model(
        mode, input_size, hidden_size, num_layers, bidirectional, proj_size, bias, list(weights)
    )


ABSURD = [-1, 0, 2**31, 2**40, 2**63, 2**70, -(2**70)]


@pytest.mark.parametrize("value", ABSURD)
@pytest.mark.parametrize("name", ["input_size", "hidden_size", "num_layers"])
def test_model_size_out_of_range(name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be in \[1, \d+\], got {value}$"):
        model(**{name: value})


@pytest.mark.parametrize("value", [-1, 2**40, 2**70])
def test_model_proj_size_out_of_range(value):
    with pytest.raises(ValueError, match=rf"^proj_size must be in \[0, \d+\], got {value}$"):
        model(hidden_size=9, proj_size=value)


def test_bounds_match_python():
    """The core accepts exactly what python/fastrnn/_checks.py accepts: at the bound, the
    sizes pass and the (missing) weights are what is refused."""
    with pytest.raises(ValueError, match=re.escape("weights must hold 1 entries, got 0")):
        model("RNN_TANH", input_size=MAX_SIZE, hidden_size=1)
    with pytest.raises(ValueError, match=re.escape(f"weights must hold {MAX_LAYERS} entries")):
        model("RNN_TANH", input_size=1, hidden_size=1, num_layers=MAX_LAYERS)
    with pytest.raises(ValueError, match=f"^input_size must be in \\[1, {MAX_SIZE}\\]"):
        model(input_size=MAX_SIZE + 1)
    with pytest.raises(ValueError, match=f"^num_layers must be in \\[1, {MAX_LAYERS}\\]"):
        model(num_layers=MAX_LAYERS + 1)


@pytest.mark.parametrize(
    "sizes",
    [
        {
            "input_size": MAX_SIZE,
            "hidden_size": MAX_SIZE,
            "num_layers": MAX_LAYERS,
            "bidirectional": True,
        },
        {"input_size": 1, "hidden_size": MAX_SIZE, "num_layers": MAX_LAYERS},
        {"input_size": MAX_SIZE, "hidden_size": MAX_SIZE},
        {"input_size": 1, "hidden_size": MAX_SIZE, "proj_size": MAX_SIZE - 1, "num_layers": 2},
    ],
)
def test_model_too_large_to_pack(sizes):
    """Each size is within bounds, their products are not: refused before packing."""
    with pytest.raises(ValueError, match=r"^model too large: .* would pack to more than 2\^35"):
        model(**sizes)


def test_weights_entry_must_be_a_tuple():
    with pytest.raises(TypeError, match=re.escape("each weights entry is a tuple")):
        model(weights=[[None] * 5])
    with pytest.raises(TypeError, match=re.escape("each weights entry is a tuple")):
        model(weights=[(None,) * 4])


def test_forward_needs_a_time_step():
    core = fastrnn.LSTM(5, 7, seed=0)._core
    # A zero-size x may declare any batch: T = 0 is refused before any output is allocated.
    for shape in [(0, 3, 5), (0, 2**40, 5), (0, 2**56, 5)]:
        with pytest.raises(ValueError, match=re.escape("x must hold at least one time step")):
            core.forward(np.zeros(shape, np.float32), None, None, None)


def test_forward_empty_batch_gives_empty_arrays():
    core = fastrnn.LSTM(5, 7, num_layers=2, seed=0)._core
    y, h_n, c_n = core.forward(np.zeros((3, 0, 5), np.float32), None, None, None)
    assert y.shape == (3, 0, 7) and h_n.shape == (2, 0, 7) and c_n.shape == (2, 0, 7)


def test_forward_outputs_beyond_address_space():
    """h_n of a deep, wide-batch call would need (L·D, B, H_out) = (8192, 2^30 + 1, 4) floats
    (2^47 bytes and more): a ValueError naming x's T and B, not a MemoryError. x itself is
    4 GiB of untouched zero pages (calloc), so the test costs no memory."""
    core = fastrnn.RNN(1, 4, num_layers=MAX_LAYERS, bidirectional=True, seed=0)._core
    try:
        x = np.zeros((1, 2**30 + 1, 1), np.float32)
    except MemoryError:
        pytest.skip("no 4 GiB of address space for x")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "x with T=1, B=1073741825 is too large for this model: h_n (L·D, B, H_out) = "
            "(8192, 1073741825, 4) would exceed 2^45 floats"
        ),
    ):
        core.forward(x, None, None, None)


@pytest.mark.parametrize("n", [0, -1, 10**6, 2**70])
def test_thread_count_bounded(n, threads_restored):
    """A huge thread count would make libgomp try to start one thread per batch row and take
    the process down when the system refuses one."""
    with pytest.raises(ValueError, match=r"^num_threads must be in \[1, \d+\], got "):
        _core.set_num_threads(n)
    assert _core.get_num_threads() == threads_restored


@pytest.mark.parametrize("n", [-1, 10**6])
def test_forward_thread_count_bounded(n):
    core = fastrnn.GRU(5, 7, seed=0)._core
    with pytest.raises(ValueError, match=r"^num_threads must be in \[1, \d+\] \(0: the default\)"):
        core.forward(np.zeros((2, 3, 5), np.float32), None, None, None, n)


def test_more_threads_than_cores_run_on_the_cores(threads_restored):
    """A call never starts more threads than the machine offers (an oversubscribed team
    waits out time slices at every step's barrier)."""
    core = fastrnn.LSTM(256, 256, seed=0)._core
    assert core.plan(64, 10**4, 1024)["threads"] <= (os.cpu_count() or 1)


def test_float32_dtype_compared_by_value():
    """An unpickled array's dtype is an equal copy of numpy's float32, not the same object."""
    a = pickle.loads(pickle.dumps(np.ones((2, 3, 5), np.float32)))
    x = np.ascontiguousarray(a.transpose(1, 0, 2))
    model = fastrnn.LSTM(5, 7, seed=0)
    y = model._core.forward(x, None, None, None)[0]
    assert np.array_equal(y, model(np.ascontiguousarray(x))[0])
