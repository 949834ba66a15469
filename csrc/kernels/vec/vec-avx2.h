// 8-lane float vector for AVX2 + FMA: one ymm register.
// Included inside an anonymous namespace by kernels-avx2.cc only (internal linkage).
// min/max return their second operand when either is NaN (see vec-avx512.h).

struct V {
  __m256 v;
};
using VMask = __m256;

// One V is half of a 16-float packed vector (types.h): kSub = 2 (panel-dot.h).
constexpr int kVecLanes = 8;

// Register tiles for 16 ymm registers (the BLIS Haswell budget: 12 accumulators, the rest
// for weight vectors and a broadcast). All sums run in one chain (K is never split), so
// every tile gives the same bits as every other, and as AVX2's earlier one-row kernels.
// Measured on a Sapphire Rapids-class Xeon (AVX2 FMA peak 132 GFLOP/s per core), one core:
//   GEMM: 6 rows × 16 columns (one gate, two ymm): 2 weight loads and 6 broadcasts per 12
//         FMAs. Depth blocks of 128 k keep the tile's weights (8 KiB) and a 6-row block of A
//         (3 KiB) in any L1 (32 KiB on Zen 3) while all rows pass: rows 512 × K 512 at 96-99
//         GFLOP/s (no blocks 93, blocks of 256 88, of 64 85); 64 rows × K 256 at 123 (93%).
//   Step: batch 1 takes a whole LSTM panel (8 accumulators: 8 chains hide the FMA latency);
//         2 or 3 rows the gates that fit 12 accumulators (step_gates in step-driver.h);
//         from 4 rows the GEMM's own tiles into gate sums (kStepSumRows). An LSTM step at
//         B = 64, H = 512: 50 GFLOP/s with half-panel tiles (3 rows × 4 gates × 8 units,
//         which read every weight line twice per block), 95 with the GEMM's.
constexpr int kGemmRows = 6;
constexpr int kGemmGates = 1;
// 1: unrolling by 2 or 4 was 1-12% slower (Sapphire Rapids-class Xeon, GEMM 6 × 16).
constexpr int kDotUnroll = 1;
constexpr int kGemmDepth = 128;
// The row blocks of a tile prefetch the next tile's weights into the L1 (gemm.h): a tile's
// 16 columns are a quarter of each 256-byte panel row, a stride the hardware prefetchers
// leave to the first row block's misses. AMD Zen 5, GEMM of 4 MiB of weights, K = 512,
// weights rotating among 6 copies (not in L2 or a hot L3): 64 rows 78 -> 103-109 GFLOP/s,
// 512 rows 110 -> 112-114; one hot copy 99 -> 101 (64 rows), 109 -> 114 (512 rows). In
// the library, 1 thread, A/B alternating: tput_lstm_512 0.78-0.83x the time, tput_gru_512
// 0.82x, deepbench_lstm 0.70-0.77x, bilstm_text 0.94-1.01x; batch 1 level.
constexpr bool kGemmPrefetch = true;
// float32 W_ih and W_hh packed in 16-column strips (WeightFormat::split): a strip's K rows
// of 64 contiguous bytes fill the L1's sets in turn, where a (K, 4, 16) panel's 256-byte
// rows put a 16-column tile in 16 of the 64 (gemm.h panel_accumulate_strips; the few-row
// steps read the NV strips of a panel side by side: step-driver.h). AMD Zen 3, one core,
// bench/anatomy.cc (two runs each):
//   G_x chunks over 2,048 gate columns beyond the L2 (gemm_*_far): 32 rows × K 300
//   91.7-93.9 against 80.6-80.9 GFLOP/s, 64 × 512 86.5-93.6 against 86.3-87.1;
//   LSTM steps on W_hh (step_*): B = 32, H = 256 81.2-81.9 against 73.2-74.2; B = 64, H =
//   512 87.1-88.9 against 82.1-83.8; B = 3, H = 256 78.7-78.8 against 64.8-67.1; B = 1, H =
//   256 level (30.7-33.5), H = 1,024 27.4-36.5 against 26.3-32.6.
// In the library, bilstm_text 0.92x the time with W_ih in strips (layouts alternating call by
// call), then 0.955x / 0.964x (1 / 2 threads) with W_hh too (bench/ab.py, 6 of 6).
// AMD Zen 4 (FASTRNN_ISA=avx2), in the library, the layouts alternating call by call (8-10
// rounds, 1 / 2 threads): tput_lstm_512 0.978x / 1.006x the time, bilstm_text 0.975x /
// 0.919x, deepbench_lstm 0.961x / 0.967x; but lat_lstm_1024 1.07x / 1.06x (batch 1 on a 16
// MiB W_hh from the L3: four strip streams against one; Zen 3 level), and prefetching the
// strips 16 or 64 rows ahead made batch 1 slower still (anatomy.cc: H = 1,024 34-37 -> 30-35
// GFLOP/s, H = 256 47-48 -> 39-42).
constexpr bool kGemmStrips = true;
constexpr int kStepAccumulators = 12;
constexpr int kStepRows = 3;
constexpr int kStepSplitK = 1;
template <int NV>
constexpr int step_rows_many() {
  return kGemmRows;
}
// Many-row steps run as the GEMM into gate sums for blocks of this many rows (on the stack:
// 64 × 64 floats = 16 KiB, read back once per depth block and gate). With depth 128, against
// 32 rows and depth 256, in the library (1 thread, median of 9): b8 LSTM H = 256 -9%,
// bilstm_text -5%, deepbench_lstm -5%, tput_lstm_512 -0.5%, tput_gru_512 +3%.
constexpr int kStepSumRows = 64;
// Many-row steps on weights from beyond the near cache (deepbench_lstm: B = 4, 37 MiB of
// W_hh) take the GEMM's tiles, a quarter of each 256-byte panel row (one line of four), over
// depth blocks of kGemmDepth k: each of a block's four tiles prefetches a quarter of the next
// block, whole rows in order (gemm.h), so the weights come from memory while all four
// tiles run, not only while the first does. AMD Zen 4, deepbench_lstm under
// FASTRNN_ISA=avx2, alternating processes (median of 5), against the first quarter's tiles
// prefetching the whole rows 32 k ahead and the others their own lines (which had been
// 0.78x / 0.81x the time of own lines only): 1 thread 0.85x the time (p10 0.87x), 2
// threads 0.84x (0.83x). Keeping the own lines as well gained nothing (one build, A/B:
// 0.89x / 0.90x, against 0.91x / 0.88x without them). (A W_hh in strips, kGemmStrips, is a
// sequential stream instead: its tiles ask for it kStripFarAhead rows ahead, gemm.h.)
constexpr bool kStreamNextBlock = true;
constexpr bool kRowPairEpilogue = false;  // two V's of a row make the pair (VPair)
// No input projection ahead at batch 1: the step's 8 chains and a projection tile of even
// one row (8 more) leave no register for the weights.
constexpr int kAheadRows = 0;
// Weight-only bf16 steps of 4+ rows (step-driver.h): blocks of kBf16StepRows rows widen the
// pairs in registers (4 rows × 1 gate: 8 accumulators, 2 × 2 widened halves); a thread's
// slice of kBf16SummedRows rows or more takes the GEMM's tiles on widened depth blocks
// instead. Over fp32's time, Zen 5, T = 4, in registers / summed: B = 4 1.00 / 1.15x, 8 1.04
// / 1.09, 12 (GRU, H = 512) 1.04 / 1.02, 16 1.02 / 1.03 (GRU, H = 512: 1.08 / 1.03), 32
// 1.05 / 1.03, 64 1.09 / 1.03.
constexpr int kBf16StepRows = 4;
constexpr int kBf16SummedRows = 12;

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
