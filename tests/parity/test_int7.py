"""int7: int8 weights held to [-63, 63] (python/fastrnn/_quantize.py int8_rows(top=63)).

Every table computes the same exact integer sums as for int8; AVX2 runs such a model on its
narrow sibling table (csrc/kernels/reduced/rvec-avx2.h, FASTRNN_I8_NARROW: VPMADDUBSW
without VPSIGNB), which must give the bits of the regular table. Against the quantised
reference on every ISA, both tables bit for bit, the stated bounds, files.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_precision import (
    MODES,
    _errors,
    _flat,
    _model,
    _one_step_case,
    _quantise_rows,
    _stress_state_dict,
    _torch_model,
    quantised_step,
)

import fastrnn
from fastrnn import _core
from fastrnn._quantize import BOUNDS, int8_rows
from fastrnn.io.base import BadFile

f32 = np.float32
# Trained-like weights (test_precision's _stress_state_dict; H = 128, T = 1000), measured on
# an AMD Zen 3 (max, mean |Δ| against torch float32): LSTM 0.41 / 1.26e-2, GRU 0.17 / 1.14e-2
# (int8: 0.17 / 6.2e-3, 0.11 / 6.2e-3). Bounded with 2x headroom (docs/precision.md).
STRESS_BOUND_INT7 = (8.5e-1, 2.6e-2)


def _int7_dot(w: np.ndarray, a: np.ndarray) -> np.ndarray:
    qw, sw = int8_rows(w, 63)
    assert np.abs(qw).max() <= 63
    qa, sa = _quantise_rows(a.astype(f32))
    acc = (qa @ qw.astype(np.int64).T).astype(f32)  # exact, then rounded once
    return (acc * (sa[:, None] * sw[None, :]).astype(f32)).astype(f32)


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


def test_int7_stream_and_cell_give_the_forward_bits():
    q = fastrnn.quantize(_model("GRU", 20, 33, seed=2), "int7")
    x = np.random.default_rng(0).standard_normal((6, 2, 20)).astype(f32)
    y, _ = q(x)
    stream = q.stream(batch=2)
    for t in range(6):
        np.testing.assert_array_equal(stream.step(x[t]), y[t])


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_RELU"])
def test_int7_error_against_torch_within_the_stated_bound(isa, mode):
    torch = pytest.importorskip("torch")
    t = _torch_model(torch, mode, 32, 96, seed=1)
    x = np.random.default_rng(5).standard_normal((150, 2, 32)).astype(f32)
    with torch.inference_mode():
        ref = _flat(t(torch.from_numpy(x)))
    max_err, mean_err = _errors(_flat(fastrnn.from_torch(t, dtype="int7")(x)), ref)
    bound_max, bound_mean = BOUNDS["int7"]
    assert max_err <= bound_max and mean_err <= bound_mean, (max_err, mean_err)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_int7_trained_like_weights_error_is_bounded(mode):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    sd = _stress_state_dict(mode, 64, 128, rng)
    t = _torch_model(torch, mode, 64, 128, seed=0)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    x = rng.standard_normal((1000, 2, 64)).astype(f32)
    with torch.inference_mode():
        ref = _flat(t(torch.from_numpy(x)))
    max_err, mean_err = _errors(_flat(fastrnn.from_torch(t, dtype="int7")(x)), ref)
    assert max_err <= STRESS_BOUND_INT7[0] and mean_err <= STRESS_BOUND_INT7[1], (
        max_err,
        mean_err,
    )


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
