// 16-lane float vector for AVX2 + FMA: two ymm registers.
// Included inside an anonymous namespace by kernels-avx2.cc only (internal linkage).
// min/max return their second operand when either is NaN (see vec-avx512.h).

struct V {
  __m256 lo, hi;
};
struct VMask {
  __m256 lo, hi;
};

// Register budget (16 ymm, a logical vector takes two): one row per step block; the two
// halves of each gate already give 8 independent FMA chains, so K is not split.
constexpr int kStepRows = 1;
constexpr int kStepSplitK = 1;
constexpr int kGemmRows = 1;
constexpr int kAheadRows = 1;

inline V vload(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline void vstore(float* p, V a) {
  _mm256_storeu_ps(p, a.lo);
  _mm256_storeu_ps(p + 8, a.hi);
}
inline void vstore_n(float* p, V a, int n) {
  alignas(32) float tmp[16];
  vstore(tmp, a);
  for (int i = 0; i < n; ++i) p[i] = tmp[i];
}
inline V vset1(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
inline V vzero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline V vadd(V a, V b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
inline V vsub(V a, V b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
inline V vmul(V a, V b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
inline V vdiv(V a, V b) { return {_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)}; }
inline V vfma(V a, V b, V c) {
  return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
inline V vmin(V a, V b) { return {_mm256_min_ps(a.lo, b.lo), _mm256_min_ps(a.hi, b.hi)}; }
inline V vmax(V a, V b) { return {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
inline V vabs(V a) {
  const __m256 m = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  return {_mm256_and_ps(a.lo, m), _mm256_and_ps(a.hi, m)};
}
inline V vcopysign(V a, V s) {
  const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
  return {_mm256_or_ps(_mm256_andnot_ps(sign, a.lo), _mm256_and_ps(sign, s.lo)),
          _mm256_or_ps(_mm256_andnot_ps(sign, a.hi), _mm256_and_ps(sign, s.hi))};
}
inline VMask vlt(V a, V b) {
  return {_mm256_cmp_ps(a.lo, b.lo, _CMP_LT_OQ), _mm256_cmp_ps(a.hi, b.hi, _CMP_LT_OQ)};
}
inline V vselect(VMask m, V if_true, V if_false) {
  return {_mm256_blendv_ps(if_false.lo, if_true.lo, m.lo),
          _mm256_blendv_ps(if_false.hi, if_true.hi, m.hi)};
}
inline V vround(V a) {
  constexpr int kMode = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  return {_mm256_round_ps(a.lo, kMode), _mm256_round_ps(a.hi, kMode)};
}
inline V vexp2i(V n) {
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256i lo = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n.lo), bias), 23);
  const __m256i hi = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n.hi), bias), 23);
  return {_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi)};
}
inline V vhalf_floor(V n) {
  constexpr int kMode = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;
  const __m256 h = _mm256_set1_ps(0.5f);
  return {_mm256_round_ps(_mm256_mul_ps(n.lo, h), kMode),
          _mm256_round_ps(_mm256_mul_ps(n.hi, h), kMode)};
}
