"""Property-based fuzzing of the inference API against the float64 NumPy reference, on every
ISA: shapes, options (mode, bias, layers, bidirectional, proj_size, batch_first, unbatched),
dtypes (float16/32/64) and memory layouts (Fortran order, strided and negative-stride views)
of inputs, states and weights, lengths in every integer form, cells, and streams fed in
random chunks.

Derandomized and without an example database: the same examples run every time and nothing
is written to disk. Sizes stay small (H, I ≤ 20, T ≤ 8, B ≤ 6, L ≤ 2) so that every example
is cheap and the file runs in a few seconds; test_reference_random.py covers sizes to 40.

Semantics of a conversion (DESIGN.md §6): any real floating dtype and any strides are
converted once to C-contiguous float32. So the reference gets the float32-rounded values:
the same numbers fastrnn computes with, in float64. Tolerance: the sequence tiers'
1e-5 · max(1, |expected|) (tests/README.md); streams: bit-identical to the whole call.
"""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastrnn
from support import reference
from support.cases import MODES, Case, build_model
from support.common import assert_results

ATOL = 1e-5
EXAMPLES = {"sequences": 150, "cells": 80, "streams": 80}
SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
DTYPES = [np.float16, np.float32, np.float64]
LAYOUTS = ["c", "fortran", "strided", "reversed"]


def arrange(a: np.ndarray, dtype, layout: str) -> np.ndarray:
    """The same values (after rounding to dtype) in another dtype and memory layout."""
    a = a.astype(dtype)
    if layout == "fortran":
        out = np.asfortranarray(a)
    elif layout == "strided":  # every other element of a larger buffer, along every axis
        big = np.zeros(tuple(2 * d for d in a.shape), dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        out = view
    elif layout == "reversed":  # negative strides on every axis
        out = a[tuple(slice(None, None, -1) for _ in a.shape)].copy()
        out = out[tuple(slice(None, None, -1) for _ in a.shape)]
    else:
        out = np.ascontiguousarray(a)
    assert np.array_equal(out, a)
    return out


def as_seen(a: np.ndarray, dtype) -> np.ndarray:
    """What fastrnn computes with: the value rounded to dtype, then to float32."""
    return a.astype(dtype).astype(np.float32).astype(np.float64)


@st.composite
def sequence_cases(draw):
    mode = draw(st.sampled_from(MODES))
    hidden = draw(st.integers(1, 20))
    unbatched = draw(st.booleans())
    case = Case(
        mode,
        hidden=hidden,
        input=draw(st.integers(1, 20)),
        steps=draw(st.integers(1, 8)),
        batch=1 if unbatched else draw(st.integers(1, 6)),
        layers=draw(st.integers(1, 2)),
        bias=draw(st.booleans()),
        bidirectional=draw(st.booleans()),
        batch_first=False if unbatched else draw(st.booleans()),
        unbatched=unbatched,
        proj=draw(st.integers(0, hidden - 1)) if mode == "LSTM" and hidden > 1 else 0,
        given_state=draw(st.booleans()),
        lengths=False if unbatched else draw(st.booleans()),
        seed=draw(st.integers(0, 2**31)),
    )
    conv = {
        "x": (draw(st.sampled_from(DTYPES)), draw(st.sampled_from(LAYOUTS))),
        "state": (draw(st.sampled_from(DTYPES)), draw(st.sampled_from(LAYOUTS))),
        "weights": (draw(st.sampled_from(DTYPES)), draw(st.sampled_from(LAYOUTS))),
        "lengths": draw(st.sampled_from(["list", "int64", "int32", "uint8", "int16-strided"])),
        "state_as_list": draw(st.booleans()),
    }
    return case, conv


def lengths_as(lengths: np.ndarray, form: str):
    if form == "list":
        return [int(v) for v in lengths]
    if form == "int16-strided":
        big = np.zeros(2 * len(lengths), np.int16)
        big[::2] = lengths
        return big[::2]
    return lengths.astype(form)


@settings(max_examples=EXAMPLES["sequences"], **SETTINGS)
@given(drawn=sequence_cases())
def test_sequences_any_dtype_layout_and_options(drawn, isa):
    case, conv = drawn
    model, sd = build_model(case)
    x, state, lengths = case.inputs()

    # Weights: reloaded in the drawn dtype and layout; the reference sees them as fastrnn does.
    w_dtype, w_layout = conv["weights"]
    model.load_state_dict({k: arrange(v, w_dtype, w_layout) for k, v in sd.items()})
    sd_seen = {k: as_seen(v, w_dtype) for k, v in sd.items()}

    x_dtype, x_layout = conv["x"]
    s_dtype, s_layout = conv["state"]
    parts = None if state is None else (state if isinstance(state, tuple) else (state,))
    state_in = state_ref = None
    if parts is not None:
        arranged = [arrange(p, s_dtype, s_layout) for p in parts]
        seen = [as_seen(p, s_dtype) for p in parts]
        if case.mode == "LSTM":
            state_in = list(arranged) if conv["state_as_list"] else tuple(arranged)
            state_ref = tuple(seen)
        else:
            state_in, state_ref = arranged[0], seen[0]
    lengths_in = None if lengths is None else lengths_as(lengths, conv["lengths"])

    got = model(arrange(x, x_dtype, x_layout), state_in, lengths=lengths_in)
    want = reference.rnn_forward(case.config, sd_seen, as_seen(x, x_dtype), state_ref, lengths)
    for a in got[:1] + (got[1] if isinstance(got[1], tuple) else (got[1],)):
        assert a.dtype == np.float32 and a.flags.c_contiguous
    assert_results(
        got,
        want,
        ATOL,
        case.result_names,
        f"{case.id} {conv} [{isa}]",
        suite="property",
        isa=isa,
    )


@st.composite
def cell_cases(draw):
    return {
        "mode": draw(st.sampled_from(MODES)),
        "I": draw(st.integers(1, 20)),
        "H": draw(st.integers(1, 20)),
        "B": draw(st.integers(0, 6)),  # 0: unbatched (I,)
        "bias": draw(st.booleans()),
        "given": draw(st.booleans()),
        "x": (draw(st.sampled_from(DTYPES)), draw(st.sampled_from(LAYOUTS))),
        "h": (draw(st.sampled_from(DTYPES)), draw(st.sampled_from(LAYOUTS))),
        "seed": draw(st.integers(0, 2**31)),
    }


@settings(max_examples=EXAMPLES["cells"], **SETTINGS)
@given(c=cell_cases())
def test_cells_any_dtype_and_layout(c, isa):
    mode, I, H, B = c["mode"], c["I"], c["H"], c["B"]
    rng = np.random.default_rng(c["seed"])
    if mode == "LSTM":
        cell = fastrnn.LSTMCell(I, H, c["bias"], seed=c["seed"])
    elif mode == "GRU":
        cell = fastrnn.GRUCell(I, H, c["bias"], seed=c["seed"])
    else:
        nl = "relu" if mode == "RNN_RELU" else "tanh"
        cell = fastrnn.RNNCell(I, H, c["bias"], nonlinearity=nl, seed=c["seed"])
    sd = cell.state_dict()
    lead = (B,) if B else ()
    x = rng.standard_normal(lead + (I,)).astype(np.float32)
    state_in = state_ref = None
    if c["given"]:
        parts = [rng.standard_normal(lead + (H,)).astype(np.float32) for _ in range(2)]
        dtype, layout = c["h"]
        arranged = [arrange(p, dtype, layout) for p in parts]
        seen = [as_seen(p, dtype) for p in parts]
        state_in = tuple(arranged) if mode == "LSTM" else arranged[0]
        state_ref = tuple(seen) if mode == "LSTM" else seen[0]
    got = cell(arrange(x, *c["x"]), state_in)
    want = reference.cell_forward(mode, sd, as_seen(x, c["x"][0]), state_ref)
    assert_results(got, want, ATOL, label=f"{mode}Cell {c} [{isa}]", suite="property", isa=isa)


@st.composite
def stream_cases(draw):
    mode = draw(st.sampled_from(MODES))
    T = draw(st.integers(1, 10))
    # A random split of the T steps into chunks: 1 → step(), otherwise feed().
    cuts = sorted(draw(st.sets(st.integers(1, T - 1), max_size=T - 1))) if T > 1 else []
    return {
        "mode": mode,
        "I": draw(st.integers(1, 16)),
        "H": draw(st.integers(1, 16)),
        "L": draw(st.integers(1, 3)),
        "batch": draw(st.sampled_from([None, 1, 2, 5])),
        "batch_first": draw(st.booleans()),
        "T": T,
        "cuts": cuts,
        "use_step": draw(st.booleans()),
        "dtype": draw(st.sampled_from(DTYPES)),
        "layout": draw(st.sampled_from(LAYOUTS)),
        "given": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**31)),
    }


@settings(max_examples=EXAMPLES["streams"], **SETTINGS)
@given(c=stream_cases())
def test_streams_in_random_chunks_equal_whole_call(c, isa):
    """Any split of a sequence into steps and chunks, in any dtype and layout, gives the
    whole call's output and final state bit for bit."""
    mode, I, H, L, N = c["mode"], c["I"], c["H"], c["L"], c["batch"]
    kw = {"num_layers": L, "batch_first": c["batch_first"], "seed": c["seed"]}
    if mode.startswith("RNN"):
        model = fastrnn.RNN(I, H, nonlinearity="relu" if mode == "RNN_RELU" else "tanh", **kw)
    else:
        model = getattr(fastrnn, mode)(I, H, **kw)
    rng = np.random.default_rng(c["seed"])
    T = c["T"]
    B = N or 1
    x = rng.standard_normal((T, B, I)).astype(c["dtype"])
    state = None
    if c["given"]:
        lead = (L, B) if N else (L,)
        h = rng.standard_normal(lead + (H,)).astype(np.float32)
        state = (h, rng.standard_normal(lead + (H,)).astype(np.float32)) if mode == "LSTM" else h

    def layout(a):  # (T, B, I) → the model's layout for this stream
        if N is None:
            return a[:, 0]
        return a.transpose(1, 0, 2) if c["batch_first"] else a

    want_y, want_state = model(layout(x), state)
    stream = model.stream(batch=N, state=state)
    pieces = []
    bounds = [0, *c["cuts"], T]
    for t0, t1 in zip(bounds[:-1], bounds[1:]):
        if t1 - t0 == 1 and c["use_step"]:
            x_t = arrange(x[t0], c["dtype"], c["layout"])
            pieces.append(stream.step(x_t if N else x_t[0])[None])
        else:
            chunk = arrange(layout(x[t0:t1]), c["dtype"], c["layout"])
            y = stream.feed(chunk)
            pieces.append(y.transpose(1, 0, 2) if N and c["batch_first"] else y)
    got_y = np.concatenate(pieces, axis=0)
    if N and c["batch_first"]:
        got_y = got_y.transpose(1, 0, 2)
    assert np.array_equal(got_y, want_y), c
    got_state = stream.state
    for g, w in zip(
        got_state if isinstance(got_state, tuple) else (got_state,),
        want_state if isinstance(want_state, tuple) else (want_state,),
    ):
        assert np.array_equal(g, w), c
