"""BatchPredictor and `fastrnn predict`: bit for bit one in-memory model call, however the
rows are batched and whatever the file format; bad files refused with exit code 2 and no
output; bounded memory; the progress bar only on a terminal.

Test data is made here, never downloaded. pyarrow tests skip without pyarrow."""

from __future__ import annotations

import argparse
import os
import pickle
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastrnn
from fastrnn import _batch
from fastrnn._batch import BatchPredictor
from fastrnn.cli import predict as predict_cmd

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))
I = 5  # input features of the test models


def models():
    """One of each kind, both layouts (the predictor is batch-first for all of them)."""
    return {
        "lstm_bi_2l": fastrnn.LSTM(I, 6, num_layers=2, bidirectional=True, seed=1),
        "lstm_proj_bf": fastrnn.LSTM(I, 7, proj_size=3, batch_first=True, seed=2),
        "gru_bf": fastrnn.GRU(I, 9, num_layers=2, batch_first=True, seed=3),
        "rnn_relu_bi": fastrnn.RNN(I, 4, nonlinearity="relu", bidirectional=True, seed=4),
    }


def reference(model, x, lengths=None):
    """One in-memory model call over every row: (y (B, T, D·H), h_n (B, L·D, H), c_n)."""
    xin = x if model.batch_first else x.transpose(1, 0, 2)
    y, state = model(xin, lengths=lengths)
    h, c = state if model.mode == "LSTM" else (state, None)
    y = y if model.batch_first else y.transpose(1, 0, 2)
    c = None if c is None else c.transpose(1, 0, 2)
    return y, h.transpose(1, 0, 2), c


def data(N=37, T=11, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, I), dtype=np.float32)
    lengths = rng.integers(1, T + 1, N)
    lengths[0] = T
    return x, lengths


def same(a, b) -> bool:
    return a is None and b is None or np.array_equal(a, b)


# --- BatchPredictor ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(models()))
def test_predictor_matches_one_call_for_any_batching(name):
    model = models()[name]
    x, lengths = data()
    y, h, c = reference(model, x, lengths)
    predict = BatchPredictor(model)
    for rows in (1, 2, 3, 4, 5, 8, 16, 37):
        for s in range(0, len(x), rows):
            out = predict({"x": x[s : s + rows], "lengths": lengths[s : s + rows]})
            T_b = out["y"].shape[1]
            assert T_b == x.shape[1]
            assert np.array_equal(out["y"], y[s : s + rows]), (rows, s)
            assert np.array_equal(out["h_n"], h[s : s + rows]), (rows, s)
            assert same(out.get("c_n"), None if c is None else c[s : s + rows])
    no_lengths = predict({"x": x[:3]})
    assert np.array_equal(no_lengths["y"], reference(model, x)[0][:3])


BITS_SCRIPT = textwrap.dedent(
    """
    import numpy as np, fastrnn
    from fastrnn._batch import BatchPredictor
    rng = np.random.default_rng(0)
    for model in (fastrnn.LSTM(5, 33, num_layers=2, bidirectional=True, seed=1),
                  fastrnn.GRU(5, 40, batch_first=True, seed=2), fastrnn.RNN(5, 17, seed=3)):
        x = rng.standard_normal((21, 13, 5), dtype=np.float32)
        lengths = rng.integers(1, 14, 21)
        want = BatchPredictor(model)({"x": x, "lengths": lengths})
        for rows in (1, 2, 3, 4, 7):
            for s in range(0, 21, rows):
                got = BatchPredictor(model)({"x": x[s:s + rows], "lengths": lengths[s:s + rows]})
                for k in want:
                    if k != "lengths":
                        assert np.array_equal(got[k], want[k][s:s + rows]), (model, rows, s, k)
    print("ok", fastrnn.cpu_info()["isa"])
    """
)


def test_predictor_bits_do_not_depend_on_batching_on_every_isa():
    """On AVX-512 a batch of 1 to 3 rows takes a kernel tile that rounds differently; the
    predictor pads such batches, so every ISA gives one call's bits for any batching (this
    fails if the kernels' few-row threshold moves above _MIN_ROWS)."""
    for isa in fastrnn.cpu_info()["available"]:
        env = dict(os.environ, FASTRNN_ISA=isa, PYTHONPATH=PACKAGE_ROOT)
        out = subprocess.run(
            [sys.executable, "-c", BITS_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0 and out.stdout.split() == ["ok", isa], out.stderr[-3000:]


def test_predictor_variable_length_sequences():
    model = models()["lstm_bi_2l"]
    x, lengths = data()
    y, h, c = reference(model, x, lengths)
    seqs = [x[i, : lengths[i]] for i in range(len(x))]
    as_objects = np.empty(len(seqs), dtype=object)
    as_objects[:] = seqs
    for batch_x in (seqs, as_objects, seqs[:2]):
        out = BatchPredictor(model)({"x": batch_x})
        n = len(batch_x)
        assert out["y"].dtype == object and len(out["y"]) == n
        for i in range(n):
            assert out["y"][i].shape == (lengths[i], 12)
            assert np.array_equal(out["y"][i], y[i, : lengths[i]])
        assert np.array_equal(out["h_n"], h[:n]) and np.array_equal(out["c_n"], c[:n])


def test_predictor_passes_other_columns_through():
    x, lengths = data()
    ids = np.arange(100, 100 + len(x))
    out = BatchPredictor(models()["gru_bf"])({"x": x, "lengths": lengths, "id": ids})
    assert sorted(out) == ["h_n", "id", "lengths", "y"]
    assert out["id"] is ids and out["lengths"] is lengths
    assert out["y"].shape == (37, 11, 9) and out["h_n"].shape == (37, 2, 9)
    assert out["y"].flags.c_contiguous and out["h_n"].flags.c_contiguous
    empty = BatchPredictor(models()["lstm_bi_2l"])({"x": x[:0]})
    assert empty["y"].shape == (0, 11, 12) and empty["c_n"].shape == (0, 4, 6)


def test_predictor_errors_name_the_argument(tmp_path):
    lstm = models()["lstm_bi_2l"]
    x, lengths = data()
    p = BatchPredictor(lstm)
    cases = [
        (lambda: p(x), TypeError, "batch must be a mapping"),
        (lambda: p({"data": x}), ValueError, r"column 'x' .*got columns \['data'\]"),
        (lambda: p({"x": x, "y": x}), ValueError, "must not have a column named 'y'"),
        (
            lambda: p({"x": x[:, :, :4]}),
            ValueError,
            r"x must have shape \(B, T, 5\).*got \(37, 11, 4\)",
        ),
        (lambda: p({"x": x[0]}), ValueError, r"x must have shape \(B, T, 5\).*got \(11, 5\)"),
        (lambda: p({"x": x.astype(int)}), TypeError, "real floating dtype"),
        (lambda: p({"x": x, "lengths": lengths + 11}), ValueError, r"lengths must be in \[1, 11\]"),
        (
            lambda: p({"x": [x[0]], "lengths": [3]}),
            ValueError,
            "must not be given with variable-length",
        ),
        (lambda: p({"x": [x[0], x[1, :, :2]]}), ValueError, r"x\[1\] must have shape \(T_i, 5\)"),
        (
            lambda: BatchPredictor(lstm, dtype="fp8"),
            ValueError,
            r"BatchPredictor: dtype must be one of 'float32', 'bf16'.*got 'fp8'",
        ),
        (lambda: BatchPredictor(lstm, dtype=np.float16), ValueError, "dtype must be one of"),
        (
            lambda: BatchPredictor(lstm, threads=0),
            ValueError,
            "BatchPredictor: threads must be >= 1, got 0",
        ),
        (
            lambda: BatchPredictor(lstm, threads=1.5),
            TypeError,
            "BatchPredictor: threads must be an int",
        ),
        (
            lambda: BatchPredictor(fastrnn.LSTMCell(3, 4)),
            TypeError,
            "must be a fastrnn LSTM, GRU or RNN.*got LSTMCell",
        ),
        (lambda: BatchPredictor(42), TypeError, "got int"),
    ]
    for call, err, pattern in cases:
        with pytest.raises(err, match=pattern):
            call()
    cell = tmp_path / "cell.safetensors"
    fastrnn.GRUCell(3, 4, seed=0).save(str(cell))
    with pytest.raises(ValueError, match=f"model in {cell} must be a fastrnn LSTM, GRU or RNN"):
        _ = BatchPredictor(cell).model
    with pytest.raises((ValueError, OSError), match="missing.safetensors"):
        BatchPredictor(tmp_path / "missing.safetensors")({"x": x})


def test_predictor_pickles_as_its_path_and_loads_once_per_process(tmp_path):
    path = str(tmp_path / "m.safetensors")
    model = models()["gru_bf"]
    model.save(path)
    x, lengths = data()
    loads = _batch.load_count()
    p = BatchPredictor(path, threads=1)
    blob = pickle.dumps(p)
    assert len(blob) < 500 and _batch.load_count() == loads  # lazy: nothing loaded yet
    q = pickle.loads(blob)
    assert np.array_equal(q({"x": x})["y"], reference(model, x)[0])
    assert _batch.load_count() == loads + 1
    r = pickle.loads(blob)  # another task's copy in the same worker: the cached model
    r({"x": x})
    assert _batch.load_count() == loads + 1 and r.model is q.model
    assert len(pickle.dumps(q)) == len(blob)  # the loaded model does not travel
    time.sleep(0.01)
    fastrnn.GRU(I, 9, num_layers=2, batch_first=True, seed=99).save(path)  # rewritten file
    fresh = pickle.loads(blob)
    assert not np.array_equal(fresh({"x": x})["y"], reference(model, x)[0])
    assert _batch.load_count() == loads + 2
    by_value = pickle.loads(pickle.dumps(BatchPredictor(model)))  # a model object: weights travel
    assert np.array_equal(by_value({"x": x})["y"], reference(model, x)[0])
    assert "threads=1" in repr(p) and p.dtype == "float32"


def test_predictor_threads_follow_the_engine():
    model = models()["lstm_bi_2l"]
    x, lengths = data()
    assert BatchPredictor(model).threads == fastrnn.get_num_threads()
    assert BatchPredictor(model, threads=3).threads == 3
    want = BatchPredictor(model)({"x": x, "lengths": lengths})
    got = BatchPredictor(model, threads=1)({"x": x, "lengths": lengths})
    assert all(np.array_equal(want[k], got[k]) for k in ("y", "h_n", "c_n"))
    script = "import fastrnn; from fastrnn._batch import BatchPredictor; "
    script += "print(BatchPredictor(fastrnn.GRU(2, 3)).threads)"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=PACKAGE_ROOT)
    env.pop("FASTRNN_NUM_THREADS", None)
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == "1", out.stderr  # what Dask's nanny and Ray (num_cpus=1) set


def test_predictor_concurrent_calls_give_serial_results():
    p = BatchPredictor(models()["lstm_bi_2l"])
    x, lengths = data(N=64)
    batches = [{"x": x[s : s + 8], "lengths": lengths[s : s + 8]} for s in range(0, 64, 8)]
    serial = [p(b)["y"] for b in batches]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda b: p(b)["y"], batches * 3))
    assert all(np.array_equal(a, b) for a, b in zip(serial * 3, parallel))


# --- fastrnn predict -----------------------------------------------------------------------


def cli(*argv) -> int:
    """Runs `fastrnn predict ARGV` in this process, as the dispatcher does."""
    parser = argparse.ArgumentParser(prog="fastrnn")
    predict_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["predict", *map(str, argv)])
    return args.func(args)


@pytest.fixture
def lstm_file(tmp_path):
    model = models()["lstm_bi_2l"]
    path = tmp_path / "model.safetensors"
    model.save(str(path))
    return model, path


def table(x, lengths, *, ragged=True, float_type=None, extra=None):
    """A pyarrow table: column x (one row a list of steps, each a list of I floats), id."""
    import pyarrow as pa

    float_type = float_type or pa.float32()
    step = pa.list_(float_type, I)
    if ragged:  # each row's list holds its valid steps only
        rows = [x[i, : lengths[i]].tolist() for i in range(len(x))]
        col = pa.array(rows, type=pa.list_(step))
    else:  # padded rows, the lengths in their own column
        col = pa.array(x.tolist(), type=pa.list_(step, x.shape[1]))
    cols = {"id": np.arange(len(x)), "x": col}
    if not ragged:
        cols["lengths"] = lengths
    cols.update(extra or {})
    return pa.table(cols)


def write_input(path, x, lengths):
    """x and lengths in the file format of path's suffix."""
    name = str(path)
    if name.endswith(".npy"):
        np.save(name, x)
    elif name.endswith(".c.npz"):
        np.savez_compressed(name, x=x, lengths=lengths)
    elif name.endswith(".npz"):
        np.savez(name, x=x, lengths=lengths)
    elif name.endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.write_table(table(x, lengths), name, row_group_size=10)
    else:
        from pyarrow import ipc

        t = table(x, lengths)
        with ipc.new_file(name, t.schema) as w:
            w.write_table(t, max_chunksize=9)


def read_output(path):
    """(y as a list of per-row arrays of valid steps or a padded array, h_n, c_n, ids)."""
    name = str(path)
    if name.endswith(".npy"):
        return np.load(name), None, None, None
    if name.endswith(".npz"):
        with np.load(name) as z:
            assert sorted(z.files) in (["c_n", "h_n", "lengths", "y"], ["c_n", "h_n", "y"])
            return z["y"], z["h_n"], z["c_n"], z["lengths"] if "lengths" in z.files else None
    import pyarrow.parquet as pq
    from pyarrow import ipc

    if name.endswith(".parquet"):
        t = pq.read_table(name)
    else:
        with ipc.open_file(name) as r:
            t = r.read_all()
    ys = [np.array(r, np.float32).reshape(-1, 12) for r in t.column("y").to_pylist()]
    h = np.array(t.column("h_n").to_pylist(), np.float32)
    c = np.array(t.column("c_n").to_pylist(), np.float32)
    ids = t.column("id").to_numpy() if "id" in t.column_names else None
    return ys, h, c, ids


INPUTS = ["in.npy", "in.npz", "in.c.npz", "in.parquet", "in.arrow"]
OUTPUTS = ["out.npy", "out.npz", "out.parquet", "out.arrow"]


@pytest.mark.parametrize("out_name", OUTPUTS)
@pytest.mark.parametrize("in_name", INPUTS)
def test_predict_round_trips_every_format(tmp_path, lstm_file, in_name, out_name):
    if not (in_name.endswith("npy") or in_name.endswith("npz")) or out_name.endswith(
        ("parquet", "arrow")
    ):
        pytest.importorskip("pyarrow")
    model, model_path = lstm_file
    x, lengths = data()
    if in_name == "in.npy":
        lengths = np.full(len(x), x.shape[1])  # a .npy file holds x alone
    y, h, c = reference(model, x, lengths)
    write_input(tmp_path / in_name, x, lengths)
    keep = (
        ["--keep", "id"]
        if in_name.endswith(("parquet", "arrow")) and out_name.endswith(("parquet", "arrow"))
        else []
    )
    rc = cli(
        model_path, tmp_path / in_name, "-o", tmp_path / out_name, "--batch-size", 6, "-q", *keep
    )
    assert rc == 0
    got_y, got_h, got_c, extra = read_output(tmp_path / out_name)
    if isinstance(got_y, list):  # a table: each row's valid steps
        assert len(got_y) == len(x)
        assert all(np.array_equal(got_y[i], y[i, : lengths[i]]) for i in range(len(x)))
        if keep:
            assert np.array_equal(extra, np.arange(len(x)))
    else:  # padded to the longest row, zero past each length (as the model's output is)
        T_out = got_y.shape[1]
        assert T_out == int(lengths.max()) and np.array_equal(got_y, y[:, :T_out])
        if out_name.endswith(".npz") and in_name != "in.npy":
            assert np.array_equal(extra, lengths)
    if got_h is not None:
        assert np.array_equal(got_h, h) and np.array_equal(got_c, c)
    assert sorted(os.listdir(tmp_path)) == sorted(["model.safetensors", in_name, out_name])


def test_predict_table_schemas(tmp_path, lstm_file):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    model, model_path = lstm_file
    x, lengths = data()
    y, h, c = reference(model, x, lengths)
    variants = {
        "float64_ragged": table(x, lengths, float_type=pa.float64()),
        "padded_with_lengths": table(x, lengths, ragged=False),
        "float_lengths": table(x, lengths, ragged=False).set_column(
            2, "lengths", pa.array(lengths.astype(np.float64))
        ),
        "large_lists": table(x, lengths).cast(
            pa.schema(
                [
                    pa.field("id", pa.int64()),
                    pa.field("x", pa.large_list(pa.large_list(pa.float32()))),
                ]
            )
        ),
    }
    for name, t in variants.items():
        src, dst = tmp_path / f"{name}.parquet", tmp_path / f"{name}.out.npz"
        pq.write_table(t, str(src))
        assert cli(model_path, src, "-o", dst, "-q") == 0, name
        got_y, got_h, got_c, got_lengths = read_output(dst)
        assert np.array_equal(got_y, y[:, : got_y.shape[1]]), name
        assert np.array_equal(got_h, h) and np.array_equal(got_c, c), name
        assert np.array_equal(got_lengths, lengths), name
    half = x.astype(np.float16)
    pq.write_table(
        table(half.astype(np.float32), lengths, float_type=pa.float16()),
        str(tmp_path / "h.parquet"),
    )
    assert cli(model_path, tmp_path / "h.parquet", "-o", tmp_path / "h.npz", "-q") == 0
    assert np.array_equal(
        read_output(tmp_path / "h.npz")[0], reference(model, half.astype(np.float32), lengths)[0]
    )


def corrupt(path, offset, value=b"\xff"):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(value)


def truncate(path, keep):
    with open(path, "r+b") as f:
        f.truncate(keep)


def bad_inputs(tmp_path):
    """name → (file, expected words in the message). Each is refused with exit code 2."""
    x, lengths = data()
    cases = {}

    def make(name, writer, words):
        path = tmp_path / name
        writer(path)
        cases[name.split(".")[0]] = (path, words)

    make("truncated.npy", lambda p: (np.save(p, x), truncate(p, 1000)), "truncated .npy file")
    make(
        "features.npy",
        lambda p: np.save(p, x[:, :, :4]),
        "x has 4 features per step, the model expects input_size=5",
    )
    make(
        "ints.npy",
        lambda p: np.save(p, (x * 10).astype(np.int32)),
        "float16, float32 or float64 values, got int32",
    )
    make("flat.npy", lambda p: np.save(p, x[0]), r"must have shape (N, T, I)")
    make(
        "garbage.npy",
        lambda p: p.write_bytes(b"PK\x03\x04 not numpy at all"),
        "not a valid .npy array",
    )
    make(
        "objects.npy", lambda p: np.save(p, np.array([x[0], None], dtype=object)), "Python objects"
    )
    make("notzip.npz", lambda p: p.write_bytes(b"\x93NUMPY garbage"), "not a valid .npz (zip) file")
    make(
        "cutzip.npz",
        lambda p: (np.savez(p, x=x), truncate(p, os.path.getsize(p) // 2)),
        "not a valid .npz (zip) file",
    )

    def crc(p):  # one flipped byte in the stored x data: the zip's CRC no longer matches
        np.savez(p, x=x)
        corrupt(p, os.path.getsize(p) // 2, b"\x00\x01")

    make("crc.npz", crc, "corrupt .npz member x")
    make(
        "nox.npz",
        lambda p: np.savez(p, sequences=x),
        "no array 'x' in the archive, it holds ['sequences']",
    )
    make(
        "nanlengths.npz",
        lambda p: np.savez(p, x=x, lengths=np.where(np.arange(37) == 5, np.nan, lengths)),
        "lengths must be whole numbers, got nan at row 5",
    )
    make(
        "zerolength.npz",
        lambda p: np.savez(p, x=x, lengths=np.where(np.arange(37) == 7, 0, lengths)),
        "lengths must be in [1, T] (T = 11, the row's steps), got 0 at row 7",
    )
    make(
        "longlength.npz",
        lambda p: np.savez(p, x=x, lengths=lengths + 11),
        "lengths must be in [1, T] (T = 11",
    )
    make(
        "lengthshape.npz",
        lambda p: np.savez(p, x=x, lengths=lengths[:5]),
        "lengths must have shape (37,)",
    )
    make(
        "strlengths.npz",
        lambda p: np.savez(p, x=x, lengths=lengths.astype(str)),
        "lengths must hold integers",
    )
    make("unknown.csv", lambda p: p.write_text("1,2,3"), "unknown input format")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return cases
    make(
        "cut.parquet",
        lambda p: (pq.write_table(table(x, lengths), p), truncate(p, 300)),
        "not a valid Parquet file",
    )
    nulls = pa.table(
        {"x": pa.array([x[0].tolist(), None], type=pa.list_(pa.list_(pa.float32(), I)))}
    )
    make("nullrow.parquet", lambda p: pq.write_table(nulls, p), "x is null at row 1")
    short = pa.table(
        {"x": pa.array([x[0].tolist(), [[1.0, 2.0]]], type=pa.list_(pa.list_(pa.float32())))}
    )
    make(
        "shortstep.parquet",
        lambda p: pq.write_table(short, p),
        "x has 2 features in a step of row 1",
    )
    make(
        "badlengths.parquet",
        lambda p: pq.write_table(table(x, lengths + 11, ragged=False), p),
        "lengths must be in [1, T]",
    )
    make(
        "strings.parquet",
        lambda p: pq.write_table(pa.table({"x": ["a", "b"]}), p),
        "must be a list of steps",
    )
    twice = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["lengths", "lengths"])
    make(
        "twice.parquet",
        lambda p: pq.write_table(twice.append_column("x", table(x[:1], lengths[:1])["x"]), p),
        "column 'lengths' appears more than once",
    )
    make(
        "garbage.arrow",
        lambda p: p.write_bytes(b"ARROW1 but not really"),
        "not a valid Arrow IPC file",
    )
    return cases


def test_predict_refuses_bad_inputs_cleanly(tmp_path, lstm_file, capsys):
    _, model_path = lstm_file
    for name, (path, words) in bad_inputs(tmp_path).items():
        out = tmp_path / f"{name}.out.npz"
        capsys.readouterr()
        rc = cli(model_path, path, "-o", out)
        err = capsys.readouterr().err
        assert rc == 2, (name, err)
        assert str(path) in err and words in err, (name, err)
        assert err.startswith("fastrnn predict: ") and "Traceback" not in err, (name, err)
        assert not out.exists() and not [f for f in os.listdir(tmp_path) if f.endswith(".part")], (
            name
        )


def test_predict_refuses_bad_arguments(tmp_path, lstm_file, capsys):
    _, model_path = lstm_file
    x, lengths = data()
    np.save(tmp_path / "in.npy", x)
    cases = [
        (
            (tmp_path / "missing.safetensors", tmp_path / "in.npy", "-o", tmp_path / "o.npy"),
            "missing.safetensors",
        ),
        ((model_path, tmp_path / "missing.npy", "-o", tmp_path / "o.npy"), "missing.npy"),
        ((model_path, tmp_path / "in.npy", "-o", tmp_path / "nodir" / "o.npy"), "does not exist"),
        ((model_path, tmp_path / "in.npy", "-o", tmp_path / "in.npy"), "must not be the input"),
        ((model_path, tmp_path / "in.npy", "-o", tmp_path / "o.txt"), "unknown output format"),
        (
            (model_path, tmp_path / "in.npy", "-o", tmp_path / "o.npz", "--keep", "id"),
            "columns to keep need a Parquet or Arrow",
        ),
    ]
    for argv, words in cases:
        capsys.readouterr()
        assert cli(*argv) == 2, argv
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err
    for argv in (("--batch-size", "0"), ("--threads", "-1"), ("--dtype", "fp8")):
        with pytest.raises(SystemExit) as e:
            cli(model_path, tmp_path / "in.npy", "-o", tmp_path / "o.npy", *argv)
        assert e.value.code == 2
    assert sorted(os.listdir(tmp_path)) == ["in.npy", "model.safetensors"]


@pytest.mark.parametrize("failure", [KeyboardInterrupt, ValueError])
def test_predict_failure_mid_stream_leaves_nothing(
    tmp_path, lstm_file, monkeypatch, capsys, failure
):
    """An interruption or error after some batches were written: the temporary file is
    removed and an existing output keeps its old content."""
    _, model_path = lstm_file
    x, _ = data()
    np.save(tmp_path / "in.npy", x)
    (tmp_path / "out.npz").write_bytes(b"previous results")
    calls = []
    real = BatchPredictor.predict_padded

    def flaky(self, x, lengths=None):
        calls.append(1)
        if len(calls) == 3:
            raise failure("planted")
        return real(self, x, lengths)

    monkeypatch.setattr(BatchPredictor, "predict_padded", flaky)
    rc = cli(model_path, tmp_path / "in.npy", "-o", tmp_path / "out.npz", "--batch-size", 4)
    assert rc == (130 if failure is KeyboardInterrupt else 2)
    assert "not written" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["in.npy", "model.safetensors", "out.npz"]
    assert (tmp_path / "out.npz").read_bytes() == b"previous results"


RUN_SCRIPT = textwrap.dedent(
    """
    import argparse, resource, sys
    from fastrnn.cli import predict
    parser = argparse.ArgumentParser(prog="fastrnn")
    predict.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["predict", *sys.argv[1:]])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = args.func(args)
    print("peak_kib", base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
    sys.exit(code)
    """
)


def run_cli(*argv, **kw):
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
    return subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, *map(str, argv)], env=env, **kw)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_predict_signal_leaves_nothing(tmp_path, sig, code):
    model = fastrnn.LSTM(64, 128, seed=0)
    model.save(str(tmp_path / "m.safetensors"))
    x = np.lib.format.open_memmap(tmp_path / "in.npy", "w+", np.float32, (4000, 200, 64))
    x[:] = 0.5
    del x
    proc = run_cli(
        tmp_path / "m.safetensors",
        tmp_path / "in.npy",
        "-o",
        tmp_path / "out.npy",
        "--batch-size",
        16,
        "--threads",
        1,  # one core: ~2 s of work on any machine, so the signal lands mid-run
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not [f for f in os.listdir(tmp_path) if f.endswith(".part")]:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.01)
    time.sleep(0.3)  # a few batches in
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "out.npy not written" in err and "Traceback" not in err, err
    assert sorted(os.listdir(tmp_path)) == ["in.npy", "m.safetensors"]


def test_predict_memory_stays_bounded(tmp_path):
    """A 302 MB .npy input (4096 sequences of 2048 steps): the process's peak RSS grows by
    far less than the input (measured: 72 MB over its baseline)."""
    N, T = 4096, 2048
    fastrnn.RNN(9, 2, seed=0).save(str(tmp_path / "m.safetensors"))
    x = np.lib.format.open_memmap(tmp_path / "in.npy", "w+", np.float32, (N, T, 9))
    rng = np.random.default_rng(0)
    for s in range(0, N, 512):
        x[s : s + 512] = rng.standard_normal((512, T, 9), dtype=np.float32)
    x.flush()
    del x
    size = os.path.getsize(tmp_path / "in.npy")
    proc = run_cli(
        tmp_path / "m.safetensors",
        tmp_path / "in.npy",
        "-o",
        tmp_path / "out.npz",
        "-q",
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    base, peak = (int(v) * 1024 for v in err.split("peak_kib")[1].split())
    assert peak - base < size / 3, (peak - base, size)
    with np.load(tmp_path / "out.npz") as z:
        y = z["y"]
        assert y.shape == (N, T, 2)
        head = np.load(tmp_path / "in.npy", mmap_mode="r")[:4]
        assert np.array_equal(
            y[:4], reference(fastrnn.load(str(tmp_path / "m.safetensors")), np.array(head))[0]
        )


def read_pty(fd, proc, timeout=60) -> str:
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("quiet", [False, True])
def test_progress_bar_on_a_terminal_only(tmp_path, quiet):
    model = fastrnn.GRU(16, 32, seed=0)
    model.save(str(tmp_path / "m.safetensors"))
    np.save(tmp_path / "in.npy", np.ones((600, 50, 16), np.float32))
    args = (
        tmp_path / "m.safetensors",
        tmp_path / "in.npy",
        "-o",
        tmp_path / "out.npy",
        "--batch-size",
        8,
    )
    args += ("-q",) if quiet else ()
    master, slave = pty.openpty()
    proc = run_cli(*args, stderr=slave, stdout=subprocess.DEVNULL)
    os.close(slave)
    shown = read_pty(master, proc)
    os.close(master)
    assert proc.wait(timeout=60) == 0, shown
    if quiet:
        assert "rows/s" not in shown, shown
    else:
        assert "rows/s" in shown and "ETA" in shown and "600/600 rows" in shown and "\r" in shown, (
            shown
        )
    piped = run_cli(*args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out, err = piped.communicate(timeout=60)
    assert piped.returncode == 0
    assert "rows/s" not in err and "\r" not in err, err
    assert ("wrote" in out) != quiet, out


def test_predict_npy_layouts_and_empty_inputs(tmp_path, lstm_file):
    """A Fortran-order .npy (read through a memory map), big-endian float64, and no rows."""
    model, model_path = lstm_file
    x, _ = data()
    y, h, c = reference(model, x)
    np.save(tmp_path / "f.npy", np.asfortranarray(x))
    np.save(tmp_path / "be.npy", x.astype(">f8"))
    for name in ("f", "be"):
        assert (
            cli(
                model_path,
                tmp_path / f"{name}.npy",
                "-o",
                tmp_path / f"{name}.npz",
                "--batch-size",
                4,
                "-q",
            )
            == 0
        )
        got_y, got_h, got_c, _ = read_output(tmp_path / f"{name}.npz")
        assert np.array_equal(got_y, y) and np.array_equal(got_h, h) and np.array_equal(got_c, c), (
            name
        )
    np.save(tmp_path / "empty.npy", x[:0])
    assert cli(model_path, tmp_path / "empty.npy", "-o", tmp_path / "empty.npz", "-q") == 0
    with np.load(tmp_path / "empty.npz") as z:
        assert (
            z["y"].shape == (0, 11, 12)
            and z["h_n"].shape == (0, 4, 6)
            and z["c_n"].shape == (0, 4, 6)
        )
