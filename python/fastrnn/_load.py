"""Models from files and from torch modules, and torch modules from models: each a reader
of fastrnn.io followed by build()."""

from __future__ import annotations

from . import io
from ._modules import build
from ._quantize import dtype_name


def _built(config, weights, dtype, where: str):
    """build() in the requested dtype (None: the source's own)."""
    if dtype is not None:
        config = config.replace(dtype=dtype_name(dtype, where))
    return build(config, weights)


def load(
    path,
    *,
    mode: str | None = None,
    batch_first: bool | None = None,
    nonlinearity: str | None = None,
    prefix: str | None = None,
    layer: str | None = None,
    node: str | None = None,
    dtype: str | None = None,
):
    """A fastrnn model from a file: a fastrnn file (model.save; needs numpy only), a plain
    safetensors state_dict, a torch state_dict file (torch.save; needs torch, read with
    weights_only=True), a Keras model (.keras or .h5; needs h5py; layer= picks one of
    several recurrent parts) or an ONNX model (.onnx; needs onnx; node= picks one).

    For files without fastrnn's metadata the configuration is inferred from the key names
    and shapes (see the rules in fastrnn.io.keys); the hints fill in what shapes cannot say:
    mode ('LSTM', 'GRU', 'RNN_TANH', 'RNN_RELU'; must agree with the shapes), nonlinearity
    ('tanh'/'relu', for RNNs), batch_first (default False; for a fastrnn file it overrides
    the stored layout), prefix (the RNN's key prefix when the file holds several).
    dtype: None keeps the file's weight format; "float32", "bf16", "int8" or "int7" converts
    (fastrnn.quantize). A corrupted, truncated or inconsistent file is a ValueError naming
    the file.
    """
    config, weights = io.read(
        path,
        mode=mode,
        batch_first=batch_first,
        nonlinearity=nonlinearity,
        prefix=prefix,
        layer=layer,
        node=node,
    )
    return _built(config, weights, dtype, "load")


def from_onnx(
    source,
    *,
    node: str | None = None,
    batch_first: bool | None = None,
    merge: bool = True,
    activation_defaults: str | None = None,
):
    """A fastrnn model of one recurrent part (an LSTM, GRU or RNN node, or an exporter's
    stack of them) of an ONNX model: a path, the model's bytes or an onnx.ModelProto; read
    with the onnx package, nothing from the file runs. node: the part, by a node or output
    name, when there are several; batch_first: the calling convention (True for a torch
    batch_first export); merge=False keeps an exporter's per-layer nodes apart;
    activation_defaults: what ThresholdedRelu / Affine / ScaledTanh without alpha/beta mean
    (see docs/importers.md). What cannot be mapped is a ValueError naming the node and the
    attribute."""
    from .io import onnx

    return build(
        *onnx.read(
            source,
            node=node,
            batch_first=batch_first,
            merge=merge,
            activation_defaults=activation_defaults,
        )
    )


def from_keras(path, *, layer: str | None = None):
    """A fastrnn model of a Keras model file's recurrent part: a `.keras` archive (Keras 3)
    or a legacy `.h5` file, read with json and h5py (no TensorFlow, no Keras). layer: the
    recurrent layer to take when the model has several (by name). The model is batch-first,
    as Keras is; see docs/importers.md for each Keras option."""
    from .io import keras

    return build(*keras.read(path, layer=layer))


def from_torch(module, *, dtype: str = "float32"):
    """A fastrnn model with the configuration and weights of a torch.nn.LSTM, GRU, RNN,
    LSTMCell, GRUCell or RNNCell (the weights are copied; later changes to the module do not
    reach the fastrnn model). dtype: "float32", or "bf16" / "int8" / "int7" weights (fastrnn.quantize;
    the error is stated in docs/precision.md)."""
    return _built(*io.pytorch.read_module(module), dtype, "from_torch")


def to_torch(model):
    """A torch.nn module (in eval mode) with the configuration and weights of a fastrnn model:
    the reference that `fastrnn verify` checks a model file against."""
    return io.pytorch.module_from(model.config, model.state_dict())
