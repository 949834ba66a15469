"""Tier 4: results are bit-identical for 1 and 2 threads, on every instruction set.

Threads split hidden units or batch rows, never one dot product, so the arithmetic of every
output element is the same whatever the thread count: np.array_equal, no tolerance. Each case
is chosen big enough that the driver really uses 2 threads (asserted with Model.plan), and
covers a different split: hidden units at batch 1, batch rows, both directions (a thread
per direction, meeting only where a layer starts), projection, several layers, lengths and
initial states, and the wavefront of small stacked layers (each thread owns whole layers, a
chunk of steps per tick).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from support.cases import unsorted_lengths
from support.common import flatten

CASES = {
    # id: (constructor, T, B, with lengths, with initial state)
    "lstm-H256-B1": (lambda: fastrnn.LSTM(64, 256, seed=0), 20, 1, False, True),
    "gru-H32-B64": (lambda: fastrnn.GRU(16, 32, seed=1), 20, 64, True, False),
    "rnn-relu-H512-B1": (
        lambda: fastrnn.RNN(8, 512, nonlinearity="relu", seed=2),
        20,
        1,
        False,
        True,
    ),
    "lstm-bi-H96-B3": (lambda: fastrnn.LSTM(32, 96, bidirectional=True, seed=3), 15, 3, True, True),
    "lstm-proj-H256-P64-B2": (
        lambda: fastrnn.LSTM(16, 256, proj_size=64, seed=4),
        15,
        2,
        True,
        False,
    ),
    "gru-L3-bi-bf-H100-B16": (
        lambda: fastrnn.GRU(5, 100, num_layers=3, bidirectional=True, batch_first=True, seed=5),
        10,
        16,
        True,
        True,
    ),
    # Each of 2 threads runs one direction, meeting only where a layer starts; several
    # G_x chunks (each projects only the rows still inside their sequences).
    "lstm-bi-L2-H128-B8-T150": (
        lambda: fastrnn.LSTM(24, 128, num_layers=2, bidirectional=True, seed=13),
        150,
        8,
        True,
        True,
    ),
    "rnn-tanh-H257-B7": (lambda: fastrnn.RNN(300, 257, seed=6), 10, 7, False, False),
    "lstm-bi-proj-L2-H256-P65-B1": (
        lambda: fastrnn.LSTM(7, 256, num_layers=2, bidirectional=True, proj_size=65, seed=7),
        12,
        1,
        False,
        True,
    ),
    # Stacks of small layers run as a wavefront: each thread owns whole layers.
    "wave-lstm-L2-H64-B1": (lambda: fastrnn.LSTM(32, 64, num_layers=2, seed=8), 40, 1, False, True),
    "wave-gru-L3-H100-B3": (lambda: fastrnn.GRU(9, 100, num_layers=3, seed=9), 33, 3, True, True),
    "wave-lstm-proj-L4-H64-P20-B2": (
        lambda: fastrnn.LSTM(5, 64, num_layers=4, proj_size=20, seed=10),
        23,
        2,
        True,
        False,
    ),
    "wave-rnn-relu-L2-H100-B5": (
        lambda: fastrnn.RNN(7, 100, num_layers=2, nonlinearity="relu", seed=11),
        20,
        5,
        True,
        True,
    ),
    "wave-gru-L2-bf-H64-B4": (
        lambda: fastrnn.GRU(11, 64, num_layers=2, batch_first=True, seed=12),
        17,
        4,
        False,
        False,
    ),
}


def make_inputs(model, T, B, with_lengths, with_state):
    rng = np.random.default_rng(T * B)
    D = model.num_directions
    LD = model.num_layers * D
    shape = (B, T, model.input_size) if model.batch_first else (T, B, model.input_size)
    x = rng.standard_normal(shape, dtype=np.float32)
    state = None
    if with_state:
        h0 = rng.standard_normal((LD, B, model.proj_size or model.hidden_size), dtype=np.float32)
        state = h0
        if model.mode == "LSTM":
            state = (h0, rng.standard_normal((LD, B, model.hidden_size), dtype=np.float32))
    lengths = unsorted_lengths(rng, B, T) if with_lengths else None
    return x, state, lengths


@pytest.mark.parametrize("name", list(CASES))
def test_one_and_two_threads_are_bit_identical(name, isa, threads_restored):
    make, T, B, with_lengths, with_state = CASES[name]
    model = make()
    x, state, lengths = make_inputs(model, T, B, with_lengths, with_state)

    fastrnn.set_num_threads(1)
    assert model.plan(B, 10**4)["threads"] == 1
    one = flatten(model(x, state, lengths=lengths))

    fastrnn.set_num_threads(2)
    assert model.plan(B, 10**4)["threads"] == 2, "case too small to use 2 threads: enlarge it"
    two = flatten(model(x, state, lengths=lengths))

    for i, (a, b) in enumerate(zip(one, two)):
        diff = np.flatnonzero(a.ravel() != b.ravel())
        assert diff.size == 0, (
            f"{name} [{isa}] result[{i}]: {diff.size} elements differ between 1 and 2 threads, "
            f"first at flat index {diff[0]}: {a.ravel()[diff[0]]!r} vs {b.ravel()[diff[0]]!r}"
        )


def test_small_layers_run_on_one_thread(threads_restored):
    fastrnn.set_num_threads(2)
    assert fastrnn.LSTM(4, 8, seed=0).plan(1, 10**4)["threads"] == 1


def test_set_and_get_num_threads(threads_restored):
    fastrnn.set_num_threads(1)
    assert fastrnn.get_num_threads() == 1
    assert fastrnn.cpu_info()["num_threads"] == 1
    fastrnn.set_num_threads(2)
    assert fastrnn.get_num_threads() == 2


def test_threads_restored_fixture_restores(threads_restored):
    """The count the session started with (other tests rely on it)."""
    assert fastrnn.get_num_threads() == threads_restored
