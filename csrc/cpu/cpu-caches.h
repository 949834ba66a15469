// CPU cache sizes: facts only (sysfs, CPUID, sysconf), no policy. ops/blocking.h derives
// the sizes the driver blocks its work by from them.
#pragma once

#include <cstddef>
#include <string>

namespace fastrnn {

// One instance of each cache level, as CPU 0 sees it (the cores of a hybrid CPU may differ:
// CPU 0 speaks for all), and how many logical CPUs share that instance (0: not known).
struct CpuCaches {
  size_t l1d = 0, l2 = 0, l3 = 0;  // bytes per instance
  int l1d_shared_by = 0, l2_shared_by = 0, l3_shared_by = 0;
  // The L3 instance serves one small core complex, as on AMD Zen (and Hygon): a CCX of at
  // most 8 cores, each reading it at 32 bytes per cycle, half its L2 rate. Elsewhere (Intel,
  // ARM servers) one L3 spans a ring or mesh of all cores and feeds one core at a fraction
  // of its L2 rate (on the Intel guest below, one core reading W_hh in batch-1 LSTM steps,
  // the input projection's time taken off: about 100 GB/s from 2 MiB of weights, 45 GB/s
  // from 4 MiB, 30 GB/s from 16 MiB). From the vendor and family: AMD or Hygon, Zen on.
  bool l3_near = false;
  // Where the sizes came from: "sysfs", "cpuid", "sysconf" or "default" (levels nothing
  // reported); levels from different sources join in level order, e.g. "sysfs+default".
  std::string source;
};

// When nothing reports a level: the Zen 4 that the blocking constants were first tuned on
// (ops/blocking.h reproduces them exactly from these), so a CPU that tells nothing keeps
// the blocking fastrnn always had. Also the common shape of x86-64 and ARM64 server cores
// since 2017 (L1d 32-64 KiB, L2 0.5-2 MiB per core, L3 of 16 MiB and more).
constexpr size_t kDefaultL1d = size_t{32} << 10;
constexpr size_t kDefaultL2 = size_t{1} << 20;
constexpr size_t kDefaultL3 = size_t{32} << 20;

// A reported size outside [kMinCacheBytes, kMaxCacheBytes] is taken as not reported (and an
// override outside it is refused): no data cache since the 1980s is below 1 KiB, none
// planned comes near 1 TiB, and the derived sizes stay far inside size_t at either end.
constexpr size_t kMinCacheBytes = size_t{1} << 10;
constexpr size_t kMaxCacheBytes = size_t{1} << 40;

// Reads the caches of this machine, level by level from the first source that knows:
//   1. sysfs, /sys/devices/system/cpu/cpu0/cache/index*/{level,type,size,shared_cpu_list}:
//      what the kernel reports. On x86 it builds these from CPUID leaf 4 / 0x8000001D too,
//      but counts the sharing CPUs among those it actually has, where the leaf's sharing
//      field is a power-of-two bound on addressable IDs that a hypervisor may copy from
//      the host; on ARM64 (ACPI PPTT or the device tree) it is the only source.
//   2. CPUID leaf 4 (Intel and others), or 0x8000001D on AMD and Hygon with the topology
//      extension (CPUID 0x80000001 ECX bit 22): for a container without /sys.
//   3. sysconf(_SC_LEVEL1_DCACHE_SIZE, ...) where the C library has it (glibc on x86
//      computes it from CPUID; elsewhere it is often 0, which counts as unknown).
//   4. the defaults above.
// Compared on a KVM guest (Intel Xeon, family 6 model 167, AMX, 2 vCPUs): sysfs and leaf 4
// agree (L1d 48 KiB, L2 2 MiB each for one CPU, L3 480 MiB for both) — and that L3 is the
// host's whole L3, whose other sharers no guest can see.
// Reads the files on every call: ops/blocking.cc calls it once.
CpuCaches cpu_caches_detect();

}  // namespace fastrnn
