#include "cpu/cpu-caches.h"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

#include <cstring>
#endif

namespace fastrnn {
namespace {

// One level as a source reports it; size 0: the source does not know it.
struct Level {
  size_t size = 0;
  int shared_by = 0;
};

// Levels 1 (data), 2 and 3 of one source.
struct Levels {
  Level level[3];
};

bool plausible(size_t bytes) { return bytes >= kMinCacheBytes && bytes <= kMaxCacheBytes; }

// --- sysfs ---------------------------------------------------------------------------------

bool read_line(const std::string& path, std::string& out) {
  std::ifstream f(path);
  return static_cast<bool>(std::getline(f, out));
}

// "48K", "2048K", "32M": the kernel prints KiB with a K; M and G are accepted too.
size_t parse_size(const std::string& text) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(text.c_str(), &end, 10);
  if (end == text.c_str()) return 0;
  switch (std::toupper(static_cast<unsigned char>(*end))) {
    case 'K':
      return static_cast<size_t>(n) << 10;
    case 'M':
      return static_cast<size_t>(n) << 20;
    case 'G':
      return static_cast<size_t>(n) << 30;
    default:
      return static_cast<size_t>(n);
  }
}

// CPUs in a list such as "0-3,8-11" or "5"; 0 for anything else.
int count_cpus(const std::string& list) {
  int n = 0;
  const char* p = list.c_str();
  while (*p) {
    char* end = nullptr;
    const long a = std::strtol(p, &end, 10);
    if (end == p) return 0;
    long b = a;
    p = end;
    if (*p == '-') {
      b = std::strtol(p + 1, &end, 10);
      if (end == p + 1 || b < a) return 0;
      p = end;
    }
    n += static_cast<int>(b - a + 1);
    if (*p == ',')
      ++p;
    else if (*p && !std::isspace(static_cast<unsigned char>(*p)))
      return 0;
    else
      break;
  }
  return n;
}

Levels from_sysfs() {
  Levels out;
  // index0..index15: x86 shows 4 (L1d, L1i, L2, L3), ARM64 3 or 4; 16 leaves room.
  for (int i = 0; i < 16; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::string level, type, size, shared;
    if (!read_line(dir + "level", level) || !read_line(dir + "type", type) ||
        !read_line(dir + "size", size))
      continue;
    const int lv = std::atoi(level.c_str());
    if (lv < 1 || lv > 3 || type == "Instruction") continue;
    Level& l = out.level[lv - 1];
    l.size = parse_size(size);
    l.shared_by = read_line(dir + "shared_cpu_list", shared) ? count_cpus(shared) : 0;
  }
  return out;
}

// --- CPUID -----------------------------------------------------------------------------------

#if defined(__x86_64__) || defined(__i386__)
// Leaf 4 and leaf 0x8000001D share one layout: sub-leaf i describes cache i until type 0.
// EAX[4:0] type (1 data, 2 instruction, 3 unified), EAX[7:5] level, EAX[25:14] logical
// CPUs sharing it − 1 (leaf 4: a bound on addressable IDs, rounded up to a power of two);
// EBX: ways − 1 [31:22], partitions − 1 [21:12], line bytes − 1 [11:0]; ECX: sets − 1.
Levels from_cpuid_leaf(unsigned leaf) {
  Levels out;
  for (unsigned i = 0; i < 16; ++i) {
    unsigned a, b, c, d;
    __cpuid_count(leaf, i, a, b, c, d);
    const unsigned type = a & 31u, lv = (a >> 5) & 7u;
    if (type == 0) break;
    if (type == 2 || lv < 1 || lv > 3) continue;
    const size_t ways = ((b >> 22) & 0x3FFu) + 1, parts = ((b >> 12) & 0x3FFu) + 1,
                 line = (b & 0xFFFu) + 1, sets = size_t{c} + 1;
    out.level[lv - 1] = {ways * parts * line * sets, static_cast<int>(((a >> 14) & 0xFFFu) + 1)};
  }
  return out;
}

// AMD or Hygon: their cache leaf is 0x8000001D, and from Zen on their L3 is per CCX.
bool amd_like() {
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  return !std::strcmp(vendor, "AuthenticAMD") || !std::strcmp(vendor, "HygonGenuine");
}

// Zen 1 and 2 are family 0x17, Hygon Dhyana 0x18, Zen 3 and 4 0x19, Zen 5 0x1A: every
// family from 0x17 on (CPUID 1 EAX: base family [11:8] plus extended family [27:20]).
bool l3_near() {
  unsigned a, b, c, d;
  if (!amd_like() || !__get_cpuid(1, &a, &b, &c, &d)) return false;
  const unsigned base = (a >> 8) & 0xFu;
  const unsigned family = base == 0xF ? base + ((a >> 20) & 0xFFu) : base;
  return family >= 0x17;
}

Levels from_cpuid() {
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return {};
  const unsigned max_leaf = a;
  if (amd_like()) {
    // AMD leaves leaf 4 reserved; 0x8000001D needs the topology extension.
    if (__get_cpuid_max(0x80000000, nullptr) < 0x8000001D) return {};
    if (!__get_cpuid(0x80000001, &a, &b, &c, &d) || !((c >> 22) & 1u)) return {};
    return from_cpuid_leaf(0x8000001D);
  }
  return max_leaf >= 4 ? from_cpuid_leaf(4) : Levels{};
}
#else
Levels from_cpuid() { return {}; }
bool l3_near() { return false; }
#endif

// --- sysconf ---------------------------------------------------------------------------------

Levels from_sysconf() {
  Levels out;
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && \
    defined(_SC_LEVEL3_CACHE_SIZE)
  const int names[3] = {_SC_LEVEL1_DCACHE_SIZE, _SC_LEVEL2_CACHE_SIZE, _SC_LEVEL3_CACHE_SIZE};
  for (int i = 0; i < 3; ++i) {
    const long n = sysconf(names[i]);
    if (n > 0) out.level[i].size = static_cast<size_t>(n);
  }
#endif
  return out;
}

}  // namespace

CpuCaches cpu_caches_detect() {
  struct Source {
    const char* name;
    Levels levels;
  };
  Source sources[3] = {{"sysfs", from_sysfs()}, {"cpuid", {}}, {"sysconf", {}}};
  const Level* l = sources[0].levels.level;
  if (!plausible(l[0].size) || !plausible(l[1].size) || !plausible(l[2].size)) {
    sources[1].levels = from_cpuid();
    sources[2].levels = from_sysconf();
  }
  const size_t defaults[3] = {kDefaultL1d, kDefaultL2, kDefaultL3};
  Level got[3];
  std::string names[3];
  for (int lv = 0; lv < 3; ++lv) {
    got[lv] = {defaults[lv], 0};
    names[lv] = "default";
    for (const Source& s : sources) {
      if (plausible(s.levels.level[lv].size)) {
        got[lv] = s.levels.level[lv];
        names[lv] = s.name;
        break;
      }
    }
  }
  CpuCaches c;
  c.l1d = got[0].size;
  c.l2 = got[1].size;
  c.l3 = got[2].size;
  c.l1d_shared_by = got[0].shared_by;
  c.l2_shared_by = got[1].shared_by;
  c.l3_shared_by = got[2].shared_by;
  c.l3_near = l3_near();
  c.source = names[0];
  if (names[1] != names[0]) c.source += "+" + names[1];
  if (names[2] != names[0] && names[2] != names[1]) c.source += "+" + names[2];
  return c;
}

}  // namespace fastrnn
