"""Keras models → (ModelConfig, weights): Keras 3 `.keras` archives and legacy `.h5` files
(`model.save("x.h5")` of tf.keras 2, Keras 2 and Keras 3), read with json and h5py only — no
TensorFlow, no Keras; nothing in the file is executed.

What is imported: one *recurrent part* of the model — a `LSTM`, `GRU` (reset_after True or
False), `SimpleRNN`, `RNN` over one `LSTMCell`/`GRUCell`/`SimpleRNNCell`, or a
`Bidirectional` of these, or a stack of such layers where each feeds the next (directly or
through Dropout-like layers, which are the identity at inference) and they agree (same
cell, units, activations, reset_after and layout; a Bidirectional below the top of a stack
concatenates; only the first layer of a stack may run go_backwards). Sequential and
Functional models, and models nested in them, are searched; a model with several parts
needs `layer=` (the name of any layer of the part; a nested model's layer also as
"model/layer"), and a ValueError lists the parts and why neighbours are not one stack.

The mapping (Keras → torch's names and gate order, see DESIGN.md §2):

- kernel (I, G·H) → weight_ih = kernel.T; recurrent_kernel (H, G·H) → weight_hh = rk.T;
  LSTM gates i, f, c, o are torch's i, f, g, o; GRU gates z, r, h become torch's r, z, n;
- LSTM and SimpleRNN have one bias → bias_ih, with bias_hh = 0; GRU reset_after=True has
  bias (2, 3H) → bias_ih (row 0), bias_hh (row 1); reset_after=False is the classic GRU
  (linear_before_reset=False) with one bias → bias_ih, bias_hh = 0 (r multiplies h before
  the recurrent product, so a recurrent bias would sit outside r anyway);
- use_bias=False → bias=False (when some layers of a stack have a bias and some not, the
  others get zeros);
- activation / recurrent_activation → activations (LSTM: recurrent_activation for i, f, o;
  activation for the candidate and the cell output; GRU: recurrent_activation for z, r);
  hard_sigmoid is HardSigmoid(0.2, 0.5) up to Keras 2 and HardSigmoid(1/6, 0.5) from Keras 3
  (the file's keras_version decides);
- go_backwards on the first layer → reverse=True; Bidirectional merge_mode → merge_mode;
- batch_first=True (Keras is batch-major), or False for tf.keras 2's time_major=True.

What fastrnn returns differs from Keras in form only; `KerasPart.outputs(result)` gives
Keras' outputs from a fastrnn call (see docs/importers.md, Keras):
- go_backwards: Keras returns the *reversed* sequence; fastrnn keeps each output at its
  input's time index, so Keras' sequence is fastrnn's flipped along time;
- return_sequences=False: Keras' output is the last layer's final h (both directions' final
  h, merged, for a Bidirectional) — h_n, not y[:, -1];
- return_state: Keras' states are h_n[-D:] (and c_n[-D:]) of the last layer;
- masking (a Masking layer, Embedding(mask_zero=True)) with right padding is fastrnn's
  `lengths=` (see `lengths_from_mask`, `KerasPart.lengths`): final states and the outputs at
  valid steps are Keras'; at masked steps Keras repeats the last output (or gives zeros with
  zero_output_for_mask / inside a Bidirectional), fastrnn gives zeros.
Refused, with a ValueError naming the layer and the option: stateful=True, an activation
fastrnn lacks (e.g. selu, gelu, a custom function), options this importer does not know,
a go_backwards layer inside a stack, a Bidirectional whose forward layer runs go_backwards.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import zipfile

import numpy as np

from .._config import DEFAULT_ACTIVATIONS, ModelConfig, activation
from .base import BadFile, short

__all__ = ["KerasPart", "lengths_from_mask", "read", "read_part"]

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# Keras class → fastrnn class; the cells an `RNN(cell=...)` layer may hold.
_LAYERS = {"LSTM": "LSTM", "GRU": "GRU", "SimpleRNN": "RNN"}
_CELLS = {"LSTMCell": "LSTM", "GRUCell": "GRU", "SimpleRNNCell": "RNN"}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
# Recurrent layers fastrnn does not import (named in the error when nothing else is found).
_FOREIGN_RECURRENT = ("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "CuDNNLSTM", "CuDNNGRU")
_MODEL_CLASSES = ("Sequential", "Functional", "Model")
# Layers that are the identity at inference (and keep the mask): a stack may pass them.
_IDENTITY = (
    "Dropout",
    "SpatialDropout1D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
)
# Layers that pass a mask on unchanged (walked upstream to find where a mask comes from).
_MASK_KEEPING = _IDENTITY + (
    "Activation",
    "Dense",
    "TimeDistributed",
    "BatchNormalization",
    "LayerNormalization",
    "LSTM",
    "GRU",
    "SimpleRNN",
    "RNN",
    "Bidirectional",
)

# A recurrent layer's config keys, by what they mean for inference. Any other key is
# refused: an option this importer does not know might change the maths.
_TRAINING_ONLY = {
    "dropout",
    "recurrent_dropout",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "unit_forget_bias",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "seed",
    "trainable",
}
# Same maths however they are set (how Keras computes, not what), or read elsewhere.
_NO_EFFECT = {
    "name",
    "dtype",
    "unroll",
    "implementation",
    "use_cudnn",
    "zero_output_for_mask",  # only the outputs at masked steps: see the module docstring
    "batch_input_shape",
    "batch_shape",
    "batch_size",
    "input_shape",
    "input_dim",
    "input_length",
    "autocast",
}
_READ = {
    "units",
    "activation",
    "recurrent_activation",
    "use_bias",
    "reset_after",
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "time_major",
    "cell",
}
_KNOWN_KEYS = _TRAINING_ONLY | _NO_EFFECT | _READ
_BIDIRECTIONAL_KEYS = {
    "name",
    "trainable",
    "dtype",
    "merge_mode",
    "layer",
    "backward_layer",
    "batch_input_shape",
    "batch_shape",
    "batch_size",
    "input_shape",
    "autocast",
}

# Keras activation names → fastrnn's (name, alpha, beta); hard_sigmoid depends on the
# version (see _activation). Keras' defaults: elu alpha 1, leaky_relu negative_slope 0.2.
_ACTIVATIONS = {
    "tanh": ("Tanh",),
    "sigmoid": ("Sigmoid",),
    "relu": ("Relu",),
    "linear": ("Affine", 1.0, 0.0),
    "softsign": ("Softsign",),
    "softplus": ("Softplus",),
    "elu": ("Elu", 1.0),
    "leaky_relu": ("LeakyRelu", 0.2),
}


# --- public ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KerasPart:
    """The recurrent part of a Keras model that `read_part` imported, and how Keras
    presents its results.

    layers: the Keras layer names, bottom to top (a nested model's as "model/layer");
    config: the fastrnn configuration (batch_first=True unless time_major);
    keras_version: the file's ("" when it does not say);
    return_sequences, return_state: the top layer's; go_backwards: the bottom layer's
        (config.reverse); merge_mode: the top Bidirectional's, Keras' value (None: a pair);
    masked: whether Keras feeds the part a mask (a Masking layer or an
        Embedding(mask_zero=True) upstream): pass `lengths=` then (see `lengths`);
    mask_layer: the layer that makes the mask; mask_value: the Masking layer's (None when
        the mask comes from an Embedding: compute it from the token ids);
    initial_state: the Keras tensors ("layer:index") Keras passes as initial_state (pass
        them as `state=`: (h_0, c_0) for an LSTM, each (1, B, H); a Bidirectional's as
        (2, B, H), forward first); () when Keras starts from zeros.
    """

    path: str
    layers: tuple
    config: ModelConfig
    keras_version: str
    return_sequences: bool
    return_state: bool
    go_backwards: bool
    merge_mode: str | None
    masked: bool
    mask_layer: str | None
    mask_value: float | None
    initial_state: tuple

    def lengths(self, x) -> np.ndarray:
        """fastrnn's `lengths=` for a batch `x` (B, T, I) (time_major: (T, B, I)) as the
        Masking layer sees it: a step is valid where some feature differs from mask_value.
        Rows must be right-padded (see `lengths_from_mask`). A part whose mask comes from
        an Embedding has no mask_value: use lengths_from_mask(token_ids != 0)."""
        if self.mask_value is None:
            origin = f"{self.mask_layer!r}" if self.mask_layer else "no Masking layer"
            raise ValueError(
                f"{self.path}: part {list(self.layers)} has no Masking value ({origin}): "
                "compute the mask yourself and call lengths_from_mask(mask)"
            )
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"lengths: x must have 3 dimensions, got shape {x.shape}")
        mask = np.any(x != self.mask_value, axis=-1)
        return lengths_from_mask(mask.T if not self.config.batch_first else mask)

    def outputs(self, result):
        """Keras' outputs from the result of the fastrnn model of this part, called on the
        same input: `(y, h_n)` or `(y, (h_n, c_n))` → what the Keras layer returns (one
        array, or a list when return_state is set or merge_mode is None). Outputs at masked
        steps stay fastrnn's zeros (see the module docstring)."""
        y, state = result
        h_n, c_n = state if isinstance(state, tuple) else (state, None)
        D = self.config.num_directions
        h_last = list(h_n[-D:])
        c_last = list(c_n[-D:]) if c_n is not None else []
        time_axis = 1 if self.config.batch_first else 0
        if D == 1:
            if self.return_sequences:
                out = np.flip(y, axis=time_axis).copy() if self.go_backwards else y
            else:
                out = h_last[0]
            outs = [out]
            states = [h_last[0]] + c_last
        else:
            if self.return_sequences:
                out = y
            else:
                out = _merge(h_last[0], h_last[1], self.merge_mode)
            outs = list(out) if isinstance(out, tuple) else [out]
            states = [h_last[0]] + c_last[:1] + [h_last[1]] + c_last[1:]
        result = outs + (states if self.return_state else [])
        return result[0] if len(result) == 1 else result


def read(path, *, layer: str | None = None) -> tuple[ModelConfig, dict]:
    """(ModelConfig, weights under torch's key names in torch's gate order) of the recurrent
    part of a Keras model file: a `.keras` archive (Keras 3) or a legacy `.h5` file written
    by `model.save` (tf.keras 2, Keras 2 or 3); the format is told by the file's first
    bytes. `fastrnn.build(*read(path))` makes the model.

    layer: the name of a recurrent layer (any layer of a stack selects the whole stack; a
    layer of a nested model also as "model/layer"); needed when the model has several
    recurrent parts. Needs h5py (`pip install fastrnn[keras]`). A file fastrnn cannot read
    is a ValueError naming the file; an option it cannot compute is a ValueError naming the
    layer, the option and its value. See the module docstring for the mapping."""
    part, weights = read_part(path, layer=layer)
    return part.config, weights


def read_part(path, *, layer: str | None = None) -> tuple[KerasPart, dict]:
    """(KerasPart, weights): `read`'s result with what Keras does around it (return_sequences,
    return_state, go_backwards, masking, initial_state): see KerasPart."""
    if layer is not None and not isinstance(layer, str):
        raise TypeError(f"layer must be a str or None, got {type(layer).__name__}")
    try:
        import h5py
    except ImportError:
        raise ImportError(
            "reading Keras files needs h5py: pip install h5py (or fastrnn[keras])"
        ) from None
    path_text = os.fspath(path)
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic[:4] == ZIP_MAGIC:
        kind = _Archive
    elif magic == HDF5_MAGIC:
        kind = _Legacy
    else:
        raise BadFile(path, "is neither a Keras 3 archive (zip) nor an HDF5 file (legacy .h5)")
    with kind(path_text, h5py) as source:
        try:
            return _import(source, layer)
        except (KeyError, TypeError, AttributeError, IndexError, RecursionError) as e:
            # A config of the wrong shape somewhere the checks above do not look (a list
            # where an object belongs, a missing key): a bad file, not a crash.
            raise BadFile(path, f"malformed model config ({type(e).__name__}: {e})") from None


def lengths_from_mask(mask) -> np.ndarray:
    """fastrnn's `lengths=` (B,) int64 from a Keras mask (B, T) of booleans, True at valid
    steps. Every row must be right-padded — its valid steps first, then only masked ones —
    and hold at least one valid step: fastrnn's lengths cannot express a mask with holes,
    left padding or an empty row, so each is a ValueError naming the row."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must have shape (B, T), got {m.shape}")
    m = m.astype(bool)
    lengths = m.sum(axis=1).astype(np.int64)
    for b in range(m.shape[0]):
        n = int(lengths[b])
        if n == 0:
            raise ValueError(
                f"mask row {b} has no valid step: fastrnn needs at least one per sequence"
            )
        if not m[b, :n].all():
            first_gap = int(np.argmin(m[b, :n]))
            raise ValueError(
                f"mask row {b} is not right-padded: step {first_gap} is masked but a later "
                f"one is valid (a mask with holes or left padding cannot be lengths)"
            )
    return lengths


# --- the file: config, version, weights --------------------------------------------------


class _Source:
    """What both formats give: the path, the model's config (JSON), the Keras version, and
    the stored arrays of a recurrent layer."""

    path: str
    config: dict
    version: str

    def major(self) -> int | None:
        m = re.match(r"\s*(\d+)\.", self.version)
        return int(m.group(1)) if m else None

    def _json(self, text, what: str) -> dict:
        try:
            value = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise BadFile(self.path, f"{what} is not valid JSON: {e}") from None
        if not isinstance(value, dict):
            raise BadFile(self.path, f"{what} must be a JSON object, got {type(value).__name__}")
        return value

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Archive(_Source):
    """A Keras 3 `.keras` archive: zip of metadata.json, config.json, model.weights.h5.
    Variables live at `<attribute path>/vars/<index>`, in creation order (kernel,
    recurrent_kernel, bias); a model's layers at `layers/<snake_case class>[_n]`."""

    def __init__(self, path: str, h5py) -> None:
        self.path = path
        self._zip = self._h5 = self._member = None
        try:
            self._open(h5py)
        except BaseException:
            self.close()
            raise

    def _open(self, h5py) -> None:
        path = self.path
        try:
            self._zip = zipfile.ZipFile(path)
            names = set(self._zip.namelist())
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise BadFile(path, f"is not a readable .keras archive: {e}") from None
        if "config.json" not in names:
            raise BadFile(path, "is a zip archive without config.json: not a .keras model")
        try:
            self.config = self._json(self._zip.read("config.json"), "config.json")
            meta = (
                self._json(self._zip.read("metadata.json"), "metadata.json")
                if "metadata.json" in names
                else {}
            )
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise BadFile(path, f"is a damaged .keras archive: {e}") from None
        self.version = str(meta.get("keras_version", ""))
        if "model.weights.h5" not in names:
            other = sorted(n for n in names if "weights" in n)
            raise BadFile(
                path,
                "has no model.weights.h5"
                + (
                    f" (weights stored as {short(other)}, which fastrnn does not read)"
                    if other
                    else ""
                ),
            )
        try:
            self._member = self._zip.open("model.weights.h5")
            self._h5 = h5py.File(self._member, "r")
        except (OSError, zipfile.BadZipFile, EOFError) as e:
            raise BadFile(path, f"model.weights.h5 is not a readable HDF5 file: {e}") from None

    def close(self) -> None:
        for obj in (self._h5, self._member, self._zip):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # closing after an error: the first error is the news
                    pass

    def group(self, key: str):
        try:
            return self._h5[key] if key else self._h5
        except (KeyError, OSError):
            return None

    def child_stores(self, store: str) -> dict[str, str]:
        """{layer name: store path} of the layers saved under `store`/layers, from the name
        each `vars` group records (Keras >= 3.x); {} when the file does not record them."""
        base = f"{store}/layers" if store else "layers"
        g = self.group(base)
        found: dict[str, str] = {}
        if g is None:
            return found
        for key in g:
            v = self.group(f"{base}/{key}/vars")
            name = v.attrs.get("name") if v is not None else None
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            if isinstance(name, str):
                found[name] = f"{base}/{key}"
        return found

    def arrays(self, where: _Where, count: int) -> list:
        """The datasets (unread) of one cell: kernel, recurrent_kernel[, bias]."""
        base = where.store + (f"/{where.direction}" if where.direction else "") + "/cell/vars"
        g = self.group(base)
        if g is None:
            raise BadFile(self.path, f"layer {where.layer!r}: no weights at {base!r}")
        keys = sorted((k for k in g if k.isdigit()), key=int)
        if len(keys) != count:
            raise BadFile(
                self.path,
                f"layer {where.layer!r}: expected {count} variables at {base!r} "
                f"(kernel, recurrent_kernel{', bias' if count == 3 else ''}), found {len(keys)}",
            )
        return [g[k] for k in keys]


class _Legacy(_Source):
    """A legacy `.h5` model: root attrs model_config (JSON) and keras_version; weights under
    model_weights/<top-level layer name>, listed by the group's `weight_names` attr
    ("lstm/lstm_cell/kernel:0" in tf.keras 2, without ":0" from Keras 3; a nested model's
    group lists all its layers' weights, named "<model>/<layer>/...")."""

    def __init__(self, path: str, h5py) -> None:
        self.path = path
        try:
            self._h5 = h5py.File(path, "r")
        except OSError as e:
            raise BadFile(path, f"is not a readable HDF5 file: {e}") from None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        path = self.path
        attrs = self._h5.attrs
        if "model_config" not in attrs:
            what = (
                "weights only (save_weights)"
                if "layer_names" in attrs or "layers" in self._h5 or "model_weights" in self._h5
                else "no model_config attribute"
            )
            raise BadFile(
                path,
                f"holds {what}: fastrnn needs the model's configuration, saved by "
                "model.save('x.keras') or model.save('x.h5')",
            )
        self.config = self._json(_text(attrs["model_config"]), "model_config")
        self.version = _text(attrs.get("keras_version", "")) or _text(
            self._h5["model_weights"].attrs.get("keras_version", "")
            if "model_weights" in self._h5
            else ""
        )
        if "model_weights" not in self._h5:
            raise BadFile(path, "has a model_config but no model_weights group")

    def close(self) -> None:
        try:
            self._h5.close()
        except Exception:  # closing after an error: the first error is the news
            pass

    def arrays(self, where: _Where, count: int) -> list:
        top = where.store
        g = self._h5["model_weights"].get(top)
        if g is None:
            raise BadFile(self.path, f"layer {where.layer!r}: no model_weights/{top} group")
        names = [_text(n) for n in g.attrs.get("weight_names", [])]
        if where.nested:  # a layer of a nested model: its own weights among the model's
            names = [n for n in names if _belongs(n, where.nested)]
        if where.direction:
            names = _direction_names(names, where, count)
        roles = {}
        for n in names:
            role = n.rsplit("/", 1)[-1].split(":")[0]
            if role in roles:
                raise BadFile(
                    self.path, f"layer {where.layer!r}: two weights named {role!r}: {short(names)}"
                )
            roles[role] = n
        wanted = ["kernel", "recurrent_kernel", "bias"][:count]
        if sorted(roles) != sorted(wanted):
            raise BadFile(
                self.path,
                f"layer {where.layer!r}: expected weights {wanted}"
                + (f" of the {where.direction.split('_')[0]} layer" if where.direction else "")
                + f", found {short(names)}",
            )
        try:
            return [g[roles[r]] for r in wanted]
        except KeyError as e:
            raise BadFile(self.path, f"layer {where.layer!r}: missing dataset {e}") from None


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return str(value)


def _belongs(name: str, chain: tuple) -> bool:
    """Whether weight `name` ("inner/gru/gru_cell/kernel") is of the layer whose name in its
    nested model is chain[-1], the enclosing models' names before it: the layer's name is a
    component, and the components before it are the end of the enclosing chain."""
    parts = name.split("/")[:-1]
    layer = chain[-1]
    for i, p in enumerate(parts):
        if p == layer and tuple(parts[:i]) == chain[len(chain) - 1 - i : -1]:
            return True
    return False


def _direction_names(names: list, where: _Where, count: int) -> list:
    """One direction's weight names of a Bidirectional: by the forward_/backward_ layer
    component when the names have it, else by position (Keras lists the forward layer's
    weights first)."""
    prefix = "forward_" if where.direction == "forward_layer" else "backward_"
    own = where.layer.rsplit("/", 1)[-1]  # the Bidirectional's own name may start so too
    tagged = [n for n in names if any(p.startswith(prefix) and p != own for p in n.split("/")[:-1])]
    if tagged:
        return tagged
    if where.direction == "forward_layer":
        return names[:count]
    return names[where.forward_count :]


# --- the model graph ----------------------------------------------------------------------


@dataclasses.dataclass
class _Node:
    """One call of a layer: the tensors of its input, of its initial_state, its mask."""

    inputs: list  # [(layer, node index, tensor index)]
    states: list
    mask: tuple | None  # the mask tensor Keras 3 recorded, or None
    mask_recorded: bool = False  # whether the call's record says (Keras 3 Functional)


@dataclasses.dataclass
class _Where:
    """Where a recurrent layer's weights are stored."""

    layer: str  # qualified name, for messages
    store: str  # .keras: the attribute path; .h5: the top-level group
    nested: tuple = ()  # .h5: (enclosing model names..., layer name) when nested
    direction: str = ""  # "forward_layer" | "backward_layer" for a Bidirectional
    forward_count: int = 0  # .h5: how many weights the forward layer has


@dataclasses.dataclass
class _Layer:
    name: str  # qualified: "model/layer" inside a nested model
    local: str  # the name inside its own model (what its nodes refer to)
    cls: str
    config: dict
    nodes: list
    graph: _Graph
    where: _Where


@dataclasses.dataclass
class _Graph:
    name: str  # "" for the top model, the qualified model name otherwise
    layers: dict  # local name → _Layer, in the model's order
    outputs: list  # model output tensors


def _graphs(source, path) -> list[_Graph]:
    """Every model in the file (the top one first, then nested ones) as a graph of layers."""
    top = source.config
    # Some writers wrap the model config: {"class_name": ..., "config": ...} is the model.
    if "class_name" not in top and isinstance(top.get("config"), dict):
        top = top["config"]
    graphs: list[_Graph] = []
    _graph_parse(source, path, top, "", "", (), graphs)
    return graphs


def _graph_parse(source, path, model: dict, qname: str, store: str, chain: tuple, out: list):
    cls = model.get("class_name")
    cfg = model.get("config")
    where = f"model {qname!r}" if qname else "the model"
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        raise BadFile(
            path,
            f"{where} (class {cls!r}) does not list its layers in its config: a subclassed "
            "model's layers cannot be read without running its code; save a Sequential or "
            "Functional model",
        )
    sequential = cls == "Sequential" or "input_layers" not in cfg
    entries = []
    for i, entry in enumerate(cfg["layers"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise BadFile(path, f"{where}: layer entry {i} is not an object with a config")
        name = entry.get("name") or entry["config"].get("name")
        if not isinstance(name, str):
            raise BadFile(path, f"{where}: layer entry {i} has no name")
        entries.append((name, entry))
    stores = _stores(source, entries, store, sequential)
    graph = _Graph(qname, {}, [])
    out.append(graph)
    previous = None
    for name, entry in entries:
        lcls = entry.get("class_name")
        qualified = f"{qname}/{name}" if qname else name
        if sequential:
            nodes = (
                [] if lcls == "InputLayer" else [_Node([previous] if previous else [], [], None)]
            )
            previous = (name, 0, 0)
        else:
            nodes = [_node(path, qualified, n) for n in entry.get("inbound_nodes") or []]
        # .keras: a layer the file has no place for gets a path that holds nothing (reading
        # its weights is then a BadFile naming it), never the root.
        missing = f"<no weights for {qualified}>"
        if isinstance(source, _Archive):
            w = _Where(qualified, stores.get(name, missing))
        elif chain:  # .h5: a nested model's layers are stored in its top-level group
            w = _Where(qualified, chain[0], nested=chain + (name,))
        else:
            w = _Where(qualified, name)
        layer = _Layer(qualified, name, lcls, entry["config"], nodes, graph, w)
        graph.layers[name] = layer
        if lcls in _MODEL_CLASSES or (
            isinstance(entry["config"].get("layers"), list) and lcls not in _LAYERS
        ):
            nested_store = stores.get(name, missing) if isinstance(source, _Archive) else ""
            _graph_parse(source, path, entry, qualified, nested_store, chain + (name,), out)
    if sequential:
        graph.outputs = [previous] if previous else []
    else:
        graph.outputs = _refs(cfg.get("output_layers"))


def _stores(source, entries: list, store: str, sequential: bool) -> dict[str, str]:
    """.keras: {layer name: attribute path}. From the names the file records when it does;
    else by Keras' rule: a model's layers (not its InputLayer in a Sequential, not the ops a
    Functional records) numbered per snake_case class name, `lstm`, `lstm_1`, ..."""
    if not isinstance(source, _Archive):
        return {}
    recorded = source.child_stores(store)
    if all(n in recorded for n, e in entries if e.get("class_name") in _LAYERS_ALL):
        return recorded
    base = f"{store}/layers" if store else "layers"
    used: dict[str, int] = {}
    found = {}
    for name, entry in entries:
        cls = entry.get("class_name") or ""
        module = entry.get("module") or ""
        if (sequential and cls == "InputLayer") or module.startswith(
            ("keras.src.ops", "keras.ops")
        ):
            continue
        snake = _snake(cls)
        if snake in used:
            used[snake] += 1
            key = f"{snake}_{used[snake]}"
        else:
            used[snake] = 0
            key = snake
        found[name] = f"{base}/{key}"
    return found


_LAYERS_ALL = set(_LAYERS) | {"RNN", "Bidirectional"} | set(_MODEL_CLASSES)


def _snake(name: str) -> str:
    """Keras' to_snake_case (keras.src.utils.naming)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _ref(value) -> tuple | None:
    """(layer, node, tensor) from [layer, node, tensor, ...], or None if it is not one."""
    if (
        isinstance(value, list)
        and len(value) >= 3
        and isinstance(value[0], str)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value[1:3])
    ):
        return (value[0], value[1], value[2])
    return None


def _refs(obj) -> list:
    """The tensor references in a piece of config: Keras 3's {"class_name":
    "__keras_tensor__", "config": {"keras_history": [layer, node, tensor]}} and tf.keras 2's
    [layer, node, tensor(, kwargs)] lists, in order."""
    found: list = []
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            config = obj.get("config")
            ref = _ref(config.get("keras_history")) if isinstance(config, dict) else None
            return [ref] if ref else []
        for v in obj.values():
            found.extend(_refs(v))
    elif isinstance(obj, list):
        ref = _ref(obj)
        if ref:
            return [ref]
        for v in obj:
            found.extend(_refs(v))
    return found


def _node(path, layer: str, node) -> _Node:
    """One inbound node, Keras 3 ({"args": [...], "kwargs": {...}}) or tf.keras 2 ([[layer,
    node, tensor, kwargs], ...]: the first is the input, the others an RNN's initial_state)."""
    if isinstance(node, dict):
        args = node.get("args") or []
        kwargs = node.get("kwargs") or {}
        inputs = _refs(args[0]) if args else []
        states = _refs(args[1:]) + _refs(kwargs.get("initial_state"))
        mask = _refs(kwargs.get("mask"))
        return _Node(inputs, states, mask[0] if mask else None, "mask" in kwargs)
    if isinstance(node, list):
        entries = [e for e in node if _ref(e)]
        if not entries:
            return _Node([], [], None)
        kwargs = entries[0][3] if len(entries[0]) > 3 and isinstance(entries[0][3], dict) else {}
        inputs = [_ref(entries[0])]
        states = [_ref(e) for e in entries[1:]]
        states += _refs(kwargs.get("initial_state"))
        mask = _refs(kwargs.get("mask"))
        return _Node(inputs, states, mask[0] if mask else None)
    raise BadFile(path, f"layer {layer!r}: an inbound node must be an object or a list")


# --- recurrent layers ----------------------------------------------------------------------


class _Refused(ValueError):
    """A layer fastrnn does not import: the message names the layer, the option and its
    value (the file's path is added where the layer is selected)."""


@dataclasses.dataclass(frozen=True)
class _Cell:
    """One direction of a recurrent layer, as fastrnn computes it."""

    kind: str  # "LSTM" | "GRU" | "RNN"
    units: int
    use_bias: bool
    activations: tuple  # canonical (name, alpha, beta) per slot
    reset_after: bool  # GRU; True otherwise
    go_backwards: bool
    return_sequences: bool
    return_state: bool
    time_major: bool


@dataclasses.dataclass
class _Recurrent:
    layer: _Layer
    cells: tuple  # (forward,) or (forward, backward)
    merge_mode: str | None  # Bidirectional only

    @property
    def first(self) -> _Cell:
        return self.cells[0]

    def describe(self) -> str:
        c = self.first
        inner = f"{'SimpleRNN' if c.kind == 'RNN' else c.kind} {c.units} units"
        if len(self.cells) == 2:
            return f"{self.layer.name!r} (Bidirectional {inner}, merge_mode={self.merge_mode!r})"
        return f"{self.layer.name!r} ({inner}{', go_backwards' if c.go_backwards else ''})"


def _is_recurrent(layer: _Layer) -> bool:
    if layer.cls in _LAYERS or layer.cls == "Bidirectional":
        return True
    return layer.cls == "RNN" and isinstance(layer.config.get("cell"), (dict, list))


def _recurrent_parse(layer: _Layer, major: int | None) -> _Recurrent:
    """The layer's cells, or _Refused naming the layer and the option fastrnn refuses."""
    if layer.cls != "Bidirectional":
        return _Recurrent(layer, (_cell_parse(layer.name, layer.cls, layer.config, major),), None)
    cfg = layer.config
    _keys_check(f"layer {layer.name!r} (Bidirectional)", cfg, _BIDIRECTIONAL_KEYS)
    inner = cfg.get("layer")
    if not isinstance(inner, dict) or not isinstance(inner.get("config"), dict):
        raise _Refused(f"layer {layer.name!r} (Bidirectional): no wrapped layer config")
    merge = cfg.get("merge_mode", "concat")
    if merge not in ("concat", "sum", "mul", "ave", None):
        raise _Refused(
            f"layer {layer.name!r} (Bidirectional): merge_mode must be one of 'concat', "
            f"'sum', 'mul', 'ave', None, got {merge!r}",
        )
    forward = _cell_parse(
        layer.name, inner.get("class_name"), inner["config"], major, "Bidirectional of "
    )
    backward_cfg = cfg.get("backward_layer")
    if backward_cfg is None:  # Keras builds it from the layer with go_backwards=True
        backward = dataclasses.replace(forward, go_backwards=True)
    else:
        if not isinstance(backward_cfg, dict) or not isinstance(backward_cfg.get("config"), dict):
            raise _Refused(f"layer {layer.name!r} (Bidirectional): bad backward_layer config")
        backward = _cell_parse(
            layer.name,
            backward_cfg.get("class_name"),
            backward_cfg["config"],
            major,
            "Bidirectional, backward_layer ",
        )
    if forward.go_backwards or not backward.go_backwards:
        raise _Refused(
            f"layer {layer.name!r} (Bidirectional): the forward layer has go_backwards="
            f"{forward.go_backwards} and the backward layer go_backwards={backward.go_backwards}; "
            "fastrnn imports a Bidirectional whose forward layer runs forward "
            "(go_backwards=False) and whose backward layer runs backward",
        )
    for field, what in (
        ("kind", "class"),
        ("units", "units"),
        ("reset_after", "reset_after"),
        ("time_major", "time_major"),
    ):
        a, b = getattr(forward, field), getattr(backward, field)
        if a != b:
            raise _Refused(
                f"layer {layer.name!r} (Bidirectional): the forward layer has {what}={a!r} "
                f"and the backward layer {what}={b!r}; fastrnn's two directions share it",
            )
    return _Recurrent(layer, (forward, backward), merge)


def _keys_check(label: str, cfg: dict, known: set) -> None:
    unknown = sorted(k for k in cfg if k not in known)
    if unknown:
        raise _Refused(
            f"{label}: unknown option(s) {unknown}: fastrnn does not know "
            "whether they change the results, so it does not import this layer",
        )


def _cell_parse(name: str, cls, cfg: dict, major: int | None, within: str = "") -> _Cell:
    """One LSTM / GRU / SimpleRNN / RNN(cell) layer's options, checked; `within` says where
    the layer sits (a Bidirectional's wrapped or backward layer) in messages."""
    label = f"layer {name!r} ({within}{cls})"
    if cls == "RNN":
        cell = cfg.get("cell")
        if not isinstance(cell, dict) or cell.get("class_name") not in _CELLS:
            name_of = cell.get("class_name") if isinstance(cell, dict) else None
            stacked = isinstance(cell, list) or name_of == "StackedRNNCells"
            what = "StackedRNNCells (a list of cells)" if stacked else repr(name_of or cell)
            raise _Refused(
                f"{label}: cell={what} is not supported: fastrnn imports RNN over one of "
                f"{sorted(_CELLS)}" + ("; use one RNN layer per cell" if stacked else ""),
            )
        cell_cfg = cell.get("config")
        if not isinstance(cell_cfg, dict):
            raise _Refused(f"{label}: the cell has no config")
        label = f"layer {name!r} ({within}RNN of {cell['class_name']})"
        _keys_check(label, cfg, _KNOWN_KEYS)
        _keys_check(label, cell_cfg, _KNOWN_KEYS)
        kind = _CELLS[cell["class_name"]]
        merged = {**cell_cfg, **{k: v for k, v in cfg.items() if k != "cell"}}
    elif cls in _LAYERS:
        _keys_check(label, cfg, _KNOWN_KEYS)
        kind = _LAYERS[cls]
        merged = cfg
    else:
        raise _Refused(
            f"{label}: class {cls!r} is not a recurrent layer fastrnn imports "
            f"(LSTM, GRU, SimpleRNN, RNN over {sorted(_CELLS)})",
        )

    def flag(key: str, default: bool = False) -> bool:
        value = merged.get(key, default)
        if not isinstance(value, bool):
            raise _Refused(f"{label}: {key} must be true or false, got {value!r}")
        return value

    if flag("stateful"):
        raise _Refused(
            f"{label}: stateful=True is not supported: a fastrnn model keeps no state between "
            "calls (pass the previous call's final state as state=, or use model.stream()); "
            "save the model with stateful=False to import it",
        )
    units = merged.get("units")
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise _Refused(f"{label}: units must be a positive integer, got {units!r}")
    act = _activation(label, "activation", merged.get("activation", "tanh"), major)
    slots: tuple
    if kind == "RNN":
        slots = (act,)
    else:
        rec = _activation(
            label, "recurrent_activation", merged.get("recurrent_activation", "sigmoid"), major
        )
        slots = (rec, act, act) if kind == "LSTM" else (rec, act)
    reset_after = True
    if kind == "GRU":
        # A config without reset_after is from a Keras 2 that did not have it yet: its GRU
        # was the classic one (reset_after=False).
        reset_after = flag("reset_after", False)
    return _Cell(
        kind=kind,
        units=units,
        use_bias=flag("use_bias", True),
        activations=slots,
        reset_after=reset_after,
        go_backwards=flag("go_backwards"),
        return_sequences=flag("return_sequences"),
        return_state=flag("return_state"),
        time_major=flag("time_major"),
    )


def _activation(label: str, option: str, value, major: int | None) -> tuple:
    """A Keras activation (a name, or Keras 3's serialised built-in) → canonical triple."""
    name = value
    if isinstance(value, dict):
        config = value.get("config")
        if str(value.get("module", "")).startswith(
            ("keras.activations", "keras.src.activations")
        ) and isinstance(config, str):
            name = config
        else:
            raise _Refused(
                f"{label}: {option}={json.dumps(value)[:200]} is a custom activation: fastrnn "
                f"computes only {sorted(_ACTIVATIONS) + ['hard_sigmoid']}",
            )
    if name is None:
        name = "linear"  # Keras: activation=None is linear
    if not isinstance(name, str):
        raise _Refused(f"{label}: {option} must be a name, got {value!r}")
    key = name.lower()
    if key == "hard_sigmoid":
        if major is None:
            raise _Refused(
                f"{label}: {option}='hard_sigmoid' has slope 0.2 up to Keras 2 and 1/6 from "
                "Keras 3, and the file does not say which Keras wrote it (keras_version)",
            )
        # tf.keras 2 / Keras 2: clip(0.2·x + 0.5, 0, 1); Keras 3: relu6(x + 3) / 6.
        return activation(("HardSigmoid", 0.2 if major < 3 else 1.0 / 6.0, 0.5))
    if key not in _ACTIVATIONS:
        raise _Refused(
            f"{label}: {option}={name!r} is not supported: fastrnn computes "
            f"{sorted(_ACTIVATIONS) + ['hard_sigmoid']}",
        )
    return activation(_ACTIVATIONS[key])


# --- parts: stacks of agreeing layers ------------------------------------------------------


def _consumers(graph: _Graph) -> dict:
    """{tensor: [consumer layer local names]}, the model's outputs as "<output>"."""
    used: dict = {}
    for layer in graph.layers.values():
        for node in layer.nodes:
            for t in node.inputs + node.states + ([node.mask] if node.mask else []):
                used.setdefault(t, []).append(layer.local)
    for t in graph.outputs:
        used.setdefault(t, []).append("<output>")
    return used


def _upstream(graph: _Graph, layer: _Layer, used: dict) -> tuple:
    """(the layer feeding `layer` through identity layers, the identity layers passed), or
    (None, []) when `layer` is not fed by one layer through a simple chain."""
    if len(layer.nodes) != 1 or len(layer.nodes[0].inputs) != 1:
        return None, []
    passed = []
    ref = layer.nodes[0].inputs[0]
    while True:
        source = graph.layers.get(ref[0])
        if source is None or source.cls not in _IDENTITY:
            return source, passed
        if len(source.nodes) != 1 or len(source.nodes[0].inputs) != 1:
            return None, []
        passed.append(source)
        ref = source.nodes[0].inputs[0]


def _link_problem(a: _Recurrent, b: _Recurrent, passed: list, used: dict, masked: bool):
    """Why `a` (feeding `b`) and `b` cannot be one fastrnn stack, or None when they can."""
    fa, fb = a.first, b.first
    la, lb = a.layer.name, b.layer.name
    if len(a.layer.nodes) != 1 or len(b.layer.nodes) != 1:
        return f"{la!r} or {lb!r} is called more than once"
    if b.layer.nodes[0].states:
        return f"{lb!r} takes its initial state from other layers"
    chain = [a.layer] + passed
    for i, layer in enumerate(chain):
        nxt = (passed + [b.layer])[i].local
        out = used.get((layer.local, 0, 0), [])
        if out != [nxt]:
            other = [u for u in out if u != nxt]
            return f"the output of {layer.name!r} is also used by {other}"
    for t, users in used.items():
        if t[0] == a.layer.local and t != (a.layer.local, 0, 0) and users:
            return f"{la!r} returns its state to {users}"
    if fa.kind != fb.kind:
        return f"{la!r} is {fa.kind} and {lb!r} is {fb.kind}"
    if len(a.cells) != len(b.cells):
        return "one is Bidirectional and the other is not"
    if fa.units != fb.units:
        return f"units differ ({fa.units} in {la!r}, {fb.units} in {lb!r})"
    if [c.activations for c in a.cells] != [c.activations for c in b.cells]:
        return f"the activations of {la!r} and {lb!r} differ"
    if fa.reset_after != fb.reset_after:
        return f"reset_after differs ({fa.reset_after} in {la!r}, {fb.reset_after} in {lb!r})"
    if fa.time_major != fb.time_major:
        return "time_major differs"
    if len(a.cells) == 2 and a.merge_mode != "concat":
        return (
            f"{la!r} merges its directions with merge_mode={a.merge_mode!r}; fastrnn's layers "
            "below the top concatenate them"
        )
    if fb.go_backwards:
        return f"{lb!r} has go_backwards=True: a reversed layer can only start a stack"
    if fa.go_backwards and masked:
        return (
            f"{la!r} has go_backwards=True and a mask: Keras applies the unreversed mask to "
            f"its reversed output, which fastrnn's lengths cannot express"
        )
    if not fa.return_sequences:
        return f"{la!r} has return_sequences=False"
    return None


def _mask_source(graph: _Graph, layer: _Layer) -> tuple:
    """(masked, mask layer name, mask_value) for the input of `layer`: a Masking layer or an
    Embedding(mask_zero=True) upstream through layers that keep the mask. Keras 3 records
    the mask of a Functional model's call (kwargs "mask"): that record decides there."""
    node = layer.nodes[0] if len(layer.nodes) == 1 else None
    if node is not None and node.mask_recorded and node.mask is None:
        return False, None, None
    explicit = node is not None and node.mask is not None
    seen = set()
    ref = node.inputs[0] if node is not None and node.inputs else None
    while ref is not None and ref[0] not in seen:
        seen.add(ref[0])
        source = graph.layers.get(ref[0])
        if source is None:
            break
        if source.cls == "Masking":
            value = source.config.get("mask_value", 0.0)
            return True, source.name, float(value) if isinstance(value, (int, float)) else None
        if source.cls == "Embedding" and source.config.get("mask_zero"):
            return True, source.name, None
        if source.cls not in _MASK_KEEPING or len(source.nodes) != 1 or not source.nodes[0].inputs:
            break
        ref = source.nodes[0].inputs[0]
    return explicit, None, None


@dataclasses.dataclass
class _Part:
    layers: list  # [_Recurrent], bottom to top
    masked: bool
    mask_layer: str | None
    mask_value: float | None


def _parts(graphs: list, major) -> tuple[list, dict, list]:
    """(parts, {layer name: why fastrnn refuses it}, notes on neighbours that are not one
    stack). A part is a maximal stack of recurrent layers that make one fastrnn model."""
    parts: list[_Part] = []
    refused: dict[str, str] = {}
    notes: list[str] = []
    for graph in graphs:
        used = _consumers(graph)
        recurrent: dict[str, _Recurrent] = {}
        for layer in graph.layers.values():
            if not _is_recurrent(layer):
                continue
            try:
                recurrent[layer.local] = _recurrent_parse(layer, major)
            except _Refused as e:
                refused[layer.name] = str(e)
        part_of: dict[str, _Part] = {}
        for local, rec in recurrent.items():
            source, passed = _upstream(graph, rec.layer, used)
            below = recurrent.get(source.local) if source is not None else None
            if below is not None and below.layer.local in part_of:
                part = part_of[below.layer.local]
                if part.layers[-1] is below:
                    problem = _link_problem(below, rec, passed, used, part.masked)
                    if problem is None:
                        part.layers.append(rec)
                        part_of[local] = part
                        continue
                    notes.append(f"{below.layer.name!r} → {rec.layer.name!r}: {problem}")
            masked, mask_layer, mask_value = _mask_source(graph, rec.layer)
            part = _Part([rec], masked, mask_layer, mask_value)
            parts.append(part)
            part_of[local] = part
    return parts, refused, notes


def _part_text(part: _Part) -> str:
    return " → ".join(r.describe() for r in part.layers)


def _select(path, graphs, parts: list, refused: dict, notes: list, layer) -> _Part:
    names = [r.layer.name for p in parts for r in p.layers] + list(refused)
    if layer is not None:
        wanted = [n for n in names if n == layer]
        if not wanted:
            wanted = [n for n in names if n.rsplit("/", 1)[-1] == layer]
        if len(wanted) > 1:
            raise ValueError(
                f"{path}: layer={layer!r} names several layers {wanted}: use the qualified name"
            )
        if not wanted:
            raise ValueError(
                f"{path}: layer={layer!r} is not a recurrent layer of the model; its recurrent "
                f"layers are {names}"
            )
        (name,) = wanted
        if name in refused:
            raise BadFile(path, refused[name])
        return next(p for p in parts if any(r.layer.name == name for r in p.layers))
    if len(parts) + len(refused) == 1:
        if refused:
            raise BadFile(path, next(iter(refused.values())))
        return parts[0]
    if not parts and not refused:
        foreign = sorted(
            f"{lay.name!r} ({lay.cls})"
            for g in graphs
            for lay in g.layers.values()
            if lay.cls in _FOREIGN_RECURRENT
        )
        raise BadFile(
            path,
            "has no recurrent layer fastrnn imports (LSTM, GRU, SimpleRNN, RNN over one "
            "LSTMCell/GRUCell/SimpleRNNCell, Bidirectional of these)"
            + (f"; it has {', '.join(foreign)}" if foreign else ""),
        )
    lines = [f"  {_part_text(p)}" for p in parts]
    lines += [f"  refused: {why}" for why in refused.values()]
    text = "\n".join(lines)
    if notes:
        text += "\nnot one stack:\n" + "\n".join(f"  {n}" for n in notes)
    raise ValueError(
        f"{path}: the model has {len(parts) + len(refused)} recurrent parts that cannot be one "
        f"fastrnn model; pass layer= the name of one of their layers:\n{text}"
    )


# --- weights -------------------------------------------------------------------------------


def _import(source, layer) -> tuple[KerasPart, dict]:
    path = source.path
    major = source.major()
    if major is not None and major < 2:
        raise BadFile(
            path,
            f"was written by Keras {source.version}: fastrnn reads files of Keras 2 and 3",
        )
    graphs = _graphs(source, path)
    parts, refused, notes = _parts(graphs, major)
    part = _select(path, graphs, parts, refused, notes, layer)
    recs = part.layers
    first, top = recs[0], recs[-1]
    D = len(first.cells)
    kind = first.first.kind
    H = first.first.units
    G = _GATES[kind] * H

    # Every layer's datasets, unread, with the directions' storage places.
    datasets = []
    for rec in recs:
        per_dir = []
        for d, cell in enumerate(rec.cells):
            w = rec.layer.where
            if D == 2:
                fwd_count = 2 + rec.cells[0].use_bias
                w = dataclasses.replace(
                    w, direction=("forward_layer", "backward_layer")[d], forward_count=fwd_count
                )
            per_dir.append(source.arrays(w, 2 + cell.use_bias))
        datasets.append(per_dir)
    kernel0 = datasets[0][0][0]
    if len(kernel0.shape) != 2:
        raise BadFile(path, f"layer {first.layer.name!r}: kernel must be 2-D, got {kernel0.shape}")
    input_size = int(kernel0.shape[0])

    activations = tuple(a for c in first.cells for a in c.activations)
    mode = kind
    if kind == "RNN":
        slot = {c.activations for c in first.cells}
        mode = "RNN_RELU" if slot == {(activation("Relu"),)} else "RNN_TANH"
    defaults = tuple(activation(a) for a in DEFAULT_ACTIVATIONS[mode]) * D
    config = ModelConfig(
        kind=kind,
        mode=mode,
        input_size=input_size,
        hidden_size=H,
        num_layers=len(recs),
        bidirectional=D == 2,
        bias=any(c.use_bias for r in recs for c in r.cells),
        batch_first=not first.first.time_major,
        reverse=D == 1 and first.first.go_backwards,
        linear_before_reset=first.first.reset_after,
        activations=() if activations == defaults else activations,
        merge_mode=("none" if top.merge_mode is None else top.merge_mode) if D == 2 else "concat",
    )
    problem = config.problem()
    if problem:
        raise BadFile(path, f"part {[r.layer.name for r in recs]}: {problem}")

    # Shapes first (nothing read yet), then the arrays.
    weights: dict[str, np.ndarray] = {}
    for k, (rec, per_dir) in enumerate(zip(recs, datasets)):
        I = input_size if k == 0 else D * H
        for d, (cell, arrays) in enumerate(zip(rec.cells, per_dir)):
            where = rec.layer.name
            if D == 2:
                where += (" (forward layer)", " (backward layer)")[d]
            expected = [(I, G), (H, G)]
            if cell.use_bias:
                expected.append((2, G) if kind == "GRU" and cell.reset_after else (G,))
            for what, ds, shape in zip(("kernel", "recurrent_kernel", "bias"), arrays, expected):
                if tuple(ds.shape) != shape:
                    hint = ""
                    if what == "bias" and kind == "GRU" and tuple(ds.shape) in ((G,), (2, G)):
                        hint = f" (the config says reset_after={cell.reset_after})"
                    raise BadFile(
                        path,
                        f"layer {where!r}: {what} must have shape {shape} "
                        f"(input {I}, units {H}), got {tuple(ds.shape)}{hint}",
                    )
            kernel, recurrent = (_array(path, where, ds) for ds in arrays[:2])
            bias = _array(path, where, arrays[2]) if cell.use_bias else None
            sfx = f"_l{k}" + ("_reverse" if d == 1 else "")
            weights.update(_torch_weights(kind, H, kernel, recurrent, bias, config.bias, sfx))
    initial = (
        tuple(f"{t[0]}:{t[2]}" for t in first.layer.nodes[0].states) if first.layer.nodes else ()
    )
    keras_part = KerasPart(
        path=path,
        layers=tuple(r.layer.name for r in recs),
        config=config,
        keras_version=source.version,
        return_sequences=top.first.return_sequences,
        return_state=top.first.return_state,
        go_backwards=config.reverse,
        merge_mode=top.merge_mode if D == 2 else None,
        masked=part.masked,
        mask_layer=part.mask_layer,
        mask_value=part.mask_value,
        initial_state=initial,
    )
    return keras_part, weights


def _array(path, where: str, ds) -> np.ndarray:
    """A stored variable as float32 (Keras 3 stores bfloat16 as 2-byte opaque values with
    attrs dtype="bfloat16": the top half of a float32, widened exactly)."""
    try:
        if _text(ds.attrs.get("dtype", "")) == "bfloat16":
            raw = np.asarray(ds[()]).view(np.uint16)
            return (raw.astype(np.uint32) << 16).view(np.float32)
        a = np.asarray(ds[()])
    except (OSError, ValueError, TypeError) as e:
        raise BadFile(path, f"layer {where!r}: cannot read {ds.name}: {e}") from None
    if a.dtype.kind != "f":
        raise BadFile(path, f"layer {where!r}: {ds.name} holds {a.dtype}, not floating point")
    return a.astype(np.float32)


def _torch_weights(kind: str, H: int, kernel, recurrent, bias, with_bias: bool, sfx: str) -> dict:
    """One layer and direction in torch's names and gate order. Keras' column blocks: LSTM
    i, f, c, o (= torch's i, f, g, o); GRU z, r, h → torch's r, z, n; RNN one block."""
    if kind == "GRU":
        order = np.r_[H : 2 * H, 0:H, 2 * H : 3 * H]  # z, r, h → r, z, n
    else:
        order = np.arange(kernel.shape[1])
    out = {
        "weight_ih" + sfx: np.ascontiguousarray(kernel[:, order].T),
        "weight_hh" + sfx: np.ascontiguousarray(recurrent[:, order].T),
    }
    if with_bias:
        G = kernel.shape[1]
        zeros = np.zeros(G, np.float32)
        if bias is None:
            b_ih, b_hh = zeros, zeros
        elif bias.ndim == 2:  # GRU reset_after: row 0 input, row 1 recurrent
            b_ih, b_hh = bias[0][order], bias[1][order]
        else:  # LSTM, SimpleRNN, classic GRU: one bias, added once
            b_ih, b_hh = bias[order], zeros
        out["bias_ih" + sfx] = np.ascontiguousarray(b_ih)
        out["bias_hh" + sfx] = np.ascontiguousarray(b_hh)
    return out


def _merge(fwd, bwd, mode):
    if mode is None:
        return fwd, bwd
    if mode == "concat":
        return np.concatenate([fwd, bwd], axis=-1)
    if mode == "sum":
        return fwd + bwd
    if mode == "mul":
        return fwd * bwd
    return (fwd + bwd) * np.float32(0.5)
