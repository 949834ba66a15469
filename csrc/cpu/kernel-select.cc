#include "cpu/kernel-select.h"

#include <atomic>
#include <stdexcept>

#include "cpu/cpu-features.h"

namespace fastrnn {
namespace {

struct Entry {
  const char* name;
  const KernelTable* table;
  bool (*supported)(const CpuFeatures&);
};

const Entry kEntries[] = {
    {"scalar", &kKernelsScalar, [](const CpuFeatures&) { return true; }},
#if defined(FASTRNN_X86)
    {"avx2", &kKernelsAvx2, [](const CpuFeatures& f) { return f.avx2; }},
    {"avx512", &kKernelsAvx512, [](const CpuFeatures& f) { return f.avx512; }},
    {"avx512vnni", &kKernelsAvx512Vnni,
     [](const CpuFeatures& f) { return f.avx512 && f.avx512_vnni; }},
    {"avx512bf16", &kKernelsAvx512Bf16,
     [](const CpuFeatures& f) { return f.avx512 && f.avx512_vnni && f.avx512_bf16; }},
#endif
#if defined(FASTRNN_NEON)
    {"neon", &kKernelsNeon, [](const CpuFeatures& f) { return f.neon; }},
#endif
};

const KernelTable* best() {
  const KernelTable* t = &kKernelsScalar;
  for (const Entry& e : kEntries)
    if (e.supported(cpu_features())) t = e.table;
  return t;
}

std::atomic<const KernelTable*> g_table{nullptr};
std::atomic<bool> g_amx_allowed{true};
std::atomic<bool> g_bf16_dot_allowed{true};
std::atomic<bool> g_int8_narrow_allowed{true};
std::atomic<bool> g_int8_split_allowed{true};
std::atomic<bool> g_f32_strips_allowed{true};

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = cpu_features_detect();
  return f;
}

const KernelTable& kernels() {
  const KernelTable* t = g_table.load(std::memory_order_acquire);
  if (!t) {
    t = best();
    g_table.store(t, std::memory_order_release);
  }
  return *t;
}

int& amx_tile_rows() {
  thread_local int rows = 0;
  return rows;
}

bool amx_enabled(WeightType type) {
  const CpuFeatures& f = cpu_features();
  const bool has = type == WeightType::kInt8 ? f.amx_int8 : type == WeightType::kBf16 && f.amx_bf16;
  return has && g_amx_allowed.load(std::memory_order_relaxed);
}

void amx_allow(bool on) { g_amx_allowed.store(on, std::memory_order_relaxed); }

bool bf16_dot_rows() {
  return amx_enabled(WeightType::kBf16) ||
         (cpu_features().bf16_dot_fast && g_bf16_dot_allowed.load(std::memory_order_relaxed));
}

void bf16_dot_allow(bool on) { g_bf16_dot_allowed.store(on, std::memory_order_relaxed); }

bool int8_narrow_enabled() {
  return kernels().int8_narrow != nullptr && g_int8_narrow_allowed.load(std::memory_order_relaxed);
}
void int8_narrow_allow(bool on) { g_int8_narrow_allowed.store(on, std::memory_order_relaxed); }

bool int8_split_enabled() {
  return kernels().int8_split && g_int8_split_allowed.load(std::memory_order_relaxed);
}
void int8_split_allow(bool on) { g_int8_split_allowed.store(on, std::memory_order_relaxed); }

bool f32_strips_enabled() {
  return kernels().f32_strips && g_f32_strips_allowed.load(std::memory_order_relaxed);
}
void f32_strips_allow(bool on) { g_f32_strips_allowed.store(on, std::memory_order_relaxed); }

const KernelTable& kernels_for(bool int8_narrow) {
  const KernelTable& k = kernels();
  return int8_narrow && int8_narrow_enabled() ? *k.int8_narrow : k;
}

std::vector<std::string> kernels_available() {
  std::vector<std::string> out;
  for (const Entry& e : kEntries)
    if (e.supported(cpu_features())) out.push_back(e.name);
  return out;
}

std::string kernels_select(const std::string& name) {
  if (name.empty() || name == "auto") {
    g_table.store(best(), std::memory_order_release);
    return {};
  }
  bool known = (name == "scalar" || name == "avx2" || name == "avx512" || name == "avx512vnni" ||
                name == "avx512bf16" || name == "neon");
  if (!known)
    throw std::invalid_argument(
        "FASTRNN_ISA must be one of scalar, avx2, avx512, avx512vnni, avx512bf16, neon, auto; "
        "got '" +
        name + "'");
  for (const Entry& e : kEntries) {
    if (name == e.name && e.supported(cpu_features())) {
      g_table.store(e.table, std::memory_order_release);
      return {};
    }
  }
  const KernelTable* fallback = best();
  g_table.store(fallback, std::memory_order_release);
  return "FASTRNN_ISA=" + name + " is not supported by this CPU; using " + fallback->isa;
}

}  // namespace fastrnn
