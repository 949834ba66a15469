// Vectorised exp, sigmoid and tanh on the 16-lane vector V of the including ISA.
// Math:     exp by range reduction x = n·ln2 + r, |r| ≤ ln2/2, and a degree-7 Taylor
//           polynomial (truncation 5e-9 relative); sigmoid(x) = 1 / (1 + exp(-x));
//           tanh(x) = x·p(x²) (degree-13 Taylor) for |x| < 0.4, else ±(1 − 2 / (exp(2|x|) + 1)).
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
  const V ax = vabs(x);
  // Large branch: 1 - 2/(e^{2|x|} + 1); e^{2|x|} = inf gives exactly 1.
  const V e = vexp(vadd(ax, ax));
  const V big = vsub(vset1(1.0f), vdiv(vset1(2.0f), vadd(e, vset1(1.0f))));
  // Small branch: odd Taylor series; next term 0.00145·x^15 < 2e-9 relative at |x| = 0.4.
  const V x2 = vmul(x, x);
  V p = vset1(21844.0f / 6081075.0f);
  p = vfma(p, x2, vset1(-1382.0f / 155925.0f));
  p = vfma(p, x2, vset1(62.0f / 2835.0f));
  p = vfma(p, x2, vset1(-17.0f / 315.0f));
  p = vfma(p, x2, vset1(2.0f / 15.0f));
  p = vfma(p, x2, vset1(-1.0f / 3.0f));
  const V small = vfma(vmul(p, x2), x, x);
  // NaN compares false and takes the large branch, which is NaN too. The sign is copied
  // onto both branches: at x = -0 the small branch gives (-1/3·0)(-0) + (-0) = +0.
  return vcopysign(vselect(vlt(ax, vset1(0.4f)), small, big), x);
}

inline void map_sigmoid(const float* x, float* y, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) vstore(y + i, vsigmoid(vload(x + i)));
  if (i < n) {
    float tmp[16] = {0};
    for (size_t j = i; j < n; ++j) tmp[j - i] = x[j];
    vstore_n(y + i, vsigmoid(vload(tmp)), static_cast<int>(n - i));
  }
}

inline void map_tanh(const float* x, float* y, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) vstore(y + i, vtanh(vload(x + i)));
  if (i < n) {
    float tmp[16] = {0};
    for (size_t j = i; j < n; ++j) tmp[j - i] = x[j];
    vstore_n(y + i, vtanh(vload(tmp)), static_cast<int>(n - i));
  }
}
