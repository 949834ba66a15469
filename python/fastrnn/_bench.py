"""Benchmark workloads and a side-by-side runner: fastrnn against torch, onnxruntime, openvino
and tract, in one process, alternating, at the same thread count.

Used by `fastrnn bench` and by the scripts in the repository's bench/ folder. Every peer is
optional and imported only when asked for; a missing peer is skipped with a note.

How a comparison is made, for one workload at one thread count:

1. One torch module (seeded) gives the weights to everyone: fastrnn copies them with
   `from_torch`, onnxruntime, openvino and tract run the ONNX graph exported from that module
   (legacy TorchScript exporter, opset 17). Without torch, fastrnn alone runs a seeded
   `fastrnn.LSTM(..., seed=...)` (or GRU/RNN).
2. Every peer's output and final state are compared with torch's whole-sequence call before
   anything is timed; the max abs error is recorded, and a peer further than `TOLERANCE`
   is flagged in every table (it is still timed, never dropped silently).
3. The peers are timed in rounds: each round gives each peer a short burst of calls (a
   burst lasts about 50 ms, at least 2 calls), every call timed alone, after a 50 ms pause
   in which the previous peer's worker threads stop spinning; the order of the peers
   rotates from round to round. Bursts keep each peer's weights warm in cache; rounds
   spread the machine's noise over everyone alike. Reported: median and p90 of the calls.
   Other processes' use of the cores is measured meanwhile (LoadMeter); a noisy block can be
   timed again (run(..., retries=)).

Streaming workloads are 100 single-step calls carrying the state; one timed call is the
whole loop of 100 steps. fastrnn runs its serving API: `stream = model.stream(batch=B)` once,
then `stream.step(x_t)` with x_t of shape (B, I), the state carried inside the stream (reset
at the start of each timed loop). torch calls the module with x[t:t+1] and the previous
state. onnxruntime, openvino and tract run a graph exported for one step, with the state as
inputs (h0, c0) that the loop feeds back.

tract is single-threaded: it runs at every thread count (a user's choice stays a user's
choice), but its records say threads_used=1 and the tables mark it "(1t)".

FLOPs count the matrix products only (2 per multiply-add of x·W_ihᵀ and h·W_hhᵀ): the gate
nonlinearities and elementwise updates are O(G) per step and not counted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Callable

import numpy as np

TOLERANCE = 1e-4  # a peer further than this (max abs) from torch is flagged as disagreeing
PARITY_TOLERANCE = 1e-5  # fastrnn's documented parity guarantee (README, "Parity guarantee")
ONNX_OPSET = 17

PEERS = ("fastrnn", "torch", "onnxruntime", "openvino", "tract")
_PEER_ALIASES = {"ort": "onnxruntime", "ov": "openvino", "pytorch": "torch"}
# Peers that run on one thread whatever they are given (tract's Python bindings offer no
# thread count): timed at every thread count, marked as one thread in every table.
SINGLE_THREADED = ("tract",)
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}

# A burst of calls to one peer lasts about this long (at least _MIN_BURST calls, at most
# _MAX_BURST): long enough that a peer's first, cold call is a small part of its samples.
_BURST_SECONDS = 0.05
_MIN_BURST, _MAX_BURST = 2, 100
# A quiet gap before each burst: after a call, a peer's worker threads keep spinning for a
# while and on a small machine would steal the next peer's cores. Measured after a 2-thread
# call of `default` (2-core Zen 5): ~10 ms of CPU for libgomp's workers (fastrnn, torch),
# ~35 ms for onnxruntime's pool, ~1 ms for openvino's. 50 ms outlasts them all.
_GAP_SECONDS = 0.05
_MIN_ROUNDS = 3
BUSY = 0.1  # above this share of the cores used by other processes, a result is noted as noisy


# --- workloads -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark shape. Legend: B batch, T time steps, I input, H hidden, L layers,
    D directions. A streaming workload is T single-step calls carrying the state."""

    name: str
    cell: str  # "LSTM", "GRU" or "RNN" (tanh)
    B: int
    T: int
    I: int
    H: int
    L: int = 1
    D: int = 1
    batch_first: bool = False
    streaming: bool = False
    about: str = ""

    def __post_init__(self):
        if self.cell not in _GATES:
            raise ValueError(
                f"Workload {self.name}: cell must be LSTM, GRU or RNN, got {self.cell!r}"
            )
        if self.streaming and (self.D != 1 or self.batch_first):
            raise ValueError(
                f"Workload {self.name}: a streaming workload is unidirectional and time-major"
            )

    @property
    def G(self) -> int:
        """Gate rows of W_ih and W_hh: 4H (LSTM), 3H (GRU), H (RNN)."""
        return _GATES[self.cell] * self.H

    def layer_input(self, layer: int) -> int:
        return self.I if layer == 0 else self.D * self.H

    def flops(self) -> int:
        """FLOPs of one call (streaming: of all T steps): 2·B·G·(I_l + H) per step, layer and
        direction."""
        per_step = sum(
            self.D * 2 * self.B * self.G * (self.layer_input(l) + self.H) for l in range(self.L)
        )
        return self.T * per_step

    def w_hh_bytes(self) -> int:
        """fp32 bytes of every W_hh of the stack (all layers and directions)."""
        return 4 * self.L * self.D * self.G * self.H

    def w_ih_bytes(self) -> int:
        return 4 * self.D * self.G * sum(self.layer_input(l) for l in range(self.L))

    def x_shape(self) -> tuple:
        return (self.B, self.T, self.I) if self.batch_first else (self.T, self.B, self.I)

    def state_shape(self) -> tuple:
        return (self.L * self.D, self.B, self.H)

    def describe(self) -> str:
        parts = [self.cell, f"B={self.B}", f"T={self.T}", f"I={self.I}", f"H={self.H}"]
        if self.L != 1:
            parts.append(f"L={self.L}")
        if self.D == 2:
            parts.append("bidirectional")
        if self.batch_first:
            parts.append("batch_first")
        if self.streaming:
            parts.append(f"{self.T} single-step calls")
        return " ".join(parts)


WORKLOADS = {
    w.name: w
    for w in [
        Workload(
            "default", "LSTM", 1, 100, 256, 256, about="the model `fastrnn` times with no arguments"
        ),
        Workload(
            "stream_lstm_256",
            "LSTM",
            1,
            100,
            256,
            256,
            streaming=True,
            about="streaming, state carried",
        ),
        Workload(
            "stream_gru_256",
            "GRU",
            1,
            100,
            256,
            256,
            streaming=True,
            about="streaming, state carried",
        ),
        Workload("lat_lstm_256", "LSTM", 1, 100, 256, 256, about="latency, batch 1"),
        Workload("lat_gru_256", "GRU", 1, 100, 256, 256, about="latency, batch 1"),
        Workload("lat_lstm_1024", "LSTM", 1, 100, 1024, 1024, about="latency, W_hh 16 MiB (L3)"),
        Workload("small_lstm_64", "LSTM", 1, 100, 32, 64, L=2, about="small model, batch 1"),
        Workload("tput_lstm_512", "LSTM", 64, 100, 512, 512, L=2, about="throughput, batch 64"),
        Workload("tput_gru_512", "GRU", 64, 100, 512, 512, L=2, about="throughput, batch 64"),
        Workload(
            "bilstm_text",
            "LSTM",
            32,
            64,
            300,
            256,
            L=2,
            D=2,
            batch_first=True,
            about="text encoder",
        ),
        Workload("deepbench_lstm", "LSTM", 4, 50, 1536, 1536, about="DeepBench inference shape"),
    ]
}

# `--all`: every workload but `default` (which is lat_lstm_256 under another name).
ALL = tuple(name for name in WORKLOADS if name != "default")


def get_workload(w) -> Workload:
    if isinstance(w, Workload):
        return w
    try:
        return WORKLOADS[w]
    except KeyError:
        raise ValueError(f"unknown workload {w!r}; known: {', '.join(WORKLOADS)}") from None


# --- peers -----------------------------------------------------------------------------------

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
            from . import __version__

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
            from ._torch import from_torch

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
    from . import _modules

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
    from ._runtime import set_num_threads

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
    errors = _compare(to_triple(call()), ref) if ref is not None else {}
    return call, errors


# --- results ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    """One peer on one workload at one thread count. Times in microseconds per call
    (streaming: per loop of T steps). median_us is None when the peer was not run (note
    says why). errors: max abs error vs torch per tensor (output, h_n, c_n)."""

    workload: str
    peer: str
    threads: int
    median_us: float | None = None
    p90_us: float | None = None
    gflops: float | None = None
    max_abs_err_vs_torch: float | None = None
    errors: dict = dataclasses.field(default_factory=dict)
    agrees: bool | None = None  # max_abs_err_vs_torch <= TOLERANCE; None: not checked
    samples: int = 0
    others_load: float | None = None  # share of all cores other processes used while timing
    note: str = ""
    threads_used: int | None = None  # fewer than `threads` for a single-threaded peer (tract)

    @property
    def timed(self) -> bool:
        return self.median_us is not None


def _compare(got, ref) -> dict:
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


def _time_side_by_side(calls: dict, min_time: float) -> dict:
    """Times every call in rotating rounds of bursts (see the module docstring). Returns
    {peer: [seconds per call, ...]}. Stops after _MIN_ROUNDS rounds once the calls have run
    min_time per peer in total."""
    bursts = {}
    for name, call in calls.items():
        time.sleep(_GAP_SECONDS)
        call()  # warm-up: first-call allocations, lazy compilation, page faults
        t0 = time.perf_counter()
        call()
        once = max(time.perf_counter() - t0, 1e-7)
        bursts[name] = int(min(_MAX_BURST, max(_MIN_BURST, _BURST_SECONDS / once)))
    samples = {name: [] for name in calls}
    names = list(calls)
    spent, rounds = 0.0, 0
    while rounds < _MIN_ROUNDS or spent < min_time * len(names):
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            call, out = calls[name], samples[name]
            time.sleep(_GAP_SECONDS)
            for _ in range(bursts[name]):
                t0 = time.perf_counter()
                call()
                out.append(time.perf_counter() - t0)
            spent += sum(out[-bursts[name] :])
        rounds += 1
    return samples


class LoadMeter:
    """The share of the machine's cores that other processes kept busy between start() and
    stop(), from /proc/stat (Linux); None elsewhere. Tells a noisy run from a quiet one. This
    process's own CPU time (all its threads and its waited-for children) is subtracted."""

    def start(self):
        self._t0 = (time.perf_counter(), self._own_seconds(), self._busy_seconds())
        return self

    def stop(self) -> float | None:
        wall0, own0, busy0 = self._t0
        busy1 = self._busy_seconds()
        if busy0 is None or busy1 is None:
            return None
        wall = time.perf_counter() - wall0
        others = (busy1 - busy0) - (self._own_seconds() - own0)
        return max(0.0, others / (wall * (os.cpu_count() or 1)))

    @staticmethod
    def _own_seconds() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    @staticmethod
    def _busy_seconds() -> float | None:
        try:
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = ticks[3] + ticks[4]  # idle, iowait
        return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def skip_reason(peer: str) -> str | None:
    if peer == "fastrnn":
        return None
    if _try_import(peer) is None:
        return f"{peer} is not installed"
    if peer != "torch" and _try_import("torch") is None:
        return f"{peer} runs the ONNX graph exported from torch, which is not installed"
    if peer != "torch" and _try_import("onnx") is None:
        return f"{peer} needs the onnx package for torch.onnx.export, which is not installed"
    return None


def default_threads() -> tuple:
    """(1, 2), or (1,) on a one-core machine."""
    from ._runtime import cpu_info

    hw = cpu_info()["hardware_threads"] or os.cpu_count() or 1
    return (1, 2) if hw >= 2 else (1,)


def run(
    workloads: Iterable = ("default",),
    threads: Sequence[int] = (1, 2),
    peers: Sequence[str] | None = None,
    min_time: float = 1.0,
    progress: Callable[[str], None] | None = None,
    seed: int = 0,
    retries: int = 0,
) -> list:
    """Runs each workload on each peer at each thread count, side by side, and returns a list
    of Result (one per workload × thread count × peer, skipped peers included with a note).

    workloads: names from WORKLOADS or Workload objects. threads: thread counts, every peer
    gets the same. peers: subset of PEERS (default: all; missing ones are skipped). min_time:
    seconds of timing per peer, per workload and thread count (at least 3 rounds are run).
    progress: called with one line of text at each stage. retries: when other processes
    kept more than 10% of the cores busy while timing, time again up to this many times and
    keep the quietest attempt (each record's others_load says how busy it was).
    """
    say = progress or (lambda msg: None)
    ws = [get_workload(w) for w in workloads]
    peers = normalize_peers(peers)
    threads = [int(t) for t in threads]
    if any(t < 1 for t in threads):
        raise ValueError(f"threads must be positive integers, got {threads}")
    skipped = {p: skip_reason(p) for p in peers}
    active = [p for p in peers if skipped[p] is None]
    results = []
    with tempfile.TemporaryDirectory(prefix="fastrnn-bench-") as workdir:
        for i, w in enumerate(ws, 1):
            say(f"[{i}/{len(ws)}] {w.name}: {w.describe()}: building models")
            case = Case(w, seed, workdir)
            for n in threads:
                results.extend(
                    _run_one(
                        case, n, peers, active, skipped, min_time, retries, say, f"[{i}/{len(ws)}]"
                    )
                )
    return results


def _run_one(case, n, peers, active, skipped, min_time, retries, say, tag) -> list:
    w = case.w
    records = {p: Result(w.name, p, n, note=skipped[p] or "") for p in peers}
    for p in peers:
        if p in SINGLE_THREADED:
            records[p].threads_used = 1
    calls = {}
    for peer in active:
        say(f"{tag} {w.name} threads={n}: preparing {peer}")
        try:
            call, errors = prepare(case, peer, n)
        except Exception as e:  # noqa: BLE001  a peer that cannot run this graph is reported, not fatal
            records[peer].note = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            continue
        rec = records[peer]
        if errors:
            rec.errors = errors
            rec.max_abs_err_vs_torch = max(errors.values())
            rec.agrees = rec.max_abs_err_vs_torch <= TOLERANCE
            if not rec.agrees:
                rec.note = f"disagrees with torch: max abs error {rec.max_abs_err_vs_torch:.2e} > {TOLERANCE:g}"
        elif peer == "fastrnn":
            rec.note = "not checked: torch is not installed"
        calls[peer] = call
    if calls:
        say(f"{tag} {w.name} threads={n}: timing {', '.join(calls)}")
        # Every peer runs at this thread count; the global knobs are set again right before.
        _set_global_threads(n, calls)
        samples, load = None, None
        for attempt in range(1 + retries):
            if attempt:
                say(
                    f"{tag} {w.name} threads={n}: other processes used {100 * load:.0f}% of the "
                    f"cores; timing again ({attempt}/{retries})"
                )
                time.sleep(1.0)  # a pause, in case the other work is about to end
            meter = LoadMeter().start()
            attempt_samples = _time_side_by_side(calls, min_time)
            attempt_load = meter.stop()
            if samples is None or (attempt_load is not None and attempt_load < load):
                samples, load = attempt_samples, attempt_load
            if attempt_load is None or attempt_load <= BUSY:
                break
        flops = w.flops()
        for peer, s in samples.items():
            rec = records[peer]
            us = np.asarray(s) * 1e6
            rec.median_us = float(np.median(us))
            rec.p90_us = float(np.percentile(us, 90))
            rec.gflops = flops / (rec.median_us * 1e3)
            rec.samples = len(s)
            rec.others_load = load
    return [records[p] for p in peers]


def _set_global_threads(n: int, calls) -> None:
    from ._runtime import set_num_threads

    set_num_threads(n)
    if "torch" in calls:
        import torch

        torch.set_num_threads(n)


# --- summaries and formatters ----------------------------------------------------------------


def _grouped(results) -> dict:
    """{(workload, threads): {peer: Result}} in first-seen order."""
    groups: dict = {}
    for r in results:
        groups.setdefault((r.workload, r.threads), {})[r.peer] = r
    return groups


def best_peer(group: dict):
    """The fastest timed peer other than fastrnn that agrees with torch (or was not checked)."""
    rivals = [r for p, r in group.items() if p != "fastrnn" and r.timed and r.agrees is not False]
    return min(rivals, key=lambda r: r.median_us) if rivals else None


def speedup(group: dict) -> float | None:
    """Best peer's median ÷ fastrnn's: above 1 means fastrnn is faster."""
    me, best = group.get("fastrnn"), best_peer(group)
    if me is None or not me.timed or best is None:
        return None
    return best.median_us / me.median_us


def format_time(us: float | None) -> str:
    """Three significant digits in µs, ms or s."""
    if us is None:
        return "—"
    for unit, scale in (("µs", 1.0), ("ms", 1e3), ("s", 1e6)):
        v = us / scale
        if float(f"{v:.3g}") < 1000 or unit == "s":
            return f"{float(f'{v:.3g}'):g} {unit}"
    return f"{us:g} µs"


def _peer_columns(results) -> list:
    seen = {r.peer for r in results if r.timed}
    return [p for p in PEERS if p in seen]


def format_notes(results) -> list:
    """Distinct notes, each with where it applies."""
    notes: dict = {}
    for r in results:
        if r.note:
            notes.setdefault((r.peer, r.note), []).append(f"{r.workload}@{r.threads}")
    busy = []
    for (name, n), g in _grouped(results).items():
        loads = [r.others_load for r in g.values() if r.others_load is not None]
        if loads and loads[0] > BUSY:
            busy.append(f"{name}@{n} {100 * loads[0]:.0f}%")
    out = []
    if busy:
        out.append(
            f"other processes kept the cores busy while timing (share of all cores): {', '.join(busy)}; "
            "those rows are less trustworthy"
        )
    for (peer, note), where in notes.items():
        if note.startswith(peer):
            out.append(note)
        else:
            out.append(f"{peer}: {note} ({', '.join(where)})")
    return out


def format_markdown(results, bounds: dict | None = None) -> str:
    """A markdown table: one row per workload × threads; each peer's median with its time
    relative to fastrnn; the speedup of fastrnn over the best peer; fastrnn's GFLOP/s.
    bounds: optional {(workload, threads): lower bound in µs}, adds fastrnn ÷ bound."""
    peers = _peer_columns(results)
    rivals = [p for p in peers if p != "fastrnn"]
    head = (
        ["workload", "threads", "fastrnn"]
        + rivals
        + ["best peer", "fastrnn speedup", "fastrnn GFLOP/s"]
    )
    if bounds:
        head += ["lower bound", "fastrnn ÷ bound"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|",
    ]
    for (name, n), g in _grouped(results).items():
        me = g.get("fastrnn")
        row = [f"`{name}`", str(n), _cell(me, None)]
        for p in rivals:
            row.append(_cell(g.get(p), me))
        best, s = best_peer(g), speedup(g)
        row.append(best.peer if best else "—")
        row.append(f"**{s:.2f}×**" if s else "—")
        row.append(f"{me.gflops:.1f}" if me and me.timed else "—")
        if bounds:
            b = bounds.get((name, n))
            row.append(format_time(b) if b else "—")
            row.append(f"{me.median_us / b:.2f}" if b and me and me.timed else "—")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    legend = (
        "Median time per call (streaming: per 100 steps). (×r): that peer's median ÷ fastrnn's "
        "(above 1: fastrnn is faster). fastrnn speedup: the best peer's median ÷ fastrnn's. "
        f"⚠: output differs from torch by more than {TOLERANCE:g}."
    )
    single = sorted({r.peer for r in results if r.timed and _on_fewer_threads(r)})
    if single:
        legend += (
            f" (1t): {' and '.join(single)} ran on one thread, being single-threaded (it is "
            "timed at every thread count all the same, as a user would run it)."
        )
    lines.append(legend)
    notes = format_notes(results)
    if notes:
        lines.append("")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines)


def _cell(r: Result | None, me: Result | None) -> str:
    if r is None or not r.timed:
        return "—"
    text = format_time(r.median_us)
    if me is not None and me.timed:
        text += f" (×{r.median_us / me.median_us:.2f})"
    if _on_fewer_threads(r):
        text += f" ({r.threads_used}t)"
    if r.agrees is False:
        text += " ⚠"
    return text


def _on_fewer_threads(r: Result) -> bool:
    """True when the peer ran on fewer threads than the row's thread count (tract)."""
    return r.threads_used is not None and r.threads_used < r.threads


def format_detail(results) -> str:
    """Plain text, one line per peer: median, p90, GFLOP/s, error vs torch, time ÷ fastrnn."""
    lines = []
    head = f"{'threads':>7}  {'peer':<12}{'median':>10}{'p90':>10}{'GFLOP/s':>9}{'max|Δ| vs torch':>17}  vs fastrnn"
    current = None
    for (name, n), g in _grouped(results).items():
        if name != current:
            current = name
            w = WORKLOADS.get(name)
            if lines:
                lines.append("")
            lines.append(
                f"{name}: {w.describe()} · {w.flops() / 1e9:.3g} GFLOP per call" if w else name
            )
            lines.append(head)
        me = g.get("fastrnn")
        for peer, r in g.items():
            if not r.timed:
                continue
            err = "—" if r.max_abs_err_vs_torch is None else f"{r.max_abs_err_vs_torch:.1e}"
            if r.agrees is False:
                err += " ⚠"
            rel = ""
            if me is not None and me.timed:
                rel = (
                    "1.00×"
                    if peer == "fastrnn"
                    else f"{r.median_us / me.median_us:.2f}× slower"
                    if r.median_us >= me.median_us
                    else f"{me.median_us / r.median_us:.2f}× faster"
                )
            name = f"{peer} (1t)" if _on_fewer_threads(r) else peer
            lines.append(
                f"{n:>7}  {name:<12}{format_time(r.median_us):>10}{format_time(r.p90_us):>10}"
                f"{r.gflops:>9.1f}{err:>17}  {rel}"
            )
    return "\n".join(lines)


def parity_lines(results) -> tuple:
    """(lines, ok): fastrnn's max abs error vs torch per workload (worst over thread counts),
    PASS when within PARITY_TOLERANCE. ok is None when nothing was checked."""
    worst: dict = {}
    for r in results:
        if r.peer != "fastrnn" or not r.errors:
            continue
        acc = worst.setdefault(r.workload, {})
        for k, v in r.errors.items():
            acc[k] = max(acc.get(k, 0.0), v)
    lines, ok = [], None
    for name, errs in worst.items():
        passed = max(errs.values()) <= PARITY_TOLERANCE
        ok = passed if ok is None else ok and passed
        detail = ", ".join(f"{k} {v:.1e}" for k, v in errs.items())
        lines.append(
            f"parity vs torch, {name}: max abs {detail} → {'PASS' if passed else 'FAIL'} (≤ {PARITY_TOLERANCE:g})"
        )
    return lines, ok


# CPU flags (as /proc/cpuinfo spells them) that tell which kernels a CPU can run.
CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
# Environment variables that cap an instruction set: fastrnn's, then torch's (oneDNN, MKL, ATen).
ISA_VARIABLES = (
    "FASTRNN_ISA",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "ATEN_CPU_CAPABILITY",
)


def _cpuinfo_fields() -> dict:
    """The first processor's fields of /proc/cpuinfo ({} elsewhere)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_caches() -> dict:
    """{"L1d", "L2", "L3"}: bytes of each data cache level of cpu0 (L1d and L2 per core, L3 as
    one slice shared by several cores), from sysfs; levels sysfs does not list are left out."""
    import glob

    def read(path):
        with open(path) as f:
            return f.read().strip()

    sizes = {}
    for index in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            level, kind, text = (read(os.path.join(index, k)) for k in ("level", "type", "size"))
            scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
            size = int(text.rstrip("KMG")) * scale
        except (OSError, ValueError, IndexError):
            continue
        if kind != "Instruction":
            sizes["L1d" if level == "1" else f"L{level}"] = size
    return sizes


def _zen(family: int, model: int) -> str | None:
    """AMD's core generation from the CPUID family and model (AMD's published model ranges)."""
    if family == 26:
        return "Zen 5"
    if family == 25:
        if 0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF:
            return "Zen 4"  # Genoa, Raphael, Phoenix, Bergamo
        if model <= 0x0F or 0x20 <= model <= 0x5F:
            return "Zen 3"  # Milan, Vermeer, Rembrandt, Cezanne
    if family == 23:
        return "Zen 2" if model >= 0x30 else "Zen"
    return None


# Intel server cores by CPUID model (family 6). Model 85 is Skylake-SP, Cascade Lake or Cooper
# Lake depending on the stepping, so it is left out.
_INTEL_CORES = {
    106: "Ice Lake-SP",
    108: "Ice Lake-SP",
    143: "Sapphire Rapids",
    207: "Emerald Rapids",
    173: "Granite Rapids",
    174: "Granite Rapids",
    175: "Sierra Forest",
}


def cpu_generation(vendor: str, family: int | None, model: int | None) -> str | None:
    if family is None or model is None:
        return None
    if vendor == "AuthenticAMD":
        return _zen(family, model)
    if vendor == "GenuineIntel" and family == 6:
        return _INTEL_CORES.get(model)
    return None


def cpu_slug(name: str, generation: str | None, family=None, model=None) -> str:
    """A file name for a CPU: its model name without trademarks, clock and core count, then its
    core generation when known ("amd-epyc-zen4"); a name without a model number and no known
    generation gets the CPUID family and model ("intel-xeon-family6-model167")."""
    import re

    text = re.sub(r"\((R|TM|tm|r)\)", " ", name)
    text = re.sub(r"@.*$", " ", text)  # clock speed
    text = re.sub(r"\b\d+-Core\b|\bCPU\b|\bProcessor\b", " ", text, flags=re.IGNORECASE)
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown-cpu"
    if generation:
        tag = re.sub(r"[^a-z0-9]+", "-", generation.lower().replace("zen ", "zen")).strip("-")
        if tag not in slug:
            slug += f"-{tag}"
    elif not re.search(r"\d", slug) and family is not None and model is not None:
        slug += f"-family{family}-model{model}"
    return slug


def machine_info() -> dict:
    """The CPU (model, CPUID family and model, core generation, the flags in CPU_FLAGS, cache
    sizes, a file-name slug), fastrnn's view of it, the instruction-set caps in the environment,
    and the versions of Python, numpy and every peer (with torch's ATen ISA once imported)."""
    from ._runtime import cpu_info

    fields = _cpuinfo_fields()
    name = fields.get("model name") or platform.processor() or platform.machine()
    vendor = fields.get("vendor_id", "")
    try:
        family, model_number = int(fields["cpu family"]), int(fields["model"])
    except (KeyError, ValueError):
        family = model_number = None
    model = name
    if family is not None:  # a VM may hide the marketing name
        model += f" (family {family}, model {model_number})"
    generation = cpu_generation(vendor, family, model_number)
    flags = set(fields.get("flags", "").split())
    info = {
        "cpu": model,
        "cpu_name": name,
        "cpu_vendor": vendor,
        "cpu_family": family,
        "cpu_model": model_number,
        "cpu_generation": generation,
        "cpu_flags": {f: f in flags for f in CPU_FLAGS} if flags else {},
        "caches": cpu_caches(),
        "slug": cpu_slug(name, generation, family, model_number),
        "logical_cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "fastrnn": cpu_info(),
        "isa_environment": {k: os.environ[k] for k in ISA_VARIABLES if k in os.environ},
        "peers": peer_versions(),
    }
    if "torch" in sys.modules:
        info["torch_cpu_capability"] = sys.modules["torch"].backends.cpu.get_cpu_capability()
    return info


def to_json(results, machine: dict | None = None, extra: dict | None = None) -> str:
    doc = {
        "machine": machine if machine is not None else machine_info(),
        "workloads": {
            name: dict(dataclasses.asdict(w), flops=w.flops())
            for name, w in WORKLOADS.items()
            if any(r.workload == name for r in results)
        },
        "results": [dataclasses.asdict(r) for r in results],
    }
    if extra:
        doc.update(extra)
    return json.dumps(doc, indent=2, ensure_ascii=False, default=_json_default)


def _json_default(o):
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def plot(results, path: str, title: str = "fastrnn vs peers") -> None:
    """A PNG chart: per thread count, each peer's time ÷ fastrnn's per workload (log scale;
    above 1 means fastrnn is faster). Raises ImportError when matplotlib is missing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    groups = _grouped(results)
    thread_counts = sorted({n for _, n in groups})
    names = list(dict.fromkeys(name for name, _ in groups))
    rivals = [p for p in _peer_columns(results) if p != "fastrnn"]
    fig, axes = plt.subplots(
        len(thread_counts),
        1,
        figsize=(max(8, 1.1 * len(names) + 2), 3.6 * len(thread_counts)),
        squeeze=False,
    )
    width = 0.8 / max(1, len(rivals))
    for ax, n in zip(axes[:, 0], thread_counts):
        for k, peer in enumerate(rivals):
            xs, ys = [], []
            for i, name in enumerate(names):
                g = groups.get((name, n), {})
                me, r = g.get("fastrnn"), g.get(peer)
                if me and r and me.timed and r.timed:
                    xs.append(i + (k - (len(rivals) - 1) / 2) * width)
                    ys.append(r.median_us / me.median_us)
            label = f"{peer} (1 thread)" if n > 1 and peer in SINGLE_THREADED else peer
            bars = ax.bar(xs, ys, width, label=label)
            ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        times = ticker.FuncFormatter(lambda v, _: f"{v:g}×")
        ax.yaxis.set_major_formatter(times)
        ax.yaxis.set_minor_formatter(times)
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("peer time ÷ fastrnn time")
        ax.set_title(
            f"{title}, {n} thread{'s' if n > 1 else ''} (above 1: fastrnn faster)", fontsize=10
        )
        if rivals:
            ax.legend(fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_progress(msg: str) -> None:
    """A progress callback that writes to stderr."""
    print(msg, file=sys.stderr, flush=True)
