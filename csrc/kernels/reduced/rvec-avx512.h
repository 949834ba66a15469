// The reduced-precision vocabulary for AVX-512 (see reduced-dot.h): one zmm of 16 dwords
// per V. With AVX512_VNNI (the avx512vnni table: Cascade Lake, Ice Lake, Sapphire Rapids,
// Zen 4, Zen 5) an int8 k group is one VPDPBUSD; without it (the avx512 table: Skylake) the
// same sums by exact emulation.
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

// bf16 pairs widened to fp32: the high half is the odd k, the low half (shifted) the even k.
inline V vbf16_lo(VW w) { return {_mm512_castsi512_ps(_mm512_slli_epi32(w.v, 16))}; }
inline V vbf16_hi(VW w) {
  return {_mm512_castsi512_ps(_mm512_and_si512(w.v, _mm512_set1_epi32(-65536)))};
}
// kVecLanes integer-valued floats in [−127, 127] to bytes.
inline void vstore_i8(int8_t* p, V q) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q.v)));
}

#if defined(__AVX512VNNI__)
// VPDPBUSD multiplies unsigned by signed bytes: the activations go in as q + 128 (q XOR
// 0x80, applied when a row is packed: kI8Bias), and vi_finish takes 128 · Σ_k w back out
// (exact: int32 throughout).
struct VAi {
  __m512i v;
};
// The packed quad as it is (already biased): a broadcast straight from memory.
inline VAi vbcast_i8(uint32_t quad) { return {_mm512_set1_epi32(static_cast<int>(quad))}; }
// In an asm statement: GCC 12 keeps the 24 accumulators of a 6-row tile around the intrinsic
// by copies and stack stores every k (3 extra moves per VPDPBUSD; tput_lstm_512 int8 ran the
// GEMM at 31% of the VNNI peak), not around the instruction itself.
inline VI vdot_i8(VI acc, VW w, VAi a) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc.v) : "v"(a.v), "vm"(w.v));
  return acc;
}
inline VI vi_finish(VI acc, const int32_t* wsum) {
  return {_mm512_sub_epi32(acc.v, _mm512_slli_epi32(_mm512_loadu_si512(wsum), 7))};
}
// Packed activation quads hold q + 128 (XOR 0x80 per byte), as VPDPBUSD and AMX read them.
constexpr uint32_t kI8Bias = 0x80808080u;
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
constexpr uint32_t kI8Bias = 0;
#endif
// Activation rows without |q_a| beside them (rvec-avx2.h; unmeasured on AVX-512).
constexpr bool kI8AbsRow = false;
inline VI vi_load(const int32_t* p) { return {_mm512_loadu_si512(p)}; }

#if defined(__AVX512BF16__)
// The avx512bf16 table (Cooper Lake, Sapphire Rapids, Zen 4, Zen 5): bf16 dot products in
// VDPBF16PS, with the activations rounded to bf16 too (reduced-dot.h, kBf16Dot).
#define FASTRNN_BF16_DOT 1
constexpr bool kBf16Dot = true;
// acc + w_odd · a_odd + w_even · a_even per lane (products exact, each add rounded; denormals
// flushed), a: one bf16 pair broadcast.
inline V vdot_bf16(V acc, VW w, uint32_t pair) {
  return {_mm512_dpbf16_ps(acc.v, reinterpret_cast<__m512bh>(w.v),
                           reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(pair))))};
}
// 32 floats (a[0..15], a[16..31]) to 32 bf16 (nearest even, NaN kept) in order: 16 pairs.
inline void vstore_bf16x2(uint32_t* out, V a, V b) {
  _mm512_storeu_si512(out, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b.v, a.v)));
}
#endif

// Register budget of a reduced tile (accumulators) and its tallest row block.
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
// A batch-1 GRU step (packed activations: bf16 on VDPBF16PS, int8) runs its panels' epilogues
// two at a time: a GRU epilogue is a chain of two activations in a row (r, then n) whose
// latency the next panel's 3 gates of dot products do not cover, and two chains side by side
// share it. Zen 5, lat_gru_256 against one at a time, alternating processes (median / 10th
// percentile of the calls): bf16 0.92 / 0.97x at 1 thread, 0.98x at 2; int8 0.99x, 0.98-0.99x;
// 128 units 0.89-0.90x (both, 1 and 2 threads); 512 units 0.99-1.01x; 1024 units bf16 0.97x,
// 0.93-0.98x; int8 on the avx512 table (no VNNI) 0.92x, 128 units 0.88x; on the avx512vnni
// table 1.00x, 0.94x. LSTM (4 gates of dot products per panel) gained nothing: 1.02x at 1 thread,
// 1.06x at 2; nor did float32's GRU steps in pairs (0.98-1.03x at 128-256 units, 1.04x at 512).
constexpr int kRedEpilogueGroup = 2;
