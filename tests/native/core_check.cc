// The compiled core checked without Python: every kernel table this CPU runs against the
// scalar table, and the scalar table against outputs stored from an x86 run. Built by CMake
// with FASTRNN_NATIVE_TESTS=ON (no Python needed), natively and for AArch64 under qemu
// (tools/arm64-check.sh).
//
//   core_check --write FILE    the scalar table's outputs of every case, to FILE
//   core_check --check FILE    every case on every table, 1 and 2 threads, against FILE
//
// Cases: every cell type (LSTM, LSTM with projection, GRU, RNN tanh and relu), bias on and
// off, 1-3 layers, bidirectional, batch 1 to 9 (the batch-1, few-row and many-row kernels),
// lengths in any order, initial states, odd sizes (H = 17, 33, 100); and the cell variants
// (peepholes, input_forget, clip, activations, the classic GRU, reverse). Weights, inputs and
// states come from a counter-based generator whose floats are exact on any machine.
//
// What must match, bit for bit: the scalar table, on any architecture, with the stored
// outputs (its arithmetic is IEEE single operations and fma, no contraction: the same bits
// everywhere); every table whose sums run in one chain (avx2, neon) with the scalar table;
// 2 threads with 1 thread on every table. AVX-512 splits few-row sums in two chains, so it
// matches the scalar table within 2e-6 · max(1, |value|) instead. The avx512bf16 table's
// bf16 cases round h to bf16 in their few-row steps (VDPBF16PS): within bf16's stated bound
// (1e-2, docs/precision.md) there.
//
// Kernel level too (--check): every table's GEMM and step kernels run on raw packed panels
// of random values against the scalar table's, over row counts 1 .. 13 (past two of the
// tallest row block), depths K with tails around the vector and depth-block sizes, panel
// sub-ranges, output-column tails (y_cols), length masks and both panel sweeps; columns and
// rows outside a kernel's ranges must stay untouched. Bit for bit, except AVX-512's few-row
// steps (two chains: 2e-6).
//
// Exit code 0 when every check passes; 1 (with the failures listed) otherwise; 2 on usage.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/threads.h"
#include "core/types.h"
#include "cpu/kernel-select.h"
#include "ops/forward-plan.h"
#include "ops/pack.h"
#include "ops/rnn-forward.h"

namespace {

using fastrnn::CellKind;

// splitmix64 of (seed, index): a float in [-scale, scale) from 24 random bits, exact.
float draw(uint64_t seed, uint64_t i, float scale) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1), exact
  return (2.0f * u - 1.0f) * scale;
}

std::vector<float> draws(uint64_t seed, size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = draw(seed, i, scale);
  return v;
}

struct Case {
  const char* name;
  CellKind cell;
  int I, H, P, L, D;
  bool bias;
  int T, B;
  bool lengths, state;
  int variant = 0;  // 0: torch's cell; else a preset of cell variants (variant_apply)
  fastrnn::WeightType dtype = fastrnn::WeightType::kF32;  // reduced: weights rounded (reduce)
};

constexpr auto kBf16 = fastrnn::WeightType::kBf16;
constexpr auto kInt8 = fastrnn::WeightType::kInt8;

const Case kCases[] = {
    {"lstm-b1", CellKind::kLstm, 16, 33, 0, 1, 1, true, 9, 1, false, true},
    {"lstm-L2-bi-b3", CellKind::kLstm, 7, 17, 0, 2, 2, true, 6, 3, true, true},
    {"lstm-proj-b5", CellKind::kLstm, 11, 100, 9, 2, 1, true, 5, 5, true, false},
    {"lstm-nobias-b9", CellKind::kLstm, 5, 33, 0, 1, 1, false, 4, 9, false, true},
    {"gru-b1", CellKind::kGru, 12, 100, 0, 1, 1, true, 8, 1, false, true},
    {"gru-L3-bi-b6", CellKind::kGru, 9, 17, 0, 3, 2, true, 5, 6, true, true},
    {"gru-nobias-b4", CellKind::kGru, 4, 33, 0, 1, 1, false, 7, 4, true, false},
    {"rnn-tanh-b2", CellKind::kRnnTanh, 6, 100, 0, 2, 1, true, 6, 2, false, true},
    {"rnn-relu-bi-b7", CellKind::kRnnRelu, 13, 33, 0, 1, 2, true, 5, 7, true, true},
    {"lstm-b1-wide", CellKind::kLstm, 64, 128, 0, 2, 1, true, 6, 1, false, false},
    // Large enough for 2 threads: hidden units split at batch 1; a wavefront of layers.
    {"lstm-H256-b1", CellKind::kLstm, 64, 256, 0, 1, 1, true, 8, 1, false, true},
    {"gru-L3-wave-b3", CellKind::kGru, 9, 100, 0, 3, 1, true, 33, 3, true, true},
    // Cell variants (ONNX / Keras), with functions whose bits do not rest on the C library:
    // peepholes + input_forget + clip + HardSigmoid / Elu; the classic GRU (two phases),
    // bidirectional; a reversed ScaledTanh / Affine RNN stack; a reversed torch-form GRU
    // with LeakyRelu gates and clip.
    {"lstm-variant-b5", CellKind::kLstm, 7, 33, 0, 1, 1, true, 6, 5, true, true, 1},
    {"gru-classic-bi-b3", CellKind::kGru, 9, 70, 0, 2, 2, true, 5, 3, true, true, 2},
    {"rnn-reverse-b1", CellKind::kRnnTanh, 6, 100, 0, 2, 1, true, 7, 1, false, true, 3},
    {"gru-reverse-b4", CellKind::kGru, 5, 17, 0, 1, 1, true, 6, 4, true, false, 4},
    // Reduced weights: int8 (integer sums, the same on every ISA) and bf16 (the fp32 kernels
    // on widened weights), with a projection, the classic GRU, bidirectional, odd K.
    {"lstm-int8-proj-b3", CellKind::kLstm, 11, 70, 9, 2, 1, true, 6, 3, true, true, 0, kInt8},
    {"gru-int8-classic-b2", CellKind::kGru, 37, 45, 0, 1, 2, true, 5, 2, true, true, 2, kInt8},
    {"rnn-int8-b1", CellKind::kRnnTanh, 37, 100, 0, 2, 1, true, 7, 1, false, true, 0, kInt8},
    {"gru-bf16-bi-b5", CellKind::kGru, 9, 33, 0, 1, 2, true, 5, 5, true, true, 0, kBf16},
    {"lstm-bf16-proj-b1", CellKind::kLstm, 17, 100, 21, 1, 1, true, 6, 1, false, true, 0, kBf16},
};

// A matrix (rows, K) in a reduced format, as python/fastrnn/_quantize.py makes it (the scale
// without its round-trip nudge: any scale serves here). bf16: the bits, round to nearest
// even; int8: q = round(w · 127 / max|row|) with one scale per row.
struct Reduced {
  std::vector<uint16_t> bf16;
  std::vector<int8_t> q;
  std::vector<float> scale;
};

Reduced reduce(const std::vector<float>& w, int rows, fastrnn::WeightType type) {
  Reduced r;
  const size_t K = w.size() / rows;
  if (type == kBf16) {
    for (float f : w) {
      uint32_t u;
      std::memcpy(&u, &f, 4);
      r.bf16.push_back(static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16));
    }
    return r;
  }
  for (int i = 0; i < rows; ++i) {
    float m = 0.0f;
    for (size_t k = 0; k < K; ++k) m = std::max(m, std::fabs(w[i * K + k]));
    r.scale.push_back(m / 127.0f);
    const float inv = m > 0.0f ? 127.0f / m : 0.0f;
    for (size_t k = 0; k < K; ++k)
      r.q.push_back(static_cast<int8_t>(std::nearbyint(w[i * K + k] * inv)));
  }
  return r;
}

// The cell variants of preset v (Case::variant).
void variant_apply(int v, fastrnn::RnnConfig& cfg) {
  using fastrnn::ActKind;
  for (auto& slots : cfg.act) {
    slots[0].kind = cfg.cell == CellKind::kRnnTanh ? ActKind::kTanh : ActKind::kSigmoid;
    slots[1].kind = ActKind::kTanh;
    slots[2].kind = ActKind::kTanh;
  }
  if (v == 0) return;
  cfg.variant = true;
  switch (v) {
    case 1:
      cfg.peepholes = cfg.input_forget = true;
      cfg.clip = 0.75f;
      cfg.act[0][0] = {ActKind::kHardSigmoid, 0.25f, 0.5f};
      cfg.act[0][1] = {ActKind::kElu, 0.5f, 0.0f};
      break;
    case 2:
      cfg.linear_before_reset = false;
      cfg.act[1][1] = {ActKind::kSoftsign, 0.0f, 0.0f};
      break;
    case 3:
      cfg.reverse = true;
      cfg.act[0][0] = {ActKind::kScaledTanh, 0.75f, 1.25f};
      break;
    case 4:
      cfg.reverse = true;
      cfg.clip = 1.5f;
      cfg.act[0][0] = {ActKind::kLeakyRelu, 0.125f, 0.0f};
      break;
  }
}

int gates(CellKind c) { return c == CellKind::kLstm ? 4 : c == CellKind::kGru ? 3 : 1; }

int g_two_thread_runs = 0;  // runs whose plan used 2 threads

// The case's outputs, concatenated: y (T, B, D·H_out), h_n, and c_n for LSTMs.
std::vector<float> run_case(const Case& c, int threads) {
  fastrnn::RnnConfig cfg;
  cfg.cell = c.cell;
  cfg.input_size = c.I;
  cfg.hidden_size = c.H;
  cfg.proj_size = c.P;
  cfg.num_layers = c.L;
  cfg.num_directions = c.D;
  cfg.bias = c.bias;
  variant_apply(c.variant, cfg);
  cfg.dtype = c.dtype;
  std::vector<Reduced> reduced;  // kept alive until packed
  reduced.reserve(3 * c.L * c.D);
  // Points raw at the reduced form of the matrix just stored (rows rows).
  const auto set_reduced = [&](const std::vector<float>& w, int rows, const void*& values,
                               const float*& scales) {
    if (c.dtype == fastrnn::WeightType::kF32) return;
    reduced.push_back(reduce(w, rows, c.dtype));
    values = c.dtype == kBf16 ? static_cast<const void*>(reduced.back().bf16.data())
                              : static_cast<const void*>(reduced.back().q.data());
    scales = reduced.back().scale.data();
  };
  const int G = gates(c.cell) * c.H, H_out = cfg.h_out();
  const float k = 1.0f / std::sqrt(static_cast<float>(c.H));
  std::vector<std::vector<float>> store;
  std::vector<fastrnn::RawWeights> raw;
  uint64_t seed = 1;
  for (int l = 0; l < c.L; ++l) {
    for (int d = 0; d < c.D; ++d) {
      fastrnn::RawWeights w;
      store.push_back(draws(seed++, static_cast<size_t>(G) * cfg.layer_input(l), k));
      w.w_ih = store.back().data();
      set_reduced(store.back(), G, w.r_ih, w.s_ih);
      store.push_back(draws(seed++, static_cast<size_t>(G) * H_out, k));
      w.w_hh = store.back().data();
      set_reduced(store.back(), G, w.r_hh, w.s_hh);
      if (c.bias) {
        store.push_back(draws(seed++, G, k));
        w.b_ih = store.back().data();
        store.push_back(draws(seed++, G, k));
        w.b_hh = store.back().data();
      }
      if (c.P > 0) {
        store.push_back(draws(seed++, static_cast<size_t>(c.P) * c.H, k));
        w.w_hr = store.back().data();
        set_reduced(store.back(), c.P, w.r_hr, w.s_hr);
      }
      if (cfg.peepholes) {
        store.push_back(draws(seed++, static_cast<size_t>(3) * c.H, 0.5f));
        w.peep = store.back().data();
      }
      raw.push_back(w);
    }
  }
  const fastrnn::RnnModel model = fastrnn::model_pack(cfg, raw);
  const std::vector<float> x = draws(100, static_cast<size_t>(c.T) * c.B * c.I, 1.0f);
  const size_t LD = static_cast<size_t>(c.L) * c.D;
  const std::vector<float> h0 = draws(101, LD * c.B * H_out, 0.5f);
  const std::vector<float> c0 = draws(102, LD * c.B * c.H, 0.5f);
  std::vector<int64_t> lengths(c.B);
  for (int b = 0; b < c.B; ++b) lengths[b] = c.lengths ? 1 + (b * 5 + 3) % c.T : c.T;
  const size_t y_size = static_cast<size_t>(c.T) * c.B * c.D * H_out;
  std::vector<float> out(
      y_size + LD * c.B * H_out + (c.cell == CellKind::kLstm ? LD * c.B * c.H : 0), -7.0f);
  fastrnn::ForwardArgs a;
  a.x = x.data();
  a.T = c.T;
  a.B = c.B;
  a.lengths = c.lengths ? lengths.data() : nullptr;
  a.h0 = c.state ? h0.data() : nullptr;
  a.c0 = c.state && c.cell == CellKind::kLstm ? c0.data() : nullptr;
  a.y = out.data();
  a.h_n = out.data() + y_size;
  a.c_n = c.cell == CellKind::kLstm ? out.data() + y_size + LD * c.B * H_out : nullptr;
  a.num_threads = threads;
  if (threads > 1 &&
      fastrnn::forward_plan(model, c.B, c.T, threads, fastrnn::kernels(), fastrnn::blocking_get())
              .threads > 1)
    ++g_two_thread_runs;
  fastrnn::rnn_forward(model, a);
  return out;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// "" when a and b are the same bits (tol = 0) or within tol·max(1, |b|); else what differs.
std::string compare(const std::vector<float>& a, const std::vector<float>& b, double tol) {
  if (a.size() != b.size())
    return "sizes " + std::to_string(a.size()) + " and " + std::to_string(b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const bool same = bits(a[i]) == bits(b[i]) || (std::isnan(a[i]) && std::isnan(b[i]));
    if (same) continue;
    const double err = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (tol > 0 && err <= tol * std::max(1.0, std::fabs(static_cast<double>(b[i])))) continue;
    char msg[160];
    std::snprintf(msg, sizeof msg, "element %zu: %.9g against %.9g", i, a[i], b[i]);
    return msg;
  }
  return "";
}

// Kernel level. A canary marks memory a kernel must not write.
constexpr float kCanary = -1234.5f;

struct KernelResult {
  std::string name;
  std::vector<float> out;
};

int g_canary_failures = 0;

// A write outside the kernel's ranges: reported, counted.
void expect_canary(float v, const std::string& what, const char* isa) {
  if (bits(v) == bits(kCanary)) return;
  if (g_canary_failures++ < 10)
    std::printf("FAIL kernel %s [%s]: wrote outside its range (%.9g)\n", what.c_str(), isa, v);
}

// The GEMM over panels [p0, p1) of NV vectors: rows × K of A times packed panels, + bias.
std::vector<KernelResult> run_gemms(const fastrnn::KernelTable& k) {
  std::vector<KernelResult> results;
  uint64_t seed = 500;
  for (int nv : {3, 4}) {
    for (int K : {1, 3, 8, 16, 17, 31, 128, 129, 257}) {
      for (int rows : {1, 2, 3, 4, 5, 6, 7, 9, 12, 13}) {
        const int panels = 3, cols = panels * nv * 16, ldc = cols + 5;
        const std::vector<float> a = draws(seed++, static_cast<size_t>(rows) * (K + 2), 1.0f);
        const std::vector<float> w = draws(seed++, static_cast<size_t>(panels) * K * nv * 16, 0.3f);
        const std::vector<float> bias = draws(seed++, cols, 0.5f);
        for (int with_bias : {0, 1}) {
          std::vector<float> c(static_cast<size_t>(rows + 1) * ldc, kCanary);
          fastrnn::GemmArgs g{};
          g.a = a.data();
          g.lda = K + 2;
          g.rows = rows;
          g.w = w.data();
          g.K = K;
          g.nv = nv;
          g.p0 = 1;  // a sub-range: panel 0 and the padding after ldc's end stay untouched
          g.p1 = panels;
          g.bias = with_bias ? bias.data() : nullptr;
          g.c = c.data();
          g.ldc = ldc;
          k.gemm(g);
          const std::string name = "gemm nv" + std::to_string(nv) + " K" + std::to_string(K) +
                                   " rows" + std::to_string(rows) + (with_bias ? " bias" : "");
          for (int r = 0; r <= rows; ++r)
            for (int j = 0; j < ldc; ++j)
              if (r == rows || j < nv * 16 || j >= cols) expect_canary(c[r * ldc + j], name, k.isa);
          results.push_back({name, c});
        }
      }
    }
  }
  return results;
}

// One recurrent step kernel on random packed weights and states: every cell's kernel and the
// projection, rows 1 .. 13, with and without lengths, both sweeps, a y_cols tail.
std::vector<KernelResult> run_steps(const fastrnn::KernelTable& k) {
  struct Kind {
    const char* name;
    void (*fn)(const fastrnn::StepArgs&);
    int nv, units;
    bool lstm, gru;
  };
  const Kind kinds[] = {{"lstm", k.lstm_step, 4, 16, true, false},
                        {"gru", k.gru_step, 3, 16, false, true},
                        {"rnn_tanh", k.rnn_tanh_step, 4, 64, false, false},
                        {"rnn_relu", k.rnn_relu_step, 4, 64, false, false},
                        {"projection", k.projection_step, 4, 64, false, false}};
  std::vector<KernelResult> results;
  uint64_t seed = 900;
  for (const Kind& kind : kinds) {
    for (int K : {1, 17, 64, 130}) {
      for (int B : {1, 2, 3, 4, 5, 6, 7, 9, 13}) {
        for (int masked : {0, 1}) {
          const int panels = 2, units = panels * kind.units, gcols = panels * kind.nv * 16;
          const std::vector<float> w =
              draws(seed++, static_cast<size_t>(panels) * K * kind.nv * 16, 0.4f);
          // Rows of h_prev: K for the dot products; GRU's h' = n + z ⊙ (h − n) also reads
          // its own units there (K = H in a model).
          const int ld_h_prev = std::max(K + 1, units);
          const std::vector<float> h_prev = draws(seed++, static_cast<size_t>(B) * ld_h_prev, 1.0f);
          const std::vector<float> carry = draws(seed++, static_cast<size_t>(B) * units, 1.0f);
          const std::vector<float> gx = draws(seed++, static_cast<size_t>(B) * gcols, 1.5f);
          const std::vector<float> b_hn = draws(seed++, static_cast<size_t>(units), 0.5f);
          std::vector<float> c = draws(seed++, static_cast<size_t>(B) * units, 2.0f);
          std::vector<float> h(static_cast<size_t>(B) * units, kCanary);
          const int y_cols = units - 3;  // a tail: the last 3 columns are never written
          std::vector<float> y(static_cast<size_t>(B) * units, kCanary);
          std::vector<int64_t> lengths(B);
          for (int b = 0; b < B; ++b) lengths[b] = b % 3;  // t = 1: rows with length ≤ 1 rest
          fastrnn::StepArgs a{};
          a.w = w.data();
          a.K = K;
          a.p0 = 0;
          a.p1 = panels;
          a.b0 = 0;
          a.b1 = B;
          a.h_prev = h_prev.data();
          a.ld_h_prev = ld_h_prev;
          a.carry = carry.data();
          a.ld_carry = units;
          a.gx = kind.name[0] == 'p' ? nullptr : gx.data();
          a.ld_gx = gcols;
          a.b_hn = kind.gru ? b_hn.data() : nullptr;
          a.c = kind.lstm ? c.data() : nullptr;
          a.ld_c = units;
          a.h = h.data();
          a.ld_h = units;
          a.y = y.data();
          a.ld_y = units;
          a.y_cols = y_cols;
          a.lengths = masked ? lengths.data() : nullptr;
          a.t = 1;
          a.many_rows = B >= 4;
          a.sweep = masked;  // the other panel order on every other run
          kind.fn(a);
          const std::string name = std::string(kind.name) + " K" + std::to_string(K) + " B" +
                                   std::to_string(B) + (masked ? " lengths" : "");
          for (int b = 0; b < B; ++b)
            for (int j = y_cols; j < units; ++j) expect_canary(y[b * units + j], name, k.isa);
          std::vector<float> out = h;
          out.insert(out.end(), y.begin(), y.end());
          if (kind.lstm) out.insert(out.end(), c.begin(), c.end());
          results.push_back({name, out});
        }
      }
    }
  }
  return results;
}

// Each table's kernels against the scalar table's. Returns the failures, counting checks.
int check_kernels(const std::vector<std::string>& isas, int& checks) {
  fastrnn::kernels_select("scalar");
  const std::vector<KernelResult> gemm_ref = run_gemms(fastrnn::kernels());
  const std::vector<KernelResult> step_ref = run_steps(fastrnn::kernels());
  int failures = 0;
  for (const std::string& isa : isas) {
    if (!fastrnn::kernels_select(isa).empty()) return 1;
    const std::vector<KernelResult> gemms = run_gemms(fastrnn::kernels());
    const std::vector<KernelResult> steps = run_steps(fastrnn::kernels());
    for (size_t i = 0; i < gemms.size(); ++i) {
      ++checks;
      const std::string d = compare(gemms[i].out, gemm_ref[i].out, 0.0);
      if (!d.empty()) {
        ++failures;
        std::printf("FAIL kernel %s [%s] against scalar: %s\n", gemms[i].name.c_str(), isa.c_str(),
                    d.c_str());
      }
    }
    for (size_t i = 0; i < steps.size(); ++i) {
      ++checks;
      // AVX-512 splits the dot products of few-row steps (B ≤ 3) in two chains.
      const bool few_rows = steps[i].name.find(" B1") != std::string::npos ||
                            steps[i].name.find(" B2") != std::string::npos ||
                            steps[i].name.find(" B3") != std::string::npos;
      const double tol = isa.rfind("avx512", 0) == 0 && few_rows ? 2e-6 : 0.0;
      const std::string d = compare(steps[i].out, step_ref[i].out, tol);
      if (!d.empty()) {
        ++failures;
        std::printf("FAIL kernel %s [%s] against scalar: %s\n", steps[i].name.c_str(), isa.c_str(),
                    d.c_str());
      }
    }
  }
  ++checks;  // no table wrote outside its ranges (expect_canary, every run above)
  return failures + g_canary_failures;
}

constexpr uint32_t kMagic = 0x46524e31;  // "FRN1"

int write_expected(const char* path) {
  if (!fastrnn::kernels_select("scalar").empty()) return 1;
  FILE* f = std::fopen(path, "wb");
  if (f == nullptr) {
    std::perror(path);
    return 1;
  }
  const uint32_t n = sizeof kCases / sizeof kCases[0];
  std::fwrite(&kMagic, 4, 1, f);
  std::fwrite(&n, 4, 1, f);
  for (const Case& c : kCases) {
    const std::vector<float> out = run_case(c, 1);
    const uint32_t size = static_cast<uint32_t>(out.size());
    std::fwrite(&size, 4, 1, f);
    std::fwrite(out.data(), sizeof(float), out.size(), f);
  }
  std::fclose(f);
  std::printf("wrote %u cases to %s\n", n, path);
  return 0;
}

int check(const char* path) {
  FILE* f = std::fopen(path, "rb");
  if (f == nullptr) {
    std::perror(path);
    return 1;
  }
  uint32_t magic = 0, n = 0;
  if (std::fread(&magic, 4, 1, f) != 1 || std::fread(&n, 4, 1, f) != 1 || magic != kMagic ||
      n != sizeof kCases / sizeof kCases[0]) {
    std::printf("%s: not this driver's file of %zu cases (regenerate it with --write)\n", path,
                sizeof kCases / sizeof kCases[0]);
    return 1;
  }
  std::vector<std::vector<float>> expected(n);
  for (auto& e : expected) {
    uint32_t size = 0;
    if (std::fread(&size, 4, 1, f) != 1 || size > (1u << 24)) return 1;
    e.resize(size);
    if (std::fread(e.data(), sizeof(float), size, f) != size) return 1;
  }
  std::fclose(f);
  fastrnn::threads_set(2);
  int failures = 0, checks = 0;
  const std::vector<std::string> isas = fastrnn::kernels_available();
  std::printf("tables: ");
  for (const std::string& isa : isas) std::printf("%s ", isa.c_str());
  std::printf("(%d threads)\n", fastrnn::threads_hardware());
  for (size_t i = 0; i < n; ++i) {
    const Case& c = kCases[i];
    fastrnn::kernels_select("scalar");
    const std::vector<float> scalar = run_case(c, 1);
    for (const std::string& isa : isas) {
      if (!fastrnn::kernels_select(isa).empty()) return 1;
      // See the top of this file.
      const double tol = isa == "avx512bf16" && c.dtype == kBf16 ? 1e-2
                         : isa.rfind("avx512", 0) == 0           ? 2e-6
                                                                 : 0.0;
      for (int threads : {1, 2}) {
        const std::vector<float> got = run_case(c, threads);
        struct {
          const char* what;
          std::string diff;
        } results[] = {{"stored x86 scalar output", compare(got, expected[i], tol)},
                       {"scalar table here", compare(got, scalar, tol)}};
        for (const auto& r : results) {
          ++checks;
          if (!r.diff.empty()) {
            ++failures;
            std::printf("FAIL %s [%s, %d threads] against the %s: %s\n", c.name, isa.c_str(),
                        threads, r.what, r.diff.c_str());
          }
        }
      }
    }
  }
  failures += check_kernels(isas, checks);
  if (fastrnn::threads_hardware() > 1 && g_two_thread_runs == 0) {
    std::printf("FAIL no case ran on 2 threads\n");
    ++failures;
  }
  std::printf("%s: %d of %d checks passed (%zu cases, %d runs on 2 threads)\n",
              failures ? "FAILED" : "ok", checks - failures, checks,
              sizeof kCases / sizeof kCases[0], g_two_thread_runs);
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--write") == 0) return write_expected(argv[2]);
  if (argc == 3 && std::strcmp(argv[1], "--check") == 0) return check(argv[2]);
  std::fprintf(stderr, "usage: core_check --write FILE | --check FILE\n");
  return 2;
}
