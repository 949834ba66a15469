"""A float64 NumPy reference of the cell variants (ONNX's LSTM / GRU / RNN operators and
Keras' options: activations, clip, peepholes, input_forget, the classic GRU, reverse),
written from the ONNX operator specification's equations, independent of fastrnn's code.

    out, state = forward(config, sd, x, state=None, lengths=None)

config: a fastrnn.ModelConfig; sd: weights under fastrnn's key names (torch's gate order,
peepholes `weight_peep_l{k}[_reverse]` (3·H,) in order i, f, o); x (T, B, I) time-major
(or (B, T, I) with config.batch_first); lengths with PackedSequence's meaning. Returns
torch's (output, h_n) or (output, (h_n, c_n)), float64.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def activation(name: str, alpha: float, beta: float, x):
    if name == "Sigmoid":
        return _sigmoid(x)
    if name == "Tanh":
        return np.tanh(x)
    if name == "Relu":
        return np.maximum(x, 0.0)
    if name == "HardSigmoid":
        return np.clip(alpha * x + beta, 0.0, 1.0)
    if name == "LeakyRelu":
        return np.where(x < 0, alpha * x, x)
    if name == "ThresholdedRelu":
        return np.where(x > alpha, x, 0.0)
    if name == "ScaledTanh":
        return alpha * np.tanh(beta * x)
    if name == "Affine":
        return alpha * x + beta
    if name == "Elu":
        return np.where(x < 0, alpha * (np.exp(x) - 1.0), x)
    if name == "Softsign":
        return x / (1.0 + np.abs(x))
    if name == "Softplus":
        return np.log1p(np.exp(x))
    raise ValueError(name)


def _step(config, p, acts, x, h, c):
    H = config.hidden_size
    clip = config.clip

    def clipped(a):
        return np.clip(a, -clip, clip) if clip > 0 else a

    def act(slot, a):
        return activation(*acts[slot], a)

    gx = x @ p["w_ih"].T + (p["b_ih"] if p["b_ih"] is not None else 0.0)
    bhh = p["b_hh"] if p["b_hh"] is not None else np.zeros(p["w_hh"].shape[0])
    if config.mode == "LSTM":
        g = gx + h @ p["w_hh"].T + bhh  # rows i, f, g, o
        P = p["peep"]
        a_i, a_f, a_g, a_o = (g[:, k * H : (k + 1) * H] for k in range(4))
        if P is not None:
            a_i = a_i + P[0:H] * c
            a_f = a_f + P[H : 2 * H] * c
        i = act(0, clipped(a_i))
        f = 1.0 - i if config.input_forget else act(0, clipped(a_f))
        cand = act(1, clipped(a_g))
        c_new = f * c + i * cand
        if P is not None:
            a_o = a_o + P[2 * H : 3 * H] * c_new
        o = act(0, clipped(a_o))
        h_new = o * act(2, c_new)
        if p["w_hr"] is not None:
            h_new = h_new @ p["w_hr"].T
        return h_new, c_new
    if config.mode == "GRU":
        W_hh, rows = p["w_hh"], slice(0, 2 * H)
        a_rz = gx[:, rows] + h @ W_hh[rows].T + bhh[rows]
        r = act(0, clipped(a_rz[:, :H]))
        z = act(0, clipped(a_rz[:, H:]))
        W_hn, b_hn = W_hh[2 * H :], bhh[2 * H :]
        if config.linear_before_reset:
            a_n = gx[:, 2 * H :] + r * (h @ W_hn.T + b_hn)
        else:
            a_n = gx[:, 2 * H :] + (r * h) @ W_hn.T + b_hn
        n = act(1, clipped(a_n))
        return (1.0 - z) * n + z * h, None
    pre = gx + h @ p["w_hh"].T + bhh
    return act(0, clipped(pre)), None


def forward(config, sd, x, state=None, lengths=None):
    x = np.asarray(x, dtype=np.float64)
    if config.batch_first:
        x = x.transpose(1, 0, 2)
    T, B, _ = x.shape
    L, D, H, P = config.num_layers, config.num_directions, config.hidden_size, config.h_out
    lstm = config.mode == "LSTM"
    h0 = np.zeros((L * D, B, P))
    c0 = np.zeros((L * D, B, H))
    if state is not None:
        if lstm:
            h0, c0 = (np.asarray(s, dtype=np.float64) for s in state)
        else:
            h0 = np.asarray(state, dtype=np.float64)
    lens = np.full(B, T) if lengths is None else np.asarray(lengths, dtype=np.int64)
    h_n, c_n = np.zeros((L * D, B, P)), np.zeros((L * D, B, H))

    def get(key):
        v = sd.get(key)
        return None if v is None else np.asarray(v, dtype=np.float64)

    layer_in = x
    for layer in range(L):
        y = np.zeros((T, B, D * P))
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            p = {
                "w_ih": get("weight_ih" + sfx),
                "w_hh": get("weight_hh" + sfx),
                "b_ih": get("bias_ih" + sfx),
                "b_hh": get("bias_hh" + sfx),
                "w_hr": get("weight_hr" + sfx),
                "peep": get("weight_peep" + sfx),
            }
            acts = config.activations_of(d)
            idx = layer * D + d
            h, c = h0[idx].copy(), c0[idx].copy()
            backwards = (d == 1) != config.reverse
            for t in range(T - 1, -1, -1) if backwards else range(T):
                live = (t < lens)[:, None]
                h_new, c_new = _step(config, p, acts, layer_in[t], h, c)
                h = np.where(live, h_new, h)
                if lstm:
                    c = np.where(live, c_new, c)
                y[t, :, d * P : (d + 1) * P] = np.where(live, h_new, 0.0)
            h_n[idx], c_n[idx] = h, c
        layer_in = y
    out = layer_in.transpose(1, 0, 2) if config.batch_first else layer_in
    return (out, (h_n, c_n)) if lstm else (out, h_n)
