"""Parity report by fastrnn's accuracy contract: run a torch module, its float64 copy and its
fastrnn twin on the same input; fastrnn fp32 passes when, for every output and state, its
error against the float64 evaluation is at most ACCURACY_RATIO (2) times torch fp32's own
error, or at most the tolerance (an absolute floor). Trained recurrent models amplify every
rounding difference over time, so two fp32 implementations can drift apart while both stay
equally close to float64: comparing fastrnn with torch alone would call that a failure. The
difference fastrnn - torch is reported too. torch is imported only when verify is called."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ._checks import as_float32, shape_text, to_numpy

# max_rel ignores reference values smaller than this in magnitude: there the ratio measures
# float32 rounding of a near-zero value, not an error; such elements are judged by max_abs.
REL_FLOOR = 1e-3
# fastrnn's error against float64 may be up to this many times torch fp32's own (the
# contract, README "Parity guarantee").
ACCURACY_RATIO = 2.0


@dataclass(frozen=True)
class TensorError:
    """One tensor: fastrnn - torch (max_abs, max_rel, where) and, when the float64 evaluation
    ran, each one's max abs error against it (fastrnn_error, torch_error) and the verdict."""

    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    where: tuple  # index of the largest absolute difference fastrnn - torch
    fastrnn_error: float = float("nan")  # max |fastrnn - float64|
    torch_error: float = float("nan")  # max |torch - float64|
    ok: bool = True
    sequences: int = 1  # along the batch axis (1 when unbatched)
    sequences_ok: int = 1  # those on which fastrnn is within the contract

    @property
    def ratio(self) -> float:
        """fastrnn's error against float64 over torch's (inf when torch's is 0 and fastrnn's
        is not; 1 when both are 0)."""
        if self.torch_error == 0:
            return 1.0 if self.fastrnn_error == 0 else float("inf")
        return self.fastrnn_error / self.torch_error

    def __str__(self) -> str:
        return (
            f"{self.name:<8} {shape_text(self.shape):<16} {self.fastrnn_error:<11.3g} "
            f"{self.torch_error:<11.3g} {self.ratio:<6.3g} "
            f"{f'{self.sequences_ok}/{self.sequences}':<9} {self.max_abs:<13.3g} "
            f"{self.max_rel:<10.3g} {self.where}" + ("" if self.ok else "  <- FAIL")
        )


@dataclass
class VerifyReport:
    """What fastrnn.verify found. `ok`: for every tensor, on at least half of the input's
    sequences (its batch rows; all of it when unbatched), fastrnn's max abs error against the
    float64 evaluation is at most ACCURACY_RATIO × torch's own on that sequence, or at most
    `tolerance` (a NaN or inf where float64 has none is never within). One sequence's error
    is one draw: a trained model amplifies rounding chaotically, so on a given sequence
    either implementation may land closer (the largest over the whole input was above 2x in
    5 of 24 heavy-tailed LSTMs, T = 300, B = 8, the median over sequences never above 1.6). `fastrnn_error`, `torch_error`: the largest over
    tensors; `max_abs`, `max_rel`: fastrnn - torch, the largest over tensors (`max_rel` over
    elements with |torch| >= 1e-3). `torch_dtype`: the module's own dtype (float32, or
    float64 for a double module, whose error against float64 is then 0)."""

    ok: bool
    max_abs: float
    max_rel: float
    tolerance: float
    errors: dict = field(default_factory=dict)  # tensor name -> TensorError
    module: str = ""
    input_shape: tuple = ()
    lengths: bool = False
    fastrnn_error: float = float("nan")
    torch_error: float = float("nan")
    torch_dtype: str = "float32"
    # A bf16 / int8 model is judged against torch float32 by the stated bounds instead
    # (fastrnn._quantize.BOUNDS, docs/precision.md): max and mean |fastrnn − torch|.
    dtype: str = "float32"
    bound_max: float = float("nan")
    bound_mean: float = float("nan")
    mean_abs: float = float("nan")

    def verdict(self) -> str:
        """The verdict in words, naming the tensor that decided it."""
        worst = max(self.errors.values(), key=_margin, default=None)
        if worst is None:
            return "nothing to compare"
        if self.dtype != "float32":
            return (
                f"{self.dtype} {'within' if self.ok else 'OUTSIDE'} its stated bound vs torch "
                f"float32: max |fastrnn - torch| {self.max_abs:.3g} (bound {self.bound_max:g}), "
                f"mean {self.mean_abs:.3g} (bound {self.bound_mean:g})"
            )
        torch_name = f"torch {self.torch_dtype}"
        if self.ok:
            return (
                f"as accurate as torch: error vs float64 {self.fastrnn_error:.3g} "
                f"({torch_name}: {self.torch_error:.3g}; passes up to "
                f"{ACCURACY_RATIO:g}x torch's or {self.tolerance:.3g}, per sequence)"
            )
        if not np.isfinite(worst.fastrnn_error):
            return f"{worst.name} is not finite where float64 is (or its shape differs)"
        return (
            f"less accurate than torch: {worst.name} error vs float64 "
            f"{worst.fastrnn_error:.3g} > {ACCURACY_RATIO:g} x {torch_name}'s "
            f"{worst.torch_error:.3g} and > tolerance {self.tolerance:.3g} on "
            f"{worst.sequences - worst.sequences_ok} of {worst.sequences} sequences"
        )

    def __str__(self) -> str:
        lines = [
            f"fastrnn.verify: {'OK' if self.ok else 'FAIL'}  {self.verdict()}",
            f"  torch module: {self.module}",
            f"  input: {shape_text(self.input_shape)}" + (", with lengths" if self.lengths else ""),
            (
                f"  {'tensor':<8} {'shape':<16} {'fastrnn-f64':<11} {'torch-f64':<11} "
                f"{'ratio':<6} {'within':<9} {'fastrnn-torch':<13} {'rel':<10} worst at"
            ),
        ]
        lines += [f"  {e}" for e in self.errors.values()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        per = ", ".join(f"{k}: {e.fastrnn_error:.3g}" for k, e in self.errors.items())
        return (
            f"VerifyReport(ok={self.ok}, fastrnn_error={self.fastrnn_error:.3g}, "
            f"torch_error={self.torch_error:.3g}, max_abs={self.max_abs:.3g}, "
            f"tolerance={self.tolerance:.3g}, errors={{{per}}})"
        )


def _margin(e: TensorError) -> float:
    """How close a tensor is to failing: the share of sequences outside the contract, then
    its error over what the contract allows it."""
    return (
        (e.sequences - e.sequences_ok) / e.sequences
        + (0.0 if e.ok else 1.0)
        + 1e-3 * min(e.fastrnn_error / max(ACCURACY_RATIO * e.torch_error, 1e-300), 1e3)
    )


def _abs_diff(got: np.ndarray, ref: np.ndarray):
    """|got - ref| in float64, 0 where both are the same infinity or both NaN, inf where only
    one side is NaN or infinite; None for a shape mismatch."""
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return None
    with np.errstate(invalid="ignore"):
        diff = np.abs(got - ref)
        diff = np.where(got == ref, 0.0, diff)  # equal infinities
        diff = np.where(np.isnan(got) & np.isnan(ref), 0.0, diff)
        return np.where(np.isnan(diff), np.inf, diff)  # NaN on one side only


def _sequence_errors(got, truth, axis) -> np.ndarray:
    """max |got - truth| per sequence (index along `axis`, the batch axis; None: the whole
    tensor is one sequence); inf for a shape mismatch."""
    diff = _abs_diff(got, truth)
    if diff is None:
        return np.array([np.inf])
    if axis is None:
        diff = diff[None]
        axis = 0
    n = diff.shape[axis]
    if n == 0 or diff.size == 0:
        return np.zeros(n)
    return np.moveaxis(diff, axis, 0).reshape(n, -1).max(axis=1)


def _compare(name: str, got: np.ndarray, ref: np.ndarray) -> TensorError:
    diff = _abs_diff(got, ref)
    if diff is None:
        return TensorError(name, np.shape(ref), float("inf"), float("inf"), ())
    ref = np.asarray(ref, np.float64)
    if diff.size == 0:
        return TensorError(name, ref.shape, 0.0, 0.0, ())
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    big = np.abs(ref) >= REL_FLOOR
    with np.errstate(invalid="ignore"):
        rel = diff[big] / np.abs(ref[big])
    rel[np.isnan(rel)] = np.inf  # inf / inf: a finite value where the reference is infinite
    max_rel = float(np.max(rel)) if big.any() else 0.0
    return TensorError(name, ref.shape, float(diff[worst]), max_rel, tuple(int(i) for i in worst))


def verify(
    torch_module,
    x=None,
    lengths=None,
    tolerance: float = 1e-5,
    *,
    state=None,
    model=None,
    seed: int = 0,
    dtype: str | None = None,
) -> VerifyReport:
    """Runs `torch_module` (nn.LSTM/GRU/RNN or a cell; in eval and inference mode), a float64
    copy of it and fastrnn on the same input, and reports for every output and state
    fastrnn's and torch's max abs error against float64, and fastrnn - torch. It passes when
    fastrnn is at least as accurate as torch by the contract: for every tensor, fastrnn's
    error is at most 2x torch's own, or at most `tolerance`.

    x: the input in the module's layout (numpy or torch). None: a random one from `seed`,
       T=16, batch 2 for layers; batch 2 with a random state for cells (a cell run from a
       zero state would leave weight_hh untested).
    lengths: per-sequence lengths (batched x only); torch runs them through
       pack_padded_sequence(enforce_sorted=False), fastrnn through `lengths=`.
    state: the initial state in torch's layout (h, or (h, c) for LSTMs); None: zeros.
    model: the fastrnn model to check; None: fastrnn.from_torch(torch_module).
    tolerance: an absolute floor: an error against float64 up to it always passes (default
       1e-5; where torch's own error is tiny, 2x of it would judge float32 rounding).
    dtype: "bf16", "int8" or "int7" checks a reduced-precision model (fastrnn.from_torch(module,
       dtype=...), or `model` converted): it passes when the max and the mean of
       |fastrnn − torch float32| over every output and state are within the bounds stated
       in docs/precision.md (reported beside them). None: the model's own dtype.
    """
    import torch
    import torch.nn as nn

    from ._load import from_torch

    layer_types = (nn.LSTM, nn.GRU, nn.RNN)
    cell_types = (nn.LSTMCell, nn.GRUCell, nn.RNNCell)
    if not isinstance(torch_module, layer_types + cell_types):
        raise TypeError(
            "verify expects nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell or "
            f"nn.RNNCell, got {type(torch_module).__name__}"
        )
    if not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    from ._quantize import BOUNDS, dtype_name, quantize

    want = None if dtype is None else dtype_name(dtype, "verify")
    fr = from_torch(torch_module, dtype=want or "float32") if model is None else model
    if want is not None and fr.dtype != want:
        fr = quantize(fr, want)
    is_cell = isinstance(torch_module, cell_types)
    is_lstm = isinstance(torch_module, (nn.LSTM, nn.LSTMCell))
    I, H = torch_module.input_size, torch_module.hidden_size
    rng = np.random.default_rng(seed)

    if x is None:
        if is_cell:
            x = rng.standard_normal((2, I))
            if state is None:
                h = rng.standard_normal((2, H)).astype(np.float32) * 0.5
                state = (h, rng.standard_normal((2, H)).astype(np.float32)) if is_lstm else h
        else:
            x = rng.standard_normal((2, 16, I) if torch_module.batch_first else (16, 2, I))
    x = as_float32(x, "verify: x")
    if not is_cell and x.ndim in (2, 3):
        t_axis = 1 if x.ndim == 3 and torch_module.batch_first else 0
        if x.shape[t_axis] == 0:  # torch would raise a RuntimeError; fastrnn a ValueError
            raise ValueError(
                f"verify: x must hold at least one time step (T >= 1), got {shape_text(x.shape)}"
            )
    if lengths is not None:
        if is_cell or x.ndim != 3:
            raise ValueError(
                f"lengths needs a batched x (3 dimensions), got x of shape {shape_text(x.shape)}"
            )
        lengths = np.asarray(
            to_numpy(lengths, "lengths") if not isinstance(lengths, (list, tuple)) else lengths
        )
    if state is not None:
        parts = state if is_lstm else (state,)
        if is_lstm and (not isinstance(state, (tuple, list)) or len(state) != 2):
            raise TypeError(f"state must be a tuple (h, c) for an LSTM, got {type(state).__name__}")
        np_state = tuple(as_float32(s, f"verify: {n}") for s, n in zip(parts, ("h", "c")))
    else:
        np_state = None

    # torch in its own dtype, then a float64 copy of it: the truth both are measured against.
    dtype = next(torch_module.parameters()).dtype
    ref = _torch_outputs(torch_module, x, lengths, np_state, dtype, is_cell, is_lstm)
    truth_module = copy.deepcopy(torch_module).to(torch.float64)
    truth = _torch_outputs(truth_module, x, lengths, np_state, torch.float64, is_cell, is_lstm)

    # fastrnn
    fr_state = None if np_state is None else (np_state if is_lstm else np_state[0])
    if is_cell:
        got = fr(x, fr_state)
        got = dict(zip(("h", "c"), got)) if is_lstm else {"h": got}
    else:
        out, hn = fr(x, fr_state, lengths=lengths)
        got = {"output": out, "h_n": hn[0], "c_n": hn[1]} if is_lstm else {"output": out, "h_n": hn}

    errors = {}
    for k in ref:
        axis = _batch_axis(k, got[k].ndim, is_cell, getattr(torch_module, "batch_first", False))
        mine = _sequence_errors(got[k], truth[k], axis)
        theirs = _sequence_errors(ref[k], truth[k], axis)
        within = int(np.sum(mine <= np.maximum(ACCURACY_RATIO * theirs, tolerance)))
        errors[k] = dataclasses.replace(
            _compare(k, got[k], ref[k]),
            fastrnn_error=float(mine.max()) if mine.size else 0.0,
            torch_error=float(theirs.max()) if theirs.size else 0.0,
            ok=2 * within >= mine.size,
            sequences=int(mine.size),
            sequences_ok=within,
        )
    reduced = fr.dtype != "float32"
    if reduced:
        bound_max, bound_mean = BOUNDS[fr.dtype]
        total = sum(np.abs(got[k].astype(np.float64) - ref[k]).sum() for k in ref)
        mean_abs = float(total / max(1, sum(ref[k].size for k in ref)))
    else:
        bound_max = bound_mean = mean_abs = float("nan")
    return VerifyReport(
        ok=(
            all(e.max_abs <= bound_max for e in errors.values()) and mean_abs <= bound_mean
            if reduced
            else all(e.ok for e in errors.values())
        ),
        dtype=fr.dtype,
        bound_max=bound_max,
        bound_mean=bound_mean,
        mean_abs=mean_abs,
        max_abs=max(e.max_abs for e in errors.values()),
        max_rel=max(e.max_rel for e in errors.values()),
        tolerance=float(tolerance),
        errors=errors,
        module=repr(torch_module),
        input_shape=tuple(x.shape),
        lengths=lengths is not None,
        fastrnn_error=max(e.fastrnn_error for e in errors.values()),
        torch_error=max(e.torch_error for e in errors.values()),
        torch_dtype=str(dtype).replace("torch.", ""),
    )


def _batch_axis(name: str, ndim: int, is_cell: bool, batch_first: bool):
    """The batch axis of a result tensor, None when unbatched: cells (B, H); layers' states
    (L·D, B, H); outputs (T, B, ·) or, batch_first, (B, T, ·)."""
    if is_cell:
        return 0 if ndim == 2 else None
    if name == "output":
        return (0 if batch_first else 1) if ndim == 3 else None
    return 1 if ndim == 3 else None


def _torch_outputs(module, x, lengths, np_state, dtype, is_cell: bool, is_lstm: bool) -> dict:
    """The module's outputs and final states as float64 numpy arrays, by name, from x (and
    np_state) converted to dtype; run in eval and inference mode, the training flag restored."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            xt = torch.from_numpy(x).to(dtype)
            st = None
            if np_state is not None:
                st = tuple(torch.from_numpy(s).to(dtype) for s in np_state)
                st = st if is_lstm else st[0]
            if is_cell:
                out = module(xt, st)
                ref = dict(zip(("h", "c"), out)) if is_lstm else {"h": out}
            else:
                bf = module.batch_first
                if lengths is not None:
                    T = x.shape[1 if bf else 0]
                    packed = pack_padded_sequence(
                        xt,
                        torch.as_tensor(lengths, dtype=torch.int64),
                        batch_first=bf,
                        enforce_sorted=False,
                    )
                    out, hn = module(packed, st)
                    out, _ = pad_packed_sequence(out, batch_first=bf, total_length=T)
                else:
                    out, hn = module(xt, st)
                ref = (
                    {"output": out, "h_n": hn[0], "c_n": hn[1]}
                    if is_lstm
                    else {"output": out, "h_n": hn}
                )
    finally:
        module.train(was_training)
    return {k: v.detach().to(torch.float64).numpy() for k, v in ref.items()}
