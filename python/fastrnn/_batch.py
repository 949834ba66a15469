"""Batch inference: `BatchPredictor`, one model per worker of Ray Data, Dask or Spark; and
the streaming readers and writers behind `fastrnn predict` (.npy, .npz, Parquet, Arrow IPC).

Layout everywhere here is **row per sequence**: x (B, T, I) batch-first whatever the model's
own `batch_first`, y (B, T, D·H_out), final states batch-major (B, L·D, H) — so that an
engine's batches, which slice rows, keep each sequence's inputs and results together.

A row's result never depends on the rows it shares a batch with: the kernels choose their
step tile by the whole batch, and from 4 rows on every row gets the same bits (see
_MIN_ROWS); smaller batches are padded up to 4 rows. So an engine may cut the data into
batches any way it likes and the results are bit for bit those of one call over everything.

pyarrow is imported only by the Parquet / Arrow paths, inside the functions that need it:
`import fastrnn` needs numpy and safetensors only.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import secrets
import threading
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

from ._checks import as_lengths, float_array, positive_int, shape_text
from ._quantize import dtype_name, quantize

# --- BatchPredictor ------------------------------------------------------------------------


# The step kernels choose their register tile by the whole batch: 1 to 3 rows take the
# few-row tile, which on AVX-512 splits each recurrent dot product in two chains and so
# rounds differently from the many-row tile (within 2e-6 relative; csrc/kernels/
# kernel-table.h, "many rows (B >= 4)"). A batch smaller than this is padded with rows of
# length 1, so that each row's bits are those of any larger batch (tests/api/test_batch.py
# checks it on every ISA).
_MIN_ROWS = 4

# The columns a predictor adds to a batch.
OUTPUTS = ("y", "h_n", "c_n")


def _sequence_model_check(model, where: str):
    """model if it is an LSTM, GRU or RNN (a sequence model), else a TypeError."""
    import fastrnn

    if isinstance(model, (fastrnn.LSTM, fastrnn.GRU, fastrnn.RNN)):
        return model
    kind = type(model).__name__
    raise TypeError(
        f"{where} must be a fastrnn LSTM, GRU or RNN (a sequence model), or the path of a "
        f"file holding one, got {kind}"
    )


class BatchPredictor:
    """One model applied to batches of sequences: the callable that Ray Data's
    `map_batches`, Dask's `client.map` or Spark's `predict_batch_udf` runs in each worker.

        predict = fastrnn.BatchPredictor("encoder.safetensors")
        out = predict({"x": x, "lengths": lengths})      # out["y"], out["h_n"], out["c_n"]

    model: the path of a model file (anything `fastrnn.load` reads), or a loaded LSTM, GRU
        or RNN. A path is loaded lazily, at the first call (or the first `.model` access), in
        the process that calls: a predictor pickles as its path, so shipping it to a worker
        ships a few bytes, and each worker process loads the file once (loaded models are
        cached per process, by path, size and modification time; at most 4 files). A model
        object pickles with its weights.
    threads: None (default): each call uses the engine's thread budget in the worker, i.e.
        `fastrnn.get_num_threads()` there, which follows OMP_NUM_THREADS (what Ray sets from
        an actor's num_cpus and Dask's nanny sets to 1), the affinity mask and the cgroup
        quota. An int n: every call runs on at most n threads (the model call's
        `num_threads=`), whatever the process budget.
    dtype: None (default): the model's own; "float32", "bf16", "int8" or "int7": the model converted
        with fastrnn.quantize (once per process for a path).

    __call__(batch) takes a mapping of column name → array with
      x: the sequences, either padded, a float array (B, T, I) — batch-first whatever the
         model's batch_first — or variable-length, a list (or object array, as Ray Data
         gives a ragged column) of B arrays (T_i, I);
      lengths (optional, padded x only): (B,) integers in [1, T], each sequence's valid
         steps (a PackedSequence's meaning: outputs past them are zero, states from the
         last valid step);
    and returns the same mapping without x — every other column (ids, lengths) passes
    through unchanged, so rows stay aligned — plus
      y: (B, T, D·H_out) float32, zero past each length; for variable-length x an object
         array of B arrays (T_i, D·H_out);
      h_n: (B, L·D, H_out) float32, batch-major (torch's h_n is h_n.transpose(1, 0, 2));
      c_n: (B, L·D, H) float32, LSTM only.
    An input column named y, h_n or c_n is a ValueError (it would be overwritten). Calls
    are thread-safe. Results are bit for bit those of one model call over all the rows,
    however the rows are batched (see the module's docstring).
    """

    def __init__(self, model, threads: int | None = None, dtype: str | None = None) -> None:
        self._dtype = None if dtype is None else dtype_name(dtype, "BatchPredictor")
        if isinstance(model, (str, os.PathLike)):
            self._path, self._model = os.fspath(model), None
        else:
            self._path, self._model = None, _sequence_model_check(model, "BatchPredictor: model")
            if self._dtype is not None and self._model.dtype != self._dtype:
                self._model = quantize(self._model, self._dtype)
        self._threads = (
            None if threads is None else positive_int(threads, "BatchPredictor: threads")
        )
        self._lock = threading.Lock()

    # --- what it is ----------------------------------------------------------------------

    @property
    def model(self):
        """The model, loaded now if it was given as a path (ValueError naming the file if it
        cannot be used)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = _model_cached(self._path, self._dtype)
        return self._model

    @property
    def threads(self) -> int:
        """The threads one call may use in this process: the explicit count, or the budget."""
        import fastrnn

        return self._threads if self._threads is not None else fastrnn.get_num_threads()

    @property
    def dtype(self) -> str:
        """The model's weight format: the requested one, else the model's own."""
        return self._dtype if self._dtype is not None else self.model.dtype

    def __repr__(self) -> str:
        what = repr(self._path) if self._path is not None else repr(self._model)
        return f"fastrnn.BatchPredictor({what}, threads={self._threads}, dtype={self._dtype!r})"

    def __getstate__(self) -> dict:
        # A path travels as a path (each worker loads it once); a model object with its weights.
        return {
            "path": self._path,
            "model": self._model if self._path is None else None,
            "threads": self._threads,
            "dtype": self._dtype,
        }

    def __setstate__(self, state: dict) -> None:
        self._path, self._model = state["path"], state["model"]
        self._threads, self._dtype = state["threads"], state["dtype"]
        self._lock = threading.Lock()

    # --- inference -----------------------------------------------------------------------

    def __call__(self, batch: Mapping) -> dict:
        if not isinstance(batch, Mapping):
            raise TypeError(
                "BatchPredictor: batch must be a mapping of column name -> array (Ray Data: "
                f'batch_format="numpy"), got {type(batch).__name__}'
            )
        if "x" not in batch:
            raise ValueError(
                f"BatchPredictor: batch must have a column 'x' (the sequences), got columns "
                f"{sorted(map(str, batch))}"
            )
        clash = [k for k in OUTPUTS if k in batch]
        if clash:
            raise ValueError(
                f"BatchPredictor: batch must not have a column named {clash[0]!r}: the "
                f"predictor writes its outputs {OUTPUTS} (rename the input column)"
            )
        x, lengths = batch["x"], batch.get("lengths")
        if _is_ragged(x):
            if lengths is not None:
                raise ValueError(
                    "BatchPredictor: lengths must not be given with variable-length x (a list "
                    "of (T_i, I) arrays): each sequence's length is its own T_i"
                )
            x, steps = self._pad(x)
            y, h_n, c_n = self.predict_padded(x, steps)
            ragged = np.empty(len(steps), dtype=object)
            for i, t in enumerate(steps):
                ragged[i] = y[i, :t].copy()
            y = ragged
        else:
            y, h_n, c_n = self.predict_padded(x, lengths)
        out = {k: v for k, v in batch.items() if k != "x"}
        out["y"], out["h_n"] = y, h_n
        if c_n is not None:
            out["c_n"] = c_n
        return out

    def predict_padded(self, x, lengths=None):
        """(y, h_n, c_n) for a padded batch: x (B, T, I) batch-first, lengths (B,) or None;
        y (B, T, D·H_out), h_n (B, L·D, H_out), c_n (B, L·D, H) or None (not an LSTM), all
        float32 C-contiguous. Errors name the argument, the expected and the actual."""
        model = self.model
        cfg = model.config
        I = cfg.input_size
        x = float_array(x, "BatchPredictor: x")
        if x.ndim != 3 or x.shape[2] != I:
            raise ValueError(
                f"BatchPredictor: x must have shape (B, T, {I}) (batch-first, input_size={I}) "
                f"or be a list of (T_i, {I}) arrays, got {shape_text(x.shape)}"
            )
        B, T = x.shape[0], x.shape[1]
        if T == 0:
            raise ValueError(
                f"BatchPredictor: x must hold at least one time step (T >= 1), got "
                f"{shape_text(x.shape)}"
            )
        lens = None if lengths is None else as_lengths(lengths, B, T, "BatchPredictor: ")
        D = 2 if cfg.bidirectional else 1
        H_out, LD = cfg.proj_size or cfg.hidden_size, cfg.num_layers * D
        if B == 0:
            y = np.zeros((0, T, D * H_out), np.float32)
            h_n = np.zeros((0, LD, H_out), np.float32)
            c_n = np.zeros((0, LD, cfg.hidden_size), np.float32) if cfg.mode == "LSTM" else None
            return y, h_n, c_n
        if B < _MIN_ROWS:
            pad = _MIN_ROWS - B
            x = np.concatenate([np.asarray(x, np.float32), np.zeros((pad, T, I), np.float32)])
            full = lens if lens is not None else np.full(B, T, np.int64)
            lens = np.concatenate([full, np.ones(pad, np.int64)])
        out, state = model(
            x if cfg.batch_first else x.transpose(1, 0, 2),
            lengths=lens,
            num_threads=self._threads,
        )
        h_n, c_n = state if cfg.mode == "LSTM" else (state, None)
        y = out[:B] if cfg.batch_first else out.transpose(1, 0, 2)[:B]
        y = np.ascontiguousarray(y)
        h_n = np.ascontiguousarray(h_n.transpose(1, 0, 2)[:B])
        c_n = None if c_n is None else np.ascontiguousarray(c_n.transpose(1, 0, 2)[:B])
        return y, h_n, c_n

    def _pad(self, seqs):
        """A list of B arrays (T_i, I) → (x (B, T, I) float32 zero-padded, steps (B,))."""
        I = self.model.config.input_size
        seqs = [float_array(s, f"BatchPredictor: x[{i}]") for i, s in enumerate(seqs)]
        for i, s in enumerate(seqs):
            if s.ndim != 2 or s.shape[1] != I or s.shape[0] < 1:
                raise ValueError(
                    f"BatchPredictor: x[{i}] must have shape (T_i, {I}) with T_i >= 1 "
                    f"(input_size={I}), got {shape_text(s.shape)}"
                )
        steps = np.array([s.shape[0] for s in seqs], np.int64)
        x = np.zeros((len(seqs), int(steps.max(initial=1)), I), np.float32)
        for i, s in enumerate(seqs):
            x[i, : s.shape[0]] = s
        return x, steps


def _is_ragged(x) -> bool:
    return isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.dtype == object)


# Models loaded by path, per process: a Dask task unpickles its own predictor, and this
# keeps it from loading the file again. Keyed by the file's identity and modification time,
# so a rewritten file is loaded afresh; the 4 most recently used are kept.
_CACHE_SIZE = 4
_cache: collections.OrderedDict = collections.OrderedDict()
_cache_lock = threading.Lock()
_loads = 0  # files loaded by this process (tests check "once per worker")


def _model_cached(path: str, dtype: str | None = None):
    global _loads
    import fastrnn

    try:
        st = os.stat(path)
        key = (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns, dtype)
    except OSError:
        key = None  # fastrnn.load says what is wrong with it
    with _cache_lock:
        if key is not None and key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        model = fastrnn.load(path, dtype=dtype)
        _loads += 1
        try:
            _sequence_model_check(model, f"BatchPredictor: the model in {path}")
        except TypeError as e:
            raise ValueError(str(e)) from None
        if key is not None:
            _cache[key] = model
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        return model


def load_count() -> int:
    """Model files this process has loaded for predictors (a diagnostic: once per worker)."""
    return _loads


# --- files: what `fastrnn predict` reads and writes ---------------------------------------

# Formats by file name suffix.
FORMATS = {
    ".npy": "npy",
    ".npz": "npz",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
}
TABLE_FORMATS = ("parquet", "arrow")

# Default batch: as many rows as fit this many bytes of padded input and output (float32),
# between 1 and _AUTO_MAX_ROWS rows. The process's peak is about 3x this above its baseline
# (a time-major model's copy of x, the reader's buffers): 300 MB .npy in, 120 MB peak RSS.
# Large enough that per-call overhead (~10 us) is noise; beyond ~1024 rows a batch gains
# nothing (the input GEMM is already chunked in time inside the core).
_AUTO_BATCH_BYTES = 32 << 20
_AUTO_MAX_ROWS = 1024
# The .npz writer copies its side arrays into the archive through a buffer this size.
_COPY_BYTES = 8 << 20


class InputError(ValueError):
    """A file that cannot be used: the message names it and says what is wrong."""


def file_format(path: str, what: str) -> str:
    """'npy' | 'npz' | 'parquet' | 'arrow' from the suffix, else InputError."""
    kind = FORMATS.get(os.path.splitext(path)[1].lower())
    if kind is None:
        known = ", ".join(sorted(FORMATS))
        raise InputError(f"{path}: unknown {what} format: the name must end in one of {known}")
    return kind


@dataclasses.dataclass
class Chunk:
    """Rows [start, start + B) of a source: x (B, T_b, I) float32 batch-first, zero-padded
    past each row's steps; lengths (B,) int64 valid steps, or None when every row has all
    T_b; keep: the table columns carried to a table output (pyarrow arrays)."""

    start: int
    x: np.ndarray
    lengths: np.ndarray | None
    keep: dict


def _lengths_checked(a: np.ndarray, limit, where: str, row0: int) -> np.ndarray:
    """Lengths from a file as int64, each in [1, limit] (an int, or per row an array):
    floats must be whole numbers (pandas stores an int column with nulls as float); NaN,
    fractions and values out of range are InputErrors naming the row."""
    if a.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(a) | (a != np.round(a)))
        if bad.size:
            i = int(bad[0])
            raise InputError(
                f"{where}: lengths must be whole numbers, got {a[i]} at row {row0 + i}"
            )
    elif a.dtype.kind not in "iu":
        raise InputError(f"{where}: lengths must hold integers, got dtype {a.dtype}")
    lim = np.asarray(limit)
    bad = np.flatnonzero((a < 1) | (a > lim))
    if bad.size:
        i = int(bad[0])
        T = int(lim if lim.ndim == 0 else lim[i])
        raise InputError(
            f"{where}: lengths must be in [1, T] (T = {T}, the row's steps), got "
            f"{a[i].item()!r} at row {row0 + i}"
        )
    return a.astype(np.int64)


def _features_check(I: int, expected: int, where: str) -> None:
    if I != expected:
        raise InputError(
            f"{where}: x has {I} features per step, the model expects input_size={expected}"
        )


def _float_dtype_check(dtype: np.dtype, where: str) -> None:
    if dtype.kind != "f" or dtype.itemsize not in (2, 4, 8):
        raise InputError(f"{where}: x must hold float16, float32 or float64 values, got {dtype}")


def _npy_header(fp, where: str):
    """Reads a .npy header from fp: (shape, fortran_order, dtype); InputError if it is not one."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            return fmt.read_array_header_1_0(fp)
        return fmt.read_array_header_2_0(fp)  # 3.0 differs only in the header's encoding
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{where}: not a valid .npy array: {e}") from None


def _x_header_check(shape, dtype, where: str, features: int) -> tuple[int, int, int]:
    if dtype.hasobject:
        raise InputError(f"{where}: x holds Python objects; only numeric arrays are read")
    _float_dtype_check(dtype, where)
    if len(shape) != 3:
        raise InputError(
            f"{where}: x must have shape (N, T, I) (sequences, steps, features; batch-first), "
            f"got {shape_text(shape)}"
        )
    N, T, I = (int(s) for s in shape)
    if T < 1 and N > 0:
        raise InputError(
            f"{where}: x must hold at least one time step (T >= 1), got {shape_text(shape)}"
        )
    _features_check(I, features, where)
    return N, T, I


class _Source:
    """A file of sequences, read in chunks of rows. rows: N; steps: the longest row's steps
    (None until known: variable-length table rows, see max_steps); features: I;
    ragged: rows may have different steps; has_lengths: the file gives lengths."""

    kind = ""
    rows: int
    steps: int | None
    features: int
    ragged = False
    has_lengths = False
    keep_fields: tuple = ()

    def max_steps(self) -> int:
        return self.steps

    def typical_steps(self) -> int:
        """Steps of a typical row, to size batches (max_steps where it is known)."""
        return self.steps

    def chunks(self, batch_rows):
        raise NotImplementedError

    def close(self) -> None:
        pass


class NpySource(_Source):
    """A .npy array x (N, T, I): read with plain file reads, so neither the input nor the
    page cache counts in this process's memory; a Fortran-order array through a memory map
    whose pages are dropped after every chunk."""

    kind = "npy"

    def __init__(self, path: str, features: int) -> None:
        self.path = path
        self._fp = open(path, "rb")  # noqa: SIM115 (read chunk by chunk; close())
        try:
            shape, fortran, dtype = _npy_header(self._fp, path)
            self.rows, self.steps, self.features = _x_header_check(shape, dtype, path, features)
            self._dtype, self._fortran = dtype, fortran
            self._offset = self._fp.tell()
            need = self.rows * self.steps * self.features * dtype.itemsize
            have = os.fstat(self._fp.fileno()).st_size - self._offset
            if have < need:
                raise InputError(
                    f"{path}: truncated .npy file: its header declares x {shape_text(shape)} "
                    f"{dtype} = {need} bytes of data, the file holds {have}"
                )
        except BaseException:
            self._fp.close()
            raise

    def chunks(self, batch_rows):
        N, T, I = self.rows, self.steps, self.features
        if self._fortran:
            yield from self._chunks_mapped(batch_rows)
            return
        row_bytes = T * I * self._dtype.itemsize
        for start in range(0, N, batch_rows):
            b = min(batch_rows, N - start)
            buf = np.empty((b, T, I), self._dtype)
            self._fp.seek(self._offset + start * row_bytes)
            if self._fp.readinto(memoryview(buf).cast("B")) != buf.nbytes:
                raise InputError(f"{self.path}: truncated .npy file: it ended inside row {start}")
            yield Chunk(start, np.asarray(buf, np.float32), None, {})

    def _chunks_mapped(self, batch_rows):
        import mmap

        N, T, I = self.rows, self.steps, self.features
        with mmap.mmap(self._fp.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for start in range(0, N, batch_rows):
                b = min(batch_rows, N - start)
                a = np.ndarray((N, T, I), self._dtype, buffer=mm, offset=self._offset, order="F")
                x = np.ascontiguousarray(a[start : start + b], dtype=np.float32)
                del a
                if hasattr(mm, "madvise"):
                    mm.madvise(mmap.MADV_DONTNEED)  # the pages read stay in the page cache
                yield Chunk(start, x, None, {})

    def close(self) -> None:
        self._fp.close()


class NpzSource(_Source):
    """An .npz archive with members x (N, T, I) and optionally lengths (N,): x is read member
    by member in sequence, stored or deflated, never whole; lengths is read whole (8 bytes a
    row) and checked before anything runs. The zip's CRC is checked as x's last bytes are
    read: a corrupt member fails the run before the output is renamed into place."""

    kind = "npz"

    def __init__(self, path: str, features: int, x_key: str = "x", lengths_key: str = "lengths"):
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile as e:
            raise InputError(f"{path}: not a valid .npz (zip) file: {e}") from None
        try:
            self._open(features, x_key, lengths_key)
        except BaseException:
            self._zip.close()
            raise

    def _member(self, key: str):
        name = key + ".npy"
        try:
            return self._zip.getinfo(name)
        except KeyError:
            return None

    def _open(self, features: int, x_key: str, lengths_key: str) -> None:
        path = self.path
        info = self._member(x_key)
        if info is None:
            members = sorted(n[:-4] for n in self._zip.namelist() if n.endswith(".npy"))
            raise InputError(f"{path}: no array {x_key!r} in the archive, it holds {members}")
        where = f"{path}[{x_key}]"
        self._fp = self._zip.open(info)
        shape, fortran, dtype = _npy_header(self._fp, where)
        if fortran:
            raise InputError(
                f"{where}: x is stored in Fortran order, which cannot be streamed by rows; "
                "save it C-contiguous (np.savez(path, x=np.ascontiguousarray(x)))"
            )
        self.rows, self.steps, self.features = _x_header_check(shape, dtype, where, features)
        self._dtype = dtype
        need = self.rows * self.steps * self.features * dtype.itemsize
        have = info.file_size - self._fp.tell()
        if have < need:
            raise InputError(
                f"{where}: truncated: the header declares x {shape_text(shape)} {dtype} = "
                f"{need} bytes of data, the member holds {have}"
            )
        self.lengths = None
        linfo = self._member(lengths_key)
        if linfo is not None:
            lwhere = f"{path}[{lengths_key}]"
            try:
                with self._zip.open(linfo) as fp:
                    a = np.lib.format.read_array(fp, allow_pickle=False)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise InputError(f"{lwhere}: not a valid .npy array: {e}") from None
            if a.shape != (self.rows,):
                raise InputError(
                    f"{lwhere}: lengths must have shape ({self.rows},) (one per sequence of x), "
                    f"got {shape_text(a.shape)}"
                )
            self.lengths = _lengths_checked(a, self.steps, lwhere, 0)
            self.has_lengths = True

    def chunks(self, batch_rows):
        N, T, I = self.rows, self.steps, self.features
        row_bytes = T * I * self._dtype.itemsize
        for start in range(0, N, batch_rows):
            b = min(batch_rows, N - start)
            try:
                data = self._fp.read(b * row_bytes)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
                raise InputError(f"{self.path}: corrupt .npz member x: {e}") from None
            if len(data) != b * row_bytes:
                raise InputError(
                    f"{self.path}: truncated .npz member x: it ended inside row {start}"
                )
            x = np.frombuffer(data, self._dtype).reshape(b, T, I).astype(np.float32)
            lens = None if self.lengths is None else self.lengths[start : start + b]
            yield Chunk(start, x, lens, {})
        try:
            self._fp.read()  # the member's end, where zipfile checks the CRC
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            raise InputError(f"{self.path}: corrupt .npz member x: {e}") from None

    def close(self) -> None:
        self._zip.close()


def _list_kind(t) -> bool:
    import pyarrow as pa

    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


class TableSource(_Source):
    """A Parquet file or an Arrow IPC file whose column x holds one sequence per row: a list
    (list, large_list or fixed_size_list) of steps, each a list of I floats (float16/32/64),
    and optionally an integer column lengths (valid steps of each row; without it, a row's
    steps are its list's length). Parquet is read with ParquetFile.iter_batches (memory: a
    batch, plus what pyarrow holds of one row group); Arrow record batch by record batch
    from a plain file (memory: the largest record batch)."""

    def __init__(self, path, kind, features, x_key="x", lengths_key="lengths", keep=()):
        import pyarrow as pa

        self.path, self.kind = path, kind
        self._x_key, self._keep = x_key, list(keep)
        self._pf = self._ipc = self._file = None
        try:
            if kind == "parquet":
                import pyarrow.parquet as pq

                # pre_buffer off and 1 MiB reads: pyarrow then holds about one batch
                # (300 MB file, 64-row batches: 40 MB above the baseline; 420 MB with its
                # defaults, which read whole column chunks ahead).
                self._pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
                schema = self._pf.schema_arrow
                meta = self._pf.metadata
                self.rows = meta.num_rows
                size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
                self._row_bytes = size / max(1, self.rows)
            else:
                from pyarrow import ipc

                self._file = pa.OSFile(path)
                self._ipc = ipc.open_file(self._file)
                schema = self._ipc.schema
                self._row_bytes = None  # measured on the first record batch if needed
                if hasattr(self._ipc, "count_rows"):
                    self.rows = self._ipc.count_rows()
                else:
                    self.rows = sum(
                        self._ipc.get_batch(i).num_rows for i in range(self._ipc.num_record_batches)
                    )
        except (pa.ArrowException, OSError) as e:
            self.close()
            what = "Parquet" if kind == "parquet" else "Arrow IPC"
            raise InputError(f"{path}: not a valid {what} file: {e}") from None
        try:
            self._schema_check(schema, features, lengths_key)
        except BaseException:
            self.close()
            raise

    def _schema_check(self, schema, features: int, lengths_key: str) -> None:
        import pyarrow as pa

        path, names = self.path, schema.names
        twice = sorted(
            {n for n in names if names.count(n) > 1} & {self._x_key, lengths_key, *self._keep}
        )
        if twice:
            raise InputError(f"{path}: column {twice[0]!r} appears more than once")
        if self._x_key not in names:
            raise InputError(f"{path}: no column {self._x_key!r}, the columns are {names}")
        t = schema.field(self._x_key).type
        if not (
            _list_kind(t)
            and _list_kind(t.value_type)
            and pa.types.is_floating(t.value_type.value_type)
        ):
            raise InputError(
                f"{path}: column {self._x_key!r} must be a list of steps, each a list of floats "
                f"(e.g. list<fixed_size_list<float, I>>), got {t}"
            )
        self.steps = t.list_size if pa.types.is_fixed_size_list(t) else None
        self.ragged = self.steps is None
        inner = t.value_type
        self.features = inner.list_size if pa.types.is_fixed_size_list(inner) else features
        _features_check(self.features, features, path)
        self._lengths_key = lengths_key if lengths_key in names else None
        if self._lengths_key is not None:
            lt = schema.field(lengths_key).type
            if not (pa.types.is_integer(lt) or pa.types.is_floating(lt)):
                raise InputError(
                    f"{path}: column {lengths_key!r} (lengths) must hold integers, got {lt}"
                )
            self.has_lengths = True
        missing = [k for k in self._keep if k not in names]
        if missing:
            raise InputError(f"{path}: no column {missing[0]!r} to keep, the columns are {names}")
        self.keep_fields = tuple(schema.field(k) for k in self._keep)

    def _columns(self) -> list[str]:
        cols = [self._x_key] + ([self._lengths_key] if self._lengths_key else [])
        return cols + [k for k in self._keep if k not in cols]

    def _record_batches(self, rows: int, columns: list[str]):
        """Record batches of at most `rows` rows (their own size for Arrow files, sliced)."""
        import pyarrow as pa

        try:
            if self._pf is not None:
                yield from self._pf.iter_batches(
                    batch_size=rows, columns=columns, use_threads=False
                )
            else:
                for i in range(self._ipc.num_record_batches):
                    rb = self._ipc.get_batch(i).select(columns)
                    for s in range(0, rb.num_rows, rows):
                        yield rb.slice(s, rows)
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"{self.path}: corrupt file: {e}") from None

    def _bytes_per_row(self) -> float:
        """Stored bytes of a row: Parquet's uncompressed size / rows; Arrow's first batch."""
        if self._row_bytes is None:
            self._row_bytes = 4.0 * self.features
            for i in range(self._ipc.num_record_batches):
                rb = self._ipc.get_batch(i)
                if rb.num_rows:
                    self._row_bytes = rb.column(self._x_key).nbytes / rb.num_rows
                    break
        return self._row_bytes

    def typical_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, round(self._bytes_per_row() / (4 * self.features)))

    def max_steps(self) -> int:
        """The longest row's steps (one pass over column x when rows have variable length)."""
        if self.steps is None:
            import pyarrow.compute as pc

            # Small batches: only the lengths are kept, and pyarrow's buffers scale with rows.
            rows = max(1, min(8192, int((4 << 20) // self._bytes_per_row())))
            longest = 0
            for rb in self._record_batches(rows, [self._x_key]):
                col = rb.column(0)
                if len(col):
                    longest = max(longest, int(pc.max(pc.list_value_length(col)).as_py() or 0))
            self.steps = max(longest, 1)
        return self.steps

    def chunks(self, batch_rows):
        import pyarrow as pa

        start = 0
        names = self._columns()
        for rb in self._record_batches(batch_rows, names):
            b = rb.num_rows
            if b == 0:
                continue
            x, steps = self._padded(rb.column(0), start)
            lens = None
            if self._lengths_key is not None:
                la = rb.column(names.index(self._lengths_key))
                if la.null_count:
                    i = int(np.flatnonzero(la.is_null().to_numpy(zero_copy_only=False))[0])
                    raise InputError(f"{self.path}: lengths is null at row {start + i}")
                lens = _lengths_checked(la.to_numpy(), steps, self.path, start)
            elif self.ragged and (steps != x.shape[1]).any():
                lens = steps
            keep = {k: rb.column(names.index(k)) for k in self._keep}
            del rb
            yield Chunk(start, x, lens, keep)
            start += b
            pa.default_memory_pool().release_unused()  # mimalloc keeps freed pages otherwise

    def _padded(self, col, row0: int):
        """A list<list<float>> array of B rows → (x (B, T_b, I) float32, steps (B,))."""
        import pyarrow.compute as pc

        path, I = self.path, self.features
        if col.null_count:
            i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{path}: x is null at row {row0 + i}")
        steps = pc.list_value_length(col).to_numpy().astype(np.int64)
        empty = np.flatnonzero(steps == 0)
        if empty.size:
            raise InputError(
                f"{path}: x has no steps at row {row0 + int(empty[0])} (T >= 1 needed)"
            )
        inner = col.flatten()

        def row_of(step_index: int) -> int:
            return row0 + int(np.searchsorted(np.cumsum(steps), step_index, side="right"))

        if inner.null_count:
            j = int(np.flatnonzero(inner.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{path}: x has a null step at row {row_of(j)}")
        sizes = pc.list_value_length(inner).to_numpy()
        bad = np.flatnonzero(sizes != I)
        if bad.size:
            j = int(bad[0])
            raise InputError(
                f"{path}: x has {int(sizes[j])} features in a step of row {row_of(j)}, the model "
                f"expects input_size={I}"
            )
        values = inner.flatten()
        if values.null_count:
            k = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{path}: x has a null value at row {row_of(k // I)}")
        flat = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, I)
        B, T = len(steps), int(steps.max())
        if (steps == T).all():
            return np.ascontiguousarray(flat.reshape(B, T, I)), steps
        x = np.zeros((B, T, I), np.float32)
        rows = np.repeat(np.arange(B), steps)
        starts = np.cumsum(steps) - steps
        x[rows, np.arange(len(flat)) - np.repeat(starts, steps)] = flat
        return x, steps

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._pf is not None:
            self._pf.close()


def source_open(path, kind, features, x_key="x", lengths_key="lengths", keep=()) -> _Source:
    """The reader for a file of format `kind` (file_format); InputError if it is unusable."""
    if keep and kind not in TABLE_FORMATS:
        raise InputError(f"{path}: columns to keep need a Parquet or Arrow input, got .{kind}")
    if kind == "npy":
        return NpySource(path, features)  # x alone: the column names do not apply
    if kind == "npz":
        return NpzSource(path, features, x_key, lengths_key)
    return TableSource(path, kind, features, x_key, lengths_key, keep)


@dataclasses.dataclass
class Layout:
    """What a sink writes: N rows; T padded steps (npy/npz); DH = D·H_out output features;
    LD = L·D state rows; H_out, H (c_n's, LSTM) state features; lengths: write them."""

    N: int
    T: int | None
    DH: int
    LD: int
    H_out: int
    H: int | None
    lengths: bool


def _npy_header_bytes(shape, dtype) -> bytes:
    import io

    buf = io.BytesIO()
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(shape),
    }
    np.lib.format.write_array_header_1_0(buf, header)  # a 3-D shape fits 1.0's 64 KiB header
    return buf.getvalue()


def _y_padded(y: np.ndarray, T: int) -> np.ndarray:
    """y (B, T_b, DH) → (B, T, DH) with zeros after T_b."""
    if y.shape[1] == T:
        return y
    out = np.zeros((y.shape[0], T, y.shape[2]), np.float32)
    out[:, : y.shape[1]] = y
    return out


class NpySink:
    """y (N, T, D·H_out) float32 to a .npy file, row chunks written in order."""

    def __init__(self, path: str, layout: Layout) -> None:
        self._layout, self._rows = layout, 0
        self._fp = open(path, "wb")  # noqa: SIM115 (written chunk by chunk; close())
        self._fp.write(_npy_header_bytes((layout.N, layout.T, layout.DH), np.float32))

    def write(self, chunk: Chunk, y, h_n, c_n) -> None:
        self._fp.write(memoryview(_y_padded(y, self._layout.T)).cast("B"))
        self._rows += len(y)

    def close(self) -> None:
        if self._rows != self._layout.N:
            raise InputError(f"the input held {self._rows} rows, its header {self._layout.N}")
        self._fp.flush()
        os.fsync(self._fp.fileno())
        self._fp.close()

    def abort(self) -> None:
        self._fp.close()


class NpzSink:
    """An uncompressed .npz: y.npy streamed straight into the archive; h_n, c_n (and
    lengths) spooled to unnamed temporary files beside it and copied in at the end."""

    def __init__(self, path: str, layout: Layout) -> None:
        import tempfile

        self._layout, self._rows = layout, 0
        self._zip = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True)
        self._y = self._zip.open(
            zipfile.ZipInfo("y.npy", (1980, 1, 1, 0, 0, 0)), "w", force_zip64=True
        )
        self._y.write(_npy_header_bytes((layout.N, layout.T, layout.DH), np.float32))
        where = os.path.dirname(os.path.abspath(path))
        side = {"h_n": ((layout.LD, layout.H_out), np.float32)}
        if layout.H is not None:
            side["c_n"] = ((layout.LD, layout.H), np.float32)
        if layout.lengths:
            side["lengths"] = ((), np.int64)
        # Unnamed (unlinked at once): nothing to clean up whatever happens.
        self._side = {
            k: (shape, dtype, tempfile.TemporaryFile(dir=where))  # noqa: SIM115 (close/abort)
            for k, (shape, dtype) in side.items()
        }

    def write(self, chunk: Chunk, y, h_n, c_n) -> None:
        self._y.write(memoryview(_y_padded(y, self._layout.T)).cast("B"))
        parts = {"h_n": h_n, "c_n": c_n}
        if "lengths" in self._side:
            lens = chunk.lengths if chunk.lengths is not None else np.full(len(y), y.shape[1])
            parts["lengths"] = np.ascontiguousarray(lens, np.int64)
        for k, (_, _, f) in self._side.items():
            f.write(memoryview(np.ascontiguousarray(parts[k])).cast("B"))
        self._rows += len(y)

    def close(self) -> None:
        N = self._layout.N
        if self._rows != N:
            raise InputError(f"the input held {self._rows} rows, its header {N}")
        self._y.close()
        for k, (shape, dtype, f) in self._side.items():
            info = zipfile.ZipInfo(k + ".npy", (1980, 1, 1, 0, 0, 0))
            with self._zip.open(info, "w", force_zip64=True) as out:
                out.write(_npy_header_bytes((N, *shape), dtype))
                f.seek(0)
                while block := f.read(_COPY_BYTES):
                    out.write(block)
            f.close()
        self._zip.close()

    def abort(self) -> None:
        for _, _, f in self._side.values():
            f.close()
        with contextlib.suppress(OSError, ValueError):  # the half-written file is deleted
            self._y.close()
            self._zip.close()


def _table_schema(layout: Layout, keep_fields):
    import pyarrow as pa

    f32 = pa.float32()
    fields = list(keep_fields) + [
        pa.field("y", pa.list_(pa.list_(f32, layout.DH))),
        pa.field("h_n", pa.list_(pa.list_(f32, layout.H_out), layout.LD)),
    ]
    if layout.H is not None:
        fields.append(pa.field("c_n", pa.list_(pa.list_(f32, layout.H), layout.LD)))
    return pa.schema(fields)


def _record_batch(schema, chunk: Chunk, y, h_n, c_n):
    """The output rows of one chunk: keep columns, y trimmed to each row's valid steps,
    the states as nested fixed-size lists."""
    import pyarrow as pa

    B, T, DH = y.shape
    if chunk.lengths is None:
        flat, lens = y.reshape(-1), np.full(B, T, np.int64)
    else:
        lens = chunk.lengths
        flat = y[np.arange(T) < lens[:, None]].reshape(-1)
    offsets = np.zeros(B + 1, np.int32)
    np.cumsum(lens, out=offsets[1:])
    steps = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), DH)
    cols = [chunk.keep[name] for name in schema.names[: len(chunk.keep)]]
    cols.append(pa.ListArray.from_arrays(pa.array(offsets), steps))

    def nested(s):
        inner = pa.FixedSizeListArray.from_arrays(pa.array(s.reshape(-1), pa.float32()), s.shape[2])
        return pa.FixedSizeListArray.from_arrays(inner, s.shape[1])

    cols.append(nested(h_n))
    if c_n is not None:
        cols.append(nested(c_n))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


class ParquetSink:
    """A Parquet file: columns kept from the input, y (list of fixed_size_list<float, D·H_out>,
    one entry per valid step), h_n and c_n (fixed_size_list of fixed_size_list). Rows are
    buffered into row groups of about _ROW_GROUP_BYTES."""

    # Arrow bytes per row group. pyarrow's writer adds ~100 MB of its own at the first write,
    # whatever the size (measured: 2 to 44 groups of 6 MB, 159 to 165 MB peak RSS).
    _ROW_GROUP_BYTES = 16 << 20

    def __init__(self, path: str, layout: Layout, keep_fields) -> None:
        import pyarrow.parquet as pq

        self._schema = _table_schema(layout, keep_fields)
        # No dictionary encoding: float outputs rarely repeat, and its hash table of every
        # value cost more memory than the row group itself.
        self._writer = pq.ParquetWriter(path, self._schema, use_dictionary=False)
        self._pending, self._bytes = [], 0
        self._path = path

    def write(self, chunk: Chunk, y, h_n, c_n) -> None:
        rb = _record_batch(self._schema, chunk, y, h_n, c_n)
        self._pending.append(rb)
        self._bytes += rb.nbytes
        if self._bytes >= self._ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending, self._schema))
        self._pending, self._bytes = [], 0
        pa.default_memory_pool().release_unused()

    def close(self) -> None:
        self._flush()
        self._writer.close()
        _fsync(self._path)

    def abort(self) -> None:
        self._pending = []
        with contextlib.suppress(OSError, ValueError):  # the half-written file is deleted
            self._writer.close()


class ArrowSink:
    """An Arrow IPC file with ParquetSink's columns, one record batch per chunk."""

    def __init__(self, path: str, layout: Layout, keep_fields) -> None:
        from pyarrow import ipc

        self._schema = _table_schema(layout, keep_fields)
        self._writer = ipc.new_file(path, self._schema)
        self._path = path

    def write(self, chunk: Chunk, y, h_n, c_n) -> None:
        self._writer.write_batch(_record_batch(self._schema, chunk, y, h_n, c_n))

    def close(self) -> None:
        self._writer.close()
        _fsync(self._path)

    def abort(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # the half-written file is deleted
            self._writer.close()


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sink_open(path: str, kind: str, layout: Layout, keep_fields=()):
    if kind == "npy":
        return NpySink(path, layout)
    if kind == "npz":
        return NpzSink(path, layout)
    if kind == "parquet":
        return ParquetSink(path, layout, keep_fields)
    return ArrowSink(path, layout, keep_fields)


class AtomicPath:
    """A temporary name beside `path` (same directory, so the final rename is atomic):
    `.NAME.<random>.part`, created with mode 0666 less the umask, as a plain file would be.
    commit() renames it to `path`; discard() deletes it."""

    def __init__(self, path: str) -> None:
        self.path = path
        folder, name = os.path.split(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise InputError(f"{path}: cannot write: directory {folder} does not exist")
        if os.path.isdir(path):
            raise InputError(f"{path}: cannot write: it is a directory")
        while True:
            self.temp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.part")
            try:
                os.close(os.open(self.temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                break
            except FileExistsError:
                continue

    def commit(self) -> None:
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        try:
            os.unlink(self.temp)
        except FileNotFoundError:
            pass


def auto_batch_rows(T: int, I: int, DH: int) -> int:
    """Rows per batch when none is given: _AUTO_BATCH_BYTES of padded x and y, 1.._AUTO_MAX_ROWS."""
    row_bytes = max(1, T) * (I + DH) * 4
    return max(1, min(_AUTO_MAX_ROWS, _AUTO_BATCH_BYTES // row_bytes))


@dataclasses.dataclass
class PredictSummary:
    rows: int
    batches: int
    seconds: float
    output: str


def predict_file(
    model,
    input: str,
    output: str,
    *,
    batch_size: int | None = None,
    threads: int | None = None,
    dtype: str = "float32",
    x_key: str = "x",
    lengths_key: str = "lengths",
    keep=(),
    progress=None,
) -> PredictSummary:
    """Runs `model` (a path or a loaded LSTM/GRU/RNN) over the sequences in file `input`
    and writes the results to `output`, both by suffix: .npy, .npz, .parquet/.pq,
    .arrow/.feather/.ipc (Arrow IPC file format).

    Input: .npy: x (N, T, I), batch-first; .npz: members x and optionally lengths (N,);
    Parquet/Arrow: column x_key, one sequence per row as a list of steps each a list of I
    floats, optional column lengths_key, and the columns `keep` to copy to the output.
    Output: .npy: y (N, T, D·H_out) zero past each length; .npz: y, h_n (N, L·D, H_out),
    c_n (N, L·D, H) for LSTM, and lengths when the input had them or rows of different
    lengths; Parquet/Arrow: the kept columns, y (one list entry per valid step), h_n, c_n.

    Streams: reads and writes a batch of `batch_size` rows at a time (None: as many as fit
    64 MiB of padded input and output, at most 1024). The output is written under a
    temporary name in its directory and renamed into place only when complete: on any
    error or interruption the temporary file is deleted and nothing is left under `output`.
    progress(rows_done, rows_total) is called after each batch. Returns a PredictSummary.
    A file that cannot be used raises InputError (a ValueError) naming it and the problem.
    """
    import time

    predictor = (
        model if isinstance(model, BatchPredictor) else BatchPredictor(model, threads, dtype)
    )
    cfg = predictor.model.config
    in_kind, out_kind = file_format(input, "input"), file_format(output, "output")
    if keep and out_kind not in TABLE_FORMATS:
        raise InputError(
            f"{output}: columns to keep need a Parquet or Arrow output, got .{out_kind}"
        )
    if os.path.exists(output) and os.path.exists(input) and os.path.samefile(input, output):
        raise InputError(f"{output}: the output must not be the input file")
    t0 = time.perf_counter()
    source = source_open(input, in_kind, cfg.input_size, x_key, lengths_key, keep)
    try:
        D = 2 if cfg.bidirectional else 1
        H_out = cfg.proj_size or cfg.hidden_size
        padded_out = out_kind not in TABLE_FORMATS
        T = source.max_steps() if padded_out else source.steps  # None: ragged rows to a table
        layout = Layout(
            N=source.rows,
            T=T,
            DH=D * H_out,
            LD=cfg.num_layers * D,
            H_out=H_out,
            H=cfg.hidden_size if cfg.mode == "LSTM" else None,
            lengths=source.has_lengths or source.ragged,
        )
        rows = batch_size or auto_batch_rows(
            T or source.typical_steps(), source.features, layout.DH
        )
        target = AtomicPath(output)
        try:
            sink = sink_open(target.temp, out_kind, layout, source.keep_fields)
            try:
                done = batches = 0
                for chunk in source.chunks(rows):
                    y, h_n, c_n = predictor.predict_padded(chunk.x, chunk.lengths)
                    sink.write(chunk, y, h_n, c_n)
                    done += len(y)
                    batches += 1
                    if progress is not None:
                        progress(done, source.rows)
                sink.close()
            except BaseException:
                sink.abort()
                raise
            target.commit()
        except BaseException:
            target.discard()
            raise
    finally:
        source.close()
    return PredictSummary(done, batches, time.perf_counter() - t0, output)
