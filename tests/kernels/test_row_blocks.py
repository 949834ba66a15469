"""Batch rows run in register blocks (with AVX-512: 6 rows, tails of 5, 4 and 3; AVX2: the
GEMM's 6-row tiles inside blocks of 32 rows of gate sums, and depth blocks of 256 k; see
for_row_blocks in csrc/kernels/panel/panel-dot.h and step_panels_summed in
csrc/kernels/panel/step-driver.h). A row's arithmetic never depends on its block, so from
batch 4 on (where steps use the tall blocks) each row's result is the same bits whatever
the batch size: every tail shape is checked against the rows of one large batch, on every
ISA, for every cell, with lengths (inactive rows inside a block), and with input and hidden
sizes beyond one depth block."""

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
