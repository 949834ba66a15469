"""The benchmark workloads: one definition, in the package (fastrnn._bench), re-exported here.

    from workloads import WORKLOADS, ALL, Workload, runner
    WORKLOADS["lat_lstm_256"].flops()
    runner.run(["lat_lstm_256"])          # runner is fastrnn._bench

Run from a source checkout, this prefers the checkout's python/fastrnn when its compiled core
has been built in place, so bench/ measures the tree it sits in. The scripts here import
fastrnn only through this module, so that choice is made before anything imports it.
"""

import glob
import os
import sys

_PYTHON = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python")
if glob.glob(os.path.join(_PYTHON, "fastrnn", "_core*")) and _PYTHON not in sys.path:
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
