"""Threads, instruction set and machine facts."""

from __future__ import annotations

import os
import warnings

from . import _core
from ._checks import positive_int


def set_num_threads(n: int) -> None:
    """Threads one call may use (small layers use fewer). Safe to call at any time; calls
    already running keep the count they started with."""
    _core.set_num_threads(positive_int(n, "n"))


def get_num_threads() -> int:
    return _core.get_num_threads()


def cpu_info() -> dict:
    """The instruction set in use, those this CPU can run, its features, the register tiles
    of the kernels in use (rows x columns in floats) and the threads."""
    from . import __version__

    return {
        "version": __version__,
        "isa": _core.isa(),
        "available": list(_core.isa_available()),
        "features": dict(_core.cpu_features()),
        "tiles": dict(_core.kernel_tiles()),
        "num_threads": _core.get_num_threads(),
        "hardware_threads": _core.hardware_threads(),
    }


def select_isa_from_env() -> None:
    """Honours FASTRNN_ISA=scalar|avx2|avx512|auto once, at import."""
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
