// 4-lane float vector for AArch64 Advanced SIMD (NEON, part of the AArch64 baseline: no
// flag, no runtime check): one 128-bit q register.
// Included inside an anonymous namespace by kernels-neon.cc only (internal linkage).
// min/max return their second operand when either is NaN, as on x86 (see vec-avx512.h):
// NEON's FMIN/FMAX return NaN for either, so they are written as compare-and-select.

struct V {
  float32x4_t v;
};
using VMask = uint32x4_t;

// One V is a quarter of a 16-float packed vector (types.h): kSub = 4 (panel-dot.h).
constexpr int kVecLanes = 4;

// Register tiles for 32 q registers, all sums in one chain (K never split), as AVX2 and the
// scalar table do: every NEON result is the scalar table's, bit for bit.
//   GEMM: 6 rows × 16 columns (one gate: 4 q): 24 accumulators, 4 weight vectors, a
//         broadcast; depth blocks of 128 k keep the tile's weights (8 KiB) in L1.
//   Step: batch 1 takes a whole LSTM panel (16 accumulators, 16 chains); from 4 rows the
//         GEMM's tiles into gate sums on the stack (kStepSumRows).
// Not tuned on ARM hardware (none was at hand: built and tested under qemu-aarch64).
constexpr int kGemmRows = 6;
constexpr int kGemmGates = 1;
constexpr int kDotUnroll = 1;
constexpr int kGemmDepth = 128;
// No prefetch of the next tile (gemm.h): AVX2 gains from it, but no Arm core has been
// timed here (qemu only), and a speed change lands only measured.
constexpr bool kGemmPrefetch = false;
constexpr bool kGemmStrips = false;  // W_ih, W_hh in whole panel rows (gemm.h)
constexpr int kStepAccumulators = 24;
constexpr int kStepRows = 1;
constexpr int kStepSplitK = 1;
template <int NV>
constexpr int step_rows_many() {
  return kGemmRows;
}
constexpr int kStepSumRows = 64;
// Many-row tiles that stream far weights (the GEMM's: part of a panel row, as on AVX2):
// the shares of the next depth block of vec-avx2.h are not measured on an Arm core, so not
// taken (each tile of up to 4 rows prefetches its own weights).
constexpr bool kStreamNextBlock = false;
constexpr bool kRowPairEpilogue = false;  // two V's of a row make the pair (VPair)
constexpr int kAheadRows = 0;
// Weight-only bf16 steps of 4+ rows (step-driver.h): register blocks of kBf16StepRows rows
// below kBf16SummedRows rows per thread, the GEMM's tiles above (32 registers hold the
// 4-row tile with room; the split is not timed on NEON hardware).
constexpr int kBf16StepRows = 4;
constexpr int kBf16SummedRows = 32;

inline V vload(const float* p) { return {vld1q_f32(p)}; }
inline void vstore(float* p, V a) { vst1q_f32(p, a.v); }
inline void vstore_n(float* p, V a, int n) {
  float tmp[4];
  vst1q_f32(tmp, a.v);
  for (int i = 0; i < n; ++i) p[i] = tmp[i];
}
inline V vset1(float x) { return {vdupq_n_f32(x)}; }
inline V vzero() { return {vdupq_n_f32(0.0f)}; }
inline V vadd(V a, V b) { return {vaddq_f32(a.v, b.v)}; }
inline V vsub(V a, V b) { return {vsubq_f32(a.v, b.v)}; }
inline V vmul(V a, V b) { return {vmulq_f32(a.v, b.v)}; }
inline V vdiv(V a, V b) { return {vdivq_f32(a.v, b.v)}; }
inline V vfma(V a, V b, V c) { return {vfmaq_f32(c.v, a.v, b.v)}; }  // a*b + c, one rounding
inline V vmin(V a, V b) { return {vbslq_f32(vcltq_f32(a.v, b.v), a.v, b.v)}; }
inline V vmax(V a, V b) { return {vbslq_f32(vcgtq_f32(a.v, b.v), a.v, b.v)}; }
inline V vabs(V a) { return {vabsq_f32(a.v)}; }
inline V vcopysign(V a, V s) {
  return {vbslq_f32(vdupq_n_u32(0x80000000u), s.v, a.v)};  // sign bit from s, the rest a's
}
inline VMask vlt(V a, V b) { return vcltq_f32(a.v, b.v); }
inline V vselect(VMask m, V if_true, V if_false) { return {vbslq_f32(m, if_true.v, if_false.v)}; }
inline V vround(V a) { return {vrndnq_f32(a.v)}; }  // to nearest, ties to even
// 2^n for integral n in [-126, 127]: the exponent field (NaN lanes give any value; the
// caller's NaN dominates).
inline V vexp2i(V n) {
  const int32x4_t e = vaddq_s32(vcvtq_s32_f32(n.v), vdupq_n_s32(127));
  return {vreinterpretq_f32_s32(vshlq_n_s32(e, 23))};
}
inline V vhalf_floor(V n) { return {vrndmq_f32(vmulq_n_f32(n.v, 0.5f))}; }
