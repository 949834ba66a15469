"""Threads, instruction set and machine facts."""

from __future__ import annotations

import os
import re
import warnings

from . import _core
from ._checks import positive_int


def set_num_threads(n: int) -> None:
    """Sets the thread budget: the threads one call may use (small layers use fewer), shared
    by concurrent calls (see cpu_info()["threads"]). Process-wide, from any Python thread, at
    any time; calls already running keep their threads. threadpoolctl's
    ``threadpool_limits(n)`` sets it too."""
    _core.set_num_threads(positive_int(n, "n"))


def get_num_threads() -> int:
    """The thread budget: set_num_threads(n), else FASTRNN_NUM_THREADS, else OMP_NUM_THREADS,
    else the CPUs this process may use (its affinity mask, capped by its cgroup's CPU quota)."""
    return _core.get_num_threads()


def threads_check_env() -> None:
    """Warns once, at import, about FASTRNN_NUM_THREADS / OMP_NUM_THREADS values that are not
    thread counts (the budget then comes from the next source)."""
    ignored = _core.threads_policy()["ignored"]
    if ignored:
        warnings.warn(
            f"{ignored}; the thread budget is {_core.get_num_threads()} "
            f"(from {_core.threads_policy()['source']})",
            RuntimeWarning,
            stacklevel=3,
        )


def cpu_info() -> dict:
    """The instruction set in use, those this CPU can run, its features, the register tiles
    of the kernels in use (rows x columns in floats), the threads, the cache sizes the
    blocking uses and the blocking derived from them.

    "caches": bytes per instance of L1d, L2 and L3, how many logical CPUs share each (None
    when not known), l3_near (the L3 is a core complex's own, as on AMD Zen) and where the
    sizes came from ("sysfs", "cpuid", "sysconf", "default"; "env" for those set by
    FASTRNN_CACHE_L1D / _L2 / _L3; several joined by "+").
    "threads": the thread budget and where it came from ("source": "set_num_threads",
    "FASTRNN_NUM_THREADS", "OMP_NUM_THREADS", "affinity" or "cgroup"), the CPUs in the
    affinity mask, the cgroup CPU quota (None: none), the CPUs this process may use (the
    affinity capped by the quota: at most that many threads compute at once, over all calls),
    environment values that were ignored, and "backoff": whether the oversubscription guard
    is on (FASTRNN_BACKOFF=0 turns it off, for benchmarks).
    "blocking": gx_chunk_floats (the input projection of a time chunk, all directions),
    span_floats (the output a stack passes from layer to layer per span), near_cache ("l3",
    or "l2": each core's, the two bounds then apply to one thread's share of the weights),
    large_w_ih_floats (W_ih of one direction from which chunks grow) and
    ahead_max_weight_bytes (the weights of a layer up to which batch 1 projects its inputs
    ahead, inside the steps).
    """
    from . import __version__

    return {
        "version": __version__,
        "isa": _core.isa(),
        "available": list(_core.isa_available()),
        "features": dict(_core.cpu_features()),
        "tiles": dict(_core.kernel_tiles()),
        "num_threads": _core.get_num_threads(),
        "hardware_threads": _core.hardware_threads(),
        "threads": dict(_core.threads_policy()),
        "caches": dict(_core.cpu_caches()),
        "blocking": dict(_core.blocking()),
    }


def select_isa_from_env() -> None:
    """Honours FASTRNN_ISA=scalar|avx2|avx512|neon|auto once, at import."""
    name = os.environ.get("FASTRNN_ISA", "").strip().lower()
    if not name:
        return
    try:
        warning = _core.set_isa(name)
    except ValueError as e:
        warnings.warn(f"{e}; using {_core.isa()}", RuntimeWarning, stacklevel=3)
        _core.set_isa("auto")
        return
    if warning:
        warnings.warn(warning, RuntimeWarning, stacklevel=3)


# FASTRNN_CACHE_<level>: bytes, or a whole number with K, M or G (binary, as cache sizes
# always are: 512K = 524288; KB, KiB, MB, MiB... alike, any case).
CACHE_ENV = {"l1d": "FASTRNN_CACHE_L1D", "l2": "FASTRNN_CACHE_L2", "l3": "FASTRNN_CACHE_L3"}
_SIZE = re.compile(r"(\d+)\s*(?:([kmg])(?:i?b)?|b)?", re.IGNORECASE)
_UNIT = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def cache_size_parse(text: str) -> int | None:
    """Bytes from "262144", "256K", "1M", "2MiB"...; None when it is not such a size."""
    m = _SIZE.fullmatch(text.strip())
    return None if m is None else int(m[1]) * _UNIT[m[2] and m[2].lower()]


def caches_select_from_env() -> None:
    """Honours FASTRNN_CACHE_L1D / _L2 / _L3 once, at import: the blocking (cpu_info()
    ["blocking"]) then derives from these sizes instead of the detected ones, for tests and
    for containers that report a wrong cache. A value that is not a size, or is outside
    [1 KiB, 1 TiB], warns (RuntimeWarning, naming the variable) and keeps the detected size."""
    sizes: dict[str, int] = {}
    for level, var in CACHE_ENV.items():
        text = os.environ.get(var, "").strip()
        if not text:
            continue
        size = cache_size_parse(text)
        if size is None:
            detected = _core.cpu_caches()[level]
            warnings.warn(
                f"{var}={text!r} is not a cache size (bytes, or a number with K, M or G such "
                f"as 512K or 2M); using the detected {detected}",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        try:
            _core.cpu_caches_override(**{level: size})  # checks the range, names the variable
        except ValueError as e:
            warnings.warn(
                f"{e}; using the detected {_core.cpu_caches()[level]}", RuntimeWarning, stacklevel=3
            )
            continue
        sizes[level] = size
    if sizes:
        _core.cpu_caches_override(**sizes)
