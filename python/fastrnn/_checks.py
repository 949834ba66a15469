"""Argument checks shared by the public classes: every message names the argument, the
expected and the actual value. Nothing here imports torch."""

from __future__ import annotations

import numpy as np


def shape_text(shape) -> str:
    parts = [str(s) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def to_numpy(obj, name: str) -> np.ndarray:
    """A numpy array or a torch tensor (without importing torch) as a numpy array."""
    if isinstance(obj, np.ndarray):
        return obj
    if type(obj).__module__.split(".")[0] == "torch" and hasattr(obj, "detach"):
        t = obj.detach()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.cpu().numpy()
    raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(obj).__name__}")


def as_float32(obj, name: str) -> np.ndarray:
    """Real floating arrays of any dtype and strides become C-contiguous float32 (one copy
    at most); integer, bool, complex and non-array inputs are a TypeError."""
    a = to_numpy(obj, name)
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must have a real floating dtype, got {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


def as_lengths(obj, batch: int, steps: int) -> np.ndarray:
    a = to_numpy(obj, "lengths") if not isinstance(obj, (list, tuple)) else np.asarray(obj)
    if a.dtype.kind not in "iu":
        raise TypeError(f"lengths must hold integers, got dtype {a.dtype}")
    if a.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},) (one per sequence), got {shape_text(a.shape)}")
    bad = np.flatnonzero((a < 1) | (a > steps))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"lengths must be in [1, {steps}] (T={steps}), got {int(a[i])} at index {i}")
    return np.ascontiguousarray(a, dtype=np.int64)


def check_shape(a: np.ndarray, name: str, expected: tuple, what: str = "") -> None:
    if a.shape != tuple(expected):
        extra = f" ({what})" if what else ""
        raise ValueError(f"{name} must have shape {shape_text(expected)}{extra}, got {shape_text(a.shape)}")


def positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)
