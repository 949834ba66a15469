// Cache blocking of the forward driver: every size by which ops/rnn-forward.cc keeps data
// in a cache level, derived from the caches of the CPU at hand (cpu/cpu-caches.h). Kernels
// know nothing of caches; this is the one place where ops do.
//
// Results never depend on these sizes: time chunks and layer spans change no sum (a G_x
// row is the same dot products whichever chunk it is in), and the batch-1 ahead projection
// gives the same bits as the plain one (tests/kernels/test_cpu_caches.py runs models under tiny and
// huge caches against the detected ones). Only the speed does.
#pragma once

#include <cstddef>

#include "cpu/cpu-caches.h"

namespace fastrnn {

struct Blocking {
  size_t gx_chunk_floats = 0;  // G_x of a time chunk, all directions (a target)
  size_t span_floats = 0;      // output floats a unidirectional stack passes per span
  // Weights that a step streams stay in the "near" cache: the L3 where it is the core
  // complex's own (CpuCaches::l3_near), else each core's L2. Private to a core, it holds
  // one thread's share of the weights only (its panels), so the two bounds below then
  // apply to a thread's share (see share()).
  bool near_is_private = false;
  size_t near_bytes = 0;              // the near cache's size (per core where private)
  size_t large_w_ih_floats = 0;       // W_ih of one direction from which chunks grow
  size_t ahead_max_weight_bytes = 0;  // W_ih + W_hh of a layer up to which batch 1
                                      // projects ahead

  // The part of one direction's weights (any unit) that one of `threads` threads holds in
  // the near cache when the threads split that direction's panels.
  size_t share(size_t weights, int threads) const {
    return near_is_private && threads > 1 ? weights / static_cast<size_t>(threads) : weights;
  }
  bool operator==(const Blocking& o) const {
    return gx_chunk_floats == o.gx_chunk_floats && span_floats == o.span_floats &&
           near_is_private == o.near_is_private && near_bytes == o.near_bytes &&
           large_w_ih_floats == o.large_w_ih_floats &&
           ahead_max_weight_bytes == o.ahead_max_weight_bytes;
  }
};

// The rules (see blocking.cc for each one and why). On the Zen 4 they were tuned on (L2
// 1 MiB per core, L3 32 MiB per CCX) they give the constants measured there: 128 Ki and
// 256 Ki floats, 2 Mi floats, 8 MiB.
Blocking blocking_derive(const CpuCaches& caches);

// The caches in use: those cpu_caches_detect() reports, until blocking_select() sets others
// (the bindings do, at import, from FASTRNN_CACHE_L1D / _L2 / _L3). Calls that start
// afterwards use the new sizes; safe to call while other threads run models.
void blocking_select(const CpuCaches& caches);
CpuCaches blocking_caches();

// The sizes in use: blocking_derive(blocking_caches()). Cheap (a few relaxed loads).
Blocking blocking_get();

}  // namespace fastrnn
