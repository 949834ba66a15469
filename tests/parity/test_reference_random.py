"""Tier 2–3, property-based: random small cases (sizes 1–40, so every vector tail; every option
in any combination) against the float64 reference, on every ISA. Derandomized and without an
example database, so the same 150 examples run every time and nothing is written to disk.
Tolerance and measure as in test_reference.py."""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import reference
from support.cases import MODES, Case, build_model
from support.common import assert_results

ATOL = 1e-5  # as test_reference.py


@st.composite
def small_cases(draw):
    mode = draw(st.sampled_from(MODES))
    hidden = draw(st.integers(1, 40))
    unbatched = draw(st.booleans())
    batch = 1 if unbatched else draw(st.integers(1, 9))
    return Case(
        mode,
        hidden=hidden,
        input=draw(st.integers(1, 40)),
        steps=draw(st.integers(1, 12)),
        batch=batch,
        layers=draw(st.integers(1, 3)),
        bias=draw(st.booleans()),
        bidirectional=draw(st.booleans()),
        batch_first=False if unbatched else draw(st.booleans()),
        unbatched=unbatched,
        proj=draw(st.integers(0, hidden - 1)) if mode == "LSTM" and hidden > 1 else 0,
        given_state=draw(st.booleans()),
        lengths=False if unbatched else draw(st.booleans()),
        seed=draw(st.integers(0, 2**31)),
    )


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=small_cases())
def test_random_small_cases_match_reference(case, isa):
    """Sizes 1–40 (every vector tail), any combination of options: derandomized, so the same
    examples run every time."""
    model, sd = build_model(case)
    x, state, lengths = case.inputs()
    want = reference.rnn_forward(case.config, sd, x, state, lengths)
    assert_results(
        model(x, state, lengths=lengths),
        want,
        ATOL,
        case.result_names,
        f"{case.id} [{isa}]",
        suite="reference",
        isa=isa,
    )
