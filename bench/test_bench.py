"""pytest-benchmark suite: every workload on fastrnn and on each installed peer.

    pytest bench                                   all workloads, all peers, 1 thread
    FASTRNN_BENCH_THREADS=2 pytest bench           at 2 threads (every peer gets the same)
    pytest bench -k "lat_lstm_256"                 one workload
    pytest bench --benchmark-disable               only the correctness checks

Before it is timed, each peer's output and final state are checked against torch (max abs
error within fastrnn._bench.TOLERANCE). Results are grouped per workload, so pytest-benchmark
prints the peers of one workload side by side; extra_info carries FLOPs, GFLOP/s and the
error. For one process that alternates the peers and writes the tables, see compare.py.
"""

import os
import tempfile

import pytest
from workloads import ALL, PEERS, TOLERANCE, WORKLOADS
from workloads import runner as _bench

THREADS = int(os.environ.get("FASTRNN_BENCH_THREADS", "1"))


@pytest.fixture(scope="module")
def case_for():
    """Builds each workload's models, input and exported graph once for the whole module."""
    cases = {}
    with tempfile.TemporaryDirectory(prefix="fastrnn-bench-") as workdir:

        def get(name):
            if name not in cases:
                cases[name] = _bench.Case(WORKLOADS[name], seed=0, workdir=workdir)
            return cases[name]

        yield get


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("name", ALL)
def test_workload(benchmark, case_for, name, peer):
    reason = _bench.skip_reason(peer)
    if reason:
        pytest.skip(reason)
    w = WORKLOADS[name]
    call, errors = _bench.prepare(case_for(name), peer, THREADS)
    if errors:
        worst = max(errors.values())
        assert worst <= TOLERANCE, f"{peer} disagrees with torch on {name}: {errors}"
    benchmark.group = f"{name} ({w.describe()}), {THREADS} thread(s)"
    benchmark.extra_info.update(peer=peer, threads=THREADS, flops=w.flops(), errors=errors)
    benchmark(call)
    median = benchmark.stats.stats.median if benchmark.stats else None
    if median:
        benchmark.extra_info["gflops"] = w.flops() / median / 1e9
