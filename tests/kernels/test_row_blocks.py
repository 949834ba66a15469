"""Batch rows run in register blocks (with AVX-512: 6 rows, tails of 5, 4 and 3; AVX2: the
GEMM's 6-row tiles inside blocks of 32 rows of gate sums, and depth blocks of 256 k; see
for_row_blocks in csrc/kernels/panel/panel-dot.h and step_panels_summed in
csrc/kernels/panel/step-driver.h). A row's arithmetic never depends on its block, so from
batch 4 on (where steps use the tall blocks) each row's result is the same bits whatever
the batch size: every tail shape is checked against the rows of one large batch, on every
ISA, for every cell, with lengths (inactive rows inside a block), and with input and hidden
sizes beyond one depth block. On AVX-512 (one vector holds 16 units; kRowPairEpilogue), LSTM and GRU
epilogues take two active rows of a block at once (a VRowPair, csrc/kernels/vec/vec-pair.h):
a row pairs with its neighbour in one batch size and runs alone in another (an odd block, an
inactive neighbour), so these tests hold the pair to the same bits as a row alone."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn

BATCHES = [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 17, 23, 31, 32, 33, 65]
MODELS = {
    "lstm": lambda: fastrnn.LSTM(24, 40, seed=0),
    "gru": lambda: fastrnn.GRU(24, 40, seed=1),
    "rnn-relu": lambda: fastrnn.RNN(24, 40, nonlinearity="relu", seed=2),
    "lstm-proj": lambda: fastrnn.LSTM(24, 40, proj_size=20, seed=3),
    "lstm-deep": lambda: fastrnn.LSTM(300, 260, seed=4),  # K = 300 and 260: two depth blocks
    "gru-deep": lambda: fastrnn.GRU(520, 270, seed=5),  # K = 520: three
}


@pytest.mark.parametrize("name", list(MODELS))
def test_rows_are_the_same_bits_for_any_batch_from_4(name, isa):
    model = MODELS[name]()
    rng = np.random.default_rng(0)
    T, Bmax = 7, max(BATCHES)
    x = rng.standard_normal((T, Bmax, model.input_size), dtype=np.float32)
    lengths = rng.integers(1, T + 1, Bmax)
    y_all, state_all = model(x, lengths=lengths)
    h_all = state_all[0] if isinstance(state_all, tuple) else state_all
    for B in BATCHES:
        y, state = model(x[:, :B], lengths=lengths[:B])
        h = state[0] if isinstance(state, tuple) else state
        assert np.array_equal(y, y_all[:, :B]), f"{name} [{isa}] B={B}: outputs differ"
        assert np.array_equal(h, h_all[:, :B]), f"{name} [{isa}] B={B}: h_n differs"


@pytest.mark.parametrize("name", list(MODELS))
def test_rows_of_1_to_3_are_the_same_bits_as_from_4_where_k_is_one_chain(name, isa):
    """Batches of 1-3 take the few-row tiles, whose epilogue takes one V at a time; from 4
    rows AVX2 and NEON take the gate sums, whose LSTM and GRU epilogues take two V's as a
    VPair (csrc/kernels/vec/vec-pair.h). Where every dot product runs k in one chain
    (split_k 1), each row is the same bits either way, inactive rows included."""
    if fastrnn.cpu_info()["tiles"]["split_k"] != 1:
        pytest.skip(f"{isa} splits k in two chains at batch 1: other sums by design")
    model = MODELS[name]()
    rng = np.random.default_rng(1)
    T, B = 6, 9
    x = rng.standard_normal((T, B, model.input_size), dtype=np.float32)
    lengths = rng.integers(1, T + 1, B)
    y_all, state_all = model(x, lengths=lengths)
    h_all = state_all[0] if isinstance(state_all, tuple) else state_all
    for b0, b1 in [(0, 1), (1, 3), (3, 6), (6, 9)]:
        y, state = model(x[:, b0:b1], lengths=lengths[b0:b1])
        h = state[0] if isinstance(state, tuple) else state
        assert np.array_equal(y, y_all[:, b0:b1]), f"{name} [{isa}] rows {b0}:{b1}: outputs differ"
        assert np.array_equal(h, h_all[:, b0:b1]), f"{name} [{isa}] rows {b0}:{b1}: h_n differs"
