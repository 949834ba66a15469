"""The sampled grid of whole-sequence cases shared by the parity and reference tiers.

The full product of every option is far too large to run (4 modes × 2 × 3 × 2 × 2 × 2 × 5 H
× 4 I × 6 T × 5 B × 2 × 2). Instead, each option runs through a shuffled cycle of its values
(fixed seed), so every value of every option appears at least `n // len(values)` times and
the combinations are random; a cost cap keeps each case cheap on the scalar kernels, and
`coverage()` lets a test assert that the cap did not remove any value.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import numpy as np

import fastrnn
from support import reference
from support.reference import GATES, Config

MODES = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]
HIDDEN = [1, 3, 17, 100, 257]
INPUT = [1, 5, 64, 300]
STEPS = [1, 2, 7, 33, 100]
BATCH = [1, 2, 5, 16, 64]
LAYERS = [1, 2, 3]

# Multiply-adds of one case (T·B·L·D·G·(I+H)) above which B, then T, is halved: keeps one
# case well under a second on the scalar kernels and in torch.
MAX_MACS = 6e7


@dataclass(frozen=True)
class Case:
    mode: str
    hidden: int
    input: int
    steps: int
    batch: int
    layers: int = 1
    bias: bool = True
    bidirectional: bool = False
    batch_first: bool = False
    unbatched: bool = False
    proj: int = 0
    given_state: bool = False
    lengths: bool = False
    seed: int = 0

    @property
    def config(self) -> Config:
        return Config(
            self.mode,
            self.input,
            self.hidden,
            self.layers,
            self.bias,
            self.batch_first,
            self.bidirectional,
            self.proj,
        )

    @property
    def id(self) -> str:
        parts = [
            self.mode,
            f"H{self.hidden}",
            f"I{self.input}",
            f"T{self.steps}",
            "unbatched" if self.unbatched else f"B{self.batch}",
            f"L{self.layers}",
        ]
        parts += [
            flag
            for flag, on in (
                ("nobias", not self.bias),
                ("bi", self.bidirectional),
                ("bf", self.batch_first),
                ("h0", self.given_state),
                ("len", self.lengths),
            )
            if on
        ]
        if self.proj:
            parts.append(f"P{self.proj}")
        return "-".join(parts)

    @property
    def macs(self) -> float:
        G = GATES[self.mode] * self.hidden
        D = 2 if self.bidirectional else 1
        width = max(self.input, D * (self.proj or self.hidden)) + (self.proj or self.hidden)
        return float(self.steps) * self.batch * self.layers * D * G * width

    @property
    def result_names(self) -> list[str]:
        return ["output", "h_n", "c_n"] if self.mode == "LSTM" else ["output", "h_n"]

    # --- data -------------------------------------------------------------------------------

    def inputs(self):
        """(x, state, lengths) as float32 / int64 numpy arrays in the layout the model takes:
        x (T, B, I), (B, T, I) with batch_first, or (T, I); state None, h_0 or (h_0, c_0)."""
        rng = np.random.default_rng(self.seed + 1)
        T, B, I = self.steps, self.batch, self.input
        LD = self.layers * (2 if self.bidirectional else 1)
        if self.unbatched:
            x = rng.standard_normal((T, I), dtype=np.float32)
        elif self.batch_first:
            x = rng.standard_normal((B, T, I), dtype=np.float32)
        else:
            x = rng.standard_normal((T, B, I), dtype=np.float32)
        state = None
        if self.given_state:
            lead = (LD,) if self.unbatched else (LD, B)
            h0 = rng.standard_normal(lead + (self.proj or self.hidden,), dtype=np.float32)
            if self.mode == "LSTM":
                c0 = rng.standard_normal(lead + (self.hidden,), dtype=np.float32)
                state = (h0, c0)
            else:
                state = h0
        lengths = unsorted_lengths(rng, B, T) if self.lengths else None
        return x, state, lengths


def build_model(case: Case):
    """A fastrnn model with reference.random_state_dict weights, and those weights."""
    cfg = case.config
    sd = reference.random_state_dict(cfg, np.random.default_rng(case.seed))
    cls = {"LSTM": fastrnn.LSTM, "GRU": fastrnn.GRU}.get(cfg.mode)
    kw = {
        "num_layers": cfg.num_layers,
        "bias": cfg.bias,
        "batch_first": cfg.batch_first,
        "bidirectional": cfg.bidirectional,
    }
    if cfg.mode == "LSTM":
        model = cls(cfg.input_size, cfg.hidden_size, proj_size=cfg.proj_size, **kw)
    elif cls is not None:
        model = cls(cfg.input_size, cfg.hidden_size, **kw)
    else:
        model = fastrnn.RNN(
            cfg.input_size,
            cfg.hidden_size,
            nonlinearity="relu" if cfg.mode == "RNN_RELU" else "tanh",
            **kw,
        )
    model.load_state_dict(sd)
    assert reference.config_of(model) == cfg
    return model, sd


def unsorted_lengths(rng: np.random.Generator, B: int, T: int) -> np.ndarray:
    """(B,) lengths in [1, T] holding both 1 and T (when B ≥ 2), not sorted either way."""
    if B == 1:
        return np.array([int(rng.integers(1, T + 1))], dtype=np.int64)
    lengths = rng.integers(1, T + 1, size=B)
    i, j = rng.choice(B, size=2, replace=False)
    lengths[i], lengths[j] = 1, T
    if B >= 3 and T >= 2:
        while np.all(np.diff(lengths) <= 0) or np.all(np.diff(lengths) >= 0):
            rng.shuffle(lengths)
    return lengths.astype(np.int64)


def _cycle(rnd: random.Random, values, n: int) -> list:
    out = []
    while len(out) < n:
        block = list(values)
        rnd.shuffle(block)
        out.extend(block)
    return out[:n]


def sample_cases(per_mode: int, seed: int, steps=STEPS, max_macs: float = MAX_MACS) -> list[Case]:
    """per_mode cases for each of LSTM, GRU, RNN tanh and RNN relu, over every option,
    reproducible from seed. Each mode is sampled on its own, so each sees every value."""
    rnd = random.Random(seed)
    cases = []
    for mode in MODES:
        n = per_mode
        unbatched = _cycle(rnd, [False, False, True], n)
        nb = n - sum(unbatched)  # batch, batch_first and lengths cycle over batched cases
        batched = {
            name: iter(_cycle(rnd, values, nb))
            for name, values in (
                ("batch", BATCH),
                ("batch_first", [False, True]),
                ("lengths", [True, False]),
            )
        }
        cols = {
            "hidden": _cycle(rnd, HIDDEN, n),
            "input": _cycle(rnd, INPUT, n),
            "steps": _cycle(rnd, steps, n),
            "layers": _cycle(rnd, LAYERS, n),
            "bias": _cycle(rnd, [True, False], n),
            "bidirectional": _cycle(rnd, [False, True], n),
            "given_state": _cycle(rnd, [False, True], n),
            "with_proj": _cycle(rnd, [False, True], n),
        }
        for k in range(n):
            c = {name: col[k] for name, col in cols.items()}
            with_proj = c.pop("with_proj")
            if unbatched[k]:
                c.update(unbatched=True, batch=1, batch_first=False, lengths=False)
            else:
                c.update({name: next(it) for name, it in batched.items()})
            case = Case(mode=mode, **c, seed=seed * 1000 + len(cases))
            if with_proj and case.mode == "LSTM" and case.hidden > 1:
                case = replace(case, proj=rnd.randrange(1, case.hidden))
            # Over the cost cap: fewer steps (not below 7), then fewer sequences, then steps.
            while case.macs > max_macs and case.steps > 7:
                case = replace(case, steps=max(7, case.steps // 2))
            while case.macs > max_macs and case.batch > 1:
                case = replace(case, batch=max(1, case.batch // 2))
            while case.macs > max_macs and case.steps > 2:
                case = replace(case, steps=max(2, case.steps // 2))
            cases.append(case)
    return cases


def coverage(cases: list[Case]) -> dict[str, set]:
    """The values each option takes across the cases (call it once per mode)."""
    return {
        "hidden": {c.hidden for c in cases},
        "input": {c.input for c in cases},
        "steps": {c.steps for c in cases},
        "batch": {c.batch for c in cases if not c.unbatched},
        "layers": {c.layers for c in cases},
        "bias": {c.bias for c in cases},
        "bidirectional": {c.bidirectional for c in cases},
        "batch_first": {c.batch_first for c in cases if not c.unbatched},
        "unbatched": {c.unbatched for c in cases},
        "given_state": {c.given_state for c in cases},
        "lengths": {c.lengths for c in cases},
        "proj": {bool(c.proj) for c in cases if c.mode == "LSTM"},
    }


def expected_coverage(steps=STEPS) -> dict[str, set]:
    return {
        "hidden": set(HIDDEN),
        "input": set(INPUT),
        "steps": set(steps),
        "batch": set(BATCH),
        "layers": set(LAYERS),
        "bias": {True, False},
        "bidirectional": {True, False},
        "batch_first": {True, False},
        "unbatched": {True, False},
        "given_state": {True, False},
        "lengths": {True, False},
        "proj": {True, False},
    }
