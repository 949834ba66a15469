"""Tier 5: the boundary. Each bad input gets its exact exception type (wrong type → TypeError,
wrong shape or value → ValueError) and a message that names the argument, the expected and
the actual value (STYLE.md §5). Accepted conversions (float64, float16, non-contiguous, torch
tensors) give the float32 C-contiguous answer bit for bit.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import fastrnn
from fastrnn import _core
from support.common import flatten


def exact(text: str) -> str:
    """A match= pattern for a literal message fragment."""
    return re.escape(text)


@pytest.fixture(scope="module")
def lstm():
    return fastrnn.LSTM(32, 20, num_layers=2, seed=0)


@pytest.fixture(scope="module")
def gru():
    return fastrnn.GRU(32, 20, seed=0)


X = np.zeros((10, 4, 32), np.float32)


# --- x ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((10, 4, 16), "LSTM: x must have shape (T, B, 32) (input_size=32), got (10, 4, 16)"),
        ((10, 16), "LSTM: x must have shape (T, 32) (input_size=32), got (10, 16)"),
        (
            (10, 4, 2, 32),
            "LSTM: x must have shape (T, B, 32) or (T, 32) (input_size=32), got (10, 4, 2, 32)",
        ),
        ((32,), "LSTM: x must have shape (T, B, 32) or (T, 32) (input_size=32), got (32,)"),
        ((), "LSTM: x must have shape (T, B, 32) or (T, 32) (input_size=32), got ()"),
    ],
    ids=["wrong-I", "unbatched-wrong-I", "rank4", "rank1", "rank0"],
)
def test_x_wrong_rank_or_input_size(lstm, shape, message):
    with pytest.raises(ValueError, match=exact(message)):
        lstm(np.zeros(shape, np.float32))


def test_x_wrong_input_size_batch_first():
    model = fastrnn.GRU(8, 4, batch_first=True, seed=0)
    with pytest.raises(
        ValueError, match=exact("GRU: x must have shape (B, T, 8) (input_size=8), got (2, 3, 7)")
    ):
        model(np.zeros((2, 3, 7), np.float32))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.complex64, np.complex128, bool])
def test_x_non_float_dtype(lstm, dtype):
    with pytest.raises(
        TypeError,
        match="^" + exact(f"LSTM: x must have a real floating dtype, got {np.dtype(dtype)}"),
    ):
        lstm(np.zeros((10, 4, 32), dtype))


@pytest.mark.parametrize(
    ("obj", "name"), [(X.tolist(), "list"), (None, "NoneType"), (5.0, "float"), ("x", "str")]
)
def test_x_not_an_array(lstm, obj, name):
    with pytest.raises(
        TypeError, match="^" + exact(f"LSTM: x must be a numpy array or a torch tensor, got {name}")
    ):
        lstm(obj)


@pytest.mark.parametrize(
    ("shape", "batch_first"),
    [((0, 4, 32), False), ((0, 32), False), ((0, 0, 32), False), ((4, 0, 32), True)],
)
def test_x_without_time_steps(shape, batch_first):
    """T = 0 is a ValueError (torch raises RuntimeError "Expected sequence length to be larger
    than 0"); B = 0 gives empty outputs, as torch does (tests/test_edge_numerics.py)."""
    gru = fastrnn.GRU(32, 20, batch_first=batch_first, seed=0)
    with pytest.raises(
        ValueError,
        match="^" + exact(f"GRU: x must hold at least one time step (T >= 1), got {shape}"),
    ):
        gru(np.zeros(shape, np.float32))


# --- states ----------------------------------------------------------------------------------

H0 = np.zeros((2, 4, 20), np.float32)


@pytest.mark.parametrize(
    ("h0", "c0", "message"),
    [
        (
            (2, 4, 21),
            (2, 4, 20),
            "LSTM: h_0 must have shape (2, 4, 20) (num_layers * num_directions, batch, features), got (2, 4, 21)",
        ),
        (
            (2, 4, 20),
            (1, 4, 20),
            "LSTM: c_0 must have shape (2, 4, 20) (num_layers * num_directions, batch, features), got (1, 4, 20)",
        ),
        (
            (2, 3, 20),
            (2, 3, 20),
            "LSTM: h_0 must have shape (2, 4, 20) (num_layers * num_directions, batch, features), got (2, 3, 20)",
        ),
        (
            (4, 20),
            (4, 20),
            "LSTM: h_0 must have shape (2, 4, 20) (num_layers * num_directions, batch, features), got (4, 20)",
        ),
    ],
)
def test_lstm_state_shapes(lstm, h0, c0, message):
    with pytest.raises(ValueError, match=exact(message)):
        lstm(X, (np.zeros(h0, np.float32), np.zeros(c0, np.float32)))


def test_unbatched_state_shape():
    model = fastrnn.LSTM(5, 7, bidirectional=True, seed=0)
    with pytest.raises(
        ValueError,
        match=exact(
            "LSTM: h_0 must have shape (2, 7) (num_layers * num_directions, features), got (2, 1, 7)"
        ),
    ):
        model(
            np.zeros((3, 5), np.float32),
            (np.zeros((2, 1, 7), np.float32), np.zeros((2, 1, 7), np.float32)),
        )


@pytest.mark.parametrize(("state", "name"), [(H0, "ndarray"), ([H0], "list")])
def test_lstm_state_not_a_pair(lstm, state, name):
    with pytest.raises(
        TypeError, match=exact(f"LSTM: state must be a tuple (h_0, c_0), got {name}")
    ):
        lstm(X, state)


def test_lstm_state_of_three(lstm):
    with pytest.raises(TypeError, match=exact("LSTM: state must be a tuple (h_0, c_0)")):
        lstm(X, (H0, H0, H0))


def test_gru_state_shape_and_type(gru):
    with pytest.raises(
        ValueError,
        match=exact(
            "GRU: h_0 must have shape (1, 4, 20) (num_layers * num_directions, batch, features), got (1, 3, 20)"
        ),
    ):
        gru(X, np.zeros((1, 3, 20), np.float32))
    with pytest.raises(
        TypeError, match="^" + exact("GRU: h_0 must be a numpy array or a torch tensor, got tuple")
    ):
        gru(X, (np.zeros((1, 4, 20), np.float32),))
    with pytest.raises(
        TypeError, match="^" + exact("GRU: h_0 must have a real floating dtype, got int32")
    ):
        gru(X, np.zeros((1, 4, 20), np.int32))


def test_lstm_state_dtype_names_class(lstm):
    with pytest.raises(
        TypeError, match="^" + exact("LSTM: c_0 must have a real floating dtype, got int64")
    ):
        lstm(X, (np.zeros((2, 4, 20), np.float32), np.zeros((2, 4, 20), np.int64)))


# --- lengths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lengths", "error", "message"),
    [
        ([1, 2, 3], ValueError, "lengths must have shape (4,) (one per sequence), got (3,)"),
        (
            np.ones((1, 4), np.int64),
            ValueError,
            "lengths must have shape (4,) (one per sequence), got (1, 4)",
        ),
        ([0, 2, 3, 4], ValueError, "lengths must be in [1, 10] (T=10), got 0 at index 0"),
        ([1, 2, 3, 11], ValueError, "lengths must be in [1, 10] (T=10), got 11 at index 3"),
        ([1, -2, 3, 4], ValueError, "lengths must be in [1, 10] (T=10), got -2 at index 1"),
        (np.array([1.0, 2, 3, 4]), TypeError, "lengths must hold integers, got dtype float64"),
        ([1.0, 2.0, 3.0, 4.0], TypeError, "lengths must hold integers, got dtype float64"),
        (np.ones(4, bool), TypeError, "lengths must hold integers, got dtype bool"),
        ("abcd", TypeError, "lengths must be a numpy array or a torch tensor, got str"),
    ],
)
def test_bad_lengths(gru, lengths, error, message):
    with pytest.raises(error, match="^" + exact("GRU: " + message)):
        gru(X, lengths=lengths)


def test_lengths_with_unbatched_x(gru):
    with pytest.raises(ValueError, match=exact("GRU: lengths needs a batched x (T, B, I)")):
        gru(X[:, 0], lengths=[1])


# --- weights ---------------------------------------------------------------------------------


def test_state_dict_missing_key(gru):
    sd = gru.state_dict()
    del sd["bias_hh_l0"]
    with pytest.raises(ValueError, match=exact("GRU.load_state_dict: missing keys ['bias_hh_l0']")):
        gru.load_state_dict(sd)


def test_state_dict_extra_key(gru):
    sd = gru.state_dict()
    sd["weight_hr_l0"] = np.zeros((3, 20), np.float32)
    with pytest.raises(
        ValueError, match=exact("GRU.load_state_dict: unexpected keys ['weight_hr_l0']")
    ):
        gru.load_state_dict(sd)


def test_state_dict_bias_into_bias_free_model():
    with pytest.raises(
        ValueError,
        match=exact("LSTM.load_state_dict: unexpected keys ['bias_ih_l0', 'bias_hh_l0']"),
    ):
        fastrnn.LSTM(5, 7, bias=False).load_state_dict(fastrnn.LSTM(5, 7, seed=0).state_dict())


def test_state_dict_misshaped(gru):
    sd = gru.state_dict()
    sd["weight_hh_l0"] = np.zeros((60, 21), np.float32)
    with pytest.raises(
        ValueError,
        match=exact("GRU.load_state_dict: weight_hh_l0 must have shape (60, 20), got (60, 21)"),
    ):
        gru.load_state_dict(sd)


def test_state_dict_wrong_dtype_and_type(gru):
    sd = gru.state_dict()
    sd["weight_hh_l0"] = sd["weight_hh_l0"].astype(np.int32)
    with pytest.raises(
        TypeError,
        match=exact("GRU.load_state_dict: weight_hh_l0 must have a real floating dtype, got int32"),
    ):
        gru.load_state_dict(sd)
    with pytest.raises(
        TypeError, match=exact("GRU.load_state_dict: state_dict must be a mapping, got list")
    ):
        gru.load_state_dict([1])


def test_failed_load_keeps_old_weights(gru):
    x = np.random.default_rng(0).standard_normal((3, 2, 32), dtype=np.float32)
    before = flatten(gru(x))
    sd = gru.state_dict()
    sd["weight_ih_l0"] = np.zeros((60, 31), np.float32)
    with pytest.raises(ValueError, match="weight_ih_l0"):
        gru.load_state_dict(sd)
    for a, b in zip(before, flatten(gru(x))):
        assert np.array_equal(a, b)


def test_cell_state_dict_extra_key():
    cell = fastrnn.GRUCell(5, 7, seed=0)
    sd = cell.state_dict()
    sd["weight_ih_l0"] = sd["weight_ih"]
    with pytest.raises(
        ValueError,
        match="^" + exact("GRUCell.load_state_dict: unexpected keys ['weight_ih_l0']") + "$",
    ):
        cell.load_state_dict(sd)


@pytest.mark.parametrize("what", ["missing", "misshaped", "dtype", "missing-and-extra"])
def test_cell_state_dict_errors_name_cell_keys(what):
    cell = fastrnn.GRUCell(5, 7, seed=0)
    sd = cell.state_dict()
    error = ValueError
    if what == "missing":
        del sd["weight_ih"]
        message = "GRUCell.load_state_dict: missing keys ['weight_ih']"
    elif what == "misshaped":
        sd["weight_ih"] = np.zeros((21, 6), np.float32)
        message = "GRUCell.load_state_dict: weight_ih must have shape (21, 5), got (21, 6)"
    elif what == "dtype":
        sd["bias_hh"] = sd["bias_hh"].astype(np.int16)
        error, message = (
            TypeError,
            "GRUCell.load_state_dict: bias_hh must have a real floating dtype, got int16",
        )
    else:
        sd["weight_ih_l0"] = sd.pop("weight_ih")
        message = (
            "GRUCell.load_state_dict: missing keys ['weight_ih'] unexpected keys ['weight_ih_l0']"
        )
    before = cell.state_dict()
    with pytest.raises(error, match="^" + exact(message) + "$"):
        cell.load_state_dict(sd)
    for key, value in cell.state_dict().items():  # a failed load keeps the old weights
        assert np.array_equal(value, before[key])


# --- constructors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: fastrnn.LSTM(4, 8, proj_size=8),
            ValueError,
            "LSTM: proj_size must be smaller than hidden_size (8), got 8",
        ),
        (
            lambda: fastrnn.LSTM(4, 8, proj_size=9),
            ValueError,
            "LSTM: proj_size must be smaller than hidden_size (8), got 9",
        ),
        (
            lambda: fastrnn.LSTM(4, 8, proj_size=-1),
            ValueError,
            "LSTM: proj_size must be >= 0, got -1",
        ),
        (
            lambda: fastrnn.LSTM(4, 8, proj_size=2.0),
            TypeError,
            "LSTM: proj_size must be an int, got float",
        ),
        # torch: ValueError "proj_size argument is only supported for LSTM, not RNN or GRU".
        (
            lambda: fastrnn.GRU(4, 8, proj_size=2),
            ValueError,
            "GRU: proj_size argument is only supported for LSTM, not RNN or GRU, got proj_size=2",
        ),
        (
            lambda: fastrnn.RNN(4, 8, proj_size=3),
            ValueError,
            "RNN: proj_size argument is only supported for LSTM, not RNN or GRU, got proj_size=3",
        ),
        (
            lambda: fastrnn.RNN(4, 8, nonlinearity="sigmoid"),
            ValueError,
            "RNN: nonlinearity must be 'tanh' or 'relu', got 'sigmoid'",
        ),
        (
            lambda: fastrnn.RNNCell(4, 8, nonlinearity="gelu"),
            ValueError,
            "RNNCell: nonlinearity must be 'tanh' or 'relu', got 'gelu'",
        ),
        (lambda: fastrnn.LSTM(0, 8), ValueError, "LSTM: input_size must be >= 1, got 0"),
        (lambda: fastrnn.GRU(4, 0), ValueError, "GRU: hidden_size must be >= 1, got 0"),
        (
            lambda: fastrnn.RNN(4, 8, num_layers=0),
            ValueError,
            "RNN: num_layers must be >= 1, got 0",
        ),
        (lambda: fastrnn.LSTM(4.0, 8), TypeError, "LSTM: input_size must be an int, got float"),
        (lambda: fastrnn.LSTM(4, True), TypeError, "LSTM: hidden_size must be an int, got bool"),
        (lambda: fastrnn.GRUCell(0, 8), ValueError, "GRUCell: input_size must be >= 1, got 0"),
        (
            lambda: fastrnn.LSTMCell(4, 8.5),
            TypeError,
            "LSTMCell: hidden_size must be an int, got float",
        ),
        (
            lambda: fastrnn.LSTM(4, 8, dropout=2),
            ValueError,
            "LSTM: dropout must be a number in [0, 1], got 2",
        ),
    ],
)
def test_bad_constructor_arguments(make, error, message):
    with pytest.raises(error, match="^" + exact(message)):
        make()


# --- cells -----------------------------------------------------------------------------------


def test_cell_bad_inputs():
    cell = fastrnn.LSTMCell(5, 7, seed=0)
    x = np.zeros((3, 5), np.float32)
    with pytest.raises(
        ValueError,
        match=exact("LSTMCell: x must have shape (B, 5) or (5,) (input_size=5), got (3, 6)"),
    ):
        cell(np.zeros((3, 6), np.float32))
    with pytest.raises(
        ValueError,
        match=exact("LSTMCell: x must have shape (B, 5) or (5,) (input_size=5), got (2, 3, 5)"),
    ):
        cell(np.zeros((2, 3, 5), np.float32))
    with pytest.raises(
        TypeError, match=exact("LSTMCell: state must be a tuple (h, c), got ndarray")
    ):
        cell(x, np.zeros((3, 7), np.float32))
    with pytest.raises(ValueError, match=exact("LSTMCell: c must have shape (3, 7), got (2, 7)")):
        cell(x, (np.zeros((3, 7), np.float32), np.zeros((2, 7), np.float32)))
    gru_cell = fastrnn.GRUCell(5, 7, seed=0)
    with pytest.raises(ValueError, match=exact("GRUCell: h must have shape (3, 7), got (3, 8)")):
        gru_cell(x, np.zeros((3, 8), np.float32))
    with pytest.raises(ValueError, match=exact("GRUCell: h must have shape (7,), got (1, 7)")):
        gru_cell(x[0], np.zeros((1, 7), np.float32))
    with pytest.raises(
        TypeError, match="^" + exact("GRUCell: x must have a real floating dtype, got int64")
    ):
        gru_cell(np.zeros((3, 5), np.int64))
    with pytest.raises(
        TypeError, match="^" + exact("GRUCell: h must have a real floating dtype, got int64")
    ):
        gru_cell(x, np.zeros((3, 7), np.int64))
    with pytest.raises(
        ValueError,
        match="^" + exact("GRUCell: x must have shape (B, 5) or (5,) (input_size=5), got ()"),
    ):
        gru_cell(np.zeros((), np.float32))


# --- runtime ---------------------------------------------------------------------------------


def test_set_num_threads_bad(threads_restored):
    with pytest.raises(ValueError, match=exact("n must be >= 1, got 0")):
        fastrnn.set_num_threads(0)
    with pytest.raises(ValueError, match=exact("n must be >= 1, got -3")):
        fastrnn.set_num_threads(-3)
    with pytest.raises(TypeError, match=exact("n must be an int, got str")):
        fastrnn.set_num_threads("2")
    with pytest.raises(TypeError, match=exact("n must be an int, got float")):
        fastrnn.set_num_threads(2.0)
    assert fastrnn.get_num_threads() == threads_restored


def test_set_isa_unknown_name():
    before = _core.isa()
    with pytest.raises(
        ValueError,
        match=exact(
            "FASTRNN_ISA must be one of scalar, avx2, avx512, avx512vnni, avx512bf16, neon, auto; got 'bogus'"
        ),
    ):
        _core.set_isa("bogus")
    assert _core.isa() == before


def test_from_torch_of_other_modules():
    torch = pytest.importorskip("torch")
    for obj, name in [
        (torch.nn.Linear(3, 4), "Linear"),
        (torch.nn.Sequential(torch.nn.LSTM(3, 4)), "Sequential"),
        ("lstm", "str"),
        (fastrnn.LSTM(3, 4, seed=0), "LSTM"),
    ]:
        with pytest.raises(
            TypeError,
            match=exact(
                f"from_torch expects nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell or nn.RNNCell, got {name}"
            ),
        ):
            fastrnn.from_torch(obj)


def test_core_is_the_last_line_of_defence():
    """The private core rejects what the Python layer would have converted: no crash."""
    core = fastrnn.LSTM(5, 7, seed=0)._core
    with pytest.raises(TypeError, match=exact("x must be float32, got float64")):
        core.forward(np.zeros((3, 2, 5)), None, None, None)
    with pytest.raises(ValueError, match=exact("x must be C-contiguous")):
        core.forward(np.zeros((3, 2, 10), np.float32)[:, :, ::2], None, None, None)
    with pytest.raises(ValueError, match=exact("x must have shape (3, 2, 5), got (3, 2, 6)")):
        core.forward(np.zeros((3, 2, 6), np.float32), None, None, None)
    with pytest.raises(ValueError, match=exact("h_0 must have shape (1, 2, 7), got (2, 2, 7)")):
        core.forward(np.zeros((3, 2, 5), np.float32), np.zeros((2, 2, 7), np.float32), None, None)
    with pytest.raises(ValueError, match=exact("lengths must be in [1, 3], got 4 at index 1")):
        core.forward(np.zeros((3, 2, 5), np.float32), None, None, np.array([1, 4]))
    gru_core = fastrnn.GRU(5, 7, seed=0)._core
    with pytest.raises(ValueError, match=exact("c_0 is only for LSTM")):
        gru_core.forward(
            np.zeros((3, 2, 5), np.float32), None, np.zeros((1, 2, 7), np.float32), None
        )


# --- accepted conversions --------------------------------------------------------------------


def _model_and_input(batch_first=False):
    model = fastrnn.LSTM(6, 9, num_layers=2, bidirectional=True, batch_first=batch_first, seed=0)
    x = np.random.default_rng(0).standard_normal((7, 3, 6), dtype=np.float32)
    return model, x


def _same(a, b):
    for u, v in zip(flatten(a), flatten(b)):
        assert u.dtype == np.float32 and u.flags.c_contiguous
        assert np.array_equal(u, v)


def test_float64_and_float16_x_accepted():
    model, x = _model_and_input()
    want = model(x)
    _same(model(x.astype(np.float64)), want)
    x16 = x.astype(np.float16)
    _same(model(x16), model(x16.astype(np.float32)))


def test_non_contiguous_x_accepted():
    model, x = _model_and_input()
    want = model(x)
    fortran = np.asfortranarray(x)
    assert not fortran.flags.c_contiguous
    _same(model(fortran), want)
    strided = np.zeros((7, 3, 12), np.float32)
    strided[:, :, ::2] = x
    _same(model(strided[:, :, ::2]), want)
    reversed_time = x[::-1].copy()[::-1]
    _same(model(reversed_time), want)
    model_bf, _ = _model_and_input(batch_first=True)
    _same(model_bf(x.transpose(1, 0, 2)), (want[0].transpose(1, 0, 2), want[1]))


def test_float64_and_non_contiguous_states_accepted():
    model, x = _model_and_input()
    rng = np.random.default_rng(1)
    h0 = rng.standard_normal((4, 3, 9), dtype=np.float32)
    c0 = rng.standard_normal((4, 3, 9), dtype=np.float32)
    want = model(x, (h0, c0))
    _same(model(x, (h0.astype(np.float64), c0.astype(np.float64))), want)
    _same(model(x, [np.asfortranarray(h0), c0.transpose(2, 1, 0).copy().transpose(2, 1, 0)]), want)


def test_inputs_are_not_modified():
    model, x = _model_and_input()
    h0 = np.ones((4, 3, 9), np.float32)
    copies = x.copy(), h0.copy()
    model(x, (h0, h0), lengths=[1, 7, 3])
    assert np.array_equal(x, copies[0]) and np.array_equal(h0, copies[1])


def test_torch_tensor_inputs_of_every_kind():
    """Tensors numpy cannot take directly are converted (bf16, float8, negative views) or
    refused with a TypeError naming the argument (sparse, meta), never another error."""
    torch = pytest.importorskip("torch")
    model = fastrnn.GRU(4, 5, seed=0)
    x = torch.randn(3, 2, 4)
    want = model(x.numpy())[0]
    assert np.array_equal(model(torch._neg_view(-x))[0], want)
    assert np.array_equal(model(x.requires_grad_())[0], want)
    bf16 = x.detach().to(torch.bfloat16)
    assert np.array_equal(model(bf16)[0], model(bf16.float().numpy())[0])
    f8 = x.detach().to(torch.float8_e4m3fn)
    assert np.array_equal(model(f8)[0], model(f8.float().numpy())[0])
    with pytest.raises(TypeError, match=exact("GRU: x must be a dense tensor, got layout")):
        model(x.detach().to_sparse())
    with pytest.raises(TypeError, match=exact("GRU: x must hold data, got a meta tensor")):
        model(x.detach().to("meta"))
    with pytest.raises(TypeError, match=exact("GRU: x must have a real floating dtype, got")):
        model(x.detach().to(torch.complex64))
