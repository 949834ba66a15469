"""Every script in bench/ runs as its docstring says, from the installed fastrnn:
compare.py, limits.py, sweep.py, anatomy.py, service.py, variants.py, precision.py, ab.py and
`pytest bench`, each in a subprocess, each in its quick mode (one small workload or two sweep
points, or small T; 1 thread; seconds).

The scripts run from a copy of bench/ in a temporary checkout whose python/fastrnn holds the
stub _core.pyi and no compiled core, as after `pip install .`, plus an __init__.py that fails
on import: they must import the installed package, and whatever they write (limits.json, results) lands in
the copy or in a temporary directory, never in the repository. csrc/ is linked for anatomy.py
(the kernel headers). Missing peers (onnxruntime, openvino, tract), matplotlib or
pytest-benchmark only leave out their part; limits.py and anatomy.py need g++ and are skipped
without it. Skipped as a whole outside a repository checkout (no bench/ next to tests/).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import fastrnn
from fastrnn import _bench

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
GXX = shutil.which("g++") or shutil.which("c++")
ISA = fastrnn.cpu_info()["isa"]
AVAILABLE = fastrnn.cpu_info()["available"]

pytestmark = pytest.mark.skipif(
    not (BENCH / "compare.py").is_file(), reason="needs the repository's bench/ folder"
)
needs_gxx = pytest.mark.skipif(GXX is None, reason="needs g++ (limits.py, anatomy.py build C++)")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A checkout after `pip install .`: bench/ without its outputs, csrc/ linked, and
    python/fastrnn with sources only, whose import fails loudly if a script picks it."""
    root = tmp_path_factory.mktemp("checkout")
    shutil.copytree(
        BENCH,
        root / "bench",
        ignore=shutil.ignore_patterns(
            "results",
            "results.*",
            "sweep.json",
            "sweep.md",
            "sweep.png",
            "limits.json",
            "__pycache__",
            ".benchmarks",
        ),
    )
    shutil.copy(REPO / "README.md", root / "README.md")
    try:
        os.symlink(REPO / "csrc", root / "csrc", target_is_directory=True)
    except OSError:
        shutil.copytree(REPO / "csrc", root / "csrc")
    package = root / "python" / "fastrnn"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "raise ImportError('bench/ imported the uncompiled source tree, not the installed fastrnn')\n"
    )
    (package / "_core.pyi").write_text("def isa() -> str: ...\n")
    return root


def run(checkout: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `python *args` in the checkout; fails with its output unless it exits with 0."""
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"python {' '.join(args)} exited with {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    )
    return proc


def readmes(checkout: Path) -> tuple:
    return (checkout / "README.md").read_text(), (checkout / "bench" / "README.md").read_text()


def test_workloads_prefers_only_a_compiled_core(tmp_path):
    """bench/workloads.py takes the checkout's python/ only when a compiled _core for this
    interpreter sits in python/fastrnn: the stub _core.pyi alone (after `pip install .`) is
    no build."""
    (tmp_path / "bench").mkdir()
    shutil.copy(BENCH / "workloads.py", tmp_path / "bench" / "workloads.py")
    package = tmp_path / "python" / "fastrnn"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('source tree')\n")
    (package / "_core.pyi").write_text("")
    probe = ["-c", "import sys; sys.path.insert(0, 'bench'); import workloads"]
    ok = subprocess.run([sys.executable, *probe], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    (package / f"_core{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    picked = subprocess.run([sys.executable, *probe], cwd=tmp_path, capture_output=True, text=True)
    assert "ImportError: source tree" in picked.stderr


@needs_gxx
def test_limits_quick(checkout):
    proc = run(checkout, "bench/limits.py", "--quick")
    assert "peak fp32 FMA" in proc.stdout and "lower bound" in proc.stdout
    lim = json.loads((checkout / "bench" / "limits.json").read_text())
    assert lim["fma_gflops"]["1"] > 0 and lim["repeat"] == 1
    for isa in ("avx512", "avx2"):
        if isa in AVAILABLE:
            assert lim["fma_gflops_by_isa"][isa]["1"] > 0, isa
    if "avx2" in AVAILABLE:
        assert "AVX2 (ymm)" in proc.stdout


def test_compare_quick(checkout, tmp_path):
    before = readmes(checkout)
    run(checkout, "bench/compare.py", "--quick", "--out", str(tmp_path))
    (md,) = tmp_path.glob("*.md")
    assert md.stem.endswith(f"-{ISA}")
    doc = json.loads(md.with_suffix(".json").read_text())
    machine = doc["machine"]
    assert machine["fastrnn"]["isa"] == ISA and md.stem == f"{machine['slug']}-{ISA}"
    text = md.read_text()
    assert text.startswith(f"# Benchmark results: {machine['cpu']}")
    for line in ("- CPU: ", "- Flags: ", "- Caches: ", f"- ISA: fastrnn ran **{ISA}**"):
        assert f"\n{line}" in text, line
    records = [r for r in doc["results"] if r["workload"] == "small_lstm_64"]
    assert {r["peer"] for r in records} == set(_bench.PEERS)
    assert all(r["median_us"] for r in records if r["peer"] == "fastrnn")
    assert readmes(checkout) == before  # --quick leaves the READMEs alone


@pytest.mark.skipif("avx2" not in AVAILABLE, reason="this CPU has no AVX2")
def test_compare_isa_avx2(checkout, tmp_path):
    """--isa avx2 runs fastrnn's AVX2 kernels and holds torch to AVX2 (oneDNN, MKL, ATen)."""
    args = ["--quick", "--isa", "avx2", "--peers", "fastrnn", "torch", "--out", str(tmp_path)]
    run(checkout, "bench/compare.py", *args)
    (path,) = tmp_path.glob("*-avx2.json")
    machine = json.loads(path.read_text())["machine"]
    assert machine["fastrnn"]["isa"] == "avx2"
    assert machine["isa_environment"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    if machine["peers"]["torch"]:
        assert machine["torch_cpu_capability"] == "AVX2"


def test_service_quick(checkout, tmp_path):
    out = tmp_path / "service.json"
    proc = run(checkout, "bench/service.py", "--quick", "--json", str(out))
    assert "| threads | callers | fastrnn steps/s" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    fast = [r for r in rows if r["engine"] == "fastrnn"]
    assert {(r["threads"], r["callers"]) for r in fast} == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert all(r["steps_per_s"] > 0 and 0 < r["p50_us"] <= r["p99_us"] for r in fast)
    assert not list((checkout / "bench").glob("results/*service*"))  # --quick saves nothing


def test_variants_quick(checkout):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    proc = run(checkout, "bench/variants.py", "--quick")
    rows = [
        line
        for line in proc.stdout.splitlines()
        if line.startswith("| classic GRU") or line.startswith("| LSTM with")
    ]
    assert len(rows) == 4
    # The same weights in both engines: the outputs agree before anything is timed.
    assert all(float(row.rsplit("|", 2)[-2]) < 1e-5 for row in rows)


def test_precision_quick(checkout, tmp_path):
    """A row per workload and contender; fastrnn's three dtypes run everywhere, float32 within
    the parity tolerance of torch, bf16 and int8 within their stated bounds and not float32 in
    disguise (likewise torch's qint8); onnxruntime's missing int8 GRU says n/a."""
    from fastrnn._quantize import BOUNDS

    out = tmp_path / "precision.md"
    proc = run(checkout, "bench/precision.py", "--quick", "--out", str(out))
    rows = {}
    for line in proc.stdout.splitlines():
        if line.startswith("| `"):
            workload, contender, *cells = (c.strip() for c in line.strip("|").split("|"))
            rows[workload.strip("`"), contender] = cells  # median, speed-up, max err, mean err
    workloads = ("lat_lstm_256", "lat_gru_256", "lat_lstm_1024", "stream_lstm_256", "tput_lstm_512")
    assert {w for w, _ in rows} == set(workloads) and len(rows) == 10 * len(workloads)
    for w in workloads:
        for dtype in ("float32", "bf16", "int8", "int7"):
            assert rows[w, f"fastrnn {dtype}"][0] not in ("n/a", "failed"), (w, dtype)
        if not _installed("torch"):
            continue
        assert float(rows[w, "fastrnn float32"][2]) <= _bench.PARITY_TOLERANCE, w
        for dtype, (max_bound, mean_bound) in BOUNDS.items():
            max_err, mean_err = (float(v) for v in rows[w, f"fastrnn {dtype}"][2:4])
            assert 0 < max_err <= max_bound and 0 < mean_err <= mean_bound, (w, dtype)
        assert float(rows[w, "torch qint8"][2]) > 0, w  # quantize_dynamic swapped the RNN
    if all(_installed(m) for m in ("torch", "onnx", "onnxruntime")):
        assert rows["lat_gru_256", "onnxruntime int8"][0] == "n/a"
        assert rows["lat_lstm_256", "onnxruntime int8"][0] not in ("n/a", "failed")
    text = out.read_text()
    assert text.startswith("# Reduced precision against the peers: ")
    for line in ("- CPU: ", "- Flags: ", "- Caches: ", f"- ISA: fastrnn ran **{ISA}**"):
        assert f"\n{line}" in text, line
    assert not list((checkout / "bench").glob("results/*precision*"))  # --out went elsewhere


def test_sweep_quick(checkout, tmp_path):
    proc = run(checkout, "bench/sweep.py", "--quick", "--out", str(tmp_path))
    assert "| 64 |" in proc.stdout and "| 256 |" in proc.stdout
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["H"] for r in doc["records"]] == [64, 256]
    assert (tmp_path / "sweep.md").is_file()


def test_ab_quick(checkout, tmp_path):
    """ab.py times the installed fastrnn (A) against its own compiled core put into a copy of
    the package (B), in alternating processes that each import the contender's fastrnn; the
    table has the pair's row and a verdict, --json every process's figures."""
    core = Path(fastrnn._core.__file__)
    out = tmp_path / "ab.json"
    proc = run(checkout, "bench/ab.py", "--quick", "--b", str(core), "--json", str(out))
    assert "CPU: " in proc.stdout and f"ISA {ISA}" in proc.stdout
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("| `small_lstm_64`")]
    assert row.rstrip(" |").endswith("level")  # 2 rounds can never reach p < 0.05
    doc = json.loads(out.read_text())
    (r,) = doc["rows"]
    assert len(r["a"]) == len(r["b"]) == r["rounds"] == 2 and all(t > 0 for t in r["a"] + r["b"])
    assert doc["contenders"]["b"].startswith(f"{core} in a copy of ")
    assert doc["contenders"]["a"] == str(Path(fastrnn.__file__).resolve().parent)


def test_ab_rejects_bad_contenders(checkout, tmp_path):
    """A contender that is neither a package root, the package nor a compiled core, a
    malformed --env-b and --rounds 0 stop the script, before anything is timed, with a message
    naming the argument."""
    bad = tmp_path / "core.txt"
    bad.write_text("")
    for args, says in (
        (["--b", str(bad)], "--b: a compiled core must be named _core<suffix>"),
        (["--a", str(tmp_path / "missing")], "--a: expected a directory holding a fastrnn"),
        (["--env-b", "FASTRNN_ISA"], "--env-b must be KEY=VALUE"),
        (["--rounds", "0"], "--rounds must be at least 1"),
    ):
        proc = subprocess.run(
            [sys.executable, "bench/ab.py", *args],
            cwd=checkout,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0 and says in proc.stderr, (args, proc.stderr[-500:])


def test_ab_statistics():
    """The sign test and the verdicts: only a split as one-sided as 6 rounds of 6 (p = 1/32)
    says faster or slower; the ratio is the median of the rounds' own ratios."""
    spec = importlib.util.spec_from_file_location("bench_ab", BENCH / "ab.py")
    ab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ab)
    assert ab.sign_test(0, 6) == pytest.approx(2 / 64)
    assert ab.sign_test(1, 5) == pytest.approx(2 * 7 / 64)
    assert ab.sign_test(3, 3) == 1.0 and ab.sign_test(0, 0) == 1.0
    a = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
    faster = ab.summarize(a, [t * 0.9 for t in a])
    assert faster["verdict"] == "B faster" and faster["ratio"] == pytest.approx(0.9)
    assert faster["b_faster_rounds"] == 6 and faster["a_median_s"] == 1.5
    assert ab.summarize(a, [t * 1.1 for t in a])["verdict"] == "B slower"
    five = ab.summarize(a, [t * 0.9 for t in a[:5]] + [a[5] * 1.01])
    assert five["verdict"] == "level" and five["b_faster_rounds"] == 5
    assert ab.summarize(a[:5], [t * 0.5 for t in a[:5]])["verdict"] == "level"  # p = 1/16
    with pytest.raises(ValueError, match="one figure per round"):
        ab.summarize(a, a[:5])


@needs_gxx
@pytest.mark.skipif(
    not {"avx2", "avx512"} & set(AVAILABLE), reason="anatomy.cc needs AVX2 or AVX-512"
)
def test_anatomy_quick(checkout):
    proc = run(checkout, "bench/anatomy.py", "--quick")
    assert "share of peak" in proc.stdout and "gemm_rows512_K512" in proc.stdout


def test_pytest_bench(checkout):
    """`pytest bench` collects every workload × peer, and a test of each file runs (or skips,
    without pytest-benchmark or the peer) without error."""
    quiet = ["-q", "-p", "no:cacheprovider"]
    proc = run(checkout, "-m", "pytest", "bench", "--collect-only", *quiet)
    collected = re.search(r"(\d+) tests? collected", proc.stdout)
    assert collected, proc.stdout[-500:]
    assert int(collected.group(1)) >= len(_bench.ALL) * len(_bench.PEERS)
    short = ["--benchmark-max-time=0.2"] if _installed("pytest_benchmark") else []
    one = ["-k", "small_lstm_64 and fastrnn", *short]
    run(checkout, "-m", "pytest", "bench/test_bench.py", *quiet, *one)
    cell = ["-k", "LSTMCell and 8 and fastrnn", *short]
    run(checkout, "-m", "pytest", "bench/test_cells.py", *quiet, *cell)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False
