"""fastrnn.verify: the parity report by the accuracy contract (fastrnn's error against a
float64 evaluation at most 2x torch fp32's own, or under the tolerance floor), with
fastrnn - torch beside it."""

import numpy as np
import pytest

import fastrnn
from fastrnn._verify import TensorError, _batch_axis, _compare, _sequence_errors

torch = pytest.importorskip("torch")
nn = torch.nn

MODULES = [
    lambda: nn.LSTM(5, 7),
    lambda: nn.LSTM(3, 9, num_layers=2, proj_size=4, bidirectional=True),
    lambda: nn.LSTM(4, 6, batch_first=True, bias=False),
    lambda: nn.GRU(5, 7, num_layers=2, bidirectional=True, batch_first=True),
    lambda: nn.RNN(6, 7, nonlinearity="relu"),
    lambda: nn.RNN(6, 7, num_layers=2),
    lambda: nn.LSTMCell(5, 7),
    lambda: nn.GRUCell(5, 7, bias=False),
    lambda: nn.RNNCell(5, 7, nonlinearity="relu"),
]
IDS = [
    "lstm",
    "lstm-proj-bi",
    "lstm-bf-nobias",
    "gru-bi-bf",
    "rnn-relu",
    "rnn-2",
    "lstmcell",
    "grucell",
    "rnncell",
]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("make", MODULES, ids=IDS)
def test_default_input_passes(make):
    module = make()
    report = fastrnn.verify(module)
    assert isinstance(report, fastrnn.VerifyReport)
    assert report.ok, str(report)
    assert 0 <= report.max_abs <= 1e-5 and report.tolerance == 1e-5
    assert 0 <= report.fastrnn_error <= 1e-5 and 0 <= report.torch_error <= 1e-5
    for e in report.errors.values():
        assert e.ok and e.fastrnn_error <= max(2 * e.torch_error, 1e-5)
    is_cell = isinstance(module, (nn.LSTMCell, nn.GRUCell, nn.RNNCell))
    is_lstm = isinstance(module, (nn.LSTM, nn.LSTMCell))
    expected = (
        (["h", "c"] if is_lstm else ["h"])
        if is_cell
        else (["output", "h_n", "c_n"] if is_lstm else ["output", "h_n"])
    )
    assert list(report.errors) == expected
    assert report.max_abs == max(e.max_abs for e in report.errors.values())
    assert report.max_rel == max(e.max_rel for e in report.errors.values())
    if not is_cell:
        bf = module.batch_first
        assert report.input_shape == (
            (2, 16, module.input_size) if bf else (16, 2, module.input_size)
        )


def test_report_is_readable():
    report = fastrnn.verify(nn.LSTM(4, 6, num_layers=2))
    text = str(report)
    assert text.startswith("fastrnn.verify: OK  as accurate as torch: error vs float64 ")
    assert "(torch float32: " in text and "passes up to 2x torch's or 1e-05, per sequence)" in text
    assert "within" in text and " 2/2 " in text
    assert "LSTM(4, 6, num_layers=2)" in text
    assert "fastrnn-f64" in text and "torch-f64" in text and "fastrnn-torch" in text
    for name in ("output", "h_n", "c_n"):
        assert f"  {name}" in text
    r = repr(report)
    assert r.startswith("VerifyReport(ok=True, fastrnn_error=") and "tolerance=1e-05" in r
    assert "output:" in r and "c_n:" in r


def test_errors_are_measured_against_float64():
    """fastrnn_error and torch_error are each one's distance to a float64 run of the module,
    computed here independently (a double copy of the module on the same float32 input)."""
    import copy

    module = nn.GRU(4, 8, num_layers=2)
    x = np.random.default_rng(4).standard_normal((12, 3, 4)).astype(np.float32)
    report = fastrnn.verify(module, x)
    with torch.inference_mode():
        y64, h64 = copy.deepcopy(module).double()(torch.from_numpy(x).double())
        y32, h32 = module(torch.from_numpy(x))
    y_fast, h_fast = fastrnn.from_torch(module)(x)
    for name, truth, mine, theirs in (("output", y64, y_fast, y32), ("h_n", h64, h_fast, h32)):
        truth = truth.numpy()
        e = report.errors[name]
        assert e.fastrnn_error == np.max(np.abs(mine.astype(np.float64) - truth))
        assert e.torch_error == np.max(np.abs(theirs.double().numpy() - truth))
        assert e.ratio == e.fastrnn_error / e.torch_error


def test_given_input_numpy_and_torch_agree():
    module = nn.GRU(3, 5, num_layers=2)
    x = np.random.default_rng(1).standard_normal((7, 4, 3)).astype(np.float32)
    a = fastrnn.verify(module, x)
    b = fastrnn.verify(module, torch.from_numpy(x))
    assert a.ok and a.max_abs == b.max_abs and a.input_shape == (7, 4, 3)


def test_unbatched_input():
    report = fastrnn.verify(nn.LSTM(3, 5), np.ones((6, 3), np.float32))
    assert report.ok and report.errors["output"].shape == (6, 5)
    assert report.errors["h_n"].shape == (1, 5)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize(
    "make",
    [
        lambda bf: nn.LSTM(3, 6, num_layers=2, bidirectional=True, batch_first=bf),
        lambda bf: nn.GRU(3, 6, batch_first=bf),
        lambda bf: nn.RNN(3, 6, batch_first=bf),
    ],
    ids=["lstm", "gru", "rnn"],
)
def test_lengths_unsorted(make, batch_first):
    module = make(batch_first)
    x = np.random.default_rng(2).standard_normal((4, 9, 3) if batch_first else (9, 4, 3))
    report = fastrnn.verify(module, x, lengths=[3, 9, 1, 5])
    assert report.ok and report.lengths, str(report)
    assert "with lengths" in str(report)
    assert report.errors["output"].shape == (
        (4, 9, 12 if module.bidirectional else 6)
        if batch_first
        else (9, 4, 12 if module.bidirectional else 6)
    )


def test_initial_state():
    module = nn.LSTM(3, 5, num_layers=2)
    rng = np.random.default_rng(3)
    state = (rng.standard_normal((2, 2, 5)), torch.randn(2, 2, 5))
    assert fastrnn.verify(module, state=state).ok


def test_wrong_model_fails():
    module = nn.GRU(3, 5)
    broken = fastrnn.from_torch(module)
    sd = broken.state_dict()
    sd["weight_hh_l0"][4, 2] += 0.1
    broken.load_state_dict(sd)
    report = fastrnn.verify(module, model=broken)
    assert not report.ok and report.max_abs > 1e-3 and report.fastrnn_error > 1e-3
    assert report.torch_error < 1e-5
    text = str(report)
    assert text.startswith("fastrnn.verify: FAIL  less accurate than torch: ")
    assert "error vs float64" in text and "> 2 x torch float32's" in text
    assert "> tolerance 1e-05" in text and "<- FAIL" in text
    assert "ok=False" in repr(report)


def test_planted_error_just_above_the_floor_fails():
    """An error a little above the tolerance but far above torch's own fails; the same error
    passes once the floor is raised above it."""
    module = nn.LSTM(8, 16)
    planted = fastrnn.from_torch(module)
    sd = planted.state_dict()
    sd["bias_hh_l0"][20] += 1e-4  # a forget-gate bias: shifts c_n by ~1e-5..1e-4
    planted.load_state_dict(sd)
    report = fastrnn.verify(module, model=planted)
    assert not report.ok, str(report)
    worst = max(report.errors.values(), key=lambda e: e.fastrnn_error)
    assert worst.fastrnn_error > 2 * worst.torch_error and worst.ratio > 2
    assert fastrnn.verify(module, model=planted, tolerance=1e-3).ok


def test_tolerance_is_a_floor():
    module = nn.LSTM(3, 5)
    report = fastrnn.verify(module, tolerance=1.0)
    assert report.ok and report.tolerance == 1.0
    strict = fastrnn.verify(module, tolerance=0.0)  # by the ratio alone
    assert strict.ok == all(e.fastrnn_error <= 2 * e.torch_error for e in strict.errors.values())
    with pytest.raises(ValueError, match="tolerance must be a number >= 0, got -1"):
        fastrnn.verify(module, tolerance=-1)


def test_training_module_runs_in_eval_and_is_restored():
    module = nn.LSTM(3, 5, num_layers=3, dropout=0.5)
    module.train()
    report = fastrnn.verify(module)
    assert report.ok and module.training  # dropout was off during verify, the flag is back


def test_float64_module():
    """A double module is its own float64 truth: torch's error is 0, and fastrnn fp32 passes
    by the floor."""
    module = nn.GRU(3, 5).double()
    report = fastrnn.verify(module)
    assert report.ok, str(report)
    assert report.torch_error == 0.0 and report.torch_dtype == "float64"
    assert 0 < report.fastrnn_error <= 1e-5
    assert "(torch float64: 0;" in str(report)


def test_errors():
    with pytest.raises(TypeError, match="verify expects nn.LSTM.*got Linear"):
        fastrnn.verify(nn.Linear(3, 4))
    with pytest.raises(
        ValueError, match=r"lengths needs a batched x \(3 dimensions\), got x of shape \(5, 3\)"
    ):
        fastrnn.verify(nn.GRU(3, 4), np.zeros((5, 3)), lengths=[5])
    with pytest.raises(TypeError, match=r"state must be a tuple \(h, c\) for an LSTM"):
        fastrnn.verify(nn.LSTM(3, 4), state=np.zeros((1, 2, 4)))


def test_compare_nan_inf_and_shapes():
    ref = np.array([1.0, np.nan, np.inf, 0.0, 2e-4])
    same = _compare("t", ref.copy(), ref)
    assert same.max_abs == 0.0 and same.max_rel == 0.0
    nan_here = _compare("t", np.array([1.0, 1.0, np.inf, 0.0, 2e-4]), ref)
    assert nan_here.max_abs == np.inf and nan_here.where == (1,)
    inf_sign = _compare("t", np.array([1.0, np.nan, -np.inf, 0.0, 2e-4]), ref)
    assert inf_sign.max_abs == np.inf
    small = _compare("t", np.array([1.0, np.nan, np.inf, 0.0, 3e-4]), ref)  # |ref| < 1e-3: abs only
    assert small.max_abs == pytest.approx(1e-4) and small.max_rel == 0.0
    rel = _compare("t", np.array([1.5, np.nan, np.inf, 0.0, 2e-4]), ref)
    assert rel.max_rel == pytest.approx(0.5) and rel.where == (0,)
    mismatch = _compare("t", np.zeros(3), np.zeros(4))
    assert isinstance(mismatch, TensorError) and mismatch.max_abs == np.inf


@pytest.mark.parametrize("shape", [(0, 2, 3), (0, 3)])
def test_no_time_steps_is_a_value_error(shape):
    """torch raises a RuntimeError for T = 0; verify reports it as the ValueError fastrnn
    raises, before running either."""
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"verify: x must hold at least one time step"):
        fastrnn.verify(torch.nn.GRU(3, 4), np.zeros(shape, np.float32))


def test_empty_batch_verifies():
    torch = pytest.importorskip("torch")
    assert fastrnn.verify(torch.nn.LSTM(3, 4), np.zeros((2, 0, 3), np.float32)).ok


def test_sequence_errors_and_batch_axes():
    truth = np.zeros((5, 3, 4))
    got = truth.copy()
    got[2, 1, 3] = 1e-3
    got[0, 2, 0] = np.nan
    assert _sequence_errors(got, truth, 1).tolist() == [0.0, 1e-3, np.inf]
    assert _sequence_errors(got, truth, None).tolist() == [np.inf]
    assert _sequence_errors(np.zeros((2, 3)), np.zeros((3, 3)), 0).tolist() == [np.inf]
    assert _sequence_errors(np.zeros((2, 0, 3)), np.zeros((2, 0, 3)), 1).size == 0
    assert _batch_axis("output", 3, False, False) == 1
    assert _batch_axis("output", 3, False, True) == 0
    assert _batch_axis("output", 2, False, True) is None
    assert _batch_axis("h_n", 3, False, True) == 1 and _batch_axis("c_n", 2, False, False) is None
    assert _batch_axis("h", 2, True, False) == 0 and _batch_axis("h", 1, True, False) is None


def test_half_of_the_sequences_decide():
    """A planted error on every sequence fails; the report counts the sequences within."""
    module = nn.GRU(3, 6)
    x = np.random.default_rng(5).standard_normal((10, 4, 3)).astype(np.float32)
    good = fastrnn.verify(module, x)
    assert good.ok and all(e.sequences == 4 and e.sequences_ok == 4 for e in good.errors.values())
    broken = fastrnn.from_torch(module)
    sd = broken.state_dict()
    sd["bias_ih_l0"][7] += 1e-3
    broken.load_state_dict(sd)
    bad = fastrnn.verify(module, x, model=broken)
    assert not bad.ok and bad.errors["h_n"].sequences_ok == 0
    assert "on 4 of 4 sequences" in str(bad)
