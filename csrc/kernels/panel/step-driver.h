// The shared skeleton of every recurrent step kernel: for each panel and block of batch
// rows, start the accumulators (init), add h_prev · W_hh (panel_dot), then apply the cell's
// gate math in registers (epilogue). Inactive rows (length ≤ t) carry their state and get a
// zero output row instead. Nothing of shape (B, G) is ever written to memory.
// Included inside an ISA's anonymous namespace (no includes here).

FASTRNN_INLINE bool row_active(const StepArgs& s, int b) {
  return s.lengths == nullptr || s.t < s.lengths[b];
}

// Writes one 16-unit vector of an output row, never past y_cols.
FASTRNN_INLINE void store_output(const StepArgs& s, int b, int unit0, V val) {
  if (s.y == nullptr) return;
  const int n = s.y_cols - unit0;
  float* y = s.y + b * s.ld_y + unit0;
  if (n >= 16)
    vstore(y, val);
  else if (n > 0)
    vstore_n(y, val, n);
}

// Inactive row: h = carried state, output zero, c untouched.
template <int kUnits>
FASTRNN_INLINE void carry_row(const StepArgs& s, int p, int b) {
  const int unit0 = p * kUnits;
  for (int u = 0; u < kUnits; u += 16) {
    if (s.carry) vstore(s.h + b * s.ld_h + unit0 + u, vload(s.carry + b * s.ld_carry + unit0 + u));
    store_output(s, b, unit0 + u, vzero());
  }
}

// G_x rows [b0, b1) of panel p: the step's own input projection (StepArgs::in), by the
// same kernel as the whole-chunk projection, so the values are the same bits.
template <int NV>
FASTRNN_INLINE void project_panel(const StepArgs& s, int p) {
  GemmArgs g;
  g.a = s.in.x + s.b0 * s.in.ldx;
  g.lda = s.in.ldx;
  g.rows = s.b1 - s.b0;
  g.w = s.in.w;
  g.K = s.in.K;
  g.nv = NV;
  g.p0 = p;
  g.p1 = p + 1;
  g.bias = s.in.bias;
  g.c = s.in.gx + s.b0 * s.ld_gx;
  g.ldc = s.ld_gx;
  gemm_panels<NV>(g);
}

// The dot products of row b with panel w, the i-th panel this step visits, plus this
// panel's share of the input projection computed ahead (StepArgs::ahead). The step's
// n panels times kAheadRows parts cover the group's n projection panels: visit u of part
// ahead_part is piece u % kAheadRows (a k range) of panel p0 + u / kAheadRows; pieces
// after the first continue from the partial sums the previous piece stored.
template <int NV, int KS>
FASTRNN_INLINE void step_dot_ahead(const StepArgs& s, const float* w, int b, int i,
                                   V (&acc)[1][NV]) {
  constexpr int RA = kAheadRows;
  const int u = s.ahead_part * (s.p1 - s.p0) + i;
  const int q = s.p0 + u / RA, piece = u % RA;
  const int k0 = piece * s.ahead.K / RA, k1 = (piece + 1) * s.ahead.K / RA;
  float* gx = s.ahead.gx + q * NV * 16;
  V acc_a[RA][NV];
#pragma GCC unroll 4
  for (int r = 0; r < RA; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      acc_a[r][v] = piece > 0      ? vload(gx + r * s.ld_gx + 16 * v)
                    : s.ahead.bias ? vload(s.ahead.bias + q * NV * 16 + 16 * v)
                                   : vzero();
  panel_dot_ahead<NV, KS, RA>(w, s.K, s.h_prev + b * s.ld_h_prev, acc,
                              s.ahead.w + static_cast<ptrdiff_t>(q) * s.ahead.K * NV * 16,
                              s.ahead.x, s.ahead.ldx, k0, k1, acc_a);
#pragma GCC unroll 4
  for (int r = 0; r < RA; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) vstore(gx + r * s.ld_gx + 16 * v, acc_a[r][v]);
}

template <int NV, int kUnits, int kMaxR, int KS, bool kAhead, class Init, class Epilogue>
FASTRNN_INLINE void step_panels_blocked(const StepArgs& s, Init&& init, Epilogue&& epilogue) {
  // Odd steps walk the panels backwards: W_hh is read cyclically, and a cyclic sweep over
  // a working set a little larger than the cache misses on every line under LRU, while a
  // back-and-forth sweep starts on what the previous step left in cache. The panel order
  // never changes a result (each panel is independent).
  // Calls of one step alternate through s.sweep, so a stream's steps zigzag too; with
  // in.gx each panel's input projection comes right before it (see project_panel), so the
  // sweep covers W_ih as well.
  const bool backwards = ((s.t + s.sweep) & 1) != 0;
  for (int i = 0; i < s.p1 - s.p0; ++i) {
    const int p = backwards ? s.p1 - 1 - i : s.p0 + i;
    const float* w = s.w + static_cast<ptrdiff_t>(p) * s.K * NV * 16;
    if (s.in.gx != nullptr) project_panel<NV>(s, p);
    for_row_blocks<kMaxR>(s.b0, s.b1, [&](auto rows, int b0) {
      constexpr int R = decltype(rows)::value;
      bool any_active = false;
      for (int r = 0; r < R; ++r) any_active |= row_active(s, b0 + r);
      if (!any_active) {
        for (int r = 0; r < R; ++r) carry_row<kUnits>(s, p, b0 + r);
        return;
      }
      // init and epilogue see copies: if the accumulators' address escaped into a lambda
      // that is not inlined, GCC would keep them on the stack inside the k loop (measured:
      // 2.2x slower LSTM steps at B=64).
      V acc[R][NV];
      for (int r = 0; r < R; ++r) {
        V row[NV];
        init(p, b0 + r, row);
        for (int v = 0; v < NV; ++v) acc[r][v] = row[v];
      }
      if constexpr (kAhead && R == 1)
        step_dot_ahead<NV, KS>(s, w, b0, i, acc);
      else
        panel_dot<NV, R, KS>(w, s.K, s.h_prev + b0 * s.ld_h_prev, s.ld_h_prev, acc);
      for (int r = 0; r < R; ++r) {
        V row[NV];
        for (int v = 0; v < NV; ++v) row[v] = acc[r][v];
        if (row_active(s, b0 + r))
          epilogue(p, b0 + r, row);
        else
          carry_row<kUnits>(s, p, b0 + r);
      }
    });
  }
}

// Few rows (batch 1 to 3): K split in two chains to hide FMA latency. Many rows: the GEMM's
// taller row block, which reads each weight vector once per kGemmRows rows.
// The choice depends on the whole batch (s.many_rows), never on the thread's slice, so the
// result of a row is the same for any thread count.
template <int NV, int kUnits, class Init, class Epilogue>
FASTRNN_INLINE void step_panels(const StepArgs& s, Init&& init, Epilogue&& epilogue) {
  if (s.many_rows)
    step_panels_blocked<NV, kUnits, kGemmRows, 1, false>(s, init, epilogue);
  else if (s.ahead.gx != nullptr)  // its own copy: the plain loop's code stays as it was
    step_panels_blocked<NV, kUnits, kStepRows, kStepSplitK, true>(s, init, epilogue);
  else
    step_panels_blocked<NV, kUnits, kStepRows, kStepSplitK, false>(s, init, epilogue);
}

// Accumulators start from the input projection row (which already holds the biases).
template <int NV>
FASTRNN_INLINE void init_from_gx(const StepArgs& s, int p, int b, V (&acc)[NV]) {
  const float* gx = s.gx + b * s.ld_gx + p * NV * 16;
  for (int v = 0; v < NV; ++v) acc[v] = vload(gx + 16 * v);
}
