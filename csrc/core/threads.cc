#include "core/threads.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "core/thread-pool.h"

namespace fastrnn {
namespace {

// CPUs in this process's affinity mask (sched_getaffinity, sized for any CPU count).
int affinity_cpus() {
#if defined(__linux__)
  for (int n = 1024; n <= (1 << 20); n *= 2) {
    cpu_set_t* set = CPU_ALLOC(n);
    if (set == nullptr) break;
    const size_t size = CPU_ALLOC_SIZE(n);
    CPU_ZERO_S(size, set);
    const int rc = sched_getaffinity(0, size, set);
    const int count = rc == 0 ? CPU_COUNT_S(size, set) : 0;
    CPU_FREE(set);
    if (rc == 0) return std::max(1, count);
    if (errno != EINVAL) break;  // EINVAL: the mask is larger than n CPUs
  }
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

// mountinfo writes a space, tab, newline and backslash in paths as \ooo (octal).
std::string mountinfo_unescape(const std::string& s) {
  const auto octal = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && octal(s[i + 1]) && octal(s[i + 2]) && octal(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) parts.push_back(part);
  if (!s.empty() && s.back() == sep) parts.emplace_back();
  return parts;
}

bool has_item(const std::string& list, const std::string& item) {
  for (const std::string& x : split(list, ','))
    if (x == item) return true;
  return false;
}

struct Mount {
  std::string root, point;  // the hierarchy's directory mounted, and where
};

// The quota at one cgroup directory, in CPUs; 0 when it has none (or no readable files).
double quota_at(const std::string& dir, bool v2) {
  std::ifstream f(v2 ? dir + "/cpu.max" : dir + "/cpu.cfs_quota_us");
  if (!f) return 0;
  std::string quota;
  f >> quota;
  double period = 0;
  if (v2) {
    f >> period;  // "max 100000" or "150000 100000"
  } else {
    std::ifstream p(dir + "/cpu.cfs_period_us");
    p >> period;
  }
  if (!f || quota == "max" || quota.empty() || quota[0] == '-' || !(period > 0)) return 0;
  char* end = nullptr;
  const double q = std::strtod(quota.c_str(), &end);
  return (*end == '\0' && q > 0) ? q / period : 0;
}

// The smallest quota from the process's cgroup directory up to the mount point.
double quota_on_path(const Mount& m, const std::string& cgroup_path, bool v2) {
  std::string rel;
  const bool under_root =
      cgroup_path.compare(0, m.root.size(), m.root) == 0 &&
      (cgroup_path.size() == m.root.size() || cgroup_path[m.root.size()] == '/');
  if (m.root == "/") {
    rel = cgroup_path;
  } else if (under_root) {  // "/a" holds "/a/b", not "/ab"
    rel = cgroup_path.substr(m.root.size());
  }  // else: another namespace's path; only the mount point's own files apply
  while (!rel.empty() && rel.back() == '/') rel.pop_back();
  if (!rel.empty() && rel[0] != '/') rel.clear();  // not a path: the mount point alone
  double best = 0;
  for (;;) {
    const double q = quota_at(m.point + rel, v2);
    if (q > 0 && (best == 0 || q < best)) best = q;
    const size_t slash = rel.rfind('/');
    if (rel.empty() || slash == std::string::npos) break;
    rel.resize(slash);
  }
  return best;
}

}  // namespace

double cgroup_cpu_quota(const std::string& proc_self) {
  // The process's cgroup per hierarchy: "0::/path" (v2), "4:cpu,cpuacct:/path" (v1).
  std::string v2_path, v1_path;
  bool have_v2 = false, have_v1 = false;
  {
    std::ifstream f(proc_self + "/cgroup");
    std::string line;
    while (std::getline(f, line)) {
      const size_t a = line.find(':'), b = line.find(':', a == std::string::npos ? a : a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      const std::string id = line.substr(0, a), controllers = line.substr(a + 1, b - a - 1);
      const std::string path = line.substr(b + 1);
      if (id == "0" && controllers.empty()) {
        v2_path = path;
        have_v2 = true;
      } else if (has_item(controllers, "cpu")) {
        v1_path = path;
        have_v1 = true;
      }
    }
  }
  if (!have_v1 && !have_v2) return 0;
  // Where each hierarchy is mounted: "id parent maj:min root point options [tags] - type src
  // super".
  double best = 0;
  std::ifstream f(proc_self + "/mountinfo");
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::vector<std::string> fields;
    std::string field;
    while (in >> field) fields.push_back(field);
    const auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || dash == fields.end() || dash + 1 == fields.end()) continue;
    const std::string& type = *(dash + 1);
    const std::string super = dash + 3 < fields.end() ? *(dash + 3) : "";
    const Mount m{mountinfo_unescape(fields[3]), mountinfo_unescape(fields[4])};
    double q = 0;
    if (type == "cgroup2" && have_v2) {
      q = quota_on_path(m, v2_path, true);
    } else if (type == "cgroup" && have_v1 && has_item(super, "cpu")) {
      q = quota_on_path(m, v1_path, false);
    }
    if (q > 0 && (best == 0 || q < best)) best = q;
  }
  return best;
}

namespace {

// A thread count from the environment: a whole number in [1, threads_max()] (OMP_NUM_THREADS:
// its first comma-separated entry); 0 when unset; -1 when set to anything else (then
// `ignored` says so).
int env_threads(const char* name, bool first_entry, std::string& ignored) {
  const char* raw = std::getenv(name);
  if (raw == nullptr) return 0;
  std::string text(raw);
  if (first_entry) text = text.substr(0, text.find(','));
  const size_t b = text.find_first_not_of(" \t"), e = text.find_last_not_of(" \t");
  text = b == std::string::npos ? "" : text.substr(b, e - b + 1);
  if (text.empty() && std::string(raw).find_first_not_of(" \t") == std::string::npos) return 0;
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(text.c_str(), &end, 10);
  if (!text.empty() && *end == '\0' && errno == 0 && n >= 1 && n <= threads_max())
    return static_cast<int>(n);
  if (!ignored.empty()) ignored += "; ";
  ignored += std::string(name) + "='" + raw + "' is not a thread count in [1, " +
             std::to_string(threads_max()) + "]";
  return -1;
}

ThreadsPolicy policy_from_environment() {
  ThreadsPolicy p;
  p.affinity_cpus = affinity_cpus();
  const char* proc_self = std::getenv("FASTRNN_PROC_SELF");  // tests: fake cgroup files
  p.cgroup_cpus = cgroup_cpu_quota(proc_self != nullptr ? proc_self : "/proc/self");
  p.cpus = p.affinity_cpus;
  p.source = "affinity";
  if (p.cgroup_cpus > 0) {
    const int quota = std::max(1, static_cast<int>(std::ceil(p.cgroup_cpus - 1e-9)));
    if (quota < p.cpus) {
      p.cpus = quota;
      p.source = "cgroup";
    }
  }
  p.budget = p.cpus;
  const int own = env_threads("FASTRNN_NUM_THREADS", false, p.ignored);
  const int omp = env_threads("OMP_NUM_THREADS", true, p.ignored);
  if (own > 0) {
    p.budget = own;
    p.source = "FASTRNN_NUM_THREADS";
  } else if (omp > 0) {
    p.budget = omp;
    p.source = "OMP_NUM_THREADS";
  }
  return p;
}

std::mutex g_policy_mu;
ThreadsPolicy* g_policy = nullptr;  // guarded by g_policy_mu; read from the environment once
std::atomic<int> g_budget{0};       // 0: not resolved yet
std::atomic<int> g_cpus{0};

ThreadsPolicy& policy_locked() {
  if (g_policy == nullptr) {
    ThreadsPolicy p;
    try {
      p = policy_from_environment();
    } catch (...) {  // unreadable /proc or cgroup files: the affinity mask alone
      p = ThreadsPolicy{};
      p.affinity_cpus = p.cpus = p.budget = affinity_cpus();
      p.source = "affinity";
    }
    g_policy = new ThreadsPolicy(p);
    g_cpus.store(g_policy->cpus, std::memory_order_release);
    g_budget.store(g_policy->budget, std::memory_order_release);
  }
  return *g_policy;
}

}  // namespace

ThreadsPolicy threads_policy() {
  std::lock_guard<std::mutex> lock(g_policy_mu);
  return policy_locked();
}

void threads_policy_lock() { g_policy_mu.lock(); }
void threads_policy_unlock() { g_policy_mu.unlock(); }

int threads_get() {
  const int n = g_budget.load(std::memory_order_acquire);
  if (n > 0) return n;
  std::lock_guard<std::mutex> lock(g_policy_mu);
  return policy_locked().budget;
}

void threads_set(int n) {
  n = std::clamp(n, 1, threads_max());
  {
    std::lock_guard<std::mutex> lock(g_policy_mu);
    ThreadsPolicy& p = policy_locked();
    p.budget = n;
    p.source = "set_num_threads";
    g_budget.store(n, std::memory_order_release);
  }
  thread_pool_budget(n);
}

int threads_hardware() {
  const int n = g_cpus.load(std::memory_order_acquire);
  if (n > 0) return n;
  std::lock_guard<std::mutex> lock(g_policy_mu);
  return policy_locked().cpus;
}

int threads_max() {
  static const int n = std::max(1024, affinity_cpus());
  return n;
}

void SpinBarrier::long_wait(bool waiting_for, bool count) {
  const auto start = std::chrono::steady_clock::now();
  for (int spins = kSpinsBeforeTiming; sense_.load(std::memory_order_acquire) != waiting_for;) {
    if (spins < kSpinsBeforeYield) {
      ++spins;
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  if (count) long_wait_ns_.fetch_add(ns, std::memory_order_relaxed);
}

namespace {
std::atomic<int> g_backoff_left{0};     // calls still to run on one thread
std::atomic<int> g_backoff_len{0};      // the current backoff length (0: no contention seen)
std::atomic<int> g_contended{0};        // contended warm multi-thread calls in a row
std::atomic<int64_t> g_last_end_ns{0};  // when the last multi-thread call ended (0: never)
constexpr int kBackoffMin = 16, kBackoffMax = 4096;
}  // namespace

bool threads_backoff_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("FASTRNN_BACKOFF");
    return v == nullptr || std::string(v) != "0";
  }();
  return enabled;
}

bool threads_backing_off() {
  if (!threads_backoff_enabled()) return false;
  int left = g_backoff_left.load(std::memory_order_relaxed);
  while (left > 0) {
    if (g_backoff_left.compare_exchange_weak(left, left - 1, std::memory_order_relaxed))
      return true;
  }
  return false;
}

void threads_report(bool contended, int64_t start_ns, int64_t end_ns) {
  if (!threads_backoff_enabled()) return;
  const int64_t last_end = g_last_end_ns.exchange(end_ns, std::memory_order_relaxed);
  const bool cold = last_end == 0 || start_ns - last_end > kColdGapNs;
  if (contended && cold) return;  // waking workers, not contention (see threads.h)
  // Two contended calls in a row: one alone is often a one-off (a descheduled worker's
  // time slice), and backing off for it would cost 16 calls at half speed.
  if (contended && g_contended.fetch_add(1, std::memory_order_relaxed) + 1 >= 2) {
    const int len =
        std::clamp(2 * g_backoff_len.load(std::memory_order_relaxed), kBackoffMin, kBackoffMax);
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
