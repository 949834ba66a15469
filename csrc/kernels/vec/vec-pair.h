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
// bidirectional layer's two W_hh, 2 MiB, do not stay in the 1 MiB L2 between steps). AVX-512 level
// (bilstm_text 0.994x, lat_lstm_256 0.987x): its steps still take one V per call. Included inside
// an ISA's anonymous namespace after its vec-*.h (no includes here).

struct VPair {
  V a, b;
};
struct VPairMask {
  VMask a, b;
};

// Elementwise op on (VPair, VPair), (V, VPair) and (VPair, V).
#define FASTRNN_PAIR_BINARY(op)                                                      \
  FASTRNN_INLINE VPair op(VPair x, VPair y) { return {op(x.a, y.a), op(x.b, y.b)}; } \
  FASTRNN_INLINE VPair op(V x, VPair y) { return {op(x, y.a), op(x, y.b)}; }         \
  FASTRNN_INLINE VPair op(VPair x, V y) { return {op(x.a, y), op(x.b, y)}; }
FASTRNN_PAIR_BINARY(vadd)
FASTRNN_PAIR_BINARY(vsub)
FASTRNN_PAIR_BINARY(vmul)
FASTRNN_PAIR_BINARY(vdiv)
FASTRNN_PAIR_BINARY(vmin)
FASTRNN_PAIR_BINARY(vmax)
FASTRNN_PAIR_BINARY(vcopysign)
#undef FASTRNN_PAIR_BINARY

// a*b + c, with any of the three a V constant (the forms the activations use).
FASTRNN_INLINE VPair vfma(VPair a, VPair b, VPair c) {
  return {vfma(a.a, b.a, c.a), vfma(a.b, b.b, c.b)};
}
FASTRNN_INLINE VPair vfma(VPair a, VPair b, V c) { return {vfma(a.a, b.a, c), vfma(a.b, b.b, c)}; }
FASTRNN_INLINE VPair vfma(VPair a, V b, VPair c) { return {vfma(a.a, b, c.a), vfma(a.b, b, c.b)}; }
FASTRNN_INLINE VPair vfma(V a, VPair b, V c) { return {vfma(a, b.a, c), vfma(a, b.b, c)}; }
FASTRNN_INLINE VPairMask vlt(VPair x, V y) { return {vlt(x.a, y), vlt(x.b, y)}; }
FASTRNN_INLINE VPair vselect(VPairMask m, VPair t, VPair f) {
  return {vselect(m.a, t.a, f.a), vselect(m.b, t.b, f.b)};
}
FASTRNN_INLINE VPair vabs(VPair x) { return {vabs(x.a), vabs(x.b)}; }
FASTRNN_INLINE VPair vround(VPair x) { return {vround(x.a), vround(x.b)}; }
#ifdef FASTRNN_VEC_HAS_LDEXP
FASTRNN_INLINE VPair vldexp(VPair p, VPair n) { return {vldexp(p.a, n.a), vldexp(p.b, n.b)}; }
#else
FASTRNN_INLINE VPair vexp2i(VPair n) { return {vexp2i(n.a), vexp2i(n.b)}; }
FASTRNN_INLINE VPair vhalf_floor(VPair n) { return {vhalf_floor(n.a), vhalf_floor(n.b)}; }
#endif

// Two consecutive V's: p[0, kVecLanes) and p[kVecLanes, 2 kVecLanes).
FASTRNN_INLINE VPair vload_pair(const float* p) { return {vload(p), vload(p + kVecLanes)}; }
FASTRNN_INLINE void vstore_pair(float* p, VPair x) {
  vstore(p, x.a);
  vstore(p + kVecLanes, x.b);
}
