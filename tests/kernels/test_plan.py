"""Model.plan: the driver's decisions before a call runs — and that the calls follow them.

Results never depend on the plan (tests/test_threads.py, test_batch1_ahead.py and
test_cpu_caches.py check each schedule, split, chunk and span against the others); here:
the plan says which schedule a call takes, its sizes are consistent, and bad arguments name
themselves."""

import re

import numpy as np
import pytest

import fastrnn


def test_schedules():
    uni = fastrnn.LSTM(64, 512, num_layers=2, seed=0)
    bi = fastrnn.GRU(64, 256, num_layers=2, bidirectional=True, seed=0)
    small_stack = fastrnn.LSTM(64, 64, num_layers=3, seed=0)
    assert uni.plan(8, 100, num_threads=1)["schedule"] == "spans"
    assert bi.plan(8, 100, num_threads=1)["schedule"] == "layer-by-layer"
    # Small layers do not split a step; on 2 threads the stack runs as a wavefront, when the
    # sequence is long enough for the pipeline to fill (T >= 4 L).
    assert small_stack.plan(1, 100, num_threads=1)["schedule"] == "spans"
    wave = small_stack.plan(1, 100, num_threads=2)
    if fastrnn.cpu_info()["threads"]["cpus"] >= 2:
        assert (wave["schedule"], wave["threads"], wave["split"]) == ("wavefront", 2, "layers")
        assert 1 <= wave["wave_chunk"] <= wave["chunk"]
        assert small_stack.plan(1, 11, num_threads=2)["schedule"] == "spans"
    one = small_stack.plan(1, 100, num_threads=1)
    assert (one["threads"], one["split"]) == (1, "none")


def test_sizes_follow_the_shape():
    model = fastrnn.LSTM(32, 100, num_layers=3, proj_size=40, seed=0)
    p = model.plan(5, 300, num_threads=1)
    ws = p["workspace_floats"]
    assert (p["B"], p["T"]) == (5, 300)
    assert 1 <= p["chunk"] <= 300 and p["chunk"] <= p["span"] <= 300
    assert p["span"] % p["chunk"] == 0 or p["span"] == 300
    assert len(p["ahead"]) == 3 and not any(p["ahead"])  # batch 5: nothing ahead
    assert p["many_rows"] and not p["inline_projection"]
    assert ws["c"] > 0 and ws["r"] > 0 and ws["gx"][1] == 0  # LSTM, projection, 1 direction
    LD = 3
    assert ws["total"] == (
        LD * (2 * ws["h"] + ws["c"] + ws["r"]) + sum(ws["gx"]) + sum(ws["seq"]) + ws["wide"]
    )
    assert not p["widen"] and ws["wide"] == 0  # float32 weights
    step = model.plan(5, 1)
    assert step["inline_projection"] and step["chunk"] == 1
    assert not p["far_weights"]  # W_hh of 100 KiB stays in any cache
    gru = fastrnn.GRU(8, 16, seed=0).plan(2, 10)
    assert gru["workspace_floats"]["c"] == 0 and gru["workspace_floats"]["r"] == 0


def test_bf16_widens_for_batched_calls_where_rows_are_weight_only(isa):
    """bf16 weights on a table whose many-row kernels are weight-only: a call of 32+ rows and
    8+ steps widens every matrix once (into the workspace: the float32 size of all layers,
    an odd input size included); fewer rows or steps, int8, or every row on bf16 dot
    products: never."""
    from fastrnn import _core

    model = fastrnn.quantize(fastrnn.LSTM(37, 96, num_layers=2, proj_size=24, seed=0), "bf16")
    # Per layer: W_ih (37 or 24 rows), W_hh (24 rows) of 6 panels of 64 columns; W_hr (96 rows) of
    # one panel of 64.
    fp32 = (6 * 64 * (37 + 24) + 64 * 96) + (6 * 64 * (24 + 24) + 64 * 96)
    try:
        for rows_on_dots in (False, True):
            every_row_on_dots = _core.bf16_dot_rows(rows_on_dots)  # AMX stays on where present
            weight_only = isa != "avx512bf16" or not every_row_on_dots
            for threads in (1, 2):
                p = model.plan(32, 20, num_threads=threads)
                assert p["widen"] == weight_only
                assert p["workspace_floats"]["wide"] == (fp32 if weight_only else 0)
            for batch, steps in ((31, 20), (40, 7), (4, 100)):
                assert not model.plan(batch, steps)["widen"]
    finally:
        _core.bf16_dot_rows(True)
    assert not fastrnn.quantize(model, "int8").plan(32, 20)["widen"]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((0, 10), {}, ValueError, "LSTM.plan: batch must be >= 1, got 0"),
        ((1, 0), {}, ValueError, "LSTM.plan: steps must be >= 1, got 0"),
        ((1.5, 10), {}, TypeError, "LSTM.plan: batch must be an int, got float"),
        ((1, 10), {"num_threads": 0}, ValueError, "LSTM.plan: num_threads must be >= 1, got 0"),
    ],
)
def test_bad_arguments(args, kwargs, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        fastrnn.LSTM(4, 8, seed=0).plan(*args, **kwargs)


def test_call_size_check_comes_from_the_plan():
    """A call whose workspace (the plan's state rows, padded to whole panels: x16 and more
    for H = 1) would pass 2^45 floats while its outputs would not is refused before anything
    is allocated, naming the call's sizes. x is 4 GiB of untouched zero pages (calloc)."""
    core = fastrnn.RNN(1, 1, num_layers=4096, bidirectional=True, seed=0)._core
    try:
        x = np.zeros((1, 2**30 + 1, 1), np.float32)
    except MemoryError:
        pytest.skip("no 4 GiB of address space for x")
    with pytest.raises(
        ValueError,
        match=re.escape("x with T=1, B=1073741825: the workspace would need more than 2^45 floats"),
    ):
        core.forward(x, None, None, None)


def test_far_weights_follow_the_near_cache():
    """W_hh larger than the near cache (a thread's share where it is private) is prefetched
    by the many-row steps; the plan says so. Reduced weights never are."""
    from support.common import caches_pinned

    model = fastrnn.LSTM(64, 512, seed=0)  # W_hh: 4 MiB
    with caches_pinned(l1d=32 << 10, l2=1 << 20, l3=32 << 20, l3_near=False):
        assert model.plan(8, 10, num_threads=1)["far_weights"]
    with caches_pinned(l1d=32 << 10, l2=1 << 20, l3=32 << 20, l3_near=True):
        assert not model.plan(8, 10, num_threads=1)["far_weights"]
    with caches_pinned(l1d=32 << 10, l2=8 << 20, l3=32 << 20, l3_near=False):
        assert not model.plan(8, 10, num_threads=1)["far_weights"]
        assert not model.plan(8, 10, num_threads=2)["far_weights"]
    with caches_pinned(l1d=32 << 10, l2=1 << 20, l3=32 << 20, l3_near=False):
        assert not fastrnn.quantize(model, "int8").plan(8, 10, num_threads=1)["far_weights"]


def test_far_weights_from_half_the_l2_for_whole_panel_tiles(isa):
    """Where the near cache is the L2, W_hh is far from half of it on when the ISA's many-row
    tiles hold whole panels (the chunk's G_x takes the other half), from all of it on
    otherwise (AVX2's GEMM tiles); an L3 near cache keeps the whole bound."""
    from support.common import caches_pinned

    model = fastrnn.GRU(64, 512, seed=0)  # W_hh: 3 MiB
    whole_panel = fastrnn._core.kernel_tiles()["step"].endswith("x64")
    with caches_pinned(l1d=32 << 10, l2=4 << 20, l3=32 << 20, l3_near=False):
        assert model.plan(8, 10, num_threads=1)["far_weights"] == whole_panel
        assert not model.plan(8, 10, num_threads=2)["far_weights"]  # 1.5 MiB per thread
    with caches_pinned(l1d=32 << 10, l2=1 << 20, l3=4 << 20, l3_near=True):
        assert not model.plan(8, 10, num_threads=1)["far_weights"]


@pytest.mark.parametrize("cls", [fastrnn.LSTM, fastrnn.GRU])
@pytest.mark.parametrize("batch", [4, 10, 13])
def test_far_weights_give_the_same_bits(isa, cls, batch):
    """The prefetching steps (W_hh beyond the near cache) run the same FMAs in the same order."""
    from support.common import caches_pinned, flatten

    model = cls(48, 512, seed=1)
    x = np.random.default_rng(batch).standard_normal((6, batch, 48), dtype=np.float32)
    out = {}
    for far, near in ((True, False), (False, True)):
        with caches_pinned(l1d=32 << 10, l2=1 << 20, l3=32 << 20, l3_near=near):
            assert model.plan(batch, 6, num_threads=1)["far_weights"] == far
            out[far] = flatten(model(x, num_threads=1))
    for a, b in zip(out[True], out[False]):
        assert np.array_equal(a, b)
