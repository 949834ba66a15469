"""Tier 4: instruction-set dispatch. FASTRNN_ISA is read once at import, so each case runs a
fresh interpreter (the same Python, the same installed fastrnn)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import fastrnn
from fastrnn import _core
from support.common import SESSION_ISA

PROBE = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastrnn
info = fastrnn.cpu_info()
import numpy as np
out, _ = fastrnn.GRU(3, 17, seed=0)(np.ones((4, 2, 3), np.float32))
print(json.dumps({
    "isa": info["isa"],
    "available": info["available"],
    "warnings": [[w.category.__name__, str(w.message)] for w in caught],
    "out": out.ravel().tolist(),
}))
"""


def probe(isa_env: str | None) -> dict:
    env = dict(os.environ)
    env.pop("FASTRNN_ISA", None)
    if isa_env is not None:
        env["FASTRNN_ISA"] = isa_env
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def default():
    return probe(None)


def test_default_is_best_available(default):
    assert default["warnings"] == []
    assert default["available"] == _core.isa_available()
    assert default["isa"] == default["available"][-1]  # listed from plainest to best


def test_scalar_forced():
    got = probe("scalar")
    assert got["isa"] == "scalar" and got["warnings"] == []


@pytest.mark.parametrize("name", _core.isa_available())
def test_each_available_isa_forced(name, default):
    got = probe(name)
    assert got["isa"] == name and got["warnings"] == []
    # The same small model gives the same answer within the parity tolerance on every ISA.
    assert max(abs(a - b) for a, b in zip(got["out"], default["out"])) <= 1e-5


@pytest.mark.parametrize("value", ["AVX2", " scalar ", "auto", ""])
def test_case_space_and_auto(value, default):
    got = probe(value)
    want = {"AVX2": "avx2", " scalar ": "scalar"}.get(value, default["isa"])
    if want not in default["available"]:
        pytest.skip(f"{want} not available on this CPU")
    assert got["isa"] == want and got["warnings"] == []


def test_unknown_isa_warns_and_uses_best(default):
    got = probe("bogus")
    assert got["isa"] == default["isa"]
    assert [w[0] for w in got["warnings"]] == ["RuntimeWarning"], got["warnings"]
    assert "bogus" in got["warnings"][0][1]


def test_unsupported_isa_warns_and_falls_back(default):
    missing = [n for n in ("scalar", "avx2", "avx512") if n not in default["available"]]
    if not missing:
        pytest.skip("this CPU runs every ISA fastrnn has: nothing to fall back from")
    got = probe(missing[0])
    assert got["isa"] == default["isa"]
    assert [w[0] for w in got["warnings"]] == ["RuntimeWarning"], got["warnings"]
    assert missing[0] in got["warnings"][0][1]


def test_cpu_info_fields():
    info = fastrnn.cpu_info()
    assert set(info) >= {
        "isa",
        "available",
        "features",
        "num_threads",
        "hardware_threads",
        "version",
    }
    assert info["isa"] in info["available"] and "scalar" in info["available"]
    assert info["version"] == fastrnn.__version__
    assert info["hardware_threads"] >= 1 and info["num_threads"] >= 1
    assert all(isinstance(v, bool) for v in info["features"].values())


def test_set_isa_in_process_round_trip():
    try:
        for name in _core.isa_available():
            assert _core.set_isa(name) == ""
            assert _core.isa() == name
        assert _core.set_isa("auto") == ""
        assert _core.isa() == _core.isa_available()[-1]
    finally:
        _core.set_isa(SESSION_ISA)
