"""The oversubscription guard (csrc/core/threads.h): after two contended multi-thread calls
in a row, calls run on one thread for a while. It must engage when other processes keep
every core busy, and must not mistake waking workers for contention: a call that comes
after an idle gap (its workers asleep, their vCPUs possibly halted by the host) does not
count, so a service that calls every few tens of milliseconds keeps its two threads.
Results never depend on it (test_threads.py), only the speed; so these tests look at its
state (_core.threads_guard()), never at timings. Each runs in a fresh interpreter: the
guard's state is process-wide, and earlier tests (test_concurrency.py) leave it busy."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from fastrnn import _core

pytestmark = pytest.mark.skipif(_core.hardware_threads() < 2, reason="needs 2 hardware threads")

PRELUDE = """
import multiprocessing as mp, time
import fastrnn, numpy as np
from fastrnn import _core
model = fastrnn.LSTM(256, 256, seed=0)
assert model.plan(1, 10**4, num_threads=2)["threads"] == 2
x = np.random.default_rng(0).standard_normal((100, 1, 256), dtype=np.float32)
fastrnn.set_num_threads(2)
def call():
    model(x)
def spin(stop):
    while not stop.is_set():
        pass
"""

IDLE_GAPS = """
for _ in range(20):
    time.sleep(0.025)  # beyond libgomp's spin: the worker sleeps (and its vCPU may halt)
    model(x)
    state = _core.threads_guard()
    assert state["backing_off"] == 0 and state["backoff_len"] == 0, state
"""

BUSY_CORES = """
if __name__ == "__main__":
    call()
    stop = mp.Event()
    hogs = [mp.Process(target=spin, args=(stop,)) for _ in range(_core.hardware_threads())]
    for h in hogs:
        h.start()
    try:
        engaged = False
        deadline = time.monotonic() + 20
        while not engaged and time.monotonic() < deadline:
            call()
            engaged = _core.threads_guard()["backoff_len"] > 0
    finally:
        stop.set()
        for h in hogs:
            h.join()
    assert engaged, "two busy processes per core never made the guard back off"
    # Quiet again: the back-off runs out, then a clean multi-thread call resets it.
    for _ in range(5000):
        call()
        if _core.threads_guard()["backoff_len"] == 0:
            break
    assert _core.threads_guard()["backoff_len"] == 0, _core.threads_guard()
"""

# A stream's step of this layer runs on 2 threads without a barrier: its threads meet only
# at the call's join, which must count as one (ops/rnn-forward.cc).
STREAM = """
assert model.plan(1, 1, num_threads=2)["threads"] == 2
stream = model.stream()
x_t = x[0, 0]
def call():  # 100 steps
    for _ in range(100):
        stream.step(x_t)
"""

# After each idle gap the helper sleeps, and in a VM its vCPU comes back late for several
# steps (measured, 2-vCPU KVM Zen 4: ~0.5 ms for each of the next 12 steps). The caller
# then runs the helper's share itself (ThreadTeam::run, retractable): the outputs are one
# thread's, bit for bit.
STREAM_IDLE_GAPS = (
    STREAM
    + """
fastrnn.set_num_threads(1)
one = model.stream()
want = [one.step(x[t, 0]) for t in range(100)]
fastrnn.set_num_threads(2)
before = _core.thread_pool()["retracted"]
for gap in range(20):
    time.sleep(0.025)
    stream.reset()
    for t in range(100):
        assert np.array_equal(stream.step(x[t, 0]), want[t]), (gap, t)
assert _core.thread_pool()["retracted"] > before, _core.thread_pool()
"""
)

BACKOFF_OFF = """
if __name__ == "__main__":
    assert fastrnn.cpu_info()["threads"]["backoff"] is False
    model(x)
    stop = mp.Event()
    hogs = [mp.Process(target=spin, args=(stop,)) for _ in range(2 * _core.hardware_threads())]
    for h in hogs:
        h.start()
    try:
        t0 = time.monotonic()
        while time.monotonic() < t0 + 3:
            model(x)
            state = _core.threads_guard()
            assert state["backing_off"] == 0 and state["backoff_len"] == 0, state
    finally:
        stop.set()
        for h in hogs:
            h.join()
"""


def run(body: str, **env) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PRELUDE + body)],
        check=False,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_idle_gaps_never_back_off():
    run(IDLE_GAPS)


def test_busy_cores_engage_the_guard_and_it_lets_go():
    run(BUSY_CORES)


def test_backoff_switch_turns_the_guard_off():
    """FASTRNN_BACKOFF=0 (for benchmarks that time a thread count): contended calls never
    make the next ones run on one thread."""
    run(BACKOFF_OFF, FASTRNN_BACKOFF="0")


def test_stream_steps_run_late_helpers_shares():
    """A stream's step has no barrier, so a helper that has not started when the caller
    is done with its own share is not waited for: the caller runs that share too."""
    run(STREAM_IDLE_GAPS)


def test_stream_steps_on_busy_cores_engage_the_guard():
    """...but a helper that was awake when the call began and came late lacked a core."""
    run(STREAM + BUSY_CORES)
