// The neon kernel table: the shared kernel bodies compiled for AArch64 Advanced SIMD.
// Everything here has internal linkage except the table itself. NEON is the AArch64
// baseline, so this file needs no ISA flag and the table no runtime check.
#include <arm_neon.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/kernel-table.h"

namespace fastrnn {
// A named namespace per ISA, so that a profile tells the ISAs' kernels apart.
namespace neon {
namespace {
// clang-format off
#include "kernels/vec/vec-neon.h"
#include "kernels/reduced/rvec-neon.h"
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
}  // namespace neon

extern const KernelTable kKernelsNeon = FASTRNN_KERNEL_TABLE(neon);

}  // namespace fastrnn
