// Vectorised exp, sigmoid and tanh on the vector V of the including ISA (kVecLanes lanes),
// or on a VPair of two (vec-pair.h): each function is a template on the vector type W.
// Math:     exp by range reduction x = n·ln2 + r, |r| ≤ ln2/2, and a degree-7 Taylor
//           polynomial (truncation 5e-9 relative); sigmoid(x) = 1 / (1 + exp(-x));
//           tanh(x) = x + x³·P(x²) on |x| < 0.9, else sign(x)·(1 − 2/(1 + exp(2|x|))).
// Accuracy: max abs error ≤ 3e-7 (sigmoid) and ≤ 1e-7 (tanh, and ≤ 1 ulp) over all finite floats,
// tested
//           on a dense grid against float64 in tests/kernels/test_activations.py;
//           sigmoid(±inf) = 1 / 0, tanh(±inf) = ±1, tanh(±0) = ±0, NaN → NaN, and subnormal x
//           gives tanh(x) = x exactly.
// Cost:     AMD Zen 3, AVX2, one core, independent vectors of 8 lanes (a probe of these
//           functions, 2026-12-07): sigmoid 4.6 ns, tanh 6.0, exp 3.8 (the reduced
//           polynomial alone 2.0; the clamps and the two-factor ldexp the rest); an LSTM
//           cell 3.6 ns per unit (3.4 on VPairs). That is ~15% of an LSTM step's time at
//           B = 8, H = 256, ~9% at batch 1, 5% of tput_lstm_512's call (perf).
// Included inside an ISA's anonymous namespace after its vec-*.h (no includes here).

#ifndef FASTRNN_VEC_HAS_LDEXP
// p · 2^n for integral n in [-150, 129], rounded once: 2^n as two normal factors, so that
// p · 2^n1 is exact and only the second product rounds (subnormal results and the overflow
// to inf exact). AVX-512 has it in one instruction (vec-avx512.h), with the same bits.
template <class W>
FASTRNN_INLINE W vldexp(W p, W n) {
  const W n1 = vhalf_floor(n);
  return vmul(vmul(p, vexp2i(n1)), vexp2i(vsub(n, n1)));
}
#endif

// e^r · 2^n = e^x: n = round(x·log2 e), r = x − n·ln2 (|r| ≤ ln2/2), e^r by a degree-7
// Taylor polynomial (truncation 5e-9 relative). Returns e^r and sets n; x within [-104, 89].
template <class W>
FASTRNN_INLINE W vexp_reduced(W x, W& n) {
  n = vround(vmul(x, vset1(1.44269504088896341f)));
  // ln 2 split in a high part exact in float (n·hi is exact for |n| < 2^9) and a low part.
  W r = vfma(n, vset1(-0.693145751953125f), x);
  r = vfma(n, vset1(-1.42860682030941723212e-6f), r);
  W p = vfma(vset1(1.0f / 5040.0f), r, vset1(1.0f / 720.0f));
  p = vfma(p, r, vset1(1.0f / 120.0f));
  p = vfma(p, r, vset1(1.0f / 24.0f));
  p = vfma(p, r, vset1(1.0f / 6.0f));
  p = vfma(p, r, vset1(0.5f));
  p = vfma(p, r, vset1(1.0f));
  return vfma(p, r, vset1(1.0f));
}

// exp(x): 0 for x ≤ -104 (below the smallest subnormal), +inf for x ≥ 88.73, NaN → NaN.
template <class W>
FASTRNN_INLINE W vexp(W x) {
  // Clamp keeps n within [-150, 129]; NaN survives as the 2nd operand.
  W n;
  const W p = vexp_reduced(vmin(vset1(89.0f), vmax(vset1(-104.0f), x)), n);
  return vldexp(p, n);
}

// exp(x) for x in [0, 20] (or NaN): no clamp, and 2^n (n ≤ 29) one exact factor. The same
// bits as vexp there, for fewer operations (tanh's large branch; AVX2's general ldexp alone
// takes 6).
template <class W>
FASTRNN_INLINE W vexp_0_20(W x) {
  W n;
  const W p = vexp_reduced(x, n);
#ifdef FASTRNN_VEC_HAS_LDEXP
  return vldexp(p, n);
#else
  return vmul(p, vexp2i(n));
#endif
}

template <class W>
FASTRNN_INLINE W vsigmoid(W x) {
  const V one = vset1(1.0f);
  return vdiv(one, vadd(one, vexp(vsub(vzero(), x))));
}

template <class W>
FASTRNN_INLINE W vtanh(W x) {
  // |x| < 0.9: tanh(x) = x + x·s·P(s), s = x², P of degree 6 (tools/fit_tanh.py, relative
  // fit error 1.2e-9): the correction is at most 21% of x, so its rounding adds little to
  // the final add's half ulp. |x| ≥ 0.9: tanh(|x|) = 1 − 2/(1 + exp(2|x|)), where
  // 2/(1 + exp(2|x|)) ≤ 0.29 carries exp's error at that smaller magnitude. The sign comes
  // from x (tanh is odd): tanh(±0) = ±0, a subnormal x gives x, ±inf gives ±1 (exp(inf) =
  // inf), NaN stays NaN. Max error 0.96 ulp, mean 0.17 (was 4.3 and 0.8 with the single
  // rational P(x²)/Q(x²) of 15 operations, whose error, injected at every step, made a
  // trained tanh RNN's error against float64 3.5x torch's; ~30 operations now).
  const V one = vset1(1.0f);
  const W a = vabs(x);
  const W s = vmul(x, x);
  W p = vfma(vset1(-0.00045252463158222656f), s, vset1(0.0025742782721670594f));
  p = vfma(p, s, vset1(-0.008255118994912094f));
  p = vfma(p, s, vset1(0.021658294304597384f));
  p = vfma(p, s, vset1(-0.05392780654504496f));
  p = vfma(p, s, vset1(0.13332958287053287f));
  p = vfma(p, s, vset1(-0.33333321339168337f));
  const W small = vfma(vmul(x, s), p, x);
  // |x| ≥ 10 gives 1 either way (1 − 4e-9 rounds to 1); the clamp keeps NaN (2nd operand).
  const W a10 = vmin(vset1(10.0f), a);
  const W big = vsub(one, vdiv(vset1(2.0f), vadd(one, vexp_0_20(vadd(a10, a10)))));
  return vcopysign(vselect(vlt(a, vset1(0.9f)), small, big), x);
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
