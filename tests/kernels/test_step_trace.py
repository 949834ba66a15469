"""The developer's step trace (csrc/core/step-trace.h, CMake option FASTRNN_STEP_TRACE):
tests/native/step_trace_check.cc runs two threads through barriers with known shares (thread
1 busy three times as long as thread 0 each step) and the summary the trace prints at exit
must attribute them: each thread its own work, the difference as the imbalance and as the
first thread's wait, a hand-off far shorter than a step, the calls and barriers counted.
Built without the option the same program prints nothing of it. The shares are spun for
(1 and 3 ms), so the bounds below hold on a loaded machine by a wide margin: they check the
trace's bookkeeping, not any speed. Skipped without g++ or outside a source checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GXX = shutil.which("g++")

pytestmark = pytest.mark.skipif(
    GXX is None or not (REPO / "csrc" / "core" / "step-trace.cc").is_file(),
    reason="needs g++ and a source checkout",
)

MS = 1e6  # the summary is in ns


def build_and_run(tmp_path: Path, traced: bool) -> subprocess.CompletedProcess:
    exe = tmp_path / ("traced" if traced else "plain")
    build = subprocess.run(
        [
            GXX,
            "-std=c++17",
            "-O2",
            "-Icsrc",
            *(["-DFASTRNN_STEP_TRACE"] if traced else []),
            "tests/native/step_trace_check.cc",
            "csrc/core/step-trace.cc",
            "-o",
            str(exe),
            "-pthread",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("ok:"), run.stdout
    return run


def summary(stderr: str) -> tuple[str, dict[str, tuple[float, float, float]]]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    heads = [i for i, line in enumerate(lines) if line.startswith("step-trace ")]
    assert len(heads) == 1, stderr
    rows = {}
    for line in lines[heads[0] + 1 :]:
        *name, p10, p50, p90 = line.split()
        rows[" ".join(name)] = (float(p10), float(p50), float(p90))
    return lines[heads[0]], rows


def test_trace_attributes_each_threads_work_and_wait(tmp_path):
    head, rows = summary(build_and_run(tmp_path, traced=True).stderr)
    # 3 calls of 12 barriers; each call's first barrier is reported apart ("first").
    assert head.startswith("step-trace B=1 T=12 H=16 dtype=0: 3 calls, 33 barriers"), head
    assert set(rows) == {
        "call",
        "start tid0",
        "start tid1",
        "first",
        "tail",
        "work tid0",
        "work tid1",
        "imbalance",
        "wait",
        "wake",
        "last",
    }
    for name, (p10, p50, p90) in rows.items():
        assert p10 <= p50 <= p90, (name, rows[name])
    work0, work1 = rows["work tid0"][1], rows["work tid1"][1]
    assert 0.9 * MS <= work0 <= 2.5 * MS, rows
    assert 2.9 * MS <= work1 <= 8 * MS, rows
    # Thread 0 arrives first by thread 1's extra 2 ms and waits it out.
    assert 1.5 * MS <= rows["imbalance"][1] <= work1, rows
    assert 1.5 * MS <= rows["wait"][1] <= work1, rows
    assert rows["wake"][1] < 0.5 * MS and rows["last"][1] < 0.5 * MS, rows
    assert rows["call"][1] >= 12 * 3 * MS, rows
    assert rows["first"][1] >= 2.9 * MS and rows["tail"][1] < rows["call"][1], rows


def test_without_the_option_the_trace_is_silent(tmp_path):
    assert "step-trace" not in build_and_run(tmp_path, traced=False).stderr
