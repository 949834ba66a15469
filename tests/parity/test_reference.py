"""Tier 2–3 without torch: fastrnn against the float64 NumPy reference (reference.py), on every
instruction set this CPU has.

Tolerance: |Δ| ≤ 1e-5 · max(1, |expected|) on the output and every final state, the same
measure as against torch (see test_parity_torch.py for why it scales above 1). Here the truth
is exact to ~1e-15, so the whole budget measures fastrnn's own float32 rounding; at torch's
default weight scale the worst seen is ~6e-6 (I = 300 with H = 1: weights U(-1, 1) make
pre-activations of size ~10, a few float32 ulps after a 300-term dot product).

Weights come from reference.random_state_dict (torch's default scale) and are loaded as numpy
arrays; inputs and initial states are randn. test_parity_torch.py checks the reference itself
against torch in float64.

Besides the sampled grid and a derandomized property test over small odd sizes, this file
checks semantics that need no second implementation: layouts (batch_first, unbatched) are
views of one computation; lengths mean PackedSequence (zeros past the end, states from the
last valid step, each sequence as if run alone); a cell is one step of a layer.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from support import reference
from support.cases import (
    MODES,
    Case,
    build_model,
    coverage,
    expected_coverage,
    sample_cases,
    unsorted_lengths,
)
from support.common import assert_close, assert_results, flatten

ATOL = 1e-5

GRID = sample_cases(per_mode=20, seed=6)
LONG = [
    Case(
        "LSTM",
        hidden=64,
        input=5,
        steps=1000,
        batch=3,
        proj=16,
        given_state=True,
        lengths=True,
        bidirectional=True,
        seed=8001,
    ),
    Case("GRU", hidden=100, input=64, steps=1000, batch=1, layers=2, batch_first=True, seed=8002),
    Case("RNN_RELU", hidden=17, input=300, steps=1000, batch=1, unbatched=True, seed=8003),
]


@pytest.mark.parametrize("mode", MODES)
def test_grid_covers_every_option(mode):
    got = coverage([c for c in GRID if c.mode == mode])
    for option, values in expected_coverage().items():
        if option == "proj" and mode != "LSTM":
            continue
        assert values <= got[option], f"{mode}: {option} misses {values - got[option]}"


@pytest.mark.parametrize("case", GRID + LONG, ids=lambda c: c.id)
def test_sequence_matches_reference(case, isa):
    model, sd = build_model(case)
    x, state, lengths = case.inputs()
    want = reference.rnn_forward(case.config, sd, x, state, lengths)
    got = model(x, state, lengths=lengths)
    for a in flatten(got):
        assert a.dtype == np.float32
    assert_results(
        got, want, ATOL, case.result_names, f"{case.id} [{isa}]", suite="reference", isa=isa
    )


CELLS = [
    ("LSTMCell", "LSTM", {}),
    ("GRUCell", "GRU", {}),
    ("RNNCell", "RNN_TANH", {}),
    ("RNNCell", "RNN_RELU", {"nonlinearity": "relu"}),
]


@pytest.mark.parametrize(("cell", "mode", "kw"), CELLS, ids=[c[1] for c in CELLS])
@pytest.mark.parametrize(
    ("I", "H", "B", "bias", "given"),
    [
        (1, 1, 1, True, True),
        (5, 17, None, False, True),
        (300, 257, 3, True, True),
        (64, 100, 64, True, False),
        (5, 3, None, True, False),
    ],
    ids=lambda v: str(v),
)
def test_cell_matches_reference(cell, mode, kw, I, H, B, bias, given, isa):
    model = getattr(fastrnn, cell)(I, H, bias, seed=I * H, **kw)
    sd = model.state_dict()
    assert set(sd) == {"weight_ih", "weight_hh"} | ({"bias_ih", "bias_hh"} if bias else set())
    rng = np.random.default_rng(H)
    lead = () if B is None else (B,)
    x = rng.standard_normal(lead + (I,), dtype=np.float32)
    state = None
    if given:
        h = rng.standard_normal(lead + (H,), dtype=np.float32)
        state = (h, rng.standard_normal(lead + (H,), dtype=np.float32)) if mode == "LSTM" else h
    got = model(x, state)
    want = reference.cell_forward(mode, sd, x, state)
    for a in flatten(got):
        assert a.shape == lead + (H,) and a.dtype == np.float32
    assert_results(got, want, ATOL, None, f"{cell}/{mode} [{isa}]", suite="reference", isa=isa)


# --- semantics that hold exactly -----------------------------------------------------------


def _flat(result):
    return flatten(result)


@pytest.mark.parametrize("mode", MODES)
def test_batch_first_is_a_transpose(mode, isa):
    """batch_first changes the layout of x and output only (never of h_n): bit-identical."""
    tm, _sd = build_model(
        Case(mode, hidden=17, input=5, steps=9, batch=4, layers=2, bidirectional=True, seed=1)
    )
    bf, _ = build_model(
        Case(
            mode,
            hidden=17,
            input=5,
            steps=9,
            batch=4,
            layers=2,
            bidirectional=True,
            batch_first=True,
            seed=1,
        )
    )
    x = np.random.default_rng(0).standard_normal((9, 4, 5), dtype=np.float32)
    lengths = np.array([3, 9, 1, 5])
    a, b = _flat(tm(x, lengths=lengths)), _flat(bf(x.transpose(1, 0, 2), lengths=lengths))
    assert b[0].shape == (4, 9, 34)
    assert np.array_equal(a[0], b[0].transpose(1, 0, 2))
    for u, v in zip(a[1:], b[1:]):
        assert np.array_equal(u, v)


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_is_batch_of_one(mode, isa):
    case = Case(
        mode,
        hidden=17,
        input=5,
        steps=9,
        batch=1,
        layers=2,
        bidirectional=True,
        proj=4 if mode == "LSTM" else 0,
        seed=2,
    )
    model, _ = build_model(case)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 5), dtype=np.float32)
    P = 4 if mode == "LSTM" else 17
    h0 = rng.standard_normal((4, P), dtype=np.float32)
    c0 = rng.standard_normal((4, 17), dtype=np.float32)
    s1 = (h0, c0) if mode == "LSTM" else h0
    sB = (h0[:, None], c0[:, None]) if mode == "LSTM" else h0[:, None]
    one, batched = _flat(model(x, s1)), _flat(model(x[:, None], sB))
    assert one[0].shape == (9, 2 * P) and one[1].shape == (4, P)
    for u, v in zip(one, batched):
        assert u.shape == v.shape[:1] + v.shape[2:]
        assert np.array_equal(u, v[:, 0])


@pytest.mark.parametrize("mode", MODES)
def test_lengths_mean_packed_sequence(mode, isa):
    """Each sequence of a batch with lengths gives what it gives alone, cut to its length:
    zeros past its end, h_n/c_n from its last valid step, the backward direction starting at
    its own end."""
    T, B = 12, 6
    case = Case(
        mode,
        hidden=17,
        input=5,
        steps=T,
        batch=B,
        layers=2,
        bidirectional=True,
        given_state=True,
        lengths=True,
        proj=5 if mode == "LSTM" else 0,
        seed=3,
    )
    model, sd = build_model(case)
    x, state, lengths = case.inputs()
    assert 1 in lengths and T in lengths
    result = model(x, state, lengths=lengths)
    got = _flat(result)
    for b, n in enumerate(lengths):
        st_b = tuple(s[:, b : b + 1] for s in state) if mode == "LSTM" else state[:, b : b + 1]
        alone = _flat(model(x[:n, b : b + 1], st_b))
        assert np.all(got[0][n:, b] == 0), f"sequence {b}: output past length {n} is not zero"
        assert_close(got[0][:n, b], alone[0][:, 0], 1e-6, f"output of sequence {b} (length {n})")
        for i, (u, v) in enumerate(zip(got[1:], alone[1:])):
            assert_close(u[:, b], v[:, 0], 1e-6, f"state {i} of sequence {b} (length {n})")
    assert_results(result, reference.rnn_forward(case.config, sd, x, state, lengths), ATOL)


@pytest.mark.parametrize("mode", MODES)
def test_final_state_is_last_output(mode, isa):
    """Forward direction: h_n is the output at the last valid step; backward: at step 0."""
    case = Case(
        mode,
        hidden=17,
        input=5,
        steps=10,
        batch=5,
        layers=1,
        bidirectional=True,
        lengths=True,
        seed=4,
    )
    model, _ = build_model(case)
    x, _, lengths = case.inputs()
    out, st = model(x, lengths=lengths)
    h_n = st[0] if mode == "LSTM" else st
    for b, n in enumerate(lengths):
        assert np.array_equal(h_n[0, b], out[n - 1, b, :17])
        assert np.array_equal(h_n[1, b], out[0, b, 17:])


def test_zero_state_equals_no_state(isa):
    for mode in MODES:
        case = Case(
            mode, hidden=17, input=5, steps=6, batch=3, layers=2, bidirectional=True, seed=6
        )
        model, _ = build_model(case)
        x, _, _ = case.inputs()
        h0 = np.zeros((4, 3, 17), np.float32)
        zero = (h0, h0.copy()) if mode == "LSTM" else h0
        for u, v in zip(_flat(model(x)), _flat(model(x, zero))):
            assert np.array_equal(u, v)


@pytest.mark.parametrize("mode", MODES)
def test_cell_is_one_step_of_layer(mode, isa):
    kw = {"nonlinearity": "relu"} if mode == "RNN_RELU" else {}
    cell = {"LSTM": fastrnn.LSTMCell, "GRU": fastrnn.GRUCell}.get(mode, fastrnn.RNNCell)(
        5, 17, seed=1, **kw
    )
    layer = {"LSTM": fastrnn.LSTM, "GRU": fastrnn.GRU}.get(mode, fastrnn.RNN)(5, 17, **kw, seed=2)
    layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5), dtype=np.float32)
    h = rng.standard_normal((4, 17), dtype=np.float32)
    c = rng.standard_normal((4, 17), dtype=np.float32)
    if mode == "LSTM":
        h1, c1 = cell(x, (h, c))
        _, (hn, cn) = layer(x[None], (h[None], c[None]))
        assert np.array_equal(h1, hn[0]) and np.array_equal(c1, cn[0])
    else:
        h1 = cell(x, h)
        _, hn = layer(x[None], h[None])
        assert np.array_equal(h1, hn[0])


def test_lengths_unsorted_generator():
    rng = np.random.default_rng(0)
    for B, T in [(2, 2), (3, 5), (16, 33), (64, 1000)]:
        lengths = unsorted_lengths(rng, B, T)
        assert lengths.min() == 1 and lengths.max() == T
        if B >= 3:
            d = np.diff(lengths)
            assert (d > 0).any() and (d < 0).any()


def test_seeded_construction_is_reproducible_and_at_torch_scale():
    a, b = fastrnn.LSTM(5, 100, seed=3), fastrnn.LSTM(5, 100, seed=3)
    for k, v in a.state_dict().items():
        assert v.dtype == np.float32 and np.array_equal(v, b.state_dict()[k])
        assert np.abs(v).max() <= 0.1  # U(-1/sqrt(H), 1/sqrt(H)), H = 100
