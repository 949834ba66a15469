"""Bounded resources: memory independent of T for very long sequences, and absurd sizes
refused before anything is allocated.

Peak memory is measured in a fresh interpreter (so that the rest of the suite does not
disturb it): the input is allocated first, the kernel's peak resident set size is reset
(`echo 5 > /proc/self/clear_refs`), and after the call VmHWM − VmRSS(before) is the call's
peak growth. A call must allocate its output; everything beyond it is workspace.

Figures (AMD EPYC, 2 cores; quoted in the README's Guarantees):
- GRU(4, 4), B = 1, T = 1,000,000 unidirectional: output 15.3 MiB, workspace beyond it ≤ 1 MiB
  (the same as at T = 1000). 3-layer LSTM: ≤ 0.01 MiB beyond the output.
- Bidirectional stacks (L ≥ 2) hold one more T-sized buffer (DESIGN: layers ping-pong with
  the output): GRU(4, 4, num_layers=2, bidirectional) at T = 1e6: 30.5 MiB beyond the output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import fastrnn

MiB = 1 << 20
# Workspace allowed beyond the output: the driver's G_x chunk and, for a stack, its two span
# buffers, whose sizes follow the caches (cpu_info()["blocking"]; the subprocesses below
# inherit this session's FASTRNN_CACHE_* overrides), plus 1.5 MiB of allocator slack: 4 MiB
# on the Zen 4 whose L2 of 1 MiB the sizes were tuned on (25 % of a 1M-step output), 6.5 MiB
# on a 2 MiB L2.
_BLOCKING = fastrnn.cpu_info()["blocking"]
WORKSPACE_LIMIT = 4 * (_BLOCKING["gx_chunk_floats"] + 2 * _BLOCKING["span_floats"]) + 3 * MiB // 2

needs_proc = pytest.mark.skipif(
    not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc (VmHWM reset)"
)

PEAK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import fastrnn

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024

    def reset_peak():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    results = {}
    for label, make, T in json.loads(sys.argv[1]):
        model = eval(make)
        x = np.ones((T, 1, model.input_size), np.float32)
        model(x[:10])  # warm-up: first-call allocations are not the call's
        reset_peak()
        before = status("VmRSS")
        y, _ = model(x)
        growth = status("VmHWM") - before
        results[label] = {"T": T, "growth": growth, "output": y.nbytes, "input": x.nbytes}
        del y, x
    print(json.dumps(results))
    """
)


def peak_growth(cases) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, json.dumps(cases)],
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@needs_proc
def test_million_step_call_runs_in_memory_independent_of_T():
    """A 1,000,000-step unidirectional call: peak growth = its output + ≤ WORKSPACE_LIMIT, the
    same workspace as a 1000-step call (the driver runs chunk-outer through all layers)."""
    cases = [
        ["gru-1k", "fastrnn.GRU(4, 4, seed=0)", 1000],
        ["gru-1M", "fastrnn.GRU(4, 4, seed=0)", 1_000_000],
        ["lstm3-1M", "fastrnn.LSTM(4, 4, num_layers=3, seed=0)", 1_000_000],
        ["rnn-relu-1M", "fastrnn.RNN(4, 4, nonlinearity='relu', seed=0)", 1_000_000],
    ]
    results = peak_growth(cases)
    for label, r in results.items():
        workspace = r["growth"] - r["output"]
        print(
            f"{label}: T={r['T']} output {r['output'] / MiB:.2f} MiB, "
            f"workspace {workspace / MiB:.3f} MiB"
        )
        assert workspace <= WORKSPACE_LIMIT, (label, r)
    assert results["gru-1M"]["output"] == 1_000_000 * 4 * 4


@needs_proc
def test_bidirectional_stack_holds_one_more_sequence_buffer():
    """Bidirectional stacks of L ≥ 2 layers keep one T-sized buffer besides the output (the
    layers ping-pong with it); nothing more grows with T."""
    results = peak_growth(
        [["gru-bi2-200k", "fastrnn.GRU(4, 4, num_layers=2, bidirectional=True, seed=0)", 200_000]]
    )
    r = results["gru-bi2-200k"]
    workspace = r["growth"] - 2 * r["output"]
    assert workspace <= WORKSPACE_LIMIT, r


# --- absurd sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (
            lambda: fastrnn.LSTM(2**31, 2**31),
            "LSTM: input_size must be <= 16777216, got 2147483648",
        ),
        (lambda: fastrnn.LSTM(4, 2**30), "LSTM: hidden_size must be <= 16777216, got 1073741824"),
        (lambda: fastrnn.GRU(4, 2**62), "GRU: hidden_size must be <= 16777216"),
        (lambda: fastrnn.RNN(4, 4, num_layers=10**9), "RNN: num_layers must be <= 4096"),
        (lambda: fastrnn.LSTM(4, 8, proj_size=2**40), "LSTM: proj_size must be smaller than"),
        (
            lambda: fastrnn.LSTM(2**24, 2**24),
            (
                "LSTM(16777216, 16777216) would have 2251799947902976 weights; "
                "fastrnn accepts at most 2^32"
            ),
        ),
        (
            # Each size in range, 4·H·(I + H) just beyond 2^32.
            lambda: fastrnn.LSTM(2**24, 2**6),
            "would have 4294984192 weights",
        ),
        (lambda: fastrnn.GRU(2**12, 2**12, num_layers=4096), "would have"),
        (lambda: fastrnn.LSTMCell(2**31, 4), "LSTMCell: input_size must be <= 16777216"),
        (lambda: fastrnn.GRUCell(2**24, 2**24), "would have"),
    ],
    ids=[
        "2^31-sizes",
        "4H-overflows-int32",
        "2^62-hidden",
        "1e9-layers",
        "2^40-proj",
        "2^24-sizes",
        "just-over-2^32-weights",
        "4096-layers",
        "cell-2^31",
        "cell-2^24",
    ],
)
def test_absurd_sizes_raise_before_allocating(make, fragment):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=re.escape(fragment)):
            make()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Nothing near the weights' size: at most the table of parameter shapes (4096 layers:
    # 16384 entries, 2.4 MB).
    assert peak < 4 * MiB, f"allocated {peak} bytes before refusing"


def test_largest_accepted_size_is_not_refused():
    """The bound is on the weight count, not on one size: a wide but thin model loads."""
    model = fastrnn.RNN(2**16, 2, seed=0)
    assert model(np.ones((1, 1, 2**16), np.float32))[0].shape == (1, 1, 2)


def test_absurd_stream_batch_raises_before_allocating():
    model = fastrnn.GRU(4, 4, seed=0)
    tracemalloc.start()
    try:
        with pytest.raises(
            ValueError, match=r"Stream: batch must be <= 16777216, got 1099511627776"
        ):
            model.stream(batch=2**40)  # the state alone would be 16 TiB
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MiB
