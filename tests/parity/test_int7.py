"""int7: int8 weights held to [-63, 63] (python/fastrnn/_quantize.py int8_rows(top=63)).

Every table computes the same exact integer sums as for int8; AVX2 runs such a model on its
narrow sibling table (csrc/kernels/reduced/rvec-avx2.h, FASTRNN_I8_NARROW: VPMADDUBSW
without VPSIGNB), which must give the bits of the regular table. Here: the weights, the step
against the quantised reference on every ISA, both tables bit for bit, files. The stated
bounds, the trained model, streams and the extremes run in test_precision.py (its DTYPES).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_precision import (
    MODES,
    _flat,
    _int7_dot,
    _model,
    _one_step_case,
    quantised_step,
)

import fastrnn
from fastrnn import _core
from fastrnn._quantize import int8_rows
from fastrnn.io.base import BadFile

f32 = np.float32


@pytest.fixture
def narrow_restored():
    yield
    _core.int8_narrow(True)


def test_int7_weights_fit_seven_bits_and_round_trip():
    m = fastrnn.quantize(_model("LSTM", 37, 45, seed=3), "int7")
    assert m.dtype == "int7"
    for key, w in m.state_dict().items():
        if key.startswith("weight"):
            q, s = int8_rows(w, 63)
            assert np.abs(q).max() == 63  # each row's largest weight is ±63
            np.testing.assert_array_equal((q.astype(f32) * s[:, None]).astype(f32), w)
    # Quantising the rounded values again changes nothing.
    again = fastrnn.quantize(m, "int7").state_dict()
    for key, w in m.state_dict().items():
        np.testing.assert_array_equal(again[key], w)


@pytest.mark.parametrize(("mode", "proj"), [(m, 0) for m in MODES] + [("LSTM", 13)])
def test_int7_step_matches_the_quantised_reference(isa, mode, proj):
    q, x, h0, c0, state = _one_step_case(mode, proj, 3, "int7", seed=7)
    sd = q.state_dict()
    y, hn = q(x, state)
    h_ref, c_ref = quantised_step(mode, sd, x[0], h0[0], c0[0], dot=_int7_dot)
    got_h = hn[0][0] if mode == "LSTM" else hn[0]
    np.testing.assert_allclose(got_h, h_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y[0], got_h)
    if mode == "LSTM":
        np.testing.assert_allclose(hn[1][0], c_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("mode", "kw"),
    [
        ("LSTM", {"num_layers": 2}),
        ("LSTM", {"proj_size": 13}),
        ("GRU", {"bidirectional": True}),
        ("RNN_TANH", {}),
    ],
)
@pytest.mark.parametrize("batch", [1, 3, 8, 70])
def test_narrow_table_gives_the_regular_tables_bits(isa, narrow_restored, mode, kw, batch):
    """The narrow sibling (where the table has one) against the table itself, on the same
    7-bit weights: every step kernel (few rows, many rows), the GEMM, 1 and 2 threads."""
    q = fastrnn.quantize(_model(mode, 37, 45, seed=5, **kw), "int7")
    x = np.random.default_rng(batch).standard_normal((9, batch, 37)).astype(f32)
    outs = {}
    for narrow in (True, False):
        _core.int8_narrow(narrow)
        for threads in (1, 2):
            outs[narrow, threads] = _flat(q(x, num_threads=threads))
    assert _core.int8_narrow() is False
    for key, got in outs.items():
        for a, b in zip(got, outs[False, 1]):
            np.testing.assert_array_equal(a, b, err_msg=str(key))


def test_narrow_table_where_avx2_runs(narrow_restored):
    """AVX2 has a narrow sibling; the switch reports it, and turns it off and on."""
    _core.int8_narrow(True)
    has = _core.int8_narrow()
    assert has == (_core.isa() == "avx2")
    assert _core.int8_narrow(False) is False
    assert _core.int8_narrow(True) is has


def test_int7_file_round_trip(tmp_path):
    q = fastrnn.quantize(_model("LSTM", 24, 40, seed=8, proj_size=10), "int7")
    path = tmp_path / "m.safetensors"
    q.save(path)
    back = fastrnn.load(path)
    assert back.dtype == "int7"
    x = np.random.default_rng(1).standard_normal((5, 3, 24)).astype(f32)
    for a, b in zip(_flat(q(x)), _flat(back(x))):
        np.testing.assert_array_equal(a, b)
    # The file holds I8 matrices in [-63, 63] and their scales.
    from safetensors.numpy import load_file

    tensors = load_file(path)
    assert tensors["weight_hh_l0"].dtype == np.int8
    assert np.abs(tensors["weight_hh_l0"]).max() == 63
    assert "weight_hh_l0.scale" in tensors


def test_int7_file_with_an_eight_bit_weight_is_refused(tmp_path):
    q = fastrnn.quantize(_model("GRU", 8, 16, seed=1), "int7")
    path = tmp_path / "m.safetensors"
    q.save(path)
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(path, "np") as f:
        metadata = f.metadata()
    tensors = load_file(path)
    tensors["weight_ih_l0"] = tensors["weight_ih_l0"].copy()
    tensors["weight_ih_l0"][0, 0] = 100
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(BadFile, match=r"holds 100; values must be in \[-63, 63\]"):
        fastrnn.load(path)
