// limits_probe: this machine's peak fp32 FMA rate and read bandwidth, for bench/limits.py.
//
//   limits_probe fma THREADS [ISA]    -> GFLOP/s of THREADS threads, each running FMAs only;
//                                        ISA: avx512 (zmm), avx2 (ymm FMA) or scalar, default
//                                        the widest the CPU has
//   limits_probe read THREADS BYTES   -> GB/s of THREADS threads, each summing its own
//                                        BYTES-long buffer over and over (so BYTES picks the
//                                        cache level: a buffer that fits L1 reads from L1)
//
// Prints one number (exit status 2 for an ISA this CPU lacks). The reads use the widest
// vectors the CPU has (AVX-512, else AVX2, else scalar), chosen at run time. The inner loops are
// unrolled by pragma so the accumulators live in registers (GCC at -O2 otherwise keeps the arrays
// in memory). Each figure is the best of 5 timed runs, each run long enough (>= 50 ms) that timer
// and thread start-up costs vanish. Build: g++ -O2 -std=c++17 -pthread.

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

namespace {

// --- peak FMA rate -------------------------------------------------------------------------
// 16 independent accumulators: an FMA has a latency of 4 cycles and 2 issue per cycle on
// recent cores, so at least 8 chains are needed to keep both pipes busy; 16 leaves margin.

__attribute__((target("avx512f"))) float fma_loop_avx512(long iters) {
  __m512 acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_set1_ps(1.0f + j * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.9999999f), b = _mm512_set1_ps(1e-7f);
  for (long i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  __m512 s = acc[0];
  for (int j = 1; j < 16; ++j) s = _mm512_add_ps(s, acc[j]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(long iters) {
  __m256 acc[12];  // 16 registers: 12 accumulators, 2 constants
  for (int j = 0; j < 12; ++j) acc[j] = _mm256_set1_ps(1.0f + j * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.9999999f), b = _mm256_set1_ps(1e-7f);
  for (long i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  float out[8], s = 0;
  for (int j = 1; j < 12; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  _mm256_storeu_ps(out, acc[0]);
  for (float v : out) s += v;
  return s;
}

volatile float g_scale = 0.9999999f, g_offset = 1e-7f;  // volatile: GCC folded the loop away

float fma_loop_scalar(long iters) {
  float acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = 1.0f + j * 1e-3f;
  const float a = g_scale, b = g_offset;
  for (long i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 8; ++j) acc[j] = acc[j] * a + b;
  float s = 0;
  for (float v : acc) s += v;
  return s;
}

// FLOPs of one iteration of the chosen loop (2 per FMA lane).
struct FmaKernel {
  float (*loop)(long);
  double flops_per_iter;
};

// The kernel of `isa` ("" = the widest this CPU has); loop is null when the CPU lacks it.
FmaKernel fma_kernel(const char* isa) {
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool widest = *isa == '\0';
  if (std::strcmp(isa, "avx512") == 0 || (widest && avx512))
    return {avx512 ? fma_loop_avx512 : nullptr, 16.0 * 16 * 2};
  if (std::strcmp(isa, "avx2") == 0 || (widest && avx2))
    return {avx2 ? fma_loop_avx2 : nullptr, 12.0 * 8 * 2};
  if (std::strcmp(isa, "scalar") == 0 || widest) return {fma_loop_scalar, 8.0 * 2};
  return {nullptr, 0};
}

// --- read bandwidth ------------------------------------------------------------------------
// Sums the buffer with 8 independent accumulators (one 64-byte line per load with AVX-512):
// the adds never wait on each other, so loads are the only limit.

__attribute__((target("avx512f"))) float read_loop_avx512(const float* p, size_t n, long reps) {
  __m512 s[8];
  for (auto& v : s) v = _mm512_setzero_ps();
  for (long r = 0; r < reps; ++r)
    for (size_t i = 0; i + 128 <= n; i += 128)
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) s[j] = _mm512_add_ps(s[j], _mm512_load_ps(p + i + 16 * j));
  for (int j = 1; j < 8; ++j) s[0] = _mm512_add_ps(s[0], s[j]);
  return _mm512_reduce_add_ps(s[0]);
}

__attribute__((target("avx2"))) float read_loop_avx2(const float* p, size_t n, long reps) {
  __m256 s[8];
  for (auto& v : s) v = _mm256_setzero_ps();
  for (long r = 0; r < reps; ++r)
    for (size_t i = 0; i + 64 <= n; i += 64)
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) s[j] = _mm256_add_ps(s[j], _mm256_load_ps(p + i + 8 * j));
  for (int j = 1; j < 8; ++j) s[0] = _mm256_add_ps(s[0], s[j]);
  float out[8], t = 0;
  _mm256_storeu_ps(out, s[0]);
  for (float v : out) t += v;
  return t;
}

float read_loop_scalar(const float* p, size_t n, long reps) {
  float s[8] = {};
  for (long r = 0; r < reps; ++r)
    for (size_t i = 0; i + 8 <= n; i += 8)
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) s[j] += p[i + j];
  float t = 0;
  for (float v : s) t += v;
  return t;
}

using ReadLoop = float (*)(const float*, size_t, long);

ReadLoop read_loop() {
  if (__builtin_cpu_supports("avx512f")) return read_loop_avx512;
  if (__builtin_cpu_supports("avx2")) return read_loop_avx2;
  return read_loop_scalar;
}

// --- timing --------------------------------------------------------------------------------

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

volatile float g_sink;  // keeps the loops' results alive

// Runs work(tid, amount) on `threads` threads released together; returns the wall time of
// the slowest. amount doubles until one run takes >= 50 ms; then the best of 5 runs is kept.
double time_threads(int threads, const std::function<float(int, long)>& work, long& amount) {
  auto run_once = [&](long a) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> pool;
    std::vector<double> end(threads);
    double start = 0;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        ready.fetch_add(1);
        while (!go.load()) {
        }
        g_sink = work(t, a);
        end[t] = now();
      });
    }
    while (ready.load() != threads) {
    }
    start = now();
    go.store(true);
    for (auto& th : pool) th.join();
    return *std::max_element(end.begin(), end.end()) - start;
  };
  amount = 1;
  while (run_once(amount) < 0.05) {
    amount *= 2;
    if (amount > (1L << 40)) {  // a loop the compiler removed: never reaches 50 ms
      std::fprintf(stderr, "limits_probe: the timed loop takes no time\n");
      std::exit(3);
    }
  }
  double best = 1e30;
  for (int i = 0; i < 5; ++i) best = std::min(best, run_once(amount));
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: limits_probe fma THREADS [ISA] | read THREADS BYTES\n");
    return 2;
  }
  const int threads = std::max(1, std::atoi(argv[2]));
  long amount = 0;
  if (std::strcmp(argv[1], "fma") == 0) {
    const FmaKernel k = fma_kernel(argc > 3 ? argv[3] : "");
    if (k.loop == nullptr) {
      std::fprintf(stderr, "limits_probe: this CPU cannot run %s\n", argc > 3 ? argv[3] : "?");
      return 2;
    }
    const double s = time_threads(threads, [&](int, long iters) { return k.loop(iters); }, amount);
    std::printf("%.2f\n", threads * amount * k.flops_per_iter / s / 1e9);
    return 0;
  }
  if (std::strcmp(argv[1], "read") == 0 && argc == 4) {
    const size_t n =
        std::max<size_t>(128, std::strtoull(argv[3], nullptr, 10) / sizeof(float)) / 128 * 128;
    std::vector<float*> bufs(threads);
    for (auto& b : bufs) {
      b = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
      for (size_t i = 0; i < n; ++i) b[i] = 1e-3f * (i % 7);  // touched: no page faults later
    }
    const ReadLoop loop = read_loop();
    const double s =
        time_threads(threads, [&](int t, long reps) { return loop(bufs[t], n, reps); }, amount);
    std::printf("%.2f\n", threads * amount * double(n * sizeof(float)) / s / 1e9);
    for (auto b : bufs) std::free(b);
    return 0;
  }
  std::fprintf(stderr, "usage: limits_probe fma THREADS [ISA] | read THREADS BYTES\n");
  return 2;
}
