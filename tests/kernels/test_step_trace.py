"""The developer's step trace (csrc/core/step-trace.h, CMake option FASTRNN_STEP_TRACE):
tests/native/step_trace_check.cc runs two threads through barriers with known shares (thread
1 busy three times as long as thread 0 each step) and the summary the trace prints at exit
must attribute them: each thread its own work, the difference as the imbalance and as the
first thread's wait, a hand-off far shorter than a step, the calls and barriers counted.
Built without the option the same program prints nothing of it. The shares are spun for
(1 and 3 ms) and the checks are lower bounds and orderings, which a loaded machine does not
upset: they check the trace's bookkeeping, not any speed. Skipped without g++ or outside a source checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.common import GXX, REPO, build_native

pytestmark = pytest.mark.skipif(
    GXX is None or not (REPO / "csrc" / "core" / "step-trace.cc").is_file(),
    reason="needs g++ and a source checkout",
)

MS = 1e6  # the summary is in ns


def build_and_run(tmp_path: Path, traced: bool) -> subprocess.CompletedProcess:
    exe = tmp_path / ("traced" if traced else "plain")
    build_native(
        exe,
        ["tests/native/step_trace_check.cc", "csrc/core/step-trace.cc"],
        ["-O2", *(["-DFASTRNN_STEP_TRACE"] if traced else [])],
    )
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
    # 3 calls of 20 barriers; each call's first barrier is reported apart ("first").
    assert head.startswith("step-trace B=1 T=20 H=16 dtype=0: 3 calls, 57 barriers"), head
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
    # Each share is spun for at least its time; a loaded machine may only lengthen it (and
    # deschedule a spinning waiter for whole time slices), so the bounds are lower ones, with
    # orderings: thread 1 works longer, thread 0 arrives first by ~2 ms and waits it out.
    assert work0 >= 0.9 * MS and work1 >= 2.9 * MS and work1 > 1.5 * work0, rows
    assert rows["imbalance"][1] >= 1.0 * MS, rows
    # At each barrier the first one's wait is the imbalance plus the hand-off, which is never
    # negative (no thread leaves before the last arrives): so at every percentile too.
    assert rows["wake"][0] >= 0, rows
    assert all(w >= i for w, i in zip(rows["wait"], rows["imbalance"])), rows
    # The last one finds the other there: its own time in the barrier is no wait.
    assert rows["last"][1] < 1.0 * MS, rows
    assert rows["call"][1] >= 20 * 3 * MS, rows
    assert rows["first"][1] >= 2.9 * MS and rows["tail"][1] < rows["call"][1], rows


def test_without_the_option_the_trace_is_silent(tmp_path):
    assert "step-trace" not in build_and_run(tmp_path, traced=False).stderr
