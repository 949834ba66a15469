// anatomy: where the time of fastrnn's kernels goes on this machine, one thread, measured by
// taking pieces away. Built by bench/anatomy.py from the kernel headers of csrc/ with the
// flags CMakeLists.txt gives kernels-avx512.cc (or kernels-avx2.cc: the headers follow the
// flags, __AVX512F__ or not); prints "name value unit" lines.
//
// Each figure is the best of many repetitions (noise only ever makes a run slower).
//   gemm_*       the input-projection GEMM alone (rows × 64-column panels × K)
//   step_*       an LSTM step (B rows, H = K): full kernel; with the cell math replaced by a
//                plain store of the four gate sums (dots); without the output row (no_y)
//   b1_*         batch 1, T = 100 steps of an LSTM with I = H: projection GEMM then steps
//                (separate), or each group of steps projecting the next group inside its
//                dot products (ahead, what fastrnn does when the weights stay in cache)
//   gemm_panels_*, gemm_strips_*  the GEMM on W_ih in whole panel rows and in 16-column
//                strips (the AVX2 table's), the same rows, weights beyond the L2
//   step_panels_*, step_strips_*  LSTM steps on W_hh in either layout (full, dots; _far:
//                weights from memory, prefetched as far_weights asks), on the AVX2 table
//                only, whose steps read strips; `anatomy layouts` runs only the layouts'
//                figures
//   int8_*       int8 weights: the GEMM (GMAC/s) and batch-1 LSTM steps (µs, W_hh's GB/s);
//                built with -DFASTRNN_I8_NARROW (anatomy.py --narrow), the avx2_w7 kernels;
//                int8_tile4x16_*: a candidate AVX2 tile on 16-column panels (see there)
// Only for measurement: not part of the package.

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/kernel-table.h"

namespace fastrnn {
// The library's is in cpu/kernel-select.cc, which the probe does not build (it runs no AMX
// blocks: its tables are the fp32 ones).
int& amx_tile_rows() {
  thread_local int rows = 0;
  return rows;
}
namespace {
// clang-format off
#if defined(__AVX512F__)
#include "kernels/vec/vec-avx512.h"
#include "kernels/reduced/rvec-avx512.h"
#else
#include "kernels/vec/vec-avx2.h"
#include "kernels/reduced/rvec-avx2.h"
#endif
#include "kernels/vec/vec-pair.h"
#include "kernels/activations/activations.h"
#include "kernels/panel/panel-dot.h"
#include "kernels/reduced/reduced-dot.h"
#include "kernels/gemm/gemm.h"
#include "kernels/panel/step-driver.h"
#include "kernels/lstm-step/lstm-step.h"
// clang-format on

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// `anatomy quick`: a tenth of the repetitions (a smoke run; the figures are rougher).
bool g_quick = false;

template <class F>
double best_seconds(F&& f, int reps) {
  if (g_quick) reps = std::max(2, reps / 10);
  f();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now();
    f();
    best = std::min(best, now() - t0);
  }
  return best;
}

// 64-byte aligned, as the library's buffers are (core/aligned-buffer.h): a std::vector's
// 16-byte alignment splits every zmm load across two cache lines, which on a Sapphire
// Rapids-class Xeon cost the AVX-512 GEMM 10-15% (K = 128..512: 165-195 against 192-215
// GFLOP/s), and would make this probe blame the kernels for the harness.
struct Buffer {
  explicit Buffer(size_t n) : v(n + 16 + 16) {
    const size_t skew = (64 - reinterpret_cast<uintptr_t>(v.data()) % 64) % 64 / sizeof(float);
    p = v.data() + skew;
    for (size_t i = 0; i < n + 16; ++i)
      p[i] = static_cast<float>((i * 2654435761u) % 2001) * 1e-4f - 0.1f;
  }
  float* data() { return p; }
  std::vector<float> v;
  float* p;
};

void report(const char* name, double value, const char* unit) {
  std::printf("%s %.4g %s\n", name, value, unit);
}

// An LSTM layer's buffers for B rows, H = I = K hidden units (P = H / 16 panels).
struct Layer {
  Layer(int B, int K, int T)
      : B(B),
        K(K),
        P(K / 16),
        w_hh(size_t(P) * K * 64),
        w_ih(size_t(P) * K * 64),
        bias(size_t(P) * 64),
        x(size_t(T) * B * K),
        gx(size_t(T) * B * P * 64),
        h{Buffer(size_t(B) * K), Buffer(size_t(B) * K)},
        c(size_t(B) * K),
        y(size_t(T) * B * K) {}

  StepArgs step_args(int t, bool with_y) {
    StepArgs s{};
    s.w = w_hh.data();
    s.K = K;
    s.p1 = P;
    s.b1 = B;
    s.h_prev = h[t & 1].data();
    s.ld_h_prev = K;
    s.carry = s.h_prev;
    s.ld_carry = K;
    s.gx = gx.data() + size_t(t) * B * P * 64;
    s.ld_gx = P * 64;
    s.c = c.data();
    s.ld_c = K;
    s.h = h[(t + 1) & 1].data();
    s.ld_h = K;
    s.y = with_y ? y.data() + size_t(t) * B * K : nullptr;
    s.ld_y = K;
    s.y_cols = K;
    s.t = t;
    s.many_rows = B >= 4;
    return s;
  }

  GemmArgs gemm_args(int t0, int rows) {
    GemmArgs g{};
    g.a = x.data() + size_t(t0) * B * K;
    g.lda = K;
    g.rows = rows;
    g.w = w_ih.data();
    g.K = K;
    g.nv = 4;
    g.p1 = P;
    g.bias = bias.data();
    g.c = gx.data() + size_t(t0) * B * P * 64;
    g.ldc = P * 64;
    return g;
  }

  int B, K, P;
  Buffer w_hh, w_ih, bias, x, gx;
  Buffer h[2];
  Buffer c, y;
};

// T LSTM steps of layer L: the full kernel, or (dots) the cell math replaced by a plain
// store of the four gate sums; adjust(s) may change each step's arguments (the weights'
// layout, far_weights).
template <class Adjust>
void lstm_steps(Layer& L, int T, bool with_y, bool dots, Adjust&& adjust) {
  for (int t = 0; t < T; ++t) {
    StepArgs s = L.step_args(t, with_y);
    adjust(s);
    if (!dots) {
      lstm_step(s);
      continue;
    }
    step_panels<4, 16>(s, ZeroSums{}, [&](int p, int b, int sub, V(&acc)[4]) {
      add_gx<4>(s, p, b, sub, acc);
      vstore(s.h + b * s.ld_h + unit_of<16>(p, 0, sub),
             vadd(vadd(acc[0], acc[1]), vadd(acc[2], acc[3])));
    });
  }
}

void batched(int B, int K) {
  const int T = 8;
  Layer L(B, K, T);
  const double flops = 2.0 * B * 4 * K * K * T;  // per T steps of one matrix
  const double gemm_s = best_seconds([&] { gemm(L.gemm_args(0, B * T)); }, 40);
  const auto steps = [&](bool with_y, bool dots) {
    lstm_steps(L, T, with_y, dots, [](StepArgs&) {});
  };
  const double full = best_seconds([&] { steps(true, false); }, 40);
  const double no_y = best_seconds([&] { steps(false, false); }, 40);
  const double dots = best_seconds([&] { steps(false, true); }, 40);
  char name[64];
  std::snprintf(name, sizeof name, "gemm_rows%d_K%d", B * T, K);
  report(name, flops / gemm_s * 1e-9, "GFLOP/s");
  std::snprintf(name, sizeof name, "step_B%d_H%d_full", B, K);
  report(name, flops / full * 1e-9, "GFLOP/s");
  std::snprintf(name, sizeof name, "step_B%d_H%d_no_y", B, K);
  report(name, flops / no_y * 1e-9, "GFLOP/s");
  std::snprintf(name, sizeof name, "step_B%d_H%d_dots", B, K);
  report(name, flops / dots * 1e-9, "GFLOP/s");
}

// Batch 1, T = 100, an LSTM with I = H = K: the projection of all steps first, or ahead
// inside the steps, over `panels` of the K / 16 gate panels (all: one thread; half: what
// each of two threads owns).
void batch1(int K, int panels, const char* tag) {
  const int T = 100;
  Layer L(1, K, T);
  L.P = panels;
  const double separate = best_seconds(
      [&] {
        gemm(L.gemm_args(0, T));
        for (int t = 0; t < T; ++t) lstm_step(L.step_args(t, true));
      },
      60);
  double ahead = 0;
  if constexpr (kAheadRows > 0)
    ahead = best_seconds(
        [&] {
          constexpr int R = kAheadRows > 0 ? kAheadRows : 1;
          gemm(L.gemm_args(0, R));
          for (int t = 0; t < T; ++t) {
            StepArgs s = L.step_args(t, true);
            const int next = (t / R + 1) * R;
            if (next + R <= T) {
              s.ahead = {L.x.data() + size_t(next) * K,        K, K, L.w_ih.data(), L.bias.data(),
                         L.gx.data() + size_t(next) * L.P * 64};
              s.ahead_part = t % R;
            } else if (next < T && t % R == 0) {
              gemm(L.gemm_args(next, T - next));
            }
            lstm_step(s);
          }
        },
        60);
  const double proj = best_seconds([&] { gemm(L.gemm_args(0, T)); }, 60);
  char name[64];
  std::snprintf(name, sizeof name, "b1_H%d_%s_projection", K, tag);
  report(name, proj * 1e6, "us");
  std::snprintf(name, sizeof name, "b1_H%d_%s_separate", K, tag);
  report(name, separate * 1e6, "us");
  std::snprintf(name, sizeof name, "b1_H%d_%s_ahead", K, tag);
  if (ahead > 0) report(name, ahead * 1e6, "us");
}

// int8 weights of P gate panels (4 × 16 columns each) over K: bytes in [−63, 63] (so the
// avx2_w7 build, -DFASTRNN_I8_NARROW, takes them too), one scale and the sum Σ_k q of every
// column, packed as the library packs them (reduced-dot.h's layout: split panels where the
// table takes them, kRedSplit, unless `split` says otherwise).
struct Int8Weights {
  Int8Weights(int P, int K, bool split_panels = kRedSplit)
      : Kd(weight_rows(WeightType::kInt8, K)),
        q(size_t(P) * Kd * 64 + 16),
        scale(size_t(P) * 64),
        sum(size_t(P) * 64, 0) {
    const size_t skew = (64 - reinterpret_cast<uintptr_t>(q.data()) % 64) % 64 / 4;
    w = q.data() + skew;
    for (int p = 0; p < P; ++p)
      for (int kd = 0; kd < Kd; ++kd)
        for (int j = 0; j < 64; ++j) {
          const size_t i = (size_t(p) * Kd + kd) * 64 + j;
          uint32_t packed = 0;
          for (int b = 0; b < 4; ++b) {
            const int v = int((i * 4 + b) * 2654435761u % 127) - 63;
            packed |= uint32_t(uint8_t(int8_t(v))) << (8 * b);
            sum[size_t(p) * 64 + j] += v;
          }
          w[i] = packed;
        }
    for (auto& s : scale) s = 1e-3f;
    if (!split_panels) return;
    split = true;  // each panel's four 16-column vectors apart, as ops/pack.cc splits them
    const std::vector<uint32_t> whole(w, w + size_t(P) * Kd * 64);
    for (int p = 0; p < P; ++p)
      for (int v = 0; v < 4; ++v)
        for (int kd = 0; kd < Kd; ++kd)
          std::memcpy(w + ((size_t(p) * 4 + v) * Kd + kd) * 16,
                      whole.data() + (size_t(p) * Kd + kd) * 64 + 16 * v, 64);
  }
  WeightFormat format() const {
    WeightFormat f{WeightType::kInt8, scale.data(), sum.data()};
    f.split = split;
    return f;
  }
  const float* data() const { return reinterpret_cast<const float*>(w); }

  int Kd;
  bool split = false;
  std::vector<uint32_t> q;
  uint32_t* w;
  std::vector<float> scale;
  std::vector<int32_t> sum;
};

// The int8 input-projection GEMM alone: `rows` rows of x (quantised per row as the library
// does) times W_ih of an LSTM with I = H = K; giga int8 multiply-adds per second. Where
// the table splits its panels, also on whole panel rows (`_whole`).
void int8_gemm(int rows, int K, bool split = kRedSplit) {
  if (split) int8_gemm(rows, K, false);
  const Int8Weights w(K / 16, K, split);
  Layer L(rows, K, 1);
  GemmArgs g = L.gemm_args(0, rows);
  g.w = w.data();
  g.wf = w.format();
  const double s = best_seconds([&] { gemm(g); }, 40);
  char name[64];
  std::snprintf(name, sizeof name, "int8_gemm_rows%d_K%d%s", rows, K,
                split == kRedSplit ? "" : "_whole");
  report(name, double(rows) * K * L.P * 64 / s * 1e-9, "GMAC/s");
}

// T int8 LSTM steps at batch B, H = K (W_hh: 4 K² bytes; each step quantises its h rows):
// microseconds per step, and W_hh's bytes over that time. Where the table splits its
// panels, also on whole panel rows (`_whole`).
void int8_step(int B, int K, bool split = kRedSplit) {
  if (split) int8_step(B, K, false);
  const int T = 100, P = K / 16;
  const Int8Weights w(P, K, split);
  Layer L(B, K, T);
  const double s = best_seconds(
      [&] {
        for (int t = 0; t < T; ++t) {
          StepArgs a = L.step_args(t, true);
          a.w = w.data();
          a.wf = w.format();
          lstm_step(a);
        }
      },
      40);
  char name[64];
  const char* tag = split == kRedSplit ? "" : "_whole";
  std::snprintf(name, sizeof name, "int8_step_b%d_H%d%s", B, K, tag);
  report(name, s / T * 1e6, "us");
  std::snprintf(name, sizeof name, "int8_step_b%d_H%d%s_weights", B, K, tag);
  report(name, 4.0 * K * K * T / s * 1e-9, "GB/s");
}

// A candidate AVX2 int8 GEMM tile, outside the library: 4 rows × 16 columns (8 accumulators)
// on weights packed in 16-column panels (each k-quad's 16 columns in 64 contiguous bytes)
// instead of the library's 64-column panels, u8 activations (q + 128) times 7-bit weights as
// avx2_w7 multiplies them. Compare with int8_gemm_* of the --narrow build (which also packs
// the rows and dequantises; this adds neither). The same rows × K × 4K multiply-adds.
#ifdef __AVX2__
template <int R>
FASTRNN_NOINLINE void tile_4x16(const uint32_t* a, int lda, const uint32_t* w, int Kd, int32_t* c,
                                int ldc) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (int k = 0; k < Kd; ++k) {
    const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 16 * k));
    const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 16 * k + 8));
    for (int r = 0; r < R; ++r) {
      const __m256i x = _mm256_set1_epi32(static_cast<int>(a[r * lda + k]));
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(x, w0), ones));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(x, w1), ones));
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc), acc[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc + 8), acc[r][1]);
  }
}

void int8_tile_4x16(int rows, int K) {
  const int Kd = K / 4, N = 4 * K, panels = N / 16;
  // int8_gemm's weights in split panels: 16-column panel p at w + p · Kd · 16.
  const Int8Weights lib(K / 16, K, true);
  const uint32_t* w = lib.w;
  std::vector<uint32_t> a(static_cast<size_t>(rows) * Kd);
  uint32_t seed = 12345;
  for (auto& v : a) v = seed = seed * 1664525u + 1013904223u;
  std::vector<int32_t> c(static_cast<size_t>(rows) * N);
  auto run = [&] {
    for (int p = 0; p < panels; ++p) {
      const uint32_t* wp = w + size_t(p) * Kd * 16;
      int r = 0;
      for (; r + 4 <= rows; r += 4)
        tile_4x16<4>(&a[size_t(r) * Kd], Kd, wp, Kd, &c[size_t(r) * N + 16 * p], N);
      for (; r < rows; ++r)
        tile_4x16<1>(&a[size_t(r) * Kd], Kd, wp, Kd, &c[size_t(r) * N + 16 * p], N);
    }
  };
  run();
  // The probe's own check: the last row's last column against a scalar sum.
  {
    const int r = rows - 1, n = N - 1, p = n / 16, j = n % 16;
    int64_t want = 0;
    for (int k = 0; k < Kd; ++k) {
      const uint32_t x = a[size_t(r) * Kd + k], q = w[(size_t(p) * Kd + k) * 16 + j];
      for (int b = 0; b < 4; ++b)
        want += int(uint8_t(x >> (8 * b))) * int(int8_t(uint8_t(q >> (8 * b))));
    }
    if (want != c[size_t(r) * N + n]) {
      std::fprintf(stderr, "int8_tile_4x16: %lld != %d\n", static_cast<long long>(want),
                   c[size_t(r) * N + n]);
      std::exit(1);
    }
  }
  const double s = best_seconds(run, 40);
  char name[64];
  std::snprintf(name, sizeof name, "int8_tile4x16_rows%d_K%d", rows, K);
  report(name, double(rows) * K * N / s * 1e-9, "GMAC/s");
}
#endif

// The float32 GEMM on W_ih in whole panel rows (K, 4, 16) and in 16-column strips (4, K, 16:
// WeightFormat::split, what the AVX2 table packs: gemm.h panel_accumulate_strips), checked
// bit for bit against each other. Weights of 32 panels (beyond the L2 of every CPU
// measured), chunk after chunk of distinct rows, as the library's G_x chunks read them.
void gemm_layouts(int rows, int K) {
  constexpr int P = 32, chunks = 8;  // 32 panels: 2048 gate columns
  const int N = P * 64;
  Buffer w{size_t(P) * K * 64}, strips{size_t(P) * K * 64}, bias{size_t(N)},
      x{size_t(chunks) * rows * K}, out_rows{size_t(rows) * N}, out_strips{size_t(rows) * N};
  // Strip g of panel p: element (k, j) = the panel's (k, g, j).
  for (int p = 0; p < P; ++p)
    for (int g = 0; g < 4; ++g)
      for (int k = 0; k < K; ++k)
        std::memcpy(strips.data() + ((size_t(p) * 4 + g) * K + k) * 16,
                    w.data() + (size_t(p) * K + k) * 64 + 16 * g, 16 * sizeof(float));
  const auto run = [&](bool split, int chunk) {
    GemmArgs g{};
    g.a = x.data() + size_t(chunk) * rows * K;
    g.lda = K, g.rows = rows, g.K = K, g.nv = 4, g.p0 = 0, g.p1 = P;
    g.w = split ? strips.data() : w.data();
    g.wf.split = split;
    g.bias = bias.data(), g.c = split ? out_strips.data() : out_rows.data(), g.ldc = N;
    gemm(g);
  };
  run(false, chunks - 1);
  run(true, chunks - 1);
  if (std::memcmp(out_rows.data(), out_strips.data(), sizeof(float) * rows * N) != 0) {
    std::fprintf(stderr, "gemm_layouts: rows %d K %d: strips give other bits\n", rows, K);
    std::exit(1);
  }
  const double flops = 2.0 * rows * K * N * chunks;
  for (const bool split : {false, true}) {
    const double s = best_seconds(
        [&] {
          for (int c = 0; c < chunks; ++c) run(split, c);
        },
        20);
    char name[64];
    std::snprintf(name, sizeof name, "gemm_%s_rows%d_K%d_far", split ? "strips" : "panels", rows,
                  K);
    report(name, flops / s * 1e-9, "GFLOP/s");
  }
}

// T LSTM steps at batch B, H = K, on W_hh in whole panel rows and in 16-column strips
// (what the AVX2 table packs: step-driver.h step_panels_summed on panel_accumulate_strips),
// checked bit for bit against each other: full steps and dots only (as batched()). Only the
// table whose steps read strips (kGemmStrips: AVX2) runs it; the others' steps read whole
// rows (another table runs a W_hh in strips from a copy in whole rows: ops/pack.h).
void step_layouts(int B, int K, bool far = false) {
  if constexpr (!kGemmStrips) return;
  const int T = 8;
  Layer L(B, K, T);
  Buffer strips{size_t(L.P) * K * 64};
  for (int p = 0; p < L.P; ++p)
    for (int g = 0; g < 4; ++g)
      for (int k = 0; k < K; ++k)
        std::memcpy(strips.data() + ((size_t(p) * 4 + g) * K + k) * 16,
                    L.w_hh.data() + (size_t(p) * K + k) * 64 + 16 * g, 16 * sizeof(float));
  const auto steps = [&](bool split, bool dots) {
    lstm_steps(L, T, !dots, dots, [&](StepArgs& s) {
      s.far_weights = far;
      if (split) s.w = strips.data(), s.wf.split = true;
    });
  };
  std::vector<float> y_rows;
  for (const bool split : {false, true}) {
    std::fill(L.h[0].data(), L.h[0].data() + size_t(B) * K, 0.25f);
    std::fill(L.c.data(), L.c.data() + size_t(B) * K, 0.5f);
    steps(split, false);
    if (!split) {
      y_rows.assign(L.y.data(), L.y.data() + size_t(T) * B * K);
    } else if (std::memcmp(y_rows.data(), L.y.data(), sizeof(float) * T * B * K) != 0) {
      std::fprintf(stderr, "step_layouts: B %d K %d: strips give other bits\n", B, K);
      std::exit(1);
    }
  }
  const double flops = 2.0 * B * 4 * K * K * T;
  for (const bool dots : {false, true})
    for (const bool split : {false, true}) {
      const double s = best_seconds([&] { steps(split, dots); }, 40);
      char name[64];
      std::snprintf(name, sizeof name, "step_%s_B%d_H%d_%s%s", split ? "strips" : "panels", B, K,
                    dots ? "dots" : "full", far ? "_far" : "");
      report(name, flops / s * 1e-9, "GFLOP/s");
    }
}

}  // namespace
}  // namespace fastrnn

int main(int argc, char** argv) {
  using namespace fastrnn;
  // `anatomy [quick] [int8] [layouts]`: int8 alone skips the float32 figures; layouts runs
  // only the weight layouts' comparisons.
  bool int8_only = false, layouts_only = false;
  for (int i = 1; i < argc; ++i) {
    g_quick |= std::string(argv[i]) == "quick";
    int8_only |= std::string(argv[i]) == "int8";
    layouts_only |= std::string(argv[i]) == "layouts";
  }
  if (layouts_only) {
    gemm_layouts(32, 300);
    step_layouts(32, 256);
    step_layouts(64, 512);
    step_layouts(1, 256);
    step_layouts(1, 1024);
    step_layouts(3, 256);
    step_layouts(4, 1536, true);
    return 0;
  }
  if (!int8_only) {
    batched(64, 512);
    batched(8, 256);
    batch1(256, 16, "all");  // LSTM I = H = 256: 16 gate panels, W_ih + W_hh = 2 MiB
    batch1(256, 8, "half");  // what each of 2 threads owns: 1 MiB
    gemm_layouts(32, 300);   // a G_x chunk of bilstm_text's first layer (one step)
    gemm_layouts(64, 512);   // and of tput_lstm_512's
    step_layouts(32, 256);   // bilstm_text's steps
    step_layouts(64, 512);   // tput_lstm_512's
    step_layouts(1, 256);    // lat_lstm_256's
    step_layouts(1, 1024);   // lat_lstm_1024's
  }
  int8_gemm(16, 1024);  // a time chunk of lat_lstm_1024's input projection (int8)
  int8_gemm(96, 512);   // a chunk of rows of a batched layer
#ifdef __AVX2__
  int8_tile_4x16(16, 1024);  // the same two shapes through a candidate tile (above)
  int8_tile_4x16(96, 512);
#endif
  int8_step(1, 1024);  // lat_lstm_1024's steps: 4 MiB of int8 W_hh each
  int8_step(1, 256);   // lat_lstm_256's: 256 KiB
  int8_step(64, 512);  // tput_lstm_512's: 64 rows, 1 MiB
  return 0;
}
