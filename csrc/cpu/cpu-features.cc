#include "cpu/cpu-features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace fastrnn {

#if defined(__x86_64__) || defined(__i386__)
namespace {
unsigned long long xgetbv0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
bool bit(unsigned reg, int b) { return (reg >> b) & 1u; }
}  // namespace

CpuFeatures cpu_features_detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = bit(c, 12), osxsave = bit(c, 27), avx = bit(c, 28);
  if (!osxsave || !avx) return f;
  const unsigned long long xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;    // SSE + AVX state
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = ymm_state && fma && bit(b, 5);
  const bool avx512 = bit(b, 16) && bit(b, 17) && bit(b, 30) && bit(b, 31);  // F DQ BW VL
  f.avx512 = f.avx2 && zmm_state && avx512;
  f.avx512_vnni = f.avx512 && bit(c, 11);
  unsigned a1, b1, c1, d1;
  if (f.avx512 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512_bf16 = bit(a1, 5);
  // Vendor "AuthenticAMD" and base family 0xF + extended family 0xA = 0x19 (Zen 3 and 4;
  // only Zen 4 has AVX-512).
  if (f.avx512 && __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541u && d == 0x69746e65u &&
      c == 0x444d4163u && __get_cpuid(1, &a1, &b1, &c1, &d1)) {
    const unsigned family = ((a1 >> 8) & 0xF) + (((a1 >> 8) & 0xF) == 0xF ? (a1 >> 20) & 0xFF : 0);
    f.avx512_half_width = family == 0x19;
  }
  return f;
}
#elif defined(__aarch64__)
CpuFeatures cpu_features_detect() {
  CpuFeatures f;
#if defined(__linux__)
  f.neon = (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#else
  f.neon = true;  // Advanced SIMD is part of the AArch64 baseline
#endif
  return f;
}
#else
CpuFeatures cpu_features_detect() { return {}; }
#endif

}  // namespace fastrnn
