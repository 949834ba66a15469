"""The accuracy contract on trained and trained-like weights, on every instruction set:
fastrnn fp32's max abs error against a float64 evaluation of the same model is at most 2x
torch fp32's own, per output and state, on at least half of the input's sequences (the rule
fastrnn.verify applies; README "Parity guarantee").

Trained recurrent models amplify rounding differences over time, so on them fastrnn and
torch fp32 drift apart while staying equally close to float64; comparing the two fp32
results with each other (the 1e-5 of the default-init tests) would fail where neither is
wrong. Here the truth is the independent float64 NumPy reference (tests/reference.py),
checked against torch's own float64 run of each model.

Models:
- trained inside the test, seeded (torch, Adam, 300 steps), to output the running sum of
  their input (memory over the whole sequence; an LSTM learns to integrate in its cell
  state), then run on sequences 20x longer than trained (T = 1000, where an LSTM's cell
  states reach 10^2 and its gates saturate): LSTM (2 layers), LSTM with projection (2
  layers), bidirectional LSTM, GRU (3 layers), RNN tanh, RNN relu;
- trained-like: default-init weights made heavy-tailed (each weight times a Student-t
  factor), an LSTM forget-gate bias of +4 (cell states then grow to |c| ~ 10^2 over T = 1000),
  and the relu RNN's W_hh scaled to a spectral radius of 0.98 (stable, but long memory).

One sequence's error is one draw (either implementation may land closer on it), hence the
rule over sequences; the ratio of the medians over sequences of fastrnn's and torch's error
per model and ISA is printed at the end of the run.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import fastrnn
from support import reference as ref
from support.common import TRAINED_RATIOS

torch = pytest.importorskip("torch")
nn = torch.nn

RATIO = 2.0  # the contract
# Below this both errors are float32 rounding of single values (~1e-7 at |x| ~ 1); there a
# ratio of two such numbers is noise, not accuracy. Far below the errors the trained models
# reach (1e-5 .. 1e-3), so it does not decide those.
FLOOR = 1e-6
T_TRAIN, T_EVAL, B_EVAL, STEPS = 50, 1000, 8, 300


def running_sum_batch(rng: np.random.Generator, T: int, B: int):
    """x (T, B, 2): a value in [0, 1] and a distractor in [-1, 1]; y (T, B, 1): the running
    sum of the values so far, / 10."""
    x = np.stack([rng.uniform(0, 1, (T, B)), rng.uniform(-1, 1, (T, B))], axis=-1)
    return x.astype(np.float32), (np.cumsum(x[..., :1], axis=0) / 10).astype(np.float32)


def train(module: nn.Module, seed: int, lr: float) -> nn.Module:
    """Trains module (+ a linear head on its output) to output the running sum."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    out = (getattr(module, "proj_size", 0) or module.hidden_size) * (
        2 if module.bidirectional else 1
    )
    head = nn.Linear(out, 1)
    opt = torch.optim.Adam(list(module.parameters()) + list(head.parameters()), lr=lr)
    module.train()
    for _ in range(STEPS):
        x, y = running_sum_batch(rng, T_TRAIN, 32)
        seq, _ = module(torch.from_numpy(x))
        loss = torch.nn.functional.mse_loss(head(seq), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
    return module.eval()


def heavy_tailed(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            t = torch.distributions.StudentT(2.5).sample(p.shape)
            p.mul_(t.abs().clamp(max=20.0) * 0.8)
            if isinstance(module, nn.LSTM) and name.startswith("bias_ih"):
                H = module.hidden_size
                p[H : 2 * H] += 4.0  # forget gate: c accumulates over the sequence
            if module.mode == "RNN_RELU" and name.startswith("weight_hh"):
                radius = torch.linalg.eigvals(p.double()).abs().max().item()
                p.mul_(0.98 / radius)
        del g
    return module.eval()


def make(name: str) -> nn.Module:
    torch.manual_seed(1)
    builders = {
        "lstm-L2": lambda: train(nn.LSTM(2, 32, num_layers=2), 1, 1e-2),
        "lstm-proj-L2": lambda: train(nn.LSTM(2, 48, num_layers=2, proj_size=16), 2, 1e-2),
        "lstm-bi": lambda: train(nn.LSTM(2, 32, bidirectional=True), 3, 1e-2),
        "gru-L3": lambda: train(nn.GRU(2, 32, num_layers=3), 4, 1e-2),
        "rnn-tanh": lambda: train(nn.RNN(2, 32), 5, 3e-3),
        "rnn-relu": lambda: train(nn.RNN(2, 32, nonlinearity="relu"), 6, 1e-3),
        "heavy-lstm-L2": lambda: heavy_tailed(nn.LSTM(16, 64, num_layers=2), 7),
        "heavy-lstm-proj-bi": lambda: heavy_tailed(
            nn.LSTM(16, 64, proj_size=24, bidirectional=True), 8
        ),
        "heavy-gru-L2": lambda: heavy_tailed(nn.GRU(16, 64, num_layers=2), 9),
        "heavy-rnn-tanh": lambda: heavy_tailed(nn.RNN(16, 64), 10),
        "heavy-rnn-relu": lambda: heavy_tailed(nn.RNN(16, 64, nonlinearity="relu"), 11),
    }
    return builders[name]()


MODELS = [
    "lstm-L2",
    "lstm-proj-L2",
    "lstm-bi",
    "gru-L3",
    "rnn-tanh",
    "rnn-relu",
    "heavy-lstm-L2",
    "heavy-lstm-proj-bi",
    "heavy-gru-L2",
    "heavy-rnn-tanh",
    "heavy-rnn-relu",
]

_CACHE: dict = {}


def case(name: str):
    """(module, x, torch fp32 results, float64 truth), built once per session."""
    if name not in _CACHE:
        module = make(name)
        rng = np.random.default_rng(100)
        if name.startswith("heavy"):
            x = rng.standard_normal((T_EVAL, B_EVAL, module.input_size)).astype(np.float32)
        else:
            x, _ = running_sum_batch(rng, T_EVAL, B_EVAL)
        with torch.inference_mode():
            y, state = module(torch.from_numpy(x))
            y64, state64 = copy.deepcopy(module).double()(torch.from_numpy(x).double())
        lstm = isinstance(module, nn.LSTM)
        mine = [y, *(state if lstm else (state,))]
        theirs64 = [y64, *(state64 if lstm else (state64,))]
        cfg = ref.Config(
            module.mode,
            module.input_size,
            module.hidden_size,
            module.num_layers,
            module.bias,
            module.batch_first,
            module.bidirectional,
            getattr(module, "proj_size", 0),
        )
        sd = {k: v.detach().double().numpy() for k, v in module.state_dict().items()}
        truth_y, truth_state = ref.rnn_forward(cfg, sd, x.astype(np.float64))
        truth = [truth_y, *(truth_state if lstm else (truth_state,))]
        # The two float64 evaluations agree (both are float64 roundings of the same model).
        for t_np, t_torch in zip(truth, theirs64):
            assert np.max(np.abs(t_np - t_torch.numpy())) <= 1e-9 * max(1.0, np.abs(t_np).max())
        _CACHE[name] = (module, x, [a.numpy() for a in mine], truth)
    return _CACHE[name]


def _largest_state(truth) -> float:
    return float(max(np.abs(t).max() for t in truth))


def sequence_errors(results, truth) -> list:
    """Per tensor (output (T, B, ·), then states (L·D, B, ·)): max abs error per sequence."""
    return [
        np.abs(r.astype(np.float64) - t).max(axis=tuple(i for i in range(t.ndim) if i != 1))
        for r, t in zip(results, truth)
    ]


@pytest.mark.parametrize("name", MODELS)
def test_as_accurate_as_torch(isa, name):
    module, x, torch_results, truth = case(name)
    model = fastrnn.from_torch(module)
    y, state = model(x)
    mine = [y, *(state if isinstance(state, tuple) else (state,))]
    fast_err = sequence_errors(mine, truth)
    torch_err = sequence_errors(torch_results, truth)
    names = ["output", "h_n", "c_n"]
    for n, f, t in zip(names, fast_err, torch_err):
        assert np.isfinite(f).all(), f"{name} {n}: fastrnn not finite"
        within = f <= np.maximum(RATIO * t, FLOOR)
        assert 2 * within.sum() >= within.size, (
            f"{name} [{isa}] {n}: fastrnn's error vs float64 within {RATIO:g}x torch's on "
            f"{within.sum()} of {within.size} sequences: fastrnn {f}, torch {t}"
        )
    ratio = max(np.median(f) / max(np.median(t), 1e-300) for f, t in zip(fast_err, torch_err))
    TRAINED_RATIOS[(name, isa)] = (
        ratio,
        max(float(f.max()) for f in fast_err),
        max(float(t.max()) for t in torch_err),
        _largest_state(truth),
    )


@pytest.mark.parametrize("name", ["lstm-L2", "lstm-proj-L2", "heavy-lstm-L2"])
def test_trained_models_amplify_rounding(name):
    """These models are the case the contract is for: their cell states grow large, and
    fastrnn and torch fp32 end further apart than the 1e-5 of default-init weights."""
    module, x, torch_results, truth = case(name)
    y, state = fastrnn.from_torch(module)(x)
    mine = [y, *(state if isinstance(state, tuple) else (state,))]
    apart = max(float(np.max(np.abs(a - b))) for a, b in zip(mine, torch_results))
    assert _largest_state(truth) > 20 and apart > 1e-5, (apart, _largest_state(truth))


@pytest.mark.parametrize("name", ["lstm-L2", "gru-L3", "heavy-lstm-L2", "heavy-gru-L2", "rnn-relu"])
def test_verify_passes_on_trained_models(name):
    module, x, _, _ = case(name)
    report = fastrnn.verify(module, x[:300])
    assert report.ok, str(report)


@pytest.mark.parametrize("name", ["lstm-L2", "heavy-gru-L2"])
def test_verify_fails_a_planted_error(name):
    """One recurrent weight off by a relative 1e-2: fastrnn's error against float64 grows far
    beyond torch's, and verify says so, naming the tensor. (The same model, unchanged,
    passes: test_verify_passes_on_trained_models.)"""
    module, x, _, _ = case(name)
    planted = fastrnn.from_torch(module)
    sd = planted.state_dict()
    w = sd["weight_hh_l0"]
    i = np.unravel_index(np.argmax(np.abs(w)), w.shape)
    w[i] *= 1 + 1e-2
    planted.load_state_dict(sd)
    report = fastrnn.verify(module, x[:300], model=planted)
    assert not report.ok, str(report)
    assert "less accurate than torch" in str(report) and "<- FAIL" in str(report)
