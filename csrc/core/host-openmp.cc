#include "core/host-openmp.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <mutex>
#include <vector>

#if defined(__linux__)
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#endif

namespace fastrnn {
namespace {

// The entry points used, all in libgomp's ABI (GOMP_parallel is what `#pragma omp parallel`
// compiles to since GCC 4.9; LLVM's libomp and Intel's libiomp5 export it for GCC-built code).
struct Runtime {
  void (*parallel)(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);
  int (*thread_num)();
  int (*num_threads)();
  int (*in_parallel)();
  int (*get_dynamic)();
  int (*thread_limit)();
  int (*max_threads)();
  int (*max_active_levels)();
  std::string path;
};

std::mutex g_mu;                        // guards attaching
std::atomic<const Runtime*> g_runtime;  // never freed once published (calls may be using it)
std::atomic<bool> g_forked{false};      // this process is a fork of one that attached
std::atomic<bool> g_test_mismatch{false};

#if defined(__linux__)
// libgomp's threads do not survive fork(), and its parallel regions hang in a child forked
// after one ran in the parent (torch's own ops there too): a child uses fastrnn's pool,
// which starts afresh after a fork (core/thread-pool.cc). Registered when the library loads.
// The child never attaches again (g_forked is read before g_mu, which a fork during an
// attach leaves locked in the child).
void forget_in_child() {
  if (g_runtime.load() != nullptr) g_forked.store(true);
  g_runtime.store(nullptr);
}
[[maybe_unused]] const int g_fork_handler = pthread_atfork(nullptr, nullptr, forget_in_child);
#endif

#if defined(__linux__)
bool is_openmp_runtime(const char* path) {
  const char* base = std::strrchr(path, '/');
  base = base != nullptr ? base + 1 : path;
  // libgomp.so.1, auditwheel's libgomp-<hash>.so.1, libomp.so, libiomp5.so; not libgomp's
  // offloading plugins (libgomp-plugin-*) nor libomptarget.
  if (std::strncmp(base, "libgomp-plugin", 14) == 0) return false;
  return std::strncmp(base, "libgomp.", 8) == 0 || std::strncmp(base, "libgomp-", 8) == 0 ||
         std::strncmp(base, "libomp.", 7) == 0 || std::strncmp(base, "libiomp5", 8) == 0;
}

int visit(dl_phdr_info* info, size_t, void* data) {
  auto& found = *static_cast<std::vector<std::string>*>(data);
  if (info->dlpi_name != nullptr && is_openmp_runtime(info->dlpi_name))
    found.emplace_back(info->dlpi_name);
  return 0;
}

const Runtime* open_runtime(const std::string& path) {
  // RTLD_NOLOAD: only a library already loaded (this takes a reference, kept for good).
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return nullptr;
  Runtime r;
  r.parallel = reinterpret_cast<decltype(r.parallel)>(dlsym(h, "GOMP_parallel"));
  r.thread_num = reinterpret_cast<decltype(r.thread_num)>(dlsym(h, "omp_get_thread_num"));
  r.num_threads = reinterpret_cast<decltype(r.num_threads)>(dlsym(h, "omp_get_num_threads"));
  r.in_parallel = reinterpret_cast<decltype(r.in_parallel)>(dlsym(h, "omp_in_parallel"));
  r.get_dynamic = reinterpret_cast<decltype(r.get_dynamic)>(dlsym(h, "omp_get_dynamic"));
  r.thread_limit = reinterpret_cast<decltype(r.thread_limit)>(dlsym(h, "omp_get_thread_limit"));
  r.max_threads = reinterpret_cast<decltype(r.max_threads)>(dlsym(h, "omp_get_max_threads"));
  r.max_active_levels =
      reinterpret_cast<decltype(r.max_active_levels)>(dlsym(h, "omp_get_max_active_levels"));
  if (!r.parallel || !r.thread_num || !r.num_threads || !r.in_parallel || !r.get_dynamic ||
      !r.thread_limit || !r.max_threads || !r.max_active_levels) {
    dlclose(h);
    return nullptr;
  }
  r.path = path;
  return new Runtime(r);
}
#endif

struct Region {
  const Runtime* rt;
  int n;
  bool wrong_size;  // read once for the region (the test switch may change meanwhile)
  void (*fn)(void*, int);
  void* ctx;
  std::atomic<bool> too_few{false};
};

void region_body(void* data) {
  Region& r = *static_cast<Region*>(data);
  // Every thread of the region sees the same team size, so either the first n run fn or
  // none does (none waits at a barrier for a thread that does not come).
  if (r.rt->num_threads() < r.n || r.wrong_size) {
    r.too_few.store(true, std::memory_order_relaxed);
    return;
  }
  const int tid = r.rt->thread_num();
  if (tid < r.n) r.fn(r.ctx, tid);
}

}  // namespace

std::string host_openmp_attach(const std::string& hint) {
#if defined(__linux__)
  if (g_forked.load()) return "";
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<std::string> found;
  dl_iterate_phdr(visit, &found);
  // Those whose path contains the hint first, then the others, each in load order.
  std::stable_partition(found.begin(), found.end(), [&](const std::string& path) {
    return !hint.empty() && path.find(hint) != std::string::npos;
  });
  const Runtime* cur = g_runtime.load();
  for (const std::string& path : found) {
    if (cur != nullptr && cur->path == path) return path;
    if (const Runtime* rt = open_runtime(path)) {
      g_runtime.store(rt);
      return path;
    }
  }
  return host_openmp_path();
#else
  (void)hint;
  return "";
#endif
}

std::string host_openmp_path() {
  const Runtime* rt = g_runtime.load();
  return rt != nullptr ? rt->path : std::string();
}

int host_openmp_max_team() {
  const Runtime* rt = g_runtime.load(std::memory_order_acquire);
  if (rt == nullptr || rt->in_parallel() || rt->get_dynamic() || rt->max_active_levels() < 1)
    return 0;
  const int limit = rt->thread_limit();
  return limit > 0 ? limit : INT_MAX;
}

bool host_openmp_run(int n, void (*fn)(void*, int), void* ctx) {
  const Runtime* rt = g_runtime.load(std::memory_order_acquire);
  if (rt == nullptr) return false;
  Region r{rt, n, g_test_mismatch.load(), fn, ctx};
  const int team = std::max(n, rt->max_threads());
  rt->parallel(region_body, &r, static_cast<unsigned>(team), 0);
  return !r.too_few.load(std::memory_order_relaxed);
}

void host_openmp_test_mismatch(bool on) { g_test_mismatch.store(on); }

}  // namespace fastrnn
