// Vectorised exp, sigmoid and tanh on the vector V of the including ISA (kVecLanes lanes).
// Math:     exp by range reduction x = n·ln2 + r, |r| ≤ ln2/2, and a degree-7 Taylor
//           polynomial (truncation 5e-9 relative); sigmoid(x) = 1 / (1 + exp(-x));
//           tanh(x) = x·P(x²)/Q(x²) (degree 4 over 4 in x²) on |x| ≤ 9, clamped to [-1, 1].
// Accuracy: max abs error ≤ 3e-7 (sigmoid) and ≤ 5e-7 (tanh) over all finite floats, tested
//           on a dense grid against float64 in tests/test_activations.py;
//           sigmoid(±inf) = 1 / 0, tanh(±inf) = ±1, tanh(±0) = ±0, NaN → NaN, and subnormal x
//           gives tanh(x) = x exactly.
// Included inside an ISA's anonymous namespace after its vec-*.h (no includes here).

#ifndef FASTRNN_VEC_HAS_LDEXP
// p · 2^n for integral n in [-150, 129], rounded once: 2^n as two normal factors, so that
// p · 2^n1 is exact and only the second product rounds (subnormal results and the overflow
// to inf exact). AVX-512 has it in one instruction (vec-avx512.h), with the same bits.
inline V vldexp(V p, V n) {
  const V n1 = vhalf_floor(n);
  return vmul(vmul(p, vexp2i(n1)), vexp2i(vsub(n, n1)));
}
#endif

// exp(x): 0 for x ≤ -104 (below the smallest subnormal), +inf for x ≥ 88.73, NaN → NaN.
inline V vexp(V x) {
  // Clamp keeps n = round(x·log2 e) within [-150, 129]; NaN survives as the 2nd operand.
  x = vmin(vset1(89.0f), vmax(vset1(-104.0f), x));
  const V n = vround(vmul(x, vset1(1.44269504088896341f)));
  // ln 2 split in a high part exact in float (n·hi is exact for |n| < 2^9) and a low part.
  V r = vfma(n, vset1(-0.693145751953125f), x);
  r = vfma(n, vset1(-1.42860682030941723212e-6f), r);
  V p = vset1(1.0f / 5040.0f);
  p = vfma(p, r, vset1(1.0f / 720.0f));
  p = vfma(p, r, vset1(1.0f / 120.0f));
  p = vfma(p, r, vset1(1.0f / 24.0f));
  p = vfma(p, r, vset1(1.0f / 6.0f));
  p = vfma(p, r, vset1(0.5f));
  p = vfma(p, r, vset1(1.0f));
  p = vfma(p, r, vset1(1.0f));
  return vldexp(p, n);
}

inline V vsigmoid(V x) {
  const V one = vset1(1.0f);
  return vdiv(one, vadd(one, vexp(vsub(vzero(), x))));
}

inline V vtanh(V x) {
  // tanh(x) = x·P(x²)/Q(x²) on |x| ≤ 9 (tanh(9) rounds to 1); P, Q of degree 4 in x² with
  // P(0) = Q(0) = 1, so tanh(±0) = ±0 and a subnormal x gives x exactly. Coefficients from
  // tools/fit_tanh.py (reweighted least squares towards minimax, Q's coefficients kept ≥ 0
  // so Q has no zero): fit error 2e-8, ≤ 4e-7 evaluated in fp32. 15 operations and no exp,
  // half of the exp-based form's. The clamp keeps NaN (the 2nd operand of min/max).
  x = vmin(vset1(9.0f), vmax(vset1(-9.0f), x));
  const V s = vmul(x, x);
  V p = vset1(1.3339252369348742e-08f);
  p = vfma(p, s, vset1(2.0596982722054236e-05f));
  p = vfma(p, s, vset1(0.0034948147367686033f));
  p = vfma(p, s, vset1(0.13380365073680878f));
  p = vfma(p, s, vset1(1.0f));
  V q = vset1(7.769957619530032e-07f);
  q = vfma(q, s, vset1(0.00032843954977579415f));
  q = vfma(q, s, vset1(0.025874007493257523f));
  q = vfma(q, s, vset1(0.46713683009147644f));
  q = vfma(q, s, vset1(1.0f));
  // The fit overshoots 1 by up to 2 ulp just below saturation: clamp to [-1, 1].
  return vmin(vset1(1.0f), vmax(vset1(-1.0f), vmul(x, vdiv(p, q))));
}

inline void map_sigmoid(const float* x, float* y, size_t n) {
  size_t i = 0;
  for (; i + kVecLanes <= n; i += kVecLanes) vstore(y + i, vsigmoid(vload(x + i)));
  if (i < n) {
    float tmp[kVecLanes] = {0};
    for (size_t j = i; j < n; ++j) tmp[j - i] = x[j];
    vstore_n(y + i, vsigmoid(vload(tmp)), static_cast<int>(n - i));
  }
}

inline void map_tanh(const float* x, float* y, size_t n) {
  size_t i = 0;
  for (; i + kVecLanes <= n; i += kVecLanes) vstore(y + i, vtanh(vload(x + i)));
  if (i < n) {
    float tmp[kVecLanes] = {0};
    for (size_t j = i; j < n; ++j) tmp[j - i] = x[j];
    vstore_n(y + i, vtanh(vload(tmp)), static_cast<int>(n - i));
  }
}
