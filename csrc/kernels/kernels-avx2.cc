// The avx2 kernel table: the shared kernel bodies compiled for one instruction set.
// Everything here has internal linkage except the table itself, so no function compiled
// with this file's ISA flags can be picked by the linker for another ISA's caller.
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/kernel-table.h"

namespace fastrnn {
// A named namespace per ISA, so that a profile tells the ISAs' kernels apart.
namespace avx2 {
namespace {
// clang-format off
#include "kernels/vec/vec-avx2.h"
#include "kernels/reduced/rvec-avx2.h"
#include "kernels/avx2-bodies.inc"
// clang-format on
FASTRNN_KERNEL_TILES;
}  // namespace
}  // namespace avx2

// The same kernels for int8 models whose weights all lie in [−63, 63] (rvec-avx2.h,
// FASTRNN_I8_NARROW): KernelTable::int8_narrow of the avx2 table.
#define FASTRNN_I8_NARROW
namespace avx2_w7 {
namespace {
// clang-format off
#include "kernels/vec/vec-avx2.h"
#include "kernels/reduced/rvec-avx2.h"
#include "kernels/avx2-bodies.inc"
// clang-format on
FASTRNN_KERNEL_TILES;
}  // namespace
}  // namespace avx2_w7

#undef FASTRNN_I8_NARROW

extern const KernelTable kKernelsAvx2W7 = FASTRNN_KERNEL_TABLE(avx2_w7);
extern const KernelTable kKernelsAvx2 = FASTRNN_KERNEL_TABLE_WITH(avx2, &kKernelsAvx2W7);

}  // namespace fastrnn
