// Threads: the process-wide thread count and the spinning barrier that ends every time step.
#pragma once

#include <atomic>
#include <cstdint>

namespace fastrnn {

int threads_get();         // threads a call may use (>= 1)
void threads_set(int n);   // n >= 1; takes effect for calls that start afterwards
int threads_hardware();    // threads the machine offers to this process

// Oversubscription guard. A time step ends in a barrier, so when the machine has more
// runnable threads than cores and one of a call's threads is descheduled, the others wait
// out its time slice on every step (measured: 2-thread LSTM I=H=256, T=100 went from
// 0.8 ms to 39 ms median with 4 busy processes on 2 cores). A call that spent most of its
// time in such waits (its first barrier, where a worker may be waking up, aside) reports it;
// after two such calls in a row the next calls run on one thread, for a number of calls
// that doubles while the contention lasts (16 .. 4096) and resets once a multi-thread call
// runs clean. Results do not depend on the thread count, so only the speed changes.
bool threads_backing_off();              // true: run this call on one thread
void threads_report(bool contended);     // after a multi-thread call

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
  // count_long = false leaves this wait out of long_wait_ns (a call's first barrier, where
  // a worker may still be waking up from an idle core: that is not contention).
  void wait(bool& local_sense, bool count_long = true) {
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
        long_wait(local_sense, count_long);
        return;
      }
    }
  }

  // Nanoseconds the threads spent waiting beyond the spinning phase (see long_wait).
  int64_t long_wait_ns() const { return long_wait_ns_.load(std::memory_order_relaxed); }

 private:
  static constexpr int kSpinsBeforeYield = 1 << 14;
  // Yields until sense_ == sense; with count, adds the time to long_wait_ns_.
  void long_wait(bool sense, bool count);
  const int n_;
  alignas(64) std::atomic<int> count_{0};
  alignas(64) std::atomic<bool> sense_{false};
  std::atomic<int64_t> long_wait_ns_{0};
};

}  // namespace fastrnn
