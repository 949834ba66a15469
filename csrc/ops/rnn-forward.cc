#include "ops/rnn-forward.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <vector>

#include "core/step-trace.h"
#include "core/thread-pool.h"
#include "core/threads.h"
#include "cpu/kernel-select.h"
#include "ops/blocking.h"
#include "ops/forward-plan.h"

namespace fastrnn {
namespace {

// Reused across calls by each calling thread: no large allocation, no fresh page faults.
struct Workspace {
  AlignedBuffer gx[2];           // per direction: (chunk·B, panels·NV·16)
  std::vector<AlignedBuffer> h;  // per layer·D + direction, double-buffered: (B, ld_h)
  std::vector<AlignedBuffer> r;  // LSTM projection input o ⊙ tanh(c): (B, panels·16)
  std::vector<AlignedBuffer> c;  // LSTM cell state: (B, panels·16)
  AlignedBuffer seq[2];          // outputs of the layers below the last (see Forward)
  AlignedBuffer wide;            // plan.widen: fp32 copies of the bf16 matrices
  unsigned calls = 0;            // calls so far: alternates the panel order (sweep_)
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
  int p0 = 0, p1 = 0;  // gate panels
  int q0 = 0, q1 = 0;  // projection panels (or, without projection, = gate panels)
  int b0 = 0, b1 = 0;  // batch rows
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

class Forward {
 public:
  // Runs plan `p` (ops/forward-plan.h) of model m on the arguments a with the kernels k;
  // allocates the calling thread's workspace to the plan's sizes.
  Forward(const RnnModel& m, const ForwardArgs& a, const ForwardPlan& p, const KernelTable& k)
      : m_(m), a_(a), p_(p), k_(k) {
    D_ = m.cfg.num_directions;
    H_out_ = m.cfg.h_out();
    proj_ = m.proj_panels > 0;
    classic_ = m.cfg.classic_gru();
    // Steps in two phases with a barrier between: the projection (LSTM), or the classic
    // GRU's candidate, over panels of their own (the slices' q ranges).
    q_panels_ = proj_ ? m.proj_panels : classic_ ? m.cand_panels : 0;
    gcols_ = p.gcols;
    ld_c_ = p.ld_c;
    ld_h_ = p.ld_h;
    chunk_ = p.chunk;
    // The first step reads h0 where it lies when its rows have the workspace's layout: then
    // no thread waits for the others' share of the initial state (a stream's step of one
    // layer on 2 threads meets at no barrier at all; see run_unidirectional).
    direct_h0_ = a.h0 != nullptr && ld_h_ == H_out_;
    Workspace& ws = t_workspace;
    const int LD = m.cfg.num_layers * D_;
    if (ws.h.size() < static_cast<size_t>(2 * LD)) ws.h.resize(2 * LD);
    if (ws.c.size() < static_cast<size_t>(LD)) ws.c.resize(LD);
    if (ws.r.size() < static_cast<size_t>(LD)) ws.r.resize(LD);
    for (int i = 0; i < LD; ++i) {
      ws.h[2 * i].resize(p.h);
      ws.h[2 * i + 1].resize(p.h);
      if (p.c) ws.c[i].resize(p.c);
      if (p.r) ws.r[i].resize(p.r);
    }
    for (int d = 0; d < 2; ++d) {
      if (p.gx[d]) ws.gx[d].resize(p.gx[d]);
      if (p.seq[d]) ws.seq[d].resize(p.seq[d]);
    }
    sweep_ = static_cast<int>(ws.calls++ & 1u);
    ws_ = &ws;
    if (p.widen) {
      // Decided once, so that every widening and every reader of this call agree.
      wide_strips_ = k.f32_strips && f32_strips_enabled();
      ws.wide.resize(p.wide);
      wide_.resize(static_cast<size_t>(LD) * kMatrices);
      float* at = ws.wide.data();
      for (int ld = 0; ld < LD; ++ld) {
        PackedMatrix mats[kMatrices];
        packed_matrices(m, ld, mats);
        for (int i = 0; i < kMatrices; ++i) {
          wide_[ld * kMatrices + i] = at;
          at += widened_floats(mats[i]);
        }
      }
      // Threads that split the batch read every panel: widened here, before they start.
      if (p.batch_split)
        for (int ld = 0; ld < LD; ++ld)
          widen_panels(ld, 0, m.panels, 0, std::max(m.proj_panels, m.cand_panels));
    }
  }

  // Whether the threads never meet at a barrier in this call: a single step of one layer whose
  // first step reads h0 where it lies (direct_h0_), without a second phase (projection,
  // classic GRU candidate). Then a tid may run after another on the same thread.
  bool barrier_free() const {
    return p_.schedule == Schedule::kSpans && a_.T == 1 && m_.cfg.num_layers == 1 &&
           q_panels_ == 0 && direct_h0_;
  }

  void run(int tid, int nt, SpinBarrier& barrier) {
    Slice slice[2];
    for (int d = 0; d < D_; ++d) slice[d] = slice_of(tid, nt, d);
    bool sense = false;
    bool first = true;  // the first barrier may wait for a worker waking up: not contention
    step_trace::thread_start(tid);
    const auto sync = [&] {
      step_trace::arrive(tid);
      if (!p_.batch_split) barrier.wait(sense, !first);
      step_trace::leave(tid);
      first = false;
    };
    switch (p_.schedule) {
      case Schedule::kWavefront:
        run_wavefront(tid, nt, sync);
        break;
      case Schedule::kSpans:
        run_unidirectional(slice[0], sync);
        break;
      case Schedule::kLayerByLayer:
        if (owns_whole_directions(nt)) {
          // Each thread runs whole directions, which share nothing within a layer: the
          // threads meet where a layer starts (after state_init), not at every step, and
          // one direction's short steps never wait for the other's long ones.
          const auto no_sync = [] {};
          run_bidirectional(slice, sync, no_sync, true);
        } else {
          run_bidirectional(slice, sync, sync);
        }
        break;
    }
  }

 private:
  // The wavefront (see ops/forward-plan.cc), a chunk of p_.wave_chunk steps per tick: at tick k the
  // thread that owns layer l runs its chunk k − l (input projection of the chunk, then its
  // steps), reading layer l − 1's output of that chunk from a two-chunk ring. One barrier
  // per tick; with L = 2 a call takes (T + wave_chunk) steps' time instead of 2T.
  template <class Sync>
  void run_wavefront(int tid, int nt, Sync& sync) {
    const int L = m_.cfg.num_layers;
    const int64_t C = p_.wave_chunk, chunks = (a_.T + C - 1) / C;
    Slice all;
    all.p1 = m_.panels;
    all.q1 = q_panels_ > 0 ? q_panels_ : m_.panels;
    all.b1 = static_cast<int>(a_.B);
    const auto ring = [&](int l, int64_t c) {
      return ws_->seq[0].data() + (2 * l + (c & 1)) * C * a_.B * H_out_;
    };
    for (int l = tid; l < L; l += nt) {
      widen(l, 0, all);
      state_init(l, 0, all);
    }
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
          float* gx_s = gx + (s - s0) * a_.B * gcols_;
          step_gates(l, 0, all, out, out_t0, s, gx_s);
          if (q_panels_ > 0) step_second(l, 0, all, out, out_t0, s, gx_s);
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
    for (int l = 0; l < L; ++l) {
      widen(l, 0, slice);
      state_init(l, 0, slice);
    }
    // Each thread's initial state (and widened panels) is its own slice's, read by itself
    // only: the threads need to meet here only when the first step reads h from there.
    if (!direct_h0_) sync();
    for (int64_t S0 = 0; S0 < a_.T; S0 += p_.span) {
      const int64_t S1 = std::min<int64_t>(a_.T, S0 + p_.span);
      for (int l = 0; l < L; ++l) {
        const SeqView in = l == 0 ? SeqView{a_.x, 0} : SeqView{ws_->seq[(l - 1) % 2].data(), S0};
        float* out = l == L - 1 ? a_.y : ws_->seq[l % 2].data();
        const int64_t out_t0 = l == L - 1 ? 0 : S0;
        for (int64_t s0 = S0; s0 < S1; s0 += chunk_) {
          const int64_t s1 = std::min<int64_t>(S1, s0 + chunk_);
          // After the call's last step each thread writes only its own slice's final state,
          // and the join follows: no barrier.
          layer_chunk(l, &slice, in, out, out_t0, s0, s1, sync, l == L - 1 && s1 == a_.T);
        }
      }
    }
    for (int l = 0; l < L; ++l) state_final(l, 0, slice);
  }

  // Whether every thread's slice of each direction is all of it or none (2 threads, 2
  // directions, the hidden units split: thread d runs direction d).
  bool owns_whole_directions(int nt) const {
    if (p_.batch_split || D_ == 1) return false;
    for (int tid = 0; tid < nt; ++tid)
      for (int d = 0; d < D_; ++d) {
        const Slice s = slice_of(tid, nt, d);
        const bool none = s.p1 <= s.p0 && s.q1 <= s.q0;
        const bool all = s.p0 == 0 && s.p1 == m_.panels && s.q0 == 0 &&
                         s.q1 == (q_panels_ > 0 ? q_panels_ : m_.panels);
        if (!none && !all) return false;
      }
    return true;
  }

  // Layer-outer: the last layer writes y, the ones below alternate between a workspace
  // buffer and y, so that layer l never reads the buffer it writes. sync where a layer
  // starts, step_sync after each step (see layer_chunk).
  // apart: the threads never meet within a layer (step_sync does nothing), so a thread runs
  // a chunk's steps one direction after the other (layer_chunk).
  template <class Sync, class StepSync>
  void run_bidirectional(const Slice* slice, Sync& sync, StepSync& step_sync, bool apart = false) {
    const int L = m_.cfg.num_layers;
    const auto output_of = [&](int l) { return (L - 1 - l) % 2 == 0 ? a_.y : ws_->seq[0].data(); };
    for (int l = 0; l < L; ++l) {
      const SeqView in{l == 0 ? a_.x : output_of(l - 1), 0};
      for (int d = 0; d < D_; ++d) {
        widen(l, d, slice[d]);
        state_init(l, d, slice[d]);
      }
      sync();
      for (int64_t s0 = 0; s0 < a_.T; s0 += chunk_)
        layer_chunk(l, slice, in, output_of(l), 0, s0, std::min<int64_t>(a_.T, s0 + chunk_),
                    step_sync, false, apart);
      for (int d = 0; d < D_; ++d) state_final(l, d, slice[d]);
    }
  }

  // Steps [s0, s1) of layer l, all directions: input projection, then the recurrence with
  // one barrier per step (two with a projection).
  // last: the call's last steps (run_unidirectional), whose last barrier the join replaces.
  // apart: no thread waits for another within the chunk (run_bidirectional), so the steps
  // run one direction after the other: the steps of one direction then sweep only its own
  // W_hh, back and forth (StepArgs::sweep), instead of both directions' in turn, whose sum
  // may not stay in the near cache (bilstm_text: 2 × 1 MiB against an L2 of 2 MiB or less).
  // The directions share nothing within a layer: the same values in another order.
  template <class Sync>
  void layer_chunk(int l, const Slice* slice, SeqView in, float* out, int64_t out_t0, int64_t s0,
                   int64_t s1, Sync& sync, bool last = false, bool apart = false) {
    // Batch 1, one direction: only the first group of steps' input projection comes first;
    // each group's steps compute the next group's, between their own dot products (see
    // StepArgs::ahead). A last group shorter than kernels().ahead_rows is projected
    // plainly at the first step of the group before it, whose steps then compute nothing
    // ahead.
    // A single-step call (a stream's step) projects each panel's inputs right before the
    // panel's dot products instead (StepArgs::in): the step then sweeps W_ih and W_hh
    // panel by panel, and alternate calls sweep back, starting on what stayed in cache.
    const bool inline_projection = p_.inline_projection;
    const int group = p_.ahead[l];
    if (group > 0)
      project_inputs(l, 0, slice[0], in, s0, std::min<int64_t>(s1, s0 + group), ws_->gx[0].data());
    else if (!inline_projection)
      for (int d = 0; d < D_; ++d) project_inputs(l, d, slice[d], in, s0, s1, ws_->gx[d].data());
    // Direction d's G_x rows of step s.
    const auto gx_of = [&](int d, int64_t s) {
      return ws_->gx[d].data() + gx_row(d, time_of(d, s), s0) * gcols_;
    };
    if (apart && group == 0 && !inline_projection) {
      for (int d = 0; d < D_; ++d)
        for (int64_t s = s0; s < s1; ++s) {
          step_gates(l, d, slice[d], out, out_t0, s, gx_of(d, s));
          if (q_panels_ > 0) step_second(l, d, slice[d], out, out_t0, s, gx_of(d, s));
        }
      return;
    }
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
        step_gates(l, d, slice[d], out, out_t0, s, gx_of(d, s), ahead,
                   inline_projection ? &in : nullptr);
      if (q_panels_ > 0) {
        sync();
        for (int d = 0; d < D_; ++d) step_second(l, d, slice[d], out, out_t0, s, gx_of(d, s));
      }
      if (!last || s + 1 < s1) sync();
    }
  }

  Slice slice_of(int tid, int nt, int d) const {
    Slice s;
    if (p_.batch_split) {
      s.p1 = m_.panels;
      s.q1 = q_panels_;
      s.b0 = static_cast<int>(a_.B * tid / nt);
      s.b1 = static_cast<int>(a_.B * (tid + 1) / nt);
    } else {
      range_of(m_.panels, D_, nt, tid, d, s.p0, s.p1);
      if (q_panels_ > 0) range_of(q_panels_, D_, nt, tid, d, s.q0, s.q1);
      s.b1 = static_cast<int>(a_.B);
    }
    if (q_panels_ == 0) {
      s.q0 = s.p0;
      s.q1 = s.p1;
    }
    return s;
  }

  // Matrix i (ops/pack.h MatrixIndex) of layer·direction ld as the kernels read it: the
  // model's packed weights, or (plan.widen) their fp32 copy in the workspace.
  struct Matrix {
    const float* w;
    WeightFormat wf;
  };
  // A float32 W_hh in strips on a table whose steps read whole panel rows: the model's copy
  // in panel rows (whole_rows_hh: the same weights, so the table's own bits).
  Matrix matrix(int ld, MatrixIndex i) const {
    if (p_.widen) {
      WeightFormat wf;
      wf.split = wide_strips(i);
      return {wide_[ld * kMatrices + i], wf};
    }
    PackedMatrix mats[kMatrices];
    packed_matrices(m_, ld, mats);
    const WeightFormat wf = mats[i].fmt->of(m_.cfg.dtype, amx_, bf16_rows_);
    if (i == kWhh && wf.split && wf.type == WeightType::kF32 && !k_.f32_strips)
      return {whole_rows_hh(m_, ld), WeightFormat{}};
    return {mats[i].buf->data(), wf};
  }

  // Where the plan widens bf16 weights (forward-plan.cc), each thread widens the panels its
  // slice reads (gate panels of W_ih and W_hh, second-phase panels of W_hr or W_hn) before
  // the layer's first step, and only it reads them: no barrier. Threads that split the
  // batch read every panel: the constructor widened them.
  void widen(int l, int d, const Slice& s) {
    if (p_.widen && !p_.batch_split) widen_panels(l * D_ + d, s.p0, s.p1, s.q0, s.q1);
  }
  void widen_panels(int ld, int p0, int p1, int q0, int q1) {
    PackedMatrix mats[kMatrices];
    packed_matrices(m_, ld, mats);
    for (int i = 0; i < kMatrices; ++i) {
      if (mats[i].buf == nullptr) continue;
      const bool second = i == kWhr || i == kWhn;
      widen_bf16_panels(mats[i], second ? q0 : p0, std::min(second ? q1 : p1, mats[i].panels),
                        wide_[ld * kMatrices + i], wide_strips(static_cast<MatrixIndex>(i)));
    }
  }
  // The widened copy of matrix i in 16-column strips: where this call's table packs float32
  // W_ih and W_hh so (KernelTable::f32_strips, unless switched off: f32_strips_enabled), for
  // the matrices a float32 model packs so (ops/pack.cc model_pack: the gate geometry's W_ih
  // and W_hh, not the classic GRU's W_hh), whose many-row steps and GEMM then run as
  // float32's. AMD Zen 3, one build, the two layouts alternating call by call in one process
  // (8 rounds, medians of the ratios), bf16 at 1 / 2 threads: bilstm_text 0.90x / 0.91x the
  // time of whole rows, tput_lstm_512 0.96x / 0.99x, tput_gru_512 0.97x / 1.00x; against
  // float32's time 0.99-1.03x, where whole rows took 1.00-1.14x.
  bool wide_strips(MatrixIndex i) const {
    return wide_strips_ && (i == kWih || (i == kWhh && !classic_));
  }

  // Units [u0, u1) of the state rows this thread writes: whole panels, clipped to n.
  static void units_of(int p0, int p1, int per_panel, int n, int& u0, int& u1) {
    u0 = std::min(n, p0 * per_panel);
    u1 = std::min(n, p1 * per_panel);
  }

  // Units of h per panel of whichever stage writes h (the slices' q ranges).
  int h_units_per_panel() const { return q_panels_ > 0 ? kProjectionGeometry.units : m_.geo.units; }

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
  // Whether direction d runs backwards in time: the backward direction of a bidirectional
  // layer, or a reversed unidirectional one.
  bool backwards(int d) const { return (d == 1) != m_.cfg.reverse; }
  int64_t time_of(int d, int64_t s) const { return backwards(d) ? a_.T - 1 - s : s; }

  // Row of G_x holding (time t, batch 0) within the chunk of steps [s0, s0 + chunk).
  int64_t gx_row(int d, int64_t t, int64_t s0) const {
    const int64_t s1 = std::min<int64_t>(a_.T, s0 + chunk_);
    const int64_t first_time = backwards(d) ? a_.T - s1 : s0;
    return (t - first_time) * a_.B;
  }

  // G_x = X · W_ihᵀ + b for the chunk's time steps, this slice's panels and rows.
  // gx: where the chunk's G_x goes, (steps·B, gcols_).
  void project_inputs(int l, int d, const Slice& s, SeqView in, int64_t s0, int64_t s1, float* gx) {
    if (s.p1 <= s.p0 || s.b1 <= s.b0) return;
    const PackedWeights& w = m_.weights[l * D_ + d];
    const int64_t first_time = backwards(d) ? a_.T - s1 : s0;
    const int64_t steps = s1 - s0;
    const int I = m_.cfg.layer_input(l);  // layer 0: x rows (I); above: D·H_out
    const auto row = [&](int64_t t, int64_t b) { return in.base + ((t - in.t0) * a_.B + b) * I; };
    GemmArgs g;
    const Matrix w_ih = matrix(l * D_ + d, kWih);
    g.lda = I;
    g.w = w_ih.w;
    g.wf = w_ih.wf;
    g.K = I;
    g.nv = m_.geo.vectors;
    g.p0 = s.p0;
    g.p1 = s.p1;
    g.bias = w.bias.data();
    g.ldc = gcols_;
    // Rows past their sequence's end need no G_x: the steps carry them and never read it.
    // Each time step's rows from the first active one to the last (with lengths sorted
    // longest first, as a PackedSequence's, exactly the active rows) make a segment; time
    // steps whose rows are all active, in a slice of every row, make one segment of their
    // contiguous rows. A row's G_x does not depend on which rows share its GEMM (gemm.h).
    const bool all_rows = s.b0 == 0 && s.b1 == a_.B;
    const int64_t end = first_time + steps;
    const auto for_segments = [&](auto&& gemm_rows) {
      for (int64_t t = first_time; t < end;) {
        int64_t lo, hi;
        active_span(t, s.b0, s.b1, lo, hi);
        int64_t t1 = t + 1;
        if (all_rows && lo == 0 && hi == a_.B) {
          for (int64_t lo1, hi1; t1 < end; ++t1) {
            active_span(t1, 0, a_.B, lo1, hi1);
            if (lo1 != 0 || hi1 != a_.B) break;
          }
          hi = (t1 - t) * a_.B;
        }
        if (hi > lo) gemm_rows(row(t, lo), hi - lo, gx + (gx_row(d, t, s0) + lo) * gcols_);
        t = t1;
      }
    };
    int segments = 0;
    for_segments([&](const float*, int64_t, float*) { ++segments; });
    // fp32 weights with several segments run panel by panel, each panel over every segment:
    // a panel's weights come in from beyond the L2 once a chunk, as for one GEMM over the
    // chunk's rows. (Reduced weights pack each call's rows first: one call per segment.)
    const bool by_panel = segments > 1 && g.wf.type == WeightType::kF32;
    for (int p = s.p0; p < s.p1; p = by_panel ? p + 1 : s.p1) {
      g.p0 = p;
      g.p1 = by_panel ? p + 1 : s.p1;
      for_segments([&](const float* a, int64_t rows, float* c) {
        g.a = a;
        g.rows = static_cast<int>(rows);
        g.c = c;
        k_.gemm(g);
      });
    }
  }

  // The rows of [b0, b1) from the first active at time t to the last (all without lengths).
  void active_span(int64_t t, int64_t b0, int64_t b1, int64_t& lo, int64_t& hi) const {
    lo = b0;
    hi = b1;
    if (a_.lengths == nullptr) return;
    while (lo < hi && a_.lengths[lo] <= t) ++lo;
    while (hi > lo && a_.lengths[hi - 1] <= t) --hi;
  }

  // gx: the G_x rows of this step, (B, gcols_); ahead: a later group's input projection
  // rows to compute along (batch 1, see layer_chunk), or none; in: when not null, the step
  // computes its own G_x rows from this input, panel by panel (see layer_chunk).
  void step_gates(int l, int d, const Slice& s, float* out, int64_t out_t0, int64_t step, float* gx,
                  const Ahead& ahead = Ahead{}, const SeqView* in = nullptr) {
    if (s.p1 <= s.p0 || s.b1 <= s.b0) return;
    const int ld = l * D_ + d;
    const PackedWeights& w = m_.weights[ld];
    const int cur = step & 1, prev = cur ^ 1;
    const int64_t t = time_of(d, step);
    StepArgs a{};
    const Matrix w_hh = matrix(ld, kWhh), w_ih = matrix(ld, kWih);
    a.w = w_hh.w;
    a.wf = w_hh.wf;
    a.K = H_out_;
    a.p0 = s.p0;
    a.p1 = s.p1;
    a.b0 = s.b0;
    a.b1 = s.b1;
    a.h_prev = ws_->h[2 * ld + prev].data();
    a.ld_h_prev = ld_h_;
    if (step == 0 && direct_h0_) a.h_prev = a_.h0 + static_cast<int64_t>(ld) * a_.B * H_out_;
    a.gx = gx;
    a.ld_gx = gcols_;
    a.lengths = a_.lengths;
    a.t = t;
    a.many_rows = p_.many_rows;
    a.far_weights = p_.far_weights;
    a.sweep = sweep_;
    const int I = m_.cfg.layer_input(l);
    if (in != nullptr)
      a.in = {in->base + (t - in->t0) * a_.B * I, I, I, w_ih.w, w.bias.data(), gx, w_ih.wf};
    if (ahead.gx != nullptr) {
      a.ahead = {ahead.x, I, I, w_ih.w, w.bias.data(), ahead.gx, w_ih.wf};
      a.ahead_part = ahead.part;
    }
    CellVariant variant;  // torch's cells read none: nothing to fill on their hot path
    if (m_.cfg.variant) {
      variant = variant_of(l, d);
      a.variant = &variant;
    }
    if (classic_) {
      // Phase 1 of the classic GRU: r ⊙ h into r, z into c (inactive rows: r ⊙ h = h).
      a.K = m_.cfg.hidden_size;
      a.carry = a.h_prev;
      a.ld_carry = ld_h_;
      a.h = ws_->r[ld].data();
      a.ld_h = ld_c_;
      a.c = ws_->c[ld].data();
      a.ld_c = ld_c_;
      k_.gru_gates_step(a);
      return;
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
    const bool v = m_.cfg.variant;
    switch (m_.cfg.cell) {
      case CellKind::kLstm:
        a.c = ws_->c[ld].data();
        a.ld_c = ld_c_;
        (v ? k_.lstm_step_variant : k_.lstm_step)(a);
        break;
      case CellKind::kGru:
        a.b_hn = w.b_hn.size() ? w.b_hn.data() : nullptr;
        (v ? k_.gru_step_variant : k_.gru_step)(a);
        break;
      case CellKind::kRnnTanh:
        (v ? k_.rnn_step_variant : k_.rnn_tanh_step)(a);
        break;
      case CellKind::kRnnRelu:
        (v ? k_.rnn_step_variant : k_.rnn_relu_step)(a);
        break;
    }
  }

  // The cell variant of layer l, direction d (ops/pack.h RnnConfig; unused by torch's cells).
  CellVariant variant_of(int l, int d) const {
    const RnnConfig& cfg = m_.cfg;
    CellVariant v;
    for (int i = 0; i < 3; ++i) v.act[i] = cfg.act[d][i];
    v.clip = cfg.clip;
    v.input_forget = cfg.input_forget;
    const PackedWeights& w = m_.weights[l * D_ + d];
    v.peep = cfg.peepholes && w.peep.size() ? w.peep.data() : nullptr;
    return v;
  }

  // The second phase of a two-phase step, over the panels [q0, q1) that write h and the
  // output: LSTM's projection h = W_hr · r, or the classic GRU's candidate n from
  // W_hn · (r ⊙ h), then h (with z from c). Both read r (the first phase's output) as the dot
  // products' input and carry h for inactive rows. gx: the step's G_x rows (classic GRU).
  void step_second(int l, int d, const Slice& s, float* out, int64_t out_t0, int64_t step,
                   float* gx) {
    if (s.q1 <= s.q0 || s.b1 <= s.b0) return;
    const int ld = l * D_ + d;
    const int cur = step & 1, prev = cur ^ 1;
    const int64_t t = time_of(d, step);
    StepArgs a{};
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
    a.many_rows = p_.many_rows;
    a.far_weights = p_.far_weights;
    a.sweep = sweep_;
    const Matrix second = matrix(ld, classic_ ? kWhn : kWhr);
    a.w = second.w;
    a.wf = second.wf;
    if (!classic_) {
      k_.projection_step(a);
      return;
    }
    const CellVariant variant = variant_of(l, d);
    a.variant = &variant;
    a.c = ws_->c[ld].data();  // z
    a.ld_c = ld_c_;
    a.gx = gx;
    a.ld_gx = gcols_;
    k_.gru_candidate_step(a);
  }

  const RnnModel& m_;
  const ForwardArgs& a_;
  const ForwardPlan& p_;
  const KernelTable& k_;
  Workspace* ws_ = nullptr;
  std::vector<float*> wide_;  // plan.widen: matrix i of layer·direction ld at [ld·kMatrices + i]
  bool wide_strips_ = false;  // plan.widen: W_ih and W_hh widened into strips (wide_strips)
  int D_ = 1, H_out_ = 0, gcols_ = 0, ld_c_ = 0, ld_h_ = 0;
  int64_t chunk_ = 1;
  int sweep_ = 0;
  // Reduced kernels may use AMX tiles, bf16 ones bf16 dot products on every row (read once per
  // call: every thread decides alike).
  const bool amx_ = amx_enabled(m_.cfg.dtype);
  const bool bf16_rows_ = bf16_dot_rows();
  bool proj_ = false, classic_ = false;
  bool direct_h0_ = false;  // step 0 reads a_.h0 (see the constructor)
  int q_panels_ = 0;
};

}  // namespace

void rnn_forward(const RnnModel& model, const ForwardArgs& in_args) {
  if (in_args.T <= 0 || in_args.B <= 0) return;
  ForwardArgs args = in_args;
  // A call whose h0 and h_n overlap (a stream's step passes two arrays, see the bindings'
  // step): the first step reads h0 where it lies, all of it on every thread, and the threads
  // write their final state without meeting after the last step: read from a copy, which no
  // thread writes.
  if (args.h0 != nullptr && args.h_n != nullptr) {
    const size_t n = static_cast<size_t>(model.cfg.num_layers) * model.cfg.num_directions *
                     static_cast<size_t>(args.B) * model.cfg.h_out();
    const auto h0 = reinterpret_cast<uintptr_t>(args.h0);
    const auto hn = reinterpret_cast<uintptr_t>(args.h_n);
    if (h0 < hn + n * sizeof(float) && hn < h0 + n * sizeof(float)) {
      thread_local std::vector<float> h0_copy;
      h0_copy.assign(args.h0, args.h0 + n);
      args.h0 = h0_copy.data();
    }
  }
  const KernelTable& k = kernels_for(model.int8_narrow);
  const Blocking blocking = blocking_get();  // read once per call: every thread decides alike
  // A stream's step (T = 1) takes its plan from the thread's last one of the same sizes.
  ForwardPlan planned;
  const ForwardPlan* plan = &planned;
  if (args.T == 1)
    plan = &forward_plan_step(model, args.B, args.num_threads, k, blocking);
  else
    planned = forward_plan(model, args.B, args.T, args.num_threads, k, blocking);
  if (plan->threads > 1 && threads_backing_off()) {
    planned = forward_plan(model, args.B, args.T, 1, k, blocking);
    plan = &planned;
  }
  // The threads come from the process-wide pool: fewer than planned when other calls hold
  // cores, and a call that finds every core busy runs later on a pool thread (see
  // core/thread-pool.h). Then plan again for what there is (a stack that ran as a wavefront
  // at 2 threads runs layer by layer at 1).
  auto call = [&](ThreadTeam& team) {
    std::optional<ForwardPlan> fewer;
    if (team.size() < plan->threads)
      fewer.emplace(forward_plan(model, args.B, args.T, team.size(), k, blocking));
    const ForwardPlan& p = fewer ? *fewer : *plan;
    const int nt = p.threads;
    Forward f(model, args, p, k);
    if (nt == 1) {
      SpinBarrier none(1);
      const KernelCallEnd end{k};
      f.run(0, 1, none);
      return;
    }
    SpinBarrier barrier(nt);
    const int64_t start_ns = threads_now_ns();
    auto body = [&](int tid) {
      const KernelCallEnd end{k};
      if (tid == 0) barrier.count_every_wait(!team.woke_sleeping());
      if (tid < nt) f.run(tid, nt, barrier);
    };
    // A call without barriers lets this thread run a late helper's share itself (a
    // stream's step: see ThreadTeam::run).
    step_trace::call_begin(nt);
    team.run(body, f.barrier_free());
    step_trace::call_end(args.B, args.T, model.cfg.hidden_size, static_cast<int>(model.cfg.dtype));
    // Contended: the waiting threads spent on average more than half the call waiting out
    // descheduled peers. (Uneven slices alone stay below that: a waiter waits at most as
    // long as it worked; averaged over the nt − 1 threads that can wait at each barrier.)
    // The join counts as the last barrier (a call's last step has none; a call without
    // barriers has only the join), and a helper whose share this thread ran as one that
    // never came, unless a helper was waking up when the call began.
    const int64_t end_ns = threads_now_ns();
    const bool late = !team.woke_sleeping() && team.retracted() > 0;
    const int64_t join_ns = team.woke_sleeping() ? 0 : team.long_join_ns();
    threads_report(late || (barrier.long_wait_ns() + join_ns) / (nt - 1) > (end_ns - start_ns) / 2,
                   start_ns, end_ns);
  };
  thread_pool_call(plan->threads, call, args.host_openmp);
}

}  // namespace fastrnn
