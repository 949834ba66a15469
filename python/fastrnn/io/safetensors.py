"""safetensors files: a reader that checks everything before it reads a weight, and the
fastrnn file writer.

A fastrnn file is a safetensors file: the weights under torch's key names (float32), the
configuration in the header's metadata (all strings; see ModelConfig.to_metadata and
docs/serving.md):

    format="fastrnn", format_version="1", class="LSTM"|"GRU"|"RNN"|"LSTMCell"|"GRUCell"|
    "RNNCell", mode="LSTM"|"GRU"|"RNN_TANH"|"RNN_RELU", input_size, hidden_size, num_layers,
    proj_size (decimal), bidirectional, bias, batch_first ("true"|"false"), nonlinearity
    ("tanh"|"relu", RNN and RNNCell only), fastrnn_version (informational).

Reading one needs numpy only: the header is parsed and checked here, before any weight is
read — the header length against the file size, JSON without duplicate keys, every tensor's
dtype (F32, F16, BF16, F64; converted to float32), shape and byte range (inside the file,
no overlap, no gap), the metadata's values, and every key and shape against the
configuration. So a corrupted, truncated or inconsistent file is a ValueError naming the
file and the problem, and nothing is allocated beyond what the file really holds. A
safetensors file without fastrnn's metadata is a torch state_dict: its configuration comes
from the key names (fastrnn.io.keys).
"""

from __future__ import annotations

import json
import os
import threading

import numpy as np

from .._checks import MAX_SIZE, shape_text
from .._config import FORMAT, ModelConfig
from .._quantize import INT_TOP, is_matrix, stored
from .base import BadFile
from .keys import config_infer, hints_apply, keys_check, prefix_select

# safetensors' own limit on the JSON header.
MAX_HEADER = 100 << 20

# safetensors dtype → (numpy dtype of the stored bytes, bytes per element).
DTYPES = {
    "F32": (np.dtype("<f4"), 4),
    "F16": (np.dtype("<f2"), 2),
    "F64": (np.dtype("<f8"), 8),
    "BF16": (np.dtype("<u2"), 2),  # the top half of a float32: widened exactly below
    "I8": (np.dtype("i1"), 1),  # an int8 model's matrices, with their ".scale" rows
}


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate keys {dup}")
    return dict(pairs)


def header_read(f, path, size: int):
    """Parses and checks a safetensors header. Returns ({name: (dtype, shape, begin, end)},
    metadata, data_start); byte ranges are relative to data_start and checked against the
    file's size."""
    if size < 8:
        raise BadFile(path, f"is {size} bytes long: too short for a safetensors file")
    n = int.from_bytes(f.read(8), "little")
    if n > size - 8 or n > MAX_HEADER:
        raise BadFile(
            path,
            f"declares a {n}-byte header but holds {size - 8} bytes after the "
            "length field: truncated, or not a safetensors file",
        )
    raw = f.read(n)
    if len(raw) != n:
        raise BadFile(path, "changed while being read")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise BadFile(path, f"header is not valid JSON ({e})") from None
    except RecursionError:  # json's decoder recurses once per nesting level
        raise BadFile(path, "header is not valid JSON (nested too deeply)") from None
    if not isinstance(header, dict):
        raise BadFile(path, f"header must be a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise BadFile(path, "header __metadata__ must map strings to strings")
    data_size = size - 8 - n
    entries = {}
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise BadFile(
                path,
                f"tensor {name!r} must have exactly dtype, shape and data_offsets, got {e!r:.200}",
            )
        dtype, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
        if dtype not in DTYPES:
            raise BadFile(
                path, f"tensor {name!r} has dtype {dtype!r}; fastrnn reads {', '.join(DTYPES)}"
            )
        if (
            not isinstance(shape, list)
            or len(shape) > 8
            or not all(type(d) is int and 0 <= d <= MAX_SIZE for d in shape)
        ):
            raise BadFile(
                path,
                f"tensor {name!r} has shape {shape!r:.200}; expected at most "
                f"8 sizes in [0, {MAX_SIZE}]",
            )
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
        ):
            raise BadFile(
                path, f"tensor {name!r} has data_offsets {offsets!r:.200}; expected [begin, end]"
            )
        begin, end = offsets
        nbytes = int(np.prod(shape, dtype=object)) * DTYPES[dtype][1]
        if not 0 <= begin <= end <= data_size:
            raise BadFile(
                path,
                f"tensor {name!r} has bytes [{begin}, {end}) outside the "
                f"{data_size}-byte data section: truncated or corrupted",
            )
        if end - begin != nbytes:
            raise BadFile(
                path,
                f"tensor {name!r} has shape {shape_text(shape)} {dtype} "
                f"({nbytes} bytes) but {end - begin} bytes of data",
            )
        entries[name] = (dtype, tuple(shape), begin, end)
    covered = 0
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda kv: kv[1][2:]):
        if begin != covered:
            raise BadFile(
                path,
                f"tensor {name!r} starts at byte {begin}, expected {covered}: "
                "tensors overlap or leave a gap",
            )
        covered = end
    if covered != data_size:
        raise BadFile(
            path,
            f"tensors cover {covered} bytes of a {data_size}-byte data "
            "section: trailing bytes or a corrupted header",
        )
    return entries, metadata, 8 + n


def tensor_read(f, path, name: str, entry, data_start: int) -> np.ndarray:
    dtype, shape, begin, end = entry
    f.seek(data_start + begin)
    buf = f.read(end - begin)
    if len(buf) != end - begin:
        raise BadFile(path, f"tensor {name!r}: file ended early")
    a = np.frombuffer(buf, DTYPES[dtype][0]).reshape(shape)
    if dtype == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def read(f, path, size: int, *, mode, batch_first, nonlinearity, prefix):
    """(ModelConfig, weights under torch's key names) from an open safetensors file of
    `size` bytes: a fastrnn file's stored configuration, or one inferred from the keys."""
    entries, metadata, data_start = header_read(f, path, size)
    if metadata.get("format") == FORMAT:
        try:
            config = ModelConfig.from_metadata(metadata)
        except ValueError as e:
            raise BadFile(path, str(e)) from None
        names = {k: k for k in entries}
    else:
        names = prefix_select(path, list(entries), prefix)
        config = config_infer(
            path, {k: entries[v][1] for k, v in names.items()}, mode, nonlinearity
        )
    config = hints_apply(os.fspath(path), config, mode, nonlinearity, batch_first)
    scales = {k: v for k, v in names.items() if k.endswith(".scale")}
    top = INT_TOP.get(config.dtype)
    if top is None and scales:
        raise BadFile(path, f"holds scales {sorted(scales)[:3]} but is not an int8 model")
    names = {k: v for k, v in names.items() if k not in scales}
    keys_check(path, config, {k: entries[v][1] for k, v in names.items()})
    weights = {}
    for k in config.parameter_shapes():  # in torch's order, whatever the file's
        entry = entries[names[k]]
        want = _stored_dtype(config.dtype, k)
        if want is None and entry[0] == "I8":
            raise BadFile(
                path,
                f"tensor {k!r} has dtype 'I8'; fastrnn reads F32, F16, F64, BF16 "
                "(I8 only for an int8 or int7 model's weight matrices)",
            )
        if want is not None and entry[0] != want:
            raise BadFile(
                path, f"tensor {k!r} of a {config.dtype} model must be {want}, got {entry[0]}"
            )
        weights[k] = tensor_read(f, path, names[k], entry, data_start)
        if top is not None and is_matrix(k):
            weights[k] = _int8_read(
                f, path, k, entry, entries.get(scales.get(k + ".scale")), data_start, top
            )
    if len(scales) != sum(top is not None and is_matrix(k) for k in weights):
        extra = sorted(set(scales) - {k + ".scale" for k in weights})
        raise BadFile(path, f"holds scales without a matrix: {extra[:3]}")
    return config, weights


def _stored_dtype(dtype: str, key: str) -> str | None:
    """The safetensors dtype a reduced model's file must hold `key` in (None: any float)."""
    if dtype == "float32" or not is_matrix(key):
        return None
    return "BF16" if dtype == "bf16" else "I8"


def _int8_read(f, path, key: str, entry, scale_entry, data_start: int, top: int) -> np.ndarray:
    """An int8 matrix (values in [-top, top]: 127 for int8, 63 for int7) times its per-row
    scales (key + ".scale", F32 (rows,), finite, ≥ 0)."""
    rows = entry[1][0]
    if scale_entry is None:
        raise BadFile(path, f"int8 matrix {key!r} has no {key + '.scale'!r}")
    if scale_entry[0] != "F32" or scale_entry[1] != (rows,):
        raise BadFile(
            path,
            f"{key + '.scale'!r} must be F32 of shape ({rows},), got {scale_entry[0]} "
            f"{shape_text(scale_entry[1])}",
        )
    q = tensor_read(f, path, key, entry, data_start)
    s = tensor_read(f, path, key + ".scale", scale_entry, data_start)
    if (q < -top).any() or (q > top).any():
        bad = int(q[(q < -top) | (q > top)][0])
        raise BadFile(path, f"int8 matrix {key!r} holds {bad}; values must be in [-{top}, {top}]")
    if not (np.isfinite(s).all() and (s >= 0).all()):
        raise BadFile(path, f"{key + '.scale'!r} must be finite and >= 0")
    return (q * s[:, None]).astype(np.float32)


# numpy dtype → safetensors dtype of the arrays serialize writes (uint16: bf16 bits).
_WRITE_DTYPES = {np.dtype("<f4"): "F32", np.dtype("<u2"): "BF16", np.dtype("i1"): "I8"}


def serialize(tensors: dict, metadata: dict) -> bytes:
    """A safetensors file's bytes: the JSON header (padded with spaces to 8 bytes), then the
    tensors' little-endian bytes in the header's order."""
    header, chunks, offset = {"__metadata__": metadata}, [], 0
    for key, a in tensors.items():
        a = np.ascontiguousarray(a)
        chunk = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[key] = {
            "dtype": _WRITE_DTYPES[a.dtype.newbyteorder("<")],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + len(chunk)],
        }
        chunks.append(chunk)
        offset += len(chunk)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def write(path, config: ModelConfig, weights: dict, version: str) -> None:
    """Writes a fastrnn file: `weights` (float32 arrays under torch's key names) and
    `config` in the metadata, with `version` as fastrnn_version. Replaces `path`
    atomically; the file gets the permissions of any file the process creates (0666 minus
    the umask)."""
    metadata = config.to_metadata()
    metadata["fastrnn_version"] = version
    path = os.fspath(path)
    tensors = {}
    for key, w in weights.items():
        tensors.update(stored(key, w, config.dtype))
    data = serialize(tensors, metadata)
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
