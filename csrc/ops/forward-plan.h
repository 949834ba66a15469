// The forward driver's plan: every decision a call makes before it runs — how many threads,
// which schedule, how the threads split the work, the time chunk / span / wavefront tick,
// which layers project their inputs ahead, and the size of every workspace buffer. A pure
// function of (model, B, T, threads, kernel table, blocking): ops/rnn-forward.cc runs a
// plan and decides nothing itself; the bindings check sizes against it and show it
// (Model.plan, `fastrnn info --plan`). Per-ISA policy (the kernel table's tiles and ahead
// rows) and the cache policy (ops/blocking.h) meet here and nowhere else.
//
// Results never depend on the plan: every schedule, split, chunk and span gives the same
// bits (tests run each against the others), except that batches of kManyRows rows and
// more use the tall row block (see kernels/panel/step-driver.h), whichever the plan.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu/kernel-select.h"
#include "ops/blocking.h"
#include "ops/pack.h"

namespace fastrnn {

// From this batch size on, step kernels use the tall row block (see
// kernels/panel/step-driver.h): with AVX-512, batches of 4 and 5 then read each weight
// panel once per step in one 4- or 5-row block, instead of 3 + 1 or 3 + 2 rows in two
// passes (measured: B=4, H=1536, 17% faster; B=4, H=256, 18%). Their K runs in one chain
// then: results differ from the split-K order by float rounding (≤ 2.5e-7 seen), still the
// same for any thread count.
constexpr int64_t kManyRows = 4;

enum class Schedule {
  kSpans,         // unidirectional: span-outer, layer-inner (each span passes every layer)
  kLayerByLayer,  // bidirectional: layer-outer, both directions of a layer side by side
  kWavefront,     // unidirectional stack of small layers: thread j owns layers j, j + nt, ...
};

const char* schedule_name(Schedule s);

struct ForwardPlan {
  int64_t B = 0, T = 0;
  int threads = 1;  // the team size the plan is for (1: the caller alone)
  Schedule schedule = Schedule::kSpans;
  bool batch_split = false;        // threads split batch rows (else gate panels, direction-major)
  int panel_threads = 1;           // threads that split one direction's panels
  int64_t chunk = 1;               // steps per G_x chunk (the input projection's time block)
  int64_t span = 1;                // kSpans: steps a span passes through every layer
  int64_t wave_chunk = 1;          // kWavefront: steps per tick
  bool inline_projection = false;  // T == 1: each step projects its own input panel by panel
  bool many_rows = false;          // B >= kManyRows: the tall row block
  bool far_weights = false;        // fp32 (or widened) W_hh beyond the near cache: prefetched
  bool widen = false;              // bf16 weights widened to fp32 once per call (see
                                   // bf16_widen in forward-plan.cc)
  std::vector<int> ahead;          // per layer: steps whose input projection a batch-1 step
                                   // computes ahead (0: none; see Forward::layer_chunk)

  // Layouts: G_x row width (panels·NV·16), the state rows' strides.
  int gcols = 0, ld_h = 0, ld_c = 0;

  // Workspace, in floats per buffer (see ops/rnn-forward.cc, Workspace).
  size_t gx[2] = {0, 0};   // per direction
  size_t h = 0;            // per layer·direction, two of them (double-buffered)
  size_t c = 0;            // per layer·direction (LSTM)
  size_t r = 0;            // per layer·direction (LSTM with projection)
  size_t seq[2] = {0, 0};  // outputs of the layers below the last
  size_t wide = 0;         // widen: the fp32 copies of every layer's matrices

  // Every workspace float the plan allocates (per calling thread).
  size_t workspace_floats(int layers_x_directions) const;
};

// The plan of a call of T steps and B rows with at most `threads` threads (never more than
// the machine's hardware threads). Throws std::length_error when a size overflows.
ForwardPlan forward_plan(const RnnModel& model, int64_t B, int64_t T, int threads,
                         const KernelTable& kernels, const Blocking& blocking);

// forward_plan of a single-step call (a stream's step, T = 1), kept per thread: a stream
// steps with the same sizes every time, and planning took ~0.15 us of a 5 us step (LSTM
// I = H = 256, int8, 2 threads, Zen 4). Keyed on all that forward_plan reads; the plan
// returned stays valid until this thread's next call.
const ForwardPlan& forward_plan_step(const RnnModel& model, int64_t B, int threads,
                                     const KernelTable& kernels, const Blocking& blocking);

// Whether the kernels' batch-1 ahead projection may be taken at all on this CPU: -1 the
// CPU's own answer, 0 never, 1 wherever the rules allow (tests use it to run the AVX-512
// ahead kernels on any AVX-512 machine).
void forward_plan_ahead_override(int mode);

}  // namespace fastrnn
