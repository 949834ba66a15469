"""pytest-benchmark: recurrent loops of cell calls, fastrnn beside torch.

    pytest bench/test_cells.py                          LSTMCell, GRUCell, RNNCell; H = 8, 64, 256
    pytest bench/test_cells.py -k "LSTMCell and 64"     one cell and size
    FASTRNN_BENCH_THREADS=2 pytest bench/test_cells.py  at 2 threads (torch gets the same)

One timed call is a loop of 200 cell calls at batch 1, each fed the state the last returned,
as a decoder steps its cell (float32 numpy arrays for fastrnn, tensors under inference_mode for
torch). Before it is timed, fastrnn's final state is checked against torch's (max abs error
within TOLERANCE). Without torch only fastrnn runs, unchecked.
"""

import importlib.util
import os

import numpy as np
import pytest
from workloads import TOLERANCE
from workloads import runner as _bench  # noqa: F401  (imports the fastrnn workloads chose)

import fastrnn

THREADS = int(os.environ.get("FASTRNN_BENCH_THREADS", "1"))
STEPS = 200
HAS_TORCH = importlib.util.find_spec("torch") is not None


def cell_loop(cell, xs):
    """The benchmark's call: STEPS calls of cell, each on the state the last returned."""

    def run():
        state = None
        for x in xs:
            state = cell(x, state)
        return state

    return run


def torch_cell(name, H):
    import torch

    torch.manual_seed(0)
    return getattr(torch.nn, name)(H, H)


def final_h(state):
    h = state[0] if isinstance(state, tuple) else state
    return h.detach().numpy() if hasattr(h, "detach") else h


@pytest.mark.parametrize("peer", ["fastrnn", "torch"])
@pytest.mark.parametrize("H", [8, 64, 256])
@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cell_loop(benchmark, name, H, peer):
    if peer == "torch" and not HAS_TORCH:
        pytest.skip("torch is not installed")
    xs = np.random.default_rng(0).standard_normal((STEPS, 1, H)).astype(np.float32)
    if HAS_TORCH:
        import torch

        torch.set_num_threads(THREADS)
        module = torch_cell(name, H)
        with torch.inference_mode():
            expected = final_h(cell_loop(module, torch.from_numpy(xs))())
    if peer == "fastrnn":
        fastrnn.set_num_threads(THREADS)
        if HAS_TORCH:
            cell = fastrnn.from_torch(module)
        else:
            cell = getattr(fastrnn, name)(H, H, seed=0)
        call = cell_loop(cell, list(xs))
    else:
        call = cell_loop(module, list(torch.from_numpy(xs)))
    if HAS_TORCH:
        if peer == "torch":
            with torch.inference_mode():
                got = final_h(call())
        else:
            got = final_h(call())
        error = float(np.max(np.abs(got - expected)))
        assert error <= TOLERANCE, f"{peer} {name} H={H} disagrees with torch: {error}"
    benchmark.group = f"{name} H={H}: {STEPS} recurrent calls at batch 1, {THREADS} thread(s)"
    benchmark.extra_info.update(peer=peer, threads=THREADS, calls=STEPS)
    if peer == "torch":
        with torch.inference_mode():
            benchmark(call)
    else:
        benchmark(call)
