"""The benchmark workloads: named shapes of LSTM, GRU and RNN runs, with their FLOPs."""

from __future__ import annotations

import dataclasses

from .._config import gates


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark shape. Legend: B batch, T time steps, I input, H hidden, L layers,
    D directions. A streaming workload is T single-step calls carrying the state."""

    name: str
    cell: str  # "LSTM", "GRU" or "RNN" (tanh)
    B: int
    T: int
    I: int
    H: int
    L: int = 1
    D: int = 1
    batch_first: bool = False
    streaming: bool = False
    about: str = ""

    def __post_init__(self):
        if self.cell not in ("LSTM", "GRU", "RNN"):
            raise ValueError(
                f"Workload {self.name}: cell must be LSTM, GRU or RNN, got {self.cell!r}"
            )
        if self.streaming and (self.D != 1 or self.batch_first):
            raise ValueError(
                f"Workload {self.name}: a streaming workload is unidirectional and time-major"
            )

    @property
    def G(self) -> int:
        """Gate rows of W_ih and W_hh: 4H (LSTM), 3H (GRU), H (RNN)."""
        return gates("RNN_TANH" if self.cell == "RNN" else self.cell) * self.H

    def layer_input(self, layer: int) -> int:
        return self.I if layer == 0 else self.D * self.H

    def flops(self) -> int:
        """FLOPs of one call (streaming: of all T steps): 2·B·G·(I_l + H) per step, layer and
        direction."""
        per_step = sum(
            self.D * 2 * self.B * self.G * (self.layer_input(l) + self.H) for l in range(self.L)
        )
        return self.T * per_step

    def w_hh_bytes(self) -> int:
        """fp32 bytes of every W_hh of the stack (all layers and directions)."""
        return 4 * self.L * self.D * self.G * self.H

    def w_ih_bytes(self) -> int:
        return 4 * self.D * self.G * sum(self.layer_input(l) for l in range(self.L))

    def x_shape(self) -> tuple:
        return (self.B, self.T, self.I) if self.batch_first else (self.T, self.B, self.I)

    def state_shape(self) -> tuple:
        return (self.L * self.D, self.B, self.H)

    def describe(self) -> str:
        parts = [self.cell, f"B={self.B}", f"T={self.T}", f"I={self.I}", f"H={self.H}"]
        if self.L != 1:
            parts.append(f"L={self.L}")
        if self.D == 2:
            parts.append("bidirectional")
        if self.batch_first:
            parts.append("batch_first")
        if self.streaming:
            parts.append(f"{self.T} single-step calls")
        return " ".join(parts)


WORKLOADS = {
    w.name: w
    for w in [
        Workload(
            "default", "LSTM", 1, 100, 256, 256, about="the model `fastrnn` times with no arguments"
        ),
        Workload(
            "stream_lstm_256",
            "LSTM",
            1,
            100,
            256,
            256,
            streaming=True,
            about="streaming, state carried",
        ),
        Workload(
            "stream_gru_256",
            "GRU",
            1,
            100,
            256,
            256,
            streaming=True,
            about="streaming, state carried",
        ),
        Workload("lat_lstm_256", "LSTM", 1, 100, 256, 256, about="latency, batch 1"),
        Workload("lat_gru_256", "GRU", 1, 100, 256, 256, about="latency, batch 1"),
        Workload("lat_lstm_1024", "LSTM", 1, 100, 1024, 1024, about="latency, W_hh 16 MiB (L3)"),
        Workload("small_lstm_64", "LSTM", 1, 100, 32, 64, L=2, about="small model, batch 1"),
        Workload("tput_lstm_512", "LSTM", 64, 100, 512, 512, L=2, about="throughput, batch 64"),
        Workload("tput_gru_512", "GRU", 64, 100, 512, 512, L=2, about="throughput, batch 64"),
        Workload(
            "bilstm_text",
            "LSTM",
            32,
            64,
            300,
            256,
            L=2,
            D=2,
            batch_first=True,
            about="text encoder",
        ),
        Workload("deepbench_lstm", "LSTM", 4, 50, 1536, 1536, about="DeepBench inference shape"),
    ]
}

# `--all`: every workload but `default` (which is lat_lstm_256 under another name).
ALL = tuple(name for name in WORKLOADS if name != "default")


def get_workload(w) -> Workload:
    if isinstance(w, Workload):
        return w
    try:
        return WORKLOADS[w]
    except KeyError:
        raise ValueError(f"unknown workload {w!r}; known: {', '.join(WORKLOADS)}") from None
