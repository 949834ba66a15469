#include "cpu/cpu-features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
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
#if defined(__linux__) && defined(__x86_64__)
  // AMX-TILE (EDX bit 24), AMX-INT8 (bit 25) and AMX-BF16 (bit 22), the OS's tile state in
  // XCR0 (bits 17, 18), and the per-process grant of XTILEDATA (feature 18) through
  // ARCH_REQ_XCOMP_PERM.
  if (f.avx512_vnni && bit(d, 24) && (bit(d, 25) || bit(d, 22)) && (xcr0 & 0x60000) == 0x60000 &&
      syscall(SYS_arch_prctl, 0x1023, 18) == 0) {
    f.amx_int8 = bit(d, 25);
    f.amx_bf16 = f.avx512_bf16 && bit(d, 22);
  }
#endif
  // Vendor "AuthenticAMD" and base family 0xF + extended family 0xA = 0x19 (Zen 3 and 4;
  // only Zen 4 has AVX-512), 0xB = 0x1A (Zen 5).
  if (f.avx512 && __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541u && d == 0x69746e65u &&
      c == 0x444d4163u && __get_cpuid(1, &a1, &b1, &c1, &d1)) {
    const unsigned family = ((a1 >> 8) & 0xF) + (((a1 >> 8) & 0xF) == 0xF ? (a1 >> 20) & 0xFF : 0);
    f.avx512_half_width = family == 0x19;
    f.bf16_dot_fast = f.avx512_bf16 && family >= 0x19;
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
