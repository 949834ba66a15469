#include "core/host-openmp.h"

#include <atomic>
#include <cstring>
#include <mutex>

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
  std::string path;
};

std::mutex g_mu;                        // guards attaching
std::atomic<const Runtime*> g_runtime;  // never freed once published (calls may be using it)
std::atomic<bool> g_test_mismatch{false};

#if defined(__linux__)
// libgomp's threads do not survive fork(), and its parallel regions hang in a child forked
// after one ran in the parent (torch's own ops there too): a child uses fastrnn's pool,
// which starts afresh after a fork (core/thread-pool.cc). Registered when the library loads.
void forget_in_child() { g_runtime.store(nullptr); }
[[maybe_unused]] const int g_fork_handler = pthread_atfork(nullptr, nullptr, forget_in_child);
#endif

#if defined(__linux__)
bool is_openmp_runtime(const char* path) {
  const char* base = std::strrchr(path, '/');
  base = base != nullptr ? base + 1 : path;
  // libgomp.so.1, auditwheel's libgomp-<hash>.so.1, libomp.so, libiomp5.so
  return std::strncmp(base, "libgomp", 7) == 0 || std::strncmp(base, "libomp", 6) == 0 ||
         std::strncmp(base, "libiomp", 7) == 0;
}

struct Search {
  std::string hint;
  std::string best;
  bool best_hinted = false;
};

int visit(dl_phdr_info* info, size_t, void* data) {
  Search& s = *static_cast<Search*>(data);
  if (info->dlpi_name == nullptr || !is_openmp_runtime(info->dlpi_name)) return 0;
  const bool hinted = !s.hint.empty() && std::strstr(info->dlpi_name, s.hint.c_str()) != nullptr;
  if (s.best.empty() || (hinted && !s.best_hinted)) {
    s.best = info->dlpi_name;
    s.best_hinted = hinted;
  }
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
  if (!r.parallel || !r.thread_num || !r.num_threads || !r.in_parallel || !r.get_dynamic ||
      !r.thread_limit) {
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
  void (*fn)(void*, int);
  void* ctx;
  std::atomic<bool> wrong_size{false};
};

void region_body(void* data) {
  Region& r = *static_cast<Region*>(data);
  // Every thread of the region sees the same team size, so either all run fn or none does
  // (none waits at a barrier for a thread that does not come).
  if (r.rt->num_threads() != r.n || g_test_mismatch.load(std::memory_order_relaxed)) {
    r.wrong_size.store(true, std::memory_order_relaxed);
    return;
  }
  r.fn(r.ctx, r.rt->thread_num());
}

}  // namespace

std::string host_openmp_attach(const std::string& hint) {
#if defined(__linux__)
  std::lock_guard<std::mutex> lock(g_mu);
  Search s;
  s.hint = hint;
  dl_iterate_phdr(visit, &s);
  if (s.best.empty()) return host_openmp_path();
  const Runtime* cur = g_runtime.load();
  if (cur != nullptr && cur->path == s.best) return cur->path;
  if (const Runtime* rt = open_runtime(s.best)) {
    g_runtime.store(rt);
    return rt->path;
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

bool host_openmp_ready(int n) {
  const Runtime* rt = g_runtime.load(std::memory_order_acquire);
  if (rt == nullptr || n < 2) return false;
  if (rt->in_parallel() || rt->get_dynamic()) return false;
  const int limit = rt->thread_limit();
  return limit <= 0 || limit >= n;
}

bool host_openmp_run(int n, void (*fn)(void*, int), void* ctx) {
  const Runtime* rt = g_runtime.load(std::memory_order_acquire);
  if (rt == nullptr) return false;
  Region r{rt, n, fn, ctx};
  rt->parallel(region_body, &r, static_cast<unsigned>(n), 0);
  return !r.wrong_size.load(std::memory_order_relaxed);
}

void host_openmp_test_mismatch(bool on) { g_test_mismatch.store(on); }

}  // namespace fastrnn
