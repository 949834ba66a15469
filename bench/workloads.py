"""The benchmark workloads: one definition, in the package (fastrnn._bench), re-exported here.

    from workloads import WORKLOADS, ALL, Workload, runner
    WORKLOADS["lat_lstm_256"].flops()
    runner.run(["lat_lstm_256"])          # runner is fastrnn._bench

Run from a source checkout, this prefers the checkout's python/fastrnn when its compiled core
has been built in place for this interpreter (python/fastrnn/_core<suffix>, a suffix of
importlib.machinery.EXTENSION_SUFFIXES such as .cpython-311-x86_64-linux-gnu.so), so bench/
measures the tree it sits in; otherwise (`pip install .`) the installed fastrnn. The sources
alone, with the stub _core.pyi, are no build. The scripts here import fastrnn only through this
module, so that choice is made before anything imports it.
"""

import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES

_PYTHON = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python")


def _built_in_place(package: str) -> bool:
    """True when `package` holds a compiled _core this interpreter can import."""
    return any(os.path.isfile(os.path.join(package, "_core" + s)) for s in EXTENSION_SUFFIXES)


if _built_in_place(os.path.join(_PYTHON, "fastrnn")) and _PYTHON not in sys.path:
    sys.path.insert(0, _PYTHON)

from fastrnn import _bench as runner  # noqa: E402  (after the sys.path choice above)
from fastrnn._bench import (  # noqa: E402
    ALL,
    PEERS,
    TOLERANCE,
    WORKLOADS,
    Workload,
    format_time,
    get_workload,
)

__all__ = [
    "ALL",
    "PEERS",
    "TOLERANCE",
    "WORKLOADS",
    "Workload",
    "format_time",
    "get_workload",
    "runner",
]
