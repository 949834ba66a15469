// Input projection: C = A · Wᵀ + bias over whole panels, all time steps of a chunk at once.
// Math:     c[r][p·NV·16 + j] = bias[p·NV·16 + j] + Σ_k a[r][k] · W[p][k][j]
// Layout:   a: (rows, K), stride lda; w: (panels, K, NV, 16); c: (rows, ≥ p1·NV·16), stride
//           ldc; panel-outer loop so one panel (K·NV·64 bytes) stays in L1/L2 while rows pass.
// Accuracy: fp32 FMA dot products in k order (see panel-dot.h).
// Included inside an ISA's anonymous namespace (no includes here).

template <int NV>
void gemm_panels(const GemmArgs& g) {
  constexpr int kCols = NV * 16;
  for (int p = g.p0; p < g.p1; ++p) {
    const float* w = g.w + static_cast<ptrdiff_t>(p) * g.K * kCols;
    const float* bias = g.bias ? g.bias + p * kCols : nullptr;
    for_row_blocks<kGemmRows>(0, g.rows, [&](auto rows, int r0) {
      constexpr int R = decltype(rows)::value;
      V acc[R][NV];
      for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v) acc[r][v] = bias ? vload(bias + 16 * v) : vzero();
      panel_dot<NV, R, 1>(w, g.K, g.a + r0 * g.lda, g.lda, acc);
      for (int r = 0; r < R; ++r) {
        float* c = g.c + (r0 + r) * g.ldc + p * kCols;
        for (int v = 0; v < NV; ++v) vstore(c + 16 * v, acc[r][v]);
      }
    });
  }
}

void gemm(const GemmArgs& g) {
  if (g.nv == 3)
    gemm_panels<3>(g);
  else
    gemm_panels<4>(g);
}
