// VPair: two vectors of the including ISA as one value, for elementwise code that runs two
// independent dependency chains op by op (the activations of activations.h and the step
// epilogues that take it, see step-driver.h). Each operation maps onto each half; a plain
// V operand (a constant) serves both halves. The halves get the same operations as two V
// calls would, so the same bits.
// Why: an LSTM cell's activations are a chain of ~90 dependent operations per vector
// (tanh(g), then c', then tanh(c')): one vector at a time the core waits on latency. AMD
// Zen 4, FASTRNN_ISA=avx2, 1 thread, where the two V's of a row's 16 units go as one VPair
// (the many-row steps' gate sums, step-driver.h sums_finish): an LSTM step in
// bench/anatomy.cc, B = 32, H = 256, 85 -> 89 GFLOP/s; B = 64, H = 512, 90 -> 96. In the
// library, alternating processes, paired medians of the time: LSTM B = 32, I = H = 256,
// T = 64 0.967x; tput_gru_512 0.971x; bilstm_text 0.989x (not profiled further; a
// bidirectional layer's two W_hh, 2 MiB, do not stay in the 1 MiB L2 between steps). Where one V
// holds a packed vector's 16 units (AVX-512; not the scalar oracle: kRowPairEpilogue), the pair is
// the same V of two rows (VRowPair, step-driver.h row_pair_epilogue): Sapphire Rapids-class Xeon,
// AVX-512, 1 thread, alternating processes, paired medians of the time: tput_lstm_512 0.967x,
// bilstm_text 0.98x, tput_gru_512 0.99x. Included inside an ISA's anonymous namespace after its
// vec-*.h (no includes here).

// kRows false (VPair): V numbers sub and sub + 1 of one row (a row's consecutive units);
// true (VRowPair): V number sub of two consecutive rows (AVX-512's many-row steps, where one
// V holds a packed vector's 16 units). Distinct types, so an epilogue's loads and stores
// know which addresses the halves come from (step-driver.h vload_units).
template <bool kRows>
struct VPairOf {
  V a, b;
};
using VPair = VPairOf<false>;
using VRowPair = VPairOf<true>;
struct VPairMask {
  VMask a, b;
};

// Elementwise op on (VPair, VPair), (V, VPair) and (VPair, V).
#define FASTRNN_PAIR_BINARY(op)                              \
  template <bool R>                                          \
  FASTRNN_INLINE VPairOf<R> op(VPairOf<R> x, VPairOf<R> y) { \
    return {op(x.a, y.a), op(x.b, y.b)};                     \
  }                                                          \
  template <bool R>                                          \
  FASTRNN_INLINE VPairOf<R> op(V x, VPairOf<R> y) {          \
    return {op(x, y.a), op(x, y.b)};                         \
  }                                                          \
  template <bool R>                                          \
  FASTRNN_INLINE VPairOf<R> op(VPairOf<R> x, V y) {          \
    return {op(x.a, y), op(x.b, y)};                         \
  }
FASTRNN_PAIR_BINARY(vadd)
FASTRNN_PAIR_BINARY(vsub)
FASTRNN_PAIR_BINARY(vmul)
FASTRNN_PAIR_BINARY(vdiv)
FASTRNN_PAIR_BINARY(vmin)
FASTRNN_PAIR_BINARY(vmax)
FASTRNN_PAIR_BINARY(vcopysign)

// a*b + c, with any of the three a V constant (the forms the activations use).
template <bool R>
FASTRNN_INLINE VPairOf<R> vfma(VPairOf<R> a, VPairOf<R> b, VPairOf<R> c) {
  return {vfma(a.a, b.a, c.a), vfma(a.b, b.b, c.b)};
}
template <bool R>
FASTRNN_INLINE VPairOf<R> vfma(VPairOf<R> a, VPairOf<R> b, V c) {
  return {vfma(a.a, b.a, c), vfma(a.b, b.b, c)};
}
template <bool R>
FASTRNN_INLINE VPairOf<R> vfma(VPairOf<R> a, V b, VPairOf<R> c) {
  return {vfma(a.a, b, c.a), vfma(a.b, b, c.b)};
}
template <bool R>
FASTRNN_INLINE VPairOf<R> vfma(V a, VPairOf<R> b, V c) {
  return {vfma(a, b.a, c), vfma(a, b.b, c)};
}
template <bool R>
FASTRNN_INLINE VPairMask vlt(VPairOf<R> x, V y) {
  return {vlt(x.a, y), vlt(x.b, y)};
}
template <bool R>
FASTRNN_INLINE VPairOf<R> vselect(VPairMask m, VPairOf<R> t, VPairOf<R> f) {
  return {vselect(m.a, t.a, f.a), vselect(m.b, t.b, f.b)};
}
// Elementwise op on one VPair or VRowPair.
#define FASTRNN_PAIR_UNARY(op)                 \
  template <bool R>                            \
  FASTRNN_INLINE VPairOf<R> op(VPairOf<R> x) { \
    return {op(x.a), op(x.b)};                 \
  }
FASTRNN_PAIR_UNARY(vabs)
FASTRNN_PAIR_UNARY(vround)
#ifdef FASTRNN_VEC_HAS_LDEXP
FASTRNN_PAIR_BINARY(vldexp)
#else
FASTRNN_PAIR_UNARY(vexp2i)
FASTRNN_PAIR_UNARY(vhalf_floor)
#endif
#undef FASTRNN_PAIR_UNARY
#undef FASTRNN_PAIR_BINARY

// Two consecutive V's: p[0, kVecLanes) and p[kVecLanes, 2 kVecLanes).
FASTRNN_INLINE VPair vload_pair(const float* p) { return {vload(p), vload(p + kVecLanes)}; }
FASTRNN_INLINE void vstore_pair(float* p, VPair x) {
  vstore(p, x.a);
  vstore(p + kVecLanes, x.b);
}
