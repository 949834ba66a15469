"""fastrnn.accelerate / fastrnn.restore: torch models whose recurrent modules run
on fastrnn, swapped in place.

Every parity test compares the accelerated module with torch's own forward on the same
module and checks that fastrnn computed it (a spy counts the op's calls): structure exactly
(types, shapes, dtypes, PackedSequence fields), values within the default-init contract of
DESIGN.md §5, |Δ| ≤ 1e-5 · max(1, |expected|) (README, "Parity guarantee": an absolute 1e-5
up to magnitude 1, relative above, where ReLU RNN values and cell states live). Fallback
tests check that torch's forward ran instead (the spy stays at 0) and gave torch's result.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import io
import os
import pickle
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from fastrnn import _core
from support.common import ISAS

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.utils.rnn import (  # noqa: E402
    PackedSequence,
    pack_padded_sequence,
)

A = importlib.import_module("fastrnn._accelerate")
accelerate = getattr(fastrnn, "accelerate", A.accelerate)
restore = getattr(fastrnn, "restore", A.restore)
FallbackError = A.FallbackError

REPO = Path(__file__).resolve().parents[2]
# bench/torch_models.py: the models of test_models_people_use (loaded by path: bench/ on
# sys.path would shadow packages by its scripts' names, e.g. dask's distributed).
_spec = importlib.util.spec_from_file_location("torch_models", REPO / "bench" / "torch_models.py")
torch_models = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("torch_models", torch_models)  # its classes pickle by reference
_spec.loader.exec_module(torch_models)
LengthsLSTM = torch_models.LengthsLSTM

needs_2_cpus = pytest.mark.skipif(_core.hardware_threads() < 2, reason="needs 2 CPUs")


def run_ok(script: str, *args: str, **env: str) -> None:
    """Runs script in a fresh interpreter (args after -c, env added to this one's) and
    checks that it ended printing ok."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


TOL = 1e-5  # DESIGN.md §5, default-init weights; relative above magnitude 1 (see above)


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def fast_calls(monkeypatch):
    """Counts the fast calls (eager, compiled and exported: each runs _forward_arrays, or
    a cell's eager call _cell_arrays, which returns None when it leaves the call to it)."""
    calls = []
    impl, cell_impl = A._forward_arrays, A._cell_arrays

    def spy(*args, **kwargs):
        calls.append(args[1][0])  # the config's mode
        return impl(*args, **kwargs)

    def cell_spy(*args, **kwargs):
        out = cell_impl(*args, **kwargs)
        if out is not None:
            calls.append(args[1][0])
        return out

    monkeypatch.setattr(A, "_forward_arrays", spy)
    monkeypatch.setattr(A, "_cell_arrays", cell_spy)
    return calls


@pytest.fixture
def packs(monkeypatch):
    """Counts weight packings (fastrnn load_state_dict calls of every model class)."""
    count = []
    for cls in (fastrnn.LSTM, fastrnn.GRU, fastrnn.RNN):
        original = cls.load_state_dict

        def counted(self, state_dict, _original=original):
            count.append(type(self).__name__)
            return _original(self, state_dict)

        monkeypatch.setattr(cls, "load_state_dict", counted)
    return count


def torch_forward(module, *args):
    """torch's own forward of module (the torch class in its MRO), hooks not run."""
    base = next(c for c in type(module).__mro__ if c.__module__.startswith("torch.nn.modules"))
    return base.forward(module, *args)


def assert_same(expected, actual, where="output"):
    """Same structure (types, shapes, dtypes, devices, PackedSequence fields exactly) and
    values within |Δ| ≤ TOL · max(1, |expected|)."""
    if isinstance(expected, PackedSequence):
        assert type(actual) is PackedSequence, f"{where}: {type(actual).__name__}"
        assert_same(expected.data, actual.data, where + ".data")
        assert torch.equal(expected.batch_sizes, actual.batch_sizes), where + ".batch_sizes"
        for field in ("sorted_indices", "unsorted_indices"):
            e, a = getattr(expected, field), getattr(actual, field)
            assert (e is None) == (a is None), f"{where}.{field}: {e} vs {a}"
            assert e is None or torch.equal(e, a), f"{where}.{field}: {e} vs {a}"
        return
    if isinstance(expected, tuple):
        assert type(actual) is tuple and len(actual) == len(expected), f"{where}: {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            assert_same(e, a, f"{where}[{i}]")
        return
    assert type(actual) is torch.Tensor, f"{where}: {type(actual).__name__}"
    assert actual.shape == expected.shape, f"{where}: shape {actual.shape} vs {expected.shape}"
    assert actual.dtype == expected.dtype, f"{where}: dtype {actual.dtype} vs {expected.dtype}"
    assert actual.device == expected.device, where
    if actual.device.type == "meta":
        return  # shapes only
    e, a = expected.detach().double(), actual.detach().double()
    bound = TOL * e.abs().clamp(min=1)
    excess = (a - e).abs() - bound
    if excess.numel() and excess.max() > 0:
        i = int(excess.argmax())
        pytest.fail(
            f"{where}: max |Δ| {(a - e).abs().max().item():.3g} exceeds "
            f"1e-5·max(1,|x|) at flat index {i} (expected {e.flatten()[i].item():.6g}, got "
            f"{a.flatten()[i].item():.6g})"
        )


def make(kind: str, input_size: int, hidden: int, **kw):
    """A torch module in eval mode with default-init weights, seeded by its arguments."""
    torch.manual_seed(zlib.crc32(repr((kind, input_size, hidden, sorted(kw.items()))).encode()))
    if kind == "RNN_RELU":
        return nn.RNN(input_size, hidden, nonlinearity="relu", **kw).eval()
    return getattr(nn, kind)(input_size, hidden, **kw).eval()


# --- parity: every module type, option and call form -------------------------------------------

STACKS = [
    ("LSTM", {}),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(num_layers=2, proj_size=3)),
    ("LSTM", dict(bias=False, batch_first=True, bidirectional=True, proj_size=4)),
    ("GRU", {}),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("GRU", dict(bias=False)),
    ("RNN", dict(num_layers=2)),
    ("RNN_RELU", dict(num_layers=2, bidirectional=True)),
    ("RNN_RELU", dict(bias=False, batch_first=True)),
]
CALLS = [
    "input",
    "input_hx",
    "unbatched",
    "unbatched_hx",
    "packed_sorted",
    "packed_sorted_hx",
    "packed_unsorted",
    "packed_unsorted_hx",
]
I, H, T, B = 5, 7, 6, 4


def stack_args(m, call: str):
    g = torch.Generator().manual_seed(7)
    D = 2 if m.bidirectional else 1
    H_out = getattr(m, "proj_size", 0) or m.hidden_size
    batched = not call.startswith("unbatched")
    nb = (B,) if batched else ()
    hx = None
    if call.endswith("_hx"):
        h = torch.randn(m.num_layers * D, *nb, H_out, generator=g)
        c = torch.randn(m.num_layers * D, *nb, m.hidden_size, generator=g)
        hx = (h, c) if m.mode == "LSTM" else h
    if not batched:
        return torch.randn(T, I, generator=g), hx
    x = torch.randn(*((B, T) if m.batch_first else (T, B)), I, generator=g)
    if call.startswith("packed"):
        sorted_ = call.startswith("packed_sorted")
        lengths = [6, 6, 3, 1] if sorted_ else [3, 6, 1, 6]
        x = pack_padded_sequence(x, lengths, batch_first=m.batch_first, enforce_sorted=sorted_)
    return x, hx


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    ("kind", "kw"), STACKS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(STACKS)]
)
def test_stack_parity(kind, kw, call, fast_calls):
    m = make(kind, I, H, **kw)
    x, hx = stack_args(m, call)
    args = (x,) if hx is None else (x, hx)
    with torch.no_grad():
        expected = m(*args)
        accelerate(m, strict=True)
        actual = m(*args)
    assert_same(expected, actual)
    assert len(fast_calls) == 1


CELLS = [("LSTMCell", {}), ("GRUCell", {}), ("RNNCell", {}), ("RNNCell", dict(nonlinearity="relu"))]


@pytest.mark.parametrize("hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize(
    ("kind", "kw"), CELLS, ids=["LSTMCell", "GRUCell", "RNNCell", "RNNCell_relu"]
)
def test_cell_parity(kind, kw, bias, batched, hx, fast_calls):
    m = make(kind, I, H, bias=bias, **kw)
    g = torch.Generator().manual_seed(3)
    nb = (B,) if batched else ()
    x = torch.randn(*nb, I, generator=g)
    args = (x,)
    if hx:
        h = torch.randn(*nb, H, generator=g)
        args = (x, (h, torch.randn(*nb, H, generator=g)) if kind == "LSTMCell" else h)
    with torch.no_grad():
        expected = m(*args)
        accelerate(m, strict=True)
        actual = m(*args)
    assert_same(expected, actual)
    assert len(fast_calls) == 1


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
def test_strided_inputs_and_states(batch_first, fast_calls):
    """Inputs and states that are views with any strides (transposed, sliced, expanded with
    stride 0): the fast path reads them as torch does, with torch's output strides."""
    g = torch.Generator().manual_seed(5)
    lstm = make("LSTM", I, H, num_layers=2, batch_first=batch_first)
    gru_cell = make("GRUCell", I, H)
    lstm_cell = make("LSTMCell", I, H)
    big = torch.randn(2 * B, 3 * T, 2 * I, generator=g)
    x = big[::2, ::3, ::2]  # (B, T, I), no two strides of it contiguous
    x = x if batch_first else x.transpose(0, 1)
    h0 = torch.randn(1, 1, H, generator=g).expand(2, B, H)  # stride 0
    c0 = torch.randn(B, 2, 2 * H, generator=g)[:, :, ::2].transpose(0, 1)
    xc = torch.randn(I, B, generator=g).t()  # (B, I) transposed
    hc = torch.randn(B, 2 * H, generator=g)[:, H:]
    cc = torch.randn(H, generator=g).expand(B, H)
    calls = [
        (lstm, (x, (h0, c0))),
        (lstm, (x[0] if batch_first else x[:, 0],)),  # unbatched, strided
        (gru_cell, (xc, hc)),
        (lstm_cell, (xc, (hc, cc))),
        (lstm_cell, (xc[1], (hc[1], cc[1]))),  # unbatched cell
    ]
    with torch.no_grad():
        expected = [m(*args) for m, args in calls]
        for m in (lstm, gru_cell, lstm_cell):
            accelerate(m, strict=True)
        actual = [m(*args) for m, args in calls]
    for e, a in zip(expected, actual):
        assert_same(e, a)
        for te, ta in zip(e if isinstance(e, tuple) else (e,), a if isinstance(a, tuple) else (a,)):
            te, ta = (te[0], ta[0]) if isinstance(te, tuple) else (te, ta)
            assert te.stride() == ta.stride()
    assert len(fast_calls) == len(calls)


def test_longer_sequences_and_sizes(fast_calls):
    """Odd sizes across vector tails, a long sequence, batch 33, a PackedSequence."""
    m = make("LSTM", 17, 33, num_layers=3, bidirectional=True, proj_size=9)
    x = torch.randn(200, 33, 17)
    lengths = torch.randint(1, 201, (33,))
    lengths[5] = 200
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    with torch.no_grad():
        expected = [m(x), m(packed)]
        accelerate(m, strict=True)
        actual = [m(x), m(packed)]
    assert_same(tuple(expected), tuple(actual))
    assert len(fast_calls) == 2


# --- transparency -------------------------------------------------------------------------------


def lstm_model():
    torch.manual_seed(0)
    return make("LSTM", I, H, num_layers=2, bidirectional=True, proj_size=3, batch_first=True)


def test_module_looks_the_same():
    m = lstm_model()
    before = dict(
        repr=repr(m),
        keys=list(m.state_dict()),
        params=[(n, id(p)) for n, p in m.named_parameters()],
        buffers=list(m.named_buffers()),
        dict_keys=set(m.__dict__),
    )
    values = {k: v.clone() for k, v in m.state_dict().items()}
    assert accelerate(m) is m
    assert isinstance(m, nn.LSTM) and isinstance(m, nn.RNNBase)
    assert type(m).__name__ == "LSTM" and type(m) is not nn.LSTM
    assert repr(m) == before["repr"]
    assert list(m.state_dict()) == before["keys"]
    assert all(torch.equal(v, values[k]) for k, v in m.state_dict().items())
    assert [(n, id(p)) for n, p in m.named_parameters()] == before["params"]
    assert list(m.named_buffers()) == before["buffers"]
    m.flatten_parameters()
    assert restore(m) is m
    assert type(m) is nn.LSTM
    assert set(m.__dict__) == before["dict_keys"]
    assert repr(m) == before["repr"]


def test_restore_gives_torch_outputs_exactly(fast_calls):
    m = lstm_model()
    x = torch.randn(B, T, I)
    with torch.no_grad():
        expected = m(x)
        accelerate(m)
        m(x)
        restore(m)
        actual = m(x)
    assert len(fast_calls) == 1
    assert torch.equal(expected[0], actual[0]) and torch.equal(expected[1][1], actual[1][1])
    assert restore(m) is m  # a model without accelerated modules: unchanged
    with pytest.raises(TypeError, match=r"restore: model must be a torch.nn.Module, got int"):
        restore(3)


def test_hooks_run_and_see_the_fast_output(fast_calls):
    m = make("GRU", I, H)
    seen = []
    m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))  # before accelerate
    accelerate(m)
    m.register_forward_hook(lambda mod, args, out: seen.append(out[0].shape))
    x = torch.randn(T, B, I)
    with torch.no_grad():
        out, h = m(x)
    assert seen == [torch.Size([T, B, H])]
    assert_same(torch_forward(m, x * 2), (out, h))
    assert len(fast_calls) == 1


def test_to_double_falls_back_and_float_is_fast_again(fast_calls):
    m = accelerate(make("LSTM", I, H))
    x = torch.randn(T, B, I)
    with torch.no_grad():
        m.double()
        assert_same(torch_forward(m, x.double()), m(x.double()))
        assert fast_calls == []
        with pytest.raises(FallbackError, match=r"input's dtype is torch.float64"):
            accelerate(m, strict=True)(x.double())
        m.float()
        assert_same(torch_forward(m, x), m(x))
    assert len(fast_calls) == 1


def test_other_devices_fall_back(fast_calls):
    """The meta device stands in for CUDA and the others: torch's forward runs there."""
    m = accelerate(make("GRU", I, H, num_layers=2)).to("meta")
    x = torch.randn(T, B, I, device="meta")
    with torch.no_grad():
        assert_same(torch_forward(m, x), m(x))
        with pytest.raises(FallbackError, match=r"the input is on meta"):
            accelerate(m, strict=True)(x)
        with pytest.raises(FallbackError, match=r"weight_ih_l0 is on meta"):
            m(torch.randn(T, B, I))
    assert fast_calls == []


def test_flatten_parameters_in_forward_is_cheap(fast_calls, packs):
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(I, H, num_layers=2)

        def forward(self, x):
            self.rnn.flatten_parameters()
            return self.rnn(x)[0]

    model = Model().eval()
    accelerate(model)
    assert packs == ["LSTM"]  # by accelerate: the weights, packed once
    x = torch.randn(T, B, I)
    with torch.no_grad():
        for _ in range(5):
            model(x)
    assert len(fast_calls) == 5
    assert packs == ["LSTM"]  # never again


def test_deepcopy_is_an_independent_accelerated_module(fast_calls):
    m = accelerate(lstm_model())
    x = torch.randn(B, T, I)
    c = copy.deepcopy(m)
    assert type(c) is type(m) and c.weight_hh_l0 is not m.weight_hh_l0
    with torch.no_grad():
        assert_same(torch_forward(m, x), c(x))
        c.weight_hh_l0.mul_(2)
        assert_same(torch_forward(c, x), c(x))
        assert_same(torch_forward(m, x), m(x))
    assert len(fast_calls) == 3


class EncoderDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.GRU(I, H, bidirectional=True)
        self.dec = nn.LSTMCell(2 * H, H)

    def forward(self, x):
        y, _ = self.enc(x)
        return self.dec(y[-1])


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_pickle_round_trip_is_accelerated(how, fast_calls):
    model = accelerate(EncoderDecoder().eval(), strict=True)
    if how == "pickle":
        clone = pickle.loads(pickle.dumps(model))
    else:
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        clone = torch.load(buffer, weights_only=False)
    assert type(clone.enc) is type(model.enc) and type(clone.dec) is type(model.dec)
    assert list(clone.state_dict()) == list(model.state_dict())
    x = torch.randn(T, B, I)
    with torch.no_grad():
        assert_same(model(x), clone(x))
        with pytest.raises(FallbackError):  # the options travel too
            clone.enc(x.double())
    assert len(fast_calls) == 4
    assert type(restore(clone).enc) is nn.GRU


def test_shared_and_top_level_modules(fast_calls):
    cell = nn.GRUCell(I, I)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = cell
            self.b = cell

        def forward(self, x):
            return self.b(self.a(x))

    model = Twice().eval()
    x = torch.randn(B, I)
    with torch.no_grad():
        expected = model(x)
        accelerate(model)
        assert_same(expected, model(x))
    assert len(fast_calls) == 2
    assert model.a is model.b and isinstance(model.a, nn.GRUCell)
    # A bare module, accelerated twice: the same class, options updated.
    m = accelerate(make("RNN", I, H))
    cls = type(m)
    accelerate(m, strict=True)
    assert type(m) is cls
    with pytest.raises(FallbackError, match=r"RNN \(the model itself\)"):
        m(torch.randn(T, I, dtype=torch.float64))


def test_accelerate_arguments():
    with pytest.raises(TypeError, match=r"accelerate: model must be a torch.nn.Module, got list"):
        accelerate([nn.LSTM(1, 1)])
    with pytest.raises(
        ValueError,
        match=re.escape(
            "accelerate: dtype must be one of ('float32', 'bf16', 'int8', 'int7'), got 'fp8'"
        ),
    ):
        accelerate(nn.LSTM(1, 1), dtype="fp8")
    with pytest.raises(ValueError, match=r"dtype must be one of .*, got torch.float16"):
        accelerate(nn.LSTM(1, 1), dtype=torch.float16)
    with pytest.raises(TypeError, match=r"accelerate: strict must be a bool, got str"):
        accelerate(nn.LSTM(1, 1), strict="yes")
    model = nn.Sequential(nn.Linear(2, 2))
    assert accelerate(model) is model and type(model[0]) is nn.Linear


# --- subclasses that override forward ------------------------------------------------------------


def test_subclass_keeps_its_forward_and_gets_the_fast_path(fast_calls):
    torch.manual_seed(1)
    m = LengthsLSTM(I, H, num_layers=2, batch_first=True).eval()
    x = torch.randn(B, T, I)
    lengths = torch.tensor([2, 6, 4, 1])
    with torch.no_grad():
        expected = m(x, lengths=lengths, enforce_sorted=False)
        accelerate(m, strict=True)
        actual = m(x, lengths=lengths, enforce_sorted=False)
    assert_same(expected, actual)
    assert len(fast_calls) == 1
    assert isinstance(m, LengthsLSTM) and type(m).__name__ == "LengthsLSTM"
    mro = type(m).__mro__
    assert mro.index(LengthsLSTM) < mro.index(A._StackForward) < mro.index(nn.LSTM)
    assert type(pickle.loads(pickle.dumps(m))) is type(m)
    assert type(restore(m)) is LengthsLSTM


# --- weights changed after the swap ---------------------------------------------------------------


def change_load_state_dict(m):
    m.load_state_dict({k: torch.randn_like(v) for k, v in m.state_dict().items()})


def change_optimizer_step(m):
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    out, _ = m(torch.randn(T, B, I))  # grad mode: torch's forward, gradients flow
    out.square().sum().backward()
    opt.step()


def change_in_place(m):
    with torch.no_grad():
        m.weight_hh_l0.mul_(-0.7)
        m.bias_ih_l0[:3] = 1.5


def change_data_assignment(m):
    m.weight_ih_l0.data = torch.randn_like(m.weight_ih_l0)


def change_parameter_replacement(m):
    m.weight_hh_l0 = nn.Parameter(torch.randn_like(m.weight_hh_l0))


def change_data_in_place_then_accelerate(m):
    # .data's in-place edits bypass torch's version counter; accelerate again repacks.
    m.weight_hh_l0.data.mul_(3)
    accelerate(m)


@pytest.mark.parametrize(
    "change",
    [
        change_load_state_dict,
        change_optimizer_step,
        change_in_place,
        change_data_assignment,
        change_parameter_replacement,
        change_data_in_place_then_accelerate,
    ],
    ids=lambda f: f.__name__[len("change_") :],
)
def test_changed_weights_are_used(change, fast_calls, packs):
    m = accelerate(make("LSTM", I, H, num_layers=2))
    x = torch.randn(T, B, I)
    with torch.no_grad():
        before = m(x)
        assert_same(torch_forward(m, x), before)
    packs.clear()
    change(m)
    with torch.no_grad():
        expected = torch_forward(m, x)
        assert not torch.allclose(expected[0], before[0], atol=1e-3)
        assert_same(expected, m(x))
        assert_same(expected, m(x))
    assert len(fast_calls) == 3
    assert len(packs) == 1  # once after the change, not per call


def test_functional_call_uses_the_given_weights(fast_calls):
    m = accelerate(make("GRU", I, H))
    x = torch.randn(T, B, I)
    other = {k: torch.randn_like(v) for k, v in m.state_dict().items()}
    with torch.no_grad():
        actual = torch.func.functional_call(m, other, (x,))
        plain = torch.func.functional_call(restore(copy.deepcopy(m)), other, (x,))
        assert_same(plain, actual)
        assert_same(torch_forward(m, x), m(x))  # its own weights again
    assert len(fast_calls) == 2


# --- falling back to torch's forward -------------------------------------------------------------


class Tagger(nn.Module):
    """Embedding -> bidirectional 2-layer LSTM -> linear head (per step)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.encoder = nn.Module()
        self.encoder.rnn = nn.LSTM(16, 24, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(48, 5)

    def forward(self, tokens):
        y, _ = self.encoder.rnn(self.embed(tokens))
        return self.head(y)


def test_training_step_falls_back_and_gradients_flow(fast_calls):
    torch.manual_seed(2)
    plain = Tagger()
    model = accelerate(copy.deepcopy(plain))
    tokens = torch.randint(0, 50, (3, 9))
    for m in (plain, model):
        m.train()
        m(tokens).logsumexp(-1).sum().backward()
    assert fast_calls == []
    for (name, p), q in zip(plain.named_parameters(), model.parameters()):
        assert q.grad is not None and torch.allclose(p.grad, q.grad, atol=1e-6), name
    with pytest.raises(
        FallbackError,
        match=r"LSTM 'encoder.rnn' cannot run on fastrnn: a gradient is needed: grad mode is "
        r"on and an input requires grad",
    ):
        accelerate(model, strict=True)(tokens)
    with torch.no_grad():  # the same model, no gradient needed: fast, also in train mode
        assert_same(plain.eval()(tokens), model(tokens))
    assert len(fast_calls) == 1


def test_inputs_requiring_grad_under_no_grad_are_fast(fast_calls):
    m = accelerate(make("GRU", I, H), strict=True)
    x = torch.randn(T, B, I, requires_grad=True)
    with torch.no_grad():
        assert_same(torch_forward(m, x), m(x))
    with torch.inference_mode():
        assert_same(torch_forward(m, x), m(x))
    for p in m.parameters():
        p.requires_grad_(False)
    out, _ = m(x.detach())  # grad mode on, nothing requires grad
    assert len(fast_calls) == 3 and not out.requires_grad


def test_dropout_in_training_falls_back(fast_calls):
    m = accelerate(make("GRU", I, H, num_layers=2, dropout=0.5)).train()
    x = torch.randn(T, B, I)
    with torch.no_grad():
        torch.manual_seed(5)
        expected = torch_forward(m, x)
        torch.manual_seed(5)
        assert_same(expected, m(x))
        assert fast_calls == []
        with pytest.raises(FallbackError, match=r"training mode with dropout=0.5"):
            accelerate(m, strict=True)(x)
        m.eval()
        assert_same(torch_forward(m, x), m(x))
        single = accelerate(make("LSTM", I, H, dropout=0.0), strict=True).train()
        assert_same(torch_forward(single, x), single(x))  # train mode, nothing to drop
    assert len(fast_calls) == 2


def test_autocast_falls_back(fast_calls):
    m = accelerate(make("LSTM", I, H))
    x = torch.randn(T, B, I)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        try:
            expected = torch_forward(m, x)
        except RuntimeError as torch_error:
            # torch's own bf16 LSTM goes through oneDNN, which has no such primitive on a CPU
            # without AVX-512 (AMD Zen 3: "could not create a primitive descriptor"): the
            # accelerated module, falling back, raises torch's error.
            with pytest.raises(RuntimeError, match=re.escape(str(torch_error))):
                m(x)
        else:
            assert_same(expected, m(x))
        with pytest.raises(FallbackError, match=r"autocast is enabled on the CPU"):
            accelerate(m, strict=True)(x)
    assert fast_calls == []


def test_inference_tensor_weights_fall_back(fast_calls):
    with torch.inference_mode():
        m = accelerate(make("RNN", I, H))
        x = torch.randn(T, B, I)
        assert_same(torch_forward(m, x), m(x))
        assert fast_calls == []
        with pytest.raises(FallbackError, match=r"weight_ih_l0 is an inference tensor"):
            accelerate(m, strict=True)(x)


def test_bad_input_gets_torchs_own_error():
    m = make("LSTM", I, H)
    plain = copy.deepcopy(m)
    accelerate(m, strict=True)
    bad = [
        (torch.randn(T, B, I + 1),),
        (torch.randn(T, B, I), (torch.zeros(1, B + 1, H), torch.zeros(1, B + 1, H))),
        (torch.randn(T, I), (torch.zeros(1, B, H), torch.zeros(1, B, H))),
        (torch.randn(2, T, B, I),),
        (torch.randn(T, B, I), torch.zeros(1, B, H)),
    ]
    for args in bad:
        try:
            plain(*args)
        except Exception as torch_error:  # whichever torch raises
            expected = torch_error
        else:
            pytest.fail(f"torch accepted {[a.shape for a in args]}")
        with pytest.raises(type(expected), match=re.escape(str(expected))):
            m(*args)


# --- graph capture ----------------------------------------------------------------------------


def accelerated_tagger(seed: int):
    """An accelerated Tagger, tokens for it and the plain model's output on them."""
    torch.manual_seed(seed)
    model = Tagger().eval()
    tokens = torch.randint(0, 50, (3, 9))
    with torch.no_grad():
        expected = model(tokens)
    return accelerate(model), tokens, expected


def test_torch_compile_one_graph_with_the_op(fast_calls):
    model, tokens, expected = accelerated_tagger(4)
    with torch.no_grad():
        explained = torch._dynamo.explain(model)(tokens)
        assert explained.graph_break_count == 0, explained.break_reasons
        assert "fastrnn.rnn_forward" in explained.graphs[0].code
        compiled = torch.compile(model)
        n = len(fast_calls)
        assert_same(expected, compiled(tokens))
        model.encoder.rnn.weight_hh_l1.mul_(0.5)  # read by the compiled graph at run time
        assert_same(restore(copy.deepcopy(model))(tokens), compiled(tokens))
        assert len(fast_calls) == n + 2
    # Training through the compiled model: torch's forward, gradients flow.
    model.train()
    n = len(fast_calls)
    compiled(tokens).sum().backward()
    assert len(fast_calls) == n
    assert model.encoder.rnn.weight_hh_l0.grad is not None


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN_RELU"])
def test_op_passes_torch_opcheck(kind):
    """torch.library.opcheck: the schema, the fake implementation's shapes and dtypes against
    the real outputs, and the op under AOT dispatch with dynamic shapes."""
    kw = dict(num_layers=2, bidirectional=True, **({"proj_size": 3} if kind == "LSTM" else {}))
    m = accelerate(make(kind, I, H, **kw)).requires_grad_(False)
    H_out = 3 if kind == "LSTM" else H
    h0 = torch.randn(4, B, H_out)
    c0 = torch.randn(4, B, H) if kind == "LSTM" else None
    config = A._acceleration(m).config
    spec = config[:1] + config[2:]  # the op's arguments after the handle: all but I
    for lengths in (None, torch.tensor([6, 2, 5, 1])):
        args = (torch.randn(T, B, I), list(m._flat_weights), h0, c0, lengths, 0, *spec)
        result = torch.library.opcheck(torch.ops.fastrnn.rnn_forward.default, args)
        assert set(result.values()) == {"SUCCESS"}, result


def test_slots_of_dead_modules_are_freed_and_unknown_handles_work():
    import gc

    m = accelerate(make("GRU", I, H))
    handle = A._acceleration(m).handle
    assert handle in A._SLOTS
    x = torch.randn(T, B, I)
    with torch.no_grad():
        expected = torch_forward(m, x)
        weights = list(m._flat_weights)
        config = A._acceleration(m).config
        del m
        gc.collect()
        assert handle not in A._SLOTS
        # A graph that outlived its module (or was loaded elsewhere) names an unknown handle.
        spec = config[:1] + config[2:]
        y, h_n, _ = torch.ops.fastrnn.rnn_forward(x, weights, None, None, None, handle, *spec)
    assert_same(expected, (y, h_n))


def test_parametrized_weights_fall_back(fast_calls):
    from torch.nn.utils import parametrize

    class Scale(nn.Module):
        def forward(self, w):
            return 0.5 * w

    x = torch.randn(T, B, I)
    before = make("LSTM", I, H)  # parametrized before accelerate
    parametrize.register_parametrization(before, "weight_hh_l0", Scale())
    after = accelerate(make("LSTM", I, H))  # parametrized after
    parametrize.register_parametrization(after, "weight_hh_l0", Scale())
    accelerate(before)
    with torch.no_grad():
        for m in (before, after):
            assert_same(torch_forward(m, x), m(x))
            with pytest.raises(FallbackError, match=r"its weights are parametrized"):
                accelerate(m, strict=True)(x)
    assert fast_calls == []
    assert type(restore(before)).__name__ == "ParametrizedLSTM"
    with pytest.raises(
        TypeError,
        match=r"restore: ParametrizedLSTM at '' derives from an "
        r"accelerated class",
    ):
        restore(after)


def test_torch_export_captures_the_op(fast_calls):
    model, tokens, expected = accelerated_tagger(6)
    with torch.no_grad():
        program = torch.export.export(model, (tokens,))
        targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
        assert "fastrnn.rnn_forward.default" in targets
        assert not any("lstm" in t for t in targets)
        n = len(fast_calls)
        assert_same(expected, program.module()(tokens))
        assert len(fast_calls) == n + 1
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        buffer.seek(0)
        assert_same(expected, torch.export.load(buffer).module()(tokens))


def test_saved_program_loads_in_a_fresh_process(tmp_path):
    """docs/accelerate.md: a process that loads a saved ExportedProgram registers the op by
    calling fastrnn.accelerate first (on any module); the program then runs there."""
    model, tokens, expected = accelerated_tagger(9)
    with torch.no_grad():
        torch.export.save(torch.export.export(model, (tokens,)), tmp_path / "tagger.pt2")
    torch.save((tokens, expected), tmp_path / "io.pt")
    script = f"""
import torch, fastrnn
accelerate = getattr(fastrnn, "accelerate", None)
if accelerate is None:
    from fastrnn._accelerate import accelerate
accelerate(torch.nn.Module())
program = torch.export.load({str(tmp_path / "tagger.pt2")!r})
tokens, expected = torch.load({str(tmp_path / "io.pt")!r})
with torch.no_grad():
    print((program.module()(tokens) - expected).abs().max().item())
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout.split()[-1]) <= TOL


def test_torchscript_trace_works_and_script_says_what_to_do(fast_calls):
    model, tokens, expected = accelerated_tagger(8)
    with torch.no_grad():
        traced = torch.jit.trace(model, tokens, check_trace=False)
        assert fast_calls == []  # the trace recorded torch's forward
        assert "aten::lstm" in str(traced.inlined_graph)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        buffer.seek(0)
        assert_same(expected, torch.jit.load(buffer)(tokens))
    with pytest.raises(RuntimeError, match=r"Script the model before accelerating it"):
        torch.jit.script(model)
    assert isinstance(model.encoder.rnn, A._StackForward)  # untouched by the attempt
    scripted = torch.jit.script(restore(copy.deepcopy(model)))
    with torch.no_grad():
        assert_same(expected, scripted(tokens))


# --- threads ------------------------------------------------------------------------------------


def test_calls_use_torchs_thread_count(monkeypatch):
    import fastrnn._accelerate as impl

    seen = []
    call = impl._core_forward

    def spy(model, x, h0, c0, lengths, threads):
        seen.append(threads)
        return call(model, x, h0, c0, lengths, threads)

    monkeypatch.setattr(impl, "_core_forward", spy)
    m = accelerate(make("LSTM", I, H))
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            with torch.no_grad():
                m(torch.randn(T, B, I))
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 2]


HOST_TEAM = r"""
import copy, sys, numpy as np, torch, fastrnn
from fastrnn import _core
mismatch = sys.argv[1] == "mismatch"
torch.manual_seed(0)
torch.set_num_threads(2)
lstm = torch.nn.LSTM(64, 256, bias=False).eval()
fast = fastrnn.accelerate(copy.deepcopy(lstm), strict=True)
assert "omp" in _core.host_openmp(), _core.host_openmp()
assert fastrnn.from_torch(lstm).plan(1, 10**4, num_threads=2)["threads"] == 2
_core.host_openmp_test_mismatch(mismatch)
one = fastrnn.from_torch(lstm)
x = torch.randn(20, 1, 64)
# A subnormal initial h: each thread's recurrent sums, gates, c and h stay subnormal unless
# that thread flushes them to zero.
zeros = torch.zeros(3, 1, 64)
state = (torch.full((1, 1, 256), 1e-39), torch.zeros(1, 1, 256))
big = torch.full((1 << 20,), 1e-39)
with torch.no_grad():
    torch.mm(torch.randn(256, 256), torch.randn(256, 256))  # torch's team, awake
    y = fast(x)[0].numpy()
    torch.set_flush_denormal(True)  # on this thread only
    flushed = fast(zeros, state)[0].numpy()
    torch.set_flush_denormal(False)
    torch_after = big * 1.0  # torch's 2 threads: neither kept the flush-to-zero mode
    kept = fast(zeros, state)[0].numpy()
pool = _core.thread_pool()
fastrnn.set_num_threads(1)
assert np.array_equal(y, one(x.numpy(), num_threads=1)[0]), "not the 1-thread bits"
assert np.count_nonzero(flushed) == 0, "the caller's flush-to-zero was not used"
assert np.array_equal(kept, one(zeros.numpy(), tuple(s.numpy() for s in state))[0])
assert np.count_nonzero(kept) == kept.size, "a thread kept a flush-to-zero mode"
assert torch.count_nonzero(torch_after).item() == big.numel(), "torch's threads got ftz"
if mismatch:  # the fallback: fastrnn's own threads, never a hang
    assert pool["host_teams"] == 0 and pool["workers"] >= 1, pool
else:  # torch's threads ran the team: no pool thread was needed
    assert pool["host_teams"] >= 3 and pool["workers"] == 0, pool
print("ok")
"""


@needs_2_cpus
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds torch's libgomp on Linux")
@pytest.mark.parametrize("mode", ["host", "mismatch"])
@pytest.mark.parametrize("isa_name", ISAS)
def test_teams_run_on_torchs_openmp_threads(isa_name, mode):
    """Accelerated calls of more than one thread run on torch's own OpenMP threads, not on
    fastrnn's pool (the two would fight for the cores between torch's ops), with the same bits
    as one thread, the caller's floating-point mode on each thread and torch's threads' own
    mode back afterwards; a region of the wrong size falls back to fastrnn's threads."""
    run_ok(HOST_TEAM, mode, FASTRNN_ISA=isa_name)


FORKED = r"""
import copy, os, numpy as np, torch, fastrnn
from fastrnn import _core
torch.manual_seed(0)
torch.set_num_threads(2)
fast = fastrnn.accelerate(torch.nn.LSTM(64, 256).eval(), strict=True)
x = torch.randn(20, 1, 64)
with torch.no_grad():
    y = fast(x)[0]
assert _core.thread_pool()["host_teams"] >= 1
pid = os.fork()
if pid == 0:  # libgomp's regions hang in a forked child: fastrnn's pool runs the call
    with torch.no_grad():
        same = torch.equal(fast(x)[0], y)
    attached = _core.host_openmp() or _core.host_openmp_attach("torch")
    os._exit(0 if same and attached == "" else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
print("ok")
"""


@needs_2_cpus
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork, libgomp")
def test_a_forked_child_runs_its_teams_on_fastrnns_pool():
    run_ok(FORKED)


KEEPS_TORCHS_THREADS = r"""
import os, time, torch, fastrnn
from fastrnn import _core
torch.set_num_threads(3)  # more than fastrnn's team of 2 on 2 CPUs
fast = fastrnn.accelerate(torch.nn.LSTM(64, 256).eval(), strict=True)
threads = lambda: len(os.listdir("/proc/self/task"))
with torch.no_grad():
    torch.mm(torch.randn(512, 512), torch.randn(512, 512))  # torch's team of 3
    before = threads()
    fast(torch.randn(20, 1, 64))
    time.sleep(0.2)  # a thread libgomp let go would have ended by now
assert _core.thread_pool()["host_teams"] == 1
assert threads() == before, (before, threads())
print("ok")
"""


@needs_2_cpus
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libgomp, /proc")
def test_a_team_smaller_than_torchs_keeps_torchs_threads():
    """A fast call's team of 2 under torch.set_num_threads(3) runs in a region of torch's 3
    threads (the third returns at once): libgomp ends the threads a smaller region leaves out,
    and torch's next op would start them again."""
    run_ok(KEEPS_TORCHS_THREADS)


def test_without_an_openmp_runtime_calls_use_fastrnns_pool():
    """A process that loaded no OpenMP runtime attaches none, and calls asking for the host's
    threads run on fastrnn's pool with the same bits."""
    script = (
        "import numpy as np, fastrnn\n"
        "from fastrnn import _core\n"
        "assert _core.host_openmp_attach('torch') == '', _core.host_openmp()\n"
        "m = fastrnn.LSTM(64, 256, seed=0)\n"
        "x = np.random.default_rng(0).standard_normal((20, 1, 64), dtype=np.float32)\n"
        "a = m._core.forward(x, None, None, None, 2, host_openmp=True)[0]\n"
        "assert np.array_equal(a, m._core.forward(x, None, None, None, 1)[0])\n"
        "assert _core.thread_pool()['host_teams'] == 0\n"
        "print('ok')\n"
    )
    run_ok(script)


def test_concurrent_callers_get_the_serial_results(fast_calls):
    """Python threads calling one accelerated model at once (a service): each gets exactly
    the result of the same call made alone."""
    from concurrent.futures import ThreadPoolExecutor

    m = accelerate(make("LSTM", I, H, num_layers=2, bidirectional=True))
    inputs = [torch.randn(T, b, I) for b in (1, 2, 3, 5) * 5]
    with torch.inference_mode():
        serial = [m(x) for x in inputs]

        def call(x):
            with torch.inference_mode():
                return m(x)

        with ThreadPoolExecutor(4) as pool:
            concurrent = list(pool.map(call, inputs))
    for (y, (h, c)), (y2, (h2, c2)) in zip(serial, concurrent):
        assert torch.equal(y, y2) and torch.equal(h, h2) and torch.equal(c, c2)
    assert len(fast_calls) == 2 * len(inputs)


# --- models people use ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "inputs", "calls"),
    [pytest.param(*case[2:], id=case[0]) for case in torch_models.cases("small")],
)
def test_models_people_use(factory, inputs, calls, fast_calls):
    torch.manual_seed(12)
    plain = factory().eval()
    model = copy.deepcopy(plain)
    assert accelerate(model, strict=True) is model
    with torch.no_grad():
        assert_same(plain(*inputs), model(*inputs))
    assert len(fast_calls) == calls
    # A training step still works: torch's forward, the same gradients as the plain model.
    accelerate(model)  # strict=False: training falls back
    for m in (plain, model):
        m.train()
        m(*inputs).float().square().mean().backward()
    assert len(fast_calls) == calls
    for (key, p), q in zip(plain.named_parameters(), model.parameters()):
        assert q.grad is not None and torch.allclose(p.grad, q.grad, atol=1e-6), key


# --- the documentation's example and the benchmark --------------------------------------------


@pytest.mark.parametrize("doc", ["docs/accelerate.md", "README.md"])
def test_documented_example_runs(doc, monkeypatch):
    """The first Python example of docs/accelerate.md, and of the README's "Whole models"
    section (skipped while the README has none)."""
    text = (REPO / doc).read_text()
    if doc == "README.md":
        section = re.search(r"^#+ Whole models.*?(?=^#+ )", text, re.S | re.M)
        if section is None:
            pytest.skip("the README has no 'Whole models' section")
        text = section.group(0)
    example = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.setattr(fastrnn, "accelerate", accelerate, raising=False)
    monkeypatch.setattr(fastrnn, "restore", restore, raising=False)
    exec(compile(example, doc, "exec"), {})


def test_bench_script_quick():
    script = REPO / "bench" / "accelerate.py"
    if not script.exists():
        pytest.skip("no bench/ in this checkout")
    run = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "eager torch" in run.stdout and "accelerated" in run.stdout
    assert np.isfinite([float(v) for v in re.findall(r"(\d+\.\d+)x", run.stdout)]).all()


# --- reduced precision ------------------------------------------------------------------------


class _Tagger(nn.Module):
    """An embedding, a bidirectional 2-layer LSTM with a projection, a GRUCell decoder step
    and a linear head: every kind of swapped module in one model."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 24)
        self.rnn = nn.LSTM(24, 48, 2, bidirectional=True, proj_size=20)
        self.cell = nn.GRUCell(40, 32)
        self.head = nn.Linear(32, 5)

    def forward(self, tokens):
        y, _ = self.rnn(self.embed(tokens))
        h = torch.zeros(tokens.shape[1], 32)
        for t in range(y.shape[0]):
            h = self.cell(y[t], h)
        return self.head(h)


@pytest.mark.parametrize("dtype", ["bf16", "int8"])
def test_reduced_precision_within_its_bound(fast_calls, dtype):
    """accelerate(dtype=...): fastrnn holds the weights reduced, the module's parameters stay
    float32 and unchanged, the error against torch float32 is within the stated bound, and
    accelerating again with float32 gives torch's result to the parity contract."""
    from fastrnn._quantize import BOUNDS

    torch.manual_seed(0)
    model = _Tagger().eval()
    tokens = torch.randint(0, 50, (30, 4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        ref = model(tokens)
    accelerate(model, dtype=dtype)
    with torch.no_grad():
        got = model(tokens)
    assert len(fast_calls) == 31  # the LSTM once, the cell each step
    err = (got - ref).abs().max().item()
    assert 0 < err <= BOUNDS[dtype][0], err
    assert A._acceleration(model.rnn).slot.entry[3].dtype == dtype
    for k, v in model.state_dict().items():
        assert v.dtype == before[k].dtype and torch.equal(v, before[k]), k
    accelerate(model)  # back to float32: packed again
    with torch.no_grad():
        again = model(tokens)
    assert (again - ref).abs().max().item() <= 1e-5
    assert A._acceleration(model.cell).slot.entry[3].dtype == "float32"
