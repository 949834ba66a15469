// 16-lane float vector for AVX-512F: one zmm register.
// Included inside an anonymous namespace by kernels-avx512.cc only (internal linkage).
// min/max return their second operand when either is NaN (x86 MINPS/MAXPS semantics);
// every ISA's vector keeps that rule so NaN handling is the same everywhere.

struct V {
  __m512 v;
};
using VMask = __mmask16;

// One V holds a whole 16-float packed vector (types.h).
constexpr int kVecLanes = 16;

// Register tiles for 32 zmm: rows per block, and whether few-row steps split K in two chains.
constexpr int kGemmRows = 6;         // 6 rows × 4 vectors = 24 accumulators
constexpr int kGemmGates = 4;        // a GEMM tile spans the whole panel (every gate)
constexpr int kGemmDepth = 1 << 30;  // no depth blocks: a panel streams from L2
// No prefetch of the next tile (gemm.h): a tile is a whole panel read in one sequential
// stream; prefetching the next panel into the L2 gained nothing measurable (Zen 5).
constexpr bool kGemmPrefetch = false;
constexpr bool kGemmStrips = false;  // W_ih, W_hh in whole panel rows (gemm.h)
// k iterations per loop trip of a one-chain dot product: 4 keep the loop's address
// arithmetic and counter off the FMA ports' way (Sapphire Rapids-class Xeon, GEMM with
// 64-byte aligned weights, K = 256 and 512: +7% and +9%; K ≤ 128 level).
constexpr int kDotUnroll = 4;
constexpr int kStepAccumulators = 24;
constexpr int kStepRows = 3;  // 3 rows × 4 gates × 2 chains = 24 accumulators
constexpr int kStepSplitK = 2;
constexpr int kStepSumRows = 0;  // many-row steps keep a whole panel's gates in registers
// Many-row LSTM and GRU epilogues take two active rows at once (a VRowPair, step-driver.h
// row_pair_epilogue): two chains of activations op by op.
constexpr bool kRowPairEpilogue = true;
// Many-row tiles that stream far weights hold whole panel rows: each prefetches its own
// (no shares of the next depth block, vec-avx2.h).
constexpr bool kStreamNextBlock = false;
template <int NV>
constexpr int step_rows_many() {
  return kGemmRows;  // 6 rows × 4 gates: each weight vector feeds 6 FMAs
}
constexpr int kAheadRows = 4;  // 4 rows × 4 vectors + 2 × 4 step chains + 4 weights = 28
// Weight-only bf16 steps of 4+ rows (step-driver.h): blocks of kBf16StepRows rows widen the
// pairs in registers (4 rows × 4 gates + 2 × 4 widened halves = 24 zmm), at every batch
// size: over fp32's time, Zen 5, T = 4, in registers / on widened depth blocks through
// gate sums: B = 4 1.03 / 1.34x, 8 1.02 / 1.19, 16 1.01 / 1.14, 64 1.03 / 1.07.
constexpr int kBf16StepRows = 4;
constexpr int kBf16SummedRows = 1 << 30;

inline V vload(const float* p) { return {_mm512_loadu_ps(p)}; }
inline void vstore(float* p, V a) { _mm512_storeu_ps(p, a.v); }
inline void vstore_n(float* p, V a, int n) {
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), a.v);
}
inline V vset1(float x) { return {_mm512_set1_ps(x)}; }
inline V vzero() { return {_mm512_setzero_ps()}; }
inline V vadd(V a, V b) { return {_mm512_add_ps(a.v, b.v)}; }
inline V vsub(V a, V b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline V vmul(V a, V b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline V vdiv(V a, V b) { return {_mm512_div_ps(a.v, b.v)}; }
inline V vfma(V a, V b, V c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }  // a*b + c
inline V vmin(V a, V b) { return {_mm512_min_ps(a.v, b.v)}; }
inline V vmax(V a, V b) { return {_mm512_max_ps(a.v, b.v)}; }
inline V vabs(V a) { return {_mm512_abs_ps(a.v)}; }
// Magnitude of a with the sign bit of s.
inline V vcopysign(V a, V s) {
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  return {_mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(a.v),
                                                        _mm512_castps_si512(s.v), sign,
                                                        0xD8))};  // 0xD8: sign ? s : a, bitwise
}
inline VMask vlt(V a, V b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ); }
inline V vselect(VMask m, V if_true, V if_false) {
  return {_mm512_mask_blend_ps(m, if_false.v, if_true.v)};
}
inline V vround(V a) {
  return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
}
// p · 2^n for integral n, rounded once (subnormal results and the overflow to inf exact):
// one VSCALEFPS, the same bits as the two-factor form of the other ISAs.
inline V vldexp(V p, V n) { return {_mm512_scalef_ps(p.v, n.v)}; }
#define FASTRNN_VEC_HAS_LDEXP 1
