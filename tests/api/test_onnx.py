"""ONNX import (fastrnn.io.onnx) against the format's own runtimes, on every ISA.

- onnxruntime as the oracle on generated single-node graphs: LSTM / GRU / RNN × forward /
  reverse / bidirectional × every combination of clip, input_forget, peepholes,
  linear_before_reset, sequence_lens, initial states and biases present/absent, each with
  every activation set below (all eleven functions, alpha/beta given, defaulted, and
  names in any case), opsets 7, 14, 22; sizes with vector tails (H = 1, 7, 17);
- onnx.reference for layout=1 (onnxruntime refuses it);
- the onnx package's own backend node test cases (built in memory by onnx >= 1.23);
- graphs exported by torch.onnx.export (dynamo=False): multi-layer, bidirectional,
  batch_first, packed sequences, a given h_0, against the torch module itself;
- weights built in the graph (Slice / Concat / Cast / Gather / Split / Reshape / Transpose,
  a Constant, If branches) and recurrent nodes inside an If branch, against onnxruntime;
- every refusal: its message names the node, the attribute or input, expected and actual;
- `fastrnn verify model.onnx` (against onnxruntime) and `fastrnn convert model.onnx`.

Comparisons use the sequence tiers' measure |Δ| / max(1, |expected|) ≤ 1e-5.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import sys
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper

import fastrnn
from fastrnn._config import ACTIVATIONS
from fastrnn.io import onnx as fonnx
from support.common import assert_results

TOL = 1e-5  # the parity bound of every sequence tier (tests/README.md)
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DIRECTIONS = ("forward", "reverse", "bidirectional")
F32 = TensorProto.FLOAT


def check(got, want, tol, **kw) -> float:
    """assert_results over lists of arrays (outputs and states side by side)."""
    return assert_results(tuple(got), tuple(want), tol, **kw)


def session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def ort_run(model, feeds: dict) -> list:
    return session(model).run(None, feeds)


def build(source, **kw):
    """The fastrnn model of an ONNX model (until fastrnn.from_onnx is wired: read + build)."""
    return fastrnn.build(*fonnx.read(source, **kw))


def fastrnn_onnx_outputs(net, feeds: dict, layout: int = 0) -> list:
    """A one-layer fastrnn model run on an ONNX node's inputs, its results in the node's
    output layout: [Y, Y_h(, Y_c)]."""
    x = feeds["X"]
    D, H = net.config.num_directions, net.config.hidden_size
    lstm = net.config.mode == "LSTM"

    def state_in(a):  # layout 1 keeps states batch-major: [B, D, H]
        return None if a is None else (a.transpose(1, 0, 2) if layout else a)

    h0, c0 = state_in(feeds.get("initial_h")), state_in(feeds.get("initial_c"))
    if lstm and (h0 is not None or c0 is not None):
        B = x.shape[1 - layout]
        z = np.zeros((D, B, H), np.float32)
        state = (z if h0 is None else h0, z if c0 is None else c0)
    else:
        state = h0
    y, s = net(x, state, lengths=feeds.get("sequence_lens"))
    states = list(s) if lstm else [s]
    if layout == 0:
        T, B = x.shape[:2]
        Y = y.reshape(T, B, D, H).transpose(0, 2, 1, 3)
        return [Y, *states]
    B, T = x.shape[:2]
    return [y.reshape(B, T, D, H), *(a.transpose(1, 0, 2) for a in states)]


# --- generated single-node graphs --------------------------------------------------------------


def act_attributes(op: str, per_direction: list) -> dict:
    """activations / activation_alpha / activation_beta for per-direction lists of (name[,
    alpha[, beta]]), None meaning "left out". A left-out value followed by a given one is
    written as the operator default (values are consumed in order); trailing ones are left
    out, so the default path is exercised."""
    flat = [f for d in per_direction for f in d]
    names = [f[0] for f in flat]
    out = {"activations": names}
    for which, key in ((0, "activation_alpha"), (1, "activation_beta")):
        vals = []
        for f in flat:
            canonical = fastrnn._config.activation(f[0])[0]
            if ACTIVATIONS[canonical][which] is None:
                continue
            given = f[1 + which] if len(f) > 1 + which else None
            vals.append((ACTIVATIONS[canonical][which] if given is None else given, given))
        while vals and vals[-1][1] is None:
            vals.pop()
        if vals:
            out[key] = [float(v) for v, _ in vals]
    return out


# Activation sets per direction (LSTM: f, g, h; GRU: f, g; RNN: f). Every ONNX function
# appears in each operator; case variants check that names are case-insensitive; (name,)
# or None parameters take the defaults. Gate (f) slots get bounded functions only: an
# unbounded gate (Softplus, Relu) makes c grow double-exponentially, to 1e10 and beyond
# float32 within 6 steps, where onnxruntime's Softplus (log(1 + exp(x)), no guard)
# already gives inf and NaN: a comparison there measures overflow, not the import.
ACTS = {
    "LSTM": [
        None,
        [("sigmoid",), ("TANH",), ("Tanh",)],
        [("HardSigmoid", 0.3, 0.45), ("ScaledTanh", 1.3, 0.7), ("Affine", 0.8, 0.1)],
        [("Sigmoid",), ("LeakyRelu",), ("Softsign",)],
        [("HardSigmoid",), ("Elu", 0.9), ("ThresholdedRelu", 0.2)],
        [("Softsign",), ("Softplus",), ("Tanh",)],
        [("Sigmoid",), ("Relu",), ("Elu",)],
        [("ScaledTanh", 0.5, 1.0), ("Tanh",), ("Relu",)],
    ],
    "GRU": [
        None,
        [("sigmoid",), ("tanh",)],
        [("HardSigmoid", 0.25, 0.4), ("ScaledTanh", 0.9, 1.1)],
        [("HardSigmoid",), ("LeakyRelu",)],
        [("Softsign",), ("Affine", 0.5, -0.2)],
        [("Sigmoid",), ("ThresholdedRelu", 0.3)],
        [("Softsign",), ("Elu", 0.8)],
        [("Sigmoid",), ("Softplus",)],
        [("Sigmoid",), ("Relu",)],
    ],
    "RNN": [
        None,
        [("Relu",)],
        [("Tanh",)],
        [("LeakyRelu", 0.1)],
        [("HardSigmoid", 0.3, 0.4)],
        [("ScaledTanh", 0.8, 1.2)],
        [("Affine", 0.9, 0.05)],
        [("ThresholdedRelu", 0.1)],
        [("Elu",)],
        [("Softsign",)],
        [("Softplus",)],
        [("Sigmoid",)],
    ],
}
DEFAULT_NAMES = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}


def single_node(
    op,
    direction="forward",
    *,
    T=6,
    B=3,
    I=5,
    H=7,
    attrs=None,
    bias=True,
    peepholes=False,
    lengths=False,
    states=False,
    layout=0,
    opset=22,
    seed=0,
    weights_as_inputs=(),
):
    """(ModelProto, feeds) of one recurrent node: W, R (and B, P) initializers, X and the
    chosen optional inputs graph inputs with random values in `feeds`."""
    rng = np.random.default_rng(seed)
    D = 2 if direction == "bidirectional" else 1
    G = GATES[op]

    def rand(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def init(*shape):
        # torch's default initialisation, U(-1/sqrt(H), 1/sqrt(H)): DESIGN.md section 5
        # states fp32 parity <= 1e-5 for weights of this scale. Larger ones (0.5 N(0, 1):
        # a recurrence that grows 2x per step) leave fastrnn and onnxruntime each ~1e-5
        # from float64 after 6 steps, in turn the closer one.
        k = 1 / np.sqrt(H)
        return rng.uniform(-k, k, shape).astype(np.float32)

    tensors = {"W": init(D, G * H, I), "R": init(D, G * H, H)}
    if bias:
        tensors["B"] = init(D, 2 * G * H)
    if peepholes:
        tensors["P"] = init(D, 3 * H)
    x = rand(B, T, I, scale=1.0) if layout else rand(T, B, I, scale=1.0)
    feeds = {"X": x}
    if lengths:
        feeds["sequence_lens"] = rng.integers(1, T + 1, B).astype(np.int32)
    if states:
        shape = (B, D, H) if layout else (D, B, H)
        feeds["initial_h"] = rand(*shape)
        if op == "LSTM":
            feeds["initial_c"] = rand(*shape)
    names = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    if op != "LSTM":
        names = names[:6]
    present = set(tensors) | set(feeds)
    inputs = [n if n in present else "" for n in names]
    while inputs and not inputs[-1]:
        inputs.pop()
    outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    kw = dict(attrs or {})
    if direction != "forward":
        kw["direction"] = direction
    if layout:
        kw["layout"] = layout
    node = helper.make_node(op, inputs, outputs, name=f"{op.lower()}_node", hidden_size=H, **kw)
    graph_inputs = [
        helper.make_tensor_value_info(
            n, TensorProto.INT32 if n == "sequence_lens" else F32, list(feeds[n].shape)
        )
        for n in feeds
    ]
    inits = []
    for n, a in tensors.items():
        if n in weights_as_inputs:
            graph_inputs.append(helper.make_tensor_value_info(n, F32, list(a.shape)))
            feeds[n] = a
        else:
            inits.append(numpy_helper.from_array(a, n))
    graph = helper.make_graph(
        [node],
        "g",
        graph_inputs,
        [helper.make_tensor_value_info(n, F32, None) for n in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model, feeds


def grid_options(op):
    """The binary options of op, each combination once."""
    names = ["clip", "lengths", "states", "bias"]
    if op == "LSTM":
        names += ["input_forget", "peepholes"]
    if op == "GRU":
        names += ["linear_before_reset"]
    for values in itertools.product((False, True), repeat=len(names)):
        yield dict(zip(names, values))


@functools.cache
def grid_cases(op, direction):
    """[(description, ModelProto, feeds, onnxruntime's outputs)] for every activation set x
    every combination of op's binary options (onnxruntime runs once per case, shared by
    the ISAs)."""
    cases = []
    D = 2 if direction == "bidirectional" else 1
    sets = ACTS[op]
    k = 0
    for a, acts in enumerate(sets):
        for options in grid_options(op):
            attrs = {}
            if acts is not None:
                per = [acts] + [sets[(a + 1) % len(sets)] or [(n,) for n in DEFAULT_NAMES[op]]]
                attrs.update(act_attributes(op, per[:D]))
            if options["clip"]:
                attrs["clip"] = 0.7
            if options.get("input_forget"):
                attrs["input_forget"] = 1
            if op == "GRU":
                attrs["linear_before_reset"] = int(options["linear_before_reset"])
            H, B, opset = (1, 7, 17)[k % 3], (1, 3)[k % 2], (7, 14, 22)[k % 3]
            model, feeds = single_node(
                op,
                direction,
                H=H,
                B=B,
                attrs=attrs,
                bias=options["bias"],
                peepholes=options.get("peepholes", False),
                lengths=options["lengths"],
                states=options["states"],
                opset=opset,
                seed=k,
            )
            desc = f"{op} {direction} H={H} B={B} opset={opset} {attrs} {options}"
            cases.append((desc, model, feeds, ort_run(model, feeds)))
            k += 1
    return cases


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_onnxruntime_grid(isa, op, direction):
    """Every attribute combination onnxruntime runs, on this ISA: fastrnn = onnxruntime."""
    failures = []
    cases = grid_cases(op, direction)
    for desc, model, feeds, expected in cases:
        net = build(model)
        try:
            check(
                fastrnn_onnx_outputs(net, feeds),
                expected,
                TOL,
                names=["Y", "Y_h", "Y_c"],
                label=desc,
                suite="onnx grid",
                isa=isa,
            )
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, f"{len(failures)} of {len(cases)} cases differ:\n" + "\n".join(
        failures[:5]
    )


def test_grid_covers_the_variants():
    """The grid really reaches the variants: the configurations it reads (not just the
    graphs it writes) hold every cell variant and every activation function."""
    seen = set()
    functions = set()
    for op in GATES:
        for direction in DIRECTIONS:
            for _, model, _, _ in grid_cases(op, direction):
                c, _ = fonnx.read(model)
                seen.update(
                    k
                    for k in ("reverse", "peepholes", "input_forget", "bidirectional", "bias")
                    if getattr(c, k)
                )
                seen.add(f"lbr={c.linear_before_reset}")
                seen.add(f"clip={c.clip > 0}")
                seen.add(c.mode)
                functions.update(a[0] for a in c.activations)
    assert seen >= {"reverse", "peepholes", "input_forget", "bidirectional", "bias"}
    assert seen >= {"lbr=True", "lbr=False", "clip=True", "clip=False", "RNN_RELU", "RNN_TANH"}
    assert functions == set(ACTIVATIONS)


# --- layout = 1: onnx.reference --------------------------------------------------------------


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_layout1_against_onnx_reference(isa, op, direction):
    """layout=1 (onnxruntime refuses it): onnx.reference evaluates the node; fastrnn reads
    it as batch_first. The reference LSTM/GRU ignore sequence_lens, activations, clip and
    input_forget, so the variants here are the ones it computes."""
    from onnx.reference import ReferenceEvaluator

    options = [dict(bias=b, states=s) for b in (False, True) for s in (False, True)]
    if op == "LSTM":
        options += [dict(bias=True, states=True, peepholes=True)]
    if op == "GRU":
        options += [dict(bias=True, states=True, attrs={"linear_before_reset": 1})]
    for k, kw in enumerate(options):
        model, feeds = single_node(op, direction, layout=1, H=(3, 17)[k % 2], seed=100 + k, **kw)
        expected = ReferenceEvaluator(model).run(None, feeds)
        c, _ = fonnx.read(model)
        assert c.batch_first
        check(
            fastrnn_onnx_outputs(build(model), feeds, layout=1),
            expected,
            TOL,
            names=["Y", "Y_h", "Y_c"],
            label=f"{op} {direction} layout=1 {kw}",
            suite="onnx layout1",
            isa=isa,
        )


# --- the onnx package's backend node test cases ---------------------------------------------


def backend_cases():
    try:
        import onnx.backend.test.case.node as node_cases
        import onnx.backend.test.case.node.gru  # noqa: F401 - registers its cases
        import onnx.backend.test.case.node.lstm  # noqa: F401
        import onnx.backend.test.case.node.rnn  # noqa: F401

        cases = [
            c
            for c in node_cases._NodeTestCases
            if any(n.op_type in GATES for n in c.model.graph.node)
        ]
    except (ImportError, AttributeError) as e:  # a private list: other onnx versions differ
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no node cases: {e}"))]
    return [pytest.param(c, id=c.name) for c in cases]


@pytest.mark.parametrize("case", backend_cases())
def test_backend_node_cases(isa, case):
    """onnx's own LSTM/GRU/RNN node cases (inputs and expected outputs): W, R, B, P become
    initializers (fastrnn reads stored weights); X, sequence_lens and the initial states
    are passed at call time."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    inputs, outputs = case.data_sets[0]
    node = next(n for n in model.graph.node if n.op_type in GATES)
    values = dict(zip([i.name for i in model.graph.input], inputs))
    role = {name: fonnx._INPUTS[i] for i, name in enumerate(node.input) if name}
    feeds = {}
    for name, v in values.items():
        if role[name] in ("W", "R", "B", "P"):
            model.graph.initializer.append(numpy_helper.from_array(v, name))
        else:
            feeds[role[name]] = v
    keep = [i for i in model.graph.input if role[i.name] not in ("W", "R", "B", "P")]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
    got = fastrnn_onnx_outputs(build(model), feeds, layout=layout)
    by_name = {name: a for name, a in zip(node.output, got) if name}
    want_names = [o.name for o in model.graph.output]
    check(
        [by_name[n] for n in want_names],
        outputs,
        TOL,
        names=want_names,
        label=case.name,
        suite="onnx backend",
        isa=isa,
    )


# --- torch.onnx.export graphs -------------------------------------------------------------------


def torch_exports():
    """(id, torch class, its constructor options; packed / h0: how the export calls it)."""
    return [
        ("lstm-2-bi-batch_first", "LSTM", dict(num_layers=2, bidirectional=True, batch_first=True)),
        ("gru-3", "GRU", dict(num_layers=3)),
        ("rnn-relu-2-bi", "RNN", dict(num_layers=2, bidirectional=True, nonlinearity="relu")),
        ("lstm-nobias", "LSTM", dict(bias=False)),
        ("gru-2-bi-packed", "GRU", dict(num_layers=2, bidirectional=True, packed=True)),
        ("lstm-2-packed-h0", "LSTM", dict(num_layers=2, packed=True, h0=True)),
        ("rnn-tanh-2-h0-batch_first", "RNN", dict(num_layers=2, batch_first=True, h0=True)),
    ]


@functools.cache
def torch_export(kind, options):
    """(wrapper module, ONNX bytes, the torch recurrent layer) for a layer exported with
    torch.onnx.export(dynamo=False, opset_version=17), dynamic T and B. packed: the
    wrapper packs x by `lengths` (enforce_sorted=False) and pads back; h0: the initial
    state is an input (an LSTM's c_0 is zeros)."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    kw = dict(options)
    packed, h0 = kw.pop("packed", False), kw.pop("h0", False)
    torch.manual_seed(len(kind) * 7 + len(kw))
    rnn = getattr(torch.nn, kind)(5, 7, **kw).eval()

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn

        def forward(self, x, *extra):
            args = list(extra)
            state = args.pop() if h0 else None
            if kind == "LSTM" and state is not None:
                state = (state, torch.zeros_like(state))
            if packed:
                lengths = args[0]
                y, s = self.rnn(pack_padded_sequence(x, lengths, enforce_sorted=False), state)
                return pad_packed_sequence(y, total_length=x.shape[0])[0], s
            return self.rnn(x, state)

    L, D = rnn.num_layers, 2 if rnn.bidirectional else 1
    T, B = 6, 3
    x = torch.randn((B, T, 5) if rnn.batch_first else (T, B, 5))
    args, names = [x], ["x"]
    dyn = {"x": {0: "d0", 1: "d1"}}
    if packed:
        args.append(torch.tensor([6, 2, 4]))
        names.append("lengths")
        dyn["lengths"] = {0: "B"}
    if h0:
        args.append(torch.randn(L * D, B, 7))
        names.append("h0")
        dyn["h0"] = {1: "B"}
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Wrapper(), tuple(args), f, dynamo=False, opset_version=17, input_names=names,
            dynamic_axes=dyn,
        )  # fmt: skip
    return Wrapper().eval(), f.getvalue(), rnn


@pytest.mark.parametrize(
    ("name", "kind", "options"), torch_exports(), ids=[e[0] for e in torch_exports()]
)
def test_torch_export(isa, name, kind, options):
    """torch.onnx.export's one-node-per-layer graph reads back as one model with the
    module's configuration and gives the module's results (lengths and h_0 at call time)."""
    torch = pytest.importorskip("torch")
    wrapper, data, rnn = torch_export(kind, tuple(sorted(options.items())))
    opts = dict(options)
    config, _ = fonnx.read(data, batch_first=rnn.batch_first)
    assert (config.num_layers, config.bidirectional, config.bias) == (
        rnn.num_layers,
        rnn.bidirectional,
        rnn.bias,
    )
    assert config.mode == rnn.mode and config.activations == ()
    net = build(data, batch_first=rnn.batch_first)
    rng = np.random.default_rng(3)
    L, D = rnn.num_layers, 2 if rnn.bidirectional else 1
    for T, B in ((6, 3), (9, 1), (1, 4)):
        x = rng.standard_normal((B, T, 5) if rnn.batch_first else (T, B, 5)).astype(np.float32)
        args, lengths, state = [torch.from_numpy(x)], None, None
        if opts.get("packed"):
            lengths = rng.integers(1, T + 1, B)
            lengths[0] = T
            args.append(torch.from_numpy(lengths))
        if opts.get("h0"):
            h = rng.standard_normal((L * D, B, 7)).astype(np.float32)
            args.append(torch.from_numpy(h))
            state = (h, np.zeros_like(h)) if kind == "LSTM" else h
        with torch.no_grad():
            want = wrapper(*args)
        want = [want[0].numpy(), *(t.numpy() for t in (want[1] if kind == "LSTM" else (want[1],)))]
        got = net(x, state, lengths=lengths)
        got = [got[0], *(got[1] if kind == "LSTM" else (got[1],))]
        check(got, want, TOL, label=f"{name} T={T} B={B}", suite="onnx torch", isa=isa)
        # The exported graph itself (onnxruntime) agrees with torch too.
        feeds = {"x": x}
        if lengths is not None:
            feeds["lengths"] = lengths.astype(np.int64)
        if state is not None:
            feeds["h0"] = h
        check(ort_run(data, feeds), want, TOL, label=f"{name} onnxruntime")


def test_torch_export_cell_and_batch_first_default():
    """torch 2.13 exports nn.LSTMCell unrolled (Gemm, Split, Sigmoid, Tanh; no LSTM node):
    refused with that explanation. Without batch_first=, a torch batch_first export reads
    as time-major (its Transposes are outside the stack)."""
    torch = pytest.importorskip("torch")
    cell = torch.nn.LSTMCell(4, 6).eval()
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(cell, (torch.randn(2, 4),), f, dynamo=False, opset_version=17)
    assert "Gemm" in {n.op_type for n in onnx.load_from_string(f.getvalue()).graph.node}
    with pytest.raises(
        ValueError, match=r"holds no LSTM, GRU or RNN node .* torch.onnx.export writes nn.LSTMCell"
    ):
        fonnx.read(f.getvalue())
    _, data, _ = torch_export(
        "LSTM", (("batch_first", True), ("bidirectional", True), ("num_layers", 2))
    )
    assert not fonnx.read(data)[0].batch_first


# --- weights built in the graph, If branches -------------------------------------------------


def folded_graph(cond_input: bool):
    """An LSTM whose W, R, B, P are computed in the graph from initializers and a Constant —
    Slice, Concat, Unsqueeze, Cast (float16 storage), Gather, Split, Reshape, Transpose,
    Squeeze, Identity — inside an If branch whose condition is a stored constant; with
    cond_input, each branch of an If on a graph input holds its own GRU over the LSTM's y,
    reading the outer graph's initializers (through Identity, or two Transposes)."""
    rng = np.random.default_rng(7)
    H, I = 5, 3
    W = (rng.standard_normal((4 * H, I)) * 0.5).astype(np.float16)  # stored as float16
    R = (rng.standard_normal((4 * H, H)) * 0.5).astype(np.float32)
    Bv = (rng.standard_normal((8 * H,)) * 0.3).astype(np.float32)
    P = (rng.standard_normal((3 * H,)) * 0.3).astype(np.float32)
    inits = [
        numpy_helper.from_array(W, "w16"),
        numpy_helper.from_array(R.T.copy(), "r_t"),  # stored transposed
        numpy_helper.from_array(Bv[::-1].copy(), "b_rev"),  # stored reversed
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([2 * H], np.int64), "half"),
        numpy_helper.from_array(np.array([4 * H], np.int64), "full"),
        numpy_helper.from_array(np.arange(8 * H - 1, -1, -1, dtype=np.int64), "rev_idx"),
        numpy_helper.from_array(np.array([1, 4 * H, H], np.int64), "r_shape"),
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
        numpy_helper.from_array(np.array([4 * H, 4 * H], np.int64), "b_split"),
    ]
    branch_nodes = [
        # W: two row halves sliced from float16 storage, cast, concatenated, unsqueezed.
        helper.make_node("Slice", ["w16", "zero", "half", "axis0"], ["w_a"]),
        helper.make_node("Slice", ["w16", "half", "full", "axis0"], ["w_b"]),
        helper.make_node("Concat", ["w_a", "w_b"], ["w_cat"], axis=0),
        helper.make_node("Cast", ["w_cat"], ["w_f"], to=F32),
        helper.make_node("Unsqueeze", ["w_f", "axis0"], ["W"]),
        # R: transposed back, reshaped to [1, 4H, H] through Identity.
        helper.make_node("Transpose", ["r_t"], ["r_tt"], perm=[1, 0]),
        helper.make_node("Identity", ["r_tt"], ["r_id"]),
        helper.make_node("Reshape", ["r_id", "r_shape"], ["R"]),
        # B: reversed by Gather, split in Wb and Rb, concatenated again.
        helper.make_node("Gather", ["b_rev", "rev_idx"], ["b_fwd"], axis=0),
        helper.make_node("Split", ["b_fwd", "b_split"], ["wb", "rb"], axis=0),
        helper.make_node("Concat", ["wb", "rb"], ["b_cat"], axis=0),
        helper.make_node("Unsqueeze", ["b_cat", "axis0"], ["B"]),
        # P: a Constant node of shape (1, 1, 3H), squeezed on axis 0.
        helper.make_node("Constant", [], ["p_c"], value=numpy_helper.from_array(P[None, None])),
        helper.make_node("Squeeze", ["p_c", "axis0"], ["P"]),
    ]
    out = [helper.make_tensor_value_info(n, F32, None) for n in ("W", "R", "B", "P")]
    then = helper.make_graph(branch_nodes, "then", [], out)
    # The else branch computes garbage: a constant condition must pick "then".
    other = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], [n], value=numpy_helper.from_array(np.zeros(s, np.float32))
            )
            for n, s in (
                ("W", (1, 4 * H, I)),
                ("R", (1, 4 * H, H)),
                ("B", (1, 8 * H)),
                ("P", (1, 3 * H)),
            )
        ],
        "else",
        [],
        out,
    )
    nodes = [
        helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(True))),
        helper.make_node(
            "If", ["cond"], ["Wf", "Rf", "Bf", "Pf"], then_branch=then, else_branch=other
        ),
        helper.make_node(
            "LSTM",
            ["X", "Wf", "Rf", "Bf", "", "", "", "Pf"],
            ["Y", "Y_h", "Y_c"],
            name="lstm",
            hidden_size=H,
        ),
    ]
    inputs = [helper.make_tensor_value_info("X", F32, ["T", "B", I])]
    outputs = [helper.make_tensor_value_info(n, F32, None) for n in ("Y", "Y_h", "Y_c")]
    if cond_input:
        G = (rng.standard_normal((1, 3 * H, H)) * 0.4).astype(np.float32)  # reads the LSTM's y
        Rg = (rng.standard_normal((1, 3 * H, H)) * 0.4).astype(np.float32)
        inits += [numpy_helper.from_array(G, "gru_w"), numpy_helper.from_array(Rg, "gru_r")]

        def gru_branch(name, via):
            # The GRU in each branch reads outer initializers (Identity or Transpose twice).
            if via == "identity":
                prep = [helper.make_node("Identity", ["gru_w"], [f"{name}_w"])]
            else:
                prep = [
                    helper.make_node("Transpose", ["gru_w"], [f"{name}_t"], perm=[0, 2, 1]),
                    helper.make_node("Transpose", [f"{name}_t"], [f"{name}_w"], perm=[0, 2, 1]),
                ]
            gru = helper.make_node(
                "GRU", ["Y2", f"{name}_w", "gru_r"], [f"{name}_y", f"{name}_h"], name=f"gru_{name}",
                hidden_size=H, linear_before_reset=1,
            )  # fmt: skip
            return helper.make_graph(
                [*prep, gru], name, [], [helper.make_tensor_value_info(f"{name}_h", F32, None)]
            )

        nodes += [
            helper.make_node("Squeeze", ["Y", "axis0_outer"], ["Y_sq"]),
            helper.make_node("Identity", ["Y_sq"], ["Y2"]),
            helper.make_node(
                "If",
                ["use_gru"],
                ["G_h"],
                then_branch=gru_branch("a", "identity"),
                else_branch=gru_branch("b", "transpose"),
            ),  # fmt: skip
        ]
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis0_outer"))
        inputs.append(helper.make_tensor_value_info("use_gru", TensorProto.BOOL, []))
        outputs.append(helper.make_tensor_value_info("G_h", F32, None))
    graph = helper.make_graph(nodes, "folded", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_weights_built_in_graph(isa):
    """Weights computed in the graph (and in an If branch) are folded exactly: fastrnn =
    onnxruntime on the whole graph."""
    model = folded_graph(cond_input=False)
    x = np.random.default_rng(1).standard_normal((7, 2, 3)).astype(np.float32)
    expected = ort_run(model, {"X": x})
    config, _ = fonnx.read(model)
    assert config.peepholes and config.bias
    got = fastrnn_onnx_outputs(build(model), {"X": x})
    check(got, expected, TOL, names=["Y", "Y_h", "Y_c"], suite="onnx folded", isa=isa)


def test_nodes_inside_if_branches(isa):
    """Recurrent nodes inside If branches are found, named by their place, chosen by node=;
    their weights fold from the outer graph's initializers through the branch's ops."""
    model = folded_graph(cond_input=True)
    found = {p.nodes: p for p in fonnx.parts(model)}
    assert set(found) == {("lstm",), ("gru_a",), ("gru_b",)}
    assert found["lstm",].where == ""
    assert found["gru_a",].where == "If (unnamed, output 'G_h') then_branch"
    assert found["gru_b",].where == "If (unnamed, output 'G_h') else_branch"
    with pytest.raises(ValueError, match=r"holds 3 recurrent parts: .*'gru_.'.*'gru_.'.*node="):
        fonnx.read(model)
    x = np.random.default_rng(2).standard_normal((4, 3, 3)).astype(np.float32)
    lstm = build(model, node="lstm")
    y, _ = lstm(x)
    for output, flag in (("a_h", True), ("b_h", False)):
        want = ort_run(model, {"X": x, "use_gru": np.array(flag)})[3]
        gru = build(model, node=output)  # by an output name
        _, h = gru(y)
        check([h], [want], TOL, label=output, suite="onnx folded", isa=isa)
    assert build(model, node="gru_b").config == gru.config  # by a node name


def test_if_with_runtime_condition_and_equal_branches():
    """An If on a run-time condition folds when both branches give the same tensor, and is
    refused (naming the node and input) when they differ."""
    model, feeds = single_node("RNN", H=4)
    W = numpy_helper.to_array(model.graph.initializer[0])
    then = helper.make_graph(
        [helper.make_node("Identity", ["W"], ["w1"])],
        "t",
        [],
        [helper.make_tensor_value_info("w1", F32, None)],
    )
    same = helper.make_graph(
        [helper.make_node("Constant", [], ["w2"], value=numpy_helper.from_array(W))],
        "e",
        [],
        [helper.make_tensor_value_info("w2", F32, None)],
    )
    g = model.graph
    g.input.append(helper.make_tensor_value_info("flag", TensorProto.BOOL, []))
    g.node.insert(0, helper.make_node("If", ["flag"], ["W_if"], then_branch=then, else_branch=same))
    g.node[1].input[1] = "W_if"
    x = feeds["X"]
    expected = ort_run(model, {"X": x, "flag": np.array(False)})
    check(fastrnn_onnx_outputs(build(model), {"X": x}), expected, TOL)
    differ = helper.make_graph(
        [helper.make_node("Constant", [], ["w2"], value=numpy_helper.from_array(W * 2))],
        "e",
        [],
        [helper.make_tensor_value_info("w2", F32, None)],
    )
    g.node[0].attribute[1].g.CopyFrom(differ)
    with pytest.raises(
        ValueError,
        match=r"RNN node 'rnn_node': input W \('W_if'\) .*branches give different values",
    ):
        fonnx.read(model)


def folder_expressions(opset: int):
    """(nodes, initializers, output names): the folder's ops in the forms of `opset`
    (attributes before opsets 10 / 13, inputs after; Split's num_outputs from 18),
    with negative indices and steps, over stored tensors."""
    rng = np.random.default_rng(opset)
    a = rng.standard_normal((4, 6, 5)).astype(np.float32)
    inits = [
        numpy_helper.from_array(a, "a"),
        numpy_helper.from_array(a.astype(np.float16), "a16"),
        numpy_helper.from_array(np.array([[1, -1], [0, 2]], np.int64), "idx"),
        numpy_helper.from_array(np.array([2, -1, 5], np.int64), "shape"),
    ]

    def ints(name, v):
        inits.append(numpy_helper.from_array(np.array(v, np.int64), name))
        return name

    nodes = [
        helper.make_node("Cast", ["a16"], ["cast"], to=F32),
        helper.make_node("Transpose", ["a"], ["transpose_default"]),
        helper.make_node("Transpose", ["a"], ["transpose"], perm=[2, 0, 1]),
        helper.make_node("Gather", ["a", "idx"], ["gather"], axis=1),
        helper.make_node("Gather", ["a", "idx"], ["gather_neg_axis"], axis=-1),
        helper.make_node("Concat", ["a", "cast", "a"], ["concat"], axis=-2),
        helper.make_node("Reshape", ["a", "shape"], ["reshape"]),
        helper.make_node("Reshape", ["a", ints("shape0", [0, 3, -1])], ["reshape_copy"]),
        helper.make_node("Identity", ["reshape"], ["identity"]),
        helper.make_node("Constant", [], ["constant"], value_floats=[1.5, -2.0, 0.25]),
    ]
    if opset < 13:
        nodes += [
            helper.make_node(
                "Unsqueeze", ["a"], ["unsqueeze"], axes=[0, 4] if opset < 11 else [0, -1]
            ),  # negative axes from opset 11
            helper.make_node("Squeeze", ["unsqueeze"], ["squeeze"], axes=[0]),
            helper.make_node("Split", ["a"], ["split0", "split1"], axis=1, split=[2, 4]),
        ]
    else:
        nodes += [
            helper.make_node("Unsqueeze", ["a", ints("ax", [0, -1])], ["unsqueeze"]),
            helper.make_node("Squeeze", ["unsqueeze", ints("ax0", [0])], ["squeeze"]),
            helper.make_node("Split", ["a", ints("sizes", [2, 4])], ["split0", "split1"], axis=1),
        ]
    if opset < 10:
        nodes.append(
            helper.make_node("Slice", ["a"], ["slice"], starts=[1, -4], ends=[100, -1], axes=[0, 1])
        )
    else:
        nodes += [
            helper.make_node(
                "Slice",
                [
                    "a",
                    ints("s", [-1, 0]),
                    ints("e", [-100, 5]),
                    ints("x", [1, 2]),
                    ints("t", [-2, 2]),
                ],
                ["slice"],
            ),
            helper.make_node(
                "Slice",
                ["a", ints("s2", [3]), ints("e2", [-(2**62)]), ints("x2", [0]), ints("t2", [-1])],
                ["slice_to_start"],
            ),
        ]
    if opset >= 18:
        nodes += [
            helper.make_node("Split", ["a"], ["s_a", "s_b", "s_c"], axis=2, num_outputs=3),
            helper.make_node("CastLike", ["a16", "a"], ["castlike"]),
        ]
    outputs = [o for n in nodes for o in n.output]
    return nodes, inits, outputs


@pytest.mark.parametrize("opset", [9, 11, 13, 18])
def test_folder_against_onnxruntime(opset):
    """Each op the folder evaluates gives onnxruntime's values exactly, in the forms of
    each opset (the outputs of a graph of them, run by onnxruntime)."""
    nodes, inits, outputs = folder_expressions(opset)
    graph = helper.make_graph(
        nodes, "fold", [], [helper.make_tensor_value_info(o, F32, None) for o in outputs], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    expected = ort_run(model, {})
    folder = fonnx._Folder(opset, None)
    scope = fonnx._Scope(model.graph, None, "")
    for name, want in zip(outputs, expected):
        got = folder.value(name, scope)
        assert got.shape == want.shape and np.array_equal(got, want), name


def test_old_opsets_and_missing_hidden_size():
    """Opset 1's output_sequence is accepted (it changes no value); a node without
    hidden_size takes R's; both read as the opset-14 node does."""
    base, _ = single_node("GRU", H=6, opset=14)
    want = fonnx.read(base)
    old, _ = single_node("GRU", H=6, opset=1, attrs={"output_sequence": 1})
    bare, _ = single_node("GRU", H=6)
    del bare.graph.node[0].attribute[:]
    for model in (old, bare):
        got = fonnx.read(model)
        assert got[0] == want[0] and all(np.array_equal(got[1][k], want[1][k]) for k in want[1])


# --- stacks: merged or not ---------------------------------------------------------------------


def stack_graph(
    second_hidden=7,
    y_also_output=False,
    lens_second="lengths",
    layout=0,
    D=2,
    perm=(0, 2, 1, 3),
    reverse=False,
):
    """Two LSTM nodes joined as torch.onnx.export joins layers (layout 0: Transpose +
    Reshape [0, 0, -1], or Squeeze when unidirectional; layout 1: Reshape [0, 0, -1]).
    perm=(0, 2, 3, 1) joins them wrongly for a stack (features H-major, D-minor: a valid
    graph whose second layer sees the directions interleaved)."""
    rng = np.random.default_rng(11)
    direction = "bidirectional" if D == 2 else ("reverse" if reverse else "forward")
    H1, H2, I = 7, second_hidden, 4

    def init(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.4).astype(np.float32), name)

    inits = [
        init("W0", D, 4 * H1, I), init("R0", D, 4 * H1, H1), init("B0", D, 8 * H1),
        init("W1", D, 4 * H2, D * H1), init("R1", D, 4 * H2, H2),
        numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shape"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]  # fmt: skip
    glue = []
    if layout == 1:
        glue = [helper.make_node("Reshape", ["Y0", "shape"], ["X1"])]
    elif D == 2:
        glue = [
            helper.make_node("Transpose", ["Y0"], ["Y0t"], perm=list(perm)),
            helper.make_node("Reshape", ["Y0t", "shape"], ["X1"]),
        ]
    else:
        glue = [helper.make_node("Squeeze", ["Y0", "axis1"], ["X1"])]
    nodes = [
        helper.make_node(
            "LSTM", ["X", "W0", "R0", "B0", "lengths"], ["Y0", "Yh0"], name="l0",
            hidden_size=H1, direction=direction, layout=layout,
        ),
        *glue,
        helper.make_node("Shape", ["X1"], ["X1_shape"]),  # shape readers do not block a merge
        helper.make_node(
            "LSTM", ["X1", "W1", "R1", "", lens_second], ["Y1", "Yh1"], name="l1",
            hidden_size=H2, direction=direction, layout=layout,
        ),
    ]  # fmt: skip
    outputs = ["Y1", "Yh0", "Yh1", "X1_shape"] + (["Y0"] if y_also_output else [])
    graph = helper.make_graph(
        nodes,
        "stack",
        [
            helper.make_tensor_value_info("X", F32, None),
            helper.make_tensor_value_info("lengths", TensorProto.INT32, None),
        ],
        [
            helper.make_tensor_value_info(n, TensorProto.INT64 if n == "X1_shape" else F32, None)
            for n in outputs
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize(
    ("layout", "D", "reverse"),
    [(0, 2, False), (0, 1, False), (0, 1, True), (1, 2, False), (1, 1, False), (1, 1, True)],
)
def test_stack_merged(isa, layout, D, reverse):
    """Two nodes joined by exporter glue are one 2-layer model (B absent in layer 1: zeros;
    two reverse layers: reverse=True), equal to onnxruntime on the whole graph (layout 1:
    to onnx.reference, lengths full)."""
    model = stack_graph(layout=layout, D=D, reverse=reverse)
    (part,) = fonnx.parts(model)
    assert part.nodes == ("l0", "l1") and part.y == "Y1" and part.y_h == ("Yh0", "Yh1")
    config, weights = fonnx.read(model)
    assert (config.num_layers, config.bidirectional, config.bias, config.batch_first) == (
        2,
        D == 2,
        True,
        layout == 1,
    )
    assert not weights["bias_ih_l1"].any() and config.reverse == reverse
    rng = np.random.default_rng(5)
    T, B = 5, 3
    x = rng.standard_normal((B, T, 4) if layout else (T, B, 4)).astype(np.float32)
    lengths = np.array([5, 2, 4], np.int32) if layout == 0 else np.full(3, T, np.int32)
    if layout == 0:
        Y1, Yh0, Yh1, _ = ort_run(model, {"X": x, "lengths": lengths})
    else:
        from onnx.reference import ReferenceEvaluator

        Y1, Yh0, Yh1, _ = ReferenceEvaluator(model).run(None, {"X": x, "lengths": lengths})
        Y1, Yh0, Yh1 = Y1.transpose(1, 2, 0, 3), Yh0.transpose(1, 0, 2), Yh1.transpose(1, 0, 2)
    y, (h_n, _) = build(model)(x, lengths=lengths)
    if layout:
        y = y.transpose(1, 0, 2)
    want_y = Y1.transpose(0, 2, 1, 3).reshape(T, B, D * 7)
    check([y, h_n], [want_y, np.concatenate([Yh0, Yh1])], TOL, suite="onnx stack", isa=isa)


def test_stack_not_merged_when_layers_differ_or_y_is_used():
    """No merge when the layers disagree (hidden sizes, sequence_lens), the lower layer's
    Y is read elsewhere, or the glue does not give (T, B, D·H) in torch's feature order:
    two parts, and node= picks one layer (by node or output name); merge=False reads one
    node of a stack."""
    for model in (
        stack_graph(second_hidden=6),
        stack_graph(y_also_output=True),
        stack_graph(lens_second=""),
        stack_graph(perm=(0, 2, 3, 1)),
    ):
        found = fonnx.parts(model)
        assert [p.nodes for p in found] == [("l0",), ("l1",)]
        with pytest.raises(ValueError, match=r"holds 2 recurrent parts: LSTM 'l0' .*LSTM 'l1'"):
            fonnx.read(model)
        assert fonnx.read(model, node="l0")[0].num_layers == 1
        assert fonnx.read(model, node="Yh1")[0].input_size == 14
    merged = stack_graph()
    assert [p.nodes for p in fonnx.parts(merged, merge=False)] == [("l0",), ("l1",)]
    assert fonnx.read(merged, node="l1", merge=False)[0].input_size == 14
    assert fonnx.read(merged, node="l1")[0].num_layers == 2  # the stack holding l1


# --- refusals --------------------------------------------------------------------------------


def with_attrs(op="LSTM", direction="forward", **attrs):
    return single_node(op, direction, attrs=attrs)[0]


@pytest.mark.parametrize(
    ("model", "pattern"),
    [
        (lambda: with_attrs(foo=1), r"LSTM node 'lstm_node': unknown attribute 'foo' \(an ONNX LSTM has \["),
        (lambda: with_attrs("GRU", input_forget=1), r"GRU node 'gru_node': unknown attribute 'input_forget'"),
        (lambda: with_attrs(clip=0.0), r"LSTM node 'lstm_node': attribute clip must be > 0 .*got 0.0"),
        (lambda: with_attrs(clip=-1.0), r"attribute clip must be > 0 .*got -1.0"),
        (lambda: with_attrs(layout=2), r"LSTM node 'lstm_node': attribute layout must be 0 \(\[T, B, I\]\) or 1 \(\[B, T, I\]\), got 2"),
        (lambda: with_attrs("RNN", activations=["Gelu"]), r"RNN node 'rnn_node': attribute activations: 'Gelu' is not an ONNX activation"),
        (lambda: with_attrs(activations=["Sigmoid", "Tanh"]), r"attribute activations must hold 3 functions \(f, g, h for each of 1 direction\(s\)\), got 2"),
        (lambda: with_attrs("GRU", "bidirectional", activations=["Sigmoid", "Tanh"]), r"GRU node 'gru_node': attribute activations must hold 4 functions"),
        (lambda: with_attrs("RNN", activations=["ThresholdedRelu"]), r"RNN node 'rnn_node': attribute activation_alpha gives no alpha for activation 0 \(ThresholdedRelu\): ONNX's operator default is 1, onnxruntime uses 0. Pass activation_defaults="),
        (lambda: with_attrs("RNN", activations=["Affine"], activation_beta=[0.5]), r"attribute activation_alpha gives no alpha for activation 0 \(Affine\)"),
        (lambda: with_attrs("GRU", activations=["Tanh", "LeakyRelu"], activation_alpha=[0.5, 0.1]), r"GRU node 'gru_node': attribute activation_alpha has 2 values \[0.5, 0.1\] but the activations \['Tanh', 'LeakyRelu'\] take 1: .* they give \{1: 0.5\}, read one per function they give \{1: 0.1"),
        (lambda: with_attrs("RNN", activations=["LeakyRelu"], activation_alpha=[0.1, 0.2, 0.3]), r"activation_alpha has 3 values .* nothing \(not one each\)"),
        (lambda: with_attrs(direction="sideways"), r"attribute direction must be one of \['forward', 'reverse', 'bidirectional'\], got 'sideways'"),
        (lambda: with_attrs(), None),
    ],
    ids=[
        "unknown", "wrong-op", "clip0", "clip-neg", "layout2", "activation-name", "activation-count",
        "activation-count-bi", "thresholded-default", "affine-default", "alpha-readings",
        "alpha-surplus", "direction", "control",
    ],
)  # fmt: skip
def test_attribute_refusals(model, pattern):
    """Each attribute fastrnn cannot map is a ValueError naming the node and the attribute,
    what is allowed and what the file says ('control': the same graph, valid, reads)."""
    m = model()
    if pattern is None:
        fonnx.read(m)
        return
    with pytest.raises(ValueError, match=pattern):
        fonnx.read(m)


def test_hidden_size_and_shape_refusals():
    model, _ = single_node("GRU", H=4)
    model.graph.node[0].attribute[0].i = 5  # hidden_size 5, R says 4
    with pytest.raises(
        ValueError,
        match=r"GRU node 'gru_node': attribute hidden_size is 5 but input R has shape \[1, 12, 4\]",
    ):
        fonnx.read(model)
    model, _ = single_node("GRU", H=4)
    b = model.graph.initializer[2]
    b.CopyFrom(numpy_helper.from_array(np.zeros((1, 12), np.float32), "B"))
    with pytest.raises(
        ValueError, match=r"GRU node 'gru_node': input B must have shape \[1, 24\], got \[1, 12\]"
    ):
        fonnx.read(model)
    model, _ = single_node("LSTM", "bidirectional", H=4)
    model.graph.initializer[0].CopyFrom(
        numpy_helper.from_array(np.zeros((1, 16, 5), np.float32), "W")
    )
    with pytest.raises(ValueError, match=r"input W must have shape \[2, 16, 5\], got \[1, 16, 5\]"):
        fonnx.read(model)


def test_activation_defaults_choice():
    """A file that leaves ThresholdedRelu's alpha out reads under either reading when asked:
    'onnxruntime' equals onnxruntime on the file, 'onnx' equals alpha = 1.0 written out."""
    model, feeds = single_node("RNN", attrs={"activations": ["ThresholdedRelu"]}, seed=4)
    want_ort = ort_run(model, feeds)
    got = fastrnn_onnx_outputs(build(model, activation_defaults="onnxruntime"), feeds)
    check(got, want_ort, TOL)
    explicit, _ = single_node(
        "RNN", attrs={"activations": ["ThresholdedRelu"], "activation_alpha": [1.0]}, seed=4
    )
    got = fastrnn_onnx_outputs(build(model, activation_defaults="onnx"), feeds)
    check(got, ort_run(explicit, feeds), TOL)
    assert not np.allclose(want_ort[0], ort_run(explicit, feeds)[0])  # the readings differ
    with pytest.raises(
        ValueError, match=r"activation_defaults must be None, 'onnx' or 'onnxruntime', got 'ort'"
    ):
        fonnx.read(model, activation_defaults="ort")
    # Surplus alphas that both readings agree on are accepted (onnxruntime's answer).
    agree, feeds = single_node(
        "GRU", attrs={"activations": ["LeakyRelu", "Tanh"], "activation_alpha": [0.2, 0.0]}
    )
    check(fastrnn_onnx_outputs(build(agree), feeds), ort_run(agree, feeds), TOL)


def test_input_refusals():
    """Weights must be computable from the file; states and lengths must be given at call
    time (a stored non-zero one is refused, a provably zero one is dropped)."""
    model, _ = single_node("LSTM", weights_as_inputs=("W",))
    with pytest.raises(
        ValueError,
        match=r"LSTM node 'lstm_node': input W \('W'\) is not a constant .*'W' is a graph input",
    ):
        fonnx.read(model)
    model, _ = single_node("GRU")
    g = model.graph
    g.input.append(helper.make_tensor_value_info("M", F32, None))
    g.node.insert(0, helper.make_node("MatMul", ["M", "R"], ["R2"], name="mm"))
    g.node[1].input[2] = "R2"
    with pytest.raises(
        ValueError,
        match=r"input R \('R2'\) is not a constant .*MatMul node 'mm', which fastrnn does not fold",
    ):
        fonnx.read(model)
    model, _ = single_node("RNN", H=4, B=2)
    g = model.graph
    g.initializer.append(numpy_helper.from_array(np.ones((1, 2, 4), np.float32), "h_init"))
    g.node[0].input.extend(["", "h_init"])
    with pytest.raises(
        ValueError,
        match=r"RNN node 'rnn_node': input initial_h \('h_init'\) is a non-zero constant",
    ):
        fonnx.read(model)
    g.initializer[-1].CopyFrom(numpy_helper.from_array(np.zeros((1, 2, 4), np.float32), "h_init"))
    fonnx.read(model)  # zeros: the default state
    g.initializer.append(numpy_helper.from_array(np.array([3, 3], np.int32), "lens_c"))
    g.node[0].input[4] = "lens_c"
    with pytest.raises(
        ValueError,
        match=r"input sequence_lens \('lens_c'\) is the constant \[3, 3\] .*pass lengths=",
    ):
        fonnx.read(model)


def test_folder_bounds():
    """The folder refuses, without allocating it, a result beyond 2^28 elements (a Gather
    of a 2 KB tensor by 2^20 stored indices would be 2 GiB), and a chain of more than 64
    ops or a cycle (an invalid graph) instead of recursing without end."""
    model, _ = single_node("RNN", H=4)
    g = model.graph
    g.initializer.append(numpy_helper.from_array(np.ones((1, 512), np.float32), "row"))
    g.initializer.append(numpy_helper.from_array(np.zeros(1 << 20, np.int64), "many"))
    g.node.insert(0, helper.make_node("Gather", ["row", "many"], ["huge"], axis=0))
    g.node[1].input[1] = "huge"
    with pytest.raises(
        ValueError,
        match=r"input W \('huge'\) .*a result of 536870912 elements \(the folder stops at 268435456\)",
    ):
        fonnx.read(model)
    for chain, pattern in ((100, r"more than 64 ops \(or a cycle\)"), (10, None)):
        model, _ = single_node("RNN", H=4)
        g = model.graph
        for k in range(chain):
            g.node.insert(
                k, helper.make_node("Identity", ["W" if k == 0 else f"w{k - 1}"], [f"w{k}"])
            )
        g.node[chain].input[1] = f"w{chain - 1}"
        if pattern is None:
            fonnx.read(model)  # a short chain folds
        else:
            with pytest.raises(ValueError, match=pattern):
                fonnx.read(model)
    model, _ = single_node("RNN", H=4)
    g = model.graph
    g.node.insert(0, helper.make_node("Identity", ["c1"], ["c0"]))
    g.node.insert(0, helper.make_node("Identity", ["c0"], ["c1"]))
    g.node[2].input[1] = "c0"
    with pytest.raises(ValueError, match=r"input W \('c0'\) .*more than 64 ops \(or a cycle\)"):
        fonnx.read(model)


def test_zero_length_is_refused_at_call_time():
    """ONNX allows sequence_lens = 0 (onnxruntime then zeroes Y_h / Y_c); a fastrnn model
    takes lengths in [1, T] (torch's packing) and says so."""
    model, feeds = single_node("LSTM", lengths=True, B=3)
    net = build(model)
    with pytest.raises(
        ValueError, match=r"LSTM: lengths must be in \[1, 6\] \(T=6\), got 0 at index 1"
    ):
        net(feeds["X"], lengths=np.array([2, 0, 6]))


def test_model_level_refusals(tmp_path):
    with pytest.raises(ValueError, match=r"ONNX model \(bytes\): is not an ONNX model"):
        fonnx.read(b"\xff\xff\xff not protobuf")
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x0a\xff\xff\xff\xff")
    with pytest.raises(ValueError, match=rf"{path}: is not an ONNX model"):
        fonnx.read(path)
    empty = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [], [])
    )
    with pytest.raises(ValueError, match=r"ONNX model: holds no LSTM, GRU or RNN node"):
        fonnx.read(empty)
    model = stack_graph()
    with pytest.raises(
        ValueError,
        match=r"has no recurrent node or output named 'nope'; it holds: LSTM 'l0' \+ 'l1'",
    ):
        fonnx.read(model, node="nope")
    with pytest.raises(TypeError, match=r"node must be a str"):
        fonnx.read(model, node=1)
    with pytest.raises(
        TypeError, match=r"an ONNX model must be a path, bytes or an onnx.ModelProto, got int"
    ):
        fonnx.read(3)


def test_path_bytes_and_external_data(tmp_path):
    """A path, bytes and a ModelProto read the same; weights in an external data file are
    read from beside the model (a location outside its directory is refused)."""
    model, feeds = single_node("GRU", H=17, seed=9)
    data = model.SerializeToString()  # save_model below rewrites `model` for external data
    path = tmp_path / "m.onnx"
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.data", size_threshold=0)  # fmt: skip
    assert (tmp_path / "m.data").exists()
    a = fonnx.read(path)[1]
    b = fonnx.read(data)[1]
    c = fonnx.read(onnx.load_from_string(data))[1]
    for k in a:
        assert np.array_equal(a[k], b[k]) and np.array_equal(a[k], c[k])
    with pytest.raises(
        ValueError, match=r"keeps its data in an external file: pass the model's path"
    ):
        fonnx.read(path.read_bytes())
    bad = onnx.load(path, load_external_data=False)
    for e in bad.graph.initializer[0].external_data:
        if e.key == "location":
            e.value = "../outside.data"
    onnx.save_model(bad, tmp_path / "x.onnx")
    with pytest.raises(
        ValueError, match=r"names external data '../outside.data' outside the model's directory"
    ):
        fonnx.read(tmp_path / "x.onnx")


def test_onnx_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(
        ImportError,
        match=r"reading ONNX models needs the onnx package: pip install 'fastrnn\[onnx\]'",
    ):
        fonnx.read(b"")


# --- fastrnn verify / convert ------------------------------------------------------------------


@pytest.fixture
def exported(tmp_path):
    _, data, _ = torch_export("GRU", (("bidirectional", True), ("num_layers", 2), ("packed", True)))
    path = tmp_path / "gru.onnx"
    path.write_bytes(data)
    return path


def test_cli_verify_onnx(exported, capsys):
    from fastrnn.cli import main

    assert main(["verify", str(exported)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{exported}: fastrnn.GRU(5, 7, num_layers=2, bidirectional=True)")
    assert f"against onnxruntime {ort.__version__}: OK" in out
    assert main(["verify", str(exported), "--json", "--steps", "5", "--batch", "3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["reference"] == f"onnxruntime {ort.__version__}"
    assert set(doc["tensors"]) == {"output", "h_n"} and doc["max_error"] <= 1e-5
    assert doc["nodes"] == ["/rnn/GRU", "/rnn/GRU_1"]


def test_cli_verify_onnx_fails_on_a_wrong_import(exported, capsys, monkeypatch):
    """verify really compares: with the importer's GRU gate order broken (z, r swapped), it
    reports the mismatch with exit code 1."""
    from fastrnn.cli import main

    monkeypatch.setitem(fonnx._OPS, "GRU", (3, (0, 1, 2), 2))
    assert main(["verify", str(exported)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_cli_verify_onnx_parts_and_environment(tmp_path, capsys, monkeypatch):
    from fastrnn.cli import main

    path = tmp_path / "two.onnx"
    onnx.save_model(stack_graph(second_hidden=6), path)
    assert main(["verify", str(path)]) == 2
    assert "holds 2 recurrent parts" in capsys.readouterr().err
    assert main(["verify", str(path), "--node", "l1"]) == 0
    assert "fastrnn.LSTM(14, 6, bias=False, bidirectional=True)" in capsys.readouterr().out
    assert main(["verify", str(path), "--node", "l1", "--mode", "GRU"]) == 2
    assert "--mode and --prefix do not apply to ONNX files" in capsys.readouterr().err
    lower, _ = single_node("RNN", "bidirectional", attrs={"activations": ["relu", "tanh"]})
    onnx.save_model(lower, tmp_path / "lower.onnx")  # onnxruntime's RNN refuses "relu"
    assert main(["verify", str(tmp_path / "lower.onnx")]) == 0
    assert "OK" in capsys.readouterr().out
    onnx.save_model(stack_graph(layout=1), tmp_path / "batchwise.onnx")
    assert main(["verify", str(tmp_path / "batchwise.onnx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert main(["verify", str(path), "--node", "l0"]) == 2
    assert "needs onnxruntime (pip install onnxruntime)" in capsys.readouterr().err


def test_cli_convert_onnx(exported, tmp_path, capsys):
    """`fastrnn convert model.onnx out.safetensors` writes the same model (which loads
    without onnx); fastrnn.load reads the .onnx itself too, node= picking the part."""
    from fastrnn.cli import main

    out = tmp_path / "gru.safetensors"
    assert main(["convert", str(exported), str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    a, b = fastrnn.load(out), build(exported)
    assert a.config == b.config
    for k, v in b.state_dict().items():
        assert np.array_equal(a.state_dict()[k], v)
    c = fastrnn.load(exported, node="/rnn/GRU_1")  # fastrnn.load dispatches .onnx files
    assert c.config == b.config


def test_load_and_from_onnx(tmp_path):
    """fastrnn.load("x.onnx") and fastrnn.from_onnx give the model of the file's part; a
    batch_first export reads back batch-first with batch_first=True; state_dict hints do not
    apply; fastrnn convert --node picks a part."""
    torch = pytest.importorskip("torch")
    from fastrnn.cli import main

    _, data, rnn = torch_export("RNN", (("batch_first", True), ("h0", True), ("num_layers", 2)))
    path = tmp_path / "rnn.onnx"
    path.write_bytes(data)
    x = np.random.default_rng(0).standard_normal((3, 6, 5)).astype(np.float32)
    with torch.no_grad():
        want = rnn(torch.from_numpy(x))[0].numpy()
    for model in (
        fastrnn.load(path, batch_first=True),
        fastrnn.from_onnx(path, batch_first=True),
        fastrnn.from_onnx(data, batch_first=True),
    ):
        assert model.batch_first
        np.testing.assert_allclose(model(x)[0], want, atol=1e-5)
    with pytest.raises(
        ValueError, match=r"mode= does not apply to an ONNX model, which stores its configuration"
    ):
        fastrnn.load(path, mode="RNN_TANH")
    with pytest.raises(ValueError, match=r"node= picks a recurrent part"):
        fastrnn.load(path, layer="x")
    out = tmp_path / "rnn.safetensors"
    assert main(["convert", str(path), str(out), "--batch-first"]) == 0
    np.testing.assert_allclose(fastrnn.load(out)(x)[0], want, atol=1e-5)
