"""Parity report: run a torch module and its fastrnn twin on the same input and measure the
difference of every output and state. torch is imported only when verify is called."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import as_float32, shape_text, to_numpy

# max_rel ignores reference values smaller than this in magnitude: there the ratio measures
# float32 rounding of a near-zero value, not an error; such elements are judged by max_abs.
REL_FLOOR = 1e-3


@dataclass(frozen=True)
class TensorError:
    """The difference between fastrnn and torch on one tensor."""

    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    where: tuple  # index of the largest absolute difference

    def __str__(self) -> str:
        return (
            f"{self.name:<8} {shape_text(self.shape):<16} {self.max_abs:<10.3g} "
            f"{self.max_rel:<10.3g} {self.where}"
        )


@dataclass
class VerifyReport:
    """What fastrnn.verify found. `ok` is max_abs <= tolerance over all tensors (a NaN or inf
    where torch has none, or a shape mismatch, is never ok). `max_rel` is the largest
    |fastrnn − torch| / |torch| over elements with |torch| >= 1e-3."""

    ok: bool
    max_abs: float
    max_rel: float
    tolerance: float
    errors: dict = field(default_factory=dict)  # tensor name -> TensorError
    module: str = ""
    input_shape: tuple = ()
    lengths: bool = False

    def __str__(self) -> str:
        verdict = "OK" if self.ok else "FAIL"
        sign = "<=" if self.ok else ">"
        lines = [
            f"fastrnn.verify: {verdict}  max_abs {self.max_abs:.3g} {sign} tolerance "
            f"{self.tolerance:.3g}  (max_rel {self.max_rel:.3g})",
            f"  torch module: {self.module}",
            f"  input: {shape_text(self.input_shape)}" + (", with lengths" if self.lengths else ""),
            f"  {'tensor':<8} {'shape':<16} {'max_abs':<10} {'max_rel':<10} worst at",
        ]
        lines += [f"  {e}" for e in self.errors.values()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        per = ", ".join(f"{k}: {e.max_abs:.3g}" for k, e in self.errors.items())
        return (
            f"VerifyReport(ok={self.ok}, max_abs={self.max_abs:.3g}, "
            f"max_rel={self.max_rel:.3g}, tolerance={self.tolerance:.3g}, errors={{{per}}})"
        )


def _compare(name: str, got: np.ndarray, ref: np.ndarray) -> TensorError:
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return TensorError(name, ref.shape, float("inf"), float("inf"), ())
    if got.size == 0:
        return TensorError(name, ref.shape, 0.0, 0.0, ())
    with np.errstate(invalid="ignore"):
        diff = np.abs(got - ref)
        diff = np.where(got == ref, 0.0, diff)  # equal infinities
        diff = np.where(np.isnan(got) & np.isnan(ref), 0.0, diff)
        diff = np.where(np.isnan(diff), np.inf, diff)  # NaN on one side only
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
) -> VerifyReport:
    """Runs `torch_module` (nn.LSTM/GRU/RNN or a cell; in eval and inference mode) and fastrnn
    on the same input and reports the largest differences of outputs and states.

    x: the input in the module's layout (numpy or torch). None: a random one from `seed`,
       T=16, batch 2 for layers; batch 2 with a random state for cells (a cell run from a
       zero state would leave weight_hh untested).
    lengths: per-sequence lengths (batched x only); torch runs them through
       pack_padded_sequence(enforce_sorted=False), fastrnn through `lengths=`.
    state: the initial state in torch's layout (h, or (h, c) for LSTMs); None: zeros.
    model: the fastrnn model to check; None: fastrnn.from_torch(torch_module).
    tolerance: the largest absolute difference that passes (default 1e-5: fastrnn's fp32
       accuracy contract on inputs and weights of ordinary scale).
    """
    import torch
    import torch.nn as nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from ._torch import from_torch

    layer_types = (nn.LSTM, nn.GRU, nn.RNN)
    cell_types = (nn.LSTMCell, nn.GRUCell, nn.RNNCell)
    if not isinstance(torch_module, layer_types + cell_types):
        raise TypeError(
            "verify expects nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell or "
            f"nn.RNNCell, got {type(torch_module).__name__}"
        )
    if not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    fr = from_torch(torch_module) if model is None else model
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

    # torch
    dtype = next(torch_module.parameters()).dtype
    was_training = torch_module.training
    torch_module.eval()
    try:
        with torch.inference_mode():
            xt = torch.from_numpy(x).to(dtype)
            st = None
            if np_state is not None:
                st = tuple(torch.from_numpy(s).to(dtype) for s in np_state)
                st = st if is_lstm else st[0]
            if is_cell:
                out = torch_module(xt, st)
                ref = dict(zip(("h", "c"), out)) if is_lstm else {"h": out}
            else:
                bf = torch_module.batch_first
                if lengths is not None:
                    T = x.shape[1 if bf else 0]
                    packed = pack_padded_sequence(
                        xt,
                        torch.as_tensor(lengths, dtype=torch.int64),
                        batch_first=bf,
                        enforce_sorted=False,
                    )
                    out, hn = torch_module(packed, st)
                    out, _ = pad_packed_sequence(out, batch_first=bf, total_length=T)
                else:
                    out, hn = torch_module(xt, st)
                ref = (
                    {"output": out, "h_n": hn[0], "c_n": hn[1]}
                    if is_lstm
                    else {"output": out, "h_n": hn}
                )
    finally:
        torch_module.train(was_training)
    ref = {k: v.detach().to(torch.float64).numpy() for k, v in ref.items()}

    # fastrnn
    fr_state = None if np_state is None else (np_state if is_lstm else np_state[0])
    if is_cell:
        got = fr(x, fr_state)
        got = dict(zip(("h", "c"), got)) if is_lstm else {"h": got}
    else:
        out, hn = fr(x, fr_state, lengths=lengths)
        got = {"output": out, "h_n": hn[0], "c_n": hn[1]} if is_lstm else {"output": out, "h_n": hn}

    errors = {k: _compare(k, got[k], ref[k]) for k in ref}
    max_abs = max(e.max_abs for e in errors.values())
    max_rel = max(e.max_rel for e in errors.values())
    return VerifyReport(
        ok=bool(max_abs <= tolerance),
        max_abs=max_abs,
        max_rel=max_rel,
        tolerance=float(tolerance),
        errors=errors,
        module=repr(torch_module),
        input_shape=tuple(x.shape),
        lengths=lengths is not None,
    )
