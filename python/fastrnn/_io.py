"""Model files: save and load.

A fastrnn file is a safetensors file: the weights under torch's key names (float32), the
configuration in the header's metadata (all strings):

    format="fastrnn", format_version="1", class="LSTM"|"GRU"|"RNN"|"LSTMCell"|"GRUCell"|
    "RNNCell", mode="LSTM"|"GRU"|"RNN_TANH"|"RNN_RELU", input_size, hidden_size, num_layers,
    proj_size (decimal), bidirectional, bias, batch_first ("true"|"false"), nonlinearity
    ("tanh"|"relu", RNN and RNNCell only), fastrnn_version (informational).

Reading one needs numpy only: the header is parsed and checked here, before any weight is
read — the header length against the file size, JSON without duplicate keys, every tensor's
dtype (F32, F16, BF16, F64; converted to float32), shape and byte range (inside the file,
no overlap, no gap), the metadata's values, and every key and shape against the
configuration. So a corrupted, truncated or inconsistent file is a ValueError naming the
file and the problem, and nothing is allocated beyond what the file really holds.

load() also reads safetensors files without fastrnn metadata and torch state_dict files
(torch.save; read only through torch.load(weights_only=True), which runs no code from the
file). Their configuration is inferred from the key names and shapes:

- keys `weight_ih_l{k}[_reverse]` → a layer stack (LSTM/GRU/RNN); `weight_ih` → a cell;
- num_layers: 1 + the largest k; bidirectional: `weight_ih_l0_reverse` present;
  bias: `bias_ih_l0` (cells: `bias_ih`) present; input_size: weight_ih_l0's columns;
- proj_size: `weight_hr_l0` present → its rows, hidden_size its columns (LSTM only);
  otherwise hidden_size = weight_hh_l0's columns;
- the cell from weight_hh_l0's rows G: 4·H → LSTM, 3·H → GRU, H → RNN. An RNN's
  nonlinearity is not in the weights: pass mode='RNN_TANH' or 'RNN_RELU' (or
  nonlinearity=). A given mode must agree with the shapes;
- batch_first is not in the weights: False unless given;
- a key prefix ("encoder.rnn.") is found when only one RNN is in the file; other keys
  outside it are ignored. Several RNNs: pass prefix=.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from ._checks import MAX_LAYERS, MAX_PARAMETERS, MAX_SIZE, shape_text, to_numpy
from ._modules import (
    _GATES,
    _NO_WEIGHTS,
    GRU,
    LSTM,
    RNN,
    GRUCell,
    LSTMCell,
    RNNCell,
    _CellBase,
    parameter_count,
    parameter_shapes,
)

FORMAT = "fastrnn"
FORMAT_VERSION = 1

# Bounds on sizes read from a file, the same the constructors and the compiled core
# enforce: 2^24 features and 4096 layers are far beyond any RNN and keep every derived size
# well inside 64 bits (see fastrnn._checks).
_MAX_SIZE = MAX_SIZE
_MAX_LAYERS = MAX_LAYERS
# safetensors' own limit on the JSON header.
_MAX_HEADER = 100 << 20

# safetensors dtype → (numpy dtype of the stored bytes, bytes per element).
_DTYPES = {
    "F32": (np.dtype("<f4"), 4),
    "F16": (np.dtype("<f2"), 2),
    "F64": (np.dtype("<f8"), 8),
    "BF16": (np.dtype("<u2"), 2),  # the top half of a float32: widened exactly below
}

_CLASSES = {
    "LSTM": LSTM,
    "GRU": GRU,
    "RNN": RNN,
    "LSTMCell": LSTMCell,
    "GRUCell": GRUCell,
    "RNNCell": RNNCell,
}
_CLASS_OF_MODE = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN", "RNN_RELU": "RNN"}

# torch.save's formats: a zip archive, or (legacy) a pickle starting with its magic number.
_TORCH_MAGICS = (b"PK\x03\x04", b"\x80\x02\x8a\x0a")


class _BadFile(ValueError):
    def __init__(self, path, problem: str) -> None:
        super().__init__(f"{os.fspath(path)}: {problem}")


# --- configuration --------------------------------------------------------------------------


def _class_name(model) -> str:
    for name, cls in _CLASSES.items():
        if isinstance(model, cls):
            return name
    raise TypeError(f"save expects a fastrnn LSTM, GRU, RNN or cell, got {type(model).__name__}")


def config_of(model) -> dict:
    """The configuration of a fastrnn model as a plain dict (the file's metadata, typed)."""
    cls = _class_name(model)
    layer = model._layer if isinstance(model, _CellBase) else model
    return {
        "class": cls,
        "mode": layer.mode,
        "input_size": layer.input_size,
        "hidden_size": layer.hidden_size,
        "num_layers": layer.num_layers,
        "bidirectional": layer.bidirectional,
        "proj_size": layer.proj_size,
        "bias": layer.bias,
        "batch_first": layer.batch_first,
    }


def _expected_shapes(cfg: dict) -> dict[str, tuple]:
    shapes = parameter_shapes(
        cfg["mode"],
        cfg["input_size"],
        cfg["hidden_size"],
        cfg["num_layers"],
        cfg["bidirectional"],
        cfg["proj_size"],
        cfg["bias"],
    )
    if cfg["class"].endswith("Cell"):
        return {k[: -len("_l0")]: v for k, v in shapes.items()}
    return shapes


def _describe(cfg: dict) -> str:
    parts = [f"{cfg['input_size']}, {cfg['hidden_size']}"]
    if cfg["num_layers"] != 1:
        parts.append(f"num_layers={cfg['num_layers']}")
    if cfg["mode"] == "RNN_RELU":
        parts.append("nonlinearity='relu'")
    if not cfg["bias"]:
        parts.append("bias=False")
    if cfg["bidirectional"]:
        parts.append("bidirectional=True")
    if cfg["proj_size"]:
        parts.append(f"proj_size={cfg['proj_size']}")
    return f"{cfg['class']}({', '.join(parts)})"


def _check_config(path, cfg: dict) -> None:
    """Sizes positive and bounded, options that fit together; before anything is allocated."""
    for key, low, high in (
        ("input_size", 1, _MAX_SIZE),
        ("hidden_size", 1, _MAX_SIZE),
        ("num_layers", 1, _MAX_LAYERS),
        ("proj_size", 0, _MAX_SIZE),
    ):
        if not low <= cfg[key] <= high:
            raise _BadFile(path, f"{key} must be in [{low}, {high}], got {cfg[key]}")
    if cfg["proj_size"] and (cfg["mode"] != "LSTM" or cfg["proj_size"] >= cfg["hidden_size"]):
        raise _BadFile(
            path,
            f"proj_size={cfg['proj_size']} needs an LSTM with hidden_size > proj_size, "
            f"got mode {cfg['mode']} with hidden_size={cfg['hidden_size']}",
        )
    if cfg["class"].endswith("Cell"):
        fixed = {"num_layers": 1, "bidirectional": False, "proj_size": 0, "batch_first": False}
        for key, value in fixed.items():
            if cfg[key] != value:
                raise _BadFile(path, f"a {cfg['class']} must have {key}={value}, got {cfg[key]}")
    count = parameter_count(_expected_shapes(cfg))
    if count > MAX_PARAMETERS:
        raise _BadFile(
            path, f"{_describe(cfg)} would have {count} weights; fastrnn reads at most 2^32"
        )


def _resolve_mode(path, hidden: int, rows: int, where: str, mode, nonlinearity) -> str:
    """The cell type from the gate rows (rows = gates·hidden) and the caller's hints."""
    if nonlinearity is not None and nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    if mode is not None:
        if mode not in _GATES:
            raise ValueError(f"mode must be one of {sorted(_GATES)}, got {mode!r}")
        if _GATES[mode] * hidden != rows:
            raise _BadFile(
                path,
                f"mode={mode!r} needs {_GATES[mode]}·hidden_size = {_GATES[mode] * hidden} "
                f"rows in {where}, the file has {rows} (hidden_size={hidden})",
            )
        if (
            nonlinearity is not None
            and mode in ("RNN_TANH", "RNN_RELU")
            and mode != ("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU")
        ):
            raise ValueError(f"mode={mode!r} contradicts nonlinearity={nonlinearity!r}")
        return mode
    if rows == 4 * hidden:
        return "LSTM"
    if rows == 3 * hidden:
        return "GRU"
    if rows == hidden:
        if nonlinearity is None:
            raise _BadFile(
                path,
                "holds an RNN, whose nonlinearity is not stored in its weights: pass "
                "mode='RNN_TANH' or mode='RNN_RELU' (or nonlinearity='tanh'/'relu')",
            )
        return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
    raise _BadFile(
        path,
        f"{where} has {rows} rows for hidden_size {hidden}: not 4·H (LSTM), 3·H (GRU) or H (RNN)",
    )


def _infer_config(path, shapes: dict[str, tuple], mode, nonlinearity) -> dict:
    """The configuration of a torch state_dict (keys without prefix) from names and shapes."""

    def matrix(key: str) -> tuple:
        if key not in shapes:
            raise _BadFile(path, f"missing key {key!r}")
        s = shapes[key]
        if len(s) != 2 or not all(1 <= d <= _MAX_SIZE for d in s):
            raise _BadFile(
                path,
                f"{key!r} must be a matrix with sizes in [1, {_MAX_SIZE}], "
                f"got shape {shape_text(s)}",
            )
        return s

    cell = "weight_ih" in shapes
    sfx = "" if cell else "_l0"
    w_ih, w_hh = matrix("weight_ih" + sfx), matrix("weight_hh" + sfx)
    if not cell and "weight_hr_l0" in shapes:
        proj, hidden = matrix("weight_hr_l0")
        if w_hh[1] != proj:
            raise _BadFile(
                path,
                f"weight_hh_l0 has {w_hh[1]} columns, weight_hr_l0 {proj} rows: "
                "they must be equal (proj_size)",
            )
    else:
        proj, hidden = 0, w_hh[1]
    if proj and mode is None:
        mode = "LSTM"  # only an LSTM has a projection
    mode = _resolve_mode(path, hidden, w_hh[0], "weight_hh" + sfx, mode, nonlinearity)
    layers = 1
    if not cell:
        # At most 9 digits: a longer number is no layer index (and int() of thousands of
        # digits is slow or refused); such keys are then reported as unexpected.
        numbers = [
            int(m.group(1)) for k in shapes if (m := re.fullmatch(r"weight_ih_l(\d{1,9})", k))
        ]
        layers = max(numbers) + 1
        if layers > _MAX_LAYERS:
            raise _BadFile(path, f"num_layers must be in [1, {_MAX_LAYERS}], got {layers}")
    return {
        "class": _CLASS_OF_MODE[mode] + ("Cell" if cell else ""),
        "mode": mode,
        "input_size": w_ih[1],
        "hidden_size": hidden,
        "num_layers": layers,
        "bidirectional": not cell and "weight_ih_l0_reverse" in shapes,
        "proj_size": proj,
        "bias": ("bias_ih" + sfx) in shapes,
        "batch_first": False,
    }


def _config_from_metadata(path, md: dict) -> dict:
    def get(key: str) -> str:
        if key not in md:
            raise _BadFile(path, f"metadata lacks {key!r}")
        return md[key]

    def integer(key: str) -> int:
        text = get(key)
        # Range checks follow in _check_config; 30 digits keep int() trivially cheap.
        if not re.fullmatch(r"[0-9]{1,30}", text):
            raise _BadFile(
                path, f"metadata {key} must be a non-negative integer, got {text!r:.100}"
            )
        return int(text)

    def boolean(key: str) -> bool:
        text = get(key)
        if text not in ("true", "false"):
            raise _BadFile(path, f"metadata {key} must be 'true' or 'false', got {text!r}")
        return text == "true"

    version = get("format_version")
    if not re.fullmatch(r"[0-9]{1,9}", version):
        raise _BadFile(path, f"metadata format_version must be an integer, got {version!r}")
    if int(version) > FORMAT_VERSION:
        raise _BadFile(
            path,
            f"was written in format_version {version} by a newer fastrnn; "
            f"this one reads format_version {FORMAT_VERSION}: upgrade fastrnn",
        )
    cls, mode = get("class"), get("mode")
    if cls not in _CLASSES:
        raise _BadFile(path, f"metadata class must be one of {list(_CLASSES)}, got {cls!r}")
    if mode not in _GATES or _CLASS_OF_MODE[mode] != cls.removesuffix("Cell"):
        raise _BadFile(path, f"metadata mode {mode!r} does not fit class {cls!r}")
    if "nonlinearity" in md:
        expected = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}.get(mode)
        if md["nonlinearity"] != expected:
            raise _BadFile(
                path, f"metadata nonlinearity {md['nonlinearity']!r} does not fit mode {mode!r}"
            )
    cfg = {
        "class": cls,
        "mode": mode,
        "input_size": integer("input_size"),
        "hidden_size": integer("hidden_size"),
        "num_layers": integer("num_layers"),
        "bidirectional": boolean("bidirectional"),
        "proj_size": integer("proj_size"),
        "bias": boolean("bias"),
        "batch_first": boolean("batch_first"),
    }
    _check_config(path, cfg)
    return cfg


def _short(keys: list) -> str:
    """A list of keys for a message, cut at 500 characters (a file may hold huge names)."""
    text = repr(keys)
    return text if len(text) <= 500 else text[:500] + "...]"


def _check_keys(path, cfg: dict, shapes: dict[str, tuple]) -> None:
    expected = _expected_shapes(cfg)
    missing = [k for k in expected if k not in shapes]
    extra = [k for k in shapes if k not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing keys {_short(missing)}")
        if extra:
            parts.append(f"unexpected keys {_short(extra)}")
        raise _BadFile(path, f"{' and '.join(parts)} for {_describe(cfg)}")
    for key, shape in expected.items():
        if tuple(shapes[key]) != shape:
            raise _BadFile(
                path,
                f"{key!r} has shape {shape_text(shapes[key])}, expected "
                f"{shape_text(shape)} for {_describe(cfg)}",
            )


def _build(cfg: dict, weights: dict):
    cls = _CLASSES[cfg["class"]]
    I, H, bias = cfg["input_size"], cfg["hidden_size"], cfg["bias"]
    nonlinearity = "relu" if cfg["mode"] == "RNN_RELU" else "tanh"
    if cls is RNNCell:
        model = RNNCell(I, H, bias, nonlinearity, seed=_NO_WEIGHTS)
    elif cls in (LSTMCell, GRUCell):
        model = cls(I, H, bias, seed=_NO_WEIGHTS)
    else:
        kw = {
            "bias": bias,
            "batch_first": cfg["batch_first"],
            "bidirectional": cfg["bidirectional"],
            "seed": _NO_WEIGHTS,
        }
        if cls is LSTM:
            kw["proj_size"] = cfg["proj_size"]
        elif cls is RNN:
            kw["nonlinearity"] = nonlinearity
        model = cls(I, H, cfg["num_layers"], **kw)
    model.load_state_dict(weights)
    return model


# --- safetensors ------------------------------------------------------------------------------


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate keys {dup}")
    return dict(pairs)


def _read_header(f, path, size: int):
    """Parses and checks a safetensors header. Returns ({name: (dtype, shape, begin, end)},
    metadata, data_start); byte ranges are relative to data_start and checked against the
    file's size."""
    if size < 8:
        raise _BadFile(path, f"is {size} bytes long: too short for a safetensors file")
    n = int.from_bytes(f.read(8), "little")
    if n > size - 8 or n > _MAX_HEADER:
        raise _BadFile(
            path,
            f"declares a {n}-byte header but holds {size - 8} bytes after the "
            "length field: truncated, or not a safetensors file",
        )
    raw = f.read(n)
    if len(raw) != n:
        raise _BadFile(path, "changed while being read")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise _BadFile(path, f"header is not valid JSON ({e})") from None
    except RecursionError:  # json's decoder recurses once per nesting level
        raise _BadFile(path, "header is not valid JSON (nested too deeply)") from None
    if not isinstance(header, dict):
        raise _BadFile(path, f"header must be a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _BadFile(path, "header __metadata__ must map strings to strings")
    data_size = size - 8 - n
    entries = {}
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise _BadFile(
                path,
                f"tensor {name!r} must have exactly dtype, shape and data_offsets, got {e!r:.200}",
            )
        dtype, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
        if dtype not in _DTYPES:
            raise _BadFile(
                path, f"tensor {name!r} has dtype {dtype!r}; fastrnn reads {', '.join(_DTYPES)}"
            )
        if (
            not isinstance(shape, list)
            or len(shape) > 8
            or not all(type(d) is int and 0 <= d <= _MAX_SIZE for d in shape)
        ):
            raise _BadFile(
                path,
                f"tensor {name!r} has shape {shape!r:.200}; expected at most "
                f"8 sizes in [0, {_MAX_SIZE}]",
            )
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
        ):
            raise _BadFile(
                path, f"tensor {name!r} has data_offsets {offsets!r:.200}; expected [begin, end]"
            )
        begin, end = offsets
        nbytes = int(np.prod(shape, dtype=object)) * _DTYPES[dtype][1]
        if not 0 <= begin <= end <= data_size:
            raise _BadFile(
                path,
                f"tensor {name!r} has bytes [{begin}, {end}) outside the "
                f"{data_size}-byte data section: truncated or corrupted",
            )
        if end - begin != nbytes:
            raise _BadFile(
                path,
                f"tensor {name!r} has shape {shape_text(shape)} {dtype} "
                f"({nbytes} bytes) but {end - begin} bytes of data",
            )
        entries[name] = (dtype, tuple(shape), begin, end)
    covered = 0
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda kv: kv[1][2:]):
        if begin != covered:
            raise _BadFile(
                path,
                f"tensor {name!r} starts at byte {begin}, expected {covered}: "
                "tensors overlap or leave a gap",
            )
        covered = end
    if covered != data_size:
        raise _BadFile(
            path,
            f"tensors cover {covered} bytes of a {data_size}-byte data "
            "section: trailing bytes or a corrupted header",
        )
    return entries, metadata, 8 + n


def _read_tensor(f, path, name: str, entry, data_start: int) -> np.ndarray:
    dtype, shape, begin, end = entry
    f.seek(data_start + begin)
    buf = f.read(end - begin)
    if len(buf) != end - begin:
        raise _BadFile(path, f"tensor {name!r}: file ended early")
    a = np.frombuffer(buf, _DTYPES[dtype][0]).reshape(shape)
    if dtype == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def _load_safetensors(f, path, size: int, mode, batch_first, nonlinearity, prefix):
    entries, metadata, data_start = _read_header(f, path, size)
    if metadata.get("format") == FORMAT:
        cfg = _config_from_metadata(path, metadata)
        if mode is not None and mode != cfg["mode"]:
            raise ValueError(
                f"{os.fspath(path)}: holds a {cfg['mode']} model, mode={mode!r} was given"
            )
        if nonlinearity is not None and cfg["mode"] != {"tanh": "RNN_TANH", "relu": "RNN_RELU"}.get(
            nonlinearity
        ):
            raise ValueError(
                f"{os.fspath(path)}: holds a {cfg['mode']} model, "
                f"nonlinearity={nonlinearity!r} was given"
            )
        names = {k: k for k in entries}
    else:
        names = _select(path, list(entries), prefix)
        cfg = _infer_config(path, {k: entries[v][1] for k, v in names.items()}, mode, nonlinearity)
        _check_config(path, cfg)
    if batch_first is not None and not cfg["class"].endswith("Cell"):
        cfg["batch_first"] = bool(batch_first)
    _check_keys(path, cfg, {k: entries[v][1] for k, v in names.items()})
    weights = {k: _read_tensor(f, path, v, entries[v], data_start) for k, v in names.items()}
    return _build(cfg, weights)


# --- torch files ------------------------------------------------------------------------------


def _select(path, names: list, prefix) -> dict[str, str]:
    """{key without prefix: key in the file} for the one RNN in the file."""
    if prefix is None:
        found = sorted(
            {m.group(1) for k in names if (m := re.fullmatch(r"((?:.*\.)?)weight_ih(?:_l0)?", k))}
        )
        if not found:
            raise _BadFile(path, "holds no RNN weights: no key ends in weight_ih_l0 or weight_ih")
        if len(found) > 1:
            raise _BadFile(
                path,
                f"holds several RNNs (key prefixes {_short(found)}): pass prefix= to choose one",
            )
        prefix = found[0]
    selected = {k[len(prefix) :]: k for k in names if k.startswith(prefix)}
    if not selected:
        raise _BadFile(path, f"has no key starting with prefix {prefix!r}")
    return selected


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
    raise _BadFile(
        path, f"holds a {type(obj).__name__}, not a state_dict (a mapping of names to tensors)"
    )


def _load_torch(path, mode, batch_first, nonlinearity, prefix):
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
        raise _BadFile(
            path, f"torch.load(weights_only=True) failed: {type(e).__name__}: {str(e)[:300]}"
        ) from None
    sd = _torch_state_dict(path, obj)
    names = _select(path, list(sd), prefix)
    elements = 0
    for v in names.values():
        t = sd[v]
        if not t.is_floating_point():
            raise _BadFile(path, f"{v!r} has dtype {t.dtype}; weights must be floating point")
        if t.layout is not torch.strided or t.device.type != "cpu":
            raise _BadFile(
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
        raise _BadFile(
            path,
            f"its weights declare {elements} elements but the file holds {size} bytes: "
            "broadcast (expanded) or overlapping tensor views; save dense tensors "
            "(tensor.contiguous()) instead",
        )
    shapes = {k: tuple(sd[v].shape) for k, v in names.items()}
    cfg = _infer_config(path, shapes, mode, nonlinearity)
    _check_config(path, cfg)
    if batch_first is not None and not cfg["class"].endswith("Cell"):
        cfg["batch_first"] = bool(batch_first)
    _check_keys(path, cfg, shapes)
    return _build(cfg, {k: to_numpy(sd[v], k) for k, v in names.items()})


# --- public -------------------------------------------------------------------------------------


def save(model, path) -> None:
    """Writes a fastrnn file (see the module docstring); replaces `path` atomically. The file
    gets the permissions of any file the process creates (0666 minus the umask)."""
    import threading

    from safetensors.numpy import save as safetensors_bytes

    from . import __version__

    cfg = config_of(model)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "fastrnn_version": __version__,
    }
    for key, value in cfg.items():
        metadata[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if cfg["mode"] in ("RNN_TANH", "RNN_RELU"):
        metadata["nonlinearity"] = "tanh" if cfg["mode"] == "RNN_TANH" else "relu"
    path = os.fspath(path)
    data = safetensors_bytes(model.state_dict(), metadata=metadata)
    # Unique per process and thread: concurrent saves to one path each replace it whole.
    # (safetensors' save_file would create the file 0600, unreadable by a serving user.)
    tmp = f"{path}.tmp{os.getpid()}-{threading.get_ident()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(
    path,
    *,
    mode: str | None = None,
    batch_first: bool | None = None,
    nonlinearity: str | None = None,
    prefix: str | None = None,
):
    """A fastrnn model from a file: a fastrnn file (model.save; needs numpy only), a plain
    safetensors state_dict, or a torch state_dict file (torch.save; needs torch, read with
    weights_only=True).

    For files without fastrnn's metadata the configuration is inferred from the key names
    and shapes (see the rules in fastrnn._io); the hints fill in what shapes cannot say:
    mode ('LSTM', 'GRU', 'RNN_TANH', 'RNN_RELU'; must agree with the shapes), nonlinearity
    ('tanh'/'relu', for RNNs), batch_first (default False; for a fastrnn file it overrides
    the stored layout), prefix (the RNN's key prefix when the file holds several).
    A corrupted, truncated or inconsistent file is a ValueError naming the file.
    """
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        magic = f.read(4)
        f.seek(0)
        if magic in _TORCH_MAGICS:
            return _load_torch(path, mode, batch_first, nonlinearity, prefix)
        return _load_safetensors(f, path, size, mode, batch_first, nonlinearity, prefix)
