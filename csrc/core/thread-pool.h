// The thread pool every call's threads come from, and the process-wide counts of cores and
// threads it shares out.
//
// Two counts of tokens, process-wide:
// - core tokens, one per CPU this process may use (threads_hardware()): every thread that
//   computes holds one, so however many Python threads call at once, no more threads compute
//   than there are cores (8 callers time-sliced on 2 cores stalled their steps for whole time
//   slices: p50 102 us, p99 8.3 ms);
// - team tokens, the thread budget (threads_get()): every thread of a multi-thread team holds
//   one, so the threads that spin at a team's barriers never exceed the budget.
//
// A call whose caller finds a core token free computes on the caller's thread, with helper
// threads from the pool if the budget allows: a call alone gets up to the whole budget;
// concurrent calls get their fair share (budget ÷ the most callers inside at once over the
// last 10 ms, at least 1), so two callers on a budget of 2 each compute on one thread side by
// side rather than taking turns at two. A one-thread call needs no team token: with
// set_num_threads(1) every caller computes on its own thread, up to one per core.
//
// A caller that finds every core busy queues its call and sleeps; pool threads holding core
// tokens (runners) take queued calls first come first served, one thread each, and wake each
// caller when its call is done. A caller that finishes its own call while others are queued
// passes its core token to a runner instead of returning it, so the cores never idle while
// calls wait. (Handing the token to the next caller instead, FIFO, left a core idle for each
// wake-up of a sleeping thread, ~100 us in a 2-vCPU VM: 8 callers ran 10,100 steps/s where 2
// ran 19,900. Sapphire Rapids-class Xeon, service benchmark.)
//
// Results do not depend on the team size or on the thread a call runs on, so only the speed
// changes.
//
// A call whose threads never wait for each other (a stream's step of one layer: no barrier,
// only the join) takes back the share of a helper that has not started it by the time the
// caller's own share is done, and runs it itself (ThreadTeam::run, retractable): in a 2-vCPU
// VM a helper idle for a while came ~0.5 ms late to each of the next dozen steps (LSTM
// I = H = 256, 2 threads, one 100-step burst every 25 ms: 530 us per step, 30 us with the
// shares taken back; one thread alone 28 us). A helper woken from its sleep that the
// scheduler put on its caller's CPU moves to another of its CPUs (thread-pool.cc
// move_off_cpu): sharing one CPU, the two took turns at each barrier for ~10 ms.
//
// Why not OpenMP (it launched one team per call until 2026-12): libgomp keeps a team per
// calling thread, so N Python threads made N teams that spun against each other (2 callers ×
// 2 threads on 2 cores: 2,640 steps/s against 13,300 for one caller); its count ignores any
// budget shared by calls; a wheel repaired by auditwheel carries its own renamed libgomp,
// which spins beside torch's in one process; and libgomp cannot run a parallel region in a
// child forked after one ran in the parent. (Inside a torch model the other way round is
// right: a call there may run its team on torch's own OpenMP threads, which spin between
// torch's ops; see core/host-openmp.h.)
//
// Idle pool threads spin for up to kIdleSpinNs after their work (a back-to-back call then
// finds them awake: waking a sleeping thread costs 5-100 us, more than a whole time step), but
// an idle helper only while a core token is free, so it never takes a core a caller holds;
// then they sleep. After fork() the child starts with an empty pool (the parent's threads do
// not exist there) and all its tokens.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>

namespace fastrnn {

namespace pool_detail {
struct Job {
  void (*fn)(void* ctx, int tid) = nullptr;
  void* ctx = nullptr;
  uint64_t fp_env = 0;              // the caller's floating-point control state (thread-pool.cc)
  std::atomic<int> pending{0};      // helpers still running
  std::atomic<bool> failed{false};  // a helper threw; its exception is in error
  std::exception_ptr error;
};
struct Worker;
}  // namespace pool_detail

// The threads one call computes on: the thread running the call (tid 0) and its helpers.
class ThreadTeam {
 public:
  ThreadTeam(pool_detail::Worker* helpers, int count, bool host = false)
      : first_(helpers), helpers_(count), host_(host) {}
  ThreadTeam(const ThreadTeam&) = delete;
  ThreadTeam& operator=(const ThreadTeam&) = delete;

  int size() const { return 1 + helpers_; }
  // Whether run() had to wake a sleeping helper (valid in body, from tid 0 on). A team on
  // the host's OpenMP threads says true: whether they were awake is not known.
  bool woke_sleeping() const { return woke_sleeping_; }
  // After run(): nanoseconds this thread waited for its helpers to return, when that took
  // longer than a peer finishing its share (a helper without a core, or still waking); else 0.
  int64_t long_join_ns() const { return long_join_ns_; }
  // The pool threads it ran on (linked through Worker::next), for the pool to take back.
  pool_detail::Worker* pool_helpers() const { return first_; }

  // Runs body(tid) for tid in [0, size()): this thread runs tid 0, each helper one more, and
  // returns once all have returned (rethrowing an exception from any). body must not throw
  // past a barrier its team mates wait at.
  // retractable: the tids never wait for each other (no barrier), so after tid 0 this thread
  // runs itself the tid of each helper that has not started yet (see retracted()).
  template <class F>
  void run(F& body, bool retractable = false) {
    retractable_ = retractable && !host_;
    run_erased([](void* ctx, int tid) { (*static_cast<F*>(ctx))(tid); }, &body);
  }
  // After a retractable run(): how many helpers' tids this thread ran itself.
  int retracted() const { return retracted_; }

 private:
  void run_erased(void (*fn)(void*, int), void* ctx);
  void run_on_pool(void (*fn)(void*, int), void* ctx);
  pool_detail::Worker* first_;  // the helpers, linked through Worker::next
  int helpers_;
  bool host_;  // helpers_ threads of the host's OpenMP team instead (first_ stays null)
  bool woke_sleeping_ = false;
  bool retractable_ = false;
  int retracted_ = 0;
  int64_t long_join_ns_ = 0;
  // As SpinBarrier's kSpinsBeforeTiming (core/threads.h).
  static constexpr int kJoinSpinsBeforeTiming = 1 << 10;
};

// Runs call(team) once, with team.size() in [1, max(1, want)]: on the calling thread with a
// team from the budget when a core token is free; otherwise queued, on a pool thread with a
// team of one, while the caller sleeps. Returns when call has returned, rethrowing what it
// threw. host_openmp: the team's other threads come from the host program's OpenMP team
// when one is attached and ready (core/host-openmp.h), instead of the pool's; the tokens are
// the same.
void thread_pool_call_erased(int want, void (*fn)(void*, ThreadTeam&), void* ctx, bool host_openmp);
template <class F>
void thread_pool_call(int want, F& call, bool host_openmp = false) {
  thread_pool_call_erased(
      want, [](void* ctx, ThreadTeam& t) { (*static_cast<F*>(ctx))(t); }, &call, host_openmp);
}

// For tests and cpu_info(): the pool's state now.
struct ThreadPoolState {
  int cores;             // core tokens in all: the CPUs this process may use
  int free;              // core tokens no thread holds
  int budget;            // team tokens in all: the thread budget
  int team_free;         // team tokens no team holds
  int callers;           // threads inside a call (computing, or waiting for their queued call)
  int queued;            // calls queued, not yet taken by a runner
  int runners;           // pool threads running queued calls (each holds a core token)
  int workers;           // pool threads started (idle or busy)
  int64_t queued_calls;  // calls that were queued, since the start (or the fork)
  int64_t sleeps;        // times a pool thread went to sleep, since the start (or the fork)
  int64_t host_teams;    // multi-thread calls run on the host's OpenMP threads, since the start
  int64_t retracted;  // helpers' shares their callers ran instead (late helpers), since the start
  int64_t moved;      // woken helpers that moved off their caller's CPU, since the start
};
ThreadPoolState thread_pool_state();

// Sets the budget (threads_set calls it); calls already running keep their teams.
void thread_pool_budget(int n);

// Nanoseconds an idle pool thread spins for its next work before it sleeps: as long as the
// guard's cold gap (threads.h), so a call that comes within it finds its helpers awake. Waking
// a sleeping helper cost ~60 us per call in a 2-vCPU VM: LSTM I = H = 256, T = 10, batch 1,
// 2 threads, one call per ms: 143 us per call with a 0.3 ms spin, 80 us with libgomp's
// (GOMP_SPINCOUNT 300k pauses, milliseconds). libgomp's idle threads spin as long.
constexpr int64_t kIdleSpinNs = 2'000'000;

}  // namespace fastrnn
