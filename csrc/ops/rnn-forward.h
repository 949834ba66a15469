// The layer × direction × time driver: one thread team per call (core/thread-pool.h).
#pragma once

#include <cstdint>

#include "ops/pack.h"

namespace fastrnn {

// All arrays are contiguous float32 in torch's time-major layouts; the bindings check every
// shape before this is called.
struct ForwardArgs {
  const float* x = nullptr;          // (T, B, I)
  int64_t T = 0, B = 0;
  const int64_t* lengths = nullptr;  // (B), each in [1, T], any order; null: all T
  const float* h0 = nullptr;         // (L·D, B, H_out) or null (zeros)
  const float* c0 = nullptr;         // (L·D, B, H) or null (zeros); LSTM only
  float* y = nullptr;                // (T, B, D·H_out)
  float* h_n = nullptr;              // (L·D, B, H_out)
  float* c_n = nullptr;              // (L·D, B, H); LSTM only
  int num_threads = 1;               // upper bound; small layers use fewer
};

void rnn_forward(const RnnModel& model, const ForwardArgs& args);

// Threads rnn_forward would use for this batch and a long sequence (exposed for tests and
// benchmarks; a unidirectional stack of small layers needs T >= 4 L for its wavefront).
int rnn_forward_threads(const RnnModel& model, int64_t B, int max_threads);

// Whether layer l, at batch B, computes its input projection a group of steps ahead,
// inside the recurrent steps (batch 1, one direction, weights that stay in cache); exposed
// for tests, which check that path against the plain one bit for bit. threads: how many
// split the layer's panels (where the weights stay in each core's own L2, each thread
// holds only its share: see ops/blocking.h). The answer is for the layer-by-layer path: a
// stack that runs as a wavefront (small layers, more than one thread, see
// rnn_forward_threads) projects each tick's chunk at once instead.
bool rnn_forward_projects_ahead(const RnnModel& model, int layer, int64_t B, int threads = 1);
// Whether the kernels' batch-1 ahead projection may be taken at all on this CPU (see
// layer_projects_ahead): -1 the CPU's own answer, 0 never, 1 wherever the rules allow (tests
// use it to run the AVX-512 ahead kernels on any AVX-512 machine).
void rnn_forward_ahead_override(int mode);

}  // namespace fastrnn
