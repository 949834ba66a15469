"""PyTorch: torch state_dict files (torch.save), torch.nn modules in, torch.nn modules out.
torch is imported only inside these functions, only when called."""

from __future__ import annotations

import os

from .._checks import to_numpy
from .._config import ModelConfig, rnn_mode
from .base import BadFile
from .keys import config_infer, keys_check, prefix_select


def _torch_state_dict(path, obj) -> dict:
    """The state_dict in what torch.load returned: a mapping of tensors, or a checkpoint
    holding one under 'state_dict', 'model_state_dict' or 'model'."""
    import torch

    def is_state_dict(d) -> bool:
        return (
            isinstance(d, dict)
            and d
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())
        )

    if is_state_dict(obj):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if is_state_dict(obj.get(key)):
                return obj[key]
    raise BadFile(
        path, f"holds a {type(obj).__name__}, not a state_dict (a mapping of names to tensors)"
    )


def read_file(path, *, mode, batch_first, nonlinearity, prefix):
    """(ModelConfig, weights) from a torch state_dict file, read only through
    torch.load(weights_only=True), which runs no code from the file. The configuration
    comes from the key names (fastrnn.io.keys)."""
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"{os.fspath(path)} is a torch file: reading it needs torch (or "
            "convert it once with `fastrnn convert` where torch is installed)"
        ) from None
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - torch raises many types for corrupted or unsafe files
        raise BadFile(
            path, f"torch.load(weights_only=True) failed: {type(e).__name__}: {str(e)[:300]}"
        ) from None
    sd = _torch_state_dict(path, obj)
    names = prefix_select(path, list(sd), prefix)
    elements = 0
    for v in names.values():
        t = sd[v]
        if not t.is_floating_point():
            raise BadFile(path, f"{v!r} has dtype {t.dtype}; weights must be floating point")
        if t.layout is not torch.strided or t.device.type != "cpu":
            raise BadFile(
                path,
                f"{v!r} is a {t.layout} tensor on {t.device}; weights must be dense tensors "
                "with data (not sparse, not meta)",
            )
        elements += t.numel()
    # A tensor in a torch file may be a view — expanded (stride 0) or overlapping — that
    # declares far more elements than its storage holds: 2 KB can declare 2^30 elements, and
    # converting them would allocate gigabytes. Honest weights take >= 1 byte per element
    # in the file (float8; 2 for half types), so more elements than bytes is a broadcast.
    size = os.path.getsize(path)
    if elements > size:
        raise BadFile(
            path,
            f"its weights declare {elements} elements but the file holds {size} bytes: "
            "broadcast (expanded) or overlapping tensor views; save dense tensors "
            "(tensor.contiguous()) instead",
        )
    shapes = {k: tuple(sd[v].shape) for k, v in names.items()}
    config = config_infer(path, shapes, mode, nonlinearity)
    if batch_first is not None and not config.is_cell:
        config = config.replace(batch_first=bool(batch_first))
    keys_check(path, config, shapes)
    return config, {k: to_numpy(sd[names[k]], k) for k in config.parameter_shapes()}


_MODULES = ("LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell")


def read_module(module):
    """(ModelConfig, weights) of a torch.nn.LSTM, GRU, RNN, LSTMCell, GRUCell or RNNCell
    (the weights as the module's tensors; build() copies them)."""
    import torch.nn as nn

    kind = next(
        (k for k in _MODULES if isinstance(module, getattr(nn, k))),
        None,
    )
    if kind is None:
        raise TypeError(
            "from_torch expects nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell or nn.RNNCell, "
            f"got {type(module).__name__}"
        )
    base = kind.removesuffix("Cell")
    mode = rnn_mode(module.nonlinearity) if base == "RNN" else base
    if kind.endswith("Cell"):
        config = ModelConfig(kind, mode, module.input_size, module.hidden_size, bias=module.bias)
    else:
        config = ModelConfig(
            kind,
            mode,
            module.input_size,
            module.hidden_size,
            num_layers=module.num_layers,
            bidirectional=module.bidirectional,
            proj_size=getattr(module, "proj_size", 0),
            bias=module.bias,
            batch_first=module.batch_first,
        )
    return config, module.state_dict()


def module_from(config: ModelConfig, weights: dict):
    """A torch.nn module (in eval mode) with this configuration and weights: the reference
    that `fastrnn verify` checks a model file against."""
    import torch
    import torch.nn as nn

    I, H, bias = config.input_size, config.hidden_size, config.bias
    if config.kind == "LSTMCell":
        module = nn.LSTMCell(I, H, bias)
    elif config.kind == "GRUCell":
        module = nn.GRUCell(I, H, bias)
    elif config.kind == "RNNCell":
        module = nn.RNNCell(I, H, bias, config.nonlinearity)
    else:
        kw = dict(
            num_layers=config.num_layers,
            bias=bias,
            batch_first=config.batch_first,
            bidirectional=config.bidirectional,
        )
        if config.kind == "LSTM":
            module = nn.LSTM(I, H, proj_size=config.proj_size, **kw)
        elif config.kind == "GRU":
            module = nn.GRU(I, H, **kw)
        else:
            module = nn.RNN(I, H, nonlinearity=config.nonlinearity, **kw)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return module.eval()
