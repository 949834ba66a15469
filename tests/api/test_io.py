"""Model files: save/load round trips, torch state_dict files, and every way a file can be
bad (each a ValueError naming the file and the problem)."""

import dataclasses
import json
import os
import re
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastrnn

MODELS = [
    ("LSTM", dict(input_size=5, hidden_size=7)),
    ("LSTM", dict(input_size=3, hidden_size=9, num_layers=2, proj_size=4, bidirectional=True)),
    ("LSTM", dict(input_size=4, hidden_size=6, batch_first=True, bias=False)),
    ("GRU", dict(input_size=5, hidden_size=7, num_layers=3, bidirectional=True)),
    ("GRU", dict(input_size=2, hidden_size=3, bias=False, batch_first=True)),
    ("RNN", dict(input_size=6, hidden_size=7, num_layers=2)),
    ("RNN", dict(input_size=6, hidden_size=7, nonlinearity="relu", bidirectional=True)),
    ("LSTMCell", dict(input_size=5, hidden_size=7)),
    ("GRUCell", dict(input_size=5, hidden_size=7, bias=False)),
    ("RNNCell", dict(input_size=5, hidden_size=7, nonlinearity="relu")),
    ("RNNCell", dict(input_size=5, hidden_size=7)),
]
IDS = [f"{c}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for c, kw in MODELS]


def make(cls, kw, seed=0):
    return getattr(fastrnn, cls)(**kw, seed=seed)


def sample_input(model, rng):
    if isinstance(model, (fastrnn.LSTMCell, fastrnn.GRUCell, fastrnn.RNNCell)):
        return rng.standard_normal((3, model.input_size)).astype(np.float32)
    return rng.standard_normal((4, 3, model.input_size)).astype(np.float32)


def outputs(model, x):
    """All arrays of a call, flattened into a list."""
    out = model(x)
    flat = []
    for a in out if isinstance(out, tuple) else (out,):
        flat.extend(a if isinstance(a, tuple) else (a,))
    return flat


def assert_same_model(a, b):
    assert type(a) is type(b)
    assert repr(a) == repr(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype == np.float32
        assert np.array_equal(sa[k], sb[k]), k
    x = sample_input(a, np.random.default_rng(0))
    for u, v in zip(outputs(a, x), outputs(b, x)):
        assert np.array_equal(u, v)


# --- raw safetensors helpers (to build bad files) ------------------------------------------


def read_raw(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def write_raw(path, header, body, header_text=None):
    text = (header_text if header_text is not None else json.dumps(header)).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + body)


@pytest.fixture
def saved(tmp_path):
    """A saved 2-layer LSTM: (path, model)."""
    model = fastrnn.LSTM(3, 4, num_layers=2, seed=0)
    path = tmp_path / "lstm.safetensors"
    model.save(path)
    return path, model


def load_error(path, **kw):
    # Every file problem names the file.
    with pytest.raises(ValueError, match=re.escape(os.fspath(path))) as info:
        fastrnn.load(path, **kw)
    message = str(info.value)
    assert str(path) in message, message
    return message


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "kw"), MODELS, ids=IDS)
def test_save_load_round_trip(tmp_path, cls, kw):
    model = make(cls, kw)
    path = tmp_path / "m.safetensors"
    model.save(path)
    assert_same_model(model, fastrnn.load(path))
    assert_same_model(model, fastrnn.load(str(path)))
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left


def test_metadata_and_keys_are_torch_compatible(saved):
    path, model = saved
    header, _ = read_raw(path)
    md = header.pop("__metadata__")
    assert md["format"] == "fastrnn" and md["format_version"] == "1"
    assert md["class"] == "LSTM" and md["mode"] == "LSTM"
    assert (md["input_size"], md["hidden_size"], md["num_layers"]) == ("3", "4", "2")
    assert (md["bias"], md["bidirectional"], md["batch_first"], md["proj_size"]) == (
        "true",
        "false",
        "false",
        "0",
    )
    assert set(header) == set(model.state_dict())
    assert all(e["dtype"] == "F32" for e in header.values())


def test_rnn_metadata_has_nonlinearity(tmp_path):
    fastrnn.RNN(2, 3, nonlinearity="relu", seed=0).save(tmp_path / "r.safetensors")
    md = read_raw(tmp_path / "r.safetensors")[0]["__metadata__"]
    assert md["nonlinearity"] == "relu" and md["mode"] == "RNN_RELU"


def test_file_is_readable_by_safetensors(saved):
    from safetensors.numpy import load_file

    path, model = saved
    tensors = load_file(str(path))
    for k, v in model.state_dict().items():
        assert np.array_equal(tensors[k], v)


def test_batch_first_hint_overrides_stored_layout(saved):
    path, _ = saved
    assert fastrnn.load(path, batch_first=True).batch_first
    assert not fastrnn.load(path).batch_first


def test_mode_hint_must_agree(saved):
    path, _ = saved
    assert "holds a LSTM model, mode='GRU' was given" in load_error(path, mode="GRU")


def test_other_dtypes_are_converted(tmp_path, saved):
    path, model = saved
    header, body = read_raw(path)
    md = header.pop("__metadata__")
    sd = model.state_dict()
    for dtype, np_dtype, name in (("F16", np.float16, "h"), ("F64", np.float64, "d")):
        new_header, chunks, offset = {"__metadata__": md}, [], 0
        for k, v in sd.items():
            raw = v.astype(np_dtype).tobytes()
            new_header[k] = {
                "dtype": dtype,
                "shape": list(v.shape),
                "data_offsets": [offset, offset + len(raw)],
            }
            chunks.append(raw)
            offset += len(raw)
        p = tmp_path / f"{name}.safetensors"
        write_raw(p, new_header, b"".join(chunks))
        loaded = fastrnn.load(p).state_dict()
        for k, v in sd.items():
            assert np.array_equal(loaded[k], v.astype(np_dtype).astype(np.float32)), (dtype, k)


def test_bf16_is_widened_exactly(tmp_path):
    model = fastrnn.GRUCell(2, 3, seed=0)
    sd = model.state_dict()
    header, chunks, offset = {}, [], 0
    for k, v in sd.items():
        raw = (v.view(np.uint32) >> 16).astype("<u2").tobytes()  # truncation to bf16
        header[k] = {
            "dtype": "BF16",
            "shape": list(v.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    write_raw(tmp_path / "b.safetensors", header, b"".join(chunks))
    loaded = fastrnn.load(tmp_path / "b.safetensors").state_dict()
    for k, v in sd.items():
        assert np.array_equal(loaded[k], (v.view(np.uint32) & 0xFFFF0000).view(np.float32))


def test_plain_safetensors_state_dict_is_inferred(tmp_path):
    from safetensors.numpy import save_file

    model = fastrnn.LSTM(3, 8, num_layers=2, proj_size=2, seed=0)
    save_file(model.state_dict(), str(tmp_path / "plain.safetensors"), metadata={"format": "pt"})
    assert_same_model(model, fastrnn.load(tmp_path / "plain.safetensors"))


def test_loading_needs_no_torch(saved):
    path, model = saved
    script = textwrap.dedent(
        f"""
        import sys

        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None

        sys.meta_path.insert(0, BlockTorch())
        import numpy as np
        import fastrnn

        model = fastrnn.load({str(path)!r})
        y, (h, c) = model(np.ones((2, 1, 3), np.float32))
        assert "torch" not in sys.modules
        print(repr(model), float(y.sum()).hex())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    y, _ = model(np.ones((2, 1, 3), np.float32))
    assert result.stdout.split() == ["fastrnn.LSTM(3,", "4,", "num_layers=2)", float(y.sum()).hex()]


# --- bad files ------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 5, 8, 20, -1, -17])
def test_truncated(saved, keep):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    message = load_error(path)
    assert any(w in message for w in ("too short", "truncated", "not valid JSON", "cover")), message


def test_huge_header_length(saved):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(struct.pack("<Q", 2**62) + data[8:])
    assert "declares a 4611686018427387904-byte header" in load_error(path)


def test_header_bytes_flipped(saved):
    path, _ = saved
    data = bytearray(path.read_bytes())
    for i in range(8, 14):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "header is not valid JSON" in load_error(path)


def test_header_not_an_object(tmp_path):
    write_raw(tmp_path / "a.safetensors", None, b"", header_text="[1, 2]")
    assert "header must be a JSON object, got list" in load_error(tmp_path / "a.safetensors")


def test_duplicate_keys(saved):
    path, _ = saved
    header, body = read_raw(path)
    text = json.dumps(header)
    entry = json.dumps(header["weight_ih_l0"])
    text = text[:-1] + f', "weight_ih_l0": {entry}}}'
    write_raw(path, None, body, header_text=text)
    assert "duplicate keys ['weight_ih_l0']" in load_error(path)


def test_huge_declared_shape_allocates_nothing(saved):
    import tracemalloc

    path, _ = saved
    header, body = read_raw(path)
    header["weight_ih_l0"]["shape"] = [1 << 24, 1 << 24]
    write_raw(path, header, body)
    tracemalloc.start()
    message = load_error(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "'weight_ih_l0' has shape (16777216, 16777216) F32 (1125899906842624 bytes)" in message
    assert peak < 10 * path.stat().st_size + (1 << 20)


def test_shape_beyond_bound(saved):
    path, _ = saved
    header, body = read_raw(path)
    header["weight_ih_l0"]["shape"] = [1 << 40, 0]
    write_raw(path, header, body)
    assert "expected at most 8 sizes in [0, 16777216]" in load_error(path)


def test_offsets_outside_file(saved):
    path, _ = saved
    header, body = read_raw(path)
    begin, end = header["bias_hh_l1"]["data_offsets"]
    header["bias_hh_l1"]["data_offsets"] = [begin + 10**6, end + 10**6]
    write_raw(path, header, body)
    assert "outside the" in load_error(path)


def test_overlapping_tensors(saved):
    path, _ = saved
    header, body = read_raw(path)
    header["bias_hh_l0"]["data_offsets"] = header["bias_ih_l0"]["data_offsets"]
    write_raw(path, header, body)
    assert "overlap or leave a gap" in load_error(path)


def test_trailing_bytes(saved):
    path, _ = saved
    path.write_bytes(path.read_bytes() + b"\0" * 16)
    assert "trailing bytes" in load_error(path)


@pytest.mark.parametrize("dtype", ["I32", "U8", "BOOL", "F8_E4M3", 7])
def test_wrong_dtype(saved, dtype):
    path, _ = saved
    header, body = read_raw(path)
    header["weight_hh_l0"]["dtype"] = dtype
    write_raw(path, header, body)
    assert (
        f"tensor 'weight_hh_l0' has dtype {dtype!r}; fastrnn reads F32, F16, F64, BF16"
        in load_error(path)
    )


def test_malformed_entry(saved):
    path, _ = saved
    header, body = read_raw(path)
    header["weight_hh_l0"]["extra"] = 1
    write_raw(path, header, body)
    assert "must have exactly dtype, shape and data_offsets" in load_error(path)


def drop(path, key):
    """Rewrites a file without one tensor (offsets kept consistent)."""
    header, body = read_raw(path)
    md = header.pop("__metadata__")
    new, chunks, offset = {"__metadata__": md}, [], 0
    for k, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        if k == key:
            continue
        b, en = e["data_offsets"]
        new[k] = dict(e, data_offsets=[offset, offset + en - b])
        chunks.append(body[b:en])
        offset += en - b
    write_raw(path, new, b"".join(chunks))


def add(path, key, array):
    header, body = read_raw(path)
    raw = array.astype("<f4").tobytes()
    header[key] = {
        "dtype": "F32",
        "shape": list(array.shape),
        "data_offsets": [len(body), len(body) + len(raw)],
    }
    write_raw(path, header, body + raw)


def test_missing_key(saved):
    path, _ = saved
    drop(path, "bias_hh_l1")
    assert "missing keys ['bias_hh_l1'] for LSTM(3, 4, num_layers=2)" in load_error(path)


def test_extra_key(saved):
    path, _ = saved
    add(path, "weight_hr_l0", np.zeros((2, 4), np.float32))
    assert "unexpected keys ['weight_hr_l0'] for LSTM(3, 4, num_layers=2)" in load_error(path)


def test_shape_inconsistent_with_config(tmp_path):
    path = tmp_path / "m.safetensors"
    fastrnn.LSTM(3, 4, seed=0).save(path)
    header, body = read_raw(path)
    header["__metadata__"]["input_size"] = "6"  # weight_ih_l0 is (16, 3), 48 floats
    header["weight_ih_l0"]["shape"] = [8, 6]  # same byte count, wrong shape for the config
    write_raw(path, header, body)
    assert "'weight_ih_l0' has shape (8, 6), expected (16, 6) for LSTM(6, 4)" in load_error(path)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("hidden_size", "-1", "metadata hidden_size must be a non-negative integer, got '-1'"),
        ("hidden_size", "four", "metadata hidden_size must be a non-negative integer, got 'four'"),
        ("hidden_size", "0", "hidden_size must be in [1, 16777216], got 0"),
        ("input_size", "99999999", "input_size must be in [1, 16777216], got 99999999"),
        ("input_size", "1" * 40, "metadata input_size must be a non-negative integer"),
        ("num_layers", "5000", "num_layers must be in [1, 4096], got 5000"),
        ("proj_size", "4", "proj_size=4 needs an LSTM with hidden_size > proj_size"),
        ("bias", "yes", "metadata bias must be 'true' or 'false', got 'yes'"),
        ("mode", "GRU", "metadata mode 'GRU' does not fit class 'LSTM'"),
        ("class", "Transformer", "metadata class must be one of"),
        ("format_version", "4", "format_version 4 by a newer fastrnn"),
        ("format_version", "x", "metadata format_version must be an integer, got 'x'"),
        ("nonlinearity", "relu", "metadata nonlinearity 'relu' does not fit mode 'LSTM'"),
        ("input_size", None, "metadata lacks 'input_size'"),
        ("bidirectional", "true", "missing keys ['weight_ih_l0_reverse'"),
    ],
)
def test_bad_metadata(saved, key, value, problem):
    path, _ = saved
    header, body = read_raw(path)
    if value is None:
        del header["__metadata__"][key]
    else:
        header["__metadata__"][key] = value
    write_raw(path, header, body)
    assert problem in load_error(path)


def test_cell_metadata_must_be_a_cell(tmp_path):
    path = tmp_path / "c.safetensors"
    fastrnn.GRUCell(3, 4, seed=0).save(path)
    header, body = read_raw(path)
    header["__metadata__"]["num_layers"] = "2"
    write_raw(path, header, body)
    assert "a GRUCell must have num_layers=1, got 2" in load_error(path)


def test_not_a_model_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a model file at all")
    assert "truncated, or not a safetensors file" in load_error(path)


def test_safetensors_without_rnn(tmp_path):
    from safetensors.numpy import save_file

    save_file({"fc.weight": np.zeros((2, 2), np.float32)}, str(tmp_path / "x.safetensors"))
    assert "holds no RNN weights" in load_error(tmp_path / "x.safetensors")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastrnn.load(tmp_path / "nope.safetensors")


def test_write_and_build_reject_other_objects(tmp_path):
    with pytest.raises(TypeError, match="write: config must be a fastrnn.ModelConfig, got dict"):
        fastrnn.io.write(tmp_path / "x.safetensors", {}, {})
    with pytest.raises(TypeError, match="build: config must be a fastrnn.ModelConfig, got dict"):
        fastrnn.build({}, {})
    bad = fastrnn.ModelConfig("GRU", "LSTM", 4, 8)
    with pytest.raises(ValueError, match="build: mode 'LSTM' does not fit class 'GRU'"):
        fastrnn.build(bad, {})


# --- torch state_dict files -------------------------------------------------------------------


def torch_module(cls, kw):
    import torch.nn as nn

    return getattr(nn, cls)(**kw)


def hint_for(cls, kw):
    if cls in ("RNN", "RNNCell"):
        return {"mode": "RNN_RELU" if kw.get("nonlinearity") == "relu" else "RNN_TANH"}
    return {}


@pytest.mark.parametrize(("cls", "kw"), MODELS, ids=IDS)
def test_torch_state_dict_file(tmp_path, cls, kw):
    torch = pytest.importorskip("torch")
    module = torch_module(cls, kw)
    path = tmp_path / "m.pt"
    torch.save(module.state_dict(), path)
    loaded = fastrnn.load(path, batch_first=kw.get("batch_first"), **hint_for(cls, kw))
    assert_same_model(fastrnn.from_torch(module), loaded)


def test_torch_legacy_format(tmp_path):
    torch = pytest.importorskip("torch")
    module = torch.nn.GRU(3, 5, num_layers=2)
    torch.save(module.state_dict(), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    assert_same_model(fastrnn.from_torch(module), fastrnn.load(tmp_path / "old.pt"))


def test_torch_half_and_bf16_weights(tmp_path):
    torch = pytest.importorskip("torch")
    module = torch.nn.LSTM(3, 4)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        sd = {k: v.to(dtype) for k, v in module.state_dict().items()}
        torch.save(sd, tmp_path / "h.pt")
        loaded = fastrnn.load(tmp_path / "h.pt").state_dict()
        for k, v in sd.items():
            assert np.array_equal(loaded[k], v.float().numpy()), (dtype, k)


def test_torch_rnn_needs_a_mode(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.RNN(3, 4).state_dict(), tmp_path / "r.pt")
    assert "pass mode='RNN_TANH' or mode='RNN_RELU'" in load_error(tmp_path / "r.pt")
    assert fastrnn.load(tmp_path / "r.pt", nonlinearity="relu").nonlinearity == "relu"


def test_torch_mode_must_fit_shapes(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.GRU(3, 4).state_dict(), tmp_path / "g.pt")
    message = load_error(tmp_path / "g.pt", mode="LSTM")
    assert "mode='LSTM' needs 4·hidden_size = 16 rows in weight_hh_l0, the file has 12" in message


def test_torch_prefix_is_found(tmp_path):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.LSTM(3, 4, batch_first=True)
            self.head = torch.nn.Linear(4, 2)

    net = Net()
    torch.save({"epoch": 3, "state_dict": net.state_dict()}, tmp_path / "ckpt.pt")
    loaded = fastrnn.load(tmp_path / "ckpt.pt", batch_first=True)
    assert_same_model(fastrnn.from_torch(net.encoder), loaded)


def test_torch_several_rnns_need_a_prefix(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.ModuleDict({"a": torch.nn.GRU(3, 4), "b": torch.nn.LSTM(2, 5)})
    torch.save(net.state_dict(), tmp_path / "two.pt")
    assert "holds several RNNs (key prefixes ['a.', 'b.'])" in load_error(tmp_path / "two.pt")
    assert_same_model(fastrnn.from_torch(net["b"]), fastrnn.load(tmp_path / "two.pt", prefix="b."))


def test_torch_extra_key_inside_prefix(tmp_path):
    torch = pytest.importorskip("torch")
    sd = torch.nn.LSTM(3, 4).state_dict()
    sd["weight_ih_l1"] = torch.zeros(16, 4)
    torch.save(sd, tmp_path / "x.pt")
    assert "missing keys ['weight_hh_l1'" in load_error(tmp_path / "x.pt")


def test_torch_not_a_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save([torch.zeros(3)], tmp_path / "list.pt")
    assert "holds a list, not a state_dict" in load_error(tmp_path / "list.pt")


def _marker_payload(path):  # what a malicious pickle would run: must never be called
    open(path, "w").close()


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (_marker_payload, (self.marker,))


def test_torch_file_with_code_is_rejected_unexecuted(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "executed"
    torch.save({"weight_ih_l0": _Evil(str(marker))}, tmp_path / "evil.pt")
    assert "torch.load(weights_only=True) failed" in load_error(tmp_path / "evil.pt")
    assert not marker.exists()


def test_torch_corrupted_zip(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.GRU(3, 4).state_dict(), tmp_path / "g.pt")
    data = (tmp_path / "g.pt").read_bytes()
    (tmp_path / "g.pt").write_bytes(data[: len(data) // 2])
    assert "torch.load(weights_only=True) failed" in load_error(tmp_path / "g.pt")


def test_torch_reads_fastrnn_file(saved):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    path, model = saved
    module = torch.nn.LSTM(3, 4, num_layers=2)
    module.load_state_dict(load_file(str(path)))  # strict: same keys and shapes as torch
    assert_same_model(model, fastrnn.from_torch(module))


def test_bad_hints(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.RNN(3, 4).state_dict(), tmp_path / "r.pt")
    with pytest.raises(
        ValueError,
        match=r"mode must be one of \['GRU', 'LSTM', 'RNN_RELU', 'RNN_TANH'\], got 'rnn'",
    ):
        fastrnn.load(tmp_path / "r.pt", mode="rnn")
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        fastrnn.load(tmp_path / "r.pt", nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="mode='RNN_TANH' contradicts nonlinearity='relu'"):
        fastrnn.load(tmp_path / "r.pt", mode="RNN_TANH", nonlinearity="relu")
    with pytest.raises(TypeError, match="prefix must be a str, got int"):
        fastrnn.load(tmp_path / "r.pt", prefix=3)


def test_saved_file_permissions_follow_the_umask(tmp_path):
    """model.save creates files like any other file the process writes (0666 minus the
    umask; safetensors' save_file alone would make them 0600, unreadable by a serving user)."""
    old = os.umask(0o022)
    try:
        fastrnn.GRU(2, 3, seed=0).save(tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o644


def test_concurrent_saves_to_one_path(tmp_path):
    """Threads saving different models to one path: the file is always one whole model."""
    import threading

    models = [fastrnn.LSTM(3, 4, seed=i) for i in range(8)]
    path = tmp_path / "m.safetensors"
    errors = []

    def work(m):
        try:
            for _ in range(10):
                m.save(path)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    loaded = fastrnn.load(path).state_dict()
    assert any(all(np.array_equal(loaded[k], v) for k, v in m.state_dict().items()) for m in models)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


# --- the one internal model form ----------------------------------------------------------------


@pytest.mark.parametrize(("cls", "kw"), MODELS, ids=IDS)
def test_config_describes_every_model(cls, kw):
    """model.config is the model without its weights: build(config, weights) gives the same
    model, its parameter shapes are the state_dict's and torch's, and it survives the file
    metadata round trip."""
    model = make(cls, kw)
    config = model.config
    assert config.kind == cls and config.is_cell == cls.endswith("Cell")
    assert config.mode == model.mode if hasattr(model, "mode") else config.mode.startswith(cls[:3])
    assert config.problem() is None
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert config.parameter_shapes() == shapes
    assert config.parameter_count() == sum(v.size for v in model.state_dict().values())
    try:  # torch's own shapes, where torch is installed (the wheel's test venv has none)
        import torch.nn as nn
    except ImportError:
        nn = None
    if nn is not None:
        torch_kw = {k: v for k, v in kw.items() if k != "nonlinearity" or "RNN" in cls}
        module = getattr(nn, cls)(**torch_kw)
        torch_shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        assert config.parameter_shapes() == torch_shapes
    rebuilt = fastrnn.build(config, model.state_dict())
    assert type(rebuilt) is type(model) and rebuilt.config == config
    assert_same_model(model, rebuilt)
    assert fastrnn.ModelConfig.from_metadata(config.to_metadata()) == config
    assert config.describe().startswith(f"{cls}({kw['input_size']}, {kw['hidden_size']}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hidden_size = 3


def test_config_gate_counts_and_nonlinearity():
    C = fastrnn.ModelConfig
    assert [
        C(k, m, 2, 5).gates for k, m in (("LSTM", "LSTM"), ("GRU", "GRU"), ("RNN", "RNN_TANH"))
    ] == [4, 3, 1]
    assert C("RNN", "RNN_RELU", 2, 5).nonlinearity == "relu"
    assert C("LSTM", "LSTM", 2, 5).nonlinearity is None
    assert C("LSTM", "LSTM", 2, 5, proj_size=3, bidirectional=True).h_out == 3
    assert "proj_size=5 needs an LSTM" in C("GRU", "GRU", 2, 5, proj_size=5).problem()
    assert "a GRUCell must have num_layers=1" in C("GRUCell", "GRU", 2, 5, num_layers=2).problem()
    assert "hidden_size must be in [1," in C("LSTM", "LSTM", 2, 0).problem()


def test_every_importer_gives_the_same_config_and_weights(tmp_path):
    """A fastrnn file, a torch file, a safetensors state_dict and a torch module of one
    model all read as the same (ModelConfig, weights)."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    module = torch.nn.LSTM(3, 8, num_layers=2, proj_size=5, bidirectional=True)
    fastrnn.from_torch(module).save(tmp_path / "a.safetensors")
    torch.save(module.state_dict(), tmp_path / "a.pt")
    save_file(module.state_dict(), str(tmp_path / "b.safetensors"))
    reads = [
        fastrnn.io.read(tmp_path / "a.safetensors"),
        fastrnn.io.read(tmp_path / "a.pt"),
        fastrnn.io.read(tmp_path / "b.safetensors"),
        fastrnn.io.pytorch.read_module(module),
    ]
    for config, weights in reads:
        assert config == reads[0][0]
        assert list(weights) == list(reads[0][1])
        for k, w in weights.items():
            assert np.array_equal(np.asarray(w), reads[0][1][k]), k
