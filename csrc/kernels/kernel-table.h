// The kernel table: every leaf kernel of one instruction set behind one struct of function
// pointers. cpu/kernel-select.cc picks one table at import; ops call through it and never
// see an intrinsic. Kernels never allocate, spawn threads, throw, or see Python.
#pragma once

#include <cstddef>
#include <cstdint>

// Inlining in the kernel bodies (kernels-*.cc include them after this header).
#define FASTRNN_INLINE inline __attribute__((always_inline))
// The same for a lambda (after its parameters), and for the activations (activations.h):
// on a VPair a step epilogue and its sigmoid / tanh are large enough that GCC would call
// them out of line, passing the vectors through memory.
#define FASTRNN_INLINE_LAMBDA __attribute__((always_inline))
// For the reduced-precision paths: their stack buffers (up to 192 KiB) stay out of the frame
// of every fp32 step kernel that dispatches to them.
#define FASTRNN_NOINLINE __attribute__((noinline))

namespace fastrnn {

// How a packed matrix holds its weights (kernels/reduced/reduced.h): fp32 panels, or the
// reduced ones, whose panel rows hold dwords of 2 bf16 or 4 int8 consecutive k of a column.
enum class WeightType : int { kF32 = 0, kBf16 = 1, kInt8 = 2 };

// The format of a packed matrix. int8: scale (panels·NV·16) per column (= torch row),
// sum (the same) Σ_k q[k] of the column's int8 weights.
struct WeightFormat {
  WeightType type = WeightType::kF32;
  const float* scale = nullptr;
  const int32_t* sum = nullptr;
  bool amx = false;  // AMX tiles may be used where the table has them (int8: the same sums)
  // bf16: bf16 dot products for every row where the table has them (kernel-select.h
  // bf16_dot_rows), not only for few-row steps.
  bool bf16_rows = false;
  // int8: each panel's NV vectors of 16 columns stored apart, NV sub-panels of
  // (weight_rows(K), 16) dwords, instead of weight_rows(K) rows of NV·16 (the table's
  // int8_split, for its tile shape); every table reads both, to the same sums. float32
  // (W_ih and W_hh, the table's f32_strips): NV strips of (K, 16) floats; every table's
  // GEMM reads both to the same bits, and no other kernel reads W_ih's panels (the batch-1
  // ahead projection, which does, is not planned on strips: ops/forward-plan.cc); the
  // f32_strips table's steps read both to the same bits, and another table runs a W_hh in
  // strips from the model's copy in whole rows (ops/pack.h whole_rows_hh).
  bool split = false;
};

// The row count of the AMX tile configuration this thread has loaded, 0 while it holds none
// (cpu/kernel-select.cc): one per thread for every table, so a configuration one table left
// is never taken for another's. The kernels keep it loaded across a call's steps
// (kernels/reduced/reduced-dot.h amx_use); KernelTable::end_call releases it.
int& amx_tile_rows();

// k per dword of a packed reduced panel row: 2 (bf16) or 4 (int8); 1 for fp32.
constexpr int weight_group(WeightType t) {
  return t == WeightType::kBf16 ? 2 : t == WeightType::kInt8 ? 4 : 1;
}
// Panel rows of a packed matrix of K rows: ceil(K / group), zero-padded.
constexpr int weight_rows(WeightType t, int K) {
  return (K + weight_group(t) - 1) / weight_group(t);
}

// C[rows, panels p0..p1) = A · Wᵀ + bias, W packed as (panels, K, nv, 16).
// a: (rows, K) with row stride lda; bias: (panels * nv * 16) or null; c: (rows, ≥ p1*nv*16)
// with row stride ldc, full panels stored.
struct GemmArgs {
  const float* a;
  ptrdiff_t lda;
  int rows;
  const float* w;
  int K;
  int nv;  // 3 or 4
  int p0, p1;
  const float* bias;
  float* c;
  ptrdiff_t ldc;
  WeightFormat wf;  // of w
};

// Input projection rows a step computes itself (see StepArgs): x (stride ldx, K columns)
// times the packed W_ih panels [p0, p1) plus bias, into gx (row stride StepArgs::ld_gx):
// the same values gemm would write.
struct InputProjection {
  const float* x;
  ptrdiff_t ldx;
  int K;
  const float* w;
  const float* bias;
  float* gx;
  WeightFormat wf;  // of w
};

// An activation function of a cell variant (ONNX's list; see python/fastrnn/_config.py).
enum class ActKind : int {
  kSigmoid = 0,
  kTanh,
  kRelu,
  kHardSigmoid,      // max(0, min(1, alpha·x + beta))
  kLeakyRelu,        // x ≥ 0 ? x : alpha·x
  kThresholdedRelu,  // x > alpha ? x : 0
  kScaledTanh,       // alpha·tanh(beta·x)
  kAffine,           // alpha·x + beta
  kElu,              // x ≥ 0 ? x : alpha·(e^x − 1)
  kSoftsign,         // x / (1 + |x|)
  kSoftplus,         // log(1 + e^x)
};

struct Act {
  ActKind kind = ActKind::kSigmoid;
  float alpha = 0.0f, beta = 0.0f;
};

// A cell that is not torch's (ONNX / Keras options), for the *_variant step kernels.
// act: the cell's activation slots (LSTM f, g, h; GRU f, g; RNN g). clip > 0: every gate
// pre-activation clamped to [−clip, clip]. LSTM: peep (3, panels·16), the peephole weights
// of i, f, o (null: none); input_forget: f = 1 − i.
struct CellVariant {
  Act act[3];
  float clip = 0.0f;
  const float* peep = nullptr;
  bool input_forget = false;
};

// One recurrent time step for batch rows [b0, b1) and panels [p0, p1).
// Rows whose length ≤ t are inactive: their state is carried (h = h_prev, c untouched) and
// their output row is zero; that is a PackedSequence's meaning.
struct StepArgs {
  const float* w;       // packed W_hh (or W_hr): (panels, K, nv, 16), see ops/pack.h
  WeightFormat wf;      // of w (reduced: (panels, weight_rows(K), nv, 16) dwords)
  int K;                // reduction length: H_out for W_hh, H for W_hr
  int p0, p1;           // panel range
  int b0, b1;           // batch row range
  const float* h_prev;  // (B, ≥ K) rows, stride ld_h_prev; the previous h (or LSTM's r)
  ptrdiff_t ld_h_prev;
  const float* carry;  // (B, ≥ p1*units): state copied for inactive rows (the old h)
  ptrdiff_t ld_carry;
  const float* gx;  // (B, panels*nv*16): input projection incl. biases (null: none)
  ptrdiff_t ld_gx;
  const float* b_hn;  // GRU only: (panels*16), stays inside r ⊙ (W_hn h + b_hn)
  float* c;           // LSTM only: (B, panels*16) cell state, updated in place
  ptrdiff_t ld_c;
  float* h;  // (B, panels*units): the new state (LSTM with projection: r)
  ptrdiff_t ld_h;
  float* y;  // optional (B, y_cols) output rows, stride ld_y; null: none
  ptrdiff_t ld_y;
  int y_cols;              // valid units; columns ≥ y_cols are never written
  const int64_t* lengths;  // (B) sequence lengths or null (all rows active)
  int64_t t;               // the time index of this step (for the lengths test)
  bool many_rows;          // the whole batch is large: use the tall row block (see
                           // step-driver.h); set from B only, never from b0..b1
  int sweep;               // added to t to choose the panel order (see step-driver.h)
  bool far_weights;  // fp32 (or widened bf16) W_hh (this thread's share) larger than the near cache
                     // (ops/blocking.h): many-row tiles of up to 4 rows prefetch it
  // Optional: this step's own input projection, panel by panel, right before the panel's
  // dot products (single-step calls): rows [b0, b1) of in, into in.gx (= gx). Null in.gx:
  // gx already holds it.
  InputProjection in;
  // Optional, batch 1 only: part of a later group of steps' input projection, computed
  // between this step's dot products (see panel_dot_ahead in panel/panel-dot.h): rows
  // [0, KernelTable::ahead_rows) of ahead. A group takes ahead_rows steps; this step does
  // its ahead_part-th share (0 ≤ ahead_part < ahead_rows). Null ahead.gx: none.
  InputProjection ahead;
  int ahead_part;
  // The *_variant kernels' cell (null for torch's cells).
  const CellVariant* variant;
};

// The register tiles an ISA's kernels use (reported by cpu_info): rows × columns (floats)
// of the GEMM tile, of an LSTM step's tile at batch 1 and with many rows, and whether few-row
// steps split K in two chains.
struct KernelTiles {
  int vector_floats;  // floats per SIMD register
  int gemm_rows, gemm_cols;
  int step1_cols;            // batch 1: one row
  int step_rows, step_cols;  // many rows (B ≥ 4), LSTM
  int split_k;
};

// The kernel table of ISA namespace `ns` (its kernels have internal linkage inside it), in
// the order of KernelTable's members; FASTRNN_KERNEL_TABLE_WITH gives it a narrow-int8 sibling
// (KernelTable::int8_narrow).
#define FASTRNN_KERNEL_TABLE(ns) FASTRNN_KERNEL_TABLE_WITH(ns, nullptr)
#define FASTRNN_KERNEL_TABLE_WITH(ns, narrow) \
  {#ns,                                       \
   ns::kAheadRows,                            \
   ns::kBf16Dot,                              \
   ns::kRedSplit,                             \
   ns::kGemmStrips,                           \
   ns::kTiles,                                \
   ns::gemm,                                  \
   ns::lstm_step,                             \
   ns::gru_step,                              \
   ns::rnn_step<false>,                       \
   ns::rnn_step<true>,                        \
   ns::projection_step,                       \
   ns::lstm_step_variant,                     \
   ns::gru_step_variant,                      \
   ns::gru_gates_step,                        \
   ns::gru_candidate_step,                    \
   ns::rnn_step_variant,                      \
   ns::map_sigmoid,                           \
   ns::map_tanh,                              \
   ns::end_call,                              \
   narrow}

// The tiles of the including ISA, from its vec-*.h constants (after the kernel headers).
#define FASTRNN_KERNEL_TILES                                                                 \
  constexpr KernelTiles kTiles {                                                             \
    kVecLanes, kGemmRows, gemm_gates<4>() * 16, step_gates<4, 1, kStepSplitK>() * 16,        \
        step_rows_many<4>(),                                                                 \
        (kStepSumRows > 0 ? gemm_gates<4>() : step_gates<4, step_rows_many<4>(), 1>()) * 16, \
        kStepSplitK                                                                          \
  }

struct KernelTable {
  const char* isa;
  int ahead_rows;   // rows of input projection a batch-1 step group computes ahead
                    // (StepArgs); 0: the ISA never computes it ahead
  bool bf16_dot;    // bf16 dot products (VDPBF16PS) on rows of bf16 activations: few-row
                    // steps always, every row where bf16_dot_rows() (kernel-select.h)
  bool int8_split;  // int8 models packed in 16-column sub-panels (WeightFormat::split)
  bool f32_strips;  // float32 W_ih, W_hh packed in 16-column strips (WeightFormat::split)
  KernelTiles tiles;
  void (*gemm)(const GemmArgs&);
  void (*lstm_step)(const StepArgs&);  // gates → c, h (or r = o ⊙ tanh(c) with projection)
  void (*gru_step)(const StepArgs&);
  void (*rnn_tanh_step)(const StepArgs&);
  void (*rnn_relu_step)(const StepArgs&);
  void (*projection_step)(const StepArgs&);  // h = W_hr · r, no bias, no gates
  // Cell variants (StepArgs::variant), see kernels/variant-step/variant-step.h.
  void (*lstm_step_variant)(const StepArgs&);
  void (*gru_step_variant)(const StepArgs&);    // r applied after the product (torch's)
  void (*gru_gates_step)(const StepArgs&);      // classic GRU, 1/2: r ⊙ h and z
  void (*gru_candidate_step)(const StepArgs&);  // classic GRU, 2/2: n, then h
  void (*rnn_step_variant)(const StepArgs&);
  void (*sigmoid)(const float* x, float* y, size_t n);
  void (*tanh)(const float* x, float* y, size_t n);
  // After a thread's last kernel of a call: gives back what the kernels held across its steps
  // (the AMX tile state); nothing on tables without AMX.
  void (*end_call)();
  // The table for int8 models whose weights all lie in [−63, 63] (RnnModel::int8_narrow),
  // null where this one serves them as fast: AVX2, whose exact 8-bit products take VPSIGNB
  // before VPMADDUBSW, has one (avx2_w7) without it. The same sums, so the same bits.
  const KernelTable* int8_narrow;
};

// Calls the table's end_call when a thread's part of a call ends, thrown out of or not: the
// thread's next call starts from released tiles, whatever other code on the thread did with
// them in between (another library's AMX kernels load and release their own configuration,
// which a count kept past the call would not see), and the OS saves no tile data for a
// thread that is not in a call.
struct KernelCallEnd {
  explicit KernelCallEnd(const KernelTable& table) : k(table) {}
  const KernelTable& k;
  KernelCallEnd(const KernelCallEnd&) = delete;
  KernelCallEnd& operator=(const KernelCallEnd&) = delete;
  ~KernelCallEnd() { k.end_call(); }
};

extern const KernelTable kKernelsScalar;
#if defined(FASTRNN_X86)
extern const KernelTable kKernelsAvx2;
extern const KernelTable kKernelsAvx2W7;
extern const KernelTable kKernelsAvx512;
extern const KernelTable kKernelsAvx512Vnni;
extern const KernelTable kKernelsAvx512Bf16;
#endif
#if defined(FASTRNN_NEON)
extern const KernelTable kKernelsNeon;
#endif

}  // namespace fastrnn
