// The reduced-precision vocabulary in plain C++ (see reduced.h): the oracle, 16 lanes.
// Included inside an anonymous namespace after vec-scalar.h.

struct VW {
  uint32_t v[16];
};
struct VI {
  int32_t v[16];
};
struct VAi {
  uint32_t v;
};

inline float bf16_hi(uint32_t d) {
  float f;
  const uint32_t u = d & 0xFFFF0000u;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float bf16_lo(uint32_t d) { return bf16_hi(d << 16); }

inline VW vload_w(const uint32_t* p) {
  VW r;
  for (int i = 0; i < 16; ++i) r.v[i] = p[i];
  return r;
}
inline VI vi_zero() { return VI{}; }
inline VI vi_add(VI a, VI b) {
  for (int i = 0; i < 16; ++i) a.v[i] += b.v[i];
  return a;
}
inline V vi_to_v(VI a) {
  V r;
  for (int i = 0; i < 16; ++i) r.v[i] = static_cast<float>(a.v[i]);
  return r;
}
inline VAi vbcast_i8(uint32_t quad) { return {quad}; }
inline VI vdot_i8(VI acc, VW w, VAi a) {
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 4; ++j)
      acc.v[i] += static_cast<int8_t>(w.v[i] >> (8 * j)) * static_cast<int8_t>(a.v >> (8 * j));
  return acc;
}
inline VI vi_finish(VI acc, const int32_t*) { return acc; }
inline VI vi_load(const int32_t* p) {
  VI r;
  for (int i = 0; i < 16; ++i) r.v[i] = p[i];
  return r;
}
constexpr uint32_t kI8Bias = 0;
// Activation rows without |q_a| beside them (rvec-avx2.h).
constexpr bool kI8AbsRow = false;
inline V vbf16_lo(VW w) {
  V r;
  for (int i = 0; i < 16; ++i) r.v[i] = bf16_lo(w.v[i]);
  return r;
}
inline V vbf16_hi(VW w) {
  V r;
  for (int i = 0; i < 16; ++i) r.v[i] = bf16_hi(w.v[i]);
  return r;
}
// Integer-valued floats in [−127, 127] to bytes.
inline void vstore_i8(int8_t* p, V q) {
  for (int i = 0; i < 16; ++i) p[i] = static_cast<int8_t>(q.v[i]);
}

constexpr int kRedAccumulators = 16;
// Independent int8 sum chains of a one-row tile (its dot instruction's latency over throughput).
constexpr int kRedChains = 1;
constexpr int kRedRows = 4;
// int8 weights in one 16-column sub-panel per vector of a panel (WeightFormat::split): not
// here (never measured against the whole panel rows); such a model still runs, the same sums.
constexpr bool kRedSplit = false;
// Tiles of several rows inlined into their row loops (reduced-dot.h red_sums_apart: not
// measured here).
constexpr bool kRedTileApart = false;
// GRU epilogues of a batch-1 step one panel at a time (the oracle keeps the plain order).
constexpr int kRedEpilogueGroup = 1;
