// Threads: the process-wide thread count and the spinning barrier that ends every time step.
#pragma once

#include <atomic>
#include <cstdint>

namespace fastrnn {

int threads_get();         // threads a call may use (>= 1)
void threads_set(int n);   // n >= 1; takes effect for calls that start afterwards
int threads_hardware();    // threads the machine offers to this process

// Processor hint inside spin loops (pause on x86, yield on ARM).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Sense-reversing spin barrier for the threads of one parallel region. A spinning hand-off
// costs ~0.1 us; a futex wake-up costs ~30 us on these machines, which would dominate a
// 3 us time step. After kSpinsBeforeYield spins (~100 us) a waiter yields its core, so an
// oversubscribed machine degrades gracefully instead of livelocking.
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void wait(bool& local_sense) {
    if (n_ == 1) return;
    local_sense = !local_sense;
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      sense_.store(local_sense, std::memory_order_release);
      return;
    }
    int spins = 0;
    while (sense_.load(std::memory_order_acquire) != local_sense) {
      if (++spins < kSpinsBeforeYield) {
        cpu_relax();
      } else {
        yield();
      }
    }
  }

 private:
  static constexpr int kSpinsBeforeYield = 1 << 14;
  static void yield();
  const int n_;
  alignas(64) std::atomic<int> count_{0};
  alignas(64) std::atomic<bool> sense_{false};
};

}  // namespace fastrnn
