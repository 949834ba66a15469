// 8-lane float vector for AVX2 + FMA: one ymm register.
// Included inside an anonymous namespace by kernels-avx2.cc only (internal linkage).
// min/max return their second operand when either is NaN (see vec-avx512.h).

struct V {
  __m256 v;
};
using VMask = __m256;

// One V is half of a 16-float packed vector (types.h): tiles name their halves (panel-dot.h).
constexpr int kVecLanes = 8;

// Register tiles for 16 ymm registers (the BLIS Haswell budget: 12 accumulators, the rest
// for weight vectors and a broadcast). All sums run in one chain (K is never split), so
// every tile gives the same bits.
//   GEMM: 6 rows × 16 columns (one gate, two ymm): 2 weight loads and 6 broadcasts per 12
//         FMAs; the 16 columns' weights (K × 64 bytes) stay in L1 while all rows pass.
//   Step: batch 1 takes a whole LSTM panel (8 accumulators: 8 chains hide the FMA latency);
//         more rows take fewer gates at a time (step_gates in step-driver.h): 6 rows × one
//         gate, like the GEMM. Half-panel tiles (3 rows × 4 gates × 8 units) read every
//         weight line twice per block, from L2: 38% of peak at B = 64, H = 512, against
//         the gate tiles' TODO (Sapphire Rapids).
constexpr int kGemmRows = 6;
constexpr int kGemmGates = 1;
// Depth blocks of 256 k: the tile's weights (16 KiB) and a 6-row block of A (6 KiB) stay in
// a 32 KiB L1 (Zen 3; 48 KiB on Intel): GEMM at K = 512 79% → TODO of peak (Sapphire Rapids).
constexpr int kGemmDepth = 128;
constexpr int kStepAccumulators = 12;
constexpr int kStepRows = 3;
constexpr int kStepSplitK = 1;
template <int NV>
constexpr int step_rows_many() {
  return kGemmRows;
}
// Many-row steps run as the GEMM into gate sums for blocks of this many rows (on the stack:
// 32 × 64 floats = 8 KiB, beside the GEMM tile's 16 KiB of weights in L1).
constexpr int kStepSumRows = 64;
// No input projection ahead at batch 1: the step's 8 chains and a projection tile of even
// one row (8 more) leave no register for the weights.
constexpr int kAheadRows = 0;

inline V vload(const float* p) { return {_mm256_loadu_ps(p)}; }
inline void vstore(float* p, V a) { _mm256_storeu_ps(p, a.v); }
inline void vstore_n(float* p, V a, int n) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane), a.v);
}
inline V vset1(float x) { return {_mm256_set1_ps(x)}; }
inline V vzero() { return {_mm256_setzero_ps()}; }
inline V vadd(V a, V b) { return {_mm256_add_ps(a.v, b.v)}; }
inline V vsub(V a, V b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline V vmul(V a, V b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline V vdiv(V a, V b) { return {_mm256_div_ps(a.v, b.v)}; }
inline V vfma(V a, V b, V c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }  // a*b + c
inline V vmin(V a, V b) { return {_mm256_min_ps(a.v, b.v)}; }
inline V vmax(V a, V b) { return {_mm256_max_ps(a.v, b.v)}; }
inline V vabs(V a) {
  return {_mm256_and_ps(a.v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)))};
}
inline V vcopysign(V a, V s) {
  const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
  return {_mm256_or_ps(_mm256_andnot_ps(sign, a.v), _mm256_and_ps(sign, s.v))};
}
inline VMask vlt(V a, V b) { return _mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ); }
inline V vselect(VMask m, V if_true, V if_false) {
  return {_mm256_blendv_ps(if_false.v, if_true.v, m)};
}
inline V vround(V a) {
  return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
}
inline V vexp2i(V n) {
  const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127));
  return {_mm256_castsi256_ps(_mm256_slli_epi32(e, 23))};
}
inline V vhalf_floor(V n) {
  return {_mm256_round_ps(_mm256_mul_ps(n.v, _mm256_set1_ps(0.5f)),
                          _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)};
}
