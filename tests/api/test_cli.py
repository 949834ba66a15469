"""`fastrnn`, `fastrnn info` and `fastrnn bench` (verify and convert: test_cli_model.py).

The bench runs here are kept tiny (fastrnn alone or fastrnn and torch, one thread, a few
calls): they check what is printed and written, never how fast anything is.
"""

import json
import subprocess
import sys
import textwrap

import pytest

import fastrnn
from fastrnn import _bench
from fastrnn.cli import build_parser, main
from fastrnn.cli.common import bytes_text as _bytes

FAST = ["--threads", "1", "--min-time", "0.01", "--quiet"]


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    info = fastrnn.cpu_info()
    assert f"fastrnn        {fastrnn.__version__}" in out
    assert f"isa in use     {info['isa']}" in out
    assert f"kernel tiles   GEMM {info['tiles']['gemm']}, step {info['tiles']['step']}" in out
    assert ", ".join(info["available"]) in out
    caches, blocking = info["caches"], info["blocking"]
    assert f"from {caches['source']}" in out and "FASTRNN_CACHE_L1D" in out
    assert f"G_x chunk {_bytes(4 * blocking['gx_chunk_floats'])}" in out
    assert f"ahead up to {_bytes(blocking['ahead_max_weight_bytes'])}" in out
    for peer in ("torch", "onnxruntime", "openvino"):
        assert peer in out


def test_info_sizes():
    assert [_bytes(n) for n in (48 << 10, 2 << 20, 480 << 20, 3 << 19, 1 << 30, 1500, 1025)] == [
        "48 KiB",
        "2 MiB",
        "480 MiB",
        "1.5 MiB",
        "1 GiB",
        "1500 B",
        "1025 B",
    ]


def test_no_command_runs_bench(monkeypatch, capsys):
    """`fastrnn` alone is `fastrnn bench` with its defaults: the default workload."""
    seen = {}
    real_run = _bench.run

    def fake_run(names, **kwargs):
        seen.update(names=names, **kwargs)
        return real_run(names, threads=(1,), peers=["fastrnn"], min_time=0.01)

    monkeypatch.setattr(_bench, "run", fake_run)
    assert main([]) == 0
    assert seen["names"] == ["default"]
    assert seen["threads"] == _bench.default_threads()
    assert seen["peers"] is None  # every installed peer
    out = capsys.readouterr().out
    assert "default: LSTM B=1 T=100 I=256 H=256" in out
    assert "fastrnn" in out


def test_bench_fastrnn_alone(capsys):
    assert main(["bench", "--peers", "fastrnn", *FAST]) == 0
    out = capsys.readouterr().out
    assert "default: LSTM B=1 T=100 I=256 H=256" in out
    assert "parity" in out


def test_bench_with_torch_prints_parity(tmp_path, capsys):
    pytest.importorskip("torch")
    json_path, md_path = tmp_path / "r.json", tmp_path / "r.md"
    args = ["bench", "--peers", "fastrnn", "torch", *FAST]
    assert main(args + ["--json", str(json_path), "--markdown", str(md_path)]) == 0
    out = capsys.readouterr().out
    assert "parity vs torch, default: max abs output" in out
    assert "→ PASS" in out
    doc = json.loads(json_path.read_text())
    peers = {r["peer"] for r in doc["results"]}
    assert peers == {"fastrnn", "torch"}
    assert all(r["median_us"] > 0 for r in doc["results"])
    assert "| `default` | 1 |" in md_path.read_text()


def test_bench_streaming_workload_uses_the_stream(capsys):
    """Streaming workloads time fastrnn through model.stream(...).step(x_t)."""
    pytest.importorskip("torch")
    assert main(["bench", "--workload", "stream_gru_256", "--peers", "fastrnn", *FAST]) == 0
    assert "parity vs torch, stream_gru_256" in capsys.readouterr().out


def test_bench_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "r.png"
    assert main(["bench", "--peers", "fastrnn", *FAST, "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("bad", [["--threads", "0"], ["--workload", "nope"], ["--peers", "tf"]])
def test_bench_bad_arguments(bad, capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", *bad])
    assert info.value.code == 2
    assert "fastrnn bench: error:" in capsys.readouterr().err


def test_help_everywhere(capsys):
    """--help works for fastrnn itself and for every subcommand, and lists them all."""
    parser = build_parser()
    commands = list(parser._subparsers._group_actions[0].choices)
    assert set(commands) == {"bench", "info", "verify", "convert", "predict"}
    for argv in [["--help"]] + [[c, "--help"] for c in commands]:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: fastrnn")
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    for word in ("--all", "--json", "--plot", "--threads", "stream_lstm_256"):
        assert word in out


def test_help_loads_no_runner_and_no_peer():
    """`fastrnn --help` declares every command without importing the benchmark runner,
    a peer or torch."""
    code = textwrap.dedent(
        """
        import contextlib, io, sys
        from fastrnn.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                main(["--help"])
            except SystemExit:
                pass
        assert "convert" in out.getvalue() and "verify" in out.getvalue(), out.getvalue()
        loaded = sorted(m for m in sys.modules if m.startswith(("fastrnn._bench.", "torch", "onnx", "pyarrow", "ray", "dask")))
        print(loaded)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['fastrnn._bench.peers', 'fastrnn._bench.workloads']"


def test_info_plan(tmp_path, capsys):
    """`fastrnn info --plan` prints the driver's plan for the default model or a file."""
    assert main(["info", "--plan", "--batch", "3", "--steps", "7", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "plan           fastrnn.LSTM(256, 256), batch 3, 7 steps" in out
    assert "1 thread(s), schedule spans, split none" in out
    fastrnn.GRU(4, 8, bidirectional=True, seed=0).save(tmp_path / "g.safetensors")
    assert main(["info", "--plan", "--model", str(tmp_path / "g.safetensors")]) == 0
    assert "schedule layer-by-layer" in capsys.readouterr().out
    assert main(["info", "--plan", "--model", str(tmp_path / "missing.safetensors")]) == 2
    assert "fastrnn info: " in capsys.readouterr().err
