// The reduced-precision vocabulary for AVX2 (see reduced.h): one ymm of 8 dwords per V.
// int8: exact products by the sign trick (|q_a| unsigned times w with q_a's sign, pairs in
// 16 bits: at most 2 · 127 · 127 = 32258, so VPMADDUBSW never saturates; then 32 bits).
// FASTRNN_I8_NARROW (the avx2_w7 table, for models whose int8 weights all lie in [−63, 63]):
// q_a + 128 (VNNI's form, kI8Bias) times w, at most 2 · 255 · 63 = 32130, so VPMADDUBSW
// never saturates without VPSIGNB: 3 instructions per 32 products instead of 4; vi_finish
// takes 128 · Σ_k w back out. The same exact integer sums, so the same bits.
// bf16: the pair widened by a shift (even k) and a mask (odd k).
// Included inside an anonymous namespace after vec-avx2.h.

struct VW {
  __m256i v;
};
struct VI {
  __m256i v;
};
#ifdef FASTRNN_I8_NARROW
struct VAi {
  __m256i biased;
};
#else
struct VAi {
  __m256i abs, sign;
};
#endif

inline VW vload_w(const uint32_t* p) {
  return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))};
}
inline VI vi_zero() { return {_mm256_setzero_si256()}; }
inline VI vi_add(VI a, VI b) { return {_mm256_add_epi32(a.v, b.v)}; }
inline V vi_to_v(VI a) { return {_mm256_cvtepi32_ps(a.v)}; }
inline VI vi_load(const int32_t* p) {
  return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))};
}
#ifdef FASTRNN_I8_NARROW
inline VAi vbcast_i8(uint32_t quad) { return {_mm256_set1_epi32(static_cast<int>(quad))}; }
inline VI vdot_i8(VI acc, VW w, VAi a) {
  const __m256i p16 = _mm256_maddubs_epi16(a.biased, w.v);
  return {_mm256_add_epi32(acc.v, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)))};
}
inline VI vi_finish(VI acc, const int32_t* wsum) {
  return {_mm256_sub_epi32(acc.v, _mm256_slli_epi32(vi_load(wsum).v, 7))};
}
constexpr uint32_t kI8Bias = 0x80808080u;
constexpr bool kI8AbsRow = false;
#else
// The activation rows carry |q_a| after q_a (kI8AbsRow, reduced-dot.h pack_row_i8), so a
// tile broadcasts both instead of taking VPABSB of each row's quad at every k (the 4 × 16
// tile: 32 vector operations per k quad instead of 36). Zen 3, bench/ab.py, int8, 6 rounds:
// tput_lstm_512 0.965x the time at 1 thread (6 of 6) and 0.854x at 2 (5 of 6); batch 1
// level (lat_lstm_256, lat_lstm_1024). bench/anatomy.cc int8, 16 alternating runs: the
// 96-row GEMM 1.07-1.08x the rate, the 64-row step 0.97x the time.
inline VAi vbcast_i8(uint32_t quad, uint32_t abs) {
  return {_mm256_set1_epi32(static_cast<int>(abs)), _mm256_set1_epi32(static_cast<int>(quad))};
}
constexpr bool kI8AbsRow = true;
inline VI vdot_i8(VI acc, VW w, VAi a) {
  const __m256i p16 = _mm256_maddubs_epi16(a.abs, _mm256_sign_epi8(w.v, a.sign));
  return {_mm256_add_epi32(acc.v, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)))};
}
inline VI vi_finish(VI acc, const int32_t*) { return acc; }
constexpr uint32_t kI8Bias = 0;
#endif
inline V vbf16_lo(VW w) { return {_mm256_castsi256_ps(_mm256_slli_epi32(w.v, 16))}; }
inline V vbf16_hi(VW w) {
  return {_mm256_castsi256_ps(_mm256_and_si256(w.v, _mm256_set1_epi32(-65536)))};
}
inline void vstore_i8(int8_t* p, V q) {
  const __m256i i32 = _mm256_cvtps_epi32(q.v);
  const __m128i i16 =
      _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi16(i16, i16));
}

constexpr int kRedAccumulators = 12;
// Independent int8 sum chains of a one-row tile (its dot instruction's latency over throughput).
// One here: a sum's chain is VPADDD (1 cycle), and one chain lets a batch-1 LSTM tile take a
// panel's 4 gates (8 accumulators, its 256-byte rows read whole) instead of 2 gates twice.
// bench/anatomy.py's int8 probe on a Zen 3, batch-1 steps, one chain against two: H = 1024
// (4 MiB of W_hh from the L3) 66-76 against 91-103 us (avx2_w7), 80 against 110 us (avx2);
// H = 256 4.4-4.6 against 5.1-5.2 us (avx2_w7).
constexpr int kRedChains = 1;
// int8 models pack each panel as NV sub-panels of 16 columns (WeightFormat::split), and the
// tallest tile is 4 rows × 16 columns (8 accumulators) reading one sub-panel's 64 contiguous
// bytes per k quad, ONNX Runtime's MLAS U8S8 AVX2 shape. Split against whole 256-byte panel
// rows, one build side by side (Zen 3, int7, 1 thread): tput_lstm_512 1.20x and lat_lstm_1024
// 1.19x faster, batch-1 rows of 256 units level (0.98-1.03x); a batch-1 tile reads a panel's
// four sub-panels as four streams.
constexpr int kRedRows = 4;
constexpr bool kRedSplit = true;
// Tiles of several rows run their k loop in a function of their own (reduced-dot.h
// red_sums_apart): inlined, GCC kept an accumulator of the 4 × 16 tile on the stack.
constexpr bool kRedTileApart = true;
// GRU epilogues of a batch-1 step one panel at a time: in pairs, int8 lat_gru_256 was 1.03x
// the time (Zen 5, FASTRNN_ISA=avx2; see kRedEpilogueGroup in rvec-avx512.h).
constexpr int kRedEpilogueGroup = 1;
