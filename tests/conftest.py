"""Shared fixtures and helpers: the per-ISA parametrization and the comparison that explains
its failures. Nothing here imports torch (torch tests call pytest.importorskip themselves).

Every test that takes the `isa` fixture runs once per instruction set this CPU has (scalar,
avx2, avx512), with the ISA's name in its test id. To run one ISA only:

    FASTRNN_ISA=avx2 pytest tests     # the whole suite on avx2 (import-time selection)
    pytest tests -k avx2              # only the ISA-parametrized tests, avx2 instances
"""

from __future__ import annotations

import sys

import pytest

import fastrnn
from fastrnn import _core
from support.common import FORCED_ISA, ISAS, LARGEST_ERRORS, SESSION_ISA, TRAINED_RATIOS


@pytest.fixture(params=ISAS)
def isa(request):
    """Selects each instruction set in turn; afterwards restores the session's ISA (the
    'auto' choice unless FASTRNN_ISA forced one)."""
    warning = _core.set_isa(request.param)
    assert warning == "", f"set_isa({request.param!r}) warned: {warning}"
    assert _core.isa() == request.param
    try:
        yield request.param
    finally:
        _core.set_isa("auto" if FORCED_ISA in ("", "auto") else SESSION_ISA)
        assert _core.isa() == SESSION_ISA


@pytest.fixture(scope="session", autouse=True)
def torch_single_threaded():
    """torch as the reference runs on one thread: its OpenMP workers spin-wait, and on a busy
    2-core machine (benchmarks alongside) a 5-step call then takes 0.2 s instead of 0.3 ms.
    Only if a test module imported torch (this file never does)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def threads_restored():
    """Restores the thread count a test changes."""
    n = fastrnn.get_num_threads()
    try:
        yield n
    finally:
        fastrnn.set_num_threads(n)


def pytest_terminal_summary(terminalreporter):
    if TRAINED_RATIOS:
        terminalreporter.section("accuracy against float64 on trained models (T = 1000)")
        terminalreporter.write_line(
            f"{'model':>20} {'isa':>7}  fastrnn/torch  fastrnn err  torch err  max |value|"
        )
        for (name, isa_name), (ratio, f, t, big) in sorted(TRAINED_RATIOS.items()):
            terminalreporter.write_line(
                f"{name:>20} {isa_name:>7}  {ratio:13.3g}  {f:11.3g}  {t:9.3g}  {big:11.3g}"
            )
    if not LARGEST_ERRORS:
        return
    terminalreporter.section("largest errors per suite and ISA")
    terminalreporter.write_line(
        "(suite: |Δ|/max(1,|expected|), the asserted measure; suite abs: plain max |Δ|)"
    )
    for (suite, isa_name), (err, where) in sorted(LARGEST_ERRORS.items()):
        terminalreporter.write_line(f"{suite:>14} {isa_name:>7}: {err:.3g}  ({where})")
