"""Model files and foreign models → (ModelConfig, weights), and back.

The format layer: it knows files and other frameworks, not fastrnn's classes. Every reader
returns the same two things — a checked `ModelConfig` and the weights under torch's key
names in torch's gate order (LSTM i, f, g, o; GRU r, z, n) — and `fastrnn.build(config,
weights)` makes the model. A new importer is one more module here that produces those two.

- `keys`: a configuration from torch's key names and shapes (files without one);
- `safetensors`: fastrnn files and plain safetensors state_dicts (numpy only);
- `pytorch`: torch state_dict files (torch.load(weights_only=True)), torch.nn modules;
- `keras`: Keras 3 `.keras` archives and legacy `.h5` files (json + h5py);
- `onnx`: ONNX graphs' LSTM / GRU / RNN nodes (the onnx package, nothing from a file runs).
"""

from __future__ import annotations

import os

from .._config import ModelConfig
from . import keys, pytorch, safetensors
from .base import TORCH_MAGICS, BadFile

# HDF5's signature (a legacy Keras .h5 file).
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

__all__ = ["BadFile", "ModelConfig", "read", "write"]


def read(
    path,
    *,
    mode: str | None = None,
    batch_first: bool | None = None,
    nonlinearity: str | None = None,
    prefix: str | None = None,
    layer: str | None = None,
    node: str | None = None,
) -> tuple[ModelConfig, dict]:
    """(ModelConfig, weights) from a fastrnn file, a plain safetensors state_dict, a torch
    state_dict file, a Keras model (`.keras`, or an HDF5 `.h5`) or an ONNX model
    (`.onnx`); the format is told by the file's name (.keras, .onnx) or first bytes. The
    hints are fastrnn.load's (see there): mode, batch_first, nonlinearity and prefix for
    state_dict files, layer= for Keras, node= for ONNX. A corrupted, truncated or
    inconsistent file is a ValueError naming the file."""
    name = os.fspath(path).lower()
    with open(path, "rb") as f:
        head = f.read(8)
    foreign = None
    if name.endswith(".keras") or head == _HDF5_MAGIC:
        foreign = "keras"
    elif name.endswith(".onnx"):
        foreign = "onnx"
    if foreign is not None:
        # batch_first applies to ONNX: a torch batch_first export is a layout-0 graph with
        # Transposes around the stack, and batch_first=True gives back torch's convention.
        given = [
            k
            for k, v in (
                ("mode", mode),
                ("nonlinearity", nonlinearity),
                ("prefix", prefix),
                ("batch_first", batch_first if foreign == "keras" else None),
            )
            if v is not None
        ]
        if (
            given
            or (foreign == "keras" and node is not None)
            or (foreign == "onnx" and layer is not None)
        ):
            wrong = (
                given
                + (["node"] if foreign == "keras" and node is not None else [])
                + (["layer"] if foreign == "onnx" and layer is not None else [])
            )
            what = "a Keras" if foreign == "keras" else "an ONNX"
            verb = "does" if len(wrong) == 1 else "do"
            raise ValueError(
                f"{os.fspath(path)}: {', '.join(w + '=' for w in wrong)} {verb} not apply to "
                f"{what} model, which stores its configuration "
                f"({'layer=' if foreign == 'keras' else 'node='} picks a recurrent part)"
            )
        if foreign == "keras":
            from . import keras

            return keras.read(path, layer=layer)
        from . import onnx

        return onnx.read(path, node=node, batch_first=batch_first)
    if layer is not None or node is not None:
        raise ValueError(f"{os.fspath(path)}: layer= is for Keras models and node= for ONNX models")
    keys.hints_check(mode, nonlinearity, prefix)
    hints = dict(mode=mode, batch_first=batch_first, nonlinearity=nonlinearity, prefix=prefix)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if f.read(4) in TORCH_MAGICS:
            return pytorch.read_file(path, **hints)
        f.seek(0)
        return safetensors.read(f, path, size, **hints)


def write(path, config: ModelConfig, weights: dict) -> None:
    """Writes a fastrnn file (safetensors; see fastrnn.io.safetensors), atomically."""
    from .. import __version__

    if not isinstance(config, ModelConfig):
        raise TypeError(f"write: config must be a fastrnn.ModelConfig, got {type(config).__name__}")
    safetensors.write(path, config, weights, __version__)
