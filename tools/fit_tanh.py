"""Fits the small-|x| polynomial of the tanh in csrc/kernels/activations/activations.h.

    python tools/fit_tanh.py [DEGREE BREAK]      (default: 6 0.9)

On |x| < BREAK, tanh(x) = x + x·s·P(s) with s = x² and P of degree DEGREE; above it the
kernel uses 1 − 2/(1 + exp(2|x|)), which needs no fit. P is fitted by least squares on the
relative error of tanh, reweighted (Lawson) towards the minimax error, on nodes clustered
like Chebyshev's. Prints the float64 fit error, the error of a float32 evaluation (as the
kernel does it, with fused multiply-adds emulated in float64) and the coefficients as
float32, highest degree first, as the kernel lists them. Needs numpy only (run it by hand
when changing the approximation).
"""

import sys

import numpy as np


def fit(degree: int, brk: float, iterations: int = 20):
    x = np.cos(np.linspace(0, np.pi / 2, 20001)) * brk
    x = x[x > 1e-4]
    s = x * x
    f = (np.tanh(x) - x) / (x * s)  # what P must be
    w = x * s / np.tanh(x)  # P's error times w is tanh's relative error
    a = np.vander(s, degree + 1, increasing=True)
    c = np.linalg.lstsq(a * w[:, None], f * w, rcond=None)[0]
    for _ in range(iterations):
        err = (a @ c - f) * w
        ww = w * np.sqrt(np.abs(err) / np.abs(err).max() + 1e-3)
        c = np.linalg.lstsq(a * ww[:, None], f * ww, rcond=None)[0]
    rel = np.abs(x + x * s * (a @ c) - np.tanh(x)) / np.tanh(x)
    return c, float(rel.max())


def fma32(a, b, c):
    return (a.astype(np.float64) * b + c).astype(np.float32)


def float32_ulps(c, brk: float) -> tuple:
    x = np.linspace(1e-6, brk, 400001, dtype=np.float32)
    s = x * x
    p = np.full_like(x, np.float32(c[-1]))
    for coef in c[-2::-1]:
        p = fma32(p, s, np.float32(coef))
    y = fma32((x * s).astype(np.float32), p, x)
    ref = np.tanh(x.astype(np.float64))
    ulps = np.abs(y - ref) / np.spacing(np.abs(ref).astype(np.float32))
    return float(ulps.max()), float(ulps.mean())


def main(argv):
    degree = int(argv[0]) if argv else 6
    brk = float(argv[1]) if len(argv) > 1 else 0.9
    c, rel = fit(degree, brk)
    worst, mean = float32_ulps(c, brk)
    print(
        f"degree {degree} on |x| < {brk}: fit error {rel:.2e} relative; float32 "
        f"evaluation max {worst:.2f} ulp, mean {mean:.3f} ulp"
    )
    for coef in c[::-1]:
        print(f"  {np.float32(coef)!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
