#include "ops/rnn-forward.h"


#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/thread-pool.h"
#include "core/threads.h"
#include "cpu/kernel-select.h"
#include "ops/blocking.h"

namespace fastrnn {
namespace {

// A step below this many multiply-adds per thread is faster on one core than split:
// the per-step barrier (~0.1–0.3 us) would eat the gain.
constexpr double kMinMacsPerThread = 64.0 * 1024;

// From this batch size on, step kernels use the tall row block (see kernels/panel/step-driver.h):
// with AVX-512, batches of 4 and 5 then read each weight panel once per step in one 4- or
// 5-row block, instead of 3 + 1 or 3 + 2 rows in two passes (measured: B=4, H=1536, 17%
// faster; B=4, H=256, 18%). Their K runs in one chain then: results differ from the
// split-K order by float rounding (≤ 2.5e-7 seen), still the same for any thread count.
constexpr int64_t kManyRows = 4;

// Below this batch size a unidirectional stack of small layers may run as a wavefront.
constexpr int64_t kWavefrontRows = 6;

// A layer step of at least this many multiply-adds (~0.5 us) amortises a wavefront tick's
// barrier; below it a stack stays on one thread.
constexpr double kMinWavefrontMacs = 8.0 * 1024;

// Whether layer l computes its input projection ahead, inside the steps, at batch B with
// `threads` threads splitting its panels (defined below, with rnn_forward_projects_ahead).
bool layer_projects_ahead(const RnnModel& m, int layer, int64_t B, int threads,
                          const Blocking& blocking);

size_t mul_checked(size_t a, size_t b) {
  if (a != 0 && b > SIZE_MAX / a) throw std::length_error("fastrnn: workspace size overflows");
  return a * b;
}

// Reused across calls by each calling thread: no large allocation, no fresh page faults.
struct Workspace {
  AlignedBuffer gx[2];              // per direction: (chunk·B, panels·NV·16)
  std::vector<AlignedBuffer> h;     // per layer·D + direction, double-buffered: (B, ld_h)
  std::vector<AlignedBuffer> r;     // LSTM projection input o ⊙ tanh(c): (B, panels·16)
  std::vector<AlignedBuffer> c;     // LSTM cell state: (B, panels·16)
  AlignedBuffer seq[2];             // outputs of the layers below the last (see Forward)
  unsigned calls = 0;               // calls so far: alternates the panel order (sweep_)
};
thread_local Workspace t_workspace;

// Rows of a time-major sequence buffer that starts at time t0: row (t, b) is at
// base + ((t − t0)·B + b)·width.
struct SeqView {
  const float* base;
  int64_t t0;
};

// A later group of steps' input projection, computed by a batch-1 step along with its own
// dot products: x rows of the group (from x), G_x rows (to gx), and which share (part).
struct Ahead {
  const float* x = nullptr;
  float* gx = nullptr;
  int part = 0;
};

// The slice of work one thread owns for one direction.
struct Slice {
  int p0 = 0, p1 = 0;    // gate panels
  int q0 = 0, q1 = 0;    // projection panels (or, without projection, = gate panels)
  int b0 = 0, b1 = 0;    // batch rows
};

// Splits n items into nt contiguous ranges, direction-major, and returns thread tid's part
// of direction d.
void range_of(int n_per_dir, int D, int nt, int tid, int d, int& lo, int& hi) {
  const int n = n_per_dir * D;
  const int a = static_cast<int>(static_cast<int64_t>(n) * tid / nt);
  const int b = static_cast<int>(static_cast<int64_t>(n) * (tid + 1) / nt);
  lo = std::clamp(a - d * n_per_dir, 0, n_per_dir);
  hi = std::clamp(b - d * n_per_dir, 0, n_per_dir);
  if (hi < lo) hi = lo;
}

// How a call uses its threads. Each layer step is split across threads (hidden units, or
// batch rows) when it is large enough; a unidirectional stack of small layers instead runs
// as a wavefront: thread j owns layers j, j + nt, ..., and at tick k layer l takes its
// chunk of steps k − l, so the layers run side by side, one barrier per tick (see
// Forward::run_wavefront).
struct ThreadPlan {
  int nt = 1;
  bool wavefront = false;
};

// Multiply-adds of one direction's recurrent step (W_hh, and W_hr with a projection).
double layer_step_macs(const RnnModel& m, int64_t B) {
  const RnnConfig& cfg = m.cfg;
  return static_cast<double>(B) * m.geo.gates * cfg.hidden_size *
         (cfg.h_out() + (cfg.proj_size > 0 ? 1 : 0));
}

// T: the call's sequence length (the wavefront needs a few ticks per layer to fill).
ThreadPlan thread_plan(const RnnModel& m, int64_t B, int64_t T, int max_threads) {
  const RnnConfig& cfg = m.cfg;
  // Never more threads than the machine offers: an oversubscribed team waits out time slices
  // at every step's barrier (and libgomp may fail to start thousands of threads at all).
  max_threads = std::min(max_threads, threads_hardware());
  const double macs = layer_step_macs(m, B) * cfg.num_directions;
  int nt = static_cast<int>(std::min<double>(max_threads, macs / kMinMacsPerThread));
  // Useful split units: panels of both directions, or batch rows.
  const int64_t units = std::max<int64_t>(static_cast<int64_t>(m.panels) * cfg.num_directions, B);
  nt = static_cast<int>(std::min<int64_t>(nt, units));
  if (nt <= 1 && max_threads > 1 && cfg.num_directions == 1 && cfg.num_layers > 1 &&
      B < kWavefrontRows && macs >= kMinWavefrontMacs && T >= 4 * cfg.num_layers)
    return {std::min(max_threads, cfg.num_layers), true};
  return {std::max(1, nt), false};
}

class Forward {
 public:
  Forward(const RnnModel& m, const ForwardArgs& a, ThreadPlan plan)
      : m_(m),
        a_(a),
        k_(kernels()),
        blocking_(blocking_get()),
        nt_(plan.nt),
        wavefront_(plan.wavefront && plan.nt > 1) {
    const RnnConfig& cfg = m.cfg;
    D_ = cfg.num_directions;
    H_out_ = cfg.h_out();
    proj_ = m.proj_panels > 0;
    gcols_ = m.panels * m.geo.cols();
    ld_c_ = m.panels * kLanes;
    // The state row covers whole panels of whichever stage writes h.
    ld_h_ = proj_ ? m.proj_panels * kProjectionGeometry.units : m.panels * m.geo.units;
    // Hidden split when every thread gets at least one panel; else batch split (a
    // wavefront gives each thread whole layers).
    batch_split_ = !wavefront_ && nt_ > 1 && m.panels * D_ < nt_;
    const size_t B = static_cast<size_t>(a.B);
    // Threads that split one direction's panels, each holding its share of the weights.
    panel_threads_ = wavefront_ || batch_split_ ? 1 : std::max(1, nt_ / D_);
    const Blocking& blocking = blocking_;
    // Every chunk reads all of W_ih again. From the near cache that costs little, but a
    // large W_ih (blocking.large_w_ih_floats per direction, or per thread's share) is better
    // amortised by a chunk's G_x of half its size (see ops/blocking.cc).
    size_t w_ih_floats = 0;
    for (const PackedWeights& w : m.weights) w_ih_floats = std::max(w_ih_floats, w.w_ih.size());
    const size_t budget = blocking.share(w_ih_floats, panel_threads_) >= blocking.large_w_ih_floats
                              ? std::max(blocking.gx_chunk_floats, w_ih_floats / 2 * D_)
                              : blocking.gx_chunk_floats;
    chunk_ = static_cast<int>(std::clamp<size_t>(
        budget / std::max<size_t>(1, mul_checked(B * D_, gcols_)), 1, static_cast<size_t>(a.T)));
    Workspace& ws = t_workspace;
    const int L = cfg.num_layers, LD = L * D_;
    if (ws.h.size() < static_cast<size_t>(2 * LD)) ws.h.resize(2 * LD);
    if (ws.c.size() < static_cast<size_t>(LD)) ws.c.resize(LD);
    if (ws.r.size() < static_cast<size_t>(LD)) ws.r.resize(LD);
    for (int i = 0; i < LD; ++i) {
      ws.h[2 * i].resize(mul_checked(B, ld_h_));
      ws.h[2 * i + 1].resize(mul_checked(B, ld_h_));
      if (cfg.cell == CellKind::kLstm) ws.c[i].resize(mul_checked(B, ld_c_));
      if (proj_) ws.r[i].resize(mul_checked(B, ld_c_));
    }
    for (int d = 0; d < D_; ++d) ws.gx[d].resize(mul_checked(mul_checked(chunk_, B), gcols_));
    // Layers below the last: a unidirectional stack runs span by span through all layers,
    // so two span-sized buffers (≈ one L2 each) suffice and memory does not grow with T. A
    // bidirectional layer needs the whole output of the layer below (its backward pass
    // starts at the end): one T-sized buffer, ping-ponged with the caller's y.
    const size_t row = mul_checked(B, static_cast<size_t>(D_) * H_out_);
    span_ = a.T;
    if (wavefront_) {
      // Ticks of T/16 steps (at least 1, at most a G_x chunk): the pipeline fills in L − 1
      // ticks, so short ticks waste little; each tick's input projection is one GEMM.
      wave_chunk_ = static_cast<int>(std::clamp<int64_t>((a.T + 15) / 16, 1, chunk_));
      // A chunk of G_x per layer, and a two-chunk ring per layer boundary (layer l writes
      // chunk c while layer l + 1 reads chunk c − 1).
      const size_t chunk_rows = mul_checked(static_cast<size_t>(wave_chunk_), B);
      ws.gx[0].resize(mul_checked(mul_checked(L, chunk_rows), gcols_));
      ws.seq[0].resize(mul_checked(mul_checked(static_cast<size_t>(2 * (L - 1)), wave_chunk_),
                                   row));
    } else if (L > 1 && D_ == 1) {
      // A layer runs a span of whole chunks (≈ blocking.span_floats of its output) before
      // the next layer takes it over: each layer's weights serve several steps in a row.
      span_ = chunk_ * std::max<size_t>(1, blocking.span_floats / mul_checked(chunk_, row));
      span_ = std::min<int64_t>(span_, a.T);
      ws.seq[0].resize(mul_checked(span_, row));
      if (L > 2) ws.seq[1].resize(mul_checked(span_, row));
    } else if (L > 1) {
      ws.seq[0].resize(mul_checked(static_cast<size_t>(a.T), row));
    }
    sweep_ = static_cast<int>(ws.calls++ & 1u);
    ws_ = &ws;
  }

  void run(int tid, int nt, SpinBarrier& barrier) {
    Slice slice[2];
    for (int d = 0; d < D_; ++d) slice[d] = slice_of(tid, nt, d);
    bool sense = false;
    bool first = true;  // the first barrier may wait for a worker waking up: not contention
    const auto sync = [&] {
      if (!batch_split_) barrier.wait(sense, !first);
      first = false;
    };
    if (wavefront_)
      run_wavefront(tid, nt, sync);
    else if (D_ == 1)
      run_unidirectional(slice[0], sync);
    else
      run_bidirectional(slice, sync);
  }

 private:
  // The wavefront (see ThreadPlan), a chunk of wave_chunk_ steps per tick: at tick k the
  // thread that owns layer l runs its chunk k − l (input projection of the chunk, then its
  // steps), reading layer l − 1's output of that chunk from a two-chunk ring. One barrier
  // per tick; with L = 2 a call takes (T + wave_chunk_) steps' time instead of 2T.
  template <class Sync>
  void run_wavefront(int tid, int nt, Sync& sync) {
    const int L = m_.cfg.num_layers;
    const int64_t C = wave_chunk_, chunks = (a_.T + C - 1) / C;
    Slice all;
    all.p1 = m_.panels;
    all.q1 = proj_ ? m_.proj_panels : m_.panels;
    all.b1 = static_cast<int>(a_.B);
    const auto ring = [&](int l, int64_t c) {
      return ws_->seq[0].data() + (2 * l + (c & 1)) * C * a_.B * H_out_;
    };
    for (int l = tid; l < L; l += nt) state_init(l, 0, all);
    sync();
    for (int64_t k = 0; k < chunks + L - 1; ++k) {
      for (int l = tid; l < L; l += nt) {
        const int64_t c = k - l;
        if (c < 0 || c >= chunks) continue;
        const int64_t s0 = c * C, s1 = std::min(a_.T, s0 + C);
        const SeqView in = l == 0 ? SeqView{a_.x, 0} : SeqView{ring(l - 1, c), s0};
        float* out = l == L - 1 ? a_.y : ring(l, c);
        const int64_t out_t0 = l == L - 1 ? 0 : s0;
        float* gx = ws_->gx[0].data() + l * C * a_.B * gcols_;
        project_inputs(l, 0, all, in, s0, s1, gx);
        for (int64_t s = s0; s < s1; ++s) {
          step_gates(l, 0, all, out, out_t0, s, gx + (s - s0) * a_.B * gcols_);
          if (proj_) step_projection(l, 0, all, out, out_t0, s);
        }
      }
      sync();
    }
    for (int l = tid; l < L; l += nt) state_final(l, 0, all);
  }

  // Span-outer, layer-inner: each span of time steps (whole chunks) passes through every
  // layer while its activations are still in cache; layer state persists across spans.
  template <class Sync>
  void run_unidirectional(const Slice& slice, Sync& sync) {
    const int L = m_.cfg.num_layers;
    for (int l = 0; l < L; ++l) state_init(l, 0, slice);
    sync();
    for (int64_t S0 = 0; S0 < a_.T; S0 += span_) {
      const int64_t S1 = std::min<int64_t>(a_.T, S0 + span_);
      for (int l = 0; l < L; ++l) {
        const SeqView in = l == 0 ? SeqView{a_.x, 0} : SeqView{ws_->seq[(l - 1) % 2].data(), S0};
        float* out = l == L - 1 ? a_.y : ws_->seq[l % 2].data();
        const int64_t out_t0 = l == L - 1 ? 0 : S0;
        for (int64_t s0 = S0; s0 < S1; s0 += chunk_)
          layer_chunk(l, &slice, in, out, out_t0, s0, std::min<int64_t>(S1, s0 + chunk_), sync);
      }
    }
    for (int l = 0; l < L; ++l) state_final(l, 0, slice);
  }

  // Layer-outer: the last layer writes y, the ones below alternate between a workspace
  // buffer and y, so that layer l never reads the buffer it writes.
  template <class Sync>
  void run_bidirectional(const Slice* slice, Sync& sync) {
    const int L = m_.cfg.num_layers;
    const auto output_of = [&](int l) { return (L - 1 - l) % 2 == 0 ? a_.y : ws_->seq[0].data(); };
    for (int l = 0; l < L; ++l) {
      const SeqView in{l == 0 ? a_.x : output_of(l - 1), 0};
      for (int d = 0; d < D_; ++d) state_init(l, d, slice[d]);
      sync();
      for (int64_t s0 = 0; s0 < a_.T; s0 += chunk_)
        layer_chunk(l, slice, in, output_of(l), 0, s0, std::min<int64_t>(a_.T, s0 + chunk_),
                    sync);
      for (int d = 0; d < D_; ++d) state_final(l, d, slice[d]);
    }
  }

  // Steps [s0, s1) of layer l, all directions: input projection, then the recurrence with
  // one barrier per step (two with a projection).
  template <class Sync>
  void layer_chunk(int l, const Slice* slice, SeqView in, float* out, int64_t out_t0,
                   int64_t s0, int64_t s1, Sync& sync) {
    // Batch 1, one direction: only the first group of steps' input projection comes first;
    // each group's steps compute the next group's, between their own dot products (see
    // StepArgs::ahead). A last group shorter than kernels().ahead_rows is projected
    // plainly at the first step of the group before it, whose steps then compute nothing
    // ahead.
    // A single-step call (a stream's step) projects each panel's inputs right before the
    // panel's dot products instead (StepArgs::in): the step then sweeps W_ih and W_hh
    // panel by panel, and alternate calls sweep back, starting on what stayed in cache.
    const bool inline_projection = a_.T == 1;
    const int group =
        !inline_projection && layer_projects_ahead(m_, l, a_.B, panel_threads_, blocking_)
            ? k_.ahead_rows
            : 0;
    if (group > 0)
      project_inputs(l, 0, slice[0], in, s0, std::min<int64_t>(s1, s0 + group),
                     ws_->gx[0].data());
    else if (!inline_projection)
      for (int d = 0; d < D_; ++d)
        project_inputs(l, d, slice[d], in, s0, s1, ws_->gx[d].data());
    for (int64_t s = s0; s < s1; ++s) {
      Ahead ahead;
      if (group > 0) {
        const int64_t next = s0 + ((s - s0) / group + 1) * group;
        float* gx_next = ws_->gx[0].data() + (next - s0) * gcols_;
        if (next + group <= s1) {
          const int I = m_.cfg.layer_input(l);
          ahead.x = in.base + (next - in.t0) * I;
          ahead.gx = gx_next;
          ahead.part = static_cast<int>((s - s0) % group);
        } else if (next < s1 && (s - s0) % group == 0) {
          project_inputs(l, 0, slice[0], in, next, s1, gx_next);
        }
      }
      for (int d = 0; d < D_; ++d)
        step_gates(l, d, slice[d], out, out_t0, s,
                   ws_->gx[d].data() + gx_row(d, time_of(d, s), s0) * gcols_, ahead,
                   inline_projection ? &in : nullptr);
      if (proj_) {
        sync();
        for (int d = 0; d < D_; ++d) step_projection(l, d, slice[d], out, out_t0, s);
      }
      sync();
    }
  }

  Slice slice_of(int tid, int nt, int d) const {
    Slice s;
    if (batch_split_) {
      s.p1 = m_.panels;
      s.q1 = m_.proj_panels;
      s.b0 = static_cast<int>(a_.B * tid / nt);
      s.b1 = static_cast<int>(a_.B * (tid + 1) / nt);
    } else {
      range_of(m_.panels, D_, nt, tid, d, s.p0, s.p1);
      if (proj_) range_of(m_.proj_panels, D_, nt, tid, d, s.q0, s.q1);
      s.b1 = static_cast<int>(a_.B);
    }
    if (!proj_) {
      s.q0 = s.p0;
      s.q1 = s.p1;
    }
    return s;
  }

  // Units [u0, u1) of the state rows this thread writes: whole panels, clipped to n.
  static void units_of(int p0, int p1, int per_panel, int n, int& u0, int& u1) {
    u0 = std::min(n, p0 * per_panel);
    u1 = std::min(n, p1 * per_panel);
  }

  int h_units_per_panel() const {
    return proj_ ? kProjectionGeometry.units : m_.geo.units;
  }

  // Copies h0 / c0 (or zeros) into the buffer that step 0 reads.
  void state_init(int l, int d, const Slice& s) {
    const int ld = l * D_ + d;
    const int64_t B = a_.B;
    float* h = ws_->h[2 * ld + 1].data();
    int u0, u1;
    // Padding units are zeroed too: whole panels of this slice.
    u0 = s.q0 * h_units_per_panel();
    u1 = s.q1 * h_units_per_panel();
    const int valid = std::max(0, std::min(u1, H_out_) - u0);
    for (int64_t b = s.b0; b < s.b1; ++b) {
      float* row = h + b * ld_h_ + u0;
      std::memset(row, 0, sizeof(float) * (u1 - u0));
      if (a_.h0 && valid > 0)
        std::memcpy(row, a_.h0 + (ld * B + b) * H_out_ + u0, sizeof(float) * valid);
    }
    if (m_.cfg.cell != CellKind::kLstm) return;
    float* c = ws_->c[ld].data();
    const int H = m_.cfg.hidden_size;
    u0 = s.p0 * kLanes;
    u1 = s.p1 * kLanes;
    const int cvalid = std::max(0, std::min(u1, H) - u0);
    for (int64_t b = s.b0; b < s.b1; ++b) {
      float* row = c + b * ld_c_ + u0;
      std::memset(row, 0, sizeof(float) * (u1 - u0));
      if (a_.c0 && cvalid > 0)
        std::memcpy(row, a_.c0 + (ld * B + b) * H + u0, sizeof(float) * cvalid);
    }
  }

  void state_final(int l, int d, const Slice& s) {
    const int ld = l * D_ + d;
    const int64_t B = a_.B;
    const float* h = ws_->h[2 * ld + ((a_.T - 1) & 1)].data();
    int u0, u1;
    units_of(s.q0, s.q1, h_units_per_panel(), H_out_, u0, u1);
    for (int64_t b = s.b0; b < s.b1 && u1 > u0; ++b)
      std::memcpy(a_.h_n + (ld * B + b) * H_out_ + u0, h + b * ld_h_ + u0,
                  sizeof(float) * (u1 - u0));
    if (m_.cfg.cell != CellKind::kLstm) return;
    const int H = m_.cfg.hidden_size;
    units_of(s.p0, s.p1, kLanes, H, u0, u1);
    for (int64_t b = s.b0; b < s.b1 && u1 > u0; ++b)
      std::memcpy(a_.c_n + (ld * B + b) * H + u0, ws_->c[ld].data() + b * ld_c_ + u0,
                  sizeof(float) * (u1 - u0));
  }

  // Time index of step s in direction d.
  int64_t time_of(int d, int64_t s) const { return d == 0 ? s : a_.T - 1 - s; }

  // Row of G_x holding (time t, batch 0) within the chunk of steps [s0, s0 + chunk).
  int64_t gx_row(int d, int64_t t, int64_t s0) const {
    const int64_t s1 = std::min<int64_t>(a_.T, s0 + chunk_);
    const int64_t first_time = d == 0 ? s0 : a_.T - s1;
    return (t - first_time) * a_.B;
  }

  // G_x = X · W_ihᵀ + b for the chunk's time steps, this slice's panels and rows.
  // gx: where the chunk's G_x goes, (steps·B, gcols_).
  void project_inputs(int l, int d, const Slice& s, SeqView in, int64_t s0, int64_t s1,
                      float* gx) {
    if (s.p1 <= s.p0 || s.b1 <= s.b0) return;
    const PackedWeights& w = m_.weights[l * D_ + d];
    const int64_t first_time = d == 0 ? s0 : a_.T - s1;
    const int64_t steps = s1 - s0;
    const int I = m_.cfg.layer_input(l);  // layer 0: x rows (I); above: D·H_out
    const auto row = [&](int64_t t, int64_t b) { return in.base + ((t - in.t0) * a_.B + b) * I; };
    GemmArgs g;
    g.lda = I;
    g.w = w.w_ih.data();
    g.K = I;
    g.nv = m_.geo.vectors;
    g.p0 = s.p0;
    g.p1 = s.p1;
    g.bias = w.bias.data();
    g.ldc = gcols_;
    if (s.b0 == 0 && s.b1 == a_.B) {
      // All rows of the chunk are contiguous: one GEMM over steps·B rows.
      g.a = row(first_time, 0);
      g.rows = static_cast<int>(steps * a_.B);
      g.c = gx;
      k_.gemm(g);
      return;
    }
    for (int64_t t = first_time; t < first_time + steps; ++t) {
      g.a = row(t, s.b0);
      g.rows = s.b1 - s.b0;
      g.c = gx + (gx_row(d, t, s0) + s.b0) * gcols_;
      k_.gemm(g);
    }
  }

  // gx: the G_x rows of this step, (B, gcols_); ahead: a later group's input projection
  // rows to compute along (batch 1, see layer_chunk), or none; in: when not null, the step
  // computes its own G_x rows from this input, panel by panel (see layer_chunk).
  void step_gates(int l, int d, const Slice& s, float* out, int64_t out_t0, int64_t step,
                  float* gx, const Ahead& ahead = Ahead{}, const SeqView* in = nullptr) {
    if (s.p1 <= s.p0 || s.b1 <= s.b0) return;
    const int ld = l * D_ + d;
    const PackedWeights& w = m_.weights[ld];
    const int cur = step & 1, prev = cur ^ 1;
    const int64_t t = time_of(d, step);
    StepArgs a{};
    a.w = w.w_hh.data();
    a.K = H_out_;
    a.p0 = s.p0;
    a.p1 = s.p1;
    a.b0 = s.b0;
    a.b1 = s.b1;
    a.h_prev = ws_->h[2 * ld + prev].data();
    a.ld_h_prev = ld_h_;
    a.gx = gx;
    a.ld_gx = gcols_;
    a.lengths = a_.lengths;
    a.t = t;
    a.many_rows = a_.B >= kManyRows;
    a.sweep = sweep_;
    const int I = m_.cfg.layer_input(l);
    if (in != nullptr)
      a.in = {in->base + (t - in->t0) * a_.B * I, I, I, w.w_ih.data(), w.bias.data(), gx};
    if (ahead.gx != nullptr) {
      a.ahead = {ahead.x, I, I, w.w_ih.data(), w.bias.data(), ahead.gx};
      a.ahead_part = ahead.part;
    }
    if (proj_) {
      // Gates write r = o ⊙ tanh(c); the projection step then writes h and the output.
      a.h = ws_->r[ld].data();
      a.ld_h = ld_c_;
    } else {
      a.carry = a.h_prev;
      a.ld_carry = ld_h_;
      a.h = ws_->h[2 * ld + cur].data();
      a.ld_h = ld_h_;
      a.y = out + (t - out_t0) * a_.B * D_ * H_out_ + d * H_out_;
      a.ld_y = D_ * H_out_;
      a.y_cols = H_out_;
    }
    switch (m_.cfg.cell) {
      case CellKind::kLstm:
        a.c = ws_->c[ld].data();
        a.ld_c = ld_c_;
        k_.lstm_step(a);
        break;
      case CellKind::kGru:
        a.b_hn = w.b_hn.size() ? w.b_hn.data() : nullptr;
        k_.gru_step(a);
        break;
      case CellKind::kRnnTanh:
        k_.rnn_tanh_step(a);
        break;
      case CellKind::kRnnRelu:
        k_.rnn_relu_step(a);
        break;
    }
  }

  void step_projection(int l, int d, const Slice& s, float* out, int64_t out_t0, int64_t step) {
    if (s.q1 <= s.q0 || s.b1 <= s.b0) return;
    const int ld = l * D_ + d;
    const int cur = step & 1, prev = cur ^ 1;
    const int64_t t = time_of(d, step);
    StepArgs a{};
    a.w = m_.weights[ld].w_hr.data();
    a.K = m_.cfg.hidden_size;
    a.p0 = s.q0;
    a.p1 = s.q1;
    a.b0 = s.b0;
    a.b1 = s.b1;
    a.h_prev = ws_->r[ld].data();
    a.ld_h_prev = ld_c_;
    a.carry = ws_->h[2 * ld + prev].data();
    a.ld_carry = ld_h_;
    a.h = ws_->h[2 * ld + cur].data();
    a.ld_h = ld_h_;
    a.y = out + (t - out_t0) * a_.B * D_ * H_out_ + d * H_out_;
    a.ld_y = D_ * H_out_;
    a.y_cols = H_out_;
    a.lengths = a_.lengths;
    a.t = t;
    a.many_rows = a_.B >= kManyRows;
    a.sweep = sweep_;
    k_.projection_step(a);
  }

  const RnnModel& m_;
  const ForwardArgs& a_;
  const KernelTable& k_;
  const Blocking blocking_;  // read once per call: every thread decides alike
  Workspace* ws_ = nullptr;
  int nt_;
  int panel_threads_ = 1;
  bool wavefront_;
  int wave_chunk_ = 1;
  int D_ = 1, H_out_ = 0, gcols_ = 0, ld_c_ = 0, ld_h_ = 0, chunk_ = 1;
  int64_t span_ = 1;
  int sweep_ = 0;
  bool proj_ = false, batch_split_ = false;
};

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

bool ahead_on_this_cpu() {
  const int mode = g_ahead_override.load(std::memory_order_relaxed);
  if (kernels().ahead_rows == 0 || mode == 0) return false;
  return mode == 1 || std::strcmp(kernels().isa, "avx512") != 0 ||
         cpu_features().avx512_half_width;
}

bool layer_projects_ahead(const RnnModel& m, int layer, int64_t B, int threads,
                          const Blocking& blocking) {
  constexpr double kMinMacs = 64.0 * 1024;
  const RnnConfig& cfg = m.cfg;
  if (!ahead_on_this_cpu()) return false;
  if (B != 1 || cfg.num_directions != 1 || layer < 0 || layer >= cfg.num_layers) return false;
  const PackedWeights& w = m.weights[layer];
  const size_t bytes = sizeof(float) * blocking.share(w.w_ih.size() + w.w_hh.size(), threads);
  const double macs = static_cast<double>(m.geo.gates) * cfg.hidden_size *
                      (cfg.layer_input(layer) + cfg.h_out());
  return bytes <= blocking.ahead_max_weight_bytes && macs >= kMinMacs;
}

}  // namespace

bool rnn_forward_projects_ahead(const RnnModel& m, int layer, int64_t B, int threads) {
  return layer_projects_ahead(m, layer, B, threads, blocking_get());
}

void rnn_forward_ahead_override(int mode) {
  g_ahead_override.store(mode, std::memory_order_relaxed);
}

int rnn_forward_threads(const RnnModel& m, int64_t B, int max_threads) {
  return thread_plan(m, B, INT64_MAX, max_threads).nt;  // as for a long sequence
}

void rnn_forward(const RnnModel& model, const ForwardArgs& args) {
  if (args.T <= 0 || args.B <= 0) return;
  ThreadPlan plan = thread_plan(model, args.B, args.T, args.num_threads);
  if (plan.nt > 1 && threads_backing_off()) plan = ThreadPlan{};
  // The threads come from the process-wide pool: fewer than planned when other calls hold
  // cores, and a call that finds every core busy runs later on a pool thread (see
  // core/thread-pool.h). Then plan again for what there is (a stack that ran as a wavefront
  // at 2 threads runs layer by layer at 1).
  auto call = [&](ThreadTeam& team) {
    const ThreadPlan p =
        team.size() < plan.nt ? thread_plan(model, args.B, args.T, team.size()) : plan;
    const int nt = p.nt;
    Forward f(model, args, p);
    if (nt == 1) {
      SpinBarrier none(1);
      f.run(0, 1, none);
      return;
    }
    SpinBarrier barrier(nt);
    const int64_t start_ns = threads_now_ns();
    auto body = [&](int tid) {
      if (tid == 0) barrier.count_every_wait(!team.woke_sleeping());
      if (tid < nt) f.run(tid, nt, barrier);
    };
    team.run(body);
    // Contended: the waiting threads spent on average more than half the call waiting out
    // descheduled peers. (Uneven slices alone stay below that: a waiter waits at most as
    // long as it worked; averaged over the nt − 1 threads that can wait at each barrier.)
    const int64_t end_ns = threads_now_ns();
    threads_report(barrier.long_wait_ns() / (nt - 1) > (end_ns - start_ns) / 2, start_ns,
                   end_ns);
  };
  thread_pool_call(plan.nt, call);
}

}  // namespace fastrnn
