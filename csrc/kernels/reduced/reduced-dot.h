// Dot products with reduced-precision weights.
// Math:     bf16 (weight-only): the weights rounded to bf16 (nearest even), widened to fp32
//           in registers; activations, accumulation and everything else fp32. The sums run
//           in the fp32 kernels' order (panel_dot_bf16 here for steps of row blocks up to
//           kBf16StepRows; a widened depth block through panel_accumulate for the GEMM and
//           larger slices, gemm.h; a batched call's once-widened copy through the fp32
//           kernels themselves, ops/forward-plan.cc bf16_widen), so a bf16 model gives the
//           bits of the fp32 kernels on its rounded weights.
//           int8: weights q_w = round(w / s_w), s_w ≈ max|row| / 127 (python/fastrnn/
//           _quantize.py); each activation row (a step's h row, a time step's x row) is
//           quantised when it is read: s_a = max|a| / 127, q_a = round(a · (127 / max|a|))
//           (nearest even), in [−127, 127], packed as the ISA's dot reads it (kI8Bias: VNNI
//           and AMX take q + 128). acc = Σ_k q_a·q_w in int32, exact (|acc| ≤
//           127² · K < 2^31 for K ≤ 2^15); the sum is float(acc) · (s_a · s_w), rounded
//           twice, in that order, on every ISA.
// Layout:   a packed reduced panel has weight_rows(K) rows of NV·16 dwords: column j of row
//           kk holds k = G·kk .. G·kk + G − 1 (G = 2 bf16: low half first; G = 4 int8:
//           lowest byte first), zero past K. int8 activation rows pack the same way. int8
//           panels may instead be split (WeightFormat::split, the table's kRedSplit): the
//           same dwords as NV sub-panels of weight_rows(K) rows of 16, vector v's after
//           vector v − 1's; every table reads both layouts.
// Accuracy: bf16 bit for bit the fp32 kernels' on the rounded weights; int8 integer parts
//           exact on every ISA, so every ISA gives the same sums; stated end-to-end bounds
//           in docs/precision.md.
// Included inside an ISA's anonymous namespace after its vec-*.h and rvec-*.h.

// The activation row buffer on the stack: rows of packed dwords, at most this many dwords
// (64 KiB); reduced models have K ≤ kMaxReducedFeatures (core/limits.h): one row always fits.
constexpr int kRedBufDwords = 16384;
constexpr int kRedMaxGroupRows = 256;

// Row a (K floats) into ceil(K/4) dwords of int8 q_a, XOR kI8Bias (VNNI's q + 128: the dot
// loops then broadcast each quad straight from memory), and where the table says so
// (kI8AbsRow) ceil(K/4) dwords of |q_a| after them; returns s_a (NaN when the row holds a
// NaN or an infinity: every sum it feeds is then NaN, as fp32 arithmetic would make it).
FASTRNN_INLINE float pack_row_i8(const float* a, int K, uint32_t* out) {
  // max|a| and a NaN / infinity test (a · 0 is NaN for both) over whole vectors, then the tail.
  V vm = vzero(), vnan = vzero();
  int k = 0;
  for (; k + kVecLanes <= K; k += kVecLanes) {
    const V x = vload(a + k);
    vm = vmax(vm, vabs(x));
    vnan = vadd(vnan, vmul(x, vzero()));
  }
  alignas(64) float lanes[kVecLanes], nans[kVecLanes];
  vstore(lanes, vm);
  vstore(nans, vnan);
  float m = 0.0f;
  bool finite = true;
  for (int i = 0; i < kVecLanes; ++i) {
    m = lanes[i] > m ? lanes[i] : m;
    finite = finite && nans[i] == 0.0f;
  }
  for (int j = k; j < K; ++j) {
    const float v = std::fabs(a[j]);
    finite = finite && v <= 3.4028235e38f;  // false for NaN and ±inf
    m = v > m ? v : m;
  }
  const int Kd = (K + 3) / 4;
  if (!finite || m == 0.0f) {
    for (int i = 0; i < Kd; ++i) out[i] = kI8Bias;
    if constexpr (kI8AbsRow)
      for (int i = 0; i < Kd; ++i) out[Kd + i] = 0;
    return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  const float inv = 127.0f / m;
  auto* bytes = reinterpret_cast<int8_t*>(out);
  const V vinv = vset1(inv), hi = vset1(127.0f), lo = vset1(-127.0f);
  for (k = 0; k + kVecLanes <= K; k += kVecLanes)
    vstore_i8(bytes + k, vmax(lo, vmin(hi, vround(vmul(vload(a + k), vinv)))));
  for (; k < K; ++k) {
    float q = std::nearbyint(a[k] * inv);
    q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
    bytes[k] = static_cast<int8_t>(q);
  }
  for (k = K; k < 4 * Kd; ++k) bytes[k] = 0;
  if constexpr (kI8AbsRow)
    for (k = 0; k < 4 * Kd; ++k) bytes[4 * Kd + k] = bytes[k] < 0 ? -bytes[k] : bytes[k];
  if constexpr (kI8Bias != 0)
    for (int i = 0; i < Kd; ++i) out[i] ^= kI8Bias;
  return m / 127.0f;
}

#ifndef FASTRNN_BF16_DOT
constexpr bool kBf16Dot = false;
inline V vdot_bf16(V acc, VW, uint32_t) { return acc; }  // never called: kBf16Dot is false
inline void vstore_bf16x2(uint32_t*, V, V) {}
#endif

// Row a (K floats) into ceil(K/2) dwords of bf16 pairs (nearest even; zero past K), for the
// VDPBF16PS tables: the row's bf16 values in order.
FASTRNN_INLINE void pack_row_bf16(const float* a, int K, uint32_t* out) {
  int k = 0;
  for (; k + 2 * kVecLanes <= K; k += 2 * kVecLanes)
    vstore_bf16x2(out + k / 2, vload(a + k), vload(a + k + kVecLanes));
  if (k < K) {
    alignas(64) float tail[2 * kVecLanes] = {};
    for (int j = k; j < K; ++j) tail[j - k] = a[j];
    alignas(64) uint32_t packed[kVecLanes];
    vstore_bf16x2(packed, vload(tail), vload(tail + kVecLanes));
    for (int j = 0; j < (K - k + 1) / 2; ++j) out[k / 2 + j] = packed[j];
  }
}

// Dwords of a packed activation row of K values: weight_rows(type, K), twice that for int8
// rows that carry |q_a| (kI8AbsRow).
FASTRNN_INLINE int act_rows(WeightType type, int K) {
  return weight_rows(type, K) * (kI8AbsRow && type == WeightType::kInt8 ? 2 : 1);
}

// Rows [0, rows) of a (stride lda) packed into buf (stride act_rows(type, K) dwords): int8
// quantised (scales into sa), or bf16 pairs (kBf16Dot; sa unused).
FASTRNN_INLINE void pack_rows(WeightType type, const float* a, ptrdiff_t lda, int rows, int K,
                              uint32_t* buf, float* sa) {
  const int Ka = act_rows(type, K);
  for (int r = 0; r < rows; ++r) {
    if (type == WeightType::kInt8)
      sa[r] = pack_row_i8(a + r * lda, K, buf + r * Ka);
    else
      pack_row_bf16(a + r * lda, K, buf + r * Ka);
  }
}

// Rows a block of packed activations may hold: all of [b0, b1) up to the buffer's size.
FASTRNN_INLINE int red_group_rows(WeightType type, int K) {
  const int per = kRedBufDwords / act_rows(type, K);
  return per < 1 ? 1 : per > kRedMaxGroupRows ? kRedMaxGroupRows : per;
}

// Whether the dot products of a model with these weights take packed activations (int8;
// bf16 where the table has VDPBF16PS) rather than the fp32 kernels on widened weights.
FASTRNN_INLINE bool packed_activations(WeightType type) {
  return type == WeightType::kInt8 || (kBf16Dot && type == WeightType::kBf16);
}

// Packed vectors of a reduced tile of R rows: all NV where R · NV · kSub · chains
// accumulators fit the ISA's budget, else the largest divisor of NV that fits.
template <int NV, int R, int kChains>
constexpr int red_gates() {
  for (int g = NV; g > 1; --g)
    if (NV % g == 0 && R * g * kSub * kChains <= kRedAccumulators) return g;
  return 1;
}

// One k group of a reduced tile from its packed activation at q: int8 (VI sums, the quad
// broadcast as vdot_i8 takes it, with |q_a| from q[abs] where the rows carry it) or bf16
// (float sums, the pair as VDPBF16PS takes it); the overloads pick by the sums' type. Templates
// so that the two-quad vbcast_i8 is looked up only where kI8AbsRow holds (the only tables
// that declare it).
template <class Q>
FASTRNN_INLINE VAi red_operand(VI, const Q* q, ptrdiff_t abs) {
  if constexpr (kI8AbsRow)
    return vbcast_i8(q[0], q[abs]);
  else
    return vbcast_i8(q[0]);
}
template <class Q>
FASTRNN_INLINE Q red_operand(V, const Q* pair, ptrdiff_t) {
  return pair[0];
}
FASTRNN_INLINE VI red_dot(VI acc, VW w, VAi x) { return vdot_i8(acc, w, x); }
FASTRNN_INLINE V red_dot(V acc, VW w, uint32_t pair) { return vdot_bf16(acc, w, pair); }

// One k group of a tile of C vectors: packed row k of w (kRow dwords per row), its 16-column
// vectors `vec` dwords apart (16 in a whole panel row, a sub-panel's size where split); a
// row's |q_a| `abs` dwords after its q_a (kI8AbsRow).
template <int kRow, int C, int R, class Acc>
FASTRNN_INLINE void red_dot_k(const uint32_t* w, ptrdiff_t vec, const uint32_t* a, ptrdiff_t lda,
                              ptrdiff_t abs, int k, Acc (&acc)[R][C]) {
  const uint32_t* wk = w + static_cast<ptrdiff_t>(k) * kRow;
  VW wv[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) wv[c] = vload_w(wk + c / kSub * vec + c % kSub * kVecLanes);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const auto x = red_operand(acc[r][0], a + r * lda + k, abs);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[r][c] = red_dot(acc[r][c], wv[c], x);
  }
}

// The bf16 dot products of a few-row step: panel_dot (panel-dot.h) on bf16 pairs widened in
// registers, the same FMAs in the same order (KS = 2: even k in acc, odd k in a second chain).
template <int kRow, int C, int R, int KS>
FASTRNN_INLINE void panel_dot_bf16(const uint32_t* w, int K, const float* a, ptrdiff_t lda,
                                   V (&acc)[R][C]) {
  V odd[R][C];
  if constexpr (KS == 2)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) odd[r][c] = vzero();
  const int pairs = K / 2;
  for (int kk = 0; kk < pairs; ++kk) {
    const uint32_t* wk = w + static_cast<ptrdiff_t>(kk) * kRow;
    V lo[C], hi[C];
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      const VW wv = vload_w(wk + c * kVecLanes);
      lo[c] = vbf16_lo(wv);
      hi[c] = vbf16_hi(wv);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const V x0 = vset1(a[r * lda + 2 * kk]), x1 = vset1(a[r * lda + 2 * kk + 1]);
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) {
        acc[r][c] = vfma(lo[c], x0, acc[r][c]);
        if constexpr (KS == 2)
          odd[r][c] = vfma(hi[c], x1, odd[r][c]);
        else
          acc[r][c] = vfma(hi[c], x1, acc[r][c]);
      }
    }
  }
  if (K % 2 != 0) {  // the last k (even) alone
    const uint32_t* wk = w + static_cast<ptrdiff_t>(pairs) * kRow;
    for (int r = 0; r < R; ++r) {
      const V x0 = vset1(a[r * lda + K - 1]);
      for (int c = 0; c < C; ++c)
        acc[r][c] = vfma(vbf16_lo(vload_w(wk + c * kVecLanes)), x0, acc[r][c]);
    }
  }
  if constexpr (KS == 2)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] = vadd(acc[r][c], odd[r][c]);
}

FASTRNN_INLINE void red_zero(VI& acc) { acc = vi_zero(); }
FASTRNN_INLINE void red_zero(V& acc) { acc = vzero(); }

// acc[j][r][c] (zeroed here) = the sums of a reduced tile (int8: VI, exact; bf16: V), k groups
// ascending in KC chains (group k in chain k mod KC): C vectors of w (kRow dwords per packed
// row, vectors `vec` apart) times rows [0, R) of the packed activations a (stride lda dwords;
// int8 |q_a| Kd dwords after q_a where kI8AbsRow).
template <int kRow, int C, int R, int KC, class Acc>
FASTRNN_INLINE void red_sums(const uint32_t* w, ptrdiff_t vec, int Kd, const uint32_t* a,
                             ptrdiff_t lda, Acc (&acc)[KC][R][C]) {
  for (int j = 0; j < KC; ++j)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) red_zero(acc[j][r][c]);
  int k = 0;
  for (; k + KC <= Kd; k += KC)
#pragma GCC unroll 4
    for (int j = 0; j < KC; ++j) red_dot_k<kRow, C, R>(w, vec, a, lda, Kd, k + j, acc[j]);
  for (; k < Kd; ++k) red_dot_k<kRow, C, R>(w, vec, a, lda, Kd, k, acc[0]);
}

// red_sums in a function of its own, on accumulators of its own (out: written once, at the
// end; __m256i may alias anything, so sums kept in out itself were stored at every k): an
// int8 tile of several rows where the table says so (kRedTileApart), whose accumulators fill
// the registers. Inlined into the GEMM's and steps' row loops, the register allocator kept one
// of them on the stack through the k loop (AVX2, 4 × 16 tile: a load and a store on a sum's
// chain at every k), and bench/anatomy.cc int8_gemm_* ran at ~68 GMAC/s against 91-95 apart
// (Zen 3, one core; the bare tile int8_tile4x16_* 97-99). A call per tile costs little beside
// its K/4 quads of 8 dot products.
template <int kRow, int C, int R, int KC>
FASTRNN_NOINLINE void red_sums_apart(const uint32_t* w, ptrdiff_t vec, int Kd, const uint32_t* a,
                                     ptrdiff_t lda, VI (&out)[KC][R][C]) {
  VI acc[KC][R][C];
  red_sums<kRow, C, R, KC>(w, vec, Kd, a, lda, acc);
  for (int j = 0; j < KC; ++j)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) out[j][r][c] = acc[j][r][c];
}

// sums[r][16·g0 + …] += the int8 tile's sums for columns [16·g0, 16·(g0 + kG)) of one panel
// (w at the panel's row 0, whole rows or split (kSplit: WeightFormat::split); col0: the
// panel's first column in the whole matrix, for the scales), rows [0, R) of the quantised
// activations a (stride lda dwords, scales sa).
template <int NV, int R, int kG, bool kSplit, bool kWrite>
FASTRNN_INLINE void red_tile(const WeightFormat& wf, const uint32_t* w, int Kd, const uint32_t* a,
                             ptrdiff_t lda, const float* sa, int col0, int g0,
                             float (&sums)[R][NV * 16]) {
  constexpr int C = kG * kSub;
  constexpr int kRow = kSplit ? 16 : NV * 16;
  const ptrdiff_t vec = kSplit ? static_cast<ptrdiff_t>(Kd) * 16 : 16;
  w += g0 * vec;
  // Integer sums are exact: at one row, kRedChains chains hide the dot instruction's latency
  // without changing a bit.
  constexpr int KC = R == 1 ? kRedChains : 1;
  VI acc[KC][R][C];
  if constexpr (R > 1 && kRedTileApart)
    red_sums_apart<kRow, C, R, KC>(w, vec, Kd, a, lda, acc);
  else
    red_sums<kRow, C, R, KC>(w, vec, Kd, a, lda, acc);
  for (int c = 0; c < C; ++c) {
    const int col = col0 + 16 * g0 + c * kVecLanes;
    const V sw = vload(wf.scale + col);
    for (int r = 0; r < R; ++r) {
      VI sum = acc[0][r][c];
      for (int j = 1; j < KC; ++j) sum = vi_add(sum, acc[j][r][c]);
      const V f = vi_to_v(vi_finish(sum, wf.sum + col));
      float* out = &sums[r][16 * g0 + c * kVecLanes];
      const V x = vmul(f, vmul(vset1(sa[r]), sw));
      vstore(out, kWrite ? x : vadd(vload(out), x));
    }
  }
}

// sums[r][16·g0 + …] += the bf16 tile's sums (VDPBF16PS, kBf16Dot): rows [0, R) of the bf16
// activation pairs a (stride lda dwords) times columns [16·g0, 16·(g0 + kG)) of one panel, k
// pairs ascending in KC chains (pair k in chain k mod KC), added last.
template <int NV, int R, int kG, int KC, bool kWrite>
FASTRNN_INLINE void bf16_tile(const uint32_t* w, int Kd, const uint32_t* a, ptrdiff_t lda, int g0,
                              float (&sums)[R][NV * 16]) {
  constexpr int C = kG * kSub;
  constexpr int kRow = NV * 16;
  w += 16 * g0;
  V acc[KC][R][C];
  red_sums<kRow, C, R, KC>(w, 16, Kd, a, lda, acc);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      V sum = acc[0][r][c];
      for (int j = 1; j < KC; ++j) sum = vadd(sum, acc[j][r][c]);
      float* out = &sums[r][16 * g0 + c * kVecLanes];
      vstore(out, kWrite ? sum : vadd(vload(out), sum));
    }
}

// red_panel's rows for an int8 model packed in the other layout than this table's
// (kRedSplit; a model packed before set_isa switched tables: tests): one-row tiles, the same
// integer sums. Apart, so the build does not inline a second layout into every row block
// (inlined, the native core_check build ran past its 600 s limit on a Zen 3).
template <int NV, bool kWrite>
FASTRNN_NOINLINE void red_rows_other(const WeightFormat& wf, const uint32_t* w, int Kd,
                                     const uint32_t* a, ptrdiff_t lda, const float* sa, int p,
                                     int rows, float* sums) {
  constexpr int kG = red_gates<NV, 1, kRedChains>();
  for (int r = 0; r < rows; ++r) {
    auto& row = *reinterpret_cast<float (*)[1][NV * 16]>(sums + r * NV * 16);
    for (int g0 = 0; g0 < NV; g0 += kG)
      red_tile<NV, 1, kG, !kRedSplit, kWrite>(wf, w, Kd, a + r * lda, lda, sa + r, p * NV * 16, g0,
                                              row);
  }
}

// sums (R rows of one panel's NV·16 columns) += packed activations · reduced panel (int8, or
// bf16 on the VDPBF16PS tables), gate group by gate group (each reads only its own columns);
// kWrite: sums = instead (each column is written once: sums need no zeros stored first, which
// GCC made a `rep stosq` of 256 bytes per panel in a batch-1 LSTM step).
// any_block: these rows may sit in blocks of any height (the GEMM's rows over time, a thread's
// slice of a many-row step), so bf16 takes one chain at every R and a row's sums never depend
// on its block; else (a few-row step: the whole batch in one block) one row alone takes
// kRedChains. int8 sums are exact either way.
template <int NV, int R, bool kWrite = false>
FASTRNN_INLINE void red_panel(const WeightFormat& wf, const uint32_t* w, int Kd, const uint32_t* a,
                              ptrdiff_t lda, const float* sa, int p, bool any_block,
                              float (&sums)[R][NV * 16]) {
  constexpr int kG = red_gates<NV, R, R == 1 ? kRedChains : 1>();
  if (kBf16Dot && wf.type == WeightType::kBf16) {
    if (any_block) {
      constexpr int kG1 = red_gates<NV, R, 1>();
      for (int g0 = 0; g0 < NV; g0 += kG1)
        bf16_tile<NV, R, kG1, 1, kWrite>(w, Kd, a, lda, g0, sums);
    } else {
      for (int g0 = 0; g0 < NV; g0 += kG)
        bf16_tile<NV, R, kG, R == 1 ? kRedChains : 1, kWrite>(w, Kd, a, lda, g0, sums);
    }
    return;
  }
  if (wf.split != kRedSplit) {
    red_rows_other<NV, kWrite>(wf, w, Kd, a, lda, sa, p, R, &sums[0][0]);
    return;
  }
  for (int g0 = 0; g0 < NV; g0 += kG)
    red_tile<NV, R, kG, kRedSplit, kWrite>(wf, w, Kd, a, lda, sa, p * NV * 16, g0, sums);
}

#ifndef FASTRNN_AMX
constexpr bool kHasAmx = false;
inline void amx_config(int) {}
inline void amx_release() {}
template <int NV, bool kBf16, class CT>
void amx_rows(const uint32_t*, int, const uint32_t*, int, int, CT*) {}
#endif

// AMX blocks read packed activation rows of Kd dwords (no |q_a| rows beside them).
static_assert(!kHasAmx || !kI8AbsRow, "AMX tables read activation rows of weight_rows dwords");

// Rows per AMX block (two tiles of 16).
constexpr int kAmxRows = 32;
// int8 rows take AMX blocks from this many rows of a call on (fewer: VPDPBUSD, the same sums;
// one-row tiles measured 0.9-1.25x the VNNI time, 4 rows 0.65-0.8x, 8+ rows 0.5-0.7x).
constexpr int kAmxMinRowsInt8 = 4;

// Makes the thread's AMX tiles take blocks of M rows: the configuration is loaded when the
// row count changes and kept across a call's steps and GEMMs (the thread's amx_tile_rows,
// kernel-table.h), then released once by the call's end_call. (Loaded and released at every
// step instead, a batch-1 bf16 GRU call, H = 256, T = 100, took 1.06x the time at 2 threads,
// SPR-class Xeon.)
FASTRNN_INLINE void amx_use(int M) {
  int& rows = amx_tile_rows();
  if (M != rows) amx_config(M);
  rows = M;
}

// KernelTable::end_call: gives the tile state back, if this thread holds it.
inline void end_call() {
  int& rows = amx_tile_rows();
  if (rows > 0) amx_release();
  rows = 0;
}

// Where an AMX block puts its M rows of one panel's NV·16 sums: rows at `at` (stride ld),
// each value added to what is there (accumulate: a step's gate sums), or else written as
// +0 + the sum, then + bias[j] where bias is given (a GEMM's output or a stream's own
// projection: the bits of summing into zeroed rows and adding the bias after, without the
// pass that zeroes them or the copy that adds the bias. SPR-class Xeon, LSTM B = 64, T = 100,
// I = H = 512, 2 layers, 1 thread: without the zeroing, a third of a GEMM block's time
// outside the tiles, int8 took 0.90x the time and bf16 0.95x; without the copy, bf16 0.96x
// again, int8 level).
struct AmxOut {
  float* at;
  ptrdiff_t ld;
  const float* bias;
  bool accumulate;
};
FASTRNN_INLINE void amx_put(const AmxOut& o, int r, int j, V v) {
  float* dst = o.at + r * o.ld + j;
  V x = vadd(o.accumulate ? vload(dst) : vzero(), v);
  if (o.bias != nullptr) x = vadd(x, vload(o.bias + j));
  vstore(dst, x);
}

// out (M ≤ kAmxRows rows of one panel's NV·16 columns) gets the int8 sums, by AMX tiles over
// the first Kd − Kd % 16 quads and the ISA's dot for the rest, then red_tile's finish: the
// same integer sums, the same float operations, the same bits. a: the rows' packed quads
// (q + 128, as TDPBUSD and VPDPBUSD read them; stride Kd dwords).
template <int NV>
FASTRNN_INLINE void amx_panel(const WeightFormat& wf, const uint32_t* w, int Kd, const uint32_t* a,
                              const float* sa, int p, int M, const AmxOut& out) {
  constexpr int kRow = NV * 16;
  alignas(64) int32_t c[kAmxRows * kRow];
  const int kq = Kd - Kd % 16;
  amx_use(M);
  amx_rows<NV, false>(a, Kd * 4, w, kq, M, c);
  for (int r = 0; r < M; ++r)
    for (int j = 0; j < kRow; j += kVecLanes) {
      VI acc = vi_load(c + r * kRow + j);
      for (int k = kq; k < Kd; ++k)
        acc = vdot_i8(acc, vload_w(w + k * kRow + j), red_operand(acc, a + r * Kd + k, Kd));
      const int col = p * kRow + j;
      const V f = vi_to_v(vi_finish(acc, wf.sum + col));
      amx_put(out, r, j, vmul(f, vmul(vset1(sa[r]), vload(wf.scale + col))));
    }
}

// out (M ≤ kAmxRows rows of one panel's NV·16 columns) gets the bf16 sums of the packed bf16
// rows a (stride Kd dwords): AMX tiles over the first Kd − Kd % 16 pairs, then VDPBF16PS for
// the rest, row by row: a row's sums never depend on the other rows.
template <int NV>
FASTRNN_INLINE void amx_bf16_panel(const uint32_t* w, int Kd, const uint32_t* a, int M,
                                   const AmxOut& out) {
  constexpr int kRow = NV * 16;
  alignas(64) float c[kAmxRows * kRow];
  const int kq = Kd - Kd % 16;
  if (kq > 0) {
    amx_use(M);
    amx_rows<NV, true>(a, Kd * 4, w, kq, M, c);
  } else {
    for (int i = 0; i < M * kRow; ++i) c[i] = 0.0f;
  }
  for (int r = 0; r < M; ++r)
    for (int j = 0; j < kRow; j += kVecLanes) {
      V acc = vload(c + r * kRow + j);
      for (int k = kq; k < Kd; ++k) acc = vdot_bf16(acc, vload_w(w + k * kRow + j), a[r * Kd + k]);
      amx_put(out, r, j, acc);
    }
}

// Whether bf16 weights in this format take AMX tiles for all their rows (the avx512bf16
// table on a CPU with AMX-BF16): the GEMM over time steps and the steps, x and h rounded.
FASTRNN_INLINE bool bf16_amx(const WeightFormat& wf) {
  return kHasAmx && kBf16Dot && wf.amx && wf.type == WeightType::kBf16;
}

// Whether bf16 weights in this format take bf16 dot products for all their rows, x and h
// rounded: on AMX tiles, or by VDPBF16PS where the CPU's outrun its FMAs (WeightFormat::
// bf16_rows). Else only few-row steps do, and the GEMM and many-row steps stay weight-only.
FASTRNN_INLINE bool bf16_all_rows(const WeightFormat& wf) {
  return kBf16Dot && wf.type == WeightType::kBf16 && (bf16_amx(wf) || wf.bf16_rows);
}

// Whether a call's int8 rows take AMX blocks (all of them, in blocks of up to 32; whole
// panel rows only: a split model, packed for another table, takes this table's dot products).
FASTRNN_INLINE bool amx_int8(const WeightFormat& wf, int Kd, int rows) {
  return kHasAmx && wf.amx && wf.type == WeightType::kInt8 && !wf.split && Kd >= 16 &&
         rows >= kAmxMinRowsInt8;
}

// out gets the reduced sums of M rows from row b of a call's packed rows buf / sa (stride Kd)
// with panel p (w) on AMX tiles: amx_panel (int8) or amx_bf16_panel.
template <int NV>
FASTRNN_INLINE void amx_block(const WeightFormat& wf, const uint32_t* w, int Kd,
                              const uint32_t* buf, const float* sa, int b, int p, int M,
                              const AmxOut& out) {
  if (wf.type == WeightType::kBf16)
    amx_bf16_panel<NV>(w, Kd, buf + b * Kd, M, out);
  else
    amx_panel<NV>(wf, w, Kd, buf + b * Kd, sa + b, p, M, out);
}

// Rows of one panel's sums (stride kCols) plus the panel's bias (or none) into c (stride ldc):
// what a GEMM writes, the bias added after the last k.
template <int kCols>
FASTRNN_INLINE void rows_store(const float* sums, int rows, const float* bias, float* c,
                               ptrdiff_t ldc) {
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < kCols; j += kVecLanes) {
      V v = vload(sums + r * kCols + j);
      if (bias != nullptr) v = vadd(v, vload(bias + j));
      vstore(c + r * ldc + j, v);
    }
}

// The packed reduced panel p of a matrix of K rows.
FASTRNN_INLINE const uint32_t* red_panel_at(const float* w, WeightType type, int K, int nv, int p) {
  return reinterpret_cast<const uint32_t*>(w) +
         static_cast<ptrdiff_t>(p) * weight_rows(type, K) * nv * 16;
}

// gemm_panels for weights that take packed activations (int8; bf16_all_rows): rows in
// groups whose packed activations fit the stack buffer; per group, panel by panel, row blocks
// (on AMX: blocks of up to 32 rows); the bias added last.
template <int NV>
FASTRNN_NOINLINE void gemm_packed(const GemmArgs& g) {
  constexpr int kCols = NV * 16;
  const WeightType type = g.wf.type;
  const int Kd = weight_rows(type, g.K), Ka = act_rows(type, g.K);
  const int group = red_group_rows(type, g.K);
  alignas(64) uint32_t buf[kRedBufDwords];
  float sa[kRedMaxGroupRows];
  for (int r0 = 0; r0 < g.rows; r0 += group) {
    const int r1 = g.rows - r0 < group ? g.rows : r0 + group;
    pack_rows(type, g.a + r0 * g.lda, g.lda, r1 - r0, g.K, buf, sa);
    const bool amx = amx_int8(g.wf, Kd, r1 - r0);
    for (int p = g.p0; p < g.p1; ++p) {
      const uint32_t* w = red_panel_at(g.w, type, g.K, NV, p);
      const float* bias = g.bias != nullptr ? g.bias + p * kCols : nullptr;
      int b = r0;
      for (; (amx || bf16_amx(g.wf)) && b < r1; b += kAmxRows) {
        const int M = r1 - b < kAmxRows ? r1 - b : kAmxRows;
        amx_block<NV>(g.wf, w, Kd, buf, sa, b - r0, p, M,
                      {g.c + b * g.ldc + p * kCols, g.ldc, bias, false});
      }
      for_row_blocks<kRedRows>(b, r1, [&](auto block, int b0) {
        constexpr int R = decltype(block)::value;
        alignas(64) float sums[R][kCols];
        red_panel<NV, R, true>(g.wf, w, Kd, buf + (b0 - r0) * Ka, Ka, sa + (b0 - r0), p, true,
                               sums);
        rows_store<kCols>(&sums[0][0], R, bias, g.c + b0 * g.ldc + p * kCols, g.ldc);
      });
    }
  }
}
