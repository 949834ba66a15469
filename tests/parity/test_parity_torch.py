"""Tier 2–3: fastrnn against PyTorch fp32, on every instruction set this CPU has.

Tolerance: |Δ| ≤ 1e-5 · max(1, |expected|) on the output and on every final state, element by
element: DESIGN.md §5's 1e-5 absolute for values of size ≤ 1 (every tanh/sigmoid-bounded
output), the same 1e-5 relative above (ReLU RNN outputs and LSTM c, which can reach 10–40 at
I = 300). Both sides compute in float32 with different summation orders; an absolute 1e-5 at
|y| ≈ 20 would be ~5 float32 ulps, below what a 300-term float32 dot product can promise
(numpy's own float32 matmul misses float64 by 1.2e-5 there). The recurrence keeps rounding
from growing at torch's default weight scale, so 1e-5 leaves room for T = 1000 but not for a
wrong gate, bias or step. The run prints the largest error per ISA, both scaled and plain abs.

Weights are at torch's default initialisation (U(-1/√H, 1/√H), torch.manual_seed per case),
inputs and initial states randn. The whole-sequence grid is a fixed-seed sample (cases.py)
over every option, plus the long sequences (T = 1000) in LONG. Torch runs once per case
(cached); fastrnn once per case and ISA.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import fastrnn
from support import reference
from support.cases import MODES, Case, coverage, expected_coverage, sample_cases, unsorted_lengths
from support.common import assert_close, assert_results, caches_pinned

ATOL = 1e-5

# torch's own notice that it runs LSTM projections without oneDNN: not ours to act on.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported:UserWarning")

GRID = sample_cases(per_mode=30, seed=1)
LONG = [
    Case(
        "LSTM",
        hidden=100,
        input=64,
        steps=1000,
        batch=4,
        layers=2,
        proj=0,
        given_state=True,
        lengths=True,
        seed=9001,
    ),
    Case("LSTM", hidden=257, input=5, steps=1000, batch=1, proj=37, batch_first=True, seed=9002),
    Case(
        "GRU",
        hidden=64,
        input=300,
        steps=1000,
        batch=3,
        bidirectional=True,
        lengths=True,
        seed=9003,
    ),
    Case(
        "RNN_TANH",
        hidden=17,
        input=1,
        steps=1000,
        batch=1,
        unbatched=True,
        given_state=True,
        seed=9004,
    ),
    Case(
        "RNN_RELU",
        hidden=100,
        input=5,
        steps=1000,
        batch=2,
        bias=False,
        bidirectional=True,
        seed=9005,
    ),
]


def torch_module(case: Case) -> nn.Module:
    torch.manual_seed(case.seed)
    kw = {
        "num_layers": case.layers,
        "bias": case.bias,
        "batch_first": case.batch_first,
        "bidirectional": case.bidirectional,
    }
    if case.mode == "LSTM":
        return nn.LSTM(case.input, case.hidden, proj_size=case.proj, **kw).eval()
    if case.mode == "GRU":
        return nn.GRU(case.input, case.hidden, **kw).eval()
    nonlinearity = "tanh" if case.mode == "RNN_TANH" else "relu"
    return nn.RNN(case.input, case.hidden, nonlinearity=nonlinearity, **kw).eval()


def run_torch(module: nn.Module, case: Case, x, state, lengths, dtype=torch.float32):
    """torch's answer as numpy arrays; lengths go through a PackedSequence (unsorted)."""
    module = module.to(dtype)
    xt = torch.from_numpy(x).to(dtype)
    if state is None:
        st = None
    elif isinstance(state, tuple):
        st = tuple(torch.from_numpy(s).to(dtype) for s in state)
    else:
        st = torch.from_numpy(state).to(dtype)
    with torch.no_grad():
        if lengths is None:
            out, hn = module(xt, st)
        else:
            packed = pack_padded_sequence(
                xt, torch.from_numpy(lengths), batch_first=case.batch_first, enforce_sorted=False
            )
            out, hn = module(packed, st)
            out, _ = pad_packed_sequence(out, batch_first=case.batch_first, total_length=case.steps)

    def to_np(t):
        return t.numpy()

    return to_np(out), (tuple(map(to_np, hn)) if isinstance(hn, tuple) else to_np(hn))


@functools.cache
def torch_answer(case: Case):
    """(fastrnn model built by from_torch, inputs, torch's float32 answer), once per case."""
    module = torch_module(case)
    model = fastrnn.from_torch(module)
    x, state, lengths = case.inputs()
    return model, (x, state, lengths), run_torch(module, case, x, state, lengths)


# --- the grid ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_grid_covers_every_option(mode):
    """The sample must hold every value of every option for every cell type (a change to the
    seed, the sizes or the cost cap must not silently drop one)."""
    got = coverage([c for c in GRID if c.mode == mode])
    for option, values in expected_coverage().items():
        if option == "proj" and mode != "LSTM":
            continue
        assert values <= got[option], f"{mode}: {option} misses {values - got[option]}"
    assert any(c.steps == 1000 for c in LONG)


@pytest.mark.parametrize("case", GRID + LONG, ids=lambda c: c.id)
def test_sequence_matches_torch(case, isa):
    model, (x, state, lengths), expected = torch_answer(case)
    got = model(x, state, lengths=lengths)
    assert_results(
        got, expected, ATOL, case.result_names, f"{case.id} [{isa}]", suite="torch", isa=isa
    )


# --- cells ---------------------------------------------------------------------------------

CELL_CASES = [
    # (cell, I, H, bias, batch (None: unbatched), given state)
    ("LSTMCell", 1, 1, True, 1, False),
    ("LSTMCell", 64, 17, False, 5, True),
    ("LSTMCell", 300, 257, True, None, True),
    ("LSTMCell", 5, 100, True, 64, True),
    ("GRUCell", 5, 3, True, None, False),
    ("GRUCell", 300, 100, False, 16, True),
    ("GRUCell", 1, 257, True, 2, True),
    ("GRUCell", 64, 1, True, 64, False),
    ("RNNCell-tanh", 64, 257, True, 3, True),
    ("RNNCell-tanh", 1, 17, False, None, True),
    ("RNNCell-relu", 300, 3, True, 16, True),
    ("RNNCell-relu", 5, 100, False, None, False),
    ("RNNCell-relu", 64, 1, True, 1, True),
]


def _cell_id(c):
    cell, I, H, bias, B, given = c
    return (
        f"{cell}-I{I}-H{H}-{'bias' if bias else 'nobias'}-"
        f"{'unbatched' if B is None else f'B{B}'}{'-h0' if given else ''}"
    )


def cell_module(cell: str, I: int, H: int, bias: bool, seed: int):
    torch.manual_seed(seed)
    if cell == "LSTMCell":
        return nn.LSTMCell(I, H, bias)
    if cell == "GRUCell":
        return nn.GRUCell(I, H, bias)
    return nn.RNNCell(I, H, bias, nonlinearity=cell.split("-")[1])


@pytest.mark.parametrize("spec", CELL_CASES, ids=_cell_id)
def test_cell_matches_torch(spec, isa):
    cell, I, H, bias, B, given = spec
    seed = CELL_CASES.index(spec)
    module = cell_module(cell, I, H, bias, seed)
    model = fastrnn.from_torch(module)
    assert type(model).__name__ == cell.split("-")[0]
    rng = np.random.default_rng(seed)
    lead = () if B is None else (B,)
    x = rng.standard_normal(lead + (I,), dtype=np.float32)
    state = None
    if given:
        h = rng.standard_normal(lead + (H,), dtype=np.float32)
        state = (h, rng.standard_normal(lead + (H,), dtype=np.float32)) if cell == "LSTMCell" else h
    with torch.no_grad():
        xt = torch.from_numpy(x)
        if state is None:
            want = module(xt)
        elif cell == "LSTMCell":
            want = module(xt, tuple(map(torch.from_numpy, state)))
        else:
            want = module(xt, torch.from_numpy(state))
    want = tuple(t.numpy() for t in want) if isinstance(want, tuple) else want.numpy()
    got = model(x, state)
    cell_names = ["h'", "c'"] if cell == "LSTMCell" else ["h'"]
    assert_results(got, want, ATOL, cell_names, f"{_cell_id(spec)} [{isa}]", suite="torch", isa=isa)
    # The cell is a T = 1 step of the layer: float64 reference as a third opinion.
    sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    mode = {"LSTMCell": "LSTM", "GRUCell": "GRU"}.get(cell, "RNN_" + cell.split("-")[-1].upper())
    assert_results(got, reference.cell_forward(mode, sd, x, state), ATOL, cell_names, "reference")


# --- the reference itself ------------------------------------------------------------------

REFERENCE_CHECKS = [c for c in GRID if c.steps <= 33][::3]


@pytest.mark.parametrize("case", REFERENCE_CHECKS, ids=lambda c: c.id)
def test_reference_matches_torch_float64(case):
    """The NumPy reference (test_reference.py's truth) is torch's semantics: against torch in
    float64 both sides agree to rounding (1e-10), far below any kernel error."""
    module = torch_module(case)
    sd = {k: v.numpy().astype(np.float64) for k, v in module.state_dict().items()}
    x, state, lengths = case.inputs()
    want = run_torch(module, case, x, state, lengths, dtype=torch.float64)
    got = reference.rnn_forward(case.config, sd, x, state, lengths)
    assert_results(got, want, 1e-10, case.result_names, case.id)


def test_reference_cells_match_torch_float64():
    for spec in CELL_CASES:
        cell, I, H, bias, B, _given = spec
        module = cell_module(cell, I, H, bias, 0).double()
        rng = np.random.default_rng(1)
        lead = () if B is None else (B,)
        x = rng.standard_normal(lead + (I,))
        h = rng.standard_normal(lead + (H,))
        state = (h, rng.standard_normal(lead + (H,))) if cell == "LSTMCell" else h
        with torch.no_grad():
            st = tuple(map(torch.from_numpy, state)) if cell == "LSTMCell" else torch.from_numpy(h)
            want = module(torch.from_numpy(x), st)
        want = tuple(t.numpy() for t in want) if isinstance(want, tuple) else want.numpy()
        sd = {k: v.numpy() for k, v in module.state_dict().items()}
        mode = {"LSTMCell": "LSTM", "GRUCell": "GRU"}.get(
            cell, "RNN_" + cell.split("-")[-1].upper()
        )
        assert_results(
            reference.cell_forward(mode, sd, x, state), want, 1e-10, None, _cell_id(spec)
        )


# --- how weights arrive --------------------------------------------------------------------


def test_load_state_dict_of_torch_tensors_equals_from_torch(isa):
    """load_state_dict takes torch tensors as well as numpy arrays: same weights, same
    results, bit for bit."""
    case = Case("GRU", hidden=17, input=5, steps=7, batch=3, layers=2, bidirectional=True, seed=7)
    module = torch_module(case)
    a = fastrnn.from_torch(module)
    b = fastrnn.GRU(5, 17, num_layers=2, bidirectional=True, seed=123)
    b.load_state_dict(module.state_dict())
    c = fastrnn.GRU(5, 17, num_layers=2, bidirectional=True, seed=123)
    c.load_state_dict({k: v.numpy() for k, v in module.state_dict().items()})
    x, _, _ = case.inputs()
    ra, rb, rc = a(x), b(x), c(x)
    for u, v, w in zip(ra, rb, rc):
        assert np.array_equal(u, v) and np.array_equal(u, w)


def test_from_torch_copies_configuration():
    module = nn.LSTM(
        5, 17, num_layers=2, bias=False, batch_first=True, bidirectional=True, proj_size=4
    )
    model = fastrnn.from_torch(module)
    assert (
        model.input_size,
        model.hidden_size,
        model.num_layers,
        model.bias,
        model.batch_first,
        model.bidirectional,
        model.proj_size,
    ) == (5, 17, 2, False, True, True, 4)
    sd = model.state_dict()
    assert list(sd) == list(module.state_dict())
    for k, v in module.state_dict().items():
        assert sd[k].dtype == np.float32 and np.array_equal(sd[k], v.numpy())
    relu = fastrnn.from_torch(nn.RNN(3, 4, nonlinearity="relu"))
    assert relu.nonlinearity == "relu"


def test_lengths_all_full_equals_no_lengths(isa):
    """lengths all equal to T is the plain (unpacked) call, bit for bit."""
    case = Case("LSTM", hidden=17, input=5, steps=9, batch=4, bidirectional=True, seed=11)
    model, (x, _, _), _ = torch_answer(case)
    full = model(x, lengths=np.full(4, 9))
    plain = model(x)
    for u, v in zip(_flat(full), _flat(plain)):
        assert np.array_equal(u, v)


@pytest.mark.parametrize("dtype", ["float32", "bf16", "int8"])
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("order", ["sorted", "unsorted"])
@pytest.mark.parametrize(("hidden", "batch", "steps"), [(128, 11, 40), (16, 600, 12)])
def test_lengths_rows_are_the_unpacked_rows(isa, cell, order, hidden, batch, steps, dtype):
    """Rows past their end get no input projection (each step's GEMM covers its rows from
    the first active to the last): before its end every row is the bits of the call without
    lengths, after it zero, and its final state is its last output; over several G_x chunks,
    on 1 thread and on 2 splitting the hidden units (H = 128) or the batch (H = 16); fp32 and
    reduced weights (whose GEMMs pick their kernel by the row count: the same bits)."""
    rng = np.random.default_rng(hidden + batch)
    lengths = unsorted_lengths(rng, batch, steps)
    if order == "sorted":  # longest first, as a PackedSequence's rows
        lengths = np.sort(lengths)[::-1].copy()
    model = getattr(fastrnn, cell)(32, hidden, num_layers=2, seed=5)
    if dtype != "float32":
        model = fastrnn.quantize(model, dtype)
    x = rng.standard_normal((steps, batch, 32)).astype(np.float32)
    with caches_pinned(l1d=32 << 10, l2=256 << 10, l3=1 << 20, l3_near=True):
        for threads in (1, 2):
            plan = model.plan(batch, steps, num_threads=threads)
            assert plan["chunk"] < steps
            if threads == 2 and fastrnn.cpu_info()["threads"]["cpus"] >= 2:
                assert plan["split"] == ("panels" if hidden == 128 else "batch")
            y, state = model(x, lengths=lengths, num_threads=threads)
            plain, _ = model(x, num_threads=threads)
            h_n = state[0] if cell == "LSTM" else state
            for b, n in enumerate(lengths):
                assert np.array_equal(y[:n, b], plain[:n, b]), (threads, b, n)
                assert not y[n:, b].any()
                assert np.array_equal(h_n[-1, b], plain[n - 1, b])


def test_lengths_as_list_and_torch_tensor(isa):
    case = Case("GRU", hidden=3, input=5, steps=6, batch=5, seed=12)
    model, (x, _, _), _ = torch_answer(case)
    lengths = unsorted_lengths(np.random.default_rng(0), 5, 6)
    want = _flat(model(x, lengths=lengths))
    for form in (lengths.tolist(), torch.from_numpy(lengths), lengths.astype(np.int32)):
        for u, v in zip(_flat(model(x, lengths=form)), want):
            assert np.array_equal(u, v)


def _flat(result):
    out, st = result
    return [out, *(st if isinstance(st, tuple) else (st,))]


def test_state_as_torch_tensors(isa):
    case = Case("LSTM", hidden=17, input=5, steps=6, batch=2, given_state=True, seed=13)
    model, (x, state, _), expected = torch_answer(case)
    got = model(torch.from_numpy(x), tuple(map(torch.from_numpy, state)))
    assert_results(got, expected, ATOL, case.result_names, case.id)


def test_dropout_is_ignored_at_inference(isa):
    """Inter-layer dropout is a training feature: a module built with dropout gives the
    eval-mode answer."""
    torch.manual_seed(3)
    module = nn.GRU(5, 17, num_layers=3, dropout=0.5).eval()
    model = fastrnn.from_torch(module)
    x = np.random.default_rng(0).standard_normal((7, 2, 5), dtype=np.float32)
    with torch.no_grad():
        out, hn = module(torch.from_numpy(x))
    got_out, got_hn = model(x)
    assert_close(got_out, out.numpy(), ATOL, "output")
    assert_close(got_hn, hn.numpy(), ATOL, "h_n")
