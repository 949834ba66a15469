// int8 and bf16 sums on AMX tiles (Sapphire Rapids on), for blocks of up to 32 rows. A tile's
// rows are independent, so a row's sums never depend on the other rows of its block.
// Math:     int8: c[r][j] = Σ_k u8(q_a[r][k] + 128) · q_w[k][j] over the first kq k-quads (kq
//           a multiple of 16), int32, exact: the same integer sums as VPDPBUSD; the caller adds
//           the remaining quads and takes 128 · Σ_k q_w back out (amx_panel, reduced-dot.h).
//           bf16: c[r][j] = Σ_k a[r][k] · w[k][j] over the first kq k-pairs, bf16 operands,
//           each product exact, accumulated in fp32 in TDPBF16PS's order; the caller adds the
//           remaining pairs by VDPBF16PS (amx_bf16_panel).
// Layout:   a: M rows of quads / pairs (dwords), row stride lda bytes; w: a packed reduced panel
//           (rows of NV·16 dwords, reduced-dot.h); c: M rows of NV·16 int32 / floats.
//           Tiles, each up to 16 rows × 64 bytes: C 0–3 (2 row blocks × 2 blocks of 16
//           columns), A 4–5 (the row blocks' 16 dwords), B 6–7 (16 dwords × 16 columns, row
//           stride one panel row). A and C tiles hold only the block's rows (amx_config).
// Used only where the CPU has the AMX instructions and Linux granted the tile state
// (WeightFormat::amx, cpu/cpu-features.cc). Included inside the avx512vnni and avx512bf16
// tables' anonymous namespaces.

#define FASTRNN_AMX 1
constexpr bool kHasAmx = true;

struct alignas(64) AmxConfig {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Loads the tile configuration of blocks of M rows (1 ≤ M ≤ 32).
__attribute__((target("amx-tile"), noinline)) void amx_config(int M) {
  const int m0 = M < 16 ? M : 16, m1 = M - m0;
  AmxConfig cfg{};
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    const bool second = t == 2 || t == 3 || t == 5;  // the tiles of rows 16 .. M − 1
    cfg.rows[t] = t >= 6 ? 16 : second ? m1 : m0;
    cfg.colsb[t] = cfg.rows[t] > 0 ? 64 : 0;
  }
  // GCC 12 drops the stores above (LDTILECFG's operand is not seen as read) unless told.
  __asm__ volatile("" : : "m"(cfg) : "memory");
  _tile_loadconfig(&cfg);
}

__attribute__((target("amx-tile"), noinline)) void amx_release() { _tile_release(); }

#define FASTRNN_AMX_TARGET target("amx-tile,amx-int8,amx-bf16")

// C tile += A tile · B tile: TDPBF16PS (bf16) or TDPBUSD (int8). (A macro: the intrinsics
// take the tile numbers as literal text.)
#define FASTRNN_TILE_DOT(C, A, B) \
  if constexpr (kBf16)            \
    _tile_dpbf16ps(C, A, B);      \
  else                            \
    _tile_dpbusd(C, A, B)

// c = the M configured rows' sums over the first kq dwords of their k groups (int8: a holds
// q + 128, as VPDPBUSD reads it; int32 c), bf16: float c. Only the instructions the CPU has
// run: int8 on AMX-INT8, bf16 on AMX-BF16 (WeightFormat::amx).
template <int NV, bool kBf16, class CT>
__attribute__((FASTRNN_AMX_TARGET, noinline)) void amx_rows(const uint32_t* a, int lda,
                                                            const uint32_t* w, int kq, int M,
                                                            CT* c) {
  constexpr int kRow = NV * 16;
  const bool two = M > 16;
  const char* a0 = reinterpret_cast<const char*>(a);
  const char* a1 = a0 + 16 * lda;
  for (int cb = 0; cb < NV; cb += 2) {
    const uint32_t* wb = w + 16 * cb;
    CT* cc = c + 16 * cb;
    const bool pair = cb + 1 < NV;
    _tile_zero(0);
    if (pair) _tile_zero(1);
    if (two) {
      _tile_zero(2);
      if (pair) _tile_zero(3);
    }
    for (int k = 0; k < kq; k += 16) {
      _tile_loadd(4, a0 + 4 * k, lda);
      _tile_loadd(6, wb + k * kRow, kRow * 4);
      FASTRNN_TILE_DOT(0, 4, 6);
      if (two) {
        _tile_loadd(5, a1 + 4 * k, lda);
        FASTRNN_TILE_DOT(2, 5, 6);
      }
      if (pair) {
        _tile_loadd(7, wb + k * kRow + 16, kRow * 4);
        FASTRNN_TILE_DOT(1, 4, 7);
        if (two) {
          FASTRNN_TILE_DOT(3, 5, 7);
        }
      }
    }
    _tile_stored(0, cc, kRow * 4);
    if (pair) _tile_stored(1, cc + 16, kRow * 4);
    if (two) {
      _tile_stored(2, cc + 16 * kRow, kRow * 4);
      if (pair) _tile_stored(3, cc + 16 * kRow + 16, kRow * 4);
    }
  }
}
#undef FASTRNN_TILE_DOT
#undef FASTRNN_AMX_TARGET
