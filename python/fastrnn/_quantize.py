"""Reduced precision: the weight formats, the rounding that makes them, and quantize().

A reduced model holds its weight matrices (W_ih, W_hh, W_hr) in bf16 or int8 (int7: int8
with 7-bit weights, q in [-63, 63], which CPUs without VNNI multiply with one instruction
fewer; docs/precision.md); biases,
peepholes, inputs, states and all arithmetic outside the dot products stay float32
(the kernels: csrc/kernels/reduced/reduced-dot.h; the stated error: docs/precision.md).

The Python side keeps every model's weights as float32 arrays under torch's names; a
reduced model's matrices are exactly representable in its format, so rounding them again
gives the same values (bf16: the top 16 bits; int8: q · s with a scale s that survives the
round trip, see int8_rows). That makes state_dict, pickling, to_torch and files exact.
"""

from __future__ import annotations

import numpy as np

# Accepted names → the canonical one.
DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "int8": "int8",
    "int7": "int7",
}
# The compiled core's names (an int7 model is an int8 one whose weights fit 7 bits: the core
# sees that itself).
CORE_DTYPES = {"float32": "float32", "bf16": "bfloat16", "int8": "int8", "int7": "int8"}
# The integer formats: the largest |q| of each (int8_rows).
INT_TOP = {"int8": 127, "int7": 63}
# The weight matrices a reduced model stores reduced (key prefixes, torch's names).
MATRICES = ("weight_ih", "weight_hh", "weight_hr")

# The stated error bounds against torch float32 (docs/precision.md; tested in
# tests/parity/test_precision.py): max |Δ| and mean |Δ| of outputs and final states, on
# PyTorch's default initialisation with N(0, 1) inputs.
BOUNDS = {"bf16": (1e-2, 1e-3), "int8": (4e-2, 4e-3), "int7": (4e-2, 4e-3)}


def dtype_name(dtype, where: str) -> str:
    """The canonical dtype name ("float32", "bf16", "int8", "int7"), else a ValueError naming
    `where` and the accepted names."""
    name = getattr(dtype, "name", dtype) if not isinstance(dtype, str) else dtype
    if isinstance(name, str) and name.lower() in DTYPES:
        return DTYPES[name.lower()]
    raise ValueError(
        f"{where}: dtype must be one of 'float32', 'bf16' (or 'bfloat16'), 'int8', 'int7', "
        f"got {dtype!r}"
    )


def is_matrix(key: str) -> bool:
    return key.startswith(MATRICES)


def bf16_bits(w: np.ndarray) -> np.ndarray:
    """float32 → bf16 bits (uint16), round to nearest even; NaN stays a quiet NaN."""
    u = np.ascontiguousarray(w, np.float32).view(np.uint32).astype(np.uint64)
    bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(w)
    if nan.any():
        bits[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return bits


def bf16_values(bits: np.ndarray) -> np.ndarray:
    """bf16 bits → float32 (exact)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def int8_rows(w: np.ndarray, top: int = 127) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric integers with one scale per row: (q int8 in [-top, top], s float32 >= 0), q =
    round(w * (top / max|row|)), s = max|row| / top, nudged up by ulps until
    float32(float32(top * s) / top) == s, so that quantising q * s again gives q and s. top:
    127 (int8) or 63 (int7)."""
    w = np.asarray(w, np.float32)
    t = np.float32(top)
    m = np.abs(w).max(axis=1) if w.shape[1] else np.zeros(w.shape[0], np.float32)
    s = (m / t).astype(np.float32)
    for _ in range(8):
        back = ((s * t).astype(np.float32) / t).astype(np.float32)
        off = back != s
        if not off.any():
            break
        s[off] = np.nextafter(s[off], np.float32(np.inf))
    top_value = (s * t).astype(np.float32)  # the row maximum q * s reproduces
    inv = np.divide(t, top_value, out=np.zeros_like(top_value), where=top_value > 0)
    q = np.clip(np.rint(w * inv[:, None]), -top, top).astype(np.int8)
    return q, s


def int8_values(q: np.ndarray, s: np.ndarray) -> np.ndarray:
    """q · s as float32 (the values an int8 model's matrix stands for)."""
    return (q.astype(np.float32) * s[:, None]).astype(np.float32)


def rounded(key: str, w: np.ndarray, dtype: str) -> np.ndarray:
    """w as the float32 values of its reduced form (w itself for float32 and non-matrices).
    A non-finite weight cannot be quantised: ValueError naming the key."""
    if dtype == "float32" or not is_matrix(key):
        return w
    if not np.isfinite(w).all():
        raise ValueError(f"{key}: weights must be finite to quantise to {dtype}")
    if dtype == "bf16":
        return bf16_values(bf16_bits(w))
    return int8_values(*int8_rows(w, INT_TOP[dtype]))


def core_matrix(w: np.ndarray, dtype: str):
    """What the compiled core takes for a matrix: float32, bf16 bits, or (q, s)."""
    if dtype == "float32" or w is None:
        return w
    if dtype == "bf16":
        return bf16_bits(w)
    return int8_rows(w, INT_TOP[dtype])


def stored(key: str, w: np.ndarray, dtype: str) -> dict[str, np.ndarray]:
    """The tensors a file stores for one weight (io.safetensors.write): a reduced matrix as
    its bf16 bits (dtype BF16) or as int8 plus key + '.scale' (int8 and int7); anything else
    as float32."""
    if dtype == "float32" or not is_matrix(key):
        return {key: w}
    if dtype == "bf16":
        return {key: bf16_bits(w)}
    q, s = int8_rows(w, INT_TOP[dtype])
    return {key: q, key + ".scale": s}


def quantize(model, dtype):
    """A new model of the same class holding `model`'s weights in `dtype` ("bf16", "int8" or
    "int7"; "float32" gives a float32 copy of a reduced model's rounded weights). Streams,
    files, pickling and every call work as for float32; model.dtype says which it is. The
    error against float32 is stated in docs/precision.md."""
    from ._modules import _CellBase, _RNNBase, build

    if not isinstance(model, (_RNNBase, _CellBase)):
        raise TypeError(
            f"quantize: model must be a fastrnn LSTM, GRU, RNN or cell, got {type(model).__name__}"
        )
    name = dtype_name(dtype, "quantize")
    return build(model.config.replace(dtype=name), model.state_dict())
