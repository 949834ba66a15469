// The boundary's size limits, the one place they are written: the bindings enforce them
// before anything is allocated, and Python reads them from the compiled module
// (fastrnn._core.LIMITS → python/fastrnn/_checks.py) to check the same bounds with its own
// messages. An absurd size is a ValueError naming it, never a wrapped-around size, a
// MemoryError half-way through, or a crash.
#pragma once

#include <climits>
#include <cstdint>

namespace fastrnn {

// input_size, hidden_size and proj_size: 2^24 features are far beyond any RNN and keep
// G = 4·H, D·H_out and every packed width inside the int the packing and the kernels use.
constexpr int64_t kMaxFeatures = int64_t{1} << 24;
// Reduced-precision models (bf16, int8): the reduction length of every matrix (input_size,
// hidden_size, proj_size) is at most 2^15, so that one packed activation row fits the
// kernels' stack buffer (kernels/reduced/reduced-dot.h) and int8 sums stay exact in int32.
constexpr int64_t kMaxReducedFeatures = int64_t{1} << 15;
// num_layers: keeps every size the packed layout derives well inside 64 bits.
constexpr int64_t kMaxLayers = 4096;
// The total number of weights in torch's layout (the packed copy doubles it): 2^32 float32
// is 16 GiB, ten times the largest RNNs in use. Beyond it a constructor or file is a
// ValueError rather than a MemoryError (or the OOM killer) half-way through an allocation.
constexpr int64_t kMaxParameters = int64_t{1} << 32;
// The driver and the kernels index batch rows with int (StepArgs::b0, GemmArgs::rows).
constexpr int64_t kMaxBatch = INT_MAX;
// The packed weights of a whole model, in floats. Packing pads to whole panels, which near
// the kMaxParameters cap at most ×3.4 it (LSTM with proj_size=2 and 4096 layers: 1.2·10^10
// floats, the largest over a grid of sizes at the cap), so 2^35 admits every model the
// Python layer accepts.
constexpr int64_t kMaxPackedFloats = int64_t{1} << 35;
// Any one array or workspace of a call: 2^45 floats = 2^47 bytes, the whole user address
// space of x86-64 (and arm64) with 4-level page tables. A larger buffer can never be
// mapped, so asking for one is a size error, not an out-of-memory condition.
constexpr int64_t kMaxArrayFloats = int64_t{1} << 45;

}  // namespace fastrnn
