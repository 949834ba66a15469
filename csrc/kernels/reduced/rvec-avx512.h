// The reduced-precision vocabulary for AVX-512 (see reduced.h): one zmm of 16 dwords per
// V. With AVX512_VNNI and AVX512_BF16 (the avx512bf16 table: Sapphire Rapids, Zen 4,
// Zen 5) a k group is one VPDPBUSD / VDPBF16PS; without them (the avx512 table: Skylake,
// Ice Lake servers) the same sums by exact emulation.
// Included inside an anonymous namespace after vec-avx512.h.

struct VW {
  __m512i v;
};
struct VI {
  __m512i v;
};

inline VW vload_w(const uint32_t* p) { return {_mm512_loadu_si512(p)}; }
inline VI vi_zero() { return {_mm512_setzero_si512()}; }
inline VI vi_add(VI a, VI b) { return {_mm512_add_epi32(a.v, b.v)}; }
inline V vi_to_v(VI a) { return {_mm512_cvtepi32_ps(a.v)}; }

#if defined(__AVX512VNNI__) && defined(__AVX512BF16__)
// VPDPBUSD multiplies unsigned by signed bytes: the activations go in as q + 128 (q XOR
// 0x80), and vi_finish takes 128 · Σ_k w back out (exact: int32 throughout).
struct VAi {
  __m512i v;
};
inline VAi vbcast_i8(uint32_t quad) {
  return {_mm512_set1_epi32(static_cast<int>(quad ^ 0x80808080u))};
}
inline VI vdot_i8(VI acc, VW w, VAi a) { return {_mm512_dpbusd_epi32(acc.v, a.v, w.v)}; }
inline VI vi_finish(VI acc, const int32_t* wsum) {
  return {_mm512_sub_epi32(acc.v, _mm512_slli_epi32(_mm512_loadu_si512(wsum), 7))};
}
// VDPBF16PS: acc += w_hi·a_hi, then acc += w_lo·a_lo, each a fused add of an exact product,
// round to nearest even; it also treats subnormal inputs and results as zero (the only way
// it can differ from the emulation below).
struct VAb {
  __m512bh v;
};
inline VAb vbcast_bf16(uint32_t pair) {
  return {(__m512bh)_mm512_set1_epi32(static_cast<int>(pair))};
}
inline V vdot_bf16(V acc, VW w, VAb a) { return {_mm512_dpbf16_ps(acc.v, (__m512bh)w.v, a.v)}; }
#else
// Exact int8 products without VNNI: |q_a| (unsigned) times w with q_a's sign, pairs summed in
// 16 bits (at most 2 · 127 · 127 = 32258: VPMADDUBSW cannot saturate, the weights being in
// [−127, 127]), then pairs of pairs in 32 bits.
struct VAi {
  __m512i abs;
  __mmask64 neg;
};
inline VAi vbcast_i8(uint32_t quad) {
  const __m512i a = _mm512_set1_epi32(static_cast<int>(quad));
  return {_mm512_abs_epi8(a), _mm512_movepi8_mask(a)};
}
inline VI vdot_i8(VI acc, VW w, VAi a) {
  const __m512i ws = _mm512_mask_sub_epi8(w.v, a.neg, _mm512_setzero_si512(), w.v);
  const __m512i p16 = _mm512_maddubs_epi16(a.abs, ws);
  return {_mm512_add_epi32(acc.v, _mm512_madd_epi16(p16, _mm512_set1_epi16(1)))};
}
inline VI vi_finish(VI acc, const int32_t*) { return acc; }
struct VAb {
  V hi, lo;
};
inline VAb vbcast_bf16(uint32_t pair) {
  return {{_mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(pair & 0xFFFF0000u)))},
          {_mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(pair << 16)))}};
}
inline V vdot_bf16(V acc, VW w, VAb a) {
  const __m512 hi = _mm512_castsi512_ps(_mm512_and_si512(w.v, _mm512_set1_epi32(-65536)));
  const __m512 lo = _mm512_castsi512_ps(_mm512_slli_epi32(w.v, 16));
  return {_mm512_fmadd_ps(lo, a.lo.v, _mm512_fmadd_ps(hi, a.hi.v, acc.v))};
}
#endif

// Register budget of a reduced tile (accumulators) and its tallest row block.
constexpr int kRedAccumulators = 24;
constexpr int kRedRows = 6;
