#include "ops/forward-plan.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "core/threads.h"

namespace fastrnn {
namespace {

// A step below this many multiply-adds per thread is faster on one core than split:
// the per-step barrier (~0.1–0.3 us) would eat the gain.
constexpr double kMinMacsPerThread = 64.0 * 1024;

// Below this batch size a unidirectional stack of small layers may run as a wavefront.
constexpr int64_t kWavefrontRows = 6;

// A layer step of at least this many multiply-adds (~0.5 us) amortises a wavefront tick's
// barrier; below it a stack stays on one thread.
constexpr double kMinWavefrontMacs = 8.0 * 1024;

size_t mul_checked(size_t a, size_t b) {
  if (a != 0 && b > SIZE_MAX / a) throw std::length_error("fastrnn: workspace size overflows");
  return a * b;
}

// Multiply-adds of one direction's recurrent step (W_hh, and W_hr with a projection).
double layer_step_macs(const RnnModel& m, int64_t B) {
  const RnnConfig& cfg = m.cfg;
  return static_cast<double>(B) * m.geo.gates * cfg.hidden_size *
         (cfg.h_out() + (cfg.proj_size > 0 ? 1 : 0));
}

// How a call uses its threads. Each layer step is split across threads (hidden units, or
// batch rows) when it is large enough; a unidirectional stack of small layers instead runs
// as a wavefront: thread j owns layers j, j + nt, ..., and at tick k layer l takes its
// chunk of steps k − l, so the layers run side by side, one barrier per tick (see
// Forward::run_wavefront). T: the call's sequence length (the wavefront needs a few ticks
// per layer to fill).
void threads_choose(ForwardPlan& p, const RnnModel& m, int max_threads) {
  const RnnConfig& cfg = m.cfg;
  // Never more threads than the machine offers: an oversubscribed team waits out time slices
  // at every step's barrier.
  max_threads = std::max(1, std::min(max_threads, threads_hardware()));
  const double macs = layer_step_macs(m, p.B) * cfg.num_directions;
  int nt = static_cast<int>(std::min<double>(max_threads, macs / kMinMacsPerThread));
  // Useful split units: panels of both directions, or batch rows.
  const int64_t units = std::max<int64_t>(static_cast<int64_t>(m.panels) * cfg.num_directions, p.B);
  nt = static_cast<int>(std::min<int64_t>(nt, units));
  // A reversed stack runs layer by layer too: its spans would run backwards through the
  // layers' sequence buffers.
  p.schedule = cfg.num_directions == 2 || cfg.reverse ? Schedule::kLayerByLayer : Schedule::kSpans;
  if (nt <= 1 && max_threads > 1 && cfg.num_directions == 1 && !cfg.reverse && cfg.num_layers > 1 &&
      p.B < kWavefrontRows && macs >= kMinWavefrontMacs && p.T >= 4 * cfg.num_layers) {
    p.threads = std::min(max_threads, cfg.num_layers);
    p.schedule = Schedule::kWavefront;
    return;
  }
  p.threads = std::max(1, nt);
}

// The input projection computed ahead inside the steps (Forward::layer_chunk) pays when
// both weight matrices stay in cache across steps: the steps then stream W_ih as well as
// W_hh, and from beyond the cache that costs more than the projection's FMAs saved (the
// bound on the weights, or on a thread's share of them, comes from the caches: see
// ops/blocking.cc); and when a step is large enough for the bookkeeping per panel (≥ 64 Ki
// multiply-adds: H = I = 64 4% slower, H = I = 128 4% faster).
// And only on cores whose FMA slots a batch-1 step leaves idle: AVX-512 on 256-bit units
// (Zen 4: lat_lstm_256 -2% at 1 thread, -11% at 2; lat_lstm_512 -6%). Where the units are
// 512 bits wide it did not pay (Sapphire Rapids-class Xeon, size rules lifted, median of
// 200 alternating calls, ahead vs plain: LSTM I = H = 128 +1% / +2% at 1 / 2 threads, 160
// +2% / +5%, 192 -0.4% / -3%, 256 +17% / -3%; GRU 192 +5% / +5%, 256 +6% / +3%), so the
// AVX-512 table skips it there. AVX2 has no registers left for it (ahead_rows 0).
std::atomic<int> g_ahead_override{-1};

bool ahead_on_this_cpu(const KernelTable& k) {
  const int mode = g_ahead_override.load(std::memory_order_relaxed);
  if (k.ahead_rows == 0 || mode == 0) return false;
  // Both AVX-512 tables (avx512, avx512bf16) run the same fp32 kernels.
  return mode == 1 || std::strncmp(k.isa, "avx512", 6) != 0 || cpu_features().avx512_half_width;
}

// Whether layer l computes its input projection ahead, inside the steps, at batch B with
// `threads` threads splitting its panels (where the weights stay in each core's own L2,
// each thread holds only its share: see ops/blocking.h).
bool layer_projects_ahead(const RnnModel& m, int layer, int64_t B, int threads,
                          const KernelTable& k, const Blocking& blocking) {
  constexpr double kMinMacs = 64.0 * 1024;
  const RnnConfig& cfg = m.cfg;
  if (!ahead_on_this_cpu(k)) return false;
  // Reduced weights: the steps' dot products are integer or bf16 ones with packed
  // activations, which have no projection to interleave (kernels/reduced/reduced-dot.h).
  if (cfg.dtype != WeightType::kF32) return false;
  if (B != 1 || cfg.num_directions != 1) return false;
  const PackedWeights& w = m.weights[layer];
  // The ahead tiles read W_ih in whole panel rows (a model packed by a table that takes
  // strips, then run by one that projects ahead: tests, set_isa).
  if (w.f_ih.split) return false;
  const size_t bytes = sizeof(float) * blocking.share(w.w_ih.size() + w.w_hh.size(), threads);
  const double macs =
      static_cast<double>(m.geo.gates) * cfg.hidden_size * (cfg.layer_input(layer) + cfg.h_out());
  return bytes <= blocking.ahead_max_weight_bytes && macs >= kMinMacs;
}

// bf16 weights on a table whose many-row kernels are weight-only (no bf16 dot products for
// every row: AVX2, AVX-512 without AVX512_BF16, Intel without AMX) widen the pairs at every
// step: in registers for row blocks of up to kBf16StepRows (kernels/vec/vec-*.h), or from
// kBf16SummedRows rows of a thread's slice on (AVX2: 12) a depth block at a time into the L1
// and through the fp32 loops; the same bits as the fp32 kernels on the rounded weights. A
// call of kWidenRows rows and kWidenMinSteps steps or more widens every matrix once
// instead, into the workspace of the thread that runs it, and runs the fp32 kernels
// themselves: the same bits again, and the cost of widening is out of the steps. Zen 5,
// over fp32's time, per step (depth blocks / in registers) against once per call:
//   AVX2, B = 64, H = 512, T = 100, 2 layers     1.04-1.07x / -     against 0.99-1.00x
//   (GRU 1.02-1.08x against 0.97-1.03x; AVX-512 without BF16 1.06x against 1.00x)
//   AVX2, B = 32, H = 1024, T = 32               1.04x / -          against 1.01x
//   AVX2, B = 4, H = 256, T = 4 / 8 / 16         1.15x / 1.00x      against 1.18 / 1.09 / 1.05x
//   AVX2, B = 4, H = 1024, T = 16 / 64           0.92 / 1.04x (depth blocks) against 1.11 / 1.05x
//   AVX-512, B = 64, T = 4                       1.07x / 1.03x;  B = 16: 1.14x / 1.01x
// Below kWidenRows rows the register tiles leave nothing to win, and at a few rows the
// half-size bf16 weights stream from beyond the caches faster than a float32 copy. Never
// for models whose float32 copy would take more than kWidenMaxBytes.
constexpr int64_t kWidenMinSteps = 8;
constexpr int64_t kWidenRows = 32;
constexpr int64_t kWidenMaxBytes = int64_t{256} << 20;

bool bf16_widen(const RnnModel& m, int64_t B, int64_t T, const KernelTable& k) {
  if (m.cfg.dtype != WeightType::kBf16 || B < kWidenRows || T < kWidenMinSteps) return false;
  if (k.bf16_dot && bf16_dot_rows()) return false;  // every row takes bf16 dot products
  const int64_t floats = widened_floats(m);
  return floats >= 0 && floats <= kWidenMaxBytes / static_cast<int64_t>(sizeof(float));
}

}  // namespace

const char* schedule_name(Schedule s) {
  switch (s) {
    case Schedule::kSpans:
      return "spans";
    case Schedule::kLayerByLayer:
      return "layer-by-layer";
    case Schedule::kWavefront:
      return "wavefront";
  }
  return "?";
}

size_t ForwardPlan::workspace_floats(int layers_x_directions) const {
  const size_t LD = static_cast<size_t>(layers_x_directions);
  size_t per_layer = mul_checked(2, h);
  per_layer += c + r;
  size_t total = mul_checked(LD, per_layer);
  for (size_t n : {gx[0], gx[1], seq[0], seq[1], wide}) {
    if (total > SIZE_MAX - n) throw std::length_error("fastrnn: workspace size overflows");
    total += n;
  }
  return total;
}

ForwardPlan forward_plan(const RnnModel& m, int64_t B, int64_t T, int threads, const KernelTable& k,
                         const Blocking& blocking) {
  const RnnConfig& cfg = m.cfg;
  ForwardPlan p;
  p.B = B;
  p.T = T;
  threads_choose(p, m, threads);
  const bool wavefront = p.schedule == Schedule::kWavefront;
  const int D = cfg.num_directions, L = cfg.num_layers, H_out = cfg.h_out();
  const bool proj = m.proj_panels > 0, classic = cfg.classic_gru();
  p.gcols = m.panels * m.geo.cols();
  p.ld_c = m.panels * kLanes;
  // The state row covers whole panels of whichever stage writes h.
  p.ld_h = proj ? m.proj_panels * kProjectionGeometry.units : m.panels * m.geo.units;
  // Hidden split when every thread gets at least one panel; else batch split (a wavefront
  // gives each thread whole layers).
  p.batch_split = !wavefront && p.threads > 1 && m.panels * D < p.threads;
  // Threads that split one direction's panels, each holding its share of the weights.
  p.panel_threads = wavefront || p.batch_split ? 1 : std::max(1, p.threads / D);
  // The classic GRU's first phase reads other panels (2 gates) than W_ih's (3): its steps
  // take the chunk's projection.
  p.inline_projection = T == 1 && !classic;
  p.many_rows = B >= kManyRows;
  p.widen = bf16_widen(m, B, T, k);
  if (p.widen) p.wide = static_cast<size_t>(widened_floats(m));
  // The largest layer's W_ih and W_hh (widened: twice the bf16 pairs' dwords).
  size_t w_ih_floats = 0, w_hh_floats = 0;
  for (const PackedWeights& w : m.weights) {
    w_ih_floats = std::max(w_ih_floats, w.w_ih.size() * (p.widen ? 2 : 1));
    w_hh_floats = std::max(w_hh_floats, w.w_hh.size() * (p.widen ? 2 : 1));
  }
  // fp32 W_hh (a thread's share) larger than the near cache streams from beyond it at every
  // step, and the many-row steps prefetch it (step-driver.h). Where the near cache is a
  // core's L2 and the ISA's many-row tiles hold whole panels (each row block prefetching
  // its share of the next panel), from half the L2 on: the chunk's G_x takes the other half
  // (ops/blocking.cc), so a larger W_hh does not stay either. Sapphire Rapids-class Xeon (L2
  // 2 MiB), B = 64, T = 100, I = H, 2 layers, AVX-512, alternating processes, medians of 4:
  // LSTM H = 512 at 2 threads (2 MiB per thread) 0.97x the time, GRU H = 384 at 1 thread
  // (1.7 MiB) 0.96x, GRU H = 512 at 2 threads (1.5 MiB) level. AVX2's GEMM tiles took 1.03x
  // on that GRU (5 and 7 rounds), so they keep the whole L2.
  const bool whole_panel_tiles = k.tiles.step_cols == 4 * 16;
  const size_t far_from =
      whole_panel_tiles && blocking.near_is_private ? blocking.near_bytes / 2 : blocking.near_bytes;
  p.far_weights = (cfg.dtype == WeightType::kF32 || p.widen) &&
                  sizeof(float) * blocking.share(w_hh_floats, p.panel_threads) > far_from;
  const size_t rows = static_cast<size_t>(B);

  // Every chunk reads all of W_ih again. From the near cache that costs little, but a
  // large W_ih (blocking.large_w_ih_floats per direction, or per thread's share) is better
  // amortised by a chunk's G_x of half its size (see ops/blocking.cc).
  const size_t budget = blocking.share(w_ih_floats, p.panel_threads) >= blocking.large_w_ih_floats
                            ? std::max(blocking.gx_chunk_floats, w_ih_floats / 2 * D)
                            : blocking.gx_chunk_floats;
  p.chunk = static_cast<int64_t>(std::clamp<size_t>(
      budget / std::max<size_t>(1, mul_checked(rows * D, p.gcols)), 1, static_cast<size_t>(T)));

  p.h = mul_checked(rows, p.ld_h);
  // c: LSTM's cell state, or the classic GRU's z; r: LSTM's o ⊙ tanh(c) before the
  // projection, or the classic GRU's r ⊙ h.
  p.c = cfg.cell == CellKind::kLstm || classic ? mul_checked(rows, p.ld_c) : 0;
  p.r = proj || classic ? mul_checked(rows, p.ld_c) : 0;
  for (int d = 0; d < D; ++d) p.gx[d] = mul_checked(mul_checked(p.chunk, rows), p.gcols);
  // Layers below the last: a unidirectional stack runs span by span through all layers,
  // so two span-sized buffers (≈ one L2 each) suffice and memory does not grow with T. A
  // bidirectional layer needs the whole output of the layer below (its backward pass
  // starts at the end): one T-sized buffer, ping-ponged with the caller's y.
  const size_t row = mul_checked(rows, static_cast<size_t>(D) * H_out);
  p.span = T;
  if (wavefront) {
    // Ticks of T/16 steps (at least 1, at most a G_x chunk): the pipeline fills in L − 1
    // ticks, so short ticks waste little; each tick's input projection is one GEMM.
    p.wave_chunk = std::clamp<int64_t>((T + 15) / 16, 1, p.chunk);
    // A chunk of G_x per layer, and a two-chunk ring per layer boundary (layer l writes
    // chunk c while layer l + 1 reads chunk c − 1).
    const size_t chunk_rows = mul_checked(static_cast<size_t>(p.wave_chunk), rows);
    p.gx[0] = mul_checked(mul_checked(L, chunk_rows), p.gcols);
    p.seq[0] = mul_checked(mul_checked(static_cast<size_t>(2 * (L - 1)), p.wave_chunk), row);
  } else if (L > 1 && p.schedule == Schedule::kSpans) {
    // A layer runs a span of whole chunks (≈ blocking.span_floats of its output) before
    // the next layer takes it over: each layer's weights serve several steps in a row.
    p.span =
        p.chunk * static_cast<int64_t>(std::max<size_t>(
                      1, blocking.span_floats / std::max<size_t>(1, mul_checked(p.chunk, row))));
    p.span = std::min<int64_t>(p.span, T);
    p.seq[0] = mul_checked(p.span, row);
    if (L > 2) p.seq[1] = mul_checked(p.span, row);
  } else if (L > 1) {
    p.seq[0] = mul_checked(static_cast<size_t>(T), row);
  }

  // Batch 1, one direction, layer by layer: a layer whose weights stay in cache projects
  // a group of steps ahead (the kernel table's ahead_rows) inside the steps. A wavefront
  // projects each tick's chunk at once instead; a single step projects inline.
  p.ahead.assign(L, 0);
  if (!wavefront && !p.inline_projection && !classic && !cfg.reverse)
    for (int l = 0; l < L; ++l)
      if (layer_projects_ahead(m, l, B, p.panel_threads, k, blocking)) p.ahead[l] = k.ahead_rows;
  return p;
}

const ForwardPlan& forward_plan_step(const RnnModel& m, int64_t B, int threads,
                                     const KernelTable& k, const Blocking& blocking) {
  // What forward_plan reads besides its arguments: the CPUs this process may use
  // (threads_choose) and the ahead override. (bf16_dot_rows only from kWidenMinSteps steps.)
  struct Key {
    uint64_t model = 0;
    int64_t B = 0;
    int threads = 0, cpus = 0, ahead = 0;
    const KernelTable* k = nullptr;
    Blocking blocking;
    bool operator==(const Key& o) const {
      return model == o.model && B == o.B && threads == o.threads && cpus == o.cpus &&
             ahead == o.ahead && k == o.k && blocking == o.blocking;
    }
  };
  thread_local Key key;
  thread_local ForwardPlan plan;
  const Key now{
      m.id, B,       threads, threads_hardware(), g_ahead_override.load(std::memory_order_relaxed),
      &k,   blocking};
  if (!(now == key)) {
    key = Key{};  // a throwing forward_plan leaves no key behind
    plan = forward_plan(m, B, 1, threads, k, blocking);
    key = now;
  }
  return plan;
}

void forward_plan_ahead_override(int mode) {
  g_ahead_override.store(mode, std::memory_order_relaxed);
}

}  // namespace fastrnn
