// The one microkernel every matmul in fastrnn is built on: R rows of A times one packed
// panel, accumulated in registers.
// Math:     acc[r][v] += Σ_k a[r·lda + k] · w[k][v][0..15], k ascending; with KS = 2 the even
//           and odd k run in two chains that are added at the end. The order depends only
//           on K and the ISA, never on R or on the thread split, so results are
//           bit-identical for any number of threads.
// Layout:   w: one panel, (K, NV, 16) floats, contiguous (see ops/pack.h);
//           a: R rows of K floats, row stride lda.
// Accuracy: plain fp32 FMA accumulation, as a BLAS dot product.
// Included inside an ISA's anonymous namespace after its vec-*.h (no includes here).

#define FASTRNN_INLINE inline __attribute__((always_inline))

template <int NV, int R>
FASTRNN_INLINE void panel_dot_k(const float* w, const float* a, ptrdiff_t lda, int k,
                                V (&acc)[R][NV]) {
  const float* wk = w + static_cast<ptrdiff_t>(k) * NV * 16;
  V wv[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) wv[v] = vload(wk + 16 * v);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const V x = vset1(a[r * lda + k]);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = vfma(wv[v], x, acc[r][v]);
  }
}

template <int NV, int R, int KS>
FASTRNN_INLINE void panel_dot(const float* w, int K, const float* a, ptrdiff_t lda,
                              V (&acc)[R][NV]) {
  int k = 0;
  if constexpr (KS == 2) {
    V odd[R][NV];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) odd[r][v] = vzero();
    for (; k + 1 < K; k += 2) {
      panel_dot_k<NV, R>(w, a, lda, k, acc);
      panel_dot_k<NV, R>(w, a, lda, k + 1, odd);
    }
    if (k < K) panel_dot_k<NV, R>(w, a, lda, k, acc);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = vadd(acc[r][v], odd[r][v]);
  } else {
    for (; k < K; ++k) panel_dot_k<NV, R>(w, a, lda, k, acc);
  }
}

// panel_dot<NV, 1, KS> of one row, with k iterations [k0, k1) of panel_dot<NV, RA, 1> of
// RA other rows and another panel (the input projection of later steps) spread evenly
// between its iterations. A batch-1 step streams its weights from cache at one load per
// FMA and leaves FMA slots idle; the projection's FMAs, which reuse each loaded weight RA
// times, fill them. Each sum takes the same FMAs in the same order as in the separate
// kernels: the results are bit-identical.
template <int NV, int KS, int RA>
FASTRNN_INLINE void panel_dot_ahead(const float* w, int K, const float* a, V (&acc)[1][NV],
                                    const float* wa, const float* xa, ptrdiff_t ldxa, int k0,
                                    int k1, V (&acc_a)[RA][NV]) {
  const int iters = K / KS;  // the step's (pairs of) k iterations
  int ka = k0, credit = 0;
  const auto ahead_k = [&] { panel_dot_k<NV, RA>(wa, xa, ldxa, ka++, acc_a); };
  int k = 0;
  if constexpr (KS == 2) {
    V odd[1][NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) odd[0][v] = vzero();
    for (; k + 1 < K; k += 2) {
      panel_dot_k<NV, 1>(w, a, 0, k, acc);
      panel_dot_k<NV, 1>(w, a, 0, k + 1, odd);
      for (credit += k1 - k0; credit >= iters; credit -= iters) ahead_k();
    }
    if (k < K) panel_dot_k<NV, 1>(w, a, 0, k, acc);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[0][v] = vadd(acc[0][v], odd[0][v]);
  } else {
    for (; k < K; ++k) {
      panel_dot_k<NV, 1>(w, a, 0, k, acc);
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
  if constexpr (kMaxR >= 3) {
    if (rest >= 2) {
      body(RowCount<2>{}, b);
      b += 2;
      rest -= 2;
    }
  }
  for (; rest > 0; --rest, ++b) body(RowCount<1>{}, b);
}
