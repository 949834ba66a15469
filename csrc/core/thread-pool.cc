#include "core/thread-pool.h"

#include <pthread.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#include <chrono>
#include <condition_variable>
#endif

#include <algorithm>
#include <climits>
#include <deque>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "core/host-openmp.h"
#include "core/threads.h"

namespace fastrnn {
namespace {

// Sleeping on a word: word_wait returns once *word may differ from expected (or spuriously:
// callers loop), word_wake wakes every thread waiting on word. A futex on Linux: waking is
// one system call on the word's address, which stays harmless if the word's memory has
// been reused meanwhile (the kernel only hashes the address). Not std::condition_variable:
// its wait(unique_lock&) is a GLIBCXX_3.4.30 symbol (GCC 12), which would raise the wheel's
// manylinux tag from 2_34 to 2_35.
#if defined(__linux__)
void word_wait(std::atomic<uint32_t>& word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}
void word_wake(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
          nullptr, 0);
}
#else
std::mutex g_word_mu;
std::condition_variable g_word_cv;
void word_wait(std::atomic<uint32_t>& word, uint32_t expected) {
  std::unique_lock<std::mutex> lock(g_word_mu);
  if (word.load() == expected) g_word_cv.wait_for(lock, std::chrono::milliseconds(1));
}
void word_wake(std::atomic<uint32_t>&) {
  std::lock_guard<std::mutex> lock(g_word_mu);
  g_word_cv.notify_all();
}
#endif
// The floating-point control state (x86 MXCSR, AArch64 FPCR: rounding mode, flush-to-zero,
// denormals-are-zero) is per thread; a call's helpers and runners take its caller's, so that
// a caller that set flush-to-zero (torch.set_flush_denormal(True) does, on its own thread)
// gets the same bits on any number of threads.
#if defined(__x86_64__) || defined(__i386__)
using FpEnv = uint32_t;
inline FpEnv fp_env_get() { return __builtin_ia32_stmxcsr(); }
inline void fp_env_set(FpEnv e) {
  if (__builtin_ia32_stmxcsr() != e) __builtin_ia32_ldmxcsr(e);
}
#elif defined(__aarch64__)
using FpEnv = uint64_t;
inline FpEnv fp_env_get() {
  uint64_t e;
  asm volatile("mrs %0, fpcr" : "=r"(e));
  return e;
}
inline void fp_env_set(FpEnv e) {
  if (fp_env_get() != e) asm volatile("msr fpcr, %0" : : "r"(e));
}
#else
using FpEnv = int;
inline FpEnv fp_env_get() { return 0; }
inline void fp_env_set(FpEnv) {}
#endif

// A helper woken from its sleep by a caller that then spins for it may be placed by the
// scheduler on the caller's own CPU (wake-affine), the other CPUs idle: the two then share
// one CPU, each spinning out its time slice while the other waits at a barrier, until the
// load balancer moves one. Measured in a 2-vCPU KVM guest, LSTM I = H = 256, T = 100, 2
// threads, a call 25 ms after the last: 8-12 ms, against 1.0 ms warm and 2.2 ms on one thread;
// 1.3-1.6 ms with the two threads pinned apart. So a woken helper that finds itself on its
// caller's CPU moves off it: allowed on every CPU of its set but that one for a moment (the
// kernel migrates it at once), then on its whole set again (it stays where it went).
#if defined(__linux__)
int current_cpu() { return sched_getcpu(); }
// Returns whether it moved.
bool move_off_cpu(int cpu) {
  cpu_set_t own;
  if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof own, &own) != 0) return false;
  if (!CPU_ISSET(cpu, &own) || CPU_COUNT(&own) < 2) return false;
  cpu_set_t others = own;
  CPU_CLR(cpu, &others);
  if (sched_setaffinity(0, sizeof others, &others) != 0) return false;
  sched_setaffinity(0, sizeof own, &own);
  return true;
}
#else
int current_cpu() { return -1; }
bool move_off_cpu(int) { return false; }
#endif

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) &&
                  std::atomic<uint32_t>::is_always_lock_free,
              "a futex word is a plain 32-bit integer");

}  // namespace

namespace pool_detail {

// One pool thread. Giving it work: write tid and job, then bump seq (see give). The thread
// takes the job by exchanging it for null; the giver may take it back the same way while the
// thread has not (ThreadTeam::run with retractable), and the thread then finds null.
// Two cache lines: what the thread polls at every spin and a give writes (seq, job), apart
// from what callers write when they claim it and when their team breaks up (claimed, next),
// which it reads every 64th spin. On one line, each of those writes took the line back from
// the spinning thread, a cross-core transfer on the caller's path before and after its share
// (~180 ns each in a 2-vCPU VM, SPR-class Xeon).
struct Worker {
  alignas(64) std::atomic<uint32_t> seq{0};  // bumped once per job
  std::atomic<Job*> job{nullptr};
  int tid = 0;
  int caller_cpu = -1;  // the CPU its caller gave the job on, when it was asleep (else -1)
  // In a team, its job coming or done: spin whatever the tokens say. Set when a caller
  // claims it; cleared by the caller when its team breaks up (also when no job came), by the
  // thread itself only after a runner's job. So a helper never sleeps between the claim and
  // the release, which is right while a call's team.run is the last thing it does.
  alignas(64) std::atomic<bool> claimed{false};
  std::atomic<bool> sleeping{false};  // about to wait, or waiting, on seq (word_wait)
  Worker* next = nullptr;  // the next in the idle stack or in a team (Pool::mu_ guards it)
  Job runner;              // the job that makes this thread a runner (Pool::run_queue)
};

}  // namespace pool_detail

namespace {
using pool_detail::Job;
using pool_detail::Worker;

// How long a count of concurrent callers keeps limiting each one's team (Pool::call): long
// beside a time step (10 us - 1 ms), short beside a change of load (a second caller gone, the
// first gets both threads back within 10 ms). Counting only the callers inside at the
// instant, two callers that each spend a few us in Python between steps each found the other
// outside and took both threads; they then took turns at 2 threads (p50 100 us, p99 1 ms)
// instead of stepping side by side at one each (p50 86 us, p99 166 us; 2-layer LSTM H = 256,
// Sapphire Rapids-class Xeon).
constexpr int64_t kPeakWindowNs = 10'000'000;

// How long a runner with nothing queued keeps its core token waiting for the next queued call:
// calls queue while others run (every ~10 us - 1 ms); once they stop, the core goes back to
// the pool soon, for a caller alone to take with a full team.
constexpr int64_t kRunnerSpinNs = 300'000;

// A call queued for a runner; lives on its caller's stack until done.
struct Task {
  void (*fn)(void*, ThreadTeam&) = nullptr;
  void* ctx = nullptr;
  FpEnv fp_env = fp_env_get();    // the caller's
  std::atomic<uint32_t> done{0};  // 1 once the runner is done with this task (word_wait)
  std::exception_ptr error;
};

// Another runtime's threads may want this core while a pool thread idles on it: torch's
// OpenMP team, run between two fastrnn calls, lost a core to a helper spinning with pause
// (2.5x slower, and fastrnn's next call as much, waiting on torch's spinning threads). So
// after kPauseSpinNs an idle pool thread spins with sched_yield, which hands the core to any
// thread ready to run on it and otherwise returns at once. (Sleeping as soon as a yield took
// long, a sign the core was wanted, made calls 1 ms apart 1.9x slower: the helper slept
// through the gap in this VM.)
constexpr int64_t kPauseSpinNs = 50'000;
inline void idle_pause(int64_t t0, unsigned spins) {
  if (spins < 256 || threads_now_ns() - t0 < kPauseSpinNs) {
    cpu_relax();
  } else {
    std::this_thread::yield();
  }
}

bool give(Worker* w, Job* job, int tid);
void worker_main(struct Pool* pool, Worker* w);

struct Pool {
  Pool(int cores, int budget)
      : cores_(cores), free_(cores), budget_(budget), team_free_(budget), free_hint_(cores) {}

  void call(int want, void (*fn)(void*, ThreadTeam&), void* ctx, bool host_openmp);
  // n pool threads, claimed, for a team whose tokens are already held; fewer if the system
  // refuses threads. Returns how many, linked through next into team.
  int claim_helpers(int n, Worker*& team);
  void run_queue();  // a runner's life (on a pool thread holding a core token)
  void set_budget(int n);
  ThreadPoolState state();
  int free_hint() const { return free_hint_.load(std::memory_order_seq_cst); }
  // Bumped at each update of free_hint: a helper's team has returned its tokens once it moved.
  uint64_t releases() const { return releases_.load(std::memory_order_seq_cst); }

  std::atomic<int64_t> sleeps_{0};      // pool threads that went to sleep, since the start
  std::atomic<int64_t> host_teams_{0};  // calls whose team was the host's OpenMP threads
  std::atomic<int64_t> retracted_{0};   // helpers' jobs their callers took back (ThreadTeam)
  std::atomic<int64_t> moved_{0};       // woken helpers moved off their caller's CPU

  std::mutex mu_;  // guards everything below; pthread_atfork holds it across fork()

  void idle_push_locked(Worker* w) {
    w->next = idle_;
    idle_ = w;
  }

 private:
  // Up to n idle workers, claimed, linked through next (the most recently idle first: the
  // likeliest to be still spinning). Returns how many; the rest must be started unlocked.
  int claim_idle_locked(int n, Worker*& team);
  Worker* start_worker();  // a new thread, claimed; nullptr if the system refused one
  // Up to n new threads (start_worker, unlocked) linked through next into team; returns how
  // many the system gave.
  int start_workers(int n, Worker*& team);
  // Gives free core tokens to new runners while calls are queued. (A runner already spinning
  // may take a queued call first; then a new one finds nothing and gives its token back
  // after its idle spin.) The caller publishes afterwards, once for all it changed under the
  // lock: a call's release publishes once, not twice (each publish writes the line the idle
  // helpers poll; SPR-class Xeon, 2 vCPUs, alternating processes: int8 stream steps of an
  // LSTM, I = H = 256, at 2 threads 0.92-0.94x the time in loops of 1,000 steps, level in
  // bench/precision.py's loops of 100; small_lstm_64 0.99x, the rest level).
  void feed_queue_locked();
  void publish_locked() {
    free_hint_.store(free_, std::memory_order_seq_cst);
    releases_.fetch_add(1, std::memory_order_seq_cst);
  }

  int cores_;      // core tokens: threads that may compute at once, callers included
  int free_;       // core tokens no thread holds
  int budget_;     // team tokens: threads that may be in multi-thread teams at once
  int team_free_;  // team tokens no team holds
  int callers_ = 0;
  int runners_ = 0;
  std::atomic<int> workers_{0};
  int64_t queued_calls_ = 0;
  int peak_callers_ = 0;  // the most callers inside at once, until peak_until_ns_
  int64_t peak_until_ns_ = 0;
  Worker* idle_ = nullptr;           // a stack
  std::deque<Task*> queue_;          // calls waiting for a runner, oldest first
  std::atomic<int> free_hint_;       // free_, for idle helpers to read without the lock
  std::atomic<int> queued_hint_{0};  // queue_.size(), for a spinning runner
  std::atomic<uint64_t> releases_{0};
};

void Pool::call(int want, void (*fn)(void*, ThreadTeam&), void* ctx, bool host_openmp) {
  // Before the lock: the host runtime may take its own locks on a thread's first call.
  const int host_max = host_openmp && want > 1 ? host_openmp_max_team() : 0;
  std::unique_lock<std::mutex> lock(mu_);
  ++callers_;
  const int64_t now = threads_now_ns();
  if (callers_ >= peak_callers_ || now > peak_until_ns_) {
    peak_callers_ = callers_;
    peak_until_ns_ = now + kPeakWindowNs;
  }
  if (free_ <= 0 || !queue_.empty()) {  // every core busy (or others queued first): queue
    Task task;
    task.fn = fn;
    task.ctx = ctx;
    try {
      queue_.push_back(&task);
    } catch (...) {
      --callers_;
      throw;
    }
    queued_hint_.store(static_cast<int>(queue_.size()), std::memory_order_release);
    ++queued_calls_;
    feed_queue_locked();
    publish_locked();
    if (runners_ > 0 || free_ <= 0) {
      lock.unlock();
      while (task.done.load(std::memory_order_acquire) == 0) word_wait(task.done, 0);
      lock.lock();
      --callers_;
      lock.unlock();
      if (task.error) std::rethrow_exception(task.error);
      return;
    }
    // A core is free but no runner could be started (the system refused a thread): take
    // the call back and compute it here rather than wait for a runner that will not come.
    queue_.erase(std::find(queue_.begin(), queue_.end(), &task));
    queued_hint_.store(static_cast<int>(queue_.size()), std::memory_order_release);
  }
  --free_;
  // Helpers from what is free, up to the caller's fair share of the budget.
  const int share = std::max(1, budget_ / peak_callers_);
  int size = std::min({std::max(1, want), share, 1 + free_, team_free_});
  if (size < 2) size = 1;
  free_ -= size - 1;
  if (size > 1) team_free_ -= size;
  // On the host's OpenMP team (its threads, not the pool's), when it can take this size.
  const bool host = size > 1 && size <= host_max;
  Worker* team = nullptr;
  int helpers = host ? size - 1 : claim_idle_locked(size - 1, team);
  publish_locked();
  lock.unlock();
  if (const int missing = size - 1 - helpers; missing > 0) {
    const int started = start_workers(missing, team);
    helpers += started;
    if (started < missing) {  // no more threads: the call runs on fewer
      std::lock_guard<std::mutex> relock(mu_);
      free_ += missing - started;
      team_free_ += missing - started + (helpers == 0 ? 1 : 0);  // a team of one holds none
      feed_queue_locked();
      publish_locked();
    }
  }
  std::exception_ptr error;
  {
    ThreadTeam t(team, helpers, host);
    try {
      fn(ctx, t);
    } catch (...) {
      error = std::current_exception();
    }
    team = t.pool_helpers();  // a host team that fell back to the pool's threads has some
  }
  lock.lock();
  while (team != nullptr) {
    Worker* next = team->next;
    // Its job is done (the join waited for it), or it got none (fn threw before team.run,
    // e.g. bad_alloc for the workspace): it may sleep now.
    team->claimed.store(false, std::memory_order_relaxed);
    team->next = idle_;
    idle_ = team;
    team = next;
  }
  free_ += 1 + helpers;
  if (helpers > 0) team_free_ += 1 + helpers;
  feed_queue_locked();
  --callers_;
  const bool stranded = !queue_.empty() && runners_ == 0 && free_ > 0;
  if (stranded) {  // no runner could be started: this thread runs the queue, as a runner
    --free_;
    ++runners_;
  }
  publish_locked();
  lock.unlock();
  if (stranded) run_queue();
  if (error) std::rethrow_exception(error);
}

int Pool::claim_helpers(int n, Worker*& team) {
  int got;
  {
    std::lock_guard<std::mutex> lock(mu_);
    got = claim_idle_locked(n, team);
  }
  return got + start_workers(n - got, team);
}

int Pool::start_workers(int n, Worker*& team) {
  int started = 0;
  for (; started < n; ++started) {
    Worker* w = start_worker();
    if (w == nullptr) break;
    w->next = team;
    team = w;
  }
  return started;
}

void Pool::feed_queue_locked() {
  for (size_t n = queue_.size(); n > 0 && free_ > 0; --n) {
    Worker* w = nullptr;
    // Starting a thread under the lock is rare: once per runner the process ever needs.
    if (claim_idle_locked(1, w) == 0 && (w = start_worker()) == nullptr) break;
    --free_;
    ++runners_;
    give(w, &w->runner, 0);
  }
}

void Pool::run_queue() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (!queue_.empty()) {
      Task* task = queue_.front();
      queue_.pop_front();
      queued_hint_.store(static_cast<int>(queue_.size()), std::memory_order_release);
      lock.unlock();
      {
        ThreadTeam alone(nullptr, 0);
        fp_env_set(task->fp_env);
        try {
          task->fn(task->ctx, alone);
        } catch (...) {
          task->error = std::current_exception();
        }
      }
      task->done.store(1, std::memory_order_release);  // the last use of *task but its address
      word_wake(task->done);
      std::this_thread::yield();
      lock.lock();
      continue;
    }
    // Nothing queued: wait a while for the next call (its caller will queue it, as this
    // runner holds a core), then give the core token back.
    lock.unlock();
    const int64_t t0 = threads_now_ns();
    for (unsigned spins = 1; queued_hint_.load(std::memory_order_acquire) == 0; ++spins) {
      if (spins % 64 == 0 && threads_now_ns() - t0 > kRunnerSpinNs) break;
      cpu_relax();
    }
    lock.lock();
    if (queue_.empty()) {
      --runners_;
      ++free_;
      publish_locked();
      return;
    }
  }
}

int Pool::claim_idle_locked(int n, Worker*& team) {
  int got = 0;
  while (got < n && idle_ != nullptr) {
    Worker* w = idle_;
    idle_ = w->next;
    w->claimed.store(true, std::memory_order_seq_cst);  // before free_hint_: see worker_main
    w->next = team;
    team = w;
    ++got;
  }
  return got;
}

void Pool::set_budget(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  team_free_ += n - budget_;  // may go below 0 until the teams running return their tokens
  budget_ = n;
}

ThreadPoolState Pool::state() {
  std::lock_guard<std::mutex> lock(mu_);
  return {cores_,
          free_,
          budget_,
          team_free_,
          callers_,
          static_cast<int>(queue_.size()),
          runners_,
          workers_.load(),
          queued_calls_,
          sleeps_.load(),
          host_teams_.load(),
          retracted_.load(),
          moved_.load()};
}

Worker* Pool::start_worker() {
  Worker* w = new (std::nothrow) Worker;
  if (w == nullptr) return nullptr;
  w->claimed.store(true, std::memory_order_relaxed);
  w->runner.fn = [](void* pool, int) { static_cast<Pool*>(pool)->run_queue(); };
  w->runner.ctx = this;
  try {
    std::thread(worker_main, this, w).detach();
  } catch (...) {  // system_error (no thread), bad_alloc: the call runs on fewer threads
    delete w;
    return nullptr;
  }
  workers_.fetch_add(1, std::memory_order_relaxed);
  return w;
}

// A pool thread's life: wait for a job (spinning while it may, then asleep), run it, and
// when it was a runner's, go back on the idle stack. The thread never ends: the pool lives
// as long as the process (after a fork the child has a new pool, without these threads).
void worker_main(Pool* pool, Worker* w) {
  uint32_t seen = 0;
  for (;;) {
    const int64_t t0 = threads_now_ns();
    bool slept = false;
    // Until the team this helper just served has returned its tokens, free_hint still counts
    // them as held (sleeping on that stale 0 cost a wake-up per call: stream steps at 2
    // threads ran 2.6x slower).
    const uint64_t releases0 = pool->releases();
    for (unsigned spins = 1; w->seq.load(std::memory_order_acquire) == seen; ++spins) {
      // Only every 64th spin: the pool's counters and this worker's claimed flag are written
      // by the callers at every call, and a helper reading them at each spin pulled their
      // lines back to its core between those writes (a stream's step at 2 threads: each call
      // stalled on them; reading seq alone, LSTM I = H = 256 steps took 0.95x the time at
      // int8, 0.96x at fp32; Sapphire Rapids-class Xeon, 2 vCPUs). A caller's claim still
      // keeps it awake: it looks at claimed before it may sleep, and at seq every spin.
      if (spins % 64 != 0) {
        idle_pause(t0, spins);
        continue;
      }
      // Read in this order: releases, free_hint, claimed. A caller publishes free_hint
      // before bumping releases, so a free_hint read after a release is no older than it; and
      // it claims this worker before it publishes, so a 0 that comes from the caller about to
      // give this worker a job is seen with claimed set.
      const bool released = pool->releases() != releases0;
      const bool cores_busy = released && pool->free_hint() <= 0;
      const bool claimed = w->claimed.load(std::memory_order_seq_cst);
      const bool spun_out = threads_now_ns() - t0 > kIdleSpinNs;
      if (!claimed && (cores_busy || spun_out)) {
        // Sleep. sleeping is set before the last look at seq, and give bumps seq before it
        // looks at sleeping (both seq_cst), so one sees the other: no wake-up is lost.
        pool->sleeps_.fetch_add(1, std::memory_order_relaxed);
        w->sleeping.store(true, std::memory_order_seq_cst);
        while (w->seq.load(std::memory_order_seq_cst) == seen) word_wait(w->seq, seen);
        w->sleeping.store(false, std::memory_order_relaxed);
        slept = true;
        break;
      }
      idle_pause(t0, spins);
    }
    seen = w->seq.load(std::memory_order_acquire);
    // Null: the caller took its job back before this thread came (it was late; claimed is,
    // or will be, cleared when the caller's team breaks up, and may be set again by a new
    // claim).
    Job* job = w->job.exchange(nullptr, std::memory_order_acq_rel);
    if (job == nullptr) continue;
    const int tid = w->tid;  // written before job (give): the exchange's acquire sees it
    if (slept && job != &w->runner && current_cpu() == w->caller_cpu && move_off_cpu(w->caller_cpu))
      pool->moved_.fetch_add(1, std::memory_order_relaxed);
    if (job == &w->runner) {
      pool->run_queue();
      std::lock_guard<std::mutex> lock(pool->mu_);
      w->claimed.store(false, std::memory_order_relaxed);
      pool->idle_push_locked(w);  // run_queue has given its core token back
      continue;
    }
    fp_env_set(static_cast<FpEnv>(job->fp_env));
    try {
      job->fn(job->ctx, tid);
    } catch (...) {
      if (!job->failed.exchange(true)) job->error = std::current_exception();
    }
    job->pending.fetch_sub(1, std::memory_order_acq_rel);  // the last use of job
  }
}

// Returns whether w was asleep.
bool give(Worker* w, Job* job, int tid) {
  w->tid = tid;
  // Only a sleeping helper needs it (worker_main); one that falls asleep just now goes without.
  w->caller_cpu = w->sleeping.load(std::memory_order_relaxed) ? current_cpu() : -1;
  w->job.store(job, std::memory_order_release);
  w->seq.fetch_add(1, std::memory_order_seq_cst);
  if (!w->sleeping.load(std::memory_order_seq_cst)) return false;
  word_wake(w->seq);
  return true;
}

// The pool, created at the first call; never destroyed (its threads may still be asleep on it
// when the process exits). pthread_atfork holds its lock across fork(), so the child never
// inherits it mid-update, and gives the child a new, empty pool.
std::atomic<Pool*> g_pool{nullptr};
std::mutex g_pool_create;

// The locks are taken in the order the code nests them: g_pool_create (held while a pool is
// made, which reads the policy), the policy's, the pool's.
void fork_prepare() {
  g_pool_create.lock();
  threads_policy_lock();
  if (Pool* p = g_pool.load()) p->mu_.lock();
}
void fork_parent() {
  if (Pool* p = g_pool.load()) p->mu_.unlock();
  threads_policy_unlock();
  g_pool_create.unlock();
}
void fork_child() {
  threads_policy_unlock();
  // The parent's pool stays locked and leaked: its threads are not in this process.
  if (g_pool.load() != nullptr) g_pool.store(new Pool(threads_hardware(), threads_get()));
  g_pool_create.unlock();
}
// Registered when the library loads, so a fork before the first call is covered too.
[[maybe_unused]] const int g_fork_handlers = pthread_atfork(fork_prepare, fork_parent, fork_child);

Pool& pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p != nullptr) return *p;
  std::lock_guard<std::mutex> lock(g_pool_create);
  if ((p = g_pool.load()) == nullptr) {
    p = new Pool(threads_hardware(), threads_get());
    g_pool.store(p, std::memory_order_release);
  }
  return *p;
}

}  // namespace

void ThreadTeam::run_erased(void (*fn)(void*, int), void* ctx) {
  if (helpers_ == 0) {
    fn(ctx, 0);
    return;
  }
  if (host_ && first_ == nullptr) {
    // Each thread of the host's team takes the caller's floating-point state for the job and
    // gets its own back after it (the host's threads keep theirs for the host's work).
    Job job;
    job.fn = fn;
    job.ctx = ctx;
    job.fp_env = fp_env_get();
    auto thread_body = [](void* data, int tid) {
      Job& j = *static_cast<Job*>(data);
      const FpEnv own = fp_env_get();
      fp_env_set(static_cast<FpEnv>(j.fp_env));
      try {
        j.fn(j.ctx, tid);
      } catch (...) {
        if (!j.failed.exchange(true)) j.error = std::current_exception();
      }
      fp_env_set(own);
    };
    woke_sleeping_ = true;
    if (host_openmp_run(1 + helpers_, thread_body, &job)) {
      pool().host_teams_.fetch_add(1, std::memory_order_relaxed);
      if (job.failed.load()) std::rethrow_exception(job.error);
      return;
    }
    // The host's region had another size (nothing ran): the pool's threads, with the
    // tokens already held. The call was planned for this team size, so it needs them all.
    const int got = pool().claim_helpers(helpers_, first_);
    if (got < helpers_)
      throw std::runtime_error("fastrnn: no threads for a team of " + std::to_string(1 + helpers_));
  }
  run_on_pool(fn, ctx);
}

void ThreadTeam::run_on_pool(void (*fn)(void*, int), void* ctx) {
  Job job;
  job.fn = fn;
  job.ctx = ctx;
  job.fp_env = fp_env_get();
  job.pending.store(helpers_, std::memory_order_relaxed);
  int tid = 1;
  for (Worker* w = first_; w != nullptr; w = w->next) woke_sleeping_ |= give(w, &job, tid++);
  std::exception_ptr error;
  try {
    fn(ctx, 0);
  } catch (...) {
    error = std::current_exception();
  }
  // A helper that has not taken its job by now is late (asleep and waking, or without a
  // core: in a VM a vCPU idle for a while ran each of a stream's next steps ~0.5 ms late):
  // take the job back and run its tid here, instead of waiting for it. Only while some
  // helper is not done: a helper's job word sits on the line it wrote when it took the job,
  // and trying it after every step cost each a cross-core transfer before the join (a
  // stream step at 2 threads: ~1,400 cycles from the caller's share to the call's return,
  // ~700 without the try; SPR-class Xeon under KVM).
  if (retractable_ && job.pending.load(std::memory_order_acquire) > 0) {
    int tid = 1;
    for (Worker* w = first_; w != nullptr; w = w->next, ++tid) {
      Job* given = &job;
      if (!w->job.compare_exchange_strong(given, nullptr, std::memory_order_acq_rel)) continue;
      ++retracted_;
      pool().retracted_.fetch_add(1, std::memory_order_relaxed);
      if (!error) {
        try {
          fn(ctx, tid);
        } catch (...) {
          error = std::current_exception();
        }
      }
      job.pending.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  // The helpers finish about with this thread, unless descheduled; job lives on this stack,
  // so wait for them even when this thread's part threw. A wait past kJoinSpinsBeforeTiming
  // spins is timed (long_join_ns).
  int64_t t0 = 0;
  for (int spins = 0; job.pending.load(std::memory_order_acquire) > 0;) {
    if (spins == kJoinSpinsBeforeTiming) t0 = threads_now_ns();
    if (spins < (1 << 14)) {
      ++spins;
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  if (t0 != 0) long_join_ns_ = threads_now_ns() - t0;
  if (error) std::rethrow_exception(error);
  if (job.failed.load()) std::rethrow_exception(job.error);
}

void thread_pool_call_erased(int want, void (*fn)(void*, ThreadTeam&), void* ctx,
                             bool host_openmp) {
  pool().call(want, fn, ctx, host_openmp);
}

ThreadPoolState thread_pool_state() { return pool().state(); }

void thread_pool_budget(int) {
  // Under g_pool_create, and from threads_get() rather than the caller's n: two concurrent
  // threads_set calls may get here in either order, the pool ends with the policy's value.
  std::lock_guard<std::mutex> lock(g_pool_create);
  if (Pool* p = g_pool.load()) p->set_budget(threads_get());
}

}  // namespace fastrnn
