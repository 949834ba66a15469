"""`fastrnn verify MODEL_FILE` and `fastrnn convert IN OUT`."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastrnn
from fastrnn.cli import main

torch = pytest.importorskip("torch")


def assert_same_weights(a, b):
    assert repr(a) == repr(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_convert_torch_file(tmp_path, capsys):
    module = torch.nn.LSTM(3, 6, num_layers=2, proj_size=2)
    torch.save(module.state_dict(), tmp_path / "m.pt")
    out = tmp_path / "m.safetensors"
    assert main(["convert", str(tmp_path / "m.pt"), str(out), "--batch-first"]) == 0
    assert (
        f"wrote {out}: fastrnn.LSTM(3, 6, num_layers=2, batch_first=True, proj_size=2)"
        in capsys.readouterr().out
    )
    loaded = fastrnn.load(out)
    assert loaded.batch_first
    expected = fastrnn.from_torch(module)
    expected.batch_first = True
    assert_same_weights(loaded, expected)


def test_convert_rnn_needs_mode(tmp_path, capsys):
    torch.save(torch.nn.RNN(3, 4).state_dict(), tmp_path / "r.pt")
    out = str(tmp_path / "r.safetensors")
    assert main(["convert", str(tmp_path / "r.pt"), out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastrnn convert: ") and "pass mode='RNN_TANH'" in err
    assert not os.path.exists(out)
    assert main(["convert", str(tmp_path / "r.pt"), out, "--mode", "RNN_RELU"]) == 0
    assert fastrnn.load(out).nonlinearity == "relu"


def test_convert_does_not_overwrite_without_force(tmp_path, capsys):
    torch.save(torch.nn.GRUCell(3, 4).state_dict(), tmp_path / "c.pt")
    out = tmp_path / "c.safetensors"
    out.write_bytes(b"keep me")
    assert main(["convert", str(tmp_path / "c.pt"), str(out)]) == 2
    assert "exists (use --force to overwrite)" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["convert", str(tmp_path / "c.pt"), str(out), "--force"]) == 0
    assert isinstance(fastrnn.load(out), fastrnn.GRUCell)


def test_convert_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    assert main(["convert", str(bad), str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: header is not valid JSON" in err


@pytest.mark.parametrize(
    "model",
    [
        fastrnn.LSTM(4, 8, num_layers=2, batch_first=True, seed=0),
        fastrnn.GRU(4, 8, bidirectional=True, seed=1),
        fastrnn.RNN(4, 8, nonlinearity="relu", seed=2),
        fastrnn.LSTMCell(4, 8, seed=3),
    ],
    ids=["lstm", "gru-bi", "rnn-relu", "lstmcell"],
)
def test_verify_fastrnn_file(tmp_path, capsys, model):
    path = tmp_path / "m.safetensors"
    model.save(path)
    assert main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: {model!r}\nfastrnn.verify: OK")


def test_verify_torch_file_json(tmp_path, capsys):
    torch.save(torch.nn.GRU(3, 5, num_layers=2).state_dict(), tmp_path / "g.pt")
    assert main(["verify", str(tmp_path / "g.pt"), "--json", "--steps", "5", "--batch", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["tolerance"] == 1e-5
    assert report["verdict"].startswith("as accurate as torch: error vs float64 ")
    assert 0 <= report["fastrnn_error"] <= 1e-5 and report["torch_dtype"] == "float32"
    assert report["input_shape"] == [5, 3, 3]
    assert set(report["errors"]) == {"output", "h_n"}


def test_verify_exit_code_follows_the_tolerance(tmp_path, capsys):
    fastrnn.LSTM(8, 32, seed=0).save(tmp_path / "m.safetensors")
    code = main(["verify", str(tmp_path / "m.safetensors"), "--tolerance", "0", "--json"])
    report = json.loads(capsys.readouterr().out)
    by_ratio = all(e["fastrnn_error"] <= 2 * e["torch_error"] for e in report["errors"].values())
    assert code == (0 if by_ratio else 1)
    assert report["ok"] == (code == 0)
    assert report["verdict"].startswith("as accurate as torch" if by_ratio else "less accurate")


def test_verify_bad_file(tmp_path, capsys):
    (tmp_path / "x.safetensors").write_bytes(b"\x00" * 4)
    assert main(["verify", str(tmp_path / "x.safetensors")]) == 2
    assert "too short" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "missing.pt")]) == 2
    assert "fastrnn verify: " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("verify", ["MODEL_FILE", "--tolerance", "--mode"]),
        ("convert", ["IN", "OUT", "--mode", "--batch-first", "--force"]),
    ],
)
def test_help(capsys, command, words):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for w in words:
        assert w in text


def test_module_entry_point(tmp_path):
    fastrnn.GRU(3, 4, seed=0).save(tmp_path / "g.safetensors")
    result = subprocess.run(
        [sys.executable, "-m", "fastrnn.cli", "verify", str(tmp_path / "g.safetensors")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "fastrnn.verify: OK" in result.stdout
