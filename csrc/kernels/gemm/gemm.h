// Input projection: C = A · Wᵀ + bias over whole panels, all time steps of a chunk at once;
// and panel_accumulate, the same loops adding A · Wᵀ to sums already in memory (the step
// kernels' gate sums on ISAs whose registers hold less than a panel, see step-driver.h).
// Math:     c[r][p·NV·16 + j] = (Σ_k a[r][k] · W[p][k][j]) + bias[p·NV·16 + j]: the sum
//           over k ascending from 0, the bias added last. (Starting the sum from the bias
//           rounds every partial sum at the bias's magnitude; added last it costs one add,
//           and the step kernels add the recurrent sum the same way: see step-driver.h.)
// Layout:   a: (rows, K), stride lda; w: (panels, K, NV, 16); c: (rows, ≥ p1·NV·16), stride
//           ldc. Loops: panel; depth blocks of kGemmDepth k; the ISA's tile columns
//           (kGemmGates packed vectors: all of a panel on AVX-512, one on AVX2); blocks of
//           kGemmRows rows. The tile's weights (kGemmDepth × kGemmGates · 64 bytes) stay in
//           L1 while every row passes; a depth block continues each sum from the value the
//           previous one stored, so blocking never changes a result. Where the ISA says
//           so (kGemmPrefetch), the row blocks prefetch the next tile's weights as they go.
//           A float32 W_ih or W_hh packed in strips (WeightFormat::split: each panel's NV
//           vectors of 16 columns apart, (NV, K, 16)) runs panel_accumulate_strips: the same
//           sums.
// Accuracy: fp32 FMA dot products in k order (see panel-dot.h).
// Included inside an ISA's anonymous namespace (no includes here).

// Packed vectors per GEMM tile: the largest divisor of NV up to the ISA's kGemmGates.
template <int NV>
constexpr int gemm_gates() {
  for (int g = kGemmGates < NV ? kGemmGates : NV; g > 1; --g)
    if (NV % g == 0) return g;
  return 1;
}

// The tile after the one at (k0, g0), in panel_accumulate's order: the panel's next
// vectors at the same k, else the next depth block's first, else the next panel's, which
// follows this one in memory. Its address is an integer (past the last panel it points
// nowhere; a prefetch never faults) and its lines are kG per k row.
struct NextTile {
  uintptr_t at;
  int lines;
};
template <int NV, int kG>
FASTRNN_INLINE NextTile next_tile(const float* panel, int K, int k0, int kc, int g0) {
  constexpr int kRow = NV * 16;
  int k = K, g = 0, depth = K;  // the next panel's first tile
  if (g0 + kG < NV) {
    k = k0, g = g0 + kG, depth = kc;  // this depth block's next vectors
  } else if (k0 + kc < K) {
    k = k0 + kc, depth = K - k;  // the next depth block's first
  }
  return {
      reinterpret_cast<uintptr_t>(panel) + sizeof(float) * (static_cast<size_t>(k) * kRow + g * 16),
      kG * (depth < kGemmDepth ? depth : kGemmDepth)};
}

// Row block [r0, r0 + R) of `rows` prefetches its share of the next tile's lines into the
// L1, so that each tile's weights are there before its first row block needs them.
template <int kRow, int kG>
FASTRNN_INLINE void prefetch_share(const NextTile& next, int r0, int R, int rows) {
  const int l0 = static_cast<int>(static_cast<int64_t>(r0) * next.lines / rows);
  const int l1 = static_cast<int>(static_cast<int64_t>(r0 + R) * next.lines / rows);
  for (int l = l0; l < l1; ++l)
    __builtin_prefetch(
        reinterpret_cast<const void*>(next.at + (l / kG) * kRow * sizeof(float) + (l % kG) * 64), 0,
        3);
}

// sums[r][j] += Σ_k a[r][k] · panel[k][j] for j < NV·16, rows [0, rows); panel: one packed
// panel (K, NV, 16); sums: (rows, ≥ NV·16), stride ld_sums, holding the start values, or
// (from_zero) only written: the sums start from +0 in registers, the same bits as from a
// stored +0 without a pass that reads every line of sums in first (from memory, where sums
// is a G_x chunk larger than the L2: a GEMM of 512 rows, K = 256, lost 10% to it);
// bias (NV·16 floats, or null): added to each sum after its last k. kStream: tiles of up to
// 4 rows prefetch their weights kStreamAheadK k rows ahead (panel-dot.h); or, where the ISA
// says so (kStreamNextBlock: tiles that hold a part of each panel row), the first row block
// of each of a depth block's NV / kG tiles prefetches its share of the next depth block (the
// next panel's first after the last), one share per tile: the memory stream runs through
// all of the block's tiles, not only the first; kNextTile: row blocks prefetch the next
// tile (off for panels already in the L1). K ≥ 1, as every layer's input
// and hidden sizes are (the bindings check): with K = 0, from_zero would leave the sums
// unwritten.
template <int NV, bool kStream = false, bool kNextTile = kGemmPrefetch>
FASTRNN_INLINE void panel_accumulate(const float* panel, int K, const float* a, ptrdiff_t lda,
                                     int rows, float* sums, ptrdiff_t ld_sums,
                                     const float* bias = nullptr, bool from_zero = false) {
  constexpr int kRow = NV * 16;
  constexpr int kG = gemm_gates<NV>();
  constexpr int C = kG * kSub;
  // Prefetching the next tile pays for two row blocks or more, or for weights from beyond
  // the near cache (kStream); a tile of fewer rows on weights from a near cache pays the
  // prefetches for nothing (AVX2, Zen 5, streams of B = 4 and 8, H = 256: 10-15% slower).
  const bool prefetch = kNextTile && (kStream || rows >= 2 * kGemmRows);
  for (int k0 = 0; k0 < K; k0 += kGemmDepth) {
    const int kc = K - k0 < kGemmDepth ? K - k0 : kGemmDepth;
    for (int g0 = 0; g0 < NV; g0 += kG) {
      const float* w = panel + static_cast<ptrdiff_t>(k0) * kRow + g0 * 16;
      const NextTile next = prefetch ? next_tile<NV, kG>(panel, K, k0, kc, g0) : NextTile{};
      // This tile's share of the next depth block (kStreamNextBlock): its kc · kG lines.
      const uintptr_t block_share =
          reinterpret_cast<uintptr_t>(panel) +
          sizeof(float) * (static_cast<size_t>(k0 + kc) * kRow + static_cast<size_t>(g0) * kc * 16);
      for_row_blocks<kGemmRows>(0, rows, [&](auto block, int r0) {
        constexpr int R = decltype(block)::value;
        if constexpr (kNextTile) prefetch_share<kRow, kG>(next, r0, R, rows);
        // Sums only written (a G_x chunk, first depth block): their lines asked for, for
        // writing, before the k loop, so that they come while it runs and not when its stores
        // reach them (a G_x chunk larger than the L2 comes from beyond it). Where the ISA
        // prefetches its tiles (kNextTile: AVX2). SPR-class Xeon, one core: AVX2 GEMM of
        // 256 / 512 rows, K = 512, 116-118 -> 118-119 / 108 -> 110 GFLOP/s; in the library,
        // alternating processes, medians of 6-8: tput_gru_512 0.964x the time (twice; 2
        // threads 0.981x), tput_lstm_512 0.99x, bilstm_text level; on AVX-512 (not taken)
        // level within the noise.
        if constexpr (kNextTile)
          if (from_zero && k0 == 0)
            for (int r = 0; r < R; ++r)
              for (int g = 0; g < kG; ++g)  // the tile's line of each of its kG gates
                __builtin_prefetch(sums + (r0 + r) * ld_sums + (g0 + g) * 16, 1, 3);
        V acc[R][C];
        for (int r = 0; r < R; ++r)
          for (int c = 0; c < C; ++c)
            acc[r][c] = from_zero && k0 == 0
                            ? vzero()
                            : vload(sums + (r0 + r) * ld_sums + g0 * 16 + c * kVecLanes);
        panel_dot<kRow, C, R, 1, kStream && (kStreamNextBlock || R <= 4)>(
            w, kc, a + r0 * lda + k0, lda, acc, kStreamNextBlock && r0 == 0 ? block_share : 0);
        if (bias != nullptr && k0 + kc == K)
          for (int r = 0; r < R; ++r)
            for (int c = 0; c < C; ++c)
              acc[r][c] = vadd(acc[r][c], vload(bias + g0 * 16 + c * kVecLanes));
        for (int r = 0; r < R; ++r)
          for (int c = 0; c < C; ++c)
            vstore(sums + (r0 + r) * ld_sums + g0 * 16 + c * kVecLanes, acc[r][c]);
      });
    }
  }
}

// k per depth block of a panel in strips: a strip's block (256 rows of 64 bytes, 16 KiB) and
// the rows' 1 KiB each of x. The depth blocks continue each sum from the value the previous
// one stored, so they change no result.
constexpr int kStripDepth = 256;

// k rows (64-byte lines) ahead that a strip from beyond the near cache is asked for into the
// L2 (kFar: a many-row step's W_hh, StepArgs::far_weights). AMD Zen 3, one core, LSTM steps
// at B = 4, H = 1,536 (37 MiB of W_hh a step: bench/anatomy.cc step_*_far): 32, 64, 128 or
// 256 rows ahead 39-57 GFLOP/s (the host's memory noise), none 38-43, the panel rows'
// kStreamNextBlock shares 34-42.
constexpr int kStripFarAhead = 64;

// The dot products of a tile of R rows on one strip (K rows of 16 floats, contiguous):
// panel_dot's FMAs in its order, 4 k a loop trip, each trip first asking for the strip's
// lines 4 and 6 rows on (into the L1; as integers: past the strip's end they point nowhere,
// and a prefetch never faults), and (kFar) its 4 lines kStripFarAhead rows on into the L2:
// past the strip's end, the next strip's or panel's first, which come next in memory.
template <int R, bool kFar = false>
FASTRNN_INLINE void strip_dot(const float* w, int K, const float* a, ptrdiff_t lda,
                              V (&acc)[R][kSub]) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(w);
  int k = 0;
  for (; k + 4 <= K; k += 4) {
    if constexpr (kFar)
      for (int u = 0; u < 4; ++u)
        __builtin_prefetch(
            reinterpret_cast<const void*>(at + 64 * uintptr_t(k + kStripFarAhead + u)), 0, 2);
    __builtin_prefetch(reinterpret_cast<const void*>(at + 64 * uintptr_t(k + 4)), 0, 3);
    __builtin_prefetch(reinterpret_cast<const void*>(at + 64 * uintptr_t(k + 6)), 0, 3);
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) panel_dot_k<16, kSub, R>(w, a, lda, k + u, acc);
  }
  for (; k < K; ++k) panel_dot_k<16, kSub, R>(w, a, lda, k, acc);
}

// panel_accumulate on a panel packed in strips (WeightFormat::split, float32 W_ih and W_hh):
// the NV strips of (K, 16) floats one after the other, each over depth blocks of
// kStripDepth k and all row blocks: the same sums, bias and from_zero as panel_accumulate,
// the same bits. kFar: weights from beyond the near cache; the first row block of each depth
// block asks for them far ahead (strip_dot).
template <int NV, bool kFar = false>
FASTRNN_NOINLINE void panel_accumulate_strips(const float* panel, int K, const float* a,
                                              ptrdiff_t lda, int rows, float* sums,
                                              ptrdiff_t ld_sums, const float* bias,
                                              bool from_zero) {
  for (int v = 0; v < NV; ++v) {
    const float* strip = panel + static_cast<ptrdiff_t>(v) * K * 16;
    for (int k0 = 0; k0 < K; k0 += kStripDepth) {
      const int kc = K - k0 < kStripDepth ? K - k0 : kStripDepth;
      for_row_blocks<kGemmRows>(0, rows, [&](auto block, int r0) {
        constexpr int R = decltype(block)::value;
        float* out = sums + r0 * ld_sums + v * 16;
        V acc[R][kSub];
        for (int r = 0; r < R; ++r)
          for (int c = 0; c < kSub; ++c)
            acc[r][c] = from_zero && k0 == 0 ? vzero() : vload(out + r * ld_sums + c * kVecLanes);
        if (kFar && r0 == 0)
          strip_dot<R, kFar>(strip + static_cast<ptrdiff_t>(k0) * 16, kc, a + r0 * lda + k0, lda,
                             acc);
        else
          strip_dot<R>(strip + static_cast<ptrdiff_t>(k0) * 16, kc, a + r0 * lda + k0, lda, acc);
        if (bias != nullptr && k0 + kc == K)
          for (int r = 0; r < R; ++r)
            for (int c = 0; c < kSub; ++c)
              acc[r][c] = vadd(acc[r][c], vload(bias + v * 16 + c * kVecLanes));
        for (int r = 0; r < R; ++r)
          for (int c = 0; c < kSub; ++c) vstore(out + r * ld_sums + c * kVecLanes, acc[r][c]);
      });
    }
  }
}

// k per widened depth block of a bf16 panel (even): 128 rows × 64 floats = 32 KiB on the
// stack. Against 64 rows (AMD Zen 5, bf16 weights, 1 thread, A/B alternating): AVX-512
// tput_lstm_512 and bilstm_text 0.95x the time (each depth block reads and writes every
// sum once more); AVX2 level.
constexpr int kBf16Depth = 128;

// panel_accumulate on a packed bf16 panel (kernels/reduced/reduced-dot.h): depth blocks of
// kBf16Depth k widened to fp32 on the stack, each through panel_accumulate, which continues
// every sum from the value the previous block stored: the same FMAs in the same order as
// panel_accumulate on the rounded weights, so the same bits.
template <int NV>
FASTRNN_NOINLINE void panel_accumulate_bf16(const uint32_t* panel, int K, const float* a,
                                            ptrdiff_t lda, int rows, float* sums, ptrdiff_t ld_sums,
                                            const float* bias = nullptr, bool from_zero = false) {
  constexpr int kRow = NV * 16;
  alignas(64) float wf[kBf16Depth * kRow];
  for (int k0 = 0; k0 < K; k0 += kBf16Depth) {
    const int kc = K - k0 < kBf16Depth ? K - k0 : kBf16Depth;
    for (int kk = 0; 2 * kk < kc; ++kk) {
      const uint32_t* src = panel + static_cast<ptrdiff_t>(k0 / 2 + kk) * kRow;
      float* lo = wf + 2 * kk * kRow;
      for (int j = 0; j < kRow; j += kVecLanes) {
        const VW v = vload_w(src + j);
        vstore(lo + j, vbf16_lo(v));
        if (2 * kk + 1 < kc) vstore(lo + kRow + j, vbf16_hi(v));
      }
    }
    panel_accumulate<NV, false, false>(wf, kc, a + k0, lda, rows, sums, ld_sums,
                                       k0 + kc == K ? bias : nullptr, from_zero && k0 == 0);
  }
}

// One to three rows (a stream's own step projection): the bf16 pairs widened in registers,
// one chain in k order from zero, the bias last: panel_accumulate's FMAs, the same bits.
template <int NV>
FASTRNN_INLINE void gemm_bf16_few_rows(const uint32_t* panel, int K, const float* a, ptrdiff_t lda,
                                       int rows, float* c, ptrdiff_t ldc, const float* bias) {
  for_row_blocks<3>(0, rows, [&](auto block, int r0) {
    constexpr int R = decltype(block)::value;
    constexpr int kG = red_gates<NV, R, 2>();  // lo and hi of each weight vector live too
    constexpr int C = kG * kSub;
    for (int g0 = 0; g0 < NV; g0 += kG) {
      V acc[R][C];
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < C; ++j) acc[r][j] = vzero();
      panel_dot_bf16<NV * 16, C, R, 1>(panel + 16 * g0, K, a + r0 * lda, lda, acc);
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < C; ++j) {
          V v = acc[r][j];
          if (bias != nullptr) v = vadd(v, vload(bias + 16 * g0 + j * kVecLanes));
          vstore(c + (r0 + r) * ldc + 16 * g0 + j * kVecLanes, v);
        }
    }
  });
}

template <int NV>
void gemm_panels(const GemmArgs& g) {
  if (g.wf.type == WeightType::kInt8 || bf16_all_rows(g.wf)) {
    gemm_packed<NV>(g);
    return;
  }
  constexpr int kCols = NV * 16;
  for (int p = g.p0; p < g.p1; ++p) {
    float* c = g.c + p * kCols;
    const float* bias = g.bias ? g.bias + p * kCols : nullptr;
    if (g.wf.type == WeightType::kBf16 && g.rows < 4)
      gemm_bf16_few_rows<NV>(red_panel_at(g.w, g.wf.type, g.K, NV, p), g.K, g.a, g.lda, g.rows, c,
                             g.ldc, bias);
    else if (g.wf.type == WeightType::kBf16)
      panel_accumulate_bf16<NV>(red_panel_at(g.w, g.wf.type, g.K, NV, p), g.K, g.a, g.lda, g.rows,
                                c, g.ldc, bias, true);
    else if (g.wf.split)
      panel_accumulate_strips<NV>(g.w + static_cast<ptrdiff_t>(p) * g.K * kCols, g.K, g.a, g.lda,
                                  g.rows, c, g.ldc, bias, true);
    else
      panel_accumulate<NV>(g.w + static_cast<ptrdiff_t>(p) * g.K * kCols, g.K, g.a, g.lda, g.rows,
                           c, g.ldc, bias, true);
  }
}

void gemm(const GemmArgs& g) {
  if (g.nv == 3)
    gemm_panels<3>(g);
  else
    gemm_panels<4>(g);
}
