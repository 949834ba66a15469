"""Batch 1 computes a group of steps' input projection ahead, inside the recurrent steps
(StepArgs::ahead in csrc/kernels/kernel-table.h): same FMAs, same order, so the result
must be bit-identical to the plain path. The plain path runs at batch 2 (the projection
first, then the steps), and a row's arithmetic does not depend on the batch size: so the
batch-1 answer equals row 0 of a batch of two copies, element for element, on every ISA,
for 1 and 2 threads, across group, chunk and span boundaries (T from 1 to beyond a G_x
chunk and beyond a span of a stack), for every cell, stacked layers, projections, lengths
and initial states. Smaller layers stay on one thread and stacks of them run as a wavefront
(which projects whole ticks): the SPLIT cases are the ones that use two threads.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from fastrnn import _core
from support.common import ZEN4_CACHES, caches_pinned, flatten


@pytest.fixture(scope="module", autouse=True)
def zen4_blocking():
    """The sizes below are chosen for the blocking of the Zen 4 caches (chunks, spans and
    the 8 MiB bound of the ahead path, see csrc/ops/blocking.cc): pinned, so that the
    boundaries fall where the comments say on any CPU. And the ahead path is allowed
    wherever the ISA has it, as on Zen 4: on cores with 512-bit-wide units the AVX-512
    table skips it by default (ops/rnn-forward.cc), but its kernels must stay tested."""
    _core.ahead_override(True)
    try:
        with caches_pinned(**ZEN4_CACHES):
            yield
    finally:
        _core.ahead_override(None)


# (constructor, T values); sizes chosen so that every layer takes the ahead path at batch 1
# (asserted below): ≥ 64 Ki multiply-adds per step, ≤ 8 MiB of weights.
CASES = {
    "lstm-I128-H128": (lambda: fastrnn.LSTM(128, 128, seed=0), [1, 3, 4, 5, 8, 9, 37]),
    "gru-I200-H160": (lambda: fastrnn.GRU(200, 160, seed=1), [2, 7, 12, 100]),
    "rnn-tanh-I300-H257": (lambda: fastrnn.RNN(300, 257, seed=2), [6, 33]),
    "rnn-relu-I96-H300": (lambda: fastrnn.RNN(96, 300, nonlinearity="relu", seed=3), [11]),
    "lstm-proj-I64-H256-P100": (lambda: fastrnn.LSTM(64, 256, proj_size=100, seed=4), [10, 21]),
    "gru-L2-I150-H200": (lambda: fastrnn.GRU(150, 200, num_layers=2, seed=5), [13]),
    # H = 128: a G_x chunk holds 256 steps, so 300 steps cross a chunk boundary.
    "lstm-L2-I130-H128": (lambda: fastrnn.LSTM(130, 128, num_layers=2, seed=6), [300]),
    "lstm-bf-I128-H192": (lambda: fastrnn.LSTM(128, 192, batch_first=True, seed=7), [17]),
    # Large enough that 2 threads split the hidden units (each computes its own panels ahead).
    "lstm-I256-H256": (lambda: fastrnn.LSTM(256, 256, seed=8), [5, 100]),
    "gru-I384-H384": (lambda: fastrnn.GRU(384, 384, seed=9), [9]),
    # A chunk of 273 steps: the last group of a chunk that is not the last one is partial.
    "gru-I200-H160-chunks": (lambda: fastrnn.GRU(200, 160, seed=10), [600]),
    # Stacks longer than a span (2048 steps at H = 128; 1024 at H = 256): the layer above
    # reads its input from a span buffer whose first step is not 0. H = 256 splits across
    # two threads (no wavefront).
    "lstm-L2-I128-H128-spans": (lambda: fastrnn.LSTM(128, 128, num_layers=2, seed=11), [2100]),
    "lstm-L2-I256-H256-spans": (lambda: fastrnn.LSTM(256, 256, num_layers=2, seed=12), [1100]),
}
SPLIT = ["lstm-bf-I128-H192", "lstm-I256-H256", "gru-I384-H384", "lstm-L2-I256-H256-spans"]

PARAMS = [(name, T) for name, (_, ts) in CASES.items() for T in ts]


def inputs(model, T, with_state, rng):
    x = rng.standard_normal((T, model.input_size), dtype=np.float32)
    state = None
    if with_state:
        LD = model.num_layers
        h0 = rng.standard_normal((LD, model.proj_size or model.hidden_size), dtype=np.float32)
        state = h0
        if model.mode == "LSTM":
            state = (h0, rng.standard_normal((LD, model.hidden_size), dtype=np.float32))
    return x, state


def batched(model, x, state, lengths):
    """The same input as a batch of size 1 and as a batch of two identical rows."""
    axis = 0 if model.batch_first else 1
    x1, x2 = np.expand_dims(x, axis), np.stack([x, x], axis)
    s1 = s2 = None
    if state is not None:
        parts = state if isinstance(state, tuple) else (state,)
        one = tuple(p[:, None] for p in parts)
        two = tuple(np.stack([p, p], 1) for p in parts)
        s1, s2 = (one if len(one) > 1 else one[0]), (two if len(two) > 1 else two[0])
    l1 = None if lengths is None else np.array([lengths], dtype=np.int64)
    l2 = None if lengths is None else np.array([lengths, lengths], dtype=np.int64)
    return (x1, s1, l1), (x2, s2, l2)


def row0(model, result):
    """Batch row 0 of every array of a forward result (outputs, then states)."""
    out = flatten(result)
    axis = 0 if model.batch_first else 1
    return [np.take(out[0], 0, axis)] + [a[:, 0] for a in out[1:]]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("name", "T"), PARAMS)
def test_ahead_projection_is_bit_identical_to_plain(name, T, threads, isa, threads_restored):
    if T > 1000 and isa == "scalar":
        pytest.skip("the span logic is the same on every ISA; scalar's kernels are covered above")
    model = CASES[name][0]()
    ahead = _core.kernel_tiles()["ahead_rows"] > 0  # AVX2: no registers left for it
    for layer in range(model.num_layers):
        assert bool(model.plan(1, 10**4, num_threads=1)["ahead"][layer]) == ahead, (
            f"{name}: layer {layer} [{isa}]"
        )
        assert not model.plan(2, 10**4, num_threads=1)["ahead"][layer]
    fastrnn.set_num_threads(threads)
    rng = np.random.default_rng(T)
    variants = [(False, None), (True, None), (True, max(1, T - T // 3))]
    if T > 1000:  # long: the last span must stay active
        variants = [(True, None), (True, T - 20)]
    for with_state, lengths in variants:
        x, state = inputs(model, T, with_state, rng)
        one, two = batched(model, x, state, lengths)
        got = row0(model, model(*one[:2], lengths=one[2]))
        want = row0(model, model(*two[:2], lengths=two[2]))
        for i, (a, b) in enumerate(zip(got, want)):
            diff = np.flatnonzero(a.ravel() != b.ravel())
            assert diff.size == 0, (
                f"{name} T={T} [{isa}, {threads} threads, state={with_state}, "
                f"length={lengths}] result[{i}]: {diff.size} elements differ from the plain "
                f"path, first at {diff[0]}: {a.ravel()[diff[0]]!r} vs {b.ravel()[diff[0]]!r}"
            )


@pytest.mark.parametrize("name", SPLIT)
def test_split_cases_use_two_threads(name, threads_restored):
    fastrnn.set_num_threads(2)
    assert CASES[name][0]().plan(1, 10**4)["threads"] == 2


def test_ahead_only_where_it_pays(isa):
    # Two directions, a big batch, tiny layers and weights beyond 8 MiB take the plain path;
    # so does every layer on an ISA whose registers leave no room for it (AVX2).
    fits = _core.kernel_tiles()["ahead_rows"] > 0
    assert fits == (isa != "avx2")
    assert not fastrnn.LSTM(128, 128, bidirectional=True, seed=0).plan(1, 10**4, num_threads=1)[
        "ahead"
    ][0]
    assert not fastrnn.LSTM(128, 128, seed=0).plan(2, 10**4, num_threads=1)["ahead"][0]
    assert not fastrnn.LSTM(32, 64, seed=0).plan(1, 10**4, num_threads=1)["ahead"][0]
    assert not fastrnn.LSTM(1024, 1024, seed=0).plan(1, 10**4, num_threads=1)["ahead"][0]
    assert bool(fastrnn.LSTM(512, 512, seed=0).plan(1, 10**4, num_threads=1)["ahead"][0]) == fits
    assert len(fastrnn.LSTM(512, 512, seed=0).plan(1, 10**4)["ahead"]) == 1  # one layer


def test_ahead_follows_the_avx512_datapath(isa):
    # By default AVX-512 takes the ahead path only where its units are 256 bits wide (Zen 4).
    _core.ahead_override(None)
    try:
        took = bool(fastrnn.LSTM(512, 512, seed=0).plan(1, 10**4, num_threads=1)["ahead"][0])
        if isa.startswith("avx512"):
            assert took == _core.cpu_features()["avx512_half_width"]
        else:
            assert took == (_core.kernel_tiles()["ahead_rows"] > 0)
    finally:
        _core.ahead_override(True)
