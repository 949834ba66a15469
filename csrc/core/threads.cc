#include "core/threads.h"

#include <omp.h>

#include <algorithm>
#include <thread>

namespace fastrnn {
namespace {
std::atomic<int> g_threads{0};  // 0: not set yet, use the hardware count
}

int threads_hardware() { return std::max(1, omp_get_num_procs()); }

int threads_get() {
  const int n = g_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : threads_hardware();
}

void threads_set(int n) { g_threads.store(std::max(1, n), std::memory_order_relaxed); }

void SpinBarrier::yield() { std::this_thread::yield(); }

}  // namespace fastrnn
