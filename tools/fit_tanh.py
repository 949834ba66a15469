"""Fits the rational tanh of csrc/kernels/activations/activations.h.

    python tools/fit_tanh.py [P_DEGREE Q_DEGREE CLAMP]      (default: 4 4 9)

tanh(x) ≈ x·P(x²)/Q(x²) on [0, CLAMP], with P(0) = Q(0) = 1 (so tanh(±0) = ±0 and a
subnormal x maps to itself) and every coefficient of Q ≥ 0 (Q has no zero for x² ≥ 0).
The linearised problem x·P − tanh·Q = 0 is solved by bounded least squares, reweighted
(Lawson) towards the minimax error. Prints the float64 fit error, the error of a float32
Horner evaluation over [0, 12], and the coefficients as float32. Needs numpy and scipy
(not dependencies of fastrnn: run it by hand when changing the approximation).
"""

import sys

import numpy as np
from scipy.optimize import lsq_linear


def fit(p_deg: int, q_deg: int, clamp: float, iterations: int = 60):
    x = np.linspace(0, clamp, 200001)[1:]
    y, s = np.tanh(x), x * x
    cols = [x * s**k for k in range(1, p_deg + 1)] + [-y * s**k for k in range(1, q_deg + 1)]
    a = np.stack(cols, 1)
    lower = [-np.inf] * p_deg + [0.0] * q_deg

    def solve(w):
        r = lsq_linear(a * w[:, None], (y - x) * w, bounds=(lower, np.inf), method="bvls")
        return np.r_[1.0, r.x[:p_deg]], np.r_[1.0, r.x[p_deg:]]

    def value(p, q):
        return x * np.polyval(p[::-1], s) / np.polyval(q[::-1], s)

    lawson, w, best = np.full_like(x, 1 / x.size), np.ones_like(x), None
    for _ in range(iterations):
        p, q = solve(w)
        err = np.abs(value(p, q) - y)
        if best is None or err.max() < best[0]:
            best = (err.max(), p, q)
        lawson = lawson * (err / err.max() + 1e-2)
        lawson /= lawson.sum()
        w = np.sqrt(lawson) / np.polyval(q[::-1], s)
    return best


def float32_error(p, q, clamp: float) -> float:
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    x = np.linspace(0, 12, 3000001).astype(np.float32)
    xc = np.minimum(x, np.float32(clamp))
    s = xc * xc
    pv, qv = p32[-1], q32[-1]
    for k in range(len(p32) - 2, -1, -1):
        pv = pv * s + p32[k]
    for k in range(len(q32) - 2, -1, -1):
        qv = qv * s + q32[k]
    got = np.clip(xc * (pv / qv), -1, 1)
    return float(np.abs(got - np.tanh(x.astype(np.float64))).max())


def main() -> None:
    p_deg, q_deg, clamp = (int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])) if len(
        sys.argv) > 3 else (4, 4, 9.0)
    err, p, q = fit(p_deg, q_deg, clamp)
    print(f"fit error {err:.3g}, float32 evaluation error {float32_error(p, q, clamp):.3g}")
    print("P:", ", ".join(repr(float(v)) for v in p.astype(np.float32)))
    print("Q:", ", ".join(repr(float(v)) for v in q.astype(np.float32)))


if __name__ == "__main__":
    main()
