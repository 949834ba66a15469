"""The peers: each builds its model from one seeded torch module (or the ONNX graph exported
from it) and returns a call that runs the workload. Every peer is optional and imported
only when asked for."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from .workloads import Workload

TOLERANCE = 1e-4  # a peer further than this (max abs) from torch is flagged as disagreeing
PARITY_TOLERANCE = 1e-5  # fastrnn's documented parity guarantee (README, "Parity guarantee")
ONNX_OPSET = 17

PEERS = ("fastrnn", "torch", "onnxruntime", "openvino", "tract")
_PEER_ALIASES = {"ort": "onnxruntime", "ov": "openvino", "pytorch": "torch"}
# Peers that run on one thread whatever they are given (tract's Python bindings offer no
# thread count): timed at every thread count, marked as one thread in every table.
SINGLE_THREADED = ("tract",)


_imports: dict = {}


def _try_import(name: str):
    """The module, or None when it is not installed (or fails to import). Cached."""
    if name not in _imports:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _imports[name] = __import__(name)
        except Exception:  # noqa: BLE001  a peer that fails to import counts as missing
            _imports[name] = None
    return _imports[name]


def peer_versions() -> dict:
    """Each peer's version, or None when it is not installed."""
    out = {}
    for peer in PEERS:
        if peer == "fastrnn":
            from .. import __version__

            out[peer] = __version__
            continue
        mod = _try_import(peer)
        if mod is None:
            out[peer] = None
        elif peer == "openvino":
            out[peer] = getattr(mod, "__version__", None) or mod.get_version()
        elif peer == "tract":  # no __version__; the native library knows its own
            out[peer] = mod.version()
        else:
            out[peer] = mod.__version__
    return out


def normalize_peers(peers) -> list:
    if peers is None:
        return list(PEERS)
    out = []
    for p in peers:
        name = _PEER_ALIASES.get(p.lower(), p.lower())
        if name not in PEERS:
            raise ValueError(f"unknown peer {p!r}; known: {', '.join(PEERS)}")
        if name not in out:
            out.append(name)
    return out


class Case:
    """One workload's input, models and torch reference, shared by every peer. workdir: a
    directory for the exported ONNX graph."""

    def __init__(self, w: Workload, seed: int, workdir: str):
        self.w = w
        self.workdir = workdir
        rng = np.random.default_rng(seed)
        self.x = rng.standard_normal(w.x_shape(), dtype=np.float32)
        self.steps = (
            [np.ascontiguousarray(self.x[t : t + 1]) for t in range(w.T)] if w.streaming else None
        )
        torch = _try_import("torch")
        self.torch_module = _torch_module(w, seed) if torch is not None else None
        if self.torch_module is not None:
            from .._load import from_torch

            self.model = from_torch(self.torch_module)
        else:
            self.model = _fastrnn_module(w, seed)
        self._onnx_path = None
        self._reference = None

    def reference(self):
        """torch's (output, h_n, c_n) for the whole sequence in one call, or None."""
        if self._reference is None and self.torch_module is not None:
            import torch

            with torch.inference_mode():
                y, state = self.torch_module(torch.from_numpy(self.x))
            self._reference = _as_triple(y, state)
        return self._reference

    def onnx_path(self) -> str:
        if self._onnx_path is None:
            self._onnx_path = _export_onnx(self)
        return self._onnx_path


def _torch_module(w: Workload, seed: int):
    import torch

    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[w.cell]
    with torch.random.fork_rng(devices=[]):  # seeds without touching the caller's generator
        torch.manual_seed(seed)
        m = cls(w.I, w.H, num_layers=w.L, bidirectional=w.D == 2, batch_first=w.batch_first)
    return m.eval()


def _fastrnn_module(w: Workload, seed: int):
    from .. import _modules

    cls = getattr(_modules, w.cell)
    return cls(
        w.I, w.H, num_layers=w.L, bidirectional=w.D == 2, batch_first=w.batch_first, seed=seed
    )


def _to_numpy(a):
    return a if isinstance(a, np.ndarray) or a is None else a.detach().numpy()


def _as_triple(y, state):
    """(output, h_n, c_n or None) as numpy, from torch's or fastrnn's (output, state)."""
    if isinstance(state, (tuple, list)):
        h, c = state
    else:
        h, c = state, None
    return _to_numpy(y), _to_numpy(h), _to_numpy(c)


def _from_call(result):
    return _as_triple(*result)


def _from_stream(result):
    ys, state = result
    return _as_triple(np.concatenate([_to_numpy(y) for y in ys], axis=0), state)


def _from_stream_steps(result):
    """From a fastrnn Stream's per-step outputs, each (B, H_out), and its final state."""
    ys, state = result
    return _as_triple(np.stack(ys, axis=0), state)


def _from_onnx_call(result):
    y, h, *c = result
    return y, h, (c[0] if c else None)


def _from_onnx_stream(result):
    ys, state = result
    return np.concatenate(ys, axis=0), state[0], (state[1] if len(state) > 1 else None)


def _state_names(w: Workload) -> list:
    return ["h0", "c0"] if w.cell == "LSTM" else ["h0"]


def _export_onnx(case: Case) -> str:
    """Exports the case's torch module to ONNX: the whole sequence with zero initial state, or
    (streaming) one step with the state as inputs h0 (and c0)."""
    import torch

    w = case.w
    lstm = w.cell == "LSTM"

    class Wrapper(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x, *state):
            if state:
                y, s = self.m(x, tuple(state) if lstm else state[0])
            else:
                y, s = self.m(x)
            return (y, *s) if lstm else (y, s)

    if w.streaming:
        zeros = torch.zeros(w.state_shape())
        args = (torch.from_numpy(case.steps[0]),) + (zeros,) * len(_state_names(w))
        input_names = ["x"] + _state_names(w)
    else:
        args = (torch.from_numpy(case.x),)
        input_names = ["x"]
    output_names = ["y", "h_n", "c_n"] if lstm else ["y", "h_n"]
    path = os.path.join(case.workdir, f"{w.name}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Wrapper(case.torch_module).eval(),
            args,
            path,
            input_names=input_names,
            output_names=output_names,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return path


# Each _prepare_<peer>(case, threads) returns (call, to_triple): call() runs the workload once;
# to_triple(call()) gives (output, h_n, c_n) as numpy, for the check against torch.


def _prepare_fastrnn(case: Case, threads: int):
    from .._runtime import set_num_threads

    set_num_threads(threads)
    model = case.model
    if case.w.streaming:
        # The serving API: one stream, x_t of shape (B, I) per step, the state carried inside.
        steps = [np.ascontiguousarray(x_t[0]) for x_t in case.steps]
        stream = model.stream(batch=case.w.B)
        step = stream.step

        def call():
            stream.reset()
            ys = [step(x_t) for x_t in steps]
            return ys, stream.state

        return call, _from_stream_steps
    x = case.x
    return (lambda: model(x)), _from_call


def _prepare_torch(case: Case, threads: int):
    import torch

    torch.set_num_threads(threads)
    m = case.torch_module
    if case.w.streaming:
        steps = [torch.from_numpy(s) for s in case.steps]

        def call():
            with torch.inference_mode():
                state, ys = None, []
                for x_t in steps:
                    y, state = m(x_t, state)
                    ys.append(y)
            return ys, state

        return call, _from_stream
    x = torch.from_numpy(case.x)

    def call():
        with torch.inference_mode():
            return m(x)

    return call, _from_call


def _onnx_graph_call(case: Case, run):
    """(call, to_triple) for a runtime of the exported ONNX graph; run(feed) returns the
    graph's outputs as a sequence (y, h_n[, c_n]). Streaming: 100 one-step runs, the state
    fed back as the next step's inputs."""
    w = case.w
    if w.streaming:
        steps, names = case.steps, _state_names(w)
        zeros = [np.zeros(w.state_shape(), np.float32) for _ in names]

        def call():
            state, ys = zeros, []
            for x_t in steps:
                feed = {"x": x_t}
                feed.update(zip(names, state))
                y, *state = run(feed)
                ys.append(y)
            return ys, state

        return call, _from_onnx_stream
    feed = {"x": case.x}
    return (lambda: run(feed)), _from_onnx_call


def _prepare_onnxruntime(case: Case, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(case.onnx_path(), so, providers=["CPUExecutionProvider"])
    return _onnx_graph_call(case, lambda feed: sess.run(None, feed))


_ov_core = None


def _prepare_openvino(case: Case, threads: int):
    global _ov_core
    import openvino as ov

    if _ov_core is None:
        _ov_core = ov.Core()
    config = {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": "f32",  # else it may pick bf16 on CPUs that have it
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    compiled = _ov_core.compile_model(case.onnx_path(), "CPU", config)
    req = compiled.create_infer_request()
    # share_inputs: no copy of the inputs; outputs are copies (they are fed back).
    return _onnx_graph_call(case, lambda feed: req.infer(feed, share_inputs=True).to_tuple())


def _prepare_tract(case: Case, threads: int):
    """tract runs on one thread whatever `threads` says (see SINGLE_THREADED). Its runnable is
    optimised for the graph's fixed shapes; one execution state serves every call (the graph
    itself is stateless: a stream's state goes in and out as h0/c0 like for the others)."""
    import tract

    model = tract.onnx().load(case.onnx_path()).into_model()
    order = [model.input_name(i) for i in range(model.input_count())]  # tract takes a list
    state = model.into_runnable().spawn_state()

    def run(feed):
        return [t.to_numpy() for t in state.run([feed[name] for name in order])]

    return _onnx_graph_call(case, run)


_PREPARE = {
    "fastrnn": _prepare_fastrnn,
    "torch": _prepare_torch,
    "onnxruntime": _prepare_onnxruntime,
    "openvino": _prepare_openvino,
    "tract": _prepare_tract,
}


def prepare(case: Case, peer: str, threads: int):
    """(call, errors): a callable that runs case's workload once on `peer` at `threads`
    threads, and its max abs error against torch per tensor (output, h_n, c_n; {} without
    torch). Raises what the peer raises; see skip_reason for peers that cannot run."""
    call, to_triple = _PREPARE[normalize_peers([peer])[0]](case, threads)
    ref = case.reference()
    errors = compare(to_triple(call()), ref) if ref is not None else {}
    return call, errors


def compare(got, ref) -> dict:
    errors = {}
    for key, a, b in zip(("output", "h_n", "c_n"), got, ref):
        if b is None:
            continue
        a = np.asarray(a)
        if a.shape != b.shape:
            errors[key] = math.inf
        else:
            errors[key] = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
    return errors
