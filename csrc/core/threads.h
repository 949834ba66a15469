// Threads: the process-wide thread budget and where it comes from, the oversubscription
// guard, and the spinning barrier that ends every time step. The pool that gives each call its
// team from the budget is core/thread-pool.h.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace fastrnn {

// The thread budget: how many threads may compute at once, over all calls of the process
// (a call alone may use them all; concurrent calls share them, see core/thread-pool.h). The
// first of:
//   1. threads_set(n) (fastrnn.set_num_threads, threadpoolctl's limits);
//   2. FASTRNN_NUM_THREADS;
//   3. OMP_NUM_THREADS (its first entry: "4,2" is 4), which Ray, Dask and Spark set per worker;
//   4. the CPUs this process may use: its affinity mask (taskset, cpusets), capped by the CPU
//      quota of its cgroup (v1 cpu.cfs_quota_us / cpu.cfs_period_us, v2 cpu.max, the smallest
//      on the path up to the hierarchy's root; a quota of 1.5 CPUs counts as 2).
// The environment is read once, at the first use. A value that is not a whole number in
// [1, threads_max()] is skipped, and the policy says so (ThreadsPolicy::ignored).
struct ThreadsPolicy {
  int budget = 1;
  std::string source;  // "set_num_threads", "FASTRNN_NUM_THREADS", "OMP_NUM_THREADS",
                       // "affinity" or "cgroup" (the last two: the CPU count, and which capped it)
  int affinity_cpus = 1;   // CPUs in the affinity mask
  double cgroup_cpus = 0;  // the cgroup CPU quota in CPUs; 0: none found
  int cpus = 1;            // the CPUs this process may use: affinity capped by the quota
  std::string ignored;     // environment values skipped, and why ("" if none)
};
ThreadsPolicy threads_policy();

int threads_get();  // the thread budget (>= 1)
// The policy's lock, for the pool's fork handlers only (core/thread-pool.cc): held across
// fork() so that a child never inherits it locked by a thread that does not exist there.
void threads_policy_lock();
void threads_policy_unlock();
void threads_set(int n);  // 1 <= n <= threads_max(); calls already running keep their teams
int threads_hardware();   // the CPUs this process may use (ThreadsPolicy::cpus)
// The largest budget: every thread reserves a stack, and a thread the system refuses would
// cost the call its helpers. 1024 is beyond today's largest servers (2 sockets × 192 cores ×
// 2 SMT = 768); a machine with more may use them all.
int threads_max();

// The CPU quota of this process's cgroup, in CPUs (0: none), read from proc_self's "cgroup"
// and "mountinfo" files (normally /proc/self; tests point it at fakes).
double cgroup_cpu_quota(const std::string& proc_self);

// Oversubscription guard. A time step ends in a barrier, so when the machine has more
// runnable threads than cores and one of a call's threads is descheduled, the others wait
// out its time slice on every step (measured: 2-thread LSTM I=H=256, T=100 went from
// 0.8 ms to 39 ms median with 4 busy processes on 2 cores). A call that spent most of its
// time in such waits (its first barrier, where a worker may be waking up, aside; the join
// counts as a barrier) reports it, and so does a call whose caller ran a late helper's share
// itself (a call without barriers: core/thread-pool.h);
// after two such calls in a row the next calls run on one thread, for a number of calls
// that doubles while the contention lasts (16 .. 4096) and resets once a multi-thread call
// runs clean. Results do not depend on the thread count, so only the speed changes.
//
// A cold call, one that starts more than kColdGapNs after the previous multi-thread call
// ended, does not count as contended: its workers had gone to sleep (pool threads spin 2 ms
// after a call, kIdleSpinNs, then wait on a futex) and, in a VM, their idle vCPUs may have been
// halted by the host, so waking them can take milliseconds past the first barrier
// (measured on a 2-vCPU KVM Xeon: 7.8 ms of waits in such a call). Counting those sent a
// service that calls every few tens of ms to one thread for good: the back-off's own
// single-thread calls let the workers sleep, so the next multi-thread call was cold and
// contended again, and the back-off doubled (lat_gru_256 at 2 threads: 1.01x one thread
// instead of 1.75x). A back-off also clears the count, so it takes two fresh contended
// calls to start the next one.
constexpr int64_t kColdGapNs = 2'000'000;
// FASTRNN_BACKOFF=0 turns the guard off (read once): every call then gets the threads its
// plan and the pool give it, contended or not. For benchmarks that time a thread count on a
// noisy machine (bench/sweep.py), not for services.
bool threads_backoff_enabled();
int64_t threads_now_ns();    // steady clock
bool threads_backing_off();  // true: run this call on one thread
// After a multi-thread call that ran from start_ns to end_ns (steady clock).
void threads_report(bool contended, int64_t start_ns, int64_t end_ns);
struct ThreadsGuardState {
  int backing_off;       // calls still to run on one thread
  int contended_in_row;  // contended warm multi-thread calls in a row
  int backoff_len;       // length of the current back-off (0: no contention seen)
};
ThreadsGuardState threads_guard_state();

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
  // a worker may still be waking up from an idle core: that is not contention), unless
  // count_every_wait(true) said the team's threads were all awake when the call began.
  void wait(bool& local_sense, bool count_long = true) {
    if (n_ == 1) return;
    local_sense = !local_sense;
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      sense_.store(local_sense, std::memory_order_release);
      return;
    }
    for (int spins = 0; sense_.load(std::memory_order_acquire) != local_sense; ++spins) {
      if (spins == kSpinsBeforeTiming) {
        long_wait(local_sense, count_long || count_every_.load(std::memory_order_relaxed));
        return;
      }
      cpu_relax();
    }
  }

  // Every thread of the team was awake (spinning for work) when the call began, so a late
  // one at the first barrier lacked a core: count that wait too. (torch's idle OpenMP
  // threads spin for milliseconds after each torch call; a helper given a call on a core one
  // of them holds joined late at the first barrier, 4.8x slower than alone, unseen.)
  void count_every_wait(bool on) { count_every_.store(on, std::memory_order_relaxed); }

  // Nanoseconds the threads spent in waits longer than kSpinsBeforeTiming spins.
  int64_t long_wait_ns() const { return long_wait_ns_.load(std::memory_order_relaxed); }

 private:
  // A wait this long (15-55 us: pause takes 40-140 cycles) is no longer a peer finishing
  // its share of a step (a few us at most) but a peer without a core: it is timed, for the
  // oversubscription guard.
  static constexpr int kSpinsBeforeTiming = 1 << 10;
  static constexpr int kSpinsBeforeYield = 1 << 14;
  // Waits until sense_ == sense, spinning up to kSpinsBeforeYield spins in all, then
  // yielding; with count, adds the time to long_wait_ns_.
  void long_wait(bool sense, bool count);
  const int n_;
  alignas(64) std::atomic<int> count_{0};
  alignas(64) std::atomic<bool> sense_{false};
  std::atomic<int64_t> long_wait_ns_{0};
  std::atomic<bool> count_every_{false};
};

}  // namespace fastrnn
