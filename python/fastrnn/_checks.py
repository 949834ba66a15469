"""Argument checks shared by the public classes: every message names the argument, the
expected and the actual value. Nothing here imports torch."""

from __future__ import annotations

import numpy as np

from . import _core


def shape_text(shape) -> str:
    parts = [str(s) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


_NUMPY_FLOATS = ("torch.float16", "torch.float32", "torch.float64")


def to_numpy(obj, name: str) -> np.ndarray:
    """A numpy array or a torch tensor (without importing torch) as a numpy array."""
    if isinstance(obj, np.ndarray):
        return obj
    if type(obj).__module__.split(".")[0] == "torch" and hasattr(obj, "detach"):
        t = obj.detach()
        if str(t.layout) != "torch.strided":
            raise TypeError(f"{name} must be a dense tensor, got layout {t.layout}")
        if t.device.type == "meta":
            raise TypeError(f"{name} must hold data, got a meta tensor (shape only)")
        if t.is_floating_point() and str(t.dtype) not in _NUMPY_FLOATS:
            t = t.float()  # bfloat16, float8 variants: exact in float32, unknown to numpy
        # Lazy negation / conjugation views (torch._neg_view, .conj()) refuse .numpy().
        return t.resolve_neg().resolve_conj().cpu().numpy()
    raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(obj).__name__}")


def float_array(obj, name: str) -> np.ndarray:
    """A numpy array or torch tensor of a real floating dtype, not yet converted: callers
    check its shape first, so that a wrong shape is reported before anything is allocated
    (a broadcast view can declare terabytes in a few bytes). Integer, bool, complex and
    non-array inputs are a TypeError."""
    a = to_numpy(obj, name)
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must have a real floating dtype, got {a.dtype}")
    return a


_F32 = np.dtype(np.float32)


def to_float32(a: np.ndarray, copy: bool = False) -> np.ndarray:
    """C-contiguous float32, copying only if needed (or always, with copy=True); the rank is
    kept (a 0-d array stays 0-d, unlike np.ascontiguousarray). The result's dtype is numpy's
    canonical float32 object, which the core requires: an equal dtype from an unpickled
    array can survive a conversion and would be refused ("must be float32, got float32")."""
    out = a.astype(_F32, order="C") if copy else np.asarray(a, dtype=_F32, order="C")
    return out if out.dtype is _F32 else out.view(_F32)


def as_float32(obj, name: str) -> np.ndarray:
    """float_array, then to_float32 (for inputs whose shape is checked afterwards)."""
    return to_float32(float_array(obj, name))


def as_lengths(obj, batch: int, steps: int, prefix: str = "") -> np.ndarray:
    """prefix: the caller's name for messages ("GRU: ")."""
    name = prefix + "lengths"
    a = to_numpy(obj, name) if not isinstance(obj, (list, tuple)) else np.asarray(obj)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {a.dtype}")
    if a.shape != (batch,):
        raise ValueError(
            f"{name} must have shape ({batch},) (one per sequence), got {shape_text(a.shape)}"
        )
    bad = np.flatnonzero((a < 1) | (a > steps))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name} must be in [1, {steps}] (T={steps}), got {int(a[i])} at index {i}"
        )
    return np.ascontiguousarray(a, dtype=np.int64)


def check_shape(a: np.ndarray, name: str, expected: tuple, what: str = "") -> None:
    if a.shape != tuple(expected):
        extra = f" ({what})" if what else ""
        raise ValueError(
            f"{name} must have shape {shape_text(expected)}{extra}, got {shape_text(a.shape)}"
        )


def positive_int(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def call_threads(value, name: str) -> int:
    """A per-call thread cap: None is 0 (the process budget), else an int >= 1."""
    if value is None:
        return 0
    return positive_int(value, f"{name}: num_threads")


# Bounds on model sizes, checked before anything is allocated: the compiled core's own
# (csrc/core/limits.h says why each is what it is), so both layers refuse the same sizes.
MAX_SIZE = _core.LIMITS["max_features"]  # input_size, hidden_size, proj_size
MAX_LAYERS = _core.LIMITS["max_layers"]
MAX_PARAMETERS = _core.LIMITS["max_parameters"]  # weights in torch's layout
MAX_REDUCED_SIZE = _core.LIMITS["max_reduced_features"]  # the same, of a bf16 / int8 model
