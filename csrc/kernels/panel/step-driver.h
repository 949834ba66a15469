// The shared skeleton of every recurrent step kernel: for each panel and block of batch
// rows, start the gate sums (init), add h_prev · W_hh (panel_dot), then apply the cell's
// gate math (epilogue). init and epilogue see one V per packed vector of the panel (`sub`
// says which V of its 16 floats: always 0 where one V holds 16, 0 or 1 on AVX2). The sums
// live in registers when the ISA's tile holds a whole panel's gates (step_gates), else in
// a small block on the stack between gate groups or GEMM tiles (step_panels_summed).
// Inactive rows (length ≤ t) carry their state and get a zero output row instead. Nothing
// of shape (B, G) is ever written to the caller's memory.
// Included inside an ISA's anonymous namespace (no includes here).

FASTRNN_INLINE bool row_active(const StepArgs& s, int b) {
  return s.lengths == nullptr || s.t < s.lengths[b];
}

// Writes one V of an output row (units unit0 .. unit0 + kVecLanes), never past y_cols.
FASTRNN_INLINE void store_output(const StepArgs& s, int b, int unit0, V val) {
  if (s.y == nullptr) return;
  const int n = s.y_cols - unit0;
  float* y = s.y + b * s.ld_y + unit0;
  if (n >= kVecLanes)
    vstore(y, val);
  else if (n > 0)
    vstore_n(y, val, n);
}

// Epilogues that take a pair (generic lambdas: lstm-step.h, gru-step.h; vec-pair.h) run two
// independent chains of activations op by op: a VPair holds V numbers sub and sub + 1 of
// row b (sums_finish, where a packed vector holds several V's), a VRowPair V number sub of
// rows b and b + 1 (AVX-512's many-row steps, step_panels_blocked). vload_units /
// vstore_units read and write a V or either pair at p, ld being the row stride of the array
// p points into (0 for one row shared by every row, as a bias).
template <class W>
FASTRNN_INLINE W vload_units(const float* p, ptrdiff_t ld) {
  if constexpr (std::is_same_v<W, VPair>)
    return vload_pair(p);
  else if constexpr (std::is_same_v<W, VRowPair>)
    return {vload(p), vload(p + ld)};
  else
    return vload(p);
}
FASTRNN_INLINE void vstore_units(float* p, ptrdiff_t, V x) { vstore(p, x); }
FASTRNN_INLINE void vstore_units(float* p, ptrdiff_t, VPair x) { vstore_pair(p, x); }
FASTRNN_INLINE void vstore_units(float* p, ptrdiff_t ld, VRowPair x) {
  vstore(p, x.a);
  vstore(p + ld, x.b);
}
FASTRNN_INLINE void store_output(const StepArgs& s, int b, int unit0, VPair val) {
  store_output(s, b, unit0, val.a);
  store_output(s, b, unit0 + kVecLanes, val.b);
}
FASTRNN_INLINE void store_output(const StepArgs& s, int b, int unit0, VRowPair val) {
  store_output(s, b, unit0, val.a);
  store_output(s, b + 1, unit0, val.b);
}

// The first unit of V number `sub` of packed vector v in panel p, for panels of kUnits
// units (16: a gate's units; 64: four blocks of 16).
template <int kUnits>
FASTRNN_INLINE int unit_of(int p, int v, int sub) {
  return p * kUnits + 16 * v + sub * kVecLanes;
}

// Inactive row: h = carried state, output zero, c untouched (the units of one sub-vector).
template <int kUnits>
FASTRNN_INLINE void carry_row(const StepArgs& s, int p, int b, int sub) {
  for (int v = 0; v < kUnits / 16; ++v) {
    const int u = unit_of<kUnits>(p, v, sub);
    if (s.carry) vstore(s.h + b * s.ld_h + u, vload(s.carry + b * s.ld_carry + u));
    store_output(s, b, u, vzero());
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
  g.wf = s.in.wf;
  gemm_panels<NV>(g);
}

// The dot products of row b with panel w, the i-th panel this step visits, plus this
// panel's share of the input projection computed ahead (StepArgs::ahead). The step's
// n panels times kAheadRows parts cover the group's n projection panels: visit u of part
// ahead_part is piece u % kAheadRows (a k range) of panel p0 + u / kAheadRows; pieces
// after the first continue from the partial sums the previous piece stored.
template <int NV, int KS, int RA>
FASTRNN_INLINE void step_dot_ahead(const StepArgs& s, const float* w, int b, int i,
                                   V (&acc)[1][NV * kSub]) {
  constexpr int C = NV * kSub;
  const int u = s.ahead_part * (s.p1 - s.p0) + i;
  const int q = s.p0 + u / RA, piece = u % RA;
  const int k0 = piece * s.ahead.K / RA, k1 = (piece + 1) * s.ahead.K / RA;
  float* gx = s.ahead.gx + q * NV * 16;
  V acc_a[RA][C];
#pragma GCC unroll 4
  for (int r = 0; r < RA; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c)
      acc_a[r][c] = piece > 0 ? vload(gx + r * s.ld_gx + c * kVecLanes) : vzero();
  panel_dot_ahead<NV * 16, KS, RA>(w, s.K, s.h_prev + b * s.ld_h_prev, acc,
                                   s.ahead.w + static_cast<ptrdiff_t>(q) * s.ahead.K * NV * 16,
                                   s.ahead.x, s.ahead.ldx, k0, k1, acc_a);
  if (piece == RA - 1 && s.ahead.bias != nullptr)  // the bias last, as gemm_panels adds it
#pragma GCC unroll 4
    for (int r = 0; r < RA; ++r)
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c)
        acc_a[r][c] = vadd(acc_a[r][c], vload(s.ahead.bias + q * NV * 16 + c * kVecLanes));
#pragma GCC unroll 4
  for (int r = 0; r < RA; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) vstore(gx + r * s.ld_gx + c * kVecLanes, acc_a[r][c]);
}

// Packed vectors (gates) a step tile of R rows takes at once: all NV when their
// R · NV · kSub · KS accumulators fit the ISA's budget (AVX-512 always), else the largest
// divisor of NV that fits (AVX2 from 2 rows on: 6 rows × 1 gate = 12 ymm accumulators).
template <int NV, int R, int KS>
constexpr int step_gates() {
  for (int g = NV; g > 1; --g)
    if (NV % g == 0 && R * g * kSub * KS <= kStepAccumulators) return g;
  return 1;
}

// Whether this step walks its panels backwards (for_step_panels).
FASTRNN_INLINE bool step_walks_backwards(const StepArgs& s) { return ((s.t + s.sweep) & 1) != 0; }

// Calls body(i, p, w) for the panels a step visits, the i-th visit on panel p with packed
// weights w, after the panel's own input projection where the step computes it.
// Odd steps walk the panels backwards: W_hh is read cyclically, and a cyclic sweep over a
// working set a little larger than the cache misses on every line under LRU, while a
// back-and-forth sweep starts on what the previous step left in cache. The panel order
// never changes a result (each panel is independent). Calls of one step alternate through
// s.sweep, so a stream's steps zigzag too; with in.gx each panel's input projection comes
// right before it (see project_panel), so the sweep covers W_ih as well.
// kProject = false: the body computes the projection itself (int8: x quantised once a call).
template <int NV, bool kProject = true, class Body>
FASTRNN_INLINE void for_step_panels(const StepArgs& s, Body&& body) {
  const bool backwards = step_walks_backwards(s);
  for (int i = 0; i < s.p1 - s.p0; ++i) {
    const int p = backwards ? s.p1 - 1 - i : s.p0 + i;
    if (kProject && s.in.gx != nullptr) project_panel<NV>(s, p);
    // Reduced panels hold weight_rows(K) rows of dwords (kernels/reduced/reduced-dot.h).
    body(i, p, s.w + static_cast<ptrdiff_t>(p) * weight_rows(s.wf.type, s.K) * NV * 16);
  }
}

// Rows [b0, b0 + rows) of panel p when none is active: their state is carried, true.
template <int kUnits>
FASTRNN_INLINE bool carry_if_inactive(const StepArgs& s, int p, int b0, int rows) {
  for (int r = 0; r < rows; ++r)
    if (row_active(s, b0 + r)) return false;
  for (int r = 0; r < rows; ++r)
    for (int sub = 0; sub < kSub; ++sub) carry_row<kUnits>(s, p, b0 + r, sub);
  return true;
}

// Where one V holds a packed vector (kSub = 1), the ISA asks for it (kRowPairEpilogue) and
// the epilogue takes a VRowPair: rows b and b + 1 (has_next: b + 1 is in the block) through
// one call, when both are active; gate(i, v) gives V number v of row b + i's gate sums. Two rows'
// activation chains then run op by op (AVX-512, Sapphire Rapids-class Xeon, LSTM step in
// bench/anatomy.cc, B = 8, H = 256: 146 -> 155 GFLOP/s). True when it ran them.
template <int NV, class Epilogue, class Gate>
FASTRNN_INLINE bool row_pair_epilogue(const StepArgs& s, int p, int b, bool has_next,
                                      Epilogue& epilogue, Gate&& gate) {
  // Nested, so that ISAs without row pairs never instantiate an epilogue on VRowPair (not
  // even to ask whether it takes one).
  if constexpr (kRowPairEpilogue && kSub == 1) {
    if constexpr (std::is_invocable_v<Epilogue&, int, int, int, VRowPair(&)[NV]>) {
      if (has_next && row_active(s, b) && row_active(s, b + 1)) {
        VRowPair two[NV];
        for (int v = 0; v < NV; ++v) two[v] = {gate(0, v), gate(1, v)};
        epilogue(p, b, 0, two);
        return true;
      }
    }
  }
  return false;
}

// Accumulators start from zero: the recurrent sum W_hh·h is taken alone, and the input
// projection row (which holds the biases) is added to it afterwards (add_gx, in the
// epilogue). Starting the sum from G_x instead rounded each of its K partial sums at G_x's
// magnitude: against a float64 evaluation, that made fastrnn's error 1.6x torch's on
// heavy-tailed LSTM and ReLU RNN weights (geometric mean over 16 models, T = 300); summed
// apart, ~1.1x. One add per gate vector per step.
// Every step kernel passes ZeroSums as its init: a type of its own, so that a path whose
// sums would be written over zeros may write them instead (AMX blocks, step_panels_packed).
struct ZeroSums {
  template <int NV>
  FASTRNN_INLINE void operator()(int, int, int, V (&acc)[NV]) const {
    for (int v = 0; v < NV; ++v) acc[v] = vzero();
  }
};

// Gate sums of rows [b0, b0 + rows) of panel p kept in memory (sums: rows of NV·16 floats,
// in the panel's column order): started by init, then finished by the epilogue (or carried).
template <int NV, class Init>
FASTRNN_INLINE void sums_start(int p, int b0, int rows, float* sums, Init& init) {
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < kSub; ++j) {
      V row[NV];
      init(p, b0 + r, j, row);
      for (int v = 0; v < NV; ++v) vstore(sums + r * NV * 16 + 16 * v + j * kVecLanes, row[v]);
    }
}

template <int NV, int kUnits, class Epilogue>
FASTRNN_INLINE void sums_finish(const StepArgs& s, int p, int b0, int rows, const float* sums,
                                Epilogue& epilogue) {
  for (int r = 0; r < rows; ++r) {
    if (row_pair_epilogue<NV>(s, p, b0 + r, r + 1 < rows, epilogue,
                              [&](int i, int v) FASTRNN_INLINE_LAMBDA {
                                return vload(sums + (r + i) * NV * 16 + 16 * v);
                              })) {
      ++r;
      continue;
    }
    if constexpr (kSub > 1 && std::is_invocable_v<Epilogue&, int, int, int, VPair(&)[NV]>) {
      if (row_active(s, b0 + r)) {
        // Two V's of the row per call (see vload_units).
        for (int j = 0; j < kSub; j += 2) {
          VPair row[NV];
          for (int v = 0; v < NV; ++v)
            row[v] = vload_pair(sums + r * NV * 16 + 16 * v + j * kVecLanes);
          epilogue(p, b0 + r, j, row);
        }
        continue;
      }
    }
    for (int j = 0; j < kSub; ++j) {
      V row[NV];
      for (int v = 0; v < NV; ++v) row[v] = vload(sums + r * NV * 16 + 16 * v + j * kVecLanes);
      if (row_active(s, b0 + r))
        epilogue(p, b0 + r, j, row);
      else
        carry_row<kUnits>(s, p, b0 + r, j);
    }
  }
}

// The tile's dot products, from fp32 or (kBf16) bf16 panels: the same FMAs in the same order.
// kStream: fp32 weights from beyond the near cache, prefetched ahead (panel-dot.h).
// kStrips: fp32 weights in strips (WeightFormat::split) of K rows: the tile's vectors K · 16
// floats apart, kRow = 16.
template <int kRow, int C, int R, int KS, bool kBf16, bool kStream = false, bool kStrips = false>
FASTRNN_INLINE void step_dot(const float* w, int K, const float* a, ptrdiff_t lda, V (&acc)[R][C]) {
  if constexpr (kBf16)
    panel_dot_bf16<kRow, C, R, KS>(reinterpret_cast<const uint32_t*>(w), K, a, lda, acc);
  else
    panel_dot<kRow, C, R, KS, kStream, kStrips>(w, K, a, lda, acc, 0,
                                                static_cast<ptrdiff_t>(K) * 16);
}

// kStream: W_hh comes from beyond the near cache (StepArgs::far_weights). With several row
// blocks per panel, each block prefetches into the L2 its share of the next panel's
// weights, spread over its k loop, so that the far stream runs through the whole panel's
// time and not only its first block's (the first block read its panel at the far cache's
// speed, the others from the L2); a single block of up to 4 rows prefetches its own
// weights ahead instead. The same FMAs in the same order.
// kStrips: W_hh in strips (WeightFormat::split; the ISA's kGemmStrips), read by the same
// tiles in the same order: the same bits. Row k of packed vector g of a panel lies at
// 16 · NV · k + 16 g, or in strips at 16 · (K g + k): a row of NV · 16 floats, or of 16.
// (Written out where it is used, not held in a local: GCC captured such a constant in the
// generic lambdas below, which changed the code of every ISA's steps.)
template <int NV, int kUnits, int kMaxR, int KS, bool kAhead, bool kBf16 = false,
          bool kStream = false, bool kStrips = false, class Init, class Epilogue>
FASTRNN_INLINE void step_panels_blocked(const StepArgs& s, Init&& init, Epilogue&& epilogue) {
  static_assert(!kStrips || (!kAhead && !kBf16 && !kStream), "strips: the plain fp32 tiles");
  for_step_panels<NV>(s, [&](int i, int p, const float* w) {
    // The next panel's lines (fp32: K rows of NV · 64 bytes), or none.
    [[maybe_unused]] uintptr_t next_at = 0;
    [[maybe_unused]] int next_lines = 0;
    if constexpr (kStream) {
      if (i + 1 < s.p1 - s.p0 && s.b1 - s.b0 > kMaxR) {
        const ptrdiff_t panel = static_cast<ptrdiff_t>(s.K) * NV * 16;
        next_at = reinterpret_cast<uintptr_t>(w + (step_walks_backwards(s) ? -panel : panel));
        next_lines = s.K * NV;
      }
    }
    for_row_blocks<kMaxR>(s.b0, s.b1, [&](auto rows, int b0) {
      constexpr int R = decltype(rows)::value;
      // This block's share of the next panel: lines [l0, l1), by its rows.
      [[maybe_unused]] NextPanelShare next;
      if constexpr (kStream) {
        const int n = s.b1 - s.b0;
        const int l0 = static_cast<int>(static_cast<int64_t>(b0 - s.b0) * next_lines / n);
        const int l1 = static_cast<int>(static_cast<int64_t>(b0 + R - s.b0) * next_lines / n);
        next = {next_at + 64 * static_cast<uintptr_t>(l0), l1 - l0};
      }
      if (carry_if_inactive<kUnits>(s, p, b0, R)) return;
      // init and epilogue see copies: if the accumulators' address escaped into a lambda
      // that is not inlined, GCC would keep them on the stack inside the k loop (measured:
      // 2.2x slower LSTM steps at B=64).
      constexpr int kG = step_gates<NV, R, KS>();
      if constexpr (kG == NV) {
        // The whole panel in registers: init, dot products, epilogue.
        V acc[R][NV * kSub];
        for (int r = 0; r < R; ++r)
          for (int j = 0; j < kSub; ++j) {
            V row[NV];
            init(p, b0 + r, j, row);
            for (int v = 0; v < NV; ++v) acc[r][v * kSub + j] = row[v];
          }
        if constexpr (kAhead && R == 1)
          step_dot_ahead<NV, KS, kAheadRows>(s, w, b0, i, acc);
        else if constexpr (kStream && !kBf16 && KS == 1)
          panel_dot_next<NV * 16, NV * kSub, R>(w, s.K, s.h_prev + b0 * s.ld_h_prev, s.ld_h_prev,
                                                acc, next);
        else
          step_dot<kStrips ? 16 : NV * 16, NV * kSub, R, KS, kBf16, kStream && R <= 4, kStrips>(
              w, s.K, s.h_prev + b0 * s.ld_h_prev, s.ld_h_prev, acc);
        for (int r = 0; r < R; ++r) {
          if (row_pair_epilogue<NV>(s, p, b0 + r, r + 1 < R, epilogue,
                                    [&](int i, int v)
                                        FASTRNN_INLINE_LAMBDA { return acc[r + i][v]; })) {
            ++r;
            continue;
          }
          for (int j = 0; j < kSub; ++j) {
            V row[NV];
            for (int v = 0; v < NV; ++v) row[v] = acc[r][v * kSub + j];
            if (row_active(s, b0 + r))
              epilogue(p, b0 + r, j, row);
            else
              carry_row<kUnits>(s, p, b0 + r, j);
          }
        }
      } else {
        // kG gates at a time, the block's gate sums kept in L1 between the groups (the
        // same FMAs in the same order: each sum continues from the stored value). Each
        // group reads only its own columns of W, so the panel is read once per block.
        alignas(64) float sums[R][NV * 16];
        sums_start<NV>(p, b0, R, &sums[0][0], init);
        for (int g0 = 0; g0 < NV; g0 += kG) {
          V acc[R][kG * kSub];
          for (int r = 0; r < R; ++r)
            for (int c = 0; c < kG * kSub; ++c)
              acc[r][c] = vload(&sums[r][16 * g0 + c * kVecLanes]);
          step_dot<kStrips ? 16 : NV * 16, kG * kSub, R, KS, kBf16, kStream && R <= 4, kStrips>(
              w + (kStrips ? static_cast<ptrdiff_t>(s.K) * 16 : 16) * g0, s.K,
              s.h_prev + b0 * s.ld_h_prev, s.ld_h_prev, acc);
          for (int r = 0; r < R; ++r)
            for (int c = 0; c < kG * kSub; ++c)
              vstore(&sums[r][16 * g0 + c * kVecLanes], acc[r][c]);
        }
        sums_finish<NV, kUnits>(s, p, b0, R, &sums[0][0], epilogue);
      }
    });
  });
}

// Many rows on ISAs whose registers hold less than a panel's gates for a tall row block
// (AVX2): blocks of up to kStepSumRows rows take the GEMM's path (panel_accumulate: one
// gate's 16 columns × 6 rows per tile, depth blocks, the tile's weights in L1 while the
// block's rows pass) into gate sums on the stack, then the epilogue runs row by row. The
// sums take the same FMAs in the same order as in registers: the same bits.
// bf16 panels take it on every ISA from kBf16SummedRows rows of a slice on (kRows rows per block),
// through panel_accumulate_bf16.
template <int NV, int kUnits, int kRows, bool kBf16, bool kStream = false, class Init,
          class Epilogue>
FASTRNN_INLINE void step_panels_summed(const StepArgs& s, Init&& init, Epilogue&& epilogue) {
  for_step_panels<NV>(s, [&](int, int p, const float* w) {
    for (int b0 = s.b0; b0 < s.b1; b0 += kRows) {
      const int rows = s.b1 - b0 < kRows ? s.b1 - b0 : kRows;
      if (carry_if_inactive<kUnits>(s, p, b0, rows)) continue;
      alignas(64) float sums[kRows][NV * 16];
      sums_start<NV>(p, b0, rows, &sums[0][0], init);
      const float* h = s.h_prev + b0 * s.ld_h_prev;
      if constexpr (kBf16)
        panel_accumulate_bf16<NV>(reinterpret_cast<const uint32_t*>(w), s.K, h, s.ld_h_prev, rows,
                                  &sums[0][0], NV * 16);
      else if (s.wf.split)
        panel_accumulate_strips<NV, kStream>(w, s.K, h, s.ld_h_prev, rows, &sums[0][0], NV * 16,
                                             nullptr, false);
      else
        panel_accumulate<NV, kStream>(w, s.K, h, s.ld_h_prev, rows, &sums[0][0], NV * 16);
      sums_finish<NV, kUnits>(s, p, b0, rows, &sums[0][0], epilogue);
    }
  });
}

// Weights that take packed activations (int8; bf16 on the VDPBF16PS table: few-row steps, and
// every step where bf16_all_rows: AMX tiles, or VDPBF16PS where it is fast;
// kernels/reduced/reduced-dot.h): the rows [b0, b1) are packed
// (int8: quantised) in groups that fit a stack buffer, each group once per call (and, for a
// step that projects its own inputs with packed x, the group's x rows too); then, panel by
// panel, row blocks (AMX blocks of up to 32 rows where the tiles serve: bf16 on AMX-BF16 for
// every call, int8 on AMX-INT8 from kAmxMinRowsInt8 rows; else up to kRedRows): a
// step's own input projection (the values the GEMM would give: gemm_packed, or for bf16
// in few-row mode the widened weights on x itself), gate sums started by init, plus the reduced
// sums, then the epilogue (or the carry; a batch-1 GRU step on ISAs with kRedEpilogueGroup > 1
// runs the epilogues of that many panels together, after their dot products). Each row's
// sums depend on its own values only, never on the blocking or the thread split.
template <int NV, int kUnits, class Init, class Epilogue>
FASTRNN_NOINLINE void step_panels_packed(const StepArgs& s, Init&& init, Epilogue&& epilogue) {
  const WeightType type = s.wf.type;
  const int Kd = weight_rows(type, s.K), Kx = weight_rows(type, s.in.K);
  // Packed activation rows' strides (act_rows: int8 rows may carry |q_a| too).
  const int Ka = act_rows(type, s.K), Kxa = act_rows(type, s.in.K);
  int group = red_group_rows(type, s.K);
  if (s.in.gx != nullptr && red_group_rows(type, s.in.K) < group)
    group = red_group_rows(type, s.in.K);
  alignas(64) uint32_t buf[kRedBufDwords];
  alignas(64) uint32_t xbuf[kRedBufDwords];
  float sa[kRedMaxGroupRows], sx[kRedMaxGroupRows];
  const bool packed_x = s.in.gx != nullptr && (type == WeightType::kInt8 || bf16_all_rows(s.in.wf));
  // Sums that start from zero are written, not added to zeros stored first (red_panel's
  // kWrite; the AMX blocks' `add` below): the same values, since no sum is −0.
  constexpr bool kFromZero = std::is_same_v<std::decay_t<Init>, ZeroSums>;
  for (int r0 = s.b0; r0 < s.b1; r0 += group) {
    const int r1 = s.b1 - r0 < group ? s.b1 : r0 + group;
    pack_rows(type, s.h_prev + r0 * s.ld_h_prev, s.ld_h_prev, r1 - r0, s.K, buf, sa);
    if (packed_x) pack_rows(type, s.in.x + r0 * s.in.ldx, s.in.ldx, r1 - r0, s.in.K, xbuf, sx);
    // AMX blocks of up to 32 rows for every row (int8 on AMX-INT8, bf16 on AMX-BF16).
    const bool amx = amx_int8(s.wf, Kd, r1 - r0) || bf16_amx(s.wf);
    const bool xamx = packed_x && (amx_int8(s.in.wf, Kx, r1 - r0) || bf16_amx(s.in.wf));
    // G_x rows [b, b + M) of panel p: the step's own input projection, as the GEMM computes
    // them (gemm_packed, or for bf16 in few-row mode the widened weights on x itself).
    const auto project = [&](int p, int b, int M) {
      const uint32_t* wx = red_panel_at(s.in.w, type, s.in.K, NV, p);
      const float* bias = s.in.bias != nullptr ? s.in.bias + p * NV * 16 : nullptr;
      float* out = s.in.gx + b * s.ld_gx + p * NV * 16;
      if (xamx) {
        amx_block<NV>(s.in.wf, wx, Kx, xbuf, sx, b - r0, p, M, {out, s.ld_gx, bias, false});
      } else if (!packed_x) {  // bf16, weight-only on x
        gemm_bf16_few_rows<NV>(wx, s.in.K, s.in.x + b * s.in.ldx, s.in.ldx, M, out, s.ld_gx, bias);
      } else {
        for_row_blocks<kRedRows>(b, b + M, [&](auto rows, int b0) {
          constexpr int R = decltype(rows)::value;
          alignas(64) float gx[R][NV * 16];
          red_panel<NV, R, true>(s.in.wf, wx, Kx, xbuf + (b0 - r0) * Kxa, Kxa, sx + (b0 - r0), p,
                                 true, gx);
          rows_store<NV * 16>(&gx[0][0], R, bias, s.in.gx + b0 * s.ld_gx + p * NV * 16, s.ld_gx);
        });
      }
    };
    if (kRedEpilogueGroup > 1 && NV == 3 && r1 - r0 == 1 && !amx) {
      // A batch-1 GRU step: the epilogues kRedEpilogueGroup panels at a time (rvec-*.h).
      alignas(64) float sums[kRedEpilogueGroup][1][NV * 16];
      int pending[kRedEpilogueGroup], n = 0;
      const auto finish = [&] {
        for (int j = 0; j < n; ++j)
          sums_finish<NV, kUnits>(s, pending[j], r0, 1, &sums[j][0][0], epilogue);
        n = 0;
      };
      for_step_panels<NV, false>(s, [&](int, int p, const float*) {
        if (s.in.gx != nullptr) project(p, r0, 1);
        if (carry_if_inactive<kUnits>(s, p, r0, 1)) return;
        if constexpr (!kFromZero) sums_start<NV>(p, r0, 1, &sums[n][0][0], init);
        red_panel<NV, 1, kFromZero>(s.wf, red_panel_at(s.w, type, s.K, NV, p), Kd, buf, Ka, sa, p,
                                    s.many_rows || s.b1 - s.b0 > 1, sums[n]);
        pending[n++] = p;
        if (n == kRedEpilogueGroup) finish();
      });
      finish();
      continue;
    }
    for_step_panels<NV, false>(s, [&](int, int p, const float*) {
      const uint32_t* w = red_panel_at(s.w, type, s.K, NV, p);
      int b = r0;
      for (; amx && b < r1; b += kAmxRows) {
        const int M = r1 - b < kAmxRows ? r1 - b : kAmxRows;
        if (s.in.gx != nullptr) project(p, b, M);
        if (carry_if_inactive<kUnits>(s, p, b, M)) continue;
        alignas(64) float sums[kAmxRows][NV * 16];
        // (8 KiB of zeros for 32 rows of LSTM; B = 64, H = 512, 2 layers: int8 GRU at 2
        // threads took 0.89x the time without them, int8 LSTM at 1 thread level, bf16 LSTM
        // 0.97x.)
        if constexpr (!kFromZero) sums_start<NV>(p, b, M, &sums[0][0], init);
        amx_block<NV>(s.wf, w, Kd, buf, sa, b - r0, p, M,
                      {&sums[0][0], NV * 16, nullptr, !kFromZero});
        sums_finish<NV, kUnits>(s, p, b, M, &sums[0][0], epilogue);
      }
      for_row_blocks<kRedRows>(b, r1, [&](auto rows, int b0) {
        constexpr int R = decltype(rows)::value;
        if (s.in.gx != nullptr) project(p, b0, R);
        if (carry_if_inactive<kUnits>(s, p, b0, R)) return;
        alignas(64) float sums[R][NV * 16];
        if constexpr (!kFromZero) sums_start<NV>(p, b0, R, &sums[0][0], init);
        // Two chains only for a batch of one row: a batch of 2 or 3 may fall into blocks of
        // one row where a short x group splits it (a stream step of a wide input), and must
        // give forward's bits, whose block holds the whole batch.
        red_panel<NV, R, kFromZero>(s.wf, w, Kd, buf + (b0 - r0) * Ka, Ka, sa + (b0 - r0), p,
                                    s.many_rows || s.b1 - s.b0 > 1, sums);
        sums_finish<NV, kUnits>(s, p, b0, R, &sums[0][0], epilogue);
      });
    });
  }
}

// Many fp32 rows: the ISA's tallest step tile (step_rows_many), or its GEMM tiles into gate
// sums where its registers hold less (kStepSumRows); kStream: W_hh prefetched (far_weights).
template <int NV, int kUnits, bool kStream, class Init, class Epilogue>
FASTRNN_INLINE void step_panels_many(const StepArgs& s, Init& init, Epilogue& epilogue) {
  if constexpr (kStepSumRows > 0)
    step_panels_summed<NV, kUnits, kStepSumRows, false, kStream>(s, init, epilogue);
  else
    step_panels_blocked<NV, kUnits, step_rows_many<NV>(), 1, false, false, kStream>(s, init,
                                                                                    epilogue);
}

// Few rows (batch 1 to 3): kStepRows rows, K split in two chains where the ISA hides FMA
// latency that way (kStepSplitK). Many rows: the ISA's tallest step tile
// (step_rows_many), which reads each weight vector once per block of rows.
// The choice depends on the whole batch (s.many_rows), never on the thread's slice, so the
// result of a row is the same for any thread count (weight-only bf16 picks its many-row
// kernel by the slice: both give the same bits).
template <int NV, int kUnits, class Init, class Epilogue>
FASTRNN_INLINE void step_panels(const StepArgs& s, Init&& init, Epilogue&& epilogue) {
  if (s.wf.type == WeightType::kInt8 || bf16_all_rows(s.wf) ||
      (packed_activations(s.wf.type) && !s.many_rows)) {
    step_panels_packed<NV, kUnits>(s, init, epilogue);
    return;
  }
  // bf16 weight-only (tables without VDPBF16PS; many rows on the avx512bf16 table where
  // neither AMX nor a fast VDPBF16PS serves): the fp32 loops on widened weights (the same bits as
  // fp32 on the rounded weights): few rows widen in registers (kStepSplitK chains, as fp32),
  // many rows too in blocks of kBf16StepRows (one chain, as fp32's many-row tiles), or, from
  // kBf16SummedRows rows of a thread's slice on, a depth block at a time (gemm.h). Either gives
  // the same bits, so the choice may follow the slice. (Batched calls of several steps run
  // the fp32 kernels on a once-widened copy instead: ops/forward-plan.cc bf16_widen.)
  if (s.wf.type == WeightType::kBf16) {
    if (s.many_rows && s.b1 - s.b0 >= kBf16SummedRows)
      step_panels_summed<NV, kUnits, 64, true>(s, init, epilogue);
    else if (s.many_rows)
      step_panels_blocked<NV, kUnits, kBf16StepRows, 1, false, true>(s, init, epilogue);
    else
      step_panels_blocked<NV, kUnits, kStepRows, kStepSplitK, false, true>(s, init, epilogue);
    return;
  }
  if (s.many_rows) {
    if (s.far_weights)
      step_panels_many<NV, kUnits, true>(s, init, epilogue);
    else
      step_panels_many<NV, kUnits, false>(s, init, epilogue);
    return;
  }
  if constexpr (kAheadRows > 0) {
    if (s.ahead.gx != nullptr) {  // its own copy: the plain loop's code stays as it was
      step_panels_blocked<NV, kUnits, kStepRows, kStepSplitK, true>(s, init, epilogue);
      return;
    }
  }
  // Batch 1 to 3 with far weights takes no prefetch: lat_lstm_1024 (16 MiB of W_hh) was
  // 1.09x the time with it at 1 thread, 1.06x at 2 (AVX-512's two chains, A/B alternating).
  if constexpr (kGemmStrips) {
    if (s.wf.split) {
      step_panels_blocked<NV, kUnits, kStepRows, kStepSplitK, false, false, false, true>(s, init,
                                                                                         epilogue);
      return;
    }
  }
  step_panels_blocked<NV, kUnits, kStepRows, kStepSplitK, false>(s, init, epilogue);
}

// acc[v] += G_x row b, V number `sub` of each of panel p's NV packed vectors (a VPair: and
// number sub + 1).
template <int NV, class W>
FASTRNN_INLINE void add_gx(const StepArgs& s, int p, int b, int sub, W (&acc)[NV]) {
  const float* gx = s.gx + b * s.ld_gx + p * NV * 16 + sub * kVecLanes;
  for (int v = 0; v < NV; ++v) acc[v] = vadd(acc[v], vload_units<W>(gx + 16 * v, s.ld_gx));
}
