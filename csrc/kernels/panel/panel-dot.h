// The one microkernel every matmul in fastrnn is built on: R rows of A times one packed
// panel, accumulated in registers.
// Math:     acc[r][c] += Σ_k a[r·lda + k] · w[k][column c], k ascending; with KS = 2 the
//           even and odd k run in two chains that are added at the end. The order depends
//           only on K, KS and the ISA, never on R, on the tile's columns or on the thread
//           split, so results are bit-identical for any number of threads.
// Layout:   w: one panel, (K, NV, 16) floats, contiguous (see ops/pack.h); a tile takes C
//           V's of contiguous columns (some or all of the NV packed vectors);
//           a: R rows of K floats, row stride lda.
// Accuracy: plain fp32 FMA accumulation, as a BLAS dot product.
// Included inside an ISA's anonymous namespace after its vec-*.h (no includes here).

// A packed vector of 16 floats (ops/pack.h) is kSub V's of the including ISA: 1 with
// 16-lane vectors, 2 halves with AVX2's 8 lanes.
constexpr int kSub = 16 / kVecLanes;
static_assert(kSub * kVecLanes == 16, "a packed vector must be whole V's");

// acc[r][c] += a[r·lda + k] · w[k·kRow + c·kVecLanes] for a tile of R rows and C V's of
// contiguous columns; w points at the tile's first column in row 0 of the panel (kRow
// floats per panel row). kStrips: the tile's packed vectors lie in strips of (K, 16) floats
// (WeightFormat::split), `strip` floats apart: vector c / kSub's row k at w + strip ·
// (c / kSub) + 16 k (kRow = 16).
template <int kRow, int C, int R, bool kStrips = false>
FASTRNN_INLINE void panel_dot_k(const float* w, const float* a, ptrdiff_t lda, int k,
                                V (&acc)[R][C], ptrdiff_t strip = 0) {
  static_assert(!kStrips || kRow == 16, "a strip's rows are one packed vector");
  const float* wk = w + static_cast<ptrdiff_t>(k) * kRow;
  V wv[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c)
    wv[c] = vload(kStrips ? wk + (c / kSub) * strip + (c % kSub) * kVecLanes : wk + c * kVecLanes);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const V x = vset1(a[r * lda + k]);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[r][c] = vfma(wv[c], x, acc[r][c]);
  }
}

// k rows ahead that a streaming tile prefetches its weights (kStream below): 32 rows of a
// 64-column panel are 8 KiB. A tile of 4 batch rows (each weight feeding 4 FMAs) reads
// its weights faster than the hardware prefetcher brings a single sequential stream from
// beyond the L2. Sapphire Rapids-class Xeon, B = 4, H = 1536 (37 MiB of W_hh per step),
// A/B alternating, medians: 32 rows ahead 0.76x the time (1 thread) and 0.81x (2 threads),
// 128 rows 0.79x; prefetchnta 2.5x slower.
constexpr int kStreamAheadK = 32;

// Prefetches into the L2 the tile's weights (C V's of each row) of the n panel rows from
// k + kStreamAheadK on. Near the panel's end those addresses lie past it (the next panel's
// first rows, or past the weights): computed as integers, since a pointer may not point
// there, and a prefetch never faults.
template <int kRow, int C, int n>
FASTRNN_INLINE void stream_ahead(const float* w, int k) {
  const uintptr_t ahead = reinterpret_cast<uintptr_t>(w) +
                          static_cast<uintptr_t>(k + kStreamAheadK) * kRow * sizeof(float);
#pragma GCC unroll 4
  for (int u = 0; u < n; ++u)
#pragma GCC unroll 16
    for (int line = 0; line < C * kVecLanes * 4; line += 64)
      __builtin_prefetch(reinterpret_cast<const void*>(ahead + u * kRow * sizeof(float) + line), 0,
                         2);
}

// Prefetches into the L2 a tile's share of the weights that come after its own (see
// panel_accumulate): for each of the n k rows from k on, the C vectors' bytes at
// share + k · C · kVecLanes · 4. Past the weights' end those addresses point nowhere
// (integers: a prefetch never faults).
template <int C, int n>
FASTRNN_INLINE void stream_share(uintptr_t share, int k) {
  constexpr uintptr_t kBytes = C * kVecLanes * sizeof(float);
#pragma GCC unroll 4
  for (int u = 0; u < n; ++u)
#pragma GCC unroll 16
    for (uintptr_t line = 0; line < kBytes; line += 64)
      __builtin_prefetch(
          reinterpret_cast<const void*>(share + static_cast<uintptr_t>(k + u) * kBytes + line), 0,
          2);
}

// The tile's dot products over the whole panel depth K, k ascending (KS = 2: even and odd
// k in two chains, added at the end). kStream (one chain): each loop trip first
// prefetches into the L2 the tile's share of what follows it (share: see stream_share),
// or, without a share, the tile's own weights kStreamAheadK k rows further on (on ISAs
// whose streaming tiles take shares, kStreamNextBlock, nothing). kStrips (not streaming):
// the tile's vectors in strips `strip` floats apart (panel_dot_k).
template <int kRow, int C, int R, int KS, bool kStream = false, bool kStrips = false>
FASTRNN_INLINE void panel_dot(const float* w, int K, const float* a, ptrdiff_t lda, V (&acc)[R][C],
                              uintptr_t share = 0, ptrdiff_t strip = 0) {
  static_assert(!kStream || KS == 1, "the prefetching tiles run one chain");
  static_assert(!kStream || !kStrips, "strips are not streamed here");
  int k = 0;
  if constexpr (KS == 2) {
    V odd[R][C];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) odd[r][c] = vzero();
    for (; k + 1 < K; k += 2) {
      panel_dot_k<kRow, C, R, kStrips>(w, a, lda, k, acc, strip);
      panel_dot_k<kRow, C, R, kStrips>(w, a, lda, k + 1, odd, strip);
    }
    if (k < K) panel_dot_k<kRow, C, R, kStrips>(w, a, lda, k, acc, strip);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) acc[r][c] = vadd(acc[r][c], odd[r][c]);
  } else {
    // kDotUnroll k per loop iteration (the ISA's choice; the same FMAs in the same order).
    for (; k + kDotUnroll <= K; k += kDotUnroll) {
      if constexpr (kStream) {
        if (share != 0)
          stream_share<C, kDotUnroll>(share, k);
        else if constexpr (!kStreamNextBlock)
          stream_ahead<kRow, C, kDotUnroll>(w, k);
      }
#pragma GCC unroll 8
      for (int u = 0; u < kDotUnroll; ++u)
        panel_dot_k<kRow, C, R, kStrips>(w, a, lda, k + u, acc, strip);
    }
    for (; k < K; ++k) panel_dot_k<kRow, C, R, kStrips>(w, a, lda, k, acc, strip);
  }
}

// A row block's share of the panel a many-row step visits next (step-driver.h): `lines`
// contiguous cache lines from `at` (an integer: a prefetch never faults).
struct NextPanelShare {
  uintptr_t at = 0;
  int lines = 0;
};

// panel_dot<kRow, C, R, 1> on weights from beyond the near cache: each loop trip first
// prefetches into the L2 a few lines of the block's share of the next panel, spread so that
// the whole share is asked for within the k loop; without a share (the last panel, or one
// block per panel) a block of up to 4 rows prefetches its own weights ahead (stream_ahead)
// as panel_dot<…, kStream> does. The same FMAs in the same order as panel_dot. A function
// of its own, not one more argument of panel_dot: that argument, unused, made the non-far
// GRU step (B = 64, H = 512, 2 threads) 1.19x slower on the Sapphire Rapids-class Xeon.
template <int kRow, int C, int R>
FASTRNN_INLINE void panel_dot_next(const float* w, int K, const float* a, ptrdiff_t lda,
                                   V (&acc)[R][C], NextPanelShare next) {
  if (next.lines == 0) {
    panel_dot<kRow, C, R, 1, R <= 4>(w, K, a, lda, acc);
    return;
  }
  const int per_trip = (next.lines * kDotUnroll + K - 1) / K;
  int k = 0, line = 0;
  for (; k + kDotUnroll <= K; k += kDotUnroll) {
    for (const int end = line + per_trip < next.lines ? line + per_trip : next.lines; line < end;
         ++line)
      __builtin_prefetch(reinterpret_cast<const void*>(next.at + 64 * uintptr_t(line)), 0, 2);
#pragma GCC unroll 8
    for (int u = 0; u < kDotUnroll; ++u) panel_dot_k<kRow, C, R>(w, a, lda, k + u, acc);
  }
  for (; k < K; ++k) panel_dot_k<kRow, C, R>(w, a, lda, k, acc);
}

// panel_dot of one row over a whole panel (C = kRow / kVecLanes), with k iterations
// [k0, k1) of panel_dot<…, RA, 1> of RA other rows and another panel (the input projection
// of later steps) spread evenly between its iterations. A batch-1 step streams its weights
// from cache at one load per FMA and leaves FMA slots idle; the projection's FMAs, which
// reuse each loaded weight RA times, fill them. Each sum takes the same FMAs in the same
// order as in the separate kernels: the results are bit-identical.
template <int kRow, int KS, int RA>
FASTRNN_INLINE void panel_dot_ahead(const float* w, int K, const float* a,
                                    V (&acc)[1][kRow / kVecLanes], const float* wa, const float* xa,
                                    ptrdiff_t ldxa, int k0, int k1,
                                    V (&acc_a)[RA][kRow / kVecLanes]) {
  constexpr int C = kRow / kVecLanes;
  const int iters = K / KS;  // the step's (pairs of) k iterations
  int ka = k0, credit = 0;
  const auto ahead_k = [&] { panel_dot_k<kRow, C, RA>(wa, xa, ldxa, ka++, acc_a); };
  int k = 0;
  if constexpr (KS == 2) {
    V odd[1][C];
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) odd[0][c] = vzero();
    for (; k + 1 < K; k += 2) {
      panel_dot_k<kRow, C, 1>(w, a, 0, k, acc);
      panel_dot_k<kRow, C, 1>(w, a, 0, k + 1, odd);
      for (credit += k1 - k0; credit >= iters; credit -= iters) ahead_k();
    }
    if (k < K) panel_dot_k<kRow, C, 1>(w, a, 0, k, acc);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[0][c] = vadd(acc[0][c], odd[0][c]);
  } else {
    for (; k < K; ++k) {
      panel_dot_k<kRow, C, 1>(w, a, 0, k, acc);
      for (credit += k1 - k0; credit >= iters; credit -= iters) ahead_k();
    }
  }
  while (ka < k1) ahead_k();
}

template <int N>
struct RowCount {
  static constexpr int value = N;
};

// Calls body(RowCount<R>{}, first_row) for row blocks of kMaxR rows, then the tail blocks,
// so every row block size is a compile-time constant. With tall blocks (kMaxR ≥ 6) a tail
// of 1 or 2 rows joins the last full block and the 7 or 8 rows run as 4 + 3 or 4 + 4: a
// block of one or two rows reads a weight vector from cache for every one or two FMAs,
// which cache bandwidth cannot feed (measured, B = 32: the step 3% and the GEMM 1.5% slower
// than at B = 30 or 36). The blocking never changes a result.
template <int kMaxR, class Body>
FASTRNN_INLINE void for_row_blocks(int b0, int b1, Body&& body) {
  int b = b0;
  int full = (b1 - b0) / kMaxR, rest = (b1 - b0) % kMaxR;
  if constexpr (kMaxR >= 6) {
    if (full > 0 && rest > 0 && rest < 3) {
      --full;
      rest += kMaxR;
    }
  }
  for (; full > 0; --full, b += kMaxR) body(RowCount<kMaxR>{}, b);
  if constexpr (kMaxR >= 6) {
    // rest ≤ 8 here: 5 in one block, else blocks of 4, then 3.
    if (rest == 5) {
      body(RowCount<5>{}, b);
      b += 5;
      rest = 0;
    }
    while (rest >= 4) {
      body(RowCount<4>{}, b);
      b += 4;
      rest -= 4;
    }
    if (rest >= 3) {
      body(RowCount<3>{}, b);
      b += 3;
      rest -= 3;
    }
  }
  if constexpr (kMaxR >= 4 && kMaxR < 6) {
    if (rest == 3) {
      body(RowCount<3>{}, b);
      b += 3;
      rest = 0;
    }
  }
  if constexpr (kMaxR >= 3) {
    if (rest >= 2) {
      body(RowCount<2>{}, b);
      b += 2;
      rest -= 2;
    }
  }
  for (; rest > 0; --rest, ++b) body(RowCount<1>{}, b);
}
