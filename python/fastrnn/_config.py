"""The one internal description of a model: ModelConfig.

Every model exposes one (`model.config`); every importer (fastrnn files, safetensors and
torch state_dicts, torch modules) produces one together with the weights under torch's key
names in torch's gate order, and `fastrnn.io.build(config, weights)` makes the model. The
mode table below is the only place that knows a mode's gate count, nonlinearity and class.
"""

from __future__ import annotations

import dataclasses
import re

from ._checks import MAX_LAYERS, MAX_PARAMETERS, MAX_SIZE

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
FORMAT = "fastrnn"
FORMAT_VERSION = 1


def rnn_mode(nonlinearity: str) -> str:
    """'tanh' → 'RNN_TANH', 'relu' → 'RNN_RELU'; anything else is a ValueError."""
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


def gates(mode: str) -> int:
    """Gate rows per hidden unit: 4 (LSTM), 3 (GRU), 1 (RNN)."""
    return _MODES[mode][0]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What a model is, without its weights.

    kind: the class, "LSTM" | "GRU" | "RNN" | "LSTMCell" | "GRUCell" | "RNNCell";
    mode: the cell, "LSTM" | "GRU" | "RNN_TANH" | "RNN_RELU" (must fit kind);
    the sizes and options have torch.nn's names and meaning. A cell is a one-layer,
    unidirectional stack without projection, time-major. Construction checks nothing:
    `check()` does (importers call it before reading any weight).
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

    # --- derived ---------------------------------------------------------------------------

    @property
    def gates(self) -> int:
        return gates(self.mode)

    @property
    def nonlinearity(self) -> str | None:
        """'tanh' or 'relu' for an RNN, None otherwise."""
        return _MODES[self.mode][1]

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
        count = self.parameter_count()
        if count > MAX_PARAMETERS:
            return f"{self.describe()} would have {count} weights; fastrnn reads at most 2^32"
        return None

    # --- file metadata -------------------------------------------------------------------------

    def to_metadata(self) -> dict[str, str]:
        """The configuration as safetensors metadata (strings): see docs/serving.md."""
        md = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "class": self.kind}
        for field in dataclasses.fields(self):
            if field.name == "kind":
                continue
            value = getattr(self, field.name)
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
        )
        problem = config.problem()
        if problem:
            raise ValueError(problem)
        return config
