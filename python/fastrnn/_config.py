"""The one internal description of a model: ModelConfig.

Every model exposes one (`model.config`); every importer (fastrnn files, safetensors and
torch state_dicts, torch modules) produces one together with the weights under torch's key
names in torch's gate order, and `fastrnn.io.build(config, weights)` makes the model. The
mode table below is the only place that knows a mode's gate count, nonlinearity and class.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

from ._checks import MAX_LAYERS, MAX_PARAMETERS, MAX_REDUCED_SIZE, MAX_SIZE

# mode → (gates per hidden unit, nonlinearity of an Elman RNN, layer class name).
# Gate order is torch's: LSTM i, f, g, o; GRU r, z, n.
_MODES = {
    "LSTM": (4, None, "LSTM"),
    "GRU": (3, None, "GRU"),
    "RNN_TANH": (1, "tanh", "RNN"),
    "RNN_RELU": (1, "relu", "RNN"),
}
MODES = tuple(_MODES)
NONLINEARITIES = ("tanh", "relu")
LAYER_CLASSES = ("LSTM", "GRU", "RNN")
CLASSES = LAYER_CLASSES + tuple(c + "Cell" for c in LAYER_CLASSES)

# The file format these configurations are stored in (safetensors metadata, all strings).
# Version 2 adds the cell variants below; a file of a torch-form model is still written as
# version 1, so that older readers keep reading it (and refuse what they cannot compute).
FORMAT = "fastrnn"
FORMAT_VERSION = 3  # 2: cell variants; 3: reduced-precision weights (dtype)

# Activation functions a cell may use instead of its defaults (ONNX's names and meaning,
# https://onnx.ai/onnx/operators/onnx__LSTM.html): name → (alpha, beta) defaults, None
# where the function has no such parameter. Sigmoid, Tanh and Relu are the torch cells'.
#   HardSigmoid  max(0, min(1, alpha·x + beta))     LeakyRelu        x ≥ 0 ? x : alpha·x
#   ThresholdedRelu  x > alpha ? x : 0              ScaledTanh       alpha·tanh(beta·x)
#   Affine       alpha·x + beta                     Elu              x ≥ 0 ? x : alpha·(e^x − 1)
#   Softsign     x / (1 + |x|)                      Softplus         log(1 + e^x)
ACTIVATIONS = {
    "Sigmoid": (None, None),
    "Tanh": (None, None),
    "Relu": (None, None),
    "HardSigmoid": (0.2, 0.5),
    "LeakyRelu": (0.01, None),
    "ThresholdedRelu": (1.0, None),
    "ScaledTanh": (1.0, 1.0),
    "Affine": (1.0, 0.0),
    "Elu": (1.0, None),
    "Softsign": (None, None),
    "Softplus": (None, None),
}
# A cell's activation slots and their defaults (ONNX's f, g, h): LSTM f for i, f, o, g for
# the candidate, h for the cell output; GRU f for r, z, g for the candidate; RNN its one.
DEFAULT_ACTIVATIONS = {
    "LSTM": ("Sigmoid", "Tanh", "Tanh"),
    "GRU": ("Sigmoid", "Tanh"),
    "RNN_TANH": ("Tanh",),
    "RNN_RELU": ("Relu",),
}


def activation(spec) -> tuple:
    """A canonical (name, alpha, beta) from a name or a (name[, alpha[, beta]]) sequence;
    the name case-insensitive, missing parameters their defaults (0.0 where the function
    has none). An unknown name or a bad parameter is a ValueError naming it."""
    if isinstance(spec, str):
        name, params = spec, ()
    elif isinstance(spec, (tuple, list)) and spec and isinstance(spec[0], str):
        name, params = spec[0], tuple(spec[1:])
    else:
        raise ValueError(f"an activation must be a name or (name, alpha, beta), got {spec!r}")
    canonical = {k.lower(): k for k in ACTIVATIONS}.get(name.lower())
    if canonical is None:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {name!r}")
    defaults = ACTIVATIONS[canonical]
    if len(params) > 2:
        raise ValueError(f"activation {canonical} takes at most alpha and beta, got {spec!r}")
    values = []
    for i, d in enumerate(defaults):
        v = params[i] if i < len(params) else d
        if v is None:
            v = 0.0
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(
                f"activation {canonical}: parameters must be finite numbers, got {spec!r}"
            )
        values.append(float(v))
    return (canonical, values[0], values[1])


def rnn_mode(nonlinearity: str) -> str:
    """'tanh' → 'RNN_TANH', 'relu' → 'RNN_RELU'; anything else is a ValueError."""
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


def gates(mode: str) -> int:
    """Gate rows per hidden unit: 4 (LSTM), 3 (GRU), 1 (RNN)."""
    return _MODES[mode][0]


_VARIANT_FIELDS = (
    "reverse",
    "linear_before_reset",
    "peepholes",
    "input_forget",
    "clip",
    "activations",
    "merge_mode",
)
MERGE_MODES = ("concat", "sum", "mul", "ave", "none")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What a model is, without its weights.

    kind: the class, "LSTM" | "GRU" | "RNN" | "LSTMCell" | "GRUCell" | "RNNCell";
    mode: the cell, "LSTM" | "GRU" | "RNN_TANH" | "RNN_RELU" (must fit kind);
    the sizes and options have torch.nn's names and meaning. A cell is a one-layer,
    unidirectional stack without projection, time-major.

    Variants beyond torch's cells (ONNX's and Keras' options; the defaults are torch's):
    reverse: a unidirectional stack runs backwards in time (ONNX direction="reverse",
        Keras go_backwards); outputs stay at their input's time index;
    linear_before_reset: GRU only; False: the classic GRU, n = g(W_in x + b_in +
        W_hn (r ⊙ h) + b_hn) (ONNX's default, Keras reset_after=False);
    peepholes: LSTM only; i and f also see P ⊙ c_{t−1}, o sees P ⊙ c_t (weights
        `weight_peep_l{k}[_reverse]`, (3·H,), order i, f, o);
    input_forget: LSTM only; f = 1 − i;
    clip: > 0: every gate's pre-activation is clamped to [−clip, clip]; 0: none;
    activations: () the mode's defaults (DEFAULT_ACTIVATIONS); else canonical
        (name, alpha, beta) triples, the cell's slots for each direction in turn;
    merge_mode: bidirectional only, how the last layer's two directions make the output
        (Keras' Bidirectional): "concat" (torch's), "sum", "mul", "ave", or "none" (the
        output is the pair (forward, backward)). Layers below the last always concatenate.

    dtype: how the weight matrices are held, "float32", "bf16", "int8" or "int7" (see
    fastrnn.quantize and docs/precision.md); biases, states and arithmetic stay float32.
    Construction checks nothing: `problem()` does (importers call it before reading any
    weight).
    """

    kind: str
    mode: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    bias: bool = True
    batch_first: bool = False
    reverse: bool = False
    linear_before_reset: bool = True
    peepholes: bool = False
    input_forget: bool = False
    clip: float = 0.0
    activations: tuple = ()
    merge_mode: str = "concat"
    dtype: str = "float32"

    # --- derived ---------------------------------------------------------------------------

    @property
    def gates(self) -> int:
        return gates(self.mode)

    @property
    def nonlinearity(self) -> str | None:
        """'tanh' or 'relu' for an RNN, None otherwise."""
        return _MODES[self.mode][1]

    @property
    def is_variant(self) -> bool:
        """Whether the model differs from torch's cells (needs format version 2)."""
        return (
            self.reverse
            or not self.linear_before_reset
            or self.peepholes
            or self.input_forget
            or self.clip != 0.0
            or bool(self.activations)
            or self.merge_mode != "concat"
        )

    def activations_of(self, direction: int) -> tuple:
        """The (name, alpha, beta) triples of one direction's activation slots."""
        defaults = DEFAULT_ACTIVATIONS[self.mode]
        if not self.activations:
            return tuple(activation(a) for a in defaults)
        n = len(defaults)
        return tuple(self.activations[direction * n : (direction + 1) * n])

    @property
    def is_cell(self) -> bool:
        return self.kind.endswith("Cell")

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def h_out(self) -> int:
        """The size of h (and of each direction's output): proj_size if set, else hidden."""
        return self.proj_size or self.hidden_size

    def parameter_shapes(self) -> dict[str, tuple]:
        """torch's parameter names and shapes, in torch's order (a cell's without `_l0`)."""
        G = self.gates * self.hidden_size
        D, H_out = self.num_directions, self.h_out
        shapes: dict[str, tuple] = {}
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else D * H_out
            for direction in range(D):
                sfx = "" if self.is_cell else f"_l{layer}" + ("_reverse" if direction else "")
                shapes["weight_ih" + sfx] = (G, in_size)
                shapes["weight_hh" + sfx] = (G, H_out)
                if self.bias:
                    shapes["bias_ih" + sfx] = (G,)
                    shapes["bias_hh" + sfx] = (G,)
                if self.proj_size:
                    shapes["weight_hr" + sfx] = (self.proj_size, self.hidden_size)
                if self.peepholes:
                    shapes["weight_peep" + sfx] = (3 * self.hidden_size,)
        return shapes

    def parameter_count(self) -> int:
        """The number of weights (Python ints: never overflows)."""
        total = 0
        for shape in self.parameter_shapes().values():
            n = 1
            for d in shape:
                n *= int(d)
            total += n
        return total

    def arguments(self, with_layout: bool = True) -> str:
        """torch.nn's constructor arguments that differ from the defaults: "64, 256,
        num_layers=2, bidirectional=True"."""
        parts = [f"{self.input_size}, {self.hidden_size}"]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        if self.mode == "RNN_RELU":
            parts.append("nonlinearity='relu'")
        if not self.bias:
            parts.append("bias=False")
        if with_layout and self.batch_first:
            parts.append("batch_first=True")
        if self.bidirectional:
            parts.append("bidirectional=True")
        if self.proj_size:
            parts.append(f"proj_size={self.proj_size}")
        if self.reverse:
            parts.append("reverse=True")
        if not self.linear_before_reset:
            parts.append("linear_before_reset=False")
        if self.peepholes:
            parts.append("peepholes=True")
        if self.input_forget:
            parts.append("input_forget=True")
        if self.clip:
            parts.append(f"clip={self.clip:g}")
        if self.merge_mode != "concat":
            parts.append(f"merge_mode={self.merge_mode!r}")
        if self.activations:
            names = [a[0] if tuple(a) == activation(a[0]) else a for a in self.activations]
            parts.append(f"activations={tuple(names)!r}")
        return ", ".join(parts)

    def describe(self) -> str:
        """The constructor call that makes this configuration: "LSTM(64, 256, num_layers=2)"
        (the layout, batch_first, left out: it does not change the weights)."""
        return f"{self.kind}({self.arguments(with_layout=False)})"

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    # --- checks ------------------------------------------------------------------------------

    def problem(self) -> str | None:
        """Why this configuration is not a model fastrnn can make (None: it is). Sizes in
        range, options that fit together, at most MAX_PARAMETERS weights."""
        if self.kind not in CLASSES:
            return f"class must be one of {list(CLASSES)}, got {self.kind!r}"
        if self.mode not in _MODES or _MODES[self.mode][2] != self.kind.removesuffix("Cell"):
            return f"mode {self.mode!r} does not fit class {self.kind!r}"
        for key, low, high in (
            ("input_size", 1, MAX_SIZE),
            ("hidden_size", 1, MAX_SIZE),
            ("num_layers", 1, MAX_LAYERS),
            ("proj_size", 0, MAX_SIZE),
        ):
            value = getattr(self, key)
            if not low <= value <= high:
                return f"{key} must be in [{low}, {high}], got {value}"
        if self.proj_size and (self.mode != "LSTM" or self.proj_size >= self.hidden_size):
            return (
                f"proj_size={self.proj_size} needs an LSTM with hidden_size > proj_size, "
                f"got mode {self.mode} with hidden_size={self.hidden_size}"
            )
        if self.is_cell:
            fixed = {"num_layers": 1, "bidirectional": False, "proj_size": 0, "batch_first": False}
            for key, value in fixed.items():
                if getattr(self, key) != value:
                    return f"a {self.kind} must have {key}={value}, got {getattr(self, key)}"
        if self.reverse and (self.bidirectional or self.is_cell):
            return "reverse=True needs a unidirectional layer stack"
        if not self.linear_before_reset and self.mode != "GRU":
            return f"linear_before_reset=False is a GRU option, got mode {self.mode}"
        if (self.peepholes or self.input_forget) and self.mode != "LSTM":
            return f"peepholes and input_forget are LSTM options, got mode {self.mode}"
        if (self.peepholes or self.input_forget) and self.proj_size:
            return "peepholes and input_forget cannot be combined with proj_size"
        if isinstance(self.clip, bool) or not isinstance(self.clip, (int, float)):
            return f"clip must be a number, got {self.clip!r}"
        if not (math.isfinite(self.clip) and self.clip >= 0):
            return f"clip must be a finite number >= 0 (0: none), got {self.clip!r}"
        if self.activations:
            n = len(DEFAULT_ACTIVATIONS[self.mode]) * self.num_directions
            if len(self.activations) != n:
                return (
                    f"activations must hold {n} entries for {self.mode} with "
                    f"{self.num_directions} direction(s), got {len(self.activations)}"
                )
            for a in self.activations:
                try:
                    if activation(a) != tuple(a):
                        return f"activations must be canonical (name, alpha, beta), got {a!r}"
                except ValueError as e:
                    return str(e)
        if self.merge_mode not in MERGE_MODES:
            return f"merge_mode must be one of {list(MERGE_MODES)}, got {self.merge_mode!r}"
        if self.dtype not in ("float32", "bf16", "int8", "int7"):
            return f"dtype must be 'float32', 'bf16', 'int8' or 'int7', got {self.dtype!r}"
        if self.dtype != "float32":
            for key in ("input_size", "hidden_size", "proj_size"):
                if getattr(self, key) > MAX_REDUCED_SIZE:
                    return (
                        f"{key} of a {self.dtype} model must be at most {MAX_REDUCED_SIZE}, "
                        f"got {getattr(self, key)}"
                    )
        if self.merge_mode != "concat" and not self.bidirectional:
            return f"merge_mode={self.merge_mode!r} needs a bidirectional model"
        if self.is_variant and self.is_cell:
            return f"a {self.kind} has torch's cell: the variants are for layer stacks"
        count = self.parameter_count()
        if count > MAX_PARAMETERS:
            return f"{self.describe()} would have {count} weights; fastrnn reads at most 2^32"
        return None

    # --- file metadata -------------------------------------------------------------------------

    def to_metadata(self) -> dict[str, str]:
        """The configuration as safetensors metadata (strings): see docs/serving.md."""
        version = 3 if self.dtype != "float32" else 2 if self.is_variant else 1
        md = {"format": FORMAT, "format_version": str(version), "class": self.kind}
        for field in dataclasses.fields(self):
            if field.name == "kind" or (field.name in _VARIANT_FIELDS and not self.is_variant):
                continue
            if field.name == "dtype" and self.dtype == "float32":
                continue
            value = getattr(self, field.name)
            if field.name == "activations":
                value = json.dumps([list(a) for a in self.activations])
            elif field.name == "clip":
                value = repr(float(value))
            md[field.name] = (
                ("true" if value else "false") if isinstance(value, bool) else str(value)
            )
        if self.nonlinearity:
            md["nonlinearity"] = self.nonlinearity
        return md

    @classmethod
    def from_metadata(cls, md: dict[str, str]) -> ModelConfig:
        """The configuration in a fastrnn file's metadata, checked (`problem()` too). A
        missing, malformed or inconsistent value is a ValueError saying which."""

        def get(key: str) -> str:
            if key not in md:
                raise ValueError(f"metadata lacks {key!r}")
            return md[key]

        def integer(key: str) -> int:
            text = get(key)
            # Range checks follow in problem(); 30 digits keep int() trivially cheap.
            if not re.fullmatch(r"[0-9]{1,30}", text):
                raise ValueError(
                    f"metadata {key} must be a non-negative integer, got {text!r:.100}"
                )
            return int(text)

        def boolean(key: str) -> bool:
            text = get(key)
            if text not in ("true", "false"):
                raise ValueError(f"metadata {key} must be 'true' or 'false', got {text!r}")
            return text == "true"

        version = get("format_version")
        if not re.fullmatch(r"[0-9]{1,9}", version):
            raise ValueError(f"metadata format_version must be an integer, got {version!r}")
        if int(version) > FORMAT_VERSION:
            raise ValueError(
                f"was written in format_version {version} by a newer fastrnn; "
                f"this one reads format_version {FORMAT_VERSION}: upgrade fastrnn"
            )
        kind, mode = get("class"), get("mode")
        if kind not in CLASSES:
            raise ValueError(f"metadata class must be one of {list(CLASSES)}, got {kind!r}")
        if mode not in _MODES or _MODES[mode][2] != kind.removesuffix("Cell"):
            raise ValueError(f"metadata mode {mode!r} does not fit class {kind!r}")
        if "nonlinearity" in md and md["nonlinearity"] != _MODES[mode][1]:
            raise ValueError(
                f"metadata nonlinearity {md['nonlinearity']!r} does not fit mode {mode!r}"
            )
        variant = {}
        if int(version) >= 2:
            for key in ("reverse", "linear_before_reset", "peepholes", "input_forget"):
                if key in md:
                    variant[key] = boolean(key)
            if "merge_mode" in md:
                variant["merge_mode"] = get("merge_mode")[:20]
            if "clip" in md:
                try:
                    variant["clip"] = float(md["clip"][:40])
                except ValueError:
                    raise ValueError(
                        f"metadata clip must be a number, got {md['clip']!r:.100}"
                    ) from None
            if "activations" in md:
                try:
                    listed = json.loads(md["activations"][:10000])
                    variant["activations"] = tuple(activation(a) for a in listed)
                except (ValueError, TypeError) as e:
                    raise ValueError(f"metadata activations: {e}") from None
        if int(version) >= 3 and "dtype" in md:
            variant["dtype"] = get("dtype")[:20]
        config = cls(
            kind=kind,
            mode=mode,
            input_size=integer("input_size"),
            hidden_size=integer("hidden_size"),
            num_layers=integer("num_layers"),
            bidirectional=boolean("bidirectional"),
            proj_size=integer("proj_size"),
            bias=boolean("bias"),
            batch_first=boolean("batch_first"),
            **variant,
        )
        problem = config.problem()
        if problem:
            raise ValueError(problem)
        return config
