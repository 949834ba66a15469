// The reduced-precision vocabulary for AArch64 NEON (see reduced.h): one q register of 4
// dwords per V. int8: bytes widened to 16 bits (|w · q_a| ≤ 127 · 127 fits), multiplied,
// and summed pairwise into 32 bits, exactly. bf16: the pair split by a mask and a shift.
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
struct VAb {
  V hi, lo;
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
inline VAb vbcast_bf16(uint32_t pair) {
  return {{vreinterpretq_f32_u32(vdupq_n_u32(pair & 0xFFFF0000u))},
          {vreinterpretq_f32_u32(vdupq_n_u32(pair << 16))}};
}
inline V vdot_bf16(V acc, VW w, VAb a) {
  const float32x4_t hi = vreinterpretq_f32_u32(vandq_u32(w.v, vdupq_n_u32(0xFFFF0000u)));
  const float32x4_t lo = vreinterpretq_f32_u32(vshlq_n_u32(w.v, 16));
  return {vfmaq_f32(vfmaq_f32(acc.v, hi, a.hi.v), lo, a.lo.v)};
}

constexpr int kRedAccumulators = 24;
constexpr int kRedRows = 6;
