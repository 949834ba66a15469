#include "ops/blocking.h"

#include <atomic>
#include <mutex>

namespace fastrnn {

// Each rule is a fraction of one cache level, the fraction the measurements on a Zen 4
// picked (L1d 32 KiB, L2 1 MiB per core, L3 32 MiB per 8-core CCX; figures are from there
// unless they say "Intel guest": the KVM guest of cpu/cpu-caches.h, L2 2 MiB per core, L3
// far; in-process A/B, alternating, one thread, AVX-512, medians of 9). What they give:
//
//   floats (bytes)          Zen 4           Zen 3 (L2 512 KiB)   Intel guest
//   gx_chunk_floats         128 Ki (512 K)  64 Ki (256 K)        256 Ki (1 MiB)
//   span_floats             256 Ki (1 MiB)  128 Ki (512 K)       512 Ki (2 MiB)
//   large_w_ih_floats       2 Mi (8 MiB)    2 Mi (8 MiB)         128 Ki (512 K) per thread
//   ahead_max_weight_bytes  8 MiB           8 MiB                512 KiB per thread
Blocking blocking_derive(const CpuCaches& caches) {
  Blocking b;
  // G_x of a time chunk, all directions: half of one core's L2, so that the chunk's input
  // projections stay in L2 between the GEMM that writes them and the steps that read them,
  // beside the state rows and the weights passing through. Bidirectional B=32, I=300,
  // H=256: half an L2 is 4% faster than all of it, a quarter no faster; on the Intel guest
  // half is 2% faster than all, 9% than a quarter, 17% than an eighth (fewer rows share
  // each read of W_ih). The budget is the call's: at nt threads each core holds 1/nt of it
  // (as measured, at 1 thread). Raised for a large W_ih, see Forward.
  b.gx_chunk_floats = caches.l2 / 2 / sizeof(float);
  // A unidirectional stack passes spans of one L2 of output from layer to layer, so that
  // each layer's weights serve a span's steps in a row while the span's activations are
  // still in cache (B=64, I=H=512, 2 layers: 4-5% faster than alternating layers every
  // step; spans of 8 and 32 steps, 1 and 4 MiB, alike; no change at 2 threads). Not
  // critical within a factor of 4; it also sizes the two span buffers of the workspace,
  // which is why it follows the L2 and not the L3.
  b.span_floats = caches.l2 / sizeof(float);
  // The near cache (see Blocking::near_is_private), for the weights a step streams.
  const size_t near = caches.l3_near ? caches.l3 : caches.l2;
  b.near_is_private = !caches.l3_near;
  b.near_bytes = near;
  // Every chunk reads all of W_ih again. From the near cache that costs little, but a W_ih
  // from a quarter of it on is better amortised by a chunk's G_x of half its size (W_ih of
  // 37 MiB, B=4: 15% faster than a 128 Ki-float chunk; 16 MiB, B=1: 3%). A quarter: where
  // the ahead projection below saw weights leave the near cache. On the Intel guest,
  // against chunks of half an L2: W_ih of 4 MiB, B=4 3% faster; 16 MiB, B=4 10%, B=1 20%;
  // 36 MiB, B=4 19% (the Zen 4's bound, 8 MiB, would leave the first three without it).
  b.large_w_ih_floats = near / 4 / sizeof(float);
  // The batch-1 ahead projection streams W_ih along with W_hh at every step, which pays
  // only while both stay in the near cache (8 MiB of weights 6% faster, 13 MiB 5% slower,
  // 32 MiB 54% slower): a quarter of it, the largest size measured to gain. On the Intel
  // guest (L3 far) it loses from the L3 by far more: 2 MiB of weights 15% slower than the
  // plain path, 4 MiB 75%, 8 MiB 40%, 32 MiB 17%; within the L2 the loss is small but
  // still there (0.5 MiB 8%, 1 MiB 2%; at 2 threads, 0.5 and 1 MiB per thread: 9% and
  // 2-5%, 2 and 4 MiB per thread: 21% and 60%): whether the kernels gain from it at all on
  // a core with full-width AVX-512 is the kernels' question, not the caches'.
  b.ahead_max_weight_bytes = near / 4;
  return b;
}

namespace {

// The caches in use, for reporting (under mu), and the sizes derived from them as atomics:
// the driver reads them at the start of every call, concurrently with blocking_select. A
// call that reads some sizes before a select and some after only runs at a mixed speed.
struct State {
  std::mutex mu;
  CpuCaches caches;
  std::atomic<size_t> gx_chunk_floats{0}, span_floats{0}, large_w_ih_floats{0},
      ahead_max_weight_bytes{0}, near_bytes{0};
  std::atomic<bool> near_is_private{false};

  State() { set(cpu_caches_detect()); }

  void set(const CpuCaches& c) {
    const Blocking b = blocking_derive(c);
    {
      std::lock_guard<std::mutex> lock(mu);
      caches = c;
    }
    gx_chunk_floats.store(b.gx_chunk_floats, std::memory_order_relaxed);
    large_w_ih_floats.store(b.large_w_ih_floats, std::memory_order_relaxed);
    span_floats.store(b.span_floats, std::memory_order_relaxed);
    near_is_private.store(b.near_is_private, std::memory_order_relaxed);
    near_bytes.store(b.near_bytes, std::memory_order_relaxed);
    ahead_max_weight_bytes.store(b.ahead_max_weight_bytes, std::memory_order_relaxed);
  }
};

State& state() {
  static State s;  // detects on first use (thread-safe initialisation)
  return s;
}

}  // namespace

void blocking_select(const CpuCaches& caches) { state().set(caches); }

CpuCaches blocking_caches() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.caches;
}

Blocking blocking_get() {
  const State& s = state();
  Blocking b;
  b.gx_chunk_floats = s.gx_chunk_floats.load(std::memory_order_relaxed);
  b.large_w_ih_floats = s.large_w_ih_floats.load(std::memory_order_relaxed);
  b.span_floats = s.span_floats.load(std::memory_order_relaxed);
  b.near_is_private = s.near_is_private.load(std::memory_order_relaxed);
  b.near_bytes = s.near_bytes.load(std::memory_order_relaxed);
  b.ahead_max_weight_bytes = s.ahead_max_weight_bytes.load(std::memory_order_relaxed);
  return b;
}

}  // namespace fastrnn
