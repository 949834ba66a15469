"""Leak check: resident memory stays flat over 10,000 calls (mixed models, cells, streams,
and calls that fail at the boundary or inside the core) and over 1,000 model loads (save to
a file and fastrnn.load, from_torch, load_state_dict, pickling).

Each check runs in a fresh interpreter so that the rest of the suite does not disturb it.
RSS is read from /proc/self/statm after a warm-up round (allocator pools, caches and lazy
imports settle there) and again at the end; the growth must stay below 8 MiB. A leak of one
small buffer per call shows up far above that: 10,000 × a 64-float state is 2.4 MiB, and
the mixed calls below allocate 1–40 KB each (10,000 calls leaking them: 10–400 MB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

MiB = 1 << 20
GROWTH_LIMIT = 8 * MiB
CALLS = 10_000
LOADS = 1_000

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/statm"), reason="needs Linux /proc/self/statm"
)

COMMON = textwrap.dedent(
    """
    import gc, json, os, sys
    import numpy as np
    import fastrnn

    PAGE = os.sysconf("SC_PAGE_SIZE")

    def rss():
        gc.collect()
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE

    def measure(work, rounds, warmup):
        work(warmup)
        before = rss()
        work(rounds)
        return {"before": before, "after": rss(), "growth": rss() - before}
    """
)

CALLS_SCRIPT = COMMON + textwrap.dedent(
    """
    rng = np.random.default_rng(0)
    models = [
        fastrnn.LSTM(8, 32, num_layers=2, seed=0),
        fastrnn.LSTM(8, 24, proj_size=7, bidirectional=True, seed=1),
        fastrnn.GRU(8, 33, bidirectional=True, batch_first=True, seed=2),
        fastrnn.RNN(8, 17, nonlinearity="relu", seed=3),
        fastrnn.RNN(8, 65, num_layers=3, seed=4),
    ]
    cells = [fastrnn.LSTMCell(8, 16, seed=5), fastrnn.GRUCell(8, 16, seed=6),
             fastrnn.RNNCell(8, 16, seed=7)]
    streams = [m.stream(batch=2) for m in (models[0], models[3], models[4])]
    xs = [rng.standard_normal((T, 3, 8)).astype(np.float32) for T in (1, 5, 40)]
    lengths = np.array([5, 1, 3])

    def bad_calls(k):
        m = models[k % len(models)]
        for bad in (np.zeros((2, 3, 9), np.float32), np.zeros((2, 3, 8), np.int32), "x"):
            try:
                m(bad)
            except (ValueError, TypeError):
                pass
        try:  # the core's own checks (C++ exceptions through pybind11)
            m._core.forward(np.zeros((2, 3, 9), np.float32), None, None, None)
        except (ValueError, TypeError):
            pass

    def work(n):
        for k in range(n):
            kind = k % 10
            if kind < 4:
                m = models[k % len(models)]
                x = xs[k % len(xs)]
                if m.batch_first:
                    x = x.transpose(1, 0, 2)
                m(x, lengths=lengths if x.shape[0 if not m.batch_first else 1] >= 5 else None)
            elif kind == 4:
                m = models[k % len(models)]
                m(xs[1][:, 0].astype(np.float64))  # unbatched, converted
            elif kind < 7:
                c = cells[k % len(cells)]
                c(xs[0][0])
            elif kind < 9:
                s = streams[k % len(streams)]
                s.step(xs[0][0, :2])
                if k % 50 == 7:
                    s.feed(xs[1][:, :2])
                    s.reset()
            else:
                bad_calls(k)

    print(json.dumps(measure(work, int(sys.argv[1]), 2000)))
    """
)

LOADS_SCRIPT = COMMON + textwrap.dedent(
    """
    import pickle, tempfile
    import torch

    torch.manual_seed(0)
    modules = [torch.nn.LSTM(6, 16, num_layers=2), torch.nn.GRU(6, 16, bidirectional=True),
               torch.nn.RNN(6, 16, nonlinearity="relu"), torch.nn.LSTMCell(6, 16)]
    tmp = tempfile.mkdtemp()
    paths = []
    for i, mod in enumerate(modules):
        p = os.path.join(tmp, f"m{i}.safetensors")
        fastrnn.from_torch(mod).save(p)
        paths.append(p)
    torch_path = os.path.join(tmp, "m.pt")
    torch.save(modules[0].state_dict(), torch_path)
    x = np.ones((3, 2, 6), np.float32)

    def work(n):
        for k in range(n):
            kind = k % 5
            if kind == 0:
                m = fastrnn.load(paths[k % len(paths)])
            elif kind == 1:
                m = fastrnn.from_torch(modules[k % len(modules)])
                m.save(paths[k % len(paths)])
            elif kind == 2:
                m = fastrnn.load(torch_path)
            elif kind == 3:
                m = pickle.loads(pickle.dumps(fastrnn.load(paths[0])))
            else:
                m = fastrnn.load(paths[1])
                m.load_state_dict(m.state_dict())
                try:
                    fastrnn.load(paths[1] + ".missing")
                except OSError:
                    pass
            m(x[:, 0] if isinstance(m, fastrnn.LSTMCell) else x)

    print(json.dumps(measure(work, int(sys.argv[1]), 200)))
    """
)


def run_script(script: str, n: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", script, str(n)],
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_rss_flat_over_10000_calls():
    r = run_script(CALLS_SCRIPT, CALLS)
    print(f"{CALLS} calls: RSS {r['before'] / MiB:.1f} → {r['after'] / MiB:.1f} MiB")
    assert r["growth"] < GROWTH_LIMIT, r


def test_rss_flat_over_1000_loads():
    pytest.importorskip("torch")
    r = run_script(LOADS_SCRIPT, LOADS)
    print(f"{LOADS} loads: RSS {r['before'] / MiB:.1f} → {r['after'] / MiB:.1f} MiB")
    assert r["growth"] < GROWTH_LIMIT, r
