// The avx512 kernel table: the shared kernel bodies compiled for one instruction set.
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
namespace avx512 {
namespace {
// clang-format off
#include "kernels/vec/vec-avx512.h"
#include "kernels/reduced/rvec-avx512.h"
#include "kernels/vec/vec-pair.h"
#include "kernels/activations/activations.h"
#include "kernels/panel/panel-dot.h"
#include "kernels/reduced/reduced-dot.h"
#include "kernels/gemm/gemm.h"
#include "kernels/panel/step-driver.h"
#include "kernels/lstm-step/lstm-step.h"
#include "kernels/gru-step/gru-step.h"
#include "kernels/rnn-step/rnn-step.h"
#include "kernels/variant-step/variant-step.h"
// clang-format on
FASTRNN_KERNEL_TILES;
}  // namespace
}  // namespace avx512

extern const KernelTable kKernelsAvx512 = FASTRNN_KERNEL_TABLE(avx512);

}  // namespace fastrnn
