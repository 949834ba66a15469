"""The public layer and cell classes: torch.nn's names, arguments, defaults and shapes.

A model holds its weights in torch's layout (for state_dict) and a packed copy in the
compiled core (for speed). It is immutable between load_state_dict calls, so any number of
Python threads may call one model at once: the GIL is released during compute.
"""

from __future__ import annotations

import numpy as np

from . import _core, io
from ._checks import (
    MAX_LAYERS,
    MAX_PARAMETERS,
    MAX_SIZE,
    as_lengths,
    call_threads,
    check_shape,
    float_array,
    positive_int,
    shape_text,
    to_float32,
)
from ._config import DEFAULT_ACTIVATIONS, MERGE_MODES, ModelConfig, activation, rnn_mode
from ._quantize import CORE_DTYPES, core_matrix, is_matrix, rounded

# The variants' values for torch's cells (and for pickles made before they existed).
_VARIANT_DEFAULTS = {
    "reverse": False,
    "linear_before_reset": True,
    "peepholes": False,
    "input_forget": False,
    "clip": 0.0,
    "activations": (),
    "merge_mode": "concat",
}

# Passed as `seed` by build() (files, pickles, importers) that supply the weights: the
# constructor then checks the configuration but skips the random initialisation.
_NO_WEIGHTS = object()


def checked_state_dict(name: str, state_dict, shapes: dict[str, tuple]) -> dict:
    """The arrays of state_dict under exactly the keys of shapes, each checked for its shape
    before any conversion (float arrays, not yet copied); a missing, unexpected or
    mis-shaped key is a ValueError naming it, a non-mapping a TypeError. name: the class whose
    load_state_dict is called."""
    if not hasattr(state_dict, "keys"):
        raise TypeError(
            f"{name}.load_state_dict: state_dict must be a mapping, got {type(state_dict).__name__}"
        )
    missing = [k for k in shapes if k not in state_dict]
    extra = [k for k in state_dict if k not in shapes]
    if missing or extra:
        msg = [f"{name}.load_state_dict:"]
        if missing:
            msg.append(f"missing keys {missing}")
        if extra:
            msg.append(f"unexpected keys {extra}")
        raise ValueError(" ".join(msg))
    arrays = {}
    for key, shape in shapes.items():
        a = float_array(state_dict[key], f"{name}.load_state_dict: {key}")
        check_shape(a, f"{name}.load_state_dict: {key}", shape)
        arrays[key] = a
    return arrays


class _RNNBase:
    """Common machinery of LSTM, GRU and RNN (a multi-layer, maybe bidirectional, stack)."""

    _mode = ""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        seed: int | None = None,
        _owner: str | None = None,
        **variant,
    ) -> None:
        # _owner: the class a cell's one-layer stack reports in messages ("GRUCell").
        # variant: the cell variants the subclass's signature offers (see ModelConfig).
        name = _owner or type(self).__name__
        self._dtype = "float32"
        self.input_size = positive_int(input_size, f"{name}: input_size", maximum=MAX_SIZE)
        self.hidden_size = positive_int(hidden_size, f"{name}: hidden_size", maximum=MAX_SIZE)
        self.num_layers = positive_int(num_layers, f"{name}: num_layers", maximum=MAX_LAYERS)
        self.proj_size = positive_int(proj_size, f"{name}: proj_size", minimum=0)
        if self.proj_size and self._mode != "LSTM":
            raise ValueError(
                f"{name}: proj_size argument is only supported for LSTM, not RNN or GRU, "
                f"got proj_size={self.proj_size}"
            )
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"{name}: proj_size must be smaller than hidden_size ({self.hidden_size}), "
                f"got {self.proj_size}"
            )
        if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)  # a training feature: inference ignores it, as torch.eval()
        self.bidirectional = bool(bidirectional)
        self._variant_set(name, **variant)
        problem = self.config.problem()
        if problem and "weights" not in problem:
            raise ValueError(f"{name}: {problem}")
        count = self.config.parameter_count()
        if count > MAX_PARAMETERS:
            raise ValueError(
                f"{name}({self.extra_repr()}) would have {count} weights; "
                f"fastrnn accepts at most 2^32 = {MAX_PARAMETERS}"
            )
        self._weights: dict[str, np.ndarray] = {}
        self._core = None
        if seed is _NO_WEIGHTS:
            return
        # torch's default initialisation: U(-1/sqrt(H), 1/sqrt(H)) for every tensor.
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(self.hidden_size)
        weights = {
            key: rng.uniform(-k, k, size=shape).astype(np.float32)
            for key, shape in self.config.parameter_shapes().items()
        }
        self.load_state_dict(weights)

    # --- configuration -------------------------------------------------------------------

    def _variant_set(
        self,
        name: str,
        reverse=False,
        linear_before_reset=True,
        peepholes=False,
        input_forget=False,
        clip=None,
        activations=None,
        merge_mode="concat",
    ) -> None:
        """The cell variants (ModelConfig's fields), checked and in canonical form."""
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"{name}: merge_mode must be one of {list(MERGE_MODES)}, got {merge_mode!r}"
            )
        self.merge_mode = merge_mode
        self.reverse = bool(reverse)
        self.linear_before_reset = bool(linear_before_reset)
        self.peepholes = bool(peepholes)
        self.input_forget = bool(input_forget)
        if clip is None:
            clip = 0.0
        if isinstance(clip, bool) or not isinstance(clip, (int, float, np.floating)):
            raise TypeError(f"{name}: clip must be a number or None, got {type(clip).__name__}")
        if not (np.isfinite(clip) and clip > 0) and clip != 0:
            raise ValueError(
                f"{name}: clip must be a finite number > 0 (None: no clip), got {clip!r}"
            )
        self.clip = float(clip)
        self.activations = ()
        if activations is not None:
            defaults = DEFAULT_ACTIVATIONS[self._mode]
            if isinstance(activations, str) or not isinstance(activations, (tuple, list)):
                raise TypeError(
                    f"{name}: activations must be a sequence of {len(defaults)} names or "
                    f"(name, alpha, beta) tuples {defaults}, got {type(activations).__name__}"
                )
            D = 2 if self.bidirectional else 1
            if len(activations) not in (len(defaults), len(defaults) * D):
                raise ValueError(
                    f"{name}: activations must hold {len(defaults)} entries "
                    f"{defaults} (or {len(defaults) * D}: each direction's), got {len(activations)}"
                )
            try:
                canonical = tuple(activation(a) for a in activations)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
            if len(canonical) < len(defaults) * D:
                canonical = canonical * D
            if canonical != tuple(activation(a) for a in defaults) * D:
                self.activations = canonical

    @property
    def config(self) -> ModelConfig:
        """What this model is, without its weights (see fastrnn.ModelConfig)."""
        return ModelConfig(
            kind=self._kind(),
            mode=self._mode,
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            proj_size=self.proj_size,
            bias=self.bias,
            batch_first=self.batch_first,
            reverse=self.reverse,
            linear_before_reset=self.linear_before_reset,
            peepholes=self.peepholes,
            input_forget=self.input_forget,
            clip=self.clip,
            activations=self.activations,
            merge_mode=self.merge_mode,
            dtype=self._dtype,
        )

    @property
    def dtype(self) -> str:
        """How the weight matrices are held: "float32", "bf16", "int8" or "int7" (int8 with 7-bit
        weights; fastrnn.quantize)."""
        return self._dtype

    def _kind(self) -> str:
        """The class among LSTM, GRU, RNN this one is (a user's subclass reports its base)."""
        return next(c.__name__ for c in (LSTM, GRU, RNN) if isinstance(self, c))

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _h_out(self) -> int:
        return self.proj_size or self.hidden_size

    def extra_repr(self) -> str:
        return self.config.arguments()

    def __repr__(self) -> str:
        dtype = f", dtype={self._dtype!r}" if self._dtype != "float32" else ""
        return f"fastrnn.{type(self).__name__}({self.extra_repr()}{dtype})"

    # --- weights, files, pickling -------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the weights under torch's key names, in torch's order."""
        return {k: v.copy() for k, v in self._weights.items()}

    def save(self, path) -> None:
        """Writes the configuration and weights to a safetensors file that fastrnn.load reads
        back without torch (weights under torch's key names, configuration in the metadata)."""
        io.write(path, self.config, self._weights)

    def _set_dtype(self, dtype: str) -> None:
        """Before the weights are loaded (build)."""
        self._dtype = dtype

    def __getstate__(self) -> dict:
        # The compiled core cannot be pickled: keep the configuration and the torch-layout
        # weights, and pack them again on unpickling.
        state = self.__dict__.copy()
        del state["_core"]
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        weights = state.pop("_weights")
        self.__dict__.update(_VARIANT_DEFAULTS)  # pickles from before the variants existed
        self.__dict__.setdefault("_dtype", "float32")
        self.__dict__.update(state)
        self._weights = {}
        self._core = None
        self.load_state_dict(weights)

    def load_state_dict(self, state_dict) -> None:
        """Loads weights under torch's key names (numpy arrays or torch tensors). Strict: a
        missing, unexpected or mis-shaped key is a ValueError naming it. A bf16 or int8
        model rounds the weight matrices to its format (fastrnn.quantize)."""
        name = type(self).__name__
        weights = {
            key: rounded(key, to_float32(a, copy=True), self._dtype)
            for key, a in checked_state_dict(
                name, state_dict, self.config.parameter_shapes()
            ).items()
        }
        self._core = _core.Model(
            self._mode,
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.bidirectional,
            self.proj_size,
            self.bias,
            self._core_weights(weights),
            self._core_variant(),
            CORE_DTYPES[self._dtype],
        )
        self._weights = weights

    def _core_variant(self) -> dict | None:
        """The variants for the compiled core (None: torch's cell)."""
        config = self.config
        if not config.replace(merge_mode="concat").is_variant:  # merging is done here
            return None
        return {
            "reverse": config.reverse,
            "linear_before_reset": config.linear_before_reset,
            "input_forget": config.input_forget,
            "peepholes": config.peepholes,
            "clip": config.clip,
            "activations": [list(config.activations_of(d)) for d in range(config.num_directions)],
        }

    def _core_weights(self, w: dict[str, np.ndarray]) -> list:
        w = {k: core_matrix(v, self._dtype) if is_matrix(k) else v for k, v in w.items()}
        out = []
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                out.append(
                    tuple(
                        w.get(k + sfx)
                        for k in (
                            "weight_ih",
                            "weight_hh",
                            "bias_ih",
                            "bias_hh",
                            "weight_hr",
                            "weight_peep",
                        )
                    )
                )
        return out

    # --- inference -------------------------------------------------------------------------

    def stream(self, batch: int | None = None, state=None):
        """A stateful stream for step-by-step inference (unidirectional models only).

        batch: None for an unbatched stream (steps of shape (I,)), or N for steps (N, I).
        state: the initial state in forward's layout (None: zeros).
        See fastrnn.Stream. A stream is single-owner: one thread at a time.
        """
        from ._stream import Stream

        if self.reverse:
            raise ValueError(
                f"{type(self).__name__}: a reverse=True model cannot stream: it reads its "
                "sequence from the end"
            )

        return Stream(self, batch, state)

    def __call__(self, x, state=None, lengths=None, *, num_threads=None):
        return self.forward(x, state, lengths, num_threads=num_threads)

    def forward(self, x, state=None, lengths=None, *, num_threads=None):
        """Runs the whole stack over a sequence.

        x: (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I); any real floating
           dtype and strides (converted once to C-contiguous float32).
        state: h_0 of shape (D·L, B, H_out) — for LSTM a tuple (h_0, c_0), c_0 (D·L, B, H);
           unbatched: without the B axis. None: zeros.
        lengths: (B,) integers in [1, T], any order: each sequence's valid steps, with a
           PackedSequence's meaning (outputs past it are zero, states from its last step).
        num_threads: at most this many threads for this call (None: the process budget,
           fastrnn.get_num_threads()); the pool's fair share among concurrent calls still
           applies. Results are bit-identical for every thread count.
        Returns (output, h_n), for LSTM (output, (h_n, c_n)), as torch does.
        """
        name = type(self).__name__
        x = float_array(x, f"{name}: x")  # converted once its shape is checked
        I = self.input_size
        if x.ndim == 3:
            batched = True
        elif x.ndim == 2:
            batched = False
        else:
            layout = "(B, T, {0})" if self.batch_first else "(T, B, {0})"
            raise ValueError(
                f"{name}: x must have shape {layout.format(I)} or (T, {I}) (input_size={I}), "
                f"got {shape_text(x.shape)}"
            )
        if x.shape[-1] != I:
            layout = (
                ("(B, T, {0})" if self.batch_first else "(T, B, {0})") if batched else "(T, {0})"
            )
            raise ValueError(
                f"{name}: x must have shape {layout.format(I)} (input_size={I}), got {shape_text(x.shape)}"
            )
        if batched:
            x = to_float32(x.transpose(1, 0, 2) if self.batch_first else x)
        else:
            x = to_float32(x[:, None, :])
        T, B = x.shape[0], x.shape[1]
        if T == 0:
            # torch raises too (RuntimeError: "Expected sequence length to be larger than 0").
            shape = (
                (B, 0, I) if batched and self.batch_first else ((0, B, I) if batched else (0, I))
            )
            raise ValueError(
                f"{name}: x must hold at least one time step (T >= 1), got {shape_text(shape)}"
            )
        h0, c0 = self._initial_state(state, B, batched)
        lens = None
        if lengths is not None:
            if not batched:
                raise ValueError(f"{name}: lengths needs a batched x (T, B, I)")
            lens = as_lengths(lengths, B, T, f"{name}: ")
        if B == 0:
            # An empty batch gives empty outputs, as torch does (nothing to compute).
            D, LD = self.num_directions, self.num_layers * self.num_directions
            y = np.zeros((T, 0, D * self._h_out), np.float32)
            h_n = np.zeros((LD, 0, self._h_out), np.float32)
            c_n = np.zeros((LD, 0, self.hidden_size), np.float32) if self._mode == "LSTM" else None
        else:
            y, h_n, c_n = self._core.forward(x, h0, c0, lens, call_threads(num_threads, name))
        if batched:
            if self.batch_first:
                y = np.ascontiguousarray(y.transpose(1, 0, 2))
        else:
            y, h_n = y[:, 0], h_n[:, 0]
            c_n = c_n[:, 0] if c_n is not None else None
        if self.merge_mode != "concat":
            y = _merged(y, self.merge_mode)
        return (y, (h_n, c_n)) if self._mode == "LSTM" else (y, h_n)

    def plan(self, batch: int, steps: int, *, num_threads=None) -> dict:
        """How a call of `steps` time steps and `batch` rows would run, decided before it
        runs (the same decisions the call makes, on a machine where no other call holds the
        cores): threads, schedule ('spans', 'layer-by-layer', 'wavefront'), how the threads
        split the work ('panels', 'batch', 'none'), the time chunk of the input projection,
        the span and the wavefront tick (steps), per layer the steps whose input projection
        a batch-1 step computes ahead (0: none), whether bf16 weights are widened to fp32
        once for the call ('widen': batched calls on CPUs without bf16 dot products), and
        every workspace buffer's size in floats. Results never depend on the plan; only the
        speed does."""
        name = type(self).__name__
        return self._core.plan(
            positive_int(batch, f"{name}.plan: batch"),
            positive_int(steps, f"{name}.plan: steps"),
            call_threads(num_threads, f"{name}.plan"),
        )

    def _initial_state(self, state, B: int, batched: bool):
        name = type(self).__name__
        if state is None:
            return None, None
        LD = self.num_layers * self.num_directions
        if self._mode == "LSTM":
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError(
                    f"{name}: state must be a tuple (h_0, c_0), got {type(state).__name__}"
                )
            h0, c0 = (float_array(s, f"{name}: {n}") for s, n in zip(state, ("h_0", "c_0")))
            shapes = {"h_0": (LD, B, self._h_out), "c_0": (LD, B, self.hidden_size)}
            pairs = (("h_0", h0), ("c_0", c0))
        else:
            h0, c0 = float_array(state, f"{name}: h_0"), None
            shapes = {"h_0": (LD, B, self._h_out)}
            pairs = (("h_0", h0),)
        out = []
        for key, a in pairs:
            expected = shapes[key] if batched else (shapes[key][0], shapes[key][2])
            check_shape(
                a,
                f"{name}: {key}",
                expected,
                "num_layers * num_directions, batch, features"
                if batched
                else "num_layers * num_directions, features",
            )
            out.append(to_float32(a if batched else a[:, None, :]))
        return (out[0], out[1] if len(out) > 1 else None)


class LSTM(_RNNBase):
    """LSTM, torch.nn.LSTM's arguments: (input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, proj_size=0); and the variants of
    ONNX and Keras (keyword-only; see fastrnn.ModelConfig): reverse, peepholes (weights
    weight_peep_l{k}, (3·H,), order i, f, o), input_forget, clip, activations (3 slots:
    gates, candidate, cell output; default ("Sigmoid", "Tanh", "Tanh"))."""

    _mode = "LSTM"

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        proj_size=0,
        *,
        reverse=False,
        peepholes=False,
        input_forget=False,
        clip=None,
        activations=None,
        merge_mode="concat",
        seed=None,
        _owner=None,
    ):
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            seed=seed,
            _owner=_owner,
            reverse=reverse,
            peepholes=peepholes,
            input_forget=input_forget,
            clip=clip,
            activations=activations,
            merge_mode=merge_mode,
        )


class GRU(_RNNBase):
    """GRU, torch.nn.GRU's arguments: (input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False); and the variants of ONNX and Keras
    (keyword-only; see fastrnn.ModelConfig): reverse, linear_before_reset (False: the
    classic GRU, r applied before the recurrent product), clip, activations (2 slots: gates,
    candidate; default ("Sigmoid", "Tanh"))."""

    _mode = "GRU"

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        *,
        proj_size=0,
        reverse=False,
        linear_before_reset=True,
        clip=None,
        activations=None,
        merge_mode="concat",
        seed=None,
        _owner=None,
    ):
        # proj_size is accepted only to reject it with torch's ValueError (not a TypeError).
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            seed=seed,
            _owner=_owner,
            reverse=reverse,
            linear_before_reset=linear_before_reset,
            clip=clip,
            activations=activations,
            merge_mode=merge_mode,
        )


class RNN(_RNNBase):
    """Elman RNN, torch.nn.RNN's arguments: (input_size, hidden_size, num_layers=1,
    nonlinearity='tanh', bias=True, batch_first=False, dropout=0.0, bidirectional=False);
    and the variants of ONNX and Keras (keyword-only; see fastrnn.ModelConfig): reverse,
    clip, activations (1 slot, replacing the nonlinearity's)."""

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        nonlinearity="tanh",
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        *,
        proj_size=0,
        reverse=False,
        clip=None,
        activations=None,
        merge_mode="concat",
        seed=None,
        _owner=None,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"{_owner or 'RNN'}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
            )
        self._mode = rnn_mode(nonlinearity)
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            seed=seed,
            _owner=_owner,
            reverse=reverse,
            clip=clip,
            activations=activations,
            merge_mode=merge_mode,
        )

    @property
    def nonlinearity(self) -> str:
        return self.config.nonlinearity


class _CellBase:
    """One time step: a one-layer stack run for T = 1, with torch's cell parameter names."""

    _layer_cls = LSTM

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, seed=None, **kw):
        self._layer = self._layer_cls(
            input_size, hidden_size, 1, bias=bias, seed=seed, _owner=type(self).__name__, **kw
        )

    input_size = property(lambda self: self._layer.input_size)
    dtype = property(lambda self: self._layer.dtype, doc="See _RNNBase.dtype.")
    hidden_size = property(lambda self: self._layer.hidden_size)
    bias = property(lambda self: self._layer.bias)

    def __repr__(self) -> str:
        dtype = f", dtype={self.dtype!r}" if self.dtype != "float32" else ""
        return f"fastrnn.{type(self).__name__}({self._layer.extra_repr()}{dtype})"

    @property
    def config(self) -> ModelConfig:
        """What this cell is, without its weights (see fastrnn.ModelConfig)."""
        layer = self._layer.config
        return ModelConfig(
            layer.kind + "Cell",
            layer.mode,
            layer.input_size,
            layer.hidden_size,
            bias=layer.bias,
            dtype=layer.dtype,
        )

    def _set_dtype(self, dtype: str) -> None:
        self._layer._set_dtype(dtype)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k[: -len("_l0")]: v for k, v in self._layer.state_dict().items()}

    def save(self, path) -> None:
        """Writes the configuration and weights to a safetensors file (see _RNNBase.save)."""
        io.write(path, self.config, self.state_dict())

    def load_state_dict(self, state_dict) -> None:
        """Loads weights under torch's cell key names (weight_ih, weight_hh, bias_ih,
        bias_hh). Strict: a missing, unexpected or mis-shaped key is a ValueError naming the
        cell's class and key."""
        shapes = self.config.parameter_shapes()
        weights = {
            key + "_l0": a
            for key, a in checked_state_dict(type(self).__name__, state_dict, shapes).items()
        }
        self._layer.load_state_dict(weights)

    def __call__(self, x, state=None):
        return self.forward(x, state)

    def forward(self, x, state=None):
        """x: (B, I) or (I,); state: h (B, H) — LSTMCell: a tuple (h, c) — or None (zeros).
        Returns h' (LSTMCell: (h', c')) with x's batching."""
        core = self._layer._core
        if core is not None:
            # float32 C-contiguous arrays of the right shapes go straight to the core; it
            # returns None for anything else, which is checked and converted below.
            out = core.cell(x, state)
            if out is not None:
                return out
        name = type(self).__name__
        x = float_array(x, f"{name}: x")  # converted by the layer call below
        I, H = self.input_size, self.hidden_size
        if x.ndim not in (1, 2) or x.shape[-1] != I:
            raise ValueError(
                f"{name}: x must have shape (B, {I}) or ({I},) (input_size={I}), got {shape_text(x.shape)}"
            )
        batched = x.ndim == 2
        B = x.shape[0] if batched else 1
        expected = (B, H) if batched else (H,)
        layer_state = None
        if state is not None:
            parts = state if self._layer.mode == "LSTM" else (state,)
            if self._layer.mode == "LSTM" and (
                not isinstance(state, (tuple, list)) or len(state) != 2
            ):
                raise TypeError(f"{name}: state must be a tuple (h, c), got {type(state).__name__}")
            arrays = []
            for key, s in zip(("h", "c"), parts):
                a = float_array(s, f"{name}: {key}")
                check_shape(a, f"{name}: {key}", expected)
                arrays.append(a.reshape(1, B, H))
            layer_state = tuple(arrays) if self._layer.mode == "LSTM" else arrays[0]
        _, h_n = self._layer(x.reshape(1, B, I), layer_state)
        if self._layer.mode == "LSTM":
            h, c = h_n
            return h.reshape(expected), c.reshape(expected)
        return h_n.reshape(expected)


class LSTMCell(_CellBase):
    """torch.nn.LSTMCell(input_size, hidden_size, bias=True)."""

    _layer_cls = LSTM


class GRUCell(_CellBase):
    """torch.nn.GRUCell(input_size, hidden_size, bias=True)."""

    _layer_cls = GRU


class RNNCell(_CellBase):
    """torch.nn.RNNCell(input_size, hidden_size, bias=True, nonlinearity='tanh')."""

    _layer_cls = RNN

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", *, seed=None):
        super().__init__(input_size, hidden_size, bias, seed=seed, nonlinearity=nonlinearity)

    @property
    def nonlinearity(self) -> str:
        return self._layer.nonlinearity


def _merged(y: np.ndarray, mode: str):
    """A bidirectional output (..., 2·H_out) merged as Keras' Bidirectional does."""
    half = y.shape[-1] // 2
    fwd, bwd = y[..., :half], y[..., half:]
    if mode == "none":
        return np.ascontiguousarray(fwd), np.ascontiguousarray(bwd)
    if mode == "sum":
        return fwd + bwd
    if mode == "mul":
        return fwd * bwd
    return (fwd + bwd) * np.float32(0.5)  # ave


_CLASSES = {c.__name__: c for c in (LSTM, GRU, RNN, LSTMCell, GRUCell, RNNCell)}


def build(config: ModelConfig, weights) -> _RNNBase | _CellBase:
    """The model of `config` with `weights` (under torch's key names in torch's gate order,
    numpy arrays or tensors; copied): what every importer's (config, weights) becomes. An
    impossible configuration, or weights that do not fit it, is a ValueError."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"build: config must be a fastrnn.ModelConfig, got {type(config).__name__}")
    problem = config.problem()
    if problem:
        raise ValueError(f"build: {problem}")
    cls = _CLASSES[config.kind]
    I, H, bias = config.input_size, config.hidden_size, config.bias
    if config.is_cell:
        extra = {"nonlinearity": config.nonlinearity} if cls is RNNCell else {}
        model = cls(I, H, bias, seed=_NO_WEIGHTS, **extra)
    else:
        kw = {
            "bias": bias,
            "batch_first": config.batch_first,
            "bidirectional": config.bidirectional,
            "reverse": config.reverse,
            "clip": config.clip or None,
            "activations": config.activations or None,
            "merge_mode": config.merge_mode,
        }
        if cls is LSTM:
            kw.update(
                proj_size=config.proj_size,
                peepholes=config.peepholes,
                input_forget=config.input_forget,
            )
        elif cls is GRU:
            kw["linear_before_reset"] = config.linear_before_reset
        elif cls is RNN:
            kw["nonlinearity"] = config.nonlinearity
        model = cls(I, H, config.num_layers, seed=_NO_WEIGHTS, **kw)
    model._set_dtype(config.dtype)
    model.load_state_dict(weights)
    return model
