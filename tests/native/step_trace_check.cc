// The step trace (csrc/core/step-trace.h) on a call whose shares are known, run by
// tests/kernels/test_step_trace.py: two threads meet at a barrier after each of kSteps
// "steps", thread 0 busy for kShortUs and thread 1 for kLongUs per step, over kCalls calls.
// Built with -DFASTRNN_STEP_TRACE, the summary printed at exit must give each thread its own
// work (thread 1's three times thread 0's), the difference as the imbalance and as thread 0's
// wait; built without it, nothing. The test reads that summary.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "core/step-trace.h"

namespace {

constexpr int kCalls = 3, kSteps = 20;
constexpr int kShortUs = 1000, kLongUs = 3000;

void busy(int us) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  while (std::chrono::steady_clock::now() < until) {
  }
}

// A two-thread sense-reversing barrier.
struct Barrier {
  std::atomic<int> count{0};
  std::atomic<bool> sense{false};
  void wait(bool& local) {
    local = !local;
    if (count.fetch_add(1, std::memory_order_acq_rel) == 1) {
      count.store(0, std::memory_order_relaxed);
      sense.store(local, std::memory_order_release);
      return;
    }
    while (sense.load(std::memory_order_acquire) != local) {
    }
  }
};

}  // namespace

int main() {
  namespace trace = fastrnn::step_trace;
  for (int call = 0; call < kCalls; ++call) {
    Barrier barrier;
    trace::call_begin(2);
    const auto share = [&](int tid) {
      trace::thread_start(tid);
      bool sense = false;
      for (int s = 0; s < kSteps; ++s) {
        busy(tid == 0 ? kShortUs : kLongUs);
        trace::arrive(tid);
        barrier.wait(sense);
        trace::leave(tid);
      }
    };
    std::thread helper(share, 1);
    share(0);
    helper.join();
    trace::call_end(1, kSteps, 16, 0);
  }
  std::printf("ok: %d calls of %d steps\n", kCalls, kSteps);
  return 0;
}
