#include "core/threads.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
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

void SpinBarrier::long_wait(bool waiting_for, bool count) {
  const auto start = std::chrono::steady_clock::now();
  while (sense_.load(std::memory_order_acquire) != waiting_for) std::this_thread::yield();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now() - start).count();
  if (count) long_wait_ns_.fetch_add(ns, std::memory_order_relaxed);
}

namespace {
std::atomic<int> g_backoff_left{0};  // calls still to run on one thread
std::atomic<int> g_backoff_len{0};   // the current backoff length (0: no contention seen)
std::atomic<int> g_contended{0};     // contended warm multi-thread calls in a row
std::atomic<int64_t> g_last_end_ns{0};  // when the last multi-thread call ended (0: never)
constexpr int kBackoffMin = 16, kBackoffMax = 4096;
}  // namespace

bool threads_backing_off() {
  int left = g_backoff_left.load(std::memory_order_relaxed);
  while (left > 0) {
    if (g_backoff_left.compare_exchange_weak(left, left - 1, std::memory_order_relaxed))
      return true;
  }
  return false;
}

void threads_report(bool contended, int64_t start_ns, int64_t end_ns) {
  const int64_t last_end = g_last_end_ns.exchange(end_ns, std::memory_order_relaxed);
  const bool cold = last_end == 0 || start_ns - last_end > kColdGapNs;
  if (contended && cold) return;  // waking workers, not contention (see threads.h)
  // Two contended calls in a row: one alone is often a one-off (a descheduled worker's
  // time slice), and backing off for it would cost 16 calls at half speed.
  if (contended && g_contended.fetch_add(1, std::memory_order_relaxed) + 1 >= 2) {
    const int len = std::clamp(2 * g_backoff_len.load(std::memory_order_relaxed), kBackoffMin,
                               kBackoffMax);
    g_backoff_len.store(len, std::memory_order_relaxed);
    g_backoff_left.store(len, std::memory_order_relaxed);
    g_contended.store(0, std::memory_order_relaxed);
  } else if (!contended) {
    g_contended.store(0, std::memory_order_relaxed);
    g_backoff_len.store(0, std::memory_order_relaxed);
  }
}

int64_t threads_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

ThreadsGuardState threads_guard_state() {
  return {g_backoff_left.load(std::memory_order_relaxed),
          g_contended.load(std::memory_order_relaxed),
          g_backoff_len.load(std::memory_order_relaxed)};
}

}  // namespace fastrnn
