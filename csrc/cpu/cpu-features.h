// CPU feature detection: facts only (CPUID and XGETBV on x86, getauxval on AArch64), no policy.
#pragma once

namespace fastrnn {

struct CpuFeatures {
  bool avx2 = false;    // AVX2 + FMA + OS support for ymm state
  bool avx512 = false;  // AVX-512 F/BW/DQ/VL + OS support for zmm and opmask state
  bool avx512_bf16 = false;
  bool avx512_vnni = false;
  // AVX-512 that runs each 512-bit operation as two halves on 256-bit units (AMD Zen 4,
  // family 0x19); false where the units are 512 bits wide (Intel, Zen 5 servers).
  bool avx512_half_width = false;
  // VDPBF16PS multiply-adds bf16 pairs at about twice the float32 FMA rate (AMD with
  // AVX512_BF16, families 0x19 and 0x1A: Zen 4, Zen 5; measured on Zen 5: 32 products per
  // instruction at 0.93x the FMAs' instruction rate). Intel's (Cooper Lake, Sapphire Rapids)
  // runs on one port: no faster than the FMAs.
  bool bf16_dot_fast = false;
  // AMX tiles with int8 dot products (Sapphire Rapids on), and Linux granted this process
  // the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM): without the grant, a tile
  // instruction faults.
  bool amx_int8 = false;
  bool amx_bf16 = false;  // AMX tiles with bf16 dot products, and the same grant
  bool neon = false;      // AArch64 Advanced SIMD with its OS support (HWCAP_ASIMD)
};

CpuFeatures cpu_features_detect();

}  // namespace fastrnn
