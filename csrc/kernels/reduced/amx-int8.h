// int8 sums on AMX tiles (Sapphire Rapids on), for blocks of 32 rows: the same integer sums
// as VPDPBUSD, so whether a call uses them never changes a result.
// Math:     c[r][j] = Σ_k u8(q_a[r][k] + 128) · q_w[k][j] over the first kq k-quads (kq a
//           multiple of 16); the caller adds the remaining quads and takes 128 · Σ_k q_w
//           back out (red_finish in reduced-dot.h), exactly as for VPDPBUSD.
// Layout:   a: 32 rows of u8 quads, row stride lda bytes; w: a packed int8 panel (rows of
//           NV·16 dwords, reduced-dot.h); c: 32 rows of NV·16 int32.
//           Tiles, each 16 rows × 64 bytes: C 0–3 (2 row blocks × 2 blocks of 16 columns),
//           A 4–5 (the row blocks' 16 quads), B 6–7 (16 quads × 16 columns, row stride one
//           panel row).
// Used only where the CPU has AMX-INT8 and Linux granted the tile state (WeightFormat::amx,
// cpu/cpu-features.cc). Included inside the avx512vnni table's anonymous namespace.

#define FASTRNN_AMX 1
constexpr bool kHasAmx = true;

struct alignas(64) AmxConfig {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

template <int NV>
__attribute__((target("amx-tile,amx-int8"), noinline)) void amx_i8_rows32(const uint8_t* a, int lda,
                                                                          const uint32_t* w, int kq,
                                                                          int32_t* c) {
  constexpr int kRow = NV * 16;
  AmxConfig cfg{};
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
  for (int cb = 0; cb < NV; cb += 2) {
    const uint32_t* wb = w + 16 * cb;
    int32_t* cc = c + 16 * cb;
    _tile_zero(0);
    _tile_zero(2);
    if (cb + 1 < NV) {
      _tile_zero(1);
      _tile_zero(3);
    }
    for (int k = 0; k < kq; k += 16) {
      _tile_loadd(4, a + 4 * k, lda);
      _tile_loadd(5, a + 16 * lda + 4 * k, lda);
      _tile_loadd(6, wb + k * kRow, kRow * 4);
      _tile_dpbusd(0, 4, 6);
      _tile_dpbusd(2, 5, 6);
      if (cb + 1 < NV) {
        _tile_loadd(7, wb + k * kRow + 16, kRow * 4);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(3, 5, 7);
      }
    }
    _tile_stored(0, cc, kRow * 4);
    _tile_stored(2, cc + 16 * kRow, kRow * 4);
    if (cb + 1 < NV) {
      _tile_stored(1, cc + 16, kRow * 4);
      _tile_stored(3, cc + 16 * kRow + 16, kRow * 4);
    }
  }
  _tile_release();
}
