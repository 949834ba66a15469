"""The thread runtime (csrc/core/thread-pool.h) inside a real process: many callers sharing the
cores, a fork after a call, torch in the same process.

- Concurrent callers: 8 Python threads stepping streams of one model (and whole-sequence
  calls) get exactly the serial results, while the pool's counts show that no more threads
  computed than cores (core tokens never below 0), that teams never exceeded the budget (team
  tokens never below 0), that calls queued once the cores were busy, and that every token
  came back.
- fork: a child forked after multi-thread calls (the pool's threads do not exist there)
  computes with a fresh pool, bit for bit what the parent computes; libgomp could hang here.
- torch beside fastrnn, alternating and concurrently: neither slows the other beyond what
  sharing the cores explains. These are the only tests here that look at time: the bounds are
  loose (a collapse, as two OpenMP pools spinning against each other gave, is 3-14x).
Each runs on every instruction set.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastrnn
from fastrnn import _core
from support.common import ISAS

needs_2_cpus = pytest.mark.skipif(_core.hardware_threads() < 2, reason="needs 2 CPUs")


def pool_settled():
    """Waits for the pool's runners to give back their tokens (they spin a while first)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        p = _core.thread_pool()
        if p["free"] == p["cores"] and p["runners"] == 0:
            return p
        time.sleep(0.01)
    return _core.thread_pool()


@needs_2_cpus
@pytest.mark.parametrize("budget", [1, 2])
def test_concurrent_callers_share_the_cores(isa, budget, threads_restored):
    fastrnn.set_num_threads(budget)
    model = fastrnn.LSTM(256, 256, num_layers=2, seed=0)
    rng = np.random.default_rng(0)
    callers, steps = 8, 30  # each step of this model is a 2-thread call when alone
    xs = [rng.standard_normal((steps, 1, 256), dtype=np.float32) for _ in range(callers)]
    x_seq = rng.standard_normal((10, 3, 256), dtype=np.float32)
    expected = [model(x)[0] for x in xs]
    expected_seq = model(x_seq)
    got = [None] * callers
    seq_results = []
    samples = []
    stop = threading.Event()
    before = _core.thread_pool()["queued_calls"]

    def watch():
        while not stop.is_set():
            samples.append(_core.thread_pool())

    start = threading.Barrier(callers)  # all at once: more callers inside than cores

    def caller(i):
        stream = model.stream(batch=1)
        start.wait()
        got[i] = np.stack([stream.step(x_t) for x_t in xs[i]])
        if i % 4 == 0:
            seq_results.append(model(x_seq))

    # Whether calls meet in the pool depends on the OS scheduler: on a machine busy with
    # other processes the callers can run one after another. Up to 5 runs until a call
    # queued; every run's results and counts are checked.
    for _attempt in range(5):
        stop.clear()
        samples.clear()
        seq_results.clear()
        watcher = threading.Thread(target=watch)
        watcher.start()
        ts = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        stop.set()
        watcher.join()
        for i in range(callers):
            assert np.array_equal(got[i], expected[i]), f"caller {i}"
        for r in seq_results:
            assert all(np.array_equal(a, b) for a, b in zip(flat(r), flat(expected_seq)))
        assert samples
        assert min(s["free"] for s in samples) >= 0, "more threads computed than cores"
        assert min(s["team_free"] for s in samples) >= 0, "teams beyond the budget"
        assert max(s["callers"] for s in samples) <= callers
        after = pool_settled()
        if after["queued_calls"] > before:
            break
    assert after["queued_calls"] > before, "8 callers on fewer cores never queued (5 runs)"
    assert (after["free"], after["team_free"], after["callers"], after["queued"]) == (
        after["cores"],
        budget,
        0,
        0,
    )


def flat(result):
    y, state = result
    return [y, *(state if isinstance(state, tuple) else (state,))]


@needs_2_cpus
def test_budget_changes_while_callers_run(threads_restored):
    model = fastrnn.GRU(128, 256, seed=1)
    x = np.random.default_rng(1).standard_normal((40, 2, 128), dtype=np.float32)
    fastrnn.set_num_threads(2)
    expected = model(x)[0]
    stop = threading.Event()
    bad = []

    def flip():
        n = 0
        while not stop.is_set():
            fastrnn.set_num_threads(1 + n % 2)
            n += 1
            time.sleep(0.0005)

    def caller():
        for _ in range(30):
            if not np.array_equal(model(x)[0], expected):
                bad.append(1)

    flipper = threading.Thread(target=flip)
    flipper.start()
    ts = [threading.Thread(target=caller) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stop.set()
    flipper.join()
    fastrnn.set_num_threads(2)
    assert not bad
    p = pool_settled()
    assert (p["free"], p["team_free"], p["callers"]) == (p["cores"], 2, 0)


def _child_compute(conn, threads):
    import fastrnn as f

    f.set_num_threads(threads)
    m = f.LSTM(256, 256, num_layers=2, seed=3)
    x = np.random.default_rng(3).standard_normal((12, 1, 256), dtype=np.float32)
    conn.send((m(x)[0], m.plan(1, 10**4)["threads"], _core.thread_pool()))
    conn.close()


@needs_2_cpus
def test_fork_after_a_call_computes_in_the_child(isa, threads_restored):
    fastrnn.set_num_threads(2)
    m = fastrnn.LSTM(256, 256, num_layers=2, seed=3)
    x = np.random.default_rng(3).standard_normal((12, 1, 256), dtype=np.float32)
    ref = m(x)[0]  # the pool's helper threads now exist (and spin)
    assert _core.thread_pool()["workers"] >= 1
    ctx = mp.get_context("fork")
    for threads in (2, 1):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_child_compute, args=(child, threads))
        p.start()
        assert parent.poll(60), "the forked child hung"
        y, nt, pool = parent.recv()
        p.join(10)
        assert p.exitcode == 0
        assert nt == threads
        assert np.array_equal(y, ref)
        assert pool["workers"] == (1 if threads == 2 else 0), pool  # its own, new pool
    assert np.array_equal(m(x)[0], ref)  # and the parent's pool still works


AFFINITY = r"""
import json, os, sys, time
import numpy as np, fastrnn
from fastrnn import _core
mask = set(json.loads(sys.argv[1]))
os.sched_setaffinity(0, mask)  # before the pool's threads exist: they start with it
model = fastrnn.LSTM(256, 256, seed=0)
x = np.random.default_rng(0).standard_normal((20, 1, 256), dtype=np.float32)
fastrnn.set_num_threads(2)
want = model(x)[0]
for _ in range(10):
    time.sleep(0.01)  # past the helper's idle spin: it sleeps, and the next call wakes it
    assert np.array_equal(model(x)[0], want)
assert _core.thread_pool()["sleeps"] >= 5, _core.thread_pool()
for tid in os.listdir(f"/proc/{os.getpid()}/task"):
    got = os.sched_getaffinity(int(tid))
    assert got == mask, (tid, got, mask)
"""


@needs_2_cpus
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux affinity calls")
def test_woken_helpers_keep_their_cpu_set():
    """A helper woken on its caller's CPU moves off it by narrowing its CPU set for a moment
    (csrc/core/thread-pool.cc move_off_cpu): every thread ends with the set it started with,
    the process's own or one a user gave it."""
    cpus = sorted(os.sched_getaffinity(0))
    for mask in {tuple(cpus), tuple(cpus[:2])}:
        proc = subprocess.run(
            [sys.executable, "-c", AFFINITY, json.dumps(list(mask))],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]


TORCH_TOGETHER = r"""
import json, statistics, sys, threading, time
import numpy as np, torch, fastrnn
torch.manual_seed(0)
tl = torch.nn.LSTM(256, 256, num_layers=2).eval()
fl = fastrnn.from_torch(tl)
torch.set_num_threads(2)
fastrnn.set_num_threads(2)
x = np.random.default_rng(0).standard_normal((50, 1, 256), dtype=np.float32)
xt = torch.from_numpy(x)

def t_torch():
    with torch.inference_mode():
        tl(xt)

def t_fast():
    fl(x)

def median(f, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)

for f in (t_torch, t_fast):
    for _ in range(20): f()
alone = {"torch": median(t_torch, 60), "fastrnn": median(t_fast, 60)}
# Alternating, one call each, back to back: torch's OpenMP threads spin after its call while
# fastrnn runs, and the other way round.
ta, fa = [], []
for _ in range(60):
    t0 = time.perf_counter(); t_torch(); t1 = time.perf_counter(); t_fast(); t2 = time.perf_counter()
    ta.append(t1 - t0); fa.append(t2 - t1)
alternating = {"torch": statistics.median(ta), "fastrnn": statistics.median(fa)}
# Concurrently: one Python thread each, for a while.
res = {}
stop = threading.Event()
def loop(name, f):
    ts = []
    while not stop.is_set():
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    res[name] = statistics.median(ts)
threads = [threading.Thread(target=loop, args=("torch", t_torch)),
           threading.Thread(target=loop, args=("fastrnn", t_fast))]
for t in threads: t.start()
time.sleep(1.5)
stop.set()
for t in threads: t.join()
print(json.dumps({"alone": alone, "alternating": alternating, "concurrent": res}))
"""


@needs_2_cpus
@pytest.mark.parametrize("isa_name", ISAS)
def test_torch_and_fastrnn_in_one_process(isa_name):
    pytest.importorskip("torch")
    env = dict(os.environ, FASTRNN_ISA=isa_name)
    env.pop("OMP_NUM_THREADS", None)
    env.pop("FASTRNN_NUM_THREADS", None)
    for _attempt in range(3):  # a noisy neighbour can spoil one run; a collapse spoils all
        out = subprocess.run(
            [sys.executable, "-c", TORCH_TOGETHER],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        r = json.loads(out.stdout.strip().splitlines()[-1])
        slow = {
            (mode, who): r[mode][who] / r["alone"][who]
            for mode in ("alternating", "concurrent")
            for who in ("torch", "fastrnn")
        }
        # Alternating: torch's idle OpenMP threads spin for milliseconds after each torch call
        # (GOMP_SPINCOUNT), holding a core through fastrnn's next call, which then runs on one
        # thread (the oversubscription guard): ~1.9x its time alone is that shared core;
        # without the guard seeing it, 4.8x. On the shared 2-vCPU host of 2026-12-01 the
        # guard missed it in about half the runs (4-5.5x, the code of the previous release
        # too), so timing is not asserted here (tests never assert on timing): this guards
        # against a collapse (a livelock of spinning pools: 10x and more; torch alone was 6x
        # slower while fastrnn's idle helpers spun with pause instead of yielding), and the
        # slow-downs are printed. Concurrently, two 2-thread engines share 2 cores: ~2x each.
        print(f"slow-downs against each alone: {slow}")
        ok = all(v <= 10.0 for v in slow.values())
        if ok:
            return
    pytest.fail(f"slow-downs against each alone: {slow} (times: {r})")


FLUSH_DENORMAL = r"""
import numpy as np, torch, fastrnn
torch.manual_seed(0)
m = fastrnn.from_torch(torch.nn.LSTM(64, 256, bias=False))
assert m.plan(1, 10**4, num_threads=2)["threads"] == 2
# A subnormal initial h: each thread's recurrent sums, gates, c and h stay subnormal, unless
# that thread flushes them to zero.
x = np.zeros((3, 1, 64), np.float32)
state = (np.full((1, 1, 256), 1e-39, np.float32), np.zeros((1, 1, 256), np.float32))
run = lambda: m(x, state)[0]
torch.set_flush_denormal(True)  # flush-to-zero and denormals-are-zero, on this thread only
fastrnn.set_num_threads(2)
flushed = run()  # the pool's helper starts here and inherits this thread's mode
assert np.count_nonzero(flushed) == 0, "the caller's flush-to-zero was not used"
torch.set_flush_denormal(False)
two = run()
fastrnn.set_num_threads(1)
one = run()
assert np.count_nonzero(one) == one.size
assert np.array_equal(one, two), "a helper kept a flush-to-zero mode its caller no longer has"
print("ok")
"""


@needs_2_cpus
@pytest.mark.skipif(not any(k in os.uname().machine for k in ("x86", "amd64")), reason="x86 MXCSR")
@pytest.mark.parametrize("isa_name", ISAS)
def test_helpers_use_the_callers_floating_point_mode(isa_name):
    """The floating-point control state (flush-to-zero, denormals-are-zero) is per thread:
    the pool's threads take the caller's, so results stay the same on any thread count."""
    pytest.importorskip("torch")
    env = dict(os.environ, FASTRNN_ISA=isa_name)
    out = subprocess.run(
        [sys.executable, "-c", FLUSH_DENORMAL],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


@pytest.mark.parametrize("isa", ISAS, indirect=True)
def test_per_call_thread_cap(isa, threads_restored):
    """model(x, num_threads=n) caps one call; every cap gives the same bits; bad caps name
    the argument."""
    fastrnn.set_num_threads(2)
    lstm = fastrnn.LSTM(24, 48, num_layers=2, bidirectional=True, seed=3)
    x = np.random.default_rng(0).standard_normal((30, 5, 24), dtype=np.float32)
    want = flat(lstm(x))
    for n in (1, 2, 3):
        assert all(np.array_equal(a, b) for a, b in zip(want, flat(lstm(x, num_threads=n))))
    for bad, err in ((0, ValueError), (-2, ValueError), (1.0, TypeError), (True, TypeError)):
        with pytest.raises(err, match="LSTM: num_threads"):
            lstm(x, num_threads=bad)
