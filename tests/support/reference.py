"""An independent float64 NumPy reference of fastrnn's semantics (DESIGN.md §2).

Written from the equations, not from fastrnn's or torch's code: plain loops over layers,
directions and time steps, everything in float64. It takes weights as a state_dict of numpy
arrays under torch's key names and needs neither torch nor fastrnn.

    out, h_n        = rnn_forward(cfg, sd, x, state=h_0, lengths=lengths)   # GRU / RNN
    out, (h_n, c_n) = rnn_forward(cfg, sd, x, state=(h_0, c_0))             # LSTM
    h'              = cell_forward(mode, sd, x, h)                           # GRU/RNN cell
    (h', c')        = cell_forward("LSTM", sd, x, (h, c))                    # LSTM cell

`cfg` is a `Config` (mode, sizes and flags). `mode` is "LSTM", "GRU", "RNN_TANH" or
"RNN_RELU". Shapes are torch's: x (T, B, I), (B, T, I) with batch_first, or unbatched
(T, I); states (L·D, B, H_out), c (L·D, B, H), index = layer·D + direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


@dataclass(frozen=True)
class Config:
    mode: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    bidirectional: bool = False
    proj_size: int = 0

    @property
    def D(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def h_out(self) -> int:
        return self.proj_size or self.hidden_size


def config_of(model) -> Config:
    """The Config of a fastrnn layer model (LSTM / GRU / RNN)."""
    return Config(
        model.mode,
        model.input_size,
        model.hidden_size,
        model.num_layers,
        model.bias,
        model.batch_first,
        model.bidirectional,
        getattr(model, "proj_size", 0),
    )


def parameter_shapes(cfg: Config) -> dict[str, tuple]:
    """torch's parameter names and shapes (DESIGN.md §2)."""
    G = GATES[cfg.mode] * cfg.hidden_size
    shapes = {}
    for layer in range(cfg.num_layers):
        in_size = cfg.input_size if layer == 0 else cfg.D * cfg.h_out
        for d in range(cfg.D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            shapes["weight_ih" + sfx] = (G, in_size)
            shapes["weight_hh" + sfx] = (G, cfg.h_out)
            if cfg.bias:
                shapes["bias_ih" + sfx] = (G,)
                shapes["bias_hh" + sfx] = (G,)
            if cfg.proj_size:
                shapes["weight_hr" + sfx] = (cfg.proj_size, cfg.hidden_size)
    return shapes


def random_state_dict(cfg: Config, rng: np.random.Generator, scale: float | None = None):
    """float32 weights at torch's default scale U(-1/sqrt(H), 1/sqrt(H))."""
    k = 1.0 / np.sqrt(cfg.hidden_size) if scale is None else scale
    return {
        key: rng.uniform(-k, k, size=s).astype(np.float32)
        for key, s in parameter_shapes(cfg).items()
    }


def sigmoid(v):
    # Split by sign so that exp never overflows: exact in float64 over the whole range.
    out = np.empty_like(v)
    pos = v >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-v[pos]))
    e = np.exp(v[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _linear(w, v, b=None):
    """v (B, K) @ w(N, K)ᵀ + b (N,)."""
    y = v @ w.T
    return y if b is None else y + b


def step(mode: str, p: dict, x, h, c=None):
    """One step of one cell. p: float64 weights 'w_ih', 'w_hh', 'b_ih', 'b_hh' (maybe None),
    'w_hr' (maybe None). x (B, I), h (B, H_out), c (B, H). Returns (h', c')."""
    H = p["w_ih"].shape[0] // GATES[mode]
    gx = _linear(p["w_ih"], x, p["b_ih"])
    gh = _linear(p["w_hh"], h, p["b_hh"])
    if mode == "LSTM":
        g = gx + gh  # rows i, f, g, o
        i = sigmoid(g[:, 0 * H : 1 * H])
        f = sigmoid(g[:, 1 * H : 2 * H])
        gg = np.tanh(g[:, 2 * H : 3 * H])
        o = sigmoid(g[:, 3 * H : 4 * H])
        c_new = f * c + i * gg
        h_new = o * np.tanh(c_new)
        if p["w_hr"] is not None:
            h_new = h_new @ p["w_hr"].T
        return h_new, c_new
    if mode == "GRU":
        # rows r, z, n; b_hn stays inside r ⊙ (W_hn h + b_hn).
        r = sigmoid(gx[:, 0 * H : 1 * H] + gh[:, 0 * H : 1 * H])
        z = sigmoid(gx[:, 1 * H : 2 * H] + gh[:, 1 * H : 2 * H])
        n = np.tanh(gx[:, 2 * H : 3 * H] + r * gh[:, 2 * H : 3 * H])
        return (1.0 - z) * n + z * h, None
    pre = gx + gh
    if mode == "RNN_TANH":
        return np.tanh(pre), None
    if mode == "RNN_RELU":
        return np.maximum(pre, 0.0), None
    raise ValueError(f"unknown mode {mode!r}")


def _params(sd: dict, sfx: str) -> dict:
    def get(key):
        v = sd.get(key + sfx)
        return None if v is None else np.asarray(v, dtype=np.float64)

    return {
        "w_ih": get("weight_ih"),
        "w_hh": get("weight_hh"),
        "b_ih": get("bias_ih"),
        "b_hh": get("bias_hh"),
        "w_hr": get("weight_hr"),
    }


def rnn_forward(cfg: Config, sd: dict, x, state=None, lengths=None):
    """The whole stack over a sequence, in float64. Returns torch's (output, h_n), or for
    LSTM (output, (h_n, c_n)), as float64 arrays with torch's shapes."""
    x = np.asarray(x, dtype=np.float64)
    batched = x.ndim == 3
    if not batched:
        assert lengths is None, "lengths needs a batched x"
        x = x[:, None, :]
    elif cfg.batch_first:
        x = x.transpose(1, 0, 2)
    T, B, _ = x.shape
    L, D, H, P = cfg.num_layers, cfg.D, cfg.hidden_size, cfg.h_out
    lstm = cfg.mode == "LSTM"

    h0 = np.zeros((L * D, B, P))
    c0 = np.zeros((L * D, B, H))
    if state is not None:
        hs, cs = state if lstm else (state, None)
        hs = np.asarray(hs, dtype=np.float64)
        h0 = hs if batched else hs[:, None, :]
        if lstm:
            cs = np.asarray(cs, dtype=np.float64)
            c0 = cs if batched else cs[:, None, :]
    lens = np.full(B, T) if lengths is None else np.asarray(lengths).astype(np.int64)
    assert lens.shape == (B,) and lens.min() >= 1 and lens.max() <= T

    h_n = np.zeros((L * D, B, P))
    c_n = np.zeros((L * D, B, H))
    layer_in = x
    for layer in range(L):
        y = np.zeros((T, B, D * P))
        for d in range(D):
            idx = layer * D + d
            p = _params(sd, f"_l{layer}" + ("_reverse" if d else ""))
            h, c = h0[idx].copy(), c0[idx].copy()
            # Forward runs t = 0..T-1; backward T-1..0. Sequence b takes part in step t only
            # when t < lengths[b]: its state waits (backward: starts at its own last step)
            # and its output there stays zero.
            for t in range(T) if d == 0 else range(T - 1, -1, -1):
                live = (t < lens)[:, None]
                h_new, c_new = step(cfg.mode, p, layer_in[t], h, c)
                h = np.where(live, h_new, h)
                if lstm:
                    c = np.where(live, c_new, c)
                y[t, :, d * P : (d + 1) * P] = np.where(live, h_new, 0.0)
            h_n[idx] = h
            c_n[idx] = c
        layer_in = y  # dropout between layers is a training feature: none here

    out = layer_in
    if not batched:
        out, h_n, c_n = out[:, 0], h_n[:, 0], c_n[:, 0]
    elif cfg.batch_first:
        out = out.transpose(1, 0, 2)
    return (out, (h_n, c_n)) if lstm else (out, h_n)


def cell_forward(mode: str, sd: dict, x, state=None):
    """One step of LSTMCell / GRUCell / RNNCell with torch's cell keys (weight_ih, …).
    x (B, I) or (I,); state h (B, H) — LSTM: (h, c) — or None. Returns h' or (h', c')."""
    x = np.asarray(x, dtype=np.float64)
    batched = x.ndim == 2
    xb = x if batched else x[None]
    p = _params(sd, "")
    H = p["w_hh"].shape[1]
    B = xb.shape[0]
    if state is None:
        h, c = np.zeros((B, H)), np.zeros((B, H))
    elif mode == "LSTM":
        h, c = (np.asarray(s, dtype=np.float64).reshape(B, H) for s in state)
    else:
        h, c = np.asarray(state, dtype=np.float64).reshape(B, H), None
    h_new, c_new = step(mode, p, xb, h, c)
    if not batched:
        h_new = h_new[0]
        c_new = None if c_new is None else c_new[0]
    return (h_new, c_new) if mode == "LSTM" else h_new
