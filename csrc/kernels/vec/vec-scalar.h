// 16-lane float "vector" in plain C++: the fallback on any CPU (ARM64 included) and the
// oracle the SIMD kernels are tested against. Same operations, same NaN rules.
// Included inside an anonymous namespace by kernels-scalar.cc only (internal linkage).

struct V {
  float v[16];
};
struct VMask {
  bool m[16];
};

// One V holds a whole 16-float packed vector (types.h). The tiles only decide the order of
// work here (the compiler vectorises what it can); sums run in one chain, like AVX2's.
constexpr int kVecLanes = 16;
constexpr int kGemmRows = 4;
constexpr int kGemmGates = 4;
constexpr int kDotUnroll = 1;
constexpr int kGemmDepth = 1 << 30;
constexpr bool kGemmPrefetch = false;
constexpr bool kGemmStrips = false;    // W_ih, W_hh in whole panel rows (gemm.h)
constexpr int kStepAccumulators = 16;  // whole panels: 4 rows × 4 gates
constexpr int kStepRows = 1;
constexpr int kStepSplitK = 1;
constexpr int kStepSumRows = 0;  // many-row steps keep a whole panel's gates in registers
// No VRowPair epilogues (vec-avx512.h): the oracle gains nothing from them, and each one is
// another instantiation of the epilogue on 16-float arrays to compile.
constexpr bool kRowPairEpilogue = false;
// Many-row tiles that stream far weights hold whole panel rows: each prefetches its own
// (no shares of the next depth block, vec-avx2.h).
constexpr bool kStreamNextBlock = false;
template <int NV>
constexpr int step_rows_many() {
  return kGemmRows;
}
// One row: the input projection ahead gains nothing here, but the oracle runs the same
// bookkeeping as AVX-512's, so every machine's tests cover it.
constexpr int kAheadRows = 1;
// Weight-only bf16 steps of 4+ rows (step-driver.h): register blocks of kBf16StepRows rows
// below kBf16SummedRows rows per thread, the GEMM's tiles above (both paths, same bits).
constexpr int kBf16StepRows = 4;
constexpr int kBf16SummedRows = 32;

#define FASTRNN_LANES(expr)                     \
  V r;                                          \
  for (int i = 0; i < 16; ++i) r.v[i] = (expr); \
  return r

inline V vload(const float* p) { FASTRNN_LANES(p[i]); }
inline void vstore(float* p, V a) {
  for (int i = 0; i < 16; ++i) p[i] = a.v[i];
}
inline void vstore_n(float* p, V a, int n) {
  for (int i = 0; i < n; ++i) p[i] = a.v[i];
}
inline V vset1(float x) { FASTRNN_LANES(x); }
inline V vzero() { FASTRNN_LANES(0.0f); }
inline V vadd(V a, V b) { FASTRNN_LANES(a.v[i] + b.v[i]); }
inline V vsub(V a, V b) { FASTRNN_LANES(a.v[i] - b.v[i]); }
inline V vmul(V a, V b) { FASTRNN_LANES(a.v[i] * b.v[i]); }
inline V vdiv(V a, V b) { FASTRNN_LANES(a.v[i] / b.v[i]); }
inline V vfma(V a, V b, V c) { FASTRNN_LANES(std::fma(a.v[i], b.v[i], c.v[i])); }
inline V vmin(V a, V b) { FASTRNN_LANES(a.v[i] < b.v[i] ? a.v[i] : b.v[i]); }
inline V vmax(V a, V b) { FASTRNN_LANES(a.v[i] > b.v[i] ? a.v[i] : b.v[i]); }
inline V vabs(V a) { FASTRNN_LANES(std::fabs(a.v[i])); }
inline V vcopysign(V a, V s) { FASTRNN_LANES(std::copysign(a.v[i], s.v[i])); }
inline VMask vlt(V a, V b) {
  VMask m;
  for (int i = 0; i < 16; ++i) m.m[i] = a.v[i] < b.v[i];
  return m;
}
inline V vselect(VMask m, V t, V f) { FASTRNN_LANES(m.m[i] ? t.v[i] : f.v[i]); }
inline V vround(V a) { FASTRNN_LANES(std::nearbyint(a.v[i])); }
inline float exp2i_lane(float n) {
  // n is integral in [-127, 127]; NaN lanes give any value (the caller's NaN dominates).
  const int32_t e = (n == n) ? static_cast<int32_t>(n) + 127 : 0;
  const uint32_t bits = static_cast<uint32_t>(e) << 23;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline V vexp2i(V n) { FASTRNN_LANES(exp2i_lane(n.v[i])); }
inline V vhalf_floor(V n) { FASTRNN_LANES(std::floor(n.v[i] * 0.5f)); }

#undef FASTRNN_LANES
