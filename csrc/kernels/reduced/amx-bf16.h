// bf16 sums on AMX tiles (Sapphire Rapids on), for blocks of up to 32 rows: each row's sums
// depend on that row alone (a tile's rows are independent), so the blocking of the rows never
// changes a result.
// Math:     c[r][j] = Σ_k a[r][k] · w[k][j] over the first kq k-pairs (kq a multiple of 16),
//           bf16 operands, each product exact, accumulated in fp32 in TDPBF16PS's order; the
//           caller adds the remaining pairs (amx_bf16_panel in reduced-dot.h).
// Layout:   a: rows of bf16 pairs (dwords), row stride lda bytes; w: a packed bf16 panel (rows
//           of NV·16 dwords, reduced-dot.h); c: M rows of NV·16 floats.
//           Tiles, each up to 16 rows × 64 bytes: C 0–3 (2 row blocks × 2 blocks of 16
//           columns), A 4–5 (the row blocks' 16 pairs), B 6–7 (16 pairs × 16 columns, row
//           stride one panel row). A and C tiles hold only the block's M rows.
// Used only where the CPU has AMX-BF16 and Linux granted the tile state (WeightFormat::amx,
// cpu/cpu-features.cc). Included inside the avx512bf16 table's anonymous namespace.

#define FASTRNN_AMX_BF16 1
constexpr bool kHasAmxBf16 = true;

template <int NV>
__attribute__((target("amx-tile,amx-bf16"), noinline)) void amx_bf16_rows(const uint32_t* a,
                                                                          int lda,
                                                                          const uint32_t* w, int kq,
                                                                          int M, float* c) {
  constexpr int kRow = NV * 16;
  const int m0 = M < 16 ? M : 16, m1 = M - m0;
  AmxConfig cfg{};
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    const bool second = t == 2 || t == 3 || t == 5;  // the tiles of rows 16 .. M − 1
    cfg.rows[t] = t >= 6 ? 16 : second ? m1 : m0;
    cfg.colsb[t] = cfg.rows[t] > 0 ? 64 : 0;
  }
  _tile_loadconfig(&cfg);
  const char* a1 = reinterpret_cast<const char*>(a) + 16 * lda;
  for (int cb = 0; cb < NV; cb += 2) {
    const uint32_t* wb = w + 16 * cb;
    float* cc = c + 16 * cb;
    const bool pair = cb + 1 < NV;
    _tile_zero(0);
    if (pair) _tile_zero(1);
    if (m1 > 0) {
      _tile_zero(2);
      if (pair) _tile_zero(3);
    }
    for (int k = 0; k < kq; k += 16) {
      _tile_loadd(4, a + k, lda);
      _tile_loadd(6, wb + k * kRow, kRow * 4);
      _tile_dpbf16ps(0, 4, 6);
      if (m1 > 0) {
        _tile_loadd(5, a1 + 4 * k, lda);
        _tile_dpbf16ps(2, 5, 6);
      }
      if (pair) {
        _tile_loadd(7, wb + k * kRow + 16, kRow * 4);
        _tile_dpbf16ps(1, 4, 7);
        if (m1 > 0) _tile_dpbf16ps(3, 5, 7);
      }
    }
    _tile_stored(0, cc, kRow * 4);
    if (pair) _tile_stored(1, cc + 16, kRow * 4);
    if (m1 > 0) {
      _tile_stored(2, cc + 16 * kRow, kRow * 4);
      if (pair) _tile_stored(3, cc + 16 * kRow + 16, kRow * 4);
    }
  }
  _tile_release();
}
