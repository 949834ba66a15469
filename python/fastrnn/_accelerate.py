"""fastrnn.accelerate / fastrnn.restore: the recurrent modules of a whole torch model run on
fastrnn's core, swapped in place, with nothing else about the model changing.

How it works (docs/accelerate.md has the user's view):

- Every nn.LSTM, GRU, RNN, LSTMCell, GRUCell and RNNCell instance in the tree gets a new
  ``__class__``: a subclass made once per original class, with the method resolution order

      accelerated class -> original class (maybe the user's subclass) -> _StackForward or
      _CellForward (the fast forward) -> torch's class -> ...

  so the instance keeps its own ``__dict__`` (parameters, buffers, hooks, state_dict keys,
  isinstance), a user subclass's forward still runs first, and its ``super().forward(...)``
  reaches the fast forward. restore() assigns the original class back.
- The fast forward checks that fastrnn would compute exactly what torch's forward computes
  (CPU, float32, no gradient needed, no autocast, no dropout to apply, ...). If not, it calls
  torch's forward (or, with strict=True, raises FallbackError saying why). Input that torch
  would reject goes to torch's forward too, which raises torch's own error.
- The computation is one custom op, ``fastrnn::rnn_forward``, whose arguments are the input,
  the states, the lengths and the weight tensors themselves (so graphs captured by
  torch.compile or torch.export read the weights at run time), plus an integer handle that
  picks the module's cache slot. The slot keeps the packed fastrnn model and the weights it
  was packed from (their storage address and torch version counter); any difference packs
  again, so changed weights are never served stale, and unchanged ones are packed once.

torch is imported only when these functions run: ``import fastrnn`` never imports it.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import warnings
import weakref
from collections import OrderedDict

import numpy as np

from . import _core

DTYPES = ("float32", "bf16", "int8", "int7")

# The attribute that holds an accelerated module's options and cache slot. A plain Python
# object in the module's __dict__: not a parameter or buffer, so state_dict never sees it.
_ATTR = "_fastrnn"

# torch's parameter names of one layer and direction, in the order of nn.RNNBase's
# _flat_weights (and of the cells' weight_ih, weight_hh, bias_ih, bias_hh).
_PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
_CELL_NAMES = _PARAM_NAMES[:4]


class FallbackError(RuntimeError):
    """Raised by a module accelerated with strict=True when fastrnn cannot compute its
    forward (the message says which module and why) instead of calling torch's forward."""


# --- the op's cache slots ---------------------------------------------------------------------


class _Slot:
    """The packed fastrnn model of one accelerated module and what it was packed from.

    entry: None, or (config, marks, pins, model): config = (mode, I, H, L, bidirectional,
    P, bias); marks = (data_ptr, _version) of each weight tensor at packing; pins = detached
    views of those tensors, which keep their storage alive so that no new tensor can take an
    address that marks remember; model = the fastrnn model. Replaced whole, under lock, so a
    reader sees one consistent tuple.
    """

    __slots__ = ("lock", "entry", "dtype")

    def __init__(self, dtype: str = "float32") -> None:
        self.lock = threading.Lock()
        self.entry = None
        self.dtype = dtype  # the weight format fastrnn holds the module's weights in

    def invalidate(self) -> None:
        """The next call packs again (into the same model: one packing)."""
        with self.lock:
            if self.entry is not None:
                self.entry = (self.entry[0], None, (), self.entry[3])


# Handles start at a random offset: a graph exported in one process and loaded in another
# then rarely names the slot of a live module here (it would stay correct: marks differ,
# so the two would take turns repacking).
_HANDLES = itertools.count(secrets.randbits(40) << 8)
_SLOTS: dict[int, _Slot] = {}  # handle -> the slot of a live accelerated module
# Slots for handles of no live module: a graph exported from a module that has since died,
# or saved and loaded in another process. Kept for the last few handles so that such a
# graph, called repeatedly, packs once.
_ORPHANS: OrderedDict[int, _Slot] = OrderedDict()
_ORPHANS_KEPT = 8
_ORPHANS_LOCK = threading.Lock()


def _slot_of_handle(handle: int) -> _Slot:
    slot = _SLOTS.get(handle)
    if slot is not None:
        return slot
    with _ORPHANS_LOCK:
        slot = _ORPHANS.pop(handle, None) or _Slot()
        _ORPHANS[handle] = slot
        while len(_ORPHANS) > _ORPHANS_KEPT:
            _ORPHANS.popitem(last=False)
        return slot


class _Acceleration:
    """What accelerate() attaches to a module: its options, its name in the tree (for
    messages), its configuration (mode, I, H, L, bidirectional, P, bias: fixed at
    construction in torch too) and its cache slot. A copy (deepcopy, pickle) gets a new
    handle and an empty slot: the copy's weights are other tensors."""

    __slots__ = ("strict", "dtype", "name", "config", "handle", "slot", "__weakref__")

    def __init__(self, strict: bool, dtype: str, name: str, config: tuple) -> None:
        self.strict = strict
        self.dtype = dtype
        self.name = name
        self.config = config
        self.handle = next(_HANDLES)
        self.slot = _Slot(dtype)
        _SLOTS[self.handle] = self.slot
        weakref.finalize(self, _SLOTS.pop, self.handle, None)

    def __reduce__(self):
        return (_Acceleration, (self.strict, self.dtype, self.name, self.config))

    def __deepcopy__(self, memo):
        return _Acceleration(self.strict, self.dtype, self.name, self.config)

    def __repr__(self) -> str:
        return (
            f"fastrnn acceleration(dtype={self.dtype!r}, strict={self.strict}, "
            f"handle={self.handle})"
        )


def _acceleration(module) -> _Acceleration:
    acc = module.__dict__.get(_ATTR)
    if acc is None:  # an instance whose class was assigned by hand: default options
        acc = module.__dict__[_ATTR] = _Acceleration(False, "float32", "", _config(module))
    return acc


# --- configuration and weights ------------------------------------------------------------


def _config(module) -> tuple:
    """(mode, I, H, L, bidirectional, P, bias) of a torch RNN module; a cell is a one-layer
    stack run for one step."""
    if "_flat_weights_names" in module.__dict__:  # nn.LSTM, GRU, RNN: torch's RNNBase
        return (
            module.mode,
            module.input_size,
            module.hidden_size,
            module.num_layers,
            bool(module.bidirectional),
            getattr(module, "proj_size", 0),
            bool(module.bias),
        )
    return (
        _cell_mode(module),
        module.input_size,
        module.hidden_size,
        1,
        False,
        0,
        bool(module.bias),
    )


def _cell_mode(module) -> str:
    import torch.nn as nn

    if isinstance(module, nn.LSTMCell):
        return "LSTM"
    if isinstance(module, nn.GRUCell):
        return "GRU"
    return "RNN_RELU" if module.nonlinearity == "relu" else "RNN_TANH"


def _weight_names(config: tuple) -> list[str]:
    """torch's stack parameter names in _flat_weights order (cells use the _l0 names)."""
    mode, _, _, num_layers, bidirectional, proj_size, bias = config
    names = []
    for layer in range(num_layers):
        for direction in range(2 if bidirectional else 1):
            sfx = f"_l{layer}" + ("_reverse" if direction else "")
            for p in _PARAM_NAMES:
                if (p.startswith("bias") and not bias) or (p == "weight_hr" and not proj_size):
                    continue
                names.append(p + sfx)
    return names


def _model_config(config: tuple):
    """The fastrnn ModelConfig of a slot's config tuple (time-major, as the op calls it)."""
    import fastrnn

    mode, input_size, hidden_size, num_layers, bidirectional, proj_size, bias = config
    kind = mode if mode in ("LSTM", "GRU") else "RNN"
    return fastrnn.ModelConfig(
        kind,
        mode,
        input_size,
        hidden_size,
        num_layers=num_layers,
        bidirectional=bidirectional,
        proj_size=proj_size,
        bias=bias,
    )


def _marks(weights) -> tuple | None:
    """(data_ptr, version) of each weight; None if one has no version counter (an inference
    tensor), so that a change to it could not be seen."""
    try:
        return tuple((w.data_ptr(), w._version) for w in weights)
    except RuntimeError:
        return None


def _slot_model(slot: _Slot, config: tuple, weights):
    """The fastrnn model of the slot, packed again first if config or any weight tensor (its
    storage or its torch version counter) differs from what the slot was packed from."""
    marks = _marks(weights)
    entry = slot.entry

    def current(entry) -> bool:
        return (
            entry is not None
            and marks is not None
            and entry[0] == config
            and entry[1] == marks
            and entry[3].dtype == slot.dtype
        )

    if current(entry):
        return entry[3]
    with slot.lock:
        entry = slot.entry
        if current(entry):
            return entry[3]
        named = dict(zip(_weight_names(config), weights))
        if entry is not None and entry[0] == config and entry[3].dtype == slot.dtype:
            # Packing after a concurrent caller took `model` is safe: fastrnn swaps its
            # packed core whole, and a running call keeps the one it started with.
            model = entry[3]
            model.load_state_dict(named)
        else:
            import fastrnn

            model = fastrnn.build(_model_config(config).replace(dtype=slot.dtype), named)
        slot.entry = (config, marks, tuple(w.detach() for w in weights), model)
        return model


# --- the custom op ------------------------------------------------------------------------
#
# fastrnn::rnn_forward(x, weights, h0, c0, lengths, handle, *spec): spec is a module's config
# without the input size (x has it): mode, hidden_size, num_layers, bidirectional, proj_size,
# bias.

_OP_SCHEMA = (
    "(Tensor x, Tensor[] weights, Tensor? h0, Tensor? c0, Tensor? lengths, int handle, "
    "str mode, int hidden_size, int num_layers, bool bidirectional, int proj_size, bool bias)"
    " -> (Tensor, Tensor, Tensor)"
)

# Set once by _setup(): the op, and torch's forward behind torch.compiler.disable (a fallback
# inside a compiled region runs eagerly there, as torch's RNN modules did before the swap).
_OP = None
_TORCH_FORWARD_OUTSIDE_GRAPH = None
# The compiled core's cap on one call's threads (torch.get_num_threads() may say more).
_MAX_THREADS = _core.LIMITS["max_threads"]
_SETUP_LOCK = threading.Lock()


def rnn_forward_impl(x, weights, h0, c0, lengths, handle, *spec, slot=None):
    """The op's CPU implementation.

    x: (T, B, I) float32, any strides; weights: torch's tensors in _flat_weights order;
    h0: (L·D, B, H_out) or None; c0: (L·D, B, H) (LSTM) or None; lengths: (B,) int64 in
    [1, T], any order, or None. handle: the module's slot (slot: the slot itself, from the
    eager path). Returns (y (T, B, D·H_out), h_n (L·D, B, H_out), c_n (L·D, B, H), or an
    empty (0,) tensor for GRU and RNN), new tensors. Uses torch.get_num_threads() threads.
    """
    import torch

    config = (spec[0], x.shape[-1], *spec[1:])
    y, h_n, c_n = _forward_arrays(
        slot if slot is not None else _slot_of_handle(handle),
        config,
        weights,
        _numpy(x),
        None if h0 is None else _numpy(h0),
        None if c0 is None else _numpy(c0),
        None if lengths is None else lengths.numpy(),
    )
    # torch.from_numpy takes the arrays as they are.
    c_out = torch.from_numpy(c_n) if c_n is not None else x.new_empty((0,))
    return torch.from_numpy(y), torch.from_numpy(h_n), c_out


def _forward_arrays(slot: _Slot, config: tuple, weights, x, h0, c0, lengths):
    """What every fast call runs: fastrnn on NumPy views of the call's tensors (time-major x
    (T, B, I), h0, c0 and lengths as rnn_forward_impl takes them; C-contiguous float32 views
    cost no copy) with slot's packed model, packed again first if the weights changed.
    Returns new arrays (y, h_n, c_n or None). The checks fastrnn's forward would make
    (shapes, dtypes, lengths) are made on the tensors before, so this goes straight into the
    compiled core."""
    model = _slot_model(slot, config, weights)
    return _core_forward(
        model,
        np.ascontiguousarray(x),
        None if h0 is None else np.ascontiguousarray(h0),
        None if c0 is None else np.ascontiguousarray(c0),
        None if lengths is None else np.ascontiguousarray(lengths, dtype=np.int64),
        _torch_threads(),
    )


def _cell_arrays(slot: _Slot, config: tuple, weights, x, state):
    """A cell's eager fast call: the core's one-step cell call on NumPy views of its tensors
    (x (B, I) or (I,); state None, h, or (h, c)), with slot's packed model as _forward_arrays
    takes it. Returns h' or (h', c') as new arrays, or None when a view is not C-contiguous
    (then the caller goes through _forward_arrays). In a loop of LSTMCell(8, 8) calls, 0.84x
    the time of the whole-sequence call it replaces (23.5 against 28.4 us a call)."""
    model = _slot_model(slot, config, weights)
    return model._core.cell(x, state, _torch_threads(), True)


def _torch_threads() -> int:
    """A fast call's thread count: torch's, within fastrnn's cap."""
    import torch

    return min(torch.get_num_threads(), _MAX_THREADS)


def _core_forward(model, x, h0, c0, lengths, threads: int):
    """model's compiled core on time-major float32 arrays: (y, h_n, c_n or None). A team of
    more than one thread runs on torch's own OpenMP threads (see _setup)."""
    return model._core.forward(x, h0, c0, lengths, threads, True)


def rnn_forward_registered(x, weights, h0, c0, lengths, handle, *spec):
    """What the op calls (rnn_forward_impl looked up at each call: tests spy on it)."""
    return rnn_forward_impl(x, weights, h0, c0, lengths, handle, *spec)


def _rnn_forward_fake(x, weights, h0, c0, lengths, handle, *spec):
    """Shapes and dtypes of rnn_forward's outputs, without computing (torch.compile/export)."""
    mode, hidden_size, num_layers, bidirectional, proj_size, _ = spec
    T, B = x.shape[0], x.shape[1]
    D = 2 if bidirectional else 1
    H_out = proj_size or hidden_size
    y = x.new_empty((T, B, D * H_out))
    h_n = x.new_empty((num_layers * D, B, H_out))
    c_n = x.new_empty((num_layers * D, B, hidden_size) if mode == "LSTM" else (0,))
    return y, h_n, c_n


def _numpy(t):
    """A NumPy view of a CPU tensor (no copy)."""
    return t.detach().numpy() if t.requires_grad else t.numpy()


def _setup() -> None:
    """Imports torch and registers the op fastrnn::rnn_forward (once per process)."""
    global _OP, _TORCH_FORWARD_OUTSIDE_GRAPH
    if _OP is not None:
        return
    with _SETUP_LOCK:
        if _OP is not None:
            return
        import torch

        op = torch.library.custom_op(
            "fastrnn::rnn_forward",
            rnn_forward_registered,
            mutates_args=(),
            device_types="cpu",
            schema=_OP_SCHEMA,
        )
        op.register_fake(_rnn_forward_fake)
        # Teams of the fast calls run on torch's OpenMP threads (the ones spinning for torch's
        # next op), not on fastrnn's pool: one set of threads for the whole model.
        _core.host_openmp_attach(os.path.dirname(torch.__file__))
        _TORCH_FORWARD_OUTSIDE_GRAPH = torch.compiler.disable(_torch_forward, recursive=True)
        _OP = op


def _run(acc: _Acceleration, x, weights, h0, c0, lengths):
    """Calls the op for acc's module; in plain eager mode calls its implementation directly,
    which saves the dispatcher's ~12 us."""
    spec = acc.config[:1] + acc.config[2:]
    if _plain_eager(x):
        return rnn_forward_impl(x, weights, h0, c0, lengths, acc.handle, *spec, slot=acc.slot)
    return _OP(x, weights, h0, c0, lengths, acc.handle, *spec)


def _plain_eager(x) -> bool:
    """Real tensors, no torch.compile, export or dispatch mode tracing: the op's graph node
    is not needed."""
    import torch

    return not torch.compiler.is_compiling() and type(x) is torch.Tensor and _no_dispatch_mode()


def _no_dispatch_mode() -> bool:
    import torch

    stack_len = getattr(torch._C, "_len_torch_dispatch_stack", None)
    return stack_len is not None and stack_len() == 0


def _torch_forward(mixin, module, *args):
    """torch's own forward of module: the class after the fast forward in its MRO."""
    return super(mixin, module).forward(*args)


# --- when the fast path is valid ----------------------------------------------------------
#
# The checks return None (fast path), "" (torch's forward, silently: input torch rejects or
# handles in its own way, e.g. empty batches or TorchScript tracing) or a reason (torch's
# forward; with strict=True a FallbackError with that reason).


def _common_unsupported(module, weights, names, x, others) -> str | None:
    """What the stack and cell checks share: torch.func transforms, devices, dtypes,
    parametrizations, inference tensors, gradients, autocast. x: the input tensor; names:
    the weights' names (for messages); others: the state tensors (their shapes checked)."""
    import torch

    compiling = torch.compiler.is_compiling()
    if not compiling and _functorch_wrapped(x):
        return ""  # torch.func transforms (vmap, grad): torch's forward, its own rules
    if not x.is_cpu:
        return f"the input is on {x.device} (fastrnn runs on the CPU)"
    if x.dtype is not torch.float32:
        return f"the input's dtype is {x.dtype} (fastrnn computes in float32)"
    if "parametrizations" in module._modules:
        return "its weights are parametrized (torch.nn.utils.parametrize)"
    for name, w in zip(names, weights):
        if w is None or not isinstance(w, torch.Tensor):
            return ""
        if not w.is_cpu:
            return f"{name} is on {w.device} (fastrnn runs on the CPU)"
        if w.dtype is not torch.float32:
            return f"{name} has dtype {w.dtype} (fastrnn computes in float32)"
        if not compiling and w.is_inference():
            return (
                f"{name} is an inference tensor (made under torch.inference_mode()): torch "
                "keeps no version counter for it, so a change to it could not be seen"
            )
    for t in others:
        if not t.is_cpu or t.dtype is not torch.float32:
            return ""  # torch raises its own error for states unlike the input
    if torch.is_grad_enabled():
        if x.requires_grad or any(t.requires_grad for t in others):
            return (
                "a gradient is needed: grad mode is on and an input requires grad (run "
                "under torch.no_grad() or torch.inference_mode() for fastrnn)"
            )
        for name, w in zip(names, weights):
            if w.requires_grad:
                return (
                    f"a gradient is needed: grad mode is on and {name} requires grad (run "
                    "under torch.no_grad() or torch.inference_mode() for fastrnn)"
                )
    if torch.is_autocast_enabled("cpu"):
        return "autocast is enabled on the CPU (torch computes in reduced precision there)"
    return None


def _functorch_wrapped(x) -> bool:
    import torch

    is_wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return is_wrapped is not None and is_wrapped(x)


def _stack_weights(module):
    """module._flat_weights, brought up to date first if a parameter was swapped without
    __setattr__ (torch.func.functional_call does so), as torch's forward does."""
    params = module._parameters
    flat = module._flat_weights
    for name, w in zip(module._flat_weights_names, flat):
        if params.get(name) is not w:
            module._update_flat_weights()
            return module._flat_weights
    return flat


def _stack_unsupported(module, config: tuple, weights, input, hx) -> str | None:
    import torch
    from torch import Tensor
    from torch.nn.utils.rnn import PackedSequence

    if torch.jit.is_tracing():
        return ""  # TorchScript records torch's forward: the trace runs without fastrnn
    mode, input_size, hidden_size, num_layers, bidirectional, proj_size, _ = config
    if isinstance(input, PackedSequence):
        x = input.data
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] == 0:
            return ""
        batched, B, T = True, int(input.batch_sizes[0]), 1
    else:
        x = input
        if not isinstance(x, Tensor) or x.dim() not in (2, 3):
            return ""
        batched = x.dim() == 3
        B = (x.shape[0] if module.batch_first else x.shape[1]) if batched else 1
        T = (x.shape[1] if module.batch_first else x.shape[0]) if batched else x.shape[0]
    if x.shape[-1] != input_size or B == 0 or T == 0:
        return ""
    LD = num_layers * (2 if bidirectional else 1)
    others = ()
    if hx is not None:
        if mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                return ""
            others = tuple(hx)
            shapes = ((LD, B, proj_size or hidden_size), (LD, B, hidden_size))
        else:
            others = (hx,)
            shapes = ((LD, B, hidden_size),)
        for t, shape in zip(others, shapes):
            if not isinstance(t, Tensor):
                return ""
            if t.shape != (shape if batched else (shape[0], shape[2])):
                return ""
    why = _common_unsupported(module, weights, module._flat_weights_names, x, others)
    if why is not None:
        return why
    if module.training and module.dropout > 0 and num_layers > 1:
        return (
            f"it is in training mode with dropout={module.dropout} between layers, which "
            "torch applies (call .eval() for fastrnn)"
        )
    return None


def _cell_weights(module) -> list:
    """weight_ih, weight_hh (and bias_ih, bias_hh with bias), as torch's forward reads them."""
    params = module._parameters
    names = _CELL_NAMES if module.bias else _CELL_NAMES[:2]
    return [params[n] if n in params else getattr(module, n, None) for n in names]


def _cell_unsupported(module, config: tuple, weights, input, hx) -> str | None:
    import torch
    from torch import Tensor

    if torch.jit.is_tracing():
        return ""  # as for stacks
    if not isinstance(input, Tensor) or input.dim() not in (1, 2):
        return ""
    batched = input.dim() == 2
    B = input.shape[0] if batched else 1
    if input.shape[-1] != config[1] or B == 0:
        return ""
    others = ()
    if hx is not None:
        lstm = config[0] == "LSTM"
        if lstm and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            return ""
        others = tuple(hx) if lstm else (hx,)
        shape = (B, config[2]) if batched else (config[2],)
        for t in others:
            if not isinstance(t, Tensor) or t.shape != shape:
                return ""
    return _common_unsupported(module, weights, _CELL_NAMES, input, others)


def _fallback(mixin, module, acc: _Acceleration, why: str, args: tuple):
    """torch's forward, or FallbackError with strict=True when why names a reason."""
    import torch

    if why and acc.strict:
        where = f"'{acc.name}'" if acc.name else "(the model itself)"
        raise FallbackError(
            f"fastrnn.accelerate(strict=True): {type(module).__name__} {where} cannot run on "
            f"fastrnn: {why}. With strict=False it runs torch's forward instead"
        )
    if torch.compiler.is_compiling() and not torch.compiler.is_exporting():
        # A graph break here, not at the module: the rest of the model still compiles.
        # torch.export cannot break graphs: it traces torch's forward (aten.lstm, ...).
        return _TORCH_FORWARD_OUTSIDE_GRAPH(mixin, module, *args)
    return _torch_forward(mixin, module, *args)


# --- the fast forwards ---------------------------------------------------------------------


class _AcceleratedBase:
    """What every accelerated class adds: pickling by reference to the original class, and a
    clear refusal of torch.jit.script."""

    def __reduce_ex__(self, protocol):
        # pickle, torch.save, deepcopy: rebuilt as an accelerated instance of the same
        # original class (by _unpickle, with fastrnn imported), with the same __dict__.
        return (_unpickle, (_ORIGINAL_OF[type(self)],), self.__getstate__())

    def __prepare_scriptable__(self):
        raise RuntimeError(
            f"fastrnn.accelerate: {type(self).__name__} is accelerated, and TorchScript cannot "
            "compile its forward (fastrnn runs in Python). Script the model before "
            "accelerating it, or script fastrnn.restore(copy.deepcopy(model)); "
            "torch.jit.trace works on the accelerated model (it records torch's forward)"
        )


class _StackForward(_AcceleratedBase):
    """The fast forward of nn.LSTM, nn.GRU and nn.RNN: torch's arguments and results."""

    def forward(self, input, hx=None):
        """input: (T, B, I), (B, T, I) with batch_first, unbatched (T, I), or a
        PackedSequence; hx: h_0 (L·D, B, H_out) — LSTM: (h_0, c_0) — or None. Returns what
        torch's forward returns (a PackedSequence for a PackedSequence), in the input's
        dtype; runs fastrnn when _stack_unsupported says it may, else torch's forward."""
        acc = _acceleration(self)
        weights = _stack_weights(self)
        why = _stack_unsupported(self, acc.config, weights, input, hx)
        if why is not None:
            return _fallback(_StackForward, self, acc, why, (input, hx))
        return _stack_forward(self, acc, weights, input, hx)


def _stack_forward(module, acc: _Acceleration, weights, input, hx):
    from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

    lstm = acc.config[0] == "LSTM"
    packed = isinstance(input, PackedSequence)
    batched = True
    lengths = None
    if packed:
        # torch's order: the batch sorted by length (states permuted to it and back).
        data, batch_sizes, sorted_indices, unsorted_indices = input
        x, lengths = pad_packed_sequence(PackedSequence(data, batch_sizes))
        if hx is not None and sorted_indices is not None:
            hx = (
                tuple(h.index_select(1, sorted_indices) for h in hx)
                if lstm
                else (hx.index_select(1, sorted_indices))
            )
    elif _plain_eager(input):
        return _stack_forward_arrays(module, acc, weights, input, hx)
    elif input.dim() == 2:
        batched = False
        x = input.unsqueeze(1)
        if hx is not None:
            hx = tuple(h.unsqueeze(1) for h in hx) if lstm else hx.unsqueeze(1)
    else:
        x = input.transpose(0, 1) if module.batch_first else input
    h0, c0 = (hx if lstm else (hx, None)) if hx is not None else (None, None)
    y, h_n, c_n = _run(acc, x, weights, h0, c0, lengths)
    if packed:
        output = PackedSequence(
            pack_padded_sequence(y, lengths).data, batch_sizes, sorted_indices, unsorted_indices
        )
        if unsorted_indices is not None:
            h_n = h_n.index_select(1, unsorted_indices)
            c_n = c_n.index_select(1, unsorted_indices) if lstm else c_n
    elif not batched:
        output, h_n = y.squeeze(1), h_n.squeeze(1)
        c_n = c_n.squeeze(1) if lstm else c_n
    else:
        output = y.transpose(0, 1) if module.batch_first else y
    return output, ((h_n, c_n) if lstm else h_n)


def _stack_forward_arrays(module, acc: _Acceleration, weights, input, hx):
    """_stack_forward of a tensor input in plain eager mode, on NumPy views (reshaped and
    transposed in NumPy: small calls, such as a forecaster's one-step calls, would pay ~1 us
    per torch view op)."""
    import torch

    lstm = acc.config[0] == "LSTM"
    x = _numpy(input)
    batched = x.ndim == 3
    states = () if hx is None else (tuple(hx) if lstm else (hx,))
    states = [_numpy(h) for h in states]
    if not batched:
        x = x[:, None]
        states = [h[:, None] for h in states]
    elif module.batch_first:
        x = x.transpose(1, 0, 2)
    h0 = states[0] if states else None
    c0 = states[1] if lstm and states else None
    y, h_n, c_n = _forward_arrays(acc.slot, acc.config, weights, x, h0, c0, None)
    if not batched:
        y, h_n = y[:, 0], h_n[:, 0]
        c_n = c_n[:, 0] if lstm else c_n
    elif module.batch_first:
        y = y.transpose(1, 0, 2)
    output, h_n = torch.from_numpy(y), torch.from_numpy(h_n)
    return output, ((h_n, torch.from_numpy(c_n)) if lstm else h_n)


class _CellForward(_AcceleratedBase):
    """The fast forward of nn.LSTMCell, nn.GRUCell and nn.RNNCell."""

    def forward(self, input, hx=None):
        """input: (B, I) or unbatched (I,); hx: h (B, H) — LSTMCell: (h, c) — or None.
        Returns h' (LSTMCell: (h', c')) as torch's forward does; runs fastrnn when
        _cell_unsupported says it may, else torch's forward."""
        acc = _acceleration(self)
        weights = _cell_weights(self)
        why = _cell_unsupported(self, acc.config, weights, input, hx)
        if why is not None:
            return _fallback(_CellForward, self, acc, why, (input, hx))
        return _cell_forward(acc, weights, input, hx)


def _cell_forward(acc: _Acceleration, weights, input, hx):
    lstm = acc.config[0] == "LSTM"
    H = acc.config[2]
    batched = input.dim() == 2
    shape = (input.shape[0], H) if batched else (H,)
    if _plain_eager(input):
        # NumPy views: a step of a decoder loop is a small call, and torch's view ops cost
        # ~1 us each. Contiguous ones go straight to the core's one-step cell call.
        import torch

        state = None
        if hx is not None:
            state = (_numpy(hx[0]), _numpy(hx[1])) if lstm else _numpy(hx)
        out = _cell_arrays(acc.slot, acc.config, weights, _numpy(input), state)
        if out is not None:
            return (
                (torch.from_numpy(out[0]), torch.from_numpy(out[1]))
                if lstm
                else torch.from_numpy(out)
            )
        B = shape[0] if batched else 1
        h0 = c0 = None
        if hx is not None:
            h0 = _numpy(hx[0] if lstm else hx).reshape(1, B, H)
            c0 = _numpy(hx[1]).reshape(1, B, H) if lstm else None
        x = _numpy(input).reshape(1, B, -1)
        _, h_n, c_n = _forward_arrays(acc.slot, acc.config, weights, x, h0, c0, None)
        h = torch.from_numpy(h_n.reshape(shape))
        return (h, torch.from_numpy(c_n.reshape(shape))) if lstm else h
    x = input.unsqueeze(0) if batched else input.view(1, 1, -1)
    h0 = c0 = None
    if hx is not None:
        h0 = (hx[0] if lstm else hx).reshape(1, -1, H)
        c0 = hx[1].reshape(1, -1, H) if lstm else None
    _, h_n, c_n = _run(acc, x, weights, h0, c0, None)
    h = h_n.view(shape)
    return (h, c_n.view(shape)) if lstm else h


# --- classes: original -> accelerated ------------------------------------------------------

_ACCELERATED_OF: dict[type, type] = {}  # original class -> its accelerated subclass
_ORIGINAL_OF: dict[type, type] = {}  # accelerated class -> original class
_CLASSES_LOCK = threading.Lock()


def _torch_base(cls: type):
    """The torch class among LSTM, GRU, RNN, LSTMCell, GRUCell, RNNCell that cls derives
    from, and the fast forward for it; (None, None) for any other class."""
    import torch.nn as nn

    for base in (nn.LSTM, nn.GRU, nn.RNN):
        if issubclass(cls, base):
            return base, _StackForward
    for base in (nn.LSTMCell, nn.GRUCell, nn.RNNCell):
        if issubclass(cls, base):
            return base, _CellForward
    return None, None


def _accelerated_class(cls: type) -> type:
    """The accelerated subclass of cls (made once, cached): MRO accelerated -> cls -> fast
    forward -> torch's class, named as cls (so that repr(model) does not change)."""
    fast = _ACCELERATED_OF.get(cls)
    if fast is not None:
        return fast
    with _CLASSES_LOCK:
        fast = _ACCELERATED_OF.get(cls)
        if fast is None:
            base, mixin = _torch_base(cls)
            bases = (mixin, base) if cls is base else (cls, mixin, base)
            fast = type(
                cls.__name__,
                bases,
                {"__module__": __name__, "__qualname__": f"accelerated.{cls.__qualname__}"},
            )
            _ORIGINAL_OF[fast] = cls
            _ACCELERATED_OF[cls] = fast
        return fast


def _unpickle(cls: type):
    """An empty accelerated instance of cls, for pickle to fill with the module's state."""
    _setup()
    fast = _accelerated_class(cls)
    return fast.__new__(fast)


# --- public functions ---------------------------------------------------------------------


def accelerate(model, dtype: str = "float32", strict: bool = False):
    """Makes every nn.LSTM, GRU, RNN, LSTMCell, GRUCell and RNNCell in model (model itself
    too) run its forward on fastrnn, in place; returns model.

    Each module keeps its identity and everything torch sees of it: isinstance(m, nn.LSTM),
    parameters, buffers, hooks, state_dict keys, load_state_dict, .to(), deepcopy, pickling
    (an accelerated copy), flatten_parameters(). Its forward takes and returns what torch's
    does. fastrnn computes it when that gives torch's result: CPU tensors, float32 input and
    weights, no gradient needed (grad mode off, or nothing requires grad), no CPU autocast,
    not training with inter-layer dropout, not under torch.jit.trace, weights not
    parametrized and not inference tensors. Otherwise torch's own forward runs — or, with
    strict=True, FallbackError says which module and why. Weights changed after the call
    (load_state_dict, optimizer steps, in-place edits, parameter replacement) are packed
    again before the next fast call; edits through ``param.data`` bypass torch's version
    counter: call accelerate(model) again after them (it repacks every accelerated module).

    Each call uses torch.get_num_threads() threads at most. Registers the op
    fastrnn::rnn_forward (torch.compile and torch.export capture it) and sets
    torch._dynamo.config.allow_rnn = True when a module was swapped, without which Dynamo
    refuses every nn.LSTM/GRU/RNN instance. Calling accelerate again updates the options.

    dtype: "float32"; or "bf16" / "int8" / "int7": fastrnn holds each module's weight matrices in that
    format (its own copy: the module's parameters stay float32, and a fallback runs torch's
    float32 forward), with the error against float32 stated in docs/precision.md. strict:
    raise instead of falling back. TypeError if model is not an nn.Module or strict not a
    bool; ValueError for another dtype.
    """
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"accelerate: model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"accelerate: dtype must be one of {DTYPES}, got {dtype!r}")
    if not isinstance(strict, bool):
        raise TypeError(f"accelerate: strict must be a bool, got {type(strict).__name__}")
    _setup()
    swapped_stack = False
    for name, module in model.named_modules():
        cls = type(module)
        if _is_accelerated(cls):
            acc = _acceleration(module)
            acc.strict, acc.dtype = strict, dtype
            acc.slot.dtype = dtype
            acc.slot.invalidate()  # weights may have changed behind torch's version counter
        else:
            base, mixin = _torch_base(cls)
            if base is None:
                continue
            config = _config(module)
            names = getattr(module, "_flat_weights_names", None)
            if mixin is _StackForward and list(names) != _weight_names(config):
                # torch's layout, which the op assumes, has been the same since torch 1.8.
                msg = (
                    f"accelerate: {cls.__name__} at {name!r} has parameters {names}, not in "
                    "torch's nn.LSTM / GRU / RNN layout; "
                )
                if strict:
                    raise FallbackError(msg + "it cannot run on fastrnn")
                warnings.warn(msg + "it stays as it was", RuntimeWarning, stacklevel=2)
                continue
            module.__dict__[_ATTR] = _Acceleration(strict, dtype, name, config)
            module.__class__ = _accelerated_class(cls)
            swapped_stack = swapped_stack or mixin is _StackForward
        _prepack(module)
    if swapped_stack:
        import torch._dynamo.config

        torch._dynamo.config.allow_rnn = True
    return model


def _is_accelerated(cls: type) -> bool:
    """cls is an accelerated class, or derives from one (parametrize makes such classes)."""
    return any(c in _ORIGINAL_OF for c in cls.__mro__)


def _prepack(module) -> None:
    """Packs the module's weights now if the fast path could use them (CPU float32 tensors
    with version counters), so that the first call does not pay for it."""
    import torch

    weights = _stack_weights(module) if isinstance(module, _StackForward) else _cell_weights(module)
    if all(
        isinstance(w, torch.Tensor)
        and w.is_cpu
        and w.dtype is torch.float32
        and not w.is_inference()
        for w in weights
    ):
        acc = _acceleration(module)
        _slot_model(acc.slot, acc.config, weights)


def restore(model):
    """Undoes accelerate in place: every accelerated module in model (model itself too) gets
    its original class back and loses what accelerate attached, so it is exactly the torch
    module it was (its parameters, possibly changed since, stay). Returns model; a model
    without accelerated modules is returned unchanged. TypeError if model is not an
    nn.Module."""
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"restore: model must be a torch.nn.Module, got {type(model).__name__}")
    for name, module in model.named_modules():
        cls = type(module)
        if cls in _ORIGINAL_OF:
            module.__class__ = _ORIGINAL_OF[cls]
            module.__dict__.pop(_ATTR, None)
        elif _is_accelerated(cls):
            raise TypeError(
                f"restore: {cls.__name__} at {name!r} derives from an accelerated class (a "
                "class made from it after accelerate, e.g. by parametrize); its original class "
                "cannot be assigned back"
            )
    return model
