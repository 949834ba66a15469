// The layer × direction × time driver: plans a call (ops/forward-plan.h), then runs the plan
// with one thread team (core/thread-pool.h).
#pragma once

#include <cstdint>

#include "ops/pack.h"

namespace fastrnn {

// All arrays are contiguous float32 in torch's time-major layouts; the bindings check every
// shape before this is called.
struct ForwardArgs {
  const float* x = nullptr;  // (T, B, I)
  int64_t T = 0, B = 0;
  const int64_t* lengths = nullptr;  // (B), each in [1, T], any order; null: all T
  const float* h0 = nullptr;         // (L·D, B, H_out) or null (zeros)
  const float* c0 = nullptr;         // (L·D, B, H) or null (zeros); LSTM only
  float* y = nullptr;                // (T, B, D·H_out)
  float* h_n = nullptr;              // (L·D, B, H_out)
  float* c_n = nullptr;              // (L·D, B, H); LSTM only
  int num_threads = 1;               // upper bound; small layers use fewer
  // Run the team on the host program's OpenMP threads when one is attached and ready
  // (core/host-openmp.h), instead of fastrnn's pool: for calls made between the host's own
  // parallel ops (fastrnn.accelerate inside torch). Same results.
  bool host_openmp = false;
};

void rnn_forward(const RnnModel& model, const ForwardArgs& args);

}  // namespace fastrnn
