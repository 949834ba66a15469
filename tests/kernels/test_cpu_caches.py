"""Cache detection and the blocking derived from it (csrc/cpu/cpu-caches.h,
csrc/ops/blocking.h): cpu_info() reports what the kernel reports in sysfs; the rules give
the Zen 4 constants on the Zen 4's caches; FASTRNN_CACHE_L1D / _L2 / _L3 override the sizes
at import (so those cases run a fresh interpreter) and bad values warn, naming the variable;
and no cache size changes a single bit of any result: time chunks, layer spans and the
batch-1 ahead projection only change the speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from fastrnn import _core
from support.common import ZEN4_CACHES, caches_pinned

KiB, MiB = 1 << 10, 1 << 20
CACHE_VARS = ("FASTRNN_CACHE_L1D", "FASTRNN_CACHE_L2", "FASTRNN_CACHE_L3")
OVERRIDDEN = any(os.environ.get(v, "").strip() for v in CACHE_VARS)
SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")


def sysfs_caches() -> dict:
    """{level: (bytes, sharing CPUs)} for L1d, L2, L3 as /sys reports them (empty without)."""
    out = {}
    for d in sorted(SYSFS.glob("index*")):
        try:
            level = int((d / "level").read_text())
            kind = (d / "type").read_text().strip()
            size = (d / "size").read_text().strip()
            shared = (d / "shared_cpu_list").read_text().strip()
        except (OSError, ValueError):
            continue
        if kind == "Instruction" or not 1 <= level <= 3:
            continue
        unit = {"K": KiB, "M": MiB, "G": 1 << 30}.get(size[-1:].upper(), 1)
        count = 0
        for part in shared.split(","):
            lo, _, hi = part.partition("-")
            count += int(hi or lo) - int(lo) + 1
        out[("l1d", "l2", "l3")[level - 1]] = (int(size.rstrip("KMGkmg")) * unit, count)
    return out


def rules(caches: dict) -> dict:
    """The rules of csrc/ops/blocking.cc, written out again."""
    near = caches["l3"] if caches["l3_near"] else caches["l2"]
    return {
        "gx_chunk_floats": caches["l2"] // 2 // 4,
        "span_floats": caches["l2"] // 4,
        "large_w_ih_floats": near // 4 // 4,
        "ahead_max_weight_bytes": near // 4,
        "near_cache": "l3" if caches["l3_near"] else "l2",
    }


# --- what cpu_info reports ---------------------------------------------------------------------


def test_cpu_info_reports_caches_and_blocking():
    info = fastrnn.cpu_info()
    caches, blocking = info["caches"], info["blocking"]
    assert set(caches) == {
        "l1d",
        "l2",
        "l3",
        "l1d_shared_by",
        "l2_shared_by",
        "l3_shared_by",
        "l3_near",
        "source",
    }
    # Plausible for any CPU of the last 20 years (and for the defaults: 32 KiB, 1 MiB, 32 MiB).
    assert 4 * KiB <= caches["l1d"] <= 4 * MiB
    assert 64 * KiB <= caches["l2"] <= 256 * MiB
    assert caches["l1d"] < caches["l2"] and 256 * KiB <= caches["l3"] <= 4096 * MiB
    for key in ("l1d_shared_by", "l2_shared_by", "l3_shared_by"):
        assert caches[key] is None or 1 <= caches[key] <= 4096
    assert blocking == rules(caches)


@pytest.mark.skipif(OVERRIDDEN, reason="FASTRNN_CACHE_* overrides the detected sizes")
@pytest.mark.skipif(len(sysfs_caches()) < 3, reason="sysfs does not report L1d, L2 and L3")
def test_caches_are_what_sysfs_reports():
    caches = fastrnn.cpu_info()["caches"]
    for level, (size, shared_by) in sysfs_caches().items():
        assert caches[level] == size, level
        assert caches[f"{level}_shared_by"] == shared_by, level
    assert caches["source"] == "sysfs"


def test_rules_give_the_zen4_constants():
    """On the caches of the Zen 4 they were measured on, the rules give the constants that
    the driver had before it read caches; on a Zen 3 (L2 of 512 KiB) the L2 sizes halve;
    where the L3 is far, the weight bounds follow the L2 and apply per thread."""
    with caches_pinned(**ZEN4_CACHES):
        assert _core.blocking() == {
            "gx_chunk_floats": 128 * KiB,
            "span_floats": 256 * KiB,
            "large_w_ih_floats": 2 * MiB,
            "ahead_max_weight_bytes": 8 * MiB,
            "near_cache": "l3",
        }
        assert _core.cpu_caches()["source"] == "env"
    with caches_pinned(l1d=32 * KiB, l2=512 * KiB, l3=32 * MiB, l3_near=True):
        assert _core.blocking() == {
            "gx_chunk_floats": 64 * KiB,
            "span_floats": 128 * KiB,
            "large_w_ih_floats": 2 * MiB,
            "ahead_max_weight_bytes": 8 * MiB,
            "near_cache": "l3",
        }
    with caches_pinned(l1d=48 * KiB, l2=2 * MiB, l3=480 * MiB, l3_near=False):
        assert _core.blocking() == {
            "gx_chunk_floats": 256 * KiB,
            "span_floats": 512 * KiB,
            "large_w_ih_floats": 128 * KiB,
            "ahead_max_weight_bytes": 512 * KiB,
            "near_cache": "l2",
        }
    assert fastrnn.cpu_info()["blocking"] == rules(fastrnn.cpu_info()["caches"])  # restored


def ahead_fits() -> bool:
    """Whether the ISA in use has registers left for the ahead projection (not AVX2)."""
    return _core.kernel_tiles()["ahead_rows"] > 0


@pytest.fixture
def ahead_allowed():
    """The size rules decide alone, as on a Zen 4 (by default AVX-512 skips the ahead path
    on 512-bit-wide units whatever the sizes; tests/test_batch1_ahead.py covers that)."""
    _core.ahead_override(True)
    try:
        yield
    finally:
        _core.ahead_override(None)


def test_ahead_bound_is_per_thread_where_the_near_cache_is_the_l2(ahead_allowed):
    # LSTM(80, 192): 816 KiB of W_ih + W_hh, a batch-1 step large enough for 2 threads.
    # With a 2 MiB L2 as the near cache (bound: 512 KiB per thread) one thread holds all of
    # it, each of two threads 408 KiB; a shared L3 (bound 768 KiB) holds the whole layer
    # whatever the threads.
    model = fastrnn.LSTM(80, 192, seed=0)
    model(np.zeros((1, 1, 80), np.float32))
    assert model.plan(1, 10**4, num_threads=2)["threads"] == 2
    with caches_pinned(l2=2 * MiB, l3=32 * MiB, l3_near=False):
        assert not model.plan(1, 10**4, num_threads=1)["ahead"][0]
        assert bool(model.plan(1, 10**4, num_threads=2)["ahead"][0]) == ahead_fits()
    with caches_pinned(l2=1 * MiB, l3=3 * MiB, l3_near=True):  # bound: 768 KiB of the L3
        assert not model.plan(1, 10**4, num_threads=1)["ahead"][0]
        assert not model.plan(1, 10**4, num_threads=2)["ahead"][0]


# --- FASTRNN_CACHE_* at import ---------------------------------------------------------------

PROBE = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastrnn
info = fastrnn.cpu_info()
print(json.dumps({
    "caches": info["caches"],
    "blocking": info["blocking"],
    "warnings": [[w.category.__name__, str(w.message)] for w in caught],
}))
"""


def run(script: str, env_vars: dict, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARS}
    env.update(env_vars)
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def probe(**env_vars: str) -> dict:
    return json.loads(run(PROBE, env_vars))


@pytest.fixture(scope="module")
def detected():
    return probe()


def test_no_override_is_the_detection(detected):
    assert detected["warnings"] == []
    assert "env" not in detected["caches"]["source"]
    assert detected["blocking"] == rules(detected["caches"])


@pytest.mark.parametrize(
    ("text", "size"),
    [("262144", 256 * KiB), ("256K", 256 * KiB), ("256k", 256 * KiB), (" 256 KiB ", 256 * KiB),
     ("1M", MiB), ("1mb", MiB), ("3MiB", 3 * MiB), ("1G", 1 << 30), ("1024", KiB)],
)  # fmt: skip
def test_l2_override(text, size, detected):
    got = probe(FASTRNN_CACHE_L2=text)
    assert got["warnings"] == []
    caches = got["caches"]
    assert caches["l2"] == size
    assert caches["source"] == detected["caches"]["source"] + "+env"
    others = ("l1d", "l3", "l1d_shared_by", "l2_shared_by", "l3_shared_by", "l3_near")
    assert {k: caches[k] for k in others} == {k: detected["caches"][k] for k in others}
    assert got["blocking"]["gx_chunk_floats"] == size // 8
    assert got["blocking"]["span_floats"] == size // 4
    assert got["blocking"] == rules(caches)


def test_every_level_overridden(detected):
    got = probe(FASTRNN_CACHE_L1D="16K", FASTRNN_CACHE_L2="256K", FASTRNN_CACHE_L3="4M")
    assert got["warnings"] == []
    caches = got["caches"]
    assert (caches["l1d"], caches["l2"], caches["l3"]) == (16 * KiB, 256 * KiB, 4 * MiB)
    assert caches["source"] == "env"
    near = caches["l3"] if caches["l3_near"] else caches["l2"]  # the CPU's own L3 kind
    assert got["blocking"]["ahead_max_weight_bytes"] == near // 4
    assert got["blocking"] == rules(caches)


@pytest.mark.parametrize(
    ("text", "why"),
    [("abc", "is not a cache size"), ("1.5M", "is not a cache size"), ("-1", "is not a cache size"),
     ("2T", "is not a cache size"), ("5", "must be in [1024, 1099511627776], got 5"),
     ("2048G", "must be in [1024, 1099511627776], got 2199023255552")],
)  # fmt: skip
def test_bad_override_warns_and_keeps_the_detected_size(text, why, detected):
    # A bad L2 is ignored with a RuntimeWarning naming the variable; a good L3 still applies.
    got = probe(FASTRNN_CACHE_L2=text, FASTRNN_CACHE_L3="8M")
    assert [w[0] for w in got["warnings"]] == ["RuntimeWarning"], got["warnings"]
    message = got["warnings"][0][1]
    assert message.startswith("FASTRNN_CACHE_L2") and why in message, message
    assert f"using the detected {detected['caches']['l2']}" in message
    assert got["caches"]["l2"] == detected["caches"]["l2"]
    assert got["caches"]["l3"] == 8 * MiB


def test_override_range_in_process():
    with pytest.raises(ValueError, match=r"FASTRNN_CACHE_L1D must be in \[1024, "):
        _core.cpu_caches_override(l1d=1023)
    with pytest.raises(ValueError, match=r"FASTRNN_CACHE_L3 must be in \[1024, 1099511627776\]"):
        _core.cpu_caches_override(l3=1 << 41)
    assert fastrnn.cpu_info()["blocking"] == rules(fastrnn.cpu_info()["caches"])


# --- results do not depend on the caches -----------------------------------------------------

# Models with long sequences, so that time chunks and layer spans differ between tiny,
# detected and huge caches: tiny (1 KiB each) makes every chunk one step and every span one
# chunk, and takes no ahead projection; huge (1 GiB each) makes one chunk and one span of
# the whole sequence and projects ahead at batch 1 wherever the step is large enough (and
# the ISA has registers for it: not AVX2).
RUN = textwrap.dedent(
    """
    import sys
    import numpy as np
    import fastrnn

    out = {}
    cases = [
        ("lstm-proj", lambda: fastrnn.LSTM(96, 160, proj_size=72, seed=1)),
        ("gru", lambda: fastrnn.GRU(80, 144, seed=2)),
        ("lstm-L2", lambda: fastrnn.LSTM(64, 128, num_layers=2, seed=3)),
        ("gru-L2-wide", lambda: fastrnn.GRU(256, 256, num_layers=2, seed=4)),
        ("lstm-bi", lambda: fastrnn.LSTM(48, 96, bidirectional=True, seed=5)),
        ("gru-L2-bi", lambda: fastrnn.GRU(40, 64, num_layers=2, bidirectional=True, seed=6)),
        ("rnn-L3", lambda: fastrnn.RNN(33, 200, num_layers=3, seed=7)),
    ]
    rng = np.random.default_rng(0)
    for name, make in cases:
        model = make()
        for B in (1, 8):
            T = 1500 if B == 1 else 400
            x = rng.standard_normal((T, B, model.input_size), dtype=np.float32)
            lengths = None if B == 1 else np.arange(T - B + 1, T + 1)[::-1].copy()
            for threads in (1, 2):
                fastrnn.set_num_threads(threads)
                y, state = model(x, lengths=lengths)
                parts = [y] + list(state if isinstance(state, tuple) else (state,))
                for i, a in enumerate(parts):
                    out[f"{name}-B{B}-t{threads}-{i}"] = a
    np.savez(sys.argv[1], **out)
    print("ok")
    """
)


def test_results_do_not_depend_on_the_caches(tmp_path):
    settings = {
        "detected": {},
        "tiny": dict.fromkeys(CACHE_VARS, "1K"),
        "huge": dict.fromkeys(CACHE_VARS, "1G"),
        "l2-only-small": {"FASTRNN_CACHE_L2": "96K"},
    }
    results = {}
    for label, env_vars in settings.items():
        path = tmp_path / f"{label}.npz"
        assert run(RUN, env_vars, str(path)) == "ok"
        with np.load(path) as f:
            results[label] = {k: f[k] for k in f.files}
    want = results["detected"]
    for label, got in results.items():
        assert got.keys() == want.keys()
        for key, a in got.items():
            diff = np.flatnonzero(a.ravel() != want[key].ravel())
            assert diff.size == 0, (
                f"{key} under {label} caches: {diff.size} elements differ from the detected "
                f"caches' result, first at {diff[0]}: {a.ravel()[diff[0]]!r} vs "
                f"{want[key].ravel()[diff[0]]!r}"
            )


def test_tiny_and_huge_caches_change_the_blocking(ahead_allowed):
    """The models above do take different paths under the three settings (else the test
    above would prove nothing): chunking, spans and the ahead projection all change."""
    tiny = dict.fromkeys(("l1d", "l2", "l3"), KiB)
    huge = dict.fromkeys(("l1d", "l2", "l3"), 1 << 30)
    model = fastrnn.LSTM(96, 160, proj_size=72, seed=1)
    model(np.zeros((1, 1, 96), np.float32))
    with caches_pinned(**tiny):
        assert _core.blocking()["gx_chunk_floats"] == 128  # one step per chunk
        assert not model.plan(1, 10**4, num_threads=1)["ahead"][0]
    with caches_pinned(**huge):
        assert _core.blocking()["gx_chunk_floats"] == 1 << 27  # the whole sequence
        assert bool(model.plan(1, 10**4, num_threads=1)["ahead"][0]) == ahead_fits()
