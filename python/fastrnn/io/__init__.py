"""Model files and foreign models → (ModelConfig, weights), and back.

The format layer: it knows files and other frameworks, not fastrnn's classes. Every reader
returns the same two things — a checked `ModelConfig` and the weights under torch's key
names in torch's gate order (LSTM i, f, g, o; GRU r, z, n) — and `fastrnn.build(config,
weights)` makes the model. A new importer is one more module here that produces those two.

- `keys`: a configuration from torch's key names and shapes (files without one);
- `safetensors`: fastrnn files and plain safetensors state_dicts (numpy only);
- `pytorch`: torch state_dict files (torch.load(weights_only=True)), torch.nn modules.
"""

from __future__ import annotations

import os

from .._config import ModelConfig
from . import keys, pytorch, safetensors
from .base import TORCH_MAGICS, BadFile

__all__ = ["BadFile", "ModelConfig", "read", "write"]


def read(
    path,
    *,
    mode: str | None = None,
    batch_first: bool | None = None,
    nonlinearity: str | None = None,
    prefix: str | None = None,
) -> tuple[ModelConfig, dict]:
    """(ModelConfig, weights) from a fastrnn file, a plain safetensors state_dict or a
    torch state_dict file; the format is told by the file's first bytes. The hints are
    fastrnn.load's (see there). A corrupted, truncated or inconsistent file is a ValueError
    naming the file."""
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
