// The reduced-precision vocabulary for AArch64 NEON (see reduced.h): one q register of 4
// dwords per V. int8: bytes widened to 16 bits (|w · q_a| ≤ 127 · 127 fits), multiplied,
// and summed pairwise into 32 bits, exactly. bf16: the pair widened by a shift and a mask.
// Included inside an anonymous namespace after vec-neon.h.

struct VW {
  uint32x4_t v;
};
struct VI {
  int32x4_t v;
};
struct VAi {
  int16x8_t v;  // a0 a1 a2 a3 a0 a1 a2 a3
};

inline VW vload_w(const uint32_t* p) { return {vld1q_u32(p)}; }
inline VI vi_zero() { return {vdupq_n_s32(0)}; }
inline VI vi_add(VI a, VI b) { return {vaddq_s32(a.v, b.v)}; }
inline V vi_to_v(VI a) { return {vcvtq_f32_s32(a.v)}; }
inline VAi vbcast_i8(uint32_t quad) { return {vmovl_s8(vreinterpret_s8_u32(vdup_n_u32(quad)))}; }
inline VI vdot_i8(VI acc, VW w, VAi a) {
  const int8x16_t w8 = vreinterpretq_s8_u32(w.v);
  const int16x8_t p0 = vmulq_s16(vmovl_s8(vget_low_s8(w8)), a.v);   // columns 0, 1
  const int16x8_t p1 = vmulq_s16(vmovl_s8(vget_high_s8(w8)), a.v);  // columns 2, 3
  return {vaddq_s32(acc.v, vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)))};
}
inline VI vi_finish(VI acc, const int32_t*) { return acc; }
inline VI vi_load(const int32_t* p) { return {vld1q_s32(p)}; }
constexpr uint32_t kI8Bias = 0;
// Activation rows without |q_a| beside them (rvec-avx2.h).
constexpr bool kI8AbsRow = false;
inline V vbf16_lo(VW w) { return {vreinterpretq_f32_u32(vshlq_n_u32(w.v, 16))}; }
inline V vbf16_hi(VW w) {
  return {vreinterpretq_f32_u32(vandq_u32(w.v, vdupq_n_u32(0xFFFF0000u)))};
}
inline void vstore_i8(int8_t* p, V q) {
  const int16x4_t i16 = vqmovn_s32(vcvtnq_s32_f32(q.v));
  const int8x8_t i8 = vqmovn_s16(vcombine_s16(i16, i16));
  vst1_lane_u32(reinterpret_cast<uint32_t*>(p), vreinterpret_u32_s8(i8), 0);
}

constexpr int kRedAccumulators = 24;
// Independent int8 sum chains of a one-row tile (its dot instruction's latency over throughput).
constexpr int kRedChains = 2;
constexpr int kRedRows = 6;
// int8 weights in one 16-column sub-panel per vector of a panel (WeightFormat::split): not
// here (never measured against the whole panel rows); such a model still runs, the same sums.
constexpr bool kRedSplit = false;
// Tiles of several rows inlined into their row loops (reduced-dot.h red_sums_apart: not
// measured here).
constexpr bool kRedTileApart = false;
// GRU epilogues of a batch-1 step one panel at a time (pairs unmeasured on ARM64).
constexpr int kRedEpilogueGroup = 1;
