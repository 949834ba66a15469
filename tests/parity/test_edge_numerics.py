"""Edge numerics against torch, on every ISA: NaN and ±inf in inputs, weights and initial
states propagate exactly where torch's do; ±1e30 inputs saturate like torch; subnormal inputs
and weights give torch's results (and are not flushed to zero); T = 0 and B = 0 behave like
torch (B = 0: empty outputs; T = 0: torch raises, fastrnn raises a clear ValueError).

The comparison (conftest.assert_results): NaN must sit exactly where torch's NaN are, an
infinity exactly where torch's infinity of the same sign is, and every finite value within
the sequence tiers' 1e-5 · max(1, |expected|) (tests/README.md). Sign of zero is not compared
(tanh(±0) is tested bit-exactly in test_activations.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from support.common import assert_results

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

TOL = 1e-5
T, B, I, H = 5, 3, 4, 6
SUBNORMAL = 1e-40  # < FLT_MIN = 1.18e-38: a float32 subnormal

MODELS = {
    "lstm": lambda: torch.nn.LSTM(I, H),
    "lstm-proj-bi-2": lambda: torch.nn.LSTM(I, H, num_layers=2, proj_size=3, bidirectional=True),
    "gru": lambda: torch.nn.GRU(I, H),
    "gru-bi-2": lambda: torch.nn.GRU(I, H, num_layers=2, bidirectional=True),
    "rnn-tanh": lambda: torch.nn.RNN(I, H),
    "rnn-relu-2": lambda: torch.nn.RNN(I, H, num_layers=2, nonlinearity="relu"),
}
VALUES = {
    "nan": np.nan,
    "+inf": np.inf,
    "-inf": -np.inf,
    "+1e30": 1e30,
    "-1e30": -1e30,
    "subnormal": SUBNORMAL,
    "-subnormal": -SUBNORMAL,
}


def torch_model(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return MODELS[name]().eval()


# torch's results by case label: each case runs on every ISA, torch only once. (torch is
# slow on NaN and inf — up to 0.2 s for a 5-step call — so this saves most of the time.)
_TORCH_RESULTS: dict[str, tuple] = {}


def run_both(module, x: np.ndarray, state=None, lengths=None, label=""):
    """(fastrnn result, torch result) as numpy; torch runs lengths as a PackedSequence.
    With a label, torch's result is computed once per label (cases are deterministic)."""
    model = fastrnn.from_torch(module)
    got = model(x, state, lengths=lengths)
    if label and label in _TORCH_RESULTS:
        return got, _TORCH_RESULTS[label]
    want = torch_forward(module, x, state, lengths)
    if label:
        _TORCH_RESULTS[label] = want
    return got, want


def torch_forward(module, x, state=None, lengths=None):
    xt = torch.from_numpy(x)
    st = None
    if state is not None:
        st = (
            tuple(map(torch.from_numpy, state))
            if isinstance(state, tuple)
            else torch.from_numpy(state)
        )
    with torch.no_grad():
        if lengths is None:
            out, h = module(xt, st)
        else:
            packed = pack_padded_sequence(xt, torch.as_tensor(lengths), enforce_sorted=False)
            out, h = module(packed, st)
            out, _ = pad_packed_sequence(out, total_length=x.shape[0])
    return (out.numpy(), tuple(s.numpy() for s in h) if isinstance(h, tuple) else h.numpy())


def random_state(module, rng, batch=B):
    D = 2 if module.bidirectional else 1
    LD = module.num_layers * D
    h_out = getattr(module, "proj_size", 0) or module.hidden_size
    h = rng.standard_normal((LD, batch, h_out)).astype(np.float32)
    if isinstance(module, torch.nn.LSTM):
        return h, rng.standard_normal((LD, batch, module.hidden_size)).astype(np.float32)
    return h


def scale_of(name: str, v: float) -> float:
    """The size of the terms a ReLU RNN sums when a value of size |v| ~ 1e30 goes in.

    ReLU never saturates: it is positively homogeneous, so ±1e30 anywhere gives outputs of
    that size made of float32 dot products that cancel. A float32 dot product's error is
    relative to Σ|w·x| (~1e30 here), not to its result (measured: 1e-5 relative at a result
    of 9e25, 4e-10 of the terms' size). Such results are compared after dividing by the
    terms' size; the tolerance stays the tiers' 1e-5. Bounded cells saturate and need none."""
    return 1e30 if "relu" in name and np.isfinite(v) and abs(v) == 1e30 else 1.0


def scaled(result, s, reference):
    """result / s; with s = "auto", each array divided by its reference's largest finite
    magnitude when that is above 1e20 (only huge inputs make such values; bounded arrays
    stay unscaled and strictly compared)."""
    flat_ref = [a for r in reference for a in (r if isinstance(r, tuple) else (r,))]
    if s == "auto":
        sizes = [max(1.0, float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))) for a in flat_ref]
        sizes = [v if v > 1e20 else 1.0 for v in sizes]
    else:
        sizes = [s] * len(flat_ref)
    it = iter(sizes)
    return tuple(
        tuple(a / next(it) for a in r) if isinstance(r, tuple) else r / next(it) for r in result
    )


def check(module, x, state=None, lengths=None, label="", isa="", scale=1.0):
    got, want = run_both(module, x, state, lengths, label)
    assert_results(
        scaled(got, scale, want),
        scaled(want, scale, want),
        TOL,
        label=label,
        suite="edge",
        isa=isa,
    )
    return got, want


# --- special values in x, weights and states -------------------------------------------------


@pytest.mark.parametrize("value", list(VALUES), ids=list(VALUES))
@pytest.mark.parametrize("name", list(MODELS), ids=list(MODELS))
def test_special_value_in_x(name, value, isa):
    """One element, one whole time step, and the whole input set to the value."""
    v = VALUES[value]
    rng = np.random.default_rng(0)
    module = torch_model(name)
    for where in ("one", "step", "all"):
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        if where == "one":
            x[1, 0, 2] = v
        elif where == "step":
            x[2, 1] = v
        else:
            x[...] = v
        s = scale_of(name, v)
        check(module, x, label=f"{name} x[{where}]={value}", isa=isa, scale=s)
        # with a random initial state as well
        check(
            module,
            x,
            random_state(module, rng),
            label=f"{name} x[{where}]={value} +h0",
            isa=isa,
            scale=s,
        )


@pytest.mark.parametrize("value", list(VALUES), ids=list(VALUES))
@pytest.mark.parametrize("name", list(MODELS), ids=list(MODELS))
def test_special_value_in_weights(name, value, isa):
    """One element of each weight tensor in turn, and the whole tensor, set to the value:
    every tensor of the first layer's forward direction and of the last layer's last
    direction (the others play the same roles; torch is slow on NaN, see _TORCH_RESULTS)."""
    v = VALUES[value]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    module = torch_model(name)
    last = f"_l{module.num_layers - 1}" + ("_reverse" if module.bidirectional else "")
    keys = [k for k in module.state_dict() if k.endswith(("_l0", last))]
    for key in keys:
        for where in ("one", "all"):
            module = torch_model(name)
            with torch.no_grad():
                p = getattr(module, key)
                if where == "one":
                    p.view(-1)[p.numel() // 2] = v
                else:
                    p.fill_(v)
            check(
                module, x, label=f"{name} {key}[{where}]={value}", isa=isa, scale=scale_of(name, v)
            )


@pytest.mark.parametrize("value", list(VALUES), ids=list(VALUES))
@pytest.mark.parametrize("name", list(MODELS), ids=list(MODELS))
def test_special_value_in_initial_state(name, value, isa):
    v = VALUES[value]
    rng = np.random.default_rng(2)
    module = torch_model(name)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    n_parts = 2 if isinstance(module, torch.nn.LSTM) else 1
    for part in range(n_parts):
        for where in ("one", "all"):
            state = random_state(module, rng)
            parts = list(state) if n_parts == 2 else [state]
            if where == "one":
                parts[part][-1, 1, 0] = v
            else:
                parts[part][...] = v
            state = tuple(parts) if n_parts == 2 else parts[0]
            check(
                module,
                x,
                state,
                label=f"{name} state[{part}][{where}]={value}",
                isa=isa,
                scale=scale_of(name, v),
            )


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
def test_special_values_in_cells(mode, isa):
    cls = {"LSTM": torch.nn.LSTMCell, "GRU": torch.nn.GRUCell}.get(mode, torch.nn.RNNCell)
    kw = (
        {"nonlinearity": "relu" if mode == "RNN_RELU" else "tanh"}
        if cls is torch.nn.RNNCell
        else {}
    )
    rng = np.random.default_rng(3)
    for value, v in VALUES.items():
        torch.manual_seed(0)
        module = cls(I, H, **kw)
        with torch.no_grad():
            module.weight_hh.view(-1)[7] = v
        x = rng.standard_normal((B, I)).astype(np.float32)
        x[0, 1] = v
        h = rng.standard_normal((B, H)).astype(np.float32)
        h[2, 3] = v
        state = (h, rng.standard_normal((B, H)).astype(np.float32)) if mode == "LSTM" else h
        got = fastrnn.from_torch(module)(x, state)
        with torch.no_grad():
            st = tuple(map(torch.from_numpy, state)) if mode == "LSTM" else torch.from_numpy(state)
            want = module(torch.from_numpy(x), st)
        want = tuple(w.numpy() for w in want) if mode == "LSTM" else want.numpy()
        assert_results(got, want, TOL, label=f"{mode}Cell {value}", suite="edge", isa=isa)


@pytest.mark.parametrize("name", ["lstm", "gru-bi-2", "rnn-relu-2", "lstm-proj-bi-2"])
def test_nan_and_inf_in_padding_do_not_leak(name, isa):
    """Steps past a sequence's length hold NaN and ±inf: torch (PackedSequence) never sees
    them, and neither may fastrnn — outputs there are 0, states come from the last valid step,
    and the backward direction starts at each sequence's own last step."""
    rng = np.random.default_rng(4)
    module = torch_model(name)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    lengths = np.array([T, 2, 3])
    x[2:, 1] = np.nan
    x[3:, 2, 0] = np.inf
    x[4, 2, 1] = -np.inf
    got, _ = check(module, x, lengths=lengths, label=f"{name} padding", isa=isa)
    for a in (got[0],) + (got[1] if isinstance(got[1], tuple) else (got[1],)):
        assert np.isfinite(a).all()


# --- saturation and subnormals -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS), ids=list(MODELS))
def test_huge_inputs_saturate_like_torch(name, isa):
    """Inputs of ±1e30 (random signs) drive every gate into saturation: sigmoid → 0 or 1,
    tanh → ±1 exactly as torch (ReLU RNNs: huge but finite, or inf, where torch's are)."""
    rng = np.random.default_rng(5)
    module = torch_model(name)
    x = (np.sign(rng.standard_normal((T, B, I))) * 1e30).astype(np.float32)
    got, _ = check(module, x, label=f"{name} ±1e30", isa=isa, scale=scale_of(name, 1e30))
    if "relu" not in name and "proj" not in name:
        # Saturated, not overflowed: outputs of bounded cells stay finite and in [-1, 1].
        assert np.isfinite(got[0]).all() and (np.abs(got[0]) <= 1).all()


@pytest.mark.parametrize("name", list(MODELS), ids=list(MODELS))
def test_subnormal_inputs_and_weights(name, isa):
    """Inputs, states and whole weight tensors scaled into the subnormal range."""
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((T, B, I)) * SUBNORMAL).astype(np.float32)
    assert (np.abs(x[x != 0]) < np.finfo(np.float32).tiny).all()
    module = torch_model(name)
    check(module, x, label=f"{name} subnormal x", isa=isa)
    check(module, x, random_state(module, rng), label=f"{name} subnormal x +h0", isa=isa)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(SUBNORMAL)
    check(
        module,
        rng.standard_normal((T, B, I)).astype(np.float32),
        label=f"{name} subnormal w",
        isa=isa,
    )
    check(module, x, label=f"{name} subnormal x and w", isa=isa)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_subnormals_are_not_flushed(nonlinearity, isa):
    """h = act(W x) with W = 0.5 and subnormal x stays subnormal — as in torch, which does not
    flush denormals — within a few subnormal spacings (2^-149), rather than becoming 0."""
    torch.manual_seed(0)
    module = torch.nn.RNN(2, 3, bias=False, nonlinearity=nonlinearity)
    with torch.no_grad():
        module.weight_ih_l0.fill_(0.5)
        module.weight_hh_l0.zero_()
    x = np.array([[[1e-40, 2e-40]], [[3e-41, 5e-39]], [[-1e-45, 0.0]]], np.float32)
    got, want = run_both(module, x)
    spacing = 2.0**-149
    for g, w in ((got[0], want[0]), (got[1], want[1])):
        assert ((g != 0) == (w != 0)).all(), (g, w)
        assert np.abs(g.astype(np.float64) - w).max() <= 4 * spacing, (g, w)
    assert (got[0][:2] != 0).all() if nonlinearity == "tanh" else True


# --- empty sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS), ids=list(MODELS))
@pytest.mark.parametrize("batch_first", [False, True], ids=["tbi", "bti"])
def test_empty_batch_like_torch(name, batch_first):
    """B = 0: torch returns empty outputs and states of the right shapes; so does fastrnn,
    with and without an (empty) initial state."""
    torch.manual_seed(0)
    module = MODELS[name]()
    module.batch_first = batch_first
    module.eval()
    model = fastrnn.from_torch(module)
    x = np.zeros((0, T, I) if batch_first else (T, 0, I), np.float32)
    rng = np.random.default_rng(7)
    for state in (None, random_state(module, rng, batch=0)):
        got, want = run_both(module, x, state)
        assert_results(got, want, 0.0, label=f"{name} B=0")
        for g in (got[0],) + (got[1] if isinstance(got[1], tuple) else (got[1],)):
            assert g.dtype == np.float32 and g.size == 0
    # lengths of an empty batch: an empty array is accepted
    assert model(x, lengths=np.zeros(0, np.int64))[0].shape == (
        x.shape[0],
        x.shape[1],
        model.num_directions * (model.proj_size or H),
    )


@pytest.mark.parametrize("cls", ["LSTMCell", "GRUCell", "RNNCell"])
def test_empty_batch_cells_like_torch(cls):
    torch.manual_seed(0)
    module = getattr(torch.nn, cls)(I, H)
    got = fastrnn.from_torch(module)(np.zeros((0, I), np.float32))
    with torch.no_grad():
        want = module(torch.zeros(0, I))
    want = tuple(w.numpy() for w in want) if isinstance(want, tuple) else want.numpy()
    assert_results(got, want, 0.0, label=f"{cls} B=0")


@pytest.mark.parametrize("name", list(MODELS), ids=list(MODELS))
@pytest.mark.parametrize(
    "shape", [(0, B, I), (0, I), (0, 0, I)], ids=["T0", "T0-unbatched", "T0-B0"]
)
def test_no_time_steps_raises_like_torch(name, shape):
    """torch raises for T = 0 ("Expected sequence length to be larger than 0"); fastrnn raises
    a ValueError that says so."""
    module = torch_model(name)
    with pytest.raises(RuntimeError, match="sequence length"), torch.no_grad():
        module(torch.zeros(shape))
    model = fastrnn.from_torch(module)
    with pytest.raises(ValueError, match=r"x must hold at least one time step \(T >= 1\)"):
        model(np.zeros(shape, np.float32))


def test_stream_with_special_values_matches_whole_call(isa):
    """A stream fed NaN / inf steps gives the whole call's results bit for bit."""
    rng = np.random.default_rng(8)
    for make in (
        lambda: fastrnn.LSTM(I, H, num_layers=2, seed=0),
        lambda: fastrnn.GRU(I, H, seed=1),
        lambda: fastrnn.RNN(I, H, nonlinearity="relu", seed=2),
    ):
        model = make()
        x = rng.standard_normal((6, 2, I)).astype(np.float32)
        x[1, 0, 0], x[3, 1, 2], x[4, 1, 3] = np.nan, np.inf, -1e30
        y, state = model(x)
        stream = model.stream(batch=2)
        ys = np.stack([stream.step(x_t) for x_t in x])
        assert np.array_equal(ys, y, equal_nan=True)
        want = state if isinstance(state, tuple) else (state,)
        got = stream.state if isinstance(stream.state, tuple) else (stream.state,)
        for g, w in zip(got, want):
            assert np.array_equal(g, w, equal_nan=True)


@pytest.mark.parametrize("mode", ["LSTM", "LSTM-proj", "GRU", "RNN_TANH", "RNN_RELU"])
def test_special_values_at_vector_sizes(mode, isa):
    """The cases above use H = 6, B = 3: inside one SIMD tail. Here H = 33 (two 16-lane
    panels and a tail), B = 7 (a 6-row block and a single row), I = 17, 2 layers: 24 random
    placements of 1–3 special values each in x, weights, h_0 and c_0."""
    rng = np.random.default_rng(["LSTM", "LSTM-proj", "GRU", "RNN_TANH", "RNN_RELU"].index(mode))
    # Not values near FLT_MAX (3.4e38): sums of such terms overflow or not depending on the
    # order of summation and on FMA (an fma can bring an overflowing product back into
    # range), so inf − inf = NaN appears in torch's result or fastrnn's, legitimately apart.
    # Measured: 3 of 2500 random cases with ±3e38 differ in NaN positions, none without.
    specials = [np.nan, np.inf, -np.inf, 1e30, -1e30, SUBNORMAL, -SUBNORMAL]
    for k in range(24):
        torch.manual_seed(k)
        if mode.startswith("LSTM"):
            module = torch.nn.LSTM(17, 33, 2, proj_size=5 if mode == "LSTM-proj" else 0)
        elif mode == "GRU":
            module = torch.nn.GRU(17, 33, 2)
        else:
            module = torch.nn.RNN(17, 33, 2, nonlinearity=mode[4:].lower())
        module.eval()
        x = rng.standard_normal((4, 7, 17)).astype(np.float32)
        state = random_state(module, rng, batch=7)
        parts = list(state) if isinstance(state, tuple) else [state]
        params = list(module.parameters())
        for _ in range(int(rng.integers(1, 4))):
            v = specials[int(rng.integers(len(specials)))]
            where = int(rng.integers(3))
            if where == 0:
                x[tuple(int(rng.integers(s)) for s in x.shape)] = v
            elif where == 1:
                p = parts[int(rng.integers(len(parts)))]
                p[tuple(int(rng.integers(s)) for s in p.shape)] = v
            else:
                p = params[int(rng.integers(len(params)))]
                with torch.no_grad():
                    p.view(-1)[int(rng.integers(p.numel()))] = float(v)
        state = tuple(parts) if isinstance(state, tuple) else parts[0]
        # Huge finite values make unbounded outputs (ReLU, projections, c) sums of cancelling
        # huge terms: such arrays are compared relative to their size (see scale_of).
        check(module, x, state, label=f"{mode} vector sizes #{k}", isa=isa, scale="auto")
