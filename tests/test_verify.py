"""fastrnn.verify: the parity report against torch."""

import numpy as np
import pytest

import fastrnn
from fastrnn._verify import TensorError, _compare

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
    assert text.startswith("fastrnn.verify: OK  max_abs ")
    assert "<= tolerance 1e-05" in text and "LSTM(4, 6, num_layers=2)" in text
    for name in ("output", "h_n", "c_n"):
        assert f"  {name}" in text
    r = repr(report)
    assert r.startswith("VerifyReport(ok=True, max_abs=") and "tolerance=1e-05" in r
    assert "output:" in r and "c_n:" in r


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
    assert not report.ok and report.max_abs > 1e-3
    assert str(report).startswith("fastrnn.verify: FAIL") and "> tolerance" in str(report)
    assert "ok=False" in repr(report)


def test_tolerance_is_used():
    module = nn.LSTM(3, 5)
    report = fastrnn.verify(module, tolerance=1.0)
    assert report.ok and report.tolerance == 1.0
    strict = fastrnn.verify(module, tolerance=0.0)
    assert strict.ok == (strict.max_abs == 0.0)
    with pytest.raises(ValueError, match="tolerance must be a number >= 0, got -1"):
        fastrnn.verify(module, tolerance=-1)


def test_training_module_runs_in_eval_and_is_restored():
    module = nn.LSTM(3, 5, num_layers=3, dropout=0.5)
    module.train()
    report = fastrnn.verify(module)
    assert report.ok and module.training  # dropout was off during verify, the flag is back


def test_float64_module():
    module = nn.GRU(3, 5).double()
    report = fastrnn.verify(module)
    assert report.ok, str(report)


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
