"""ONNX: the LSTM / GRU / RNN nodes of an ONNX model → (ModelConfig, weights).

    config, weights = fastrnn.io.onnx.read("model.onnx")          # or bytes, or a ModelProto
    model = fastrnn.build(config, weights)
    y, h_n = model(x, h_0, lengths=sequence_lens)

What is read (the operators' specification: https://onnx.ai/onnx/operators/onnx__LSTM.html,
…GRU.html, …RNN.html, opsets 1 to 22; what onnxruntime computes was checked against it):

- Recurrent nodes of the default domain anywhere in the model: the main graph and the
  subgraphs of If / Loop / Scan nodes (not model-local functions).
- A *part* is one node, or a stack an exporter split into one node per layer (what
  torch.onnx.export emits): node k's Y reaches node k+1's X through glue only — Identity,
  Squeeze, Unsqueeze, Transpose, Reshape that, together, turn Y (T, D, B, H) into
  (T, B, D·H) in this element order (layout=1: (B, T, D, H) into (B, T, D·H)) — whose
  values nothing else reads but Shape / Size, and the nodes agree (operator, direction,
  layout, hidden_size, activations, clip, input_forget, linear_before_reset, and the same
  sequence_lens). Such a stack becomes one model with num_layers = its length.
- Weights W, R, B, P are initializers, Constant outputs, or built from them in the graph by
  Identity, Cast, CastLike, Slice, Concat, Unsqueeze, Squeeze, Reshape, Transpose, Gather,
  Split, and If (a condition known in the file picks its branch; otherwise both branches
  must give the same tensor): a small NumPy folder of pure data movement. Nothing from the
  file is ever executed; a graph input with an initializer of the same name (IR < 4) counts
  as that initializer.
- Gate order: ONNX LSTM i, o, f, c → torch's i, f, g, o; GRU z, r, h → r, z, n; B = [Wb, Rb]
  → bias_ih, bias_hh; P (i, o, f) → weight_peep (i, f, o). Weights are converted to
  float32 (float16 and bfloat16 exactly, float64 by rounding). Absent B: bias=False when no
  layer has one (zeros for a layer without when another has); the same for P.
- Attributes: hidden_size (or R's last size), direction (forward, reverse → reverse=True,
  bidirectional), layout (1 → batch_first=True), activations with activation_alpha/beta
  (see `_activations_resolve`), clip (> 0), input_forget, linear_before_reset,
  output_sequence (opsets < 7; it changes no value). Anything else is a ValueError naming
  the node and the attribute.

What the caller passes at call time (a fastrnn model stores none of them):
- X: the first node's X, (T, B, I) — (B, T, I) with layout=1 (batch_first).
- initial_h / initial_c: `state` (h_0 (L·D, B, H), LSTM (h_0, c_0)): each layer's
  initial_h (D, B, H) stacked in layer order (torch's layout, also for layout=1, whose
  (B, D, H) must be transposed). Absent or provably zero in the file (ConstantOfShape of
  0, a zero tensor, or shape-only ops on one, as exporters emit): leave state=None. A
  non-zero constant initial state is refused (a model has no stored state).
- sequence_lens: `lengths` (B,), each in [1, T]. ONNX allows 0 (onnxruntime then zeroes
  that row's Y_h / Y_c); fastrnn refuses 0, as torch's packing does. A constant
  sequence_lens in the file is refused for the same reason as a constant state.
- Outputs: y (T, B, D·H) — ONNX's Y (T, D, B, H) is y.reshape(T, B, D, H).transpose(0, 2,
  1, 3); h_n / c_n (L·D, B, H) are the layers' Y_h / Y_c stacked (layout=1: transpose to
  (B, D, H) per layer).

`onnx` is imported only when these functions run (pip install 'fastrnn[onnx]').
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from .._checks import MAX_LAYERS, MAX_PARAMETERS
from .._config import ACTIVATIONS, DEFAULT_ACTIVATIONS, ModelConfig, activation
from .base import BadFile

__all__ = ["Part", "parts", "read", "reference_model"]

# op_type → (gate blocks per hidden unit, ONNX's block order as indices into it in torch's
# order, activation slots per direction). LSTM ONNX i,o,f,c → torch i,f,g,o = [0, 2, 3, 1];
# GRU ONNX z,r,h → torch r,z,n = [1, 0, 2].
_OPS = {"LSTM": (4, (0, 2, 3, 1), 3), "GRU": (3, (1, 0, 2), 2), "RNN": (1, (0,), 1)}
_DOMAINS = ("", "ai.onnx")
_DIRECTIONS = ("forward", "reverse", "bidirectional")
# Attributes per operator (all opsets): output_sequence (opsets 1-6) only says whether Y
# is produced, which changes no value.
_ATTRIBUTES = {
    "LSTM": {"input_forget"},
    "GRU": {"linear_before_reset"},
    "RNN": set(),
}
_COMMON = {
    "hidden_size",
    "direction",
    "layout",
    "activations",
    "activation_alpha",
    "activation_beta",
    "clip",
    "output_sequence",
}
# The inputs' names by index (LSTM has all eight, GRU and RNN the first six).
_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")

# onnxruntime's alpha/beta when activation_alpha/beta run out (rnn_helpers.cc): its own
# table, 0 for anything not in it. ONNX says "the same as of corresponding ONNX operators":
# ThresholdedRelu's alpha is 1.0, the (since removed) experimental Affine (1.0, 0.0) and
# ScaledTanh (1.0, 1.0) — fastrnn's ACTIVATIONS. Where the two readings differ and the file
# gives no value, the file is ambiguous: read() refuses unless activation_defaults= picks.
_ORT_DEFAULTS = {"LeakyRelu": (0.01, 0.0), "HardSigmoid": (0.2, 0.5), "Elu": (1.0, 0.0)}

# The folder refuses a computed tensor beyond this many elements (2^28: 1 GiB as float32),
# so that no file makes it allocate without bound (a Gather or Concat can multiply what the
# file stores). Stored tensors are read as they are; only weights built in the graph are
# bounded by it.
_MAX_FOLDED = 1 << 28

# The folder follows at most this many ops back from a weight (exporters use a handful): a
# longer chain, or a cycle (an invalid graph), is refused instead of recursing without end.
_MAX_DEPTH = 64

# Ops that only read a tensor's shape: they may consume a stack's intermediate outputs
# (torch.onnx.export sizes the next layer's zero state with Shape of its input).
_SHAPE_READERS = ("Shape", "Size")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "reading ONNX models needs the onnx package: pip install 'fastrnn[onnx]'"
        ) from None
    return onnx


# --- loading --------------------------------------------------------------------------------


def _model_load(source):
    """(ModelProto, label for messages, directory for external data or None)."""
    onnx = _onnx()
    if isinstance(source, onnx.ModelProto):
        return source, "ONNX model", None
    if isinstance(source, (bytes, bytearray, memoryview)):
        try:
            return onnx.load_from_string(bytes(source)), "ONNX model (bytes)", None
        except Exception as e:  # noqa: BLE001 - protobuf raises its own DecodeError types
            raise BadFile("ONNX model (bytes)", f"is not an ONNX model: {e}") from None
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "an ONNX model must be a path, bytes or an onnx.ModelProto, got "
            f"{type(source).__name__}"
        )
    path = os.fspath(source)
    with open(path, "rb") as f:  # OSError (missing, unreadable) as it is
        data = f.read()
    try:
        # External data is read lazily, tensor by tensor, only for what a part needs.
        model = onnx.load_from_string(data)
    except Exception as e:  # noqa: BLE001
        raise BadFile(path, f"is not an ONNX model: {e}") from None
    return model, path, os.path.dirname(os.path.abspath(path))


def _opset(model) -> int:
    """The default domain's opset (1 when the model does not import it, as IR 1-2 did)."""
    for o in model.opset_import:
        if o.domain in _DOMAINS:
            return int(o.version)
    return 1


# --- scopes: a graph and the graphs around it --------------------------------------------------


class _Scope:
    """One graph (the main graph or a subgraph) with its producers, initializers, inputs and
    the values its nodes (and their subgraphs) read; `parent` is the enclosing scope."""

    def __init__(self, graph, parent, where: str) -> None:
        self.graph, self.parent, self.where = graph, parent, where
        self.producer = {o: n for n in graph.node for o in n.output if o}
        self.initializers = {t.name: t for t in graph.initializer}
        self.sparse = {t.values.name for t in graph.sparse_initializer}
        self.inputs = {i.name for i in graph.input}
        self.outputs = {o.name for o in graph.output}
        # name → the nodes of this graph reading it (a node whose subgraph reads an outer
        # value counts as reading it).
        self.uses: dict[str, list] = {}
        for n in graph.node:
            for name in set(n.input) | _subgraph_reads(n):
                if name:
                    self.uses.setdefault(name, []).append(n)

    def find(self, name: str):
        """(scope, kind, obj): kind 'node' (obj its producer), 'init' (a TensorProto),
        'input' (a graph input without initializer), 'sparse', or 'missing'."""
        scope = self
        while scope is not None:
            if name in scope.producer:
                return scope, "node", scope.producer[name]
            if name in scope.initializers:
                return scope, "init", scope.initializers[name]
            if name in scope.sparse:
                return scope, "sparse", None
            if name in scope.inputs:
                return scope, "input", None
            scope = scope.parent
        return self, "missing", None


def _subgraphs(node):
    """(attribute name, graph) of a node's subgraphs (If branches, Loop/Scan bodies)."""
    onnx = _onnx()
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            yield a.name, a.g
        elif a.type == onnx.AttributeProto.GRAPHS:
            for i, g in enumerate(a.graphs):
                yield f"{a.name}[{i}]", g


def _subgraph_reads(node) -> set:
    """Every value name read inside a node's subgraphs (recursively): those not produced
    there are the outer values the node reads implicitly."""
    names: set = set()
    for _, g in _subgraphs(node):
        for n in g.node:
            names.update(n.input)
            names.update(_subgraph_reads(n))
    return names


def _scopes(model) -> list:
    """Every graph of the model, main graph first, then subgraphs depth-first."""
    out = []

    def walk(graph, parent, where):
        scope = _Scope(graph, parent, where)
        out.append(scope)
        for n in graph.node:
            for attr, g in _subgraphs(n):
                label = f"{n.op_type} {_node_ident(n)} {attr}"
                walk(g, scope, f"{where} > {label}" if where else label)

    walk(model.graph, None, "")
    return out


def _first_output(node) -> str:
    return next((o for o in node.output if o), "")


def _node_ident(node) -> str:
    """'name', or (unnamed, output 'y') for a node without a name."""
    return repr(node.name) if node.name else f"(unnamed, output {_first_output(node)!r})"


def _node_label(node, scope) -> str:
    where = f" in {scope.where}" if scope.where else ""
    return f"{node.op_type} node {_node_ident(node)}{where}"


# --- constant folding ------------------------------------------------------------------------


class _NotConstant(Exception):
    """A value the folder cannot compute from the file alone: why, and the ops it was
    followed through ("'W' ← Unsqueeze: 'w_cat' ← Concat: 'x' is a graph input")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason, self.path = reason, []

    def __str__(self) -> str:
        steps = self.path if len(self.path) <= 6 else [*self.path[:4], "…", *self.path[-2:]]
        return ": ".join([*steps, self.reason])


def _attr(node, name, default=None):
    onnx = _onnx()
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


class _Folder:
    """Computes values from initializers and Constant nodes through pure data-movement ops
    (see the module docstring), in NumPy. Never runs anything else from the file."""

    OPS = (
        "Constant",
        "Identity",
        "Cast",
        "CastLike",
        "Slice",
        "Concat",
        "Unsqueeze",
        "Squeeze",
        "Reshape",
        "Transpose",
        "Gather",
        "Split",
        "If",
    )

    def __init__(self, opset: int, base_dir) -> None:
        self.opset, self.base_dir = opset, base_dir
        self.memo: dict = {}
        self.subscopes: dict = {}
        self.depth = 0

    def value(self, name: str, scope) -> np.ndarray:
        owner, kind, obj = scope.find(name)
        key = (id(owner), name)
        if key not in self.memo:
            if self.depth >= _MAX_DEPTH:
                raise _NotConstant(
                    f"{name!r} is computed through more than {_MAX_DEPTH} ops (or a cycle)"
                )
            self.depth += 1
            try:
                self.memo[key] = self._compute(name, owner, kind, obj)
            finally:
                self.depth -= 1
        return self.memo[key]

    def _compute(self, name, scope, kind, obj) -> np.ndarray:
        if kind == "init":
            return self._tensor(obj, name)
        if kind == "input":
            raise _NotConstant(
                f"{name!r} is a graph input: its value is given at run time, not stored in the file"
            )
        if kind == "sparse":
            raise _NotConstant(f"{name!r} is a sparse initializer, which fastrnn does not read")
        if kind == "missing":
            raise _NotConstant(f"{name!r} is produced by nothing in the graph")
        node = obj
        if node.domain not in _DOMAINS or node.op_type not in self.OPS:
            raise _NotConstant(
                f"{name!r} is computed by {_node_label(node, scope)}, which fastrnn does not "
                f"fold (it folds {', '.join(self.OPS)} over stored tensors)"
            )
        try:
            out = self._op(node, scope, list(node.output).index(name))
        except _NotConstant as e:
            e.path.insert(0, f"{name!r} ← {node.op_type}")
            raise
        except (ValueError, IndexError, TypeError) as e:
            raise _NotConstant(f"{_node_label(node, scope)} cannot be folded: {e}") from None
        _size_check(out.size)  # the ops that can grow a tensor checked before allocating
        return out

    def _tensor(self, t, name) -> np.ndarray:
        onnx = _onnx()
        if t.data_location == onnx.TensorProto.EXTERNAL:
            if self.base_dir is None:
                raise _NotConstant(
                    f"{name!r} keeps its data in an external file: pass the model's path "
                    "(not bytes or a ModelProto) so that it can be found"
                )
            info = {e.key: e.value for e in t.external_data}
            location = info.get("location", "")
            full = os.path.realpath(os.path.join(self.base_dir, location))
            inside = os.path.realpath(self.base_dir) + os.sep
            if not location or os.path.isabs(location) or not full.startswith(inside):
                raise _NotConstant(
                    f"{name!r} names external data {location!r} outside the model's directory"
                )
            t2 = onnx.TensorProto()
            t2.CopyFrom(t)
            from onnx.external_data_helper import load_external_data_for_tensor

            load_external_data_for_tensor(t2, self.base_dir)
            t = t2
        if t.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
            raise _NotConstant(f"{name!r} is not a numeric tensor")
        try:
            return np.asarray(onnx.numpy_helper.to_array(t))
        except Exception as e:  # noqa: BLE001 - onnx raises several types for bad tensors
            raise _NotConstant(f"{name!r} cannot be read: {e}") from None

    def _op(self, node, scope, index: int) -> np.ndarray:
        onnx = _onnx()
        op = node.op_type

        def arg(i):
            if i >= len(node.input) or not node.input[i]:
                return None
            return self.value(node.input[i], scope)

        def ints(i):
            a = arg(i)
            return None if a is None else [int(v) for v in np.asarray(a).reshape(-1)]

        if op == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    return self._tensor(a.t, node.output[0])
                if a.name in ("value_float", "value_int"):
                    return np.asarray(onnx.helper.get_attribute_value(a))
                if a.name in ("value_floats", "value_ints"):
                    return np.asarray(onnx.helper.get_attribute_value(a))
            raise _NotConstant("a Constant without a numeric dense value")
        if op == "Identity":
            return arg(0)
        if op == "Cast":
            return arg(0).astype(onnx.helper.tensor_dtype_to_np_dtype(_attr(node, "to")))
        if op == "CastLike":
            return arg(0).astype(arg(1).dtype)
        if op == "Concat":
            parts = [arg(i) for i in range(len(node.input))]
            _size_check(sum(p.size for p in parts))
            return np.concatenate(parts, _attr(node, "axis"))
        if op == "Transpose":
            x = arg(0)
            perm = _attr(node, "perm")
            return np.transpose(x, None if perm is None else list(perm))
        if op == "Reshape":
            x = arg(0)
            shape = list(_attr(node, "shape")) if self.opset < 5 else ints(1)
            return x.reshape(_reshape_dims(x.shape, shape, _attr(node, "allowzero", 0)))
        if op == "Unsqueeze":
            x = arg(0)
            axes = _attr(node, "axes") if self.opset < 13 else ints(1)
            rank = x.ndim + len(axes)
            for ax in sorted(a % rank for a in axes):
                x = np.expand_dims(x, ax)
            return x
        if op == "Squeeze":
            x = arg(0)
            axes = _attr(node, "axes") if self.opset < 13 else ints(1)
            if axes is None:
                return np.squeeze(x)
            return np.squeeze(x, tuple(a % x.ndim for a in axes))
        if op == "Gather":
            x, idx = arg(0), np.asarray(arg(1)).astype(np.int64)
            axis = _attr(node, "axis", 0) % x.ndim
            _size_check(idx.size * (x.size // max(x.shape[axis], 1)))
            idx = np.where(idx < 0, idx + x.shape[axis], idx)
            return np.take(x, idx, axis=axis)
        if op == "Slice":
            x = arg(0)
            if self.opset < 10:
                starts, ends = list(_attr(node, "starts")), list(_attr(node, "ends"))
                axes, steps = _attr(node, "axes"), None
            else:
                starts, ends, axes, steps = ints(1), ints(2), ints(3), ints(4)
            axes = list(range(len(starts))) if axes is None else list(axes)
            steps = [1] * len(starts) if steps is None else steps
            for s, e, ax, st in zip(starts, ends, axes, steps):
                ax %= x.ndim
                x = np.take(x, _slice_indices(x.shape[ax], s, e, st), axis=ax)
            return x
        if op == "Split":
            x = arg(0)
            axis = _attr(node, "axis", 0) % x.ndim
            sizes = _attr(node, "split") if self.opset < 13 else ints(1)
            if sizes is None:
                n = _attr(node, "num_outputs", len(node.output))
                chunk = -(-x.shape[axis] // n)
                sizes = [min(chunk, x.shape[axis] - k * chunk) for k in range(n)]
            bounds = np.cumsum([0, *sizes])
            if bounds[-1] != x.shape[axis]:
                raise ValueError(f"split sizes {list(sizes)} do not add up to {x.shape[axis]}")
            return np.take(x, np.arange(bounds[index], bounds[index + 1]), axis=axis)
        if op == "If":
            return self._if(node, scope, index)
        raise AssertionError(op)  # OPS lists exactly the ops handled above

    def _if(self, node, scope, index: int) -> np.ndarray:
        branches = {name: g for name, g in _subgraphs(node)}

        def branch(name):
            key = (id(node), name)
            if key not in self.subscopes:
                self.subscopes[key] = _Scope(branches[name], scope, f"If {name}")
            sub = self.subscopes[key]
            return self.value(branches[name].output[index].name, sub)

        try:
            cond = self.value(node.input[0], scope)
        except _NotConstant:
            cond = None
        if cond is not None:
            return branch("then_branch" if bool(np.asarray(cond).reshape(-1)[0]) else "else_branch")
        then, other = branch("then_branch"), branch("else_branch")
        if then.shape != other.shape or not np.array_equal(then, other):
            raise _NotConstant(
                "its condition is known only at run time and its branches give different values"
            )
        return then

    def is_zero(self, name: str, scope, depth: int = 0) -> bool:
        """Whether a value is provably all zeros: a constant of zeros, ConstantOfShape of 0,
        or shape-only ops (Identity, Cast, Slice, Reshape, Squeeze, Unsqueeze, Transpose,
        Expand, Gather, Tile, Flatten, Concat of zeros) over one — what exporters emit for
        a zero initial state of dynamic batch size."""
        try:
            return not np.any(self.value(name, scope))
        except _NotConstant:
            pass
        _, kind, node = scope.find(name)
        if kind != "node" or node.domain not in _DOMAINS or depth >= _MAX_DEPTH:
            return False
        if node.op_type == "ConstantOfShape":
            v = _attr(node, "value")
            return v is None or not np.any(_onnx().numpy_helper.to_array(v))
        if node.op_type in (
            "Identity",
            "Cast",
            "Slice",
            "Reshape",
            "Squeeze",
            "Unsqueeze",
            "Transpose",
            "Expand",
            "Gather",
            "Tile",
            "Flatten",
        ):
            return bool(node.input) and self.is_zero(node.input[0], scope, depth + 1)
        if node.op_type == "Concat":
            return all(self.is_zero(i, scope, depth + 1) for i in node.input if i)
        return False


def _size_check(elements: int) -> None:
    """Refuses an op's result beyond _MAX_FOLDED elements before it is allocated."""
    if elements > _MAX_FOLDED:
        raise _NotConstant(f"a result of {elements} elements (the folder stops at {_MAX_FOLDED})")


def _reshape_dims(shape, spec, allowzero) -> list:
    """ONNX Reshape's target dims: 0 copies the input's dim (unless allowzero); a single
    -1 is left for numpy's reshape to infer (which also checks the element count)."""
    return [int(shape[i]) if (d == 0 and not allowzero) else int(d) for i, d in enumerate(spec)]


def _slice_indices(dim: int, start: int, end: int, step: int) -> np.ndarray:
    """ONNX Slice's indices along one axis (clamping as the operator specifies)."""
    if step == 0:
        raise ValueError("Slice step must not be 0")
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return np.arange(start, end, step, dtype=np.int64)


# --- attributes ------------------------------------------------------------------------------


def _activations_resolve(label: str, op: str, D: int, names, alphas, betas, defaults):
    """The (name, alpha, beta) triples of the activation slots, D directions in turn.

    activation_alpha / activation_beta are consumed in list order by the functions that
    take that parameter (the specification's wording; onnxruntime's rnn_helpers.cc does
    exactly this). A list with more values than those functions take may instead mean one
    value per function (another reading some writers use): accepted only when both readings
    give the same triples. A function left without a value takes its default; where ONNX's
    operator default and onnxruntime's differ (ThresholdedRelu, Affine, ScaledTanh) the
    `defaults` choice ("onnx" / "onnxruntime") decides, and None refuses."""
    n = _OPS[op][2] * D
    if names is None:
        if op == "RNN":
            names = ["Tanh"] * D
        else:
            names = list(DEFAULT_ACTIVATIONS[op]) * D
    names = [v.decode() if isinstance(v, bytes) else str(v) for v in names]
    if len(names) != n:
        per = {"LSTM": "f, g, h", "GRU": "f, g", "RNN": "f"}[op]
        raise ValueError(
            f"{label}: attribute activations must hold {n} functions ({per} for each of "
            f"{D} direction(s)), got {len(names)}: {names}"
        )
    canonical = []
    for v in names:
        try:
            canonical.append(activation(v)[0])
        except ValueError:
            raise ValueError(
                f"{label}: attribute activations: {v!r} is not an ONNX activation "
                f"(one of {list(ACTIVATIONS)})"
            ) from None
    alphas = [float(a) for a in (alphas or [])]
    betas = [float(b) for b in (betas or [])]
    takes = {k: (p[0] is not None, p[1] is not None) for k, p in ACTIVATIONS.items()}

    def consumed(values, which):
        users = [i for i, f in enumerate(canonical) if takes[f][which]]
        return dict(zip(users, values)), len(values) > len(users)

    def text(d):  # {slot: value} with float32 values shown as written (0.1, not 0.100000001)
        return "{" + ", ".join(f"{i}: {v:.7g}" for i, v in d.items()) + "}"

    for which, values, attr in ((0, alphas, "activation_alpha"), (1, betas, "activation_beta")):
        got, surplus = consumed(values, which)
        if surplus:
            positional = None
            if len(values) == n:
                positional = {i: v for i, v in enumerate(values) if takes[canonical[i]][which]}
            if positional != got:
                raise ValueError(
                    f"{label}: attribute {attr} has {len(values)} values "
                    f"[{', '.join(f'{v:.7g}' for v in values)}] but the activations "
                    f"{canonical} take {len(got)}: read in order by the functions that take "
                    f"one (onnxruntime) they give {text(got)}, read one per function they "
                    "give "
                    + (text(positional) if positional is not None else "nothing (not one each)")
                    + "; write one value per function that takes it"
                )
        if which == 0:
            alpha_of = got
        else:
            beta_of = got
    triples = []
    for i, f in enumerate(canonical):
        params = []
        for which, given, attr in (
            (0, alpha_of, "activation_alpha"),
            (1, beta_of, "activation_beta"),
        ):
            if not takes[f][which]:
                params.append(0.0)
                continue
            if i in given:
                params.append(given[i])
                continue
            spec = ACTIVATIONS[f][which]
            ort = _ORT_DEFAULTS.get(f, (0.0, 0.0))[which]
            if spec == ort or defaults == "onnx":
                params.append(spec)
            elif defaults == "onnxruntime":
                params.append(ort)
            else:
                param = ("alpha", "beta")[which]
                raise ValueError(
                    f"{label}: attribute {attr} gives no {param} for activation {i} ({f}): "
                    f"ONNX's operator default is {spec:g}, onnxruntime uses {ort:g}. Pass "
                    "activation_defaults='onnx' or 'onnxruntime' to choose, or write the "
                    f"value into {attr}"
                )
        try:
            triples.append(activation((f, *params)))
        except ValueError as e:
            raise ValueError(f"{label}: attribute activations: {e}") from None
    return tuple(triples)


@dataclasses.dataclass(frozen=True)
class _Attributes:
    direction: str
    hidden_size: int | None
    layout: int
    activations: tuple
    clip: float
    input_forget: bool
    linear_before_reset: bool

    @property
    def num_directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1


def _attributes_resolve(node, label: str, defaults) -> _Attributes:
    """A node's attributes, checked: anything fastrnn cannot map is a ValueError naming the
    node, the attribute, what is allowed and what the file says."""
    onnx = _onnx()
    op = node.op_type
    values = {}
    for a in node.attribute:
        if a.name not in _COMMON | _ATTRIBUTES[op]:
            raise ValueError(
                f"{label}: unknown attribute {a.name!r} (an ONNX {op} has "
                f"{sorted(_COMMON | _ATTRIBUTES[op])})"
            )
        if a.ref_attr_name:
            raise ValueError(
                f"{label}: attribute {a.name!r} refers to a function attribute "
                f"({a.ref_attr_name!r}); fastrnn reads stored values only"
            )
        values[a.name] = onnx.helper.get_attribute_value(a)

    def integer(key, default):
        v = values.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{label}: attribute {key} must be an integer, got {v!r}")
        return v

    direction = values.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else str(direction)
    if direction not in _DIRECTIONS:
        raise ValueError(
            f"{label}: attribute direction must be one of {list(_DIRECTIONS)}, got {direction!r}"
        )
    D = 2 if direction == "bidirectional" else 1
    hidden = values.get("hidden_size")
    if hidden is not None:
        hidden = integer("hidden_size", None)
        if hidden < 1:
            raise ValueError(f"{label}: attribute hidden_size must be >= 1, got {hidden}")
    layout = integer("layout", 0)
    if layout not in (0, 1):
        raise ValueError(
            f"{label}: attribute layout must be 0 ([T, B, I]) or 1 ([B, T, I]), got {layout}"
        )
    clip = values.get("clip")
    if clip is None:
        clip = 0.0
    else:
        clip = float(clip)
        if math.isnan(clip) or clip <= 0:
            raise ValueError(
                f"{label}: attribute clip must be > 0 (the bound of [-clip, clip]), got {clip!r}"
                " (onnxruntime clamps every pre-activation to [0, 0] for clip=0)"
            )
        if math.isinf(clip):
            clip = 0.0  # no bound: fastrnn's "no clip"
    input_forget = integer("input_forget", 0) != 0
    lbr = integer("linear_before_reset", 0) != 0
    activations = _activations_resolve(
        label,
        op,
        D,
        values.get("activations"),
        values.get("activation_alpha"),
        values.get("activation_beta"),
        defaults,
    )
    return _Attributes(direction, hidden, layout, activations, clip, input_forget, lbr)


# --- parts: stacks of recurrent nodes -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Part:
    """One recurrent part of an ONNX model: a node, or an exporter-split stack of them.

    op: "LSTM" | "GRU" | "RNN"; nodes: the nodes' names, layer order (an unnamed node is
    shown by its first output); where: "" for the main graph, else the subgraph's path;
    x: the first node's X; y: the last node's Y ("" if absent); y_h, y_c, initial_h,
    initial_c: per layer ("" where absent); sequence_lens: the shared input ("" if none).
    """

    op: str
    nodes: tuple
    where: str
    x: str
    y: str
    y_h: tuple
    y_c: tuple
    initial_h: tuple
    initial_c: tuple
    sequence_lens: str
    _protos: tuple = dataclasses.field(default=(), repr=False, compare=False)
    _scope: object = dataclasses.field(default=None, repr=False, compare=False)

    def names(self) -> set:
        """Every name that selects this part: its nodes' names and outputs."""
        out = {n.name for n in self._protos if n.name}
        for n in self._protos:
            out.update(o for o in n.output if o)
        return out

    def describe(self) -> str:
        layers = len(self.nodes)
        head = f"{self.op} {' + '.join(repr(n) for n in self.nodes)}"
        where = f" in {self.where}" if self.where else ""
        outs = [o for o in (self.y, self.y_h[-1], self.y_c[-1] if self.y_c else "") if o]
        return (
            f"{head} ({layers} layer{'s' if layers > 1 else ''}{where}; "
            f"input {self.x!r}, outputs {outs})"
        )


def _node_inputs(node) -> list:
    return [node.input[i] if i < len(node.input) else "" for i in range(len(_INPUTS))]


def _glue_follow(scope, folder, node, attrs):
    """The recurrent node Y feeds through glue, or None: Y's only data consumer chain must
    be glue ops that turn Y into the next layer's X (see the module docstring)."""
    D, layout = attrs.num_directions, attrs.layout
    y = _first_output(node) if node.output and node.output[0] else ""
    if not y:
        return None
    # H's size when the node states it (literal Reshape targets can then be checked).
    T, B, Dt, Ht = ("T", None), ("B", None), ("D", D), ("H", attrs.hidden_size or -1)
    axes = [[T], [Dt], [B], [Ht]] if layout == 0 else [[B], [T], [Dt], [Ht]]
    value = y
    for _ in range(16):  # exporters use at most three glue ops; 16 bounds a cycle
        if value in scope.outputs:
            return None
        data = [u for u in scope.uses.get(value, []) if u.op_type not in _SHAPE_READERS]
        if len(data) != 1:
            return None
        user = data[0]
        if user.domain not in _DOMAINS:
            return None
        if user.op_type in _OPS:
            if list(user.input).index(value) != 0 or list(user.input).count(value) != 1:
                return None
            want = [["T"], ["B"], ["D", "H"]] if layout == 0 else [["B"], ["T"], ["D", "H"]]
            got = [[t[0] for t in ax if t[1] != 1] for ax in axes]
            if D == 1:
                want = [[lbl for lbl in ax if lbl != "D"] for ax in want]
            return user if got == want else None
        if user.input[0] != value or value in user.input[1:]:
            return None
        axes = _glue_apply(scope, folder, user, axes)
        if axes is None or not user.output or not user.output[0]:
            return None
        value = user.output[0]
    return None


def _size(tokens):
    """(integer factor, symbols) of a product of tokens; H's size is irrelevant (-1: kept
    symbolic as 'H' so that it never matches a literal by accident)."""
    coef, syms = 1, []
    for label, n in tokens:
        if n is None or n == -1:
            syms.append(label)
        else:
            coef *= n
    return coef, tuple(sorted(syms))


def _glue_apply(scope, folder, node, axes):
    """The abstract axes after one glue op, or None if the op is not glue that keeps the
    element order a stack needs. Axes are lists of tokens (label, size), size None for T
    and B, -1 for H."""
    op = node.op_type
    opset = folder.opset
    try:
        if op == "Identity":
            return axes
        if op == "Transpose":
            perm = _attr(node, "perm")
            perm = list(range(len(axes)))[::-1] if perm is None else list(perm)
            if sorted(perm) != list(range(len(axes))):
                return None
            return [axes[p] for p in perm]
        if op in ("Squeeze", "Unsqueeze"):
            axes_arg = (
                _attr(node, "axes")
                if opset < 13
                else (
                    [int(v) for v in folder.value(node.input[1], scope).reshape(-1)]
                    if len(node.input) > 1 and node.input[1]
                    else None
                )
            )
            if op == "Squeeze":
                if axes_arg is None:
                    drop = {i for i, ax in enumerate(axes) if _size(ax) == (1, ())}
                else:
                    drop = {a % len(axes) for a in axes_arg}
                if any(_size(axes[i]) != (1, ()) for i in drop):
                    return None
                return [ax for i, ax in enumerate(axes) if i not in drop]
            if axes_arg is None:
                return None
            out = list(axes)
            rank = len(axes) + len(axes_arg)
            for a in sorted(a % rank for a in axes_arg):
                out.insert(a, [])
            return out
        if op == "Reshape":
            spec = (
                list(_attr(node, "shape"))
                if opset < 5
                else [int(v) for v in folder.value(node.input[1], scope).reshape(-1)]
            )
            return _reshape_abstract(axes, spec, _attr(node, "allowzero", 0))
    except _NotConstant:
        return None
    return None


def _reshape_abstract(axes, spec, allowzero):
    """Reshape over abstract axes: the target dims regroup the row-major token sequence
    (size-1 tokens dropped) into consecutive groups, or None when they cannot be proven to."""
    if spec.count(-1) > 1:
        return None
    tokens = [t for ax in axes for t in ax if t[1] != 1]
    sizes = []
    for i, d in enumerate(spec):
        if d == 0 and not allowzero:
            if i >= len(axes):
                return None
            sizes.append(_size(axes[i]))
        elif d >= 1:
            sizes.append((d, ()))
        elif d == -1:
            sizes.append(None)
        else:
            return None

    def take(tokens, size, from_left):
        group, rest = [], list(tokens)
        while _size(group) != size:
            if not rest:
                return None
            t = rest.pop(0) if from_left else rest.pop()
            group.insert(len(group) if from_left else 0, t)
            coef, syms = _size(group)
            if not set(syms) <= set(size[1]) or coef > size[0] or size[0] % coef:
                return None
        return group, rest

    split = spec.index(-1) if -1 in spec else len(spec)
    left, right = [], []
    rest = tokens
    for size in sizes[:split]:
        got = take(rest, size, True)
        if got is None:
            return None
        group, rest = got
        left.append(group)
    for size in reversed(sizes[split + 1 :]):
        got = take(rest, size, False)
        if got is None:
            return None
        group, rest = got
        right.insert(0, group)
    if split == len(spec):
        return left if not rest else None
    return [*left, rest, *right]


def _agree(a, b) -> bool:
    """Whether two recurrent nodes may be one stack's layers (attributes and lengths)."""
    if a.op_type != b.op_type:
        return False
    if _node_inputs(a)[4] != _node_inputs(b)[4]:
        return False
    raw = sorted(x.SerializeToString() for x in a.attribute)
    if raw == sorted(x.SerializeToString() for x in b.attribute):
        return True
    try:
        return _attributes_resolve(a, "", "onnx") == _attributes_resolve(b, "", "onnx")
    except ValueError:
        return False


def _parts_find(model, merge: bool) -> list:
    folder = _Folder(_opset(model), None)
    found = []
    for scope in _scopes(model):
        nodes = [n for n in scope.graph.node if n.domain in _DOMAINS and n.op_type in _OPS]
        nxt = {}
        if merge:
            for n in nodes:
                try:
                    attrs = _attributes_resolve(n, "", "onnx")
                except ValueError:
                    continue
                m = _glue_follow(scope, folder, n, attrs)
                if m is not None and _agree(n, m):
                    nxt[id(n)] = m
        heads = {id(n) for n in nodes} - {id(m) for m in nxt.values()}
        for n in nodes:
            if id(n) not in heads:
                continue
            chain = [n]
            while id(chain[-1]) in nxt and len(chain) < MAX_LAYERS:
                chain.append(nxt[id(chain[-1])])
            found.append(_part_make(chain, scope))
    return found


def _part_make(chain, scope) -> Part:
    def out(n, i):
        return n.output[i] if i < len(n.output) else ""

    ins = [_node_inputs(n) for n in chain]
    return Part(
        op=chain[0].op_type,
        nodes=tuple(n.name or _first_output(n) for n in chain),
        where=scope.where,
        x=ins[0][0],
        y=out(chain[-1], 0),
        y_h=tuple(out(n, 1) for n in chain),
        y_c=tuple(out(n, 2) for n in chain) if chain[0].op_type == "LSTM" else (),
        initial_h=tuple(i[5] for i in ins),
        initial_c=tuple(i[6] for i in ins) if chain[0].op_type == "LSTM" else (),
        sequence_lens=ins[0][4],
        _protos=tuple(chain),
        _scope=scope,
    )


def _select(found: list, node, label: str) -> Part:
    if not found:
        raise BadFile(
            label,
            "holds no LSTM, GRU or RNN node (of the default ONNX domain, outside model-local "
            "functions); a cell unrolled into MatMul / Gemm and activations, as "
            "torch.onnx.export writes nn.LSTMCell / GRUCell / RNNCell, is not recognised",
        )
    listing = "; ".join(p.describe() for p in found)
    if node is None:
        if len(found) == 1:
            return found[0]
        raise BadFile(
            label,
            f"holds {len(found)} recurrent parts: {listing}. Pass node= (a node name or an "
            "output name) to choose one",
        )
    if not isinstance(node, str):
        raise TypeError(f"node must be a str (a node or output name), got {type(node).__name__}")
    hits = [p for p in found if node in p.names()]
    if not hits:
        raise BadFile(label, f"has no recurrent node or output named {node!r}; it holds: {listing}")
    if len(hits) > 1:
        raise BadFile(
            label,
            f"node={node!r} names {len(hits)} recurrent parts (in different subgraphs): "
            + "; ".join(p.describe() for p in hits)
            + ". Pass an output name, which is unique",
        )
    return hits[0]


# --- reading a part -------------------------------------------------------------------------


@dataclasses.dataclass
class _Layer:
    node: object
    label: str
    attrs: _Attributes
    W: np.ndarray
    R: np.ndarray
    B: np.ndarray | None
    P: np.ndarray | None


def _float_weights(label: str, what: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind != "f" and "bfloat16" not in str(a.dtype):
        raise ValueError(f"{label}: input {what} must be floating point, got dtype {a.dtype}")
    return np.asarray(a, dtype=np.float32)


def _layers_read(part: Part, folder: _Folder, label_file: str, defaults) -> list:
    layers = []
    for n in part._protos:
        label = _node_label(n, part._scope)
        attrs = _attributes_resolve(n, label, defaults)
        limit = len(_INPUTS) if n.op_type == "LSTM" else 6
        if len(n.input) > limit:
            raise BadFile(
                label_file,
                f"{label}: has {len(n.input)} inputs; an ONNX {n.op_type} takes at most "
                f"{limit} ({', '.join(_INPUTS[:limit])})",
            )
        ins = _node_inputs(n)
        values = {}
        for i in (1, 2, 3, 7):
            name = ins[i]
            if not name:
                if i in (1, 2):
                    raise BadFile(label_file, f"{label}: input {_INPUTS[i]} is missing")
                continue
            try:
                values[_INPUTS[i]] = _float_weights(
                    label, _INPUTS[i], folder.value(name, part._scope)
                )
            except _NotConstant as e:
                raise BadFile(
                    label_file,
                    f"{label}: input {_INPUTS[i]} ({name!r}) is not a constant fastrnn can "
                    f"compute: {e}",
                ) from None
        for i in (5, 6):
            name = ins[i]
            if not name or folder.is_zero(name, part._scope):
                continue
            try:
                folder.value(name, part._scope)
            except _NotConstant:
                continue  # given at run time: the caller passes it as state
            raise BadFile(
                label_file,
                f"{label}: input {_INPUTS[i]} ({name!r}) is a non-zero constant in the file; "
                "a fastrnn model stores no initial state: remove it from the graph (make it "
                "a graph input) and pass it at call time as state=",
            )
        if ins[4]:
            try:
                lens = folder.value(ins[4], part._scope)
            except _NotConstant:
                lens = None
            if lens is not None:
                raise BadFile(
                    label_file,
                    f"{label}: input sequence_lens ({ins[4]!r}) is the constant "
                    f"{np.asarray(lens).reshape(-1)[:8].tolist()} in the file; a fastrnn model "
                    "takes lengths at call time: make it a graph input and pass lengths=",
                )
        layers.append(
            _Layer(n, label, attrs, values["W"], values["R"], values.get("B"), values.get("P"))
        )
    return layers


def _shape_check(label_file, label, what, a, expected) -> None:
    if tuple(a.shape) != tuple(expected):
        raise BadFile(
            label_file,
            f"{label}: input {what} must have shape {list(expected)}, got {list(a.shape)}",
        )


def _config_weights(part: Part, layers: list, label_file: str, batch_first) -> tuple:
    op = part.op
    G, order, _ = _OPS[op]
    first = layers[0]
    D = first.attrs.num_directions
    W0 = first.W
    if W0.ndim != 3:
        raise BadFile(
            label_file, f"{first.label}: input W must have 3 dims [D, G·H, I], got {list(W0.shape)}"
        )
    if first.R.ndim != 3:
        raise BadFile(
            label_file,
            f"{first.label}: input R must have 3 dims [D, G·H, H], got {list(first.R.shape)}",
        )
    H = first.attrs.hidden_size or first.R.shape[2]
    if first.attrs.hidden_size is not None and first.R.shape[2] != H:
        raise BadFile(
            label_file,
            f"{first.label}: attribute hidden_size is {H} but input R has shape "
            f"{list(first.R.shape)} (expected [{D}, {G * H}, {H}])",
        )
    I = W0.shape[2]
    for k, layer in enumerate(layers):
        I_k = I if k == 0 else D * H
        _shape_check(label_file, layer.label, "W", layer.W, (D, G * H, I_k))
        _shape_check(label_file, layer.label, "R", layer.R, (D, G * H, H))
        if layer.B is not None:
            _shape_check(label_file, layer.label, "B", layer.B, (D, 2 * G * H))
        if layer.P is not None:
            _shape_check(label_file, layer.label, "P", layer.P, (D, 3 * H))
    attrs = first.attrs
    acts = attrs.activations
    if op == "RNN":
        names = {a[0] for a in acts}
        mode = "RNN_RELU" if names == {"Relu"} else "RNN_TANH"
        if names <= {"Relu"} or names <= {"Tanh"}:
            acts = ()
    else:
        mode = op
        if acts == tuple(activation(a) for a in DEFAULT_ACTIVATIONS[op]) * D:
            acts = ()
    bias = any(layer.B is not None for layer in layers)
    peep = any(layer.P is not None for layer in layers)
    config = ModelConfig(
        kind=op,
        mode=mode,
        input_size=int(I),
        hidden_size=int(H),
        num_layers=len(layers),
        bidirectional=D == 2,
        bias=bias,
        batch_first=bool(attrs.layout == 1 if batch_first is None else batch_first),
        reverse=attrs.direction == "reverse",
        linear_before_reset=attrs.linear_before_reset if op == "GRU" else True,
        peepholes=peep,
        input_forget=attrs.input_forget,
        clip=attrs.clip,
        activations=acts,
    )
    problem = config.problem()
    if problem:
        raise BadFile(label_file, f"{part.describe()}: {problem}")

    def rows(a):  # (G·H, …) in ONNX's gate order → torch's
        return np.ascontiguousarray(np.concatenate([a[k * H : (k + 1) * H] for k in order]))

    weights = {}
    for k, layer in enumerate(layers):
        for d in range(D):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            weights["weight_ih" + sfx] = rows(layer.W[d])
            weights["weight_hh" + sfx] = rows(layer.R[d])
            if bias:
                b = layer.B[d] if layer.B is not None else np.zeros(2 * G * H, np.float32)
                weights["bias_ih" + sfx] = rows(b[: G * H])
                weights["bias_hh" + sfx] = rows(b[G * H :])
            if peep:
                p = layer.P[d] if layer.P is not None else np.zeros(3 * H, np.float32)
                weights["weight_peep" + sfx] = np.concatenate([p[:H], p[2 * H :], p[H : 2 * H]])
    if config.parameter_count() > MAX_PARAMETERS:  # problem() said so already; belt and braces
        raise BadFile(label_file, f"{config.describe()} has too many weights")
    return config, {k: weights[k] for k in config.parameter_shapes()}


def _defaults_check(activation_defaults) -> None:
    if activation_defaults not in (None, "onnx", "onnxruntime"):
        raise ValueError(
            "activation_defaults must be None, 'onnx' or 'onnxruntime', got "
            f"{activation_defaults!r}"
        )


def parts(source, *, merge: bool = True) -> list:
    """The recurrent parts of an ONNX model (a path, bytes or an onnx.ModelProto), in
    graph order (main graph first): a list of Part. merge=False: one part per node."""
    model, _, _ = _model_load(source)
    return _parts_find(model, merge)


def _part_layers(source, node, merge, activation_defaults):
    _defaults_check(activation_defaults)
    model, label, base = _model_load(source)
    part = _select(_parts_find(model, merge), node, label)
    folder = _Folder(_opset(model), base)
    return part, _layers_read(part, folder, label, activation_defaults), label


def read(
    source,
    *,
    node: str | None = None,
    merge: bool = True,
    batch_first: bool | None = None,
    activation_defaults: str | None = None,
) -> tuple[ModelConfig, dict]:
    """(ModelConfig, weights under torch's key names in torch's gate order) of one recurrent
    part of an ONNX model; `fastrnn.build(config, weights)` makes the model.

    source: a path, the model's bytes, or an onnx.ModelProto (external data needs the path).
    node: which part, by a node name or an output name (Y, Y_h, Y_c of any of its nodes);
        None: the model must hold exactly one part (else the ValueError lists them).
    merge: join exporter-split stacks into one multi-layer model (True), or read one node
        (False; node= then names the layer).
    batch_first: the model's input layout; None: as the node's layout attribute (1 → True).
        (A torch batch_first model exports as layout 0 with Transposes around the stack:
        batch_first=True gives back torch's calling convention.)
    activation_defaults: for activation parameters the file leaves out where ONNX's
        operator defaults and onnxruntime's differ (ThresholdedRelu, Affine, ScaledTanh):
        "onnx" or "onnxruntime"; None refuses such a file.

    The call-time inputs (x, state, lengths) and outputs are in the module docstring. A file
    that is not ONNX, a part fastrnn cannot map (attribute, non-constant weights, shapes) is
    a ValueError naming the node and what is wrong. Nothing from the file is executed.
    """
    part, layers, label = _part_layers(source, node, merge, activation_defaults)
    return _config_weights(part, layers, label, batch_first)


# --- the part as a standalone model (what `fastrnn verify` runs onnxruntime on) ---------------


def reference_model(
    source,
    *,
    node: str | None = None,
    merge: bool = True,
    activation_defaults: str | None = None,
):
    """The selected part as a standalone onnx.ModelProto with fastrnn's call signature:
    the file's own recurrent nodes (their attributes as in the file, but layout 0, as
    onnxruntime runs no layout=1, and activation names in the spec's spelling) with their
    weights folded into initializers, joined by Transpose + Reshape. Inputs: x (T, B, I) float32 time-major, h_0 (L·D, B, H) [, c_0]
    float32, lengths (B,) int32; outputs: y (T, B, D·H), h_n [, c_n] (L·D, B, H) — the
    meaning of a fastrnn model's call with batch_first=False. onnxruntime runs it as the
    oracle of `fastrnn verify` (an independent evaluation of the same nodes)."""
    onnx = _onnx()
    helper, nh = onnx.helper, onnx.numpy_helper
    part, layers, _ = _part_layers(source, node, merge, activation_defaults)
    lstm = part.op == "LSTM"
    D = layers[0].attrs.num_directions
    H = layers[0].R.shape[2]
    L = len(layers)
    F = onnx.TensorProto.FLOAT
    nodes, inits = [], []
    value = "x"

    def const(name, array):
        inits.append(nh.from_array(np.asarray(array), name))
        return name

    for k, layer in enumerate(layers):
        ins = [value, const(f"W{k}", layer.W), const(f"R{k}", layer.R)]
        ins.append(const(f"B{k}", layer.B) if layer.B is not None else "")
        ins.append("lengths")
        ranges = (const(f"s{k}", [k * D]), const(f"e{k}", [(k + 1) * D]), const(f"a{k}", [0]))
        nodes.append(helper.make_node("Slice", ["h_0", *ranges], [f"h0_{k}"]))
        ins.append(f"h0_{k}")
        if lstm:
            nodes.append(helper.make_node("Slice", ["c_0", *ranges], [f"c0_{k}"]))
            ins.append(f"c0_{k}")
            ins.append(const(f"P{k}", layer.P) if layer.P is not None else "")
        outs = [f"Y{k}", f"Yh{k}"] + ([f"Yc{k}"] if lstm else [])
        attrs = [
            a
            for a in layer.node.attribute
            if a.name not in ("layout", "output_sequence", "activations")
        ]
        n = helper.make_node(part.op, ins, outs, name=layer.node.name or f"layer{k}")
        n.attribute.extend(attrs)
        if any(a.name == "activations" for a in layer.node.attribute):
            # The spec's spelling (onnxruntime's RNN, unlike its LSTM and GRU, refuses
            # "relu"); the alpha / beta lists stay as in the file.
            n.attribute.append(
                helper.make_attribute("activations", [t[0] for t in layer.attrs.activations])
            )
        nodes.append(n)
        nodes.append(helper.make_node("Transpose", [f"Y{k}"], [f"Yt{k}"], perm=[0, 2, 1, 3]))
        value = "y" if k == L - 1 else f"X{k + 1}"
        nodes.append(
            helper.make_node("Reshape", [f"Yt{k}", const(f"shape{k}", [0, 0, -1])], [value])
        )
    nodes.append(helper.make_node("Concat", [f"Yh{k}" for k in range(L)], ["h_n"], axis=0))
    if lstm:
        nodes.append(helper.make_node("Concat", [f"Yc{k}" for k in range(L)], ["c_n"], axis=0))
    inputs = [
        helper.make_tensor_value_info("x", F, ["T", "B", layers[0].W.shape[2]]),
        helper.make_tensor_value_info("h_0", F, [L * D, "B", H]),
    ]
    if lstm:
        inputs.append(helper.make_tensor_value_info("c_0", F, [L * D, "B", H]))
    inputs.append(helper.make_tensor_value_info("lengths", onnx.TensorProto.INT32, ["B"]))
    outputs = [
        helper.make_tensor_value_info("y", F, ["T", "B", D * H]),
        helper.make_tensor_value_info("h_n", F, [L * D, "B", H]),
    ]
    if lstm:
        outputs.append(helper.make_tensor_value_info("c_n", F, [L * D, "B", H]))
    graph = helper.make_graph(nodes, "fastrnn_reference", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
