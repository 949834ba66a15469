// Dot products with reduced-precision weights: bf16, or int8 with one scale per column.
// Math:     bf16: weights and activations (x, h) rounded to bf16 (nearest even); per column
//           acc = Σ over k pairs of w_hi·a_hi then w_lo·a_lo, each an FMA of an exact
//           product in fp32; even and odd pairs in two chains added at the end (the order
//           of VDPBF16PS with two accumulators, on every ISA).
//           int8: weights q_w = round(w / s_w), s_w = max|row| / 127 (python/fastrnn/
//           _quantize.py); each activation row (a step's h row, a time step's x row) is
//           quantised when it is read: s_a = max|a| / 127, q_a = round(a · (127 / max|a|))
//           (nearest even), in [−127, 127]. acc = Σ_k q_a·q_w in int32, exact (|acc| ≤
//           127² · K < 2^31 for K ≤ 2^16); the sum is float(acc) · (s_a · s_w), rounded
//           twice, in that order, on every ISA.
// Layout:   a packed reduced panel has weight_rows(K) rows of NV·16 dwords: column j of row
//           kk holds k = G·kk .. G·kk + G − 1 (G = 2 bf16: low half first; G = 4 int8:
//           lowest byte first), zero past K. Activation rows pack the same way.
// Accuracy: integer parts exact on every ISA; bf16 the same bits on every ISA except
//           where VDPBF16PS flushes a subnormal; stated bounds in docs/precision.md.
// Included inside an ISA's anonymous namespace after its vec-*.h and rvec-*.h.

// The activation row buffer on the stack: rows of packed dwords, at most this many dwords
// (64 KiB); reduced models have K ≤ kMaxReducedK (core/limits.h) so one row always fits.
constexpr int kRedBufDwords = 16384;
constexpr int kRedMaxGroupRows = 256;

// fp32 → bf16 bits, round to nearest even; NaN stays a (quiet) NaN.
FASTRNN_INLINE uint32_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u >> 16) | 0x40u;
  return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}

// Row a (K floats) into Kd dwords of bf16 pairs.
FASTRNN_INLINE void pack_row_bf16(const float* a, int K, uint32_t* out) {
  int k = 0;
  for (; k + 1 < K; k += 2) out[k / 2] = bf16_bits(a[k]) | (bf16_bits(a[k + 1]) << 16);
  if (k < K) out[k / 2] = bf16_bits(a[k]);
}

// Row a (K floats) into ceil(K/4) dwords of int8 q_a; returns s_a (NaN when the row holds a
// NaN or an infinity: every sum it feeds is then NaN, as fp32 arithmetic would make it).
FASTRNN_INLINE float pack_row_i8(const float* a, int K, uint32_t* out) {
  float m = 0.0f;
  bool finite = true;
  for (int k = 0; k < K; ++k) {
    const float v = std::fabs(a[k]);
    finite = finite && v <= 3.4028235e38f;  // false for NaN and ±inf
    m = v > m ? v : m;
  }
  const int Kd = (K + 3) / 4;
  if (!finite || m == 0.0f) {
    for (int i = 0; i < Kd; ++i) out[i] = 0;
    return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  const float inv = 127.0f / m;
  auto* bytes = reinterpret_cast<int8_t*>(out);
  for (int k = 0; k < K; ++k) {
    float q = std::nearbyint(a[k] * inv);
    q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
    bytes[k] = static_cast<int8_t>(q);
  }
  for (int k = K; k < 4 * Kd; ++k) bytes[k] = 0;
  return m / 127.0f;
}

// Rows [0, rows) of a (stride lda) packed into buf (stride Kd dwords), int8 scales into sa.
FASTRNN_INLINE void pack_rows(WeightType type, const float* a, ptrdiff_t lda, int rows, int K,
                              uint32_t* buf, float* sa) {
  const int Kd = weight_rows(type, K);
  for (int r = 0; r < rows; ++r) {
    if (type == WeightType::kBf16)
      pack_row_bf16(a + r * lda, K, buf + r * Kd);
    else
      sa[r] = pack_row_i8(a + r * lda, K, buf + r * Kd);
  }
}

// Rows a block of packed activations may hold: all of [b0, b1) up to the buffer's size.
FASTRNN_INLINE int red_group_rows(WeightType type, int K) {
  const int per = kRedBufDwords / weight_rows(type, K);
  return per < 1 ? 1 : per > kRedMaxGroupRows ? kRedMaxGroupRows : per;
}

// Packed vectors of a reduced tile of R rows: all NV where R · NV · kSub · chains
// accumulators fit the ISA's budget, else the largest divisor of NV that fits.
template <int NV, int R, int kChains>
constexpr int red_gates() {
  for (int g = NV; g > 1; --g)
    if (NV % g == 0 && R * g * kSub * kChains <= kRedAccumulators) return g;
  return 1;
}

template <int kRow, int C, int R>
FASTRNN_INLINE void dot_i8_k(const uint32_t* w, const uint32_t* a, ptrdiff_t lda, int k,
                             VI (&acc)[R][C]) {
  const uint32_t* wk = w + static_cast<ptrdiff_t>(k) * kRow;
  VW wv[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) wv[c] = vload_w(wk + c * kVecLanes);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const VAi x = vbcast_i8(a[r * lda + k]);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[r][c] = vdot_i8(acc[r][c], wv[c], x);
  }
}

template <int kRow, int C, int R>
FASTRNN_INLINE void dot_bf16_k(const uint32_t* w, const uint32_t* a, ptrdiff_t lda, int k,
                               V (&acc)[R][C]) {
  const uint32_t* wk = w + static_cast<ptrdiff_t>(k) * kRow;
  VW wv[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) wv[c] = vload_w(wk + c * kVecLanes);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const VAb x = vbcast_bf16(a[r * lda + k]);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[r][c] = vdot_bf16(acc[r][c], wv[c], x);
  }
}

// sums[r][16·g0 + …] += the tile's dot products for columns [16·g0, 16·(g0 + kG)) of one
// panel (w at the panel's row 0; col0: the panel's first column in the whole matrix, for the
// scales), rows [0, R) of the packed activations a (stride lda dwords, int8 scales sa).
template <int NV, int R, int kG>
FASTRNN_INLINE void red_tile(const WeightFormat& wf, const uint32_t* w, int Kd, const uint32_t* a,
                             ptrdiff_t lda, const float* sa, int col0, int g0,
                             float (&sums)[R][NV * 16]) {
  constexpr int C = kG * kSub;
  constexpr int kRow = NV * 16;
  w += 16 * g0;
  if (wf.type == WeightType::kInt8) {
    // Integer sums are exact: two chains at one row hide the dot instruction's latency
    // without changing a bit.
    VI acc[R][C], acc2[R][C];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] = acc2[r][c] = vi_zero();
    int k = 0;
    if constexpr (R == 1)
      for (; k + 1 < Kd; k += 2) {
        dot_i8_k<kRow, C, R>(w, a, lda, k, acc);
        dot_i8_k<kRow, C, R>(w, a, lda, k + 1, acc2);
      }
    for (; k < Kd; ++k) dot_i8_k<kRow, C, R>(w, a, lda, k, acc);
    for (int c = 0; c < C; ++c) {
      const int col = col0 + 16 * g0 + c * kVecLanes;
      const V sw = vload(wf.scale + col);
      for (int r = 0; r < R; ++r) {
        const V f = vi_to_v(vi_finish(vi_add(acc[r][c], acc2[r][c]), wf.sum + col));
        float* out = &sums[r][16 * g0 + c * kVecLanes];
        vstore(out, vadd(vload(out), vmul(f, vmul(vset1(sa[r]), sw))));
      }
    }
  } else {
    V acc[R][C], odd[R][C];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] = odd[r][c] = vzero();
    int k = 0;
    for (; k + 1 < Kd; k += 2) {
      dot_bf16_k<kRow, C, R>(w, a, lda, k, acc);
      dot_bf16_k<kRow, C, R>(w, a, lda, k + 1, odd);
    }
    if (k < Kd) dot_bf16_k<kRow, C, R>(w, a, lda, k, acc);
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) {
        float* out = &sums[r][16 * g0 + c * kVecLanes];
        vstore(out, vadd(vload(out), vadd(acc[r][c], odd[r][c])));
      }
  }
}

// sums (R rows of one panel's NV·16 columns) += packed activations · panel, gate group by
// gate group (each reads only its own columns of the panel).
template <int NV, int R>
FASTRNN_INLINE void red_panel(const WeightFormat& wf, const uint32_t* w, int Kd, const uint32_t* a,
                              ptrdiff_t lda, const float* sa, int p, float (&sums)[R][NV * 16]) {
  if (wf.type == WeightType::kInt8) {
    constexpr int kG = red_gates<NV, R, R == 1 ? 2 : 1>();
    for (int g0 = 0; g0 < NV; g0 += kG)
      red_tile<NV, R, kG>(wf, w, Kd, a, lda, sa, p * NV * 16, g0, sums);
  } else {
    constexpr int kG = red_gates<NV, R, 2>();
    for (int g0 = 0; g0 < NV; g0 += kG)
      red_tile<NV, R, kG>(wf, w, Kd, a, lda, sa, p * NV * 16, g0, sums);
  }
}

// The packed reduced panel p of a matrix of K rows.
FASTRNN_INLINE const uint32_t* red_panel_at(const float* w, WeightType type, int K, int nv, int p) {
  return reinterpret_cast<const uint32_t*>(w) +
         static_cast<ptrdiff_t>(p) * weight_rows(type, K) * nv * 16;
}

// gemm_panels for reduced weights: rows in groups whose packed activations fit the stack
// buffer; per group, panel by panel, row blocks of up to kRedRows; the bias added last.
template <int NV>
void gemm_reduced(const GemmArgs& g) {
  constexpr int kCols = NV * 16;
  const WeightType type = g.wf.type;
  const int Kd = weight_rows(type, g.K), group = red_group_rows(type, g.K);
  alignas(64) uint32_t buf[kRedBufDwords];
  float sa[kRedMaxGroupRows];
  for (int r0 = 0; r0 < g.rows; r0 += group) {
    const int r1 = g.rows - r0 < group ? g.rows : r0 + group;
    pack_rows(type, g.a + r0 * g.lda, g.lda, r1 - r0, g.K, buf, sa);
    for (int p = g.p0; p < g.p1; ++p) {
      const uint32_t* w = red_panel_at(g.w, type, g.K, NV, p);
      for_row_blocks<kRedRows>(r0, r1, [&](auto block, int b0) {
        constexpr int R = decltype(block)::value;
        alignas(64) float sums[R][kCols] = {};
        red_panel<NV, R>(g.wf, w, Kd, buf + (b0 - r0) * Kd, Kd, sa + (b0 - r0), p, sums);
        for (int r = 0; r < R; ++r) {
          float* c = g.c + (b0 + r) * g.ldc + p * kCols;
          for (int j = 0; j < kCols; j += kVecLanes) {
            V v = vload(&sums[r][j]);
            if (g.bias != nullptr) v = vadd(v, vload(g.bias + p * kCols + j));
            vstore(c + j, v);
          }
        }
      });
    }
  }
}
