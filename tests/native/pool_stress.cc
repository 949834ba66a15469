// Stress test of the thread pool (csrc/core/thread-pool.h) for ThreadSanitizer, run by
// tests/test_pool_native.py: built with -fsanitize=thread together with the pool's sources
// only (the interpreter cannot load a TSan-instrumented extension here), so any data race in
// the pool's hand-offs, queue, tokens or sleeps is reported.
//
// 1, 2 and then 8 caller threads each make many calls (alone a call gets a team; beyond the
// cores, calls queue for runner threads); a call's team sums its share of an array between
// barriers (SpinBarrier, as the forward driver does) and checks the total after every
// barrier and at the end, so a barrier that
// lets a thread through early, or a helper that ran the wrong job, ran it twice or was never
// given it, fails the check. Meanwhile another
// thread flips the budget between 1, 2 and 3. Afterwards every token must be back.
//
// Every other call's team runs without barriers and retractable (ThreadTeam::run): each tid
// adds its share once, whichever thread runs it, so a share taken back by the caller and run
// by its helper as well, or by neither, fails the check; and TSan sees the hand-back.
//
// Exit code 0 and "ok" on success; a message and exit code 1 otherwise.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "core/thread-pool.h"
#include "core/threads.h"

namespace {

constexpr int kCallers = 8, kCallsPerCaller = 300, kSize = 4096, kSteps = 4;

struct Call {
  std::vector<int> data;
  int64_t expected = 0;
};

std::atomic<int64_t> g_calls{0}, g_team_calls{0};  // all calls; those with a team of 2+

// A barrier-free call: each tid sums its share once; the caller may run late helpers' shares.
bool run_retractable(const Call& call, int want) {
  bool ok = true;
  auto body = [&](fastrnn::ThreadTeam& team) {
    const int nt = team.size();
    g_calls.fetch_add(1);
    if (nt > 1) g_team_calls.fetch_add(1);
    std::vector<int64_t> partial(nt * 16, 0);
    std::vector<int> runs(nt * 16, 0);
    // tid 0 has no share (with helpers): the caller is done at once, so it often takes a
    // share back from a helper not started yet, and a helper sometimes starts first.
    const int parts = nt > 1 ? nt - 1 : 1, first = nt > 1 ? 1 : 0;
    auto work = [&](int tid) {
      int64_t s = 0;
      const int part = tid - first;
      if (part >= 0)
        for (int i = kSize * part / parts; i < kSize * (part + 1) / parts; ++i) s += call.data[i];
      partial[tid * 16] += s;
      ++runs[tid * 16];
    };
    team.run(work, true);
    int64_t total = 0;
    for (int t = 0; t < nt; ++t) {
      total += partial[t * 16];
      if (runs[t * 16] != 1) ok = false;
    }
    if (total != call.expected) ok = false;
  };
  fastrnn::thread_pool_call(want, body);
  return ok;
}

bool run_call(const Call& call, int want) {
  bool ok = true;
  auto body = [&](fastrnn::ThreadTeam& team) {
    const int nt = team.size();
    g_calls.fetch_add(1);
    if (nt > 1) g_team_calls.fetch_add(1);
    fastrnn::SpinBarrier barrier(nt);
    std::vector<int64_t> partial(nt * 16, 0);  // one cache line apart
    std::vector<char> seen_wrong(nt * 64, 0);
    auto work = [&](int tid) {
      bool sense = false;
      for (int step = 0; step < kSteps; ++step) {
        int64_t s = 0;
        for (int i = kSize * tid / nt; i < kSize * (tid + 1) / nt; ++i) s += call.data[i];
        partial[tid * 16] += s;
        barrier.wait(sense, step > 0);
        // Every thread's partial of this step is in (plain memory: a barrier that let a
        // thread through early is a data race for TSan, and a wrong total here).
        int64_t total = 0;
        for (int t = 0; t < nt; ++t) total += partial[t * 16];
        if (total != (step + 1) * call.expected) seen_wrong[tid * 64] = 1;
        barrier.wait(sense);  // all have read before anyone adds the next step's
      }
    };
    team.run(work);
    int64_t total = 0;
    for (int t = 0; t < nt; ++t) total += partial[t * 16];
    if (total != kSteps * call.expected) ok = false;
    for (int t = 0; t < nt; ++t)
      if (seen_wrong[t * 64]) ok = false;
  };
  fastrnn::thread_pool_call(want, body);
  return ok;
}

}  // namespace

int main() {
  std::vector<Call> calls(kCallers);
  for (int c = 0; c < kCallers; ++c) {
    calls[c].data.resize(kSize);
    for (int i = 0; i < kSize; ++i) {
      calls[c].data[i] = (i * 7 + c * 13) % 101;
      calls[c].expected += calls[c].data[i];
    }
  }
  std::atomic<int> failures{0};
  std::atomic<bool> stop{false};
  std::thread flipper([&] {
    for (int n = 0; !stop.load(); ++n) {
      fastrnn::threads_set(1 + n % 3);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  for (int n : {1, 2, kCallers}) {
    std::vector<std::thread> callers;
    for (int c = 0; c < n; ++c) {
      callers.emplace_back([&, c] {
        for (int k = 0; k < kCallsPerCaller; ++k) {
          const int want = 1 + (c + k) % 3;
          if (!(k % 2 ? run_retractable(calls[c], want) : run_call(calls[c], want)))
            failures.fetch_add(1);
        }
      });
    }
    for (auto& t : callers) t.join();
  }
  stop.store(true);
  flipper.join();
  fastrnn::threads_set(2);
  // Runners give their tokens back after their idle spin.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const fastrnn::ThreadPoolState s = fastrnn::thread_pool_state();
  if (failures.load() != 0) {
    std::printf("%d calls summed wrong\n", failures.load());
    return 1;
  }
  if (s.free != s.cores || s.team_free != s.budget || s.callers != 0 || s.queued != 0 ||
      s.runners != 0) {
    std::printf("tokens not back: free %d/%d, team %d/%d, callers %d, queued %d, runners %d\n",
                s.free, s.cores, s.team_free, s.budget, s.callers, s.queued, s.runners);
    return 1;
  }
  if (g_team_calls.load() == 0 || s.queued_calls == 0 || s.retracted == 0) {
    std::printf("not exercised: %lld calls with a team, %lld queued, %lld shares taken back\n",
                static_cast<long long>(g_team_calls.load()), static_cast<long long>(s.queued_calls),
                static_cast<long long>(s.retracted));
    return 1;
  }
  std::printf("ok: %lld calls, %lld with a team, %lld queued, %lld shares taken back, %d workers\n",
              static_cast<long long>(g_calls.load()), static_cast<long long>(g_team_calls.load()),
              static_cast<long long>(s.queued_calls), static_cast<long long>(s.retracted),
              s.workers);
  return 0;
}
