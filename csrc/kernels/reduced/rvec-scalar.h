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
struct VAb {
  float hi, lo;
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
inline VAb vbcast_bf16(uint32_t pair) { return {bf16_hi(pair), bf16_lo(pair)}; }
inline V vdot_bf16(V acc, VW w, VAb a) {
  for (int i = 0; i < 16; ++i) {
    acc.v[i] = std::fma(bf16_hi(w.v[i]), a.hi, acc.v[i]);
    acc.v[i] = std::fma(bf16_lo(w.v[i]), a.lo, acc.v[i]);
  }
  return acc;
}

constexpr int kRedAccumulators = 16;
constexpr int kRedRows = 4;
