#include "core/step-trace.h"

#ifdef FASTRNN_STEP_TRACE

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace fastrnn::step_trace {
namespace {

// The time stamp counter where there is one (a few ns to read), else the steady clock.
uint64_t ticks() {
#if defined(__x86_64__)
  return __builtin_ia32_rdtsc();
#else
  return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

constexpr int kMaxStamps = 1 << 14;  // barriers per call traced (more are dropped)
constexpr int kThreads = 2;          // the threads traced: the first two of a team

struct alignas(64) Stamps {
  uint64_t start = 0;
  int n = 0;
  uint64_t at[kMaxStamps][2];  // arrival, leaving
};
Stamps g_stamps[kThreads];
int g_nt = 0;
uint64_t g_begin = 0;  // the caller, before the team starts

struct Samples {
  std::vector<double> work[kThreads], wait, wake, last, imbalance, start[kThreads], first, tail,
      call;
  int64_t calls = 0;
};

struct Log {
  std::mutex mu;
  std::map<std::string, Samples> shapes;
  uint64_t tsc0 = ticks();
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();

  ~Log() {
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    const double per_tick = ns / static_cast<double>(ticks() - tsc0);
    const auto pct = [&](std::vector<double>& v, double q) {
      if (v.empty()) return 0.0;
      std::sort(v.begin(), v.end());
      return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))] * per_tick;
    };
    for (auto& [shape, s] : shapes) {
      std::fprintf(stderr, "step-trace %s: %lld calls, %zu barriers (ns: p10 p50 p90)\n",
                   shape.c_str(), static_cast<long long>(s.calls), s.wait.size());
      const auto row = [&](const char* name, std::vector<double>& v) {
        std::fprintf(stderr, "  %-10s %8.0f %8.0f %8.0f\n", name, pct(v, 0.1), pct(v, 0.5),
                     pct(v, 0.9));
      };
      row("call", s.call);
      row("start tid0", s.start[0]);
      row("start tid1", s.start[1]);
      row("first", s.first);
      row("tail", s.tail);
      row("work tid0", s.work[0]);
      row("work tid1", s.work[1]);
      row("imbalance", s.imbalance);
      row("wait", s.wait);
      row("wake", s.wake);
      row("last", s.last);
    }
  }
};
Log g_log;

}  // namespace

void call_begin(int nt) {
  g_nt = std::min(nt, kThreads);
  for (auto& s : g_stamps) s.n = 0;
  g_begin = ticks();
}

void thread_start(int tid) {
  if (tid < kThreads) g_stamps[tid].start = ticks();
}

void arrive(int tid) {
  if (tid >= kThreads) return;
  Stamps& s = g_stamps[tid];
  if (s.n < kMaxStamps) s.at[s.n][0] = ticks();
}

void leave(int tid) {
  if (tid >= kThreads) return;
  Stamps& s = g_stamps[tid];
  if (s.n < kMaxStamps) s.at[s.n++][1] = ticks();
}

void call_end(int64_t B, int64_t T, int H, int dtype) {
  if (g_nt < 2) return;
  const uint64_t end = ticks();
  char shape[96];
  std::snprintf(shape, sizeof shape, "B=%lld T=%lld H=%d dtype=%d", static_cast<long long>(B),
                static_cast<long long>(T), H, dtype);
  const Stamps &a = g_stamps[0], &b = g_stamps[1];
  const int n = std::min(a.n, b.n);
  std::lock_guard<std::mutex> lock(g_log.mu);
  Samples& s = g_log.shapes[shape];
  ++s.calls;
  const auto since = [](uint64_t a, uint64_t b) {
    return static_cast<double>(static_cast<int64_t>(b) - static_cast<int64_t>(a));
  };
  s.call.push_back(since(g_begin, end));
  for (int t = 0; t < 2; ++t) s.start[t].push_back(since(g_begin, g_stamps[t].start));
  if (n > 0) {
    // The first barrier: the threads' start, the call's first input projection and step.
    s.first.push_back(since(g_begin, std::max(a.at[0][1], b.at[0][1])));
    // After the last barrier: the last step (whose barrier the join replaces) and the join.
    s.tail.push_back(since(std::max(a.at[n - 1][1], b.at[n - 1][1]), end));
  }
  const Stamps* st[2] = {&a, &b};
  for (int i = 1; i < n; ++i) {  // the steps' barriers (the first: s.first)
    for (int t = 0; t < 2; ++t)
      s.work[t].push_back(static_cast<double>(st[t]->at[i][0] - st[t]->at[i - 1][1]));
    const int first = a.at[i][0] <= b.at[i][0] ? 0 : 1, last = 1 - first;
    const uint64_t last_in = st[last]->at[i][0];
    s.imbalance.push_back(static_cast<double>(last_in - st[first]->at[i][0]));
    s.wait.push_back(static_cast<double>(st[first]->at[i][1] - st[first]->at[i][0]));
    s.wake.push_back(static_cast<double>(static_cast<int64_t>(st[first]->at[i][1]) -
                                         static_cast<int64_t>(last_in)));
    s.last.push_back(static_cast<double>(st[last]->at[i][1] - last_in));
  }
}

}  // namespace fastrnn::step_trace

#endif  // FASTRNN_STEP_TRACE
