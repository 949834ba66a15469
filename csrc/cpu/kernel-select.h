// The kernel table in use: chosen once at import from the CPU's features and FASTRNN_ISA.
#pragma once

#include <string>
#include <vector>

#include "cpu/cpu-features.h"
#include "kernels/kernel-table.h"

namespace fastrnn {

const KernelTable& kernels();                  // the table in use
const CpuFeatures& cpu_features();             // this CPU's, detected once
std::vector<std::string> kernels_available();  // ISAs this CPU can run, best last
// Selects a table by name ("scalar", "avx2", "avx512", or "auto" for the best). A name the
// CPU cannot run falls back to the best it can and returns a warning text (else empty).
// An unknown name throws std::invalid_argument.
std::string kernels_select(const std::string& name);
// Whether the kernels of weights of this type may use AMX tiles: the CPU has them for the
// type (cpu_features().amx_int8, amx_bf16) and they are not switched off (amx_allow(false),
// for tests). int8: the same integer sums as VNNI, so the choice never
// changes a result; bf16 (the avx512bf16 table): activations rounded to bf16 like VDPBF16PS,
// the sums in the tiles' order (docs/precision.md).
bool amx_enabled(WeightType type);
void amx_allow(bool on);
// Whether bf16 weights take bf16 dot products for every row on the avx512bf16 table (the GEMM
// over time steps and many-row steps too, x rounded to bf16 like h): on AMX-BF16 tiles
// (amx_enabled), or by VDPBF16PS where it outruns the FMAs (cpu_features().bf16_dot_fast) and
// is not switched off (bf16_dot_allow(false), for tests). Else only few-row steps take them.
bool bf16_dot_rows();
void bf16_dot_allow(bool on);
// The table that runs a model: the one in use, or its int8_narrow sibling for an int8 model
// whose weights all lie in [−63, 63] (RnnModel::int8_narrow), unless switched off
// (int8_narrow_allow(false), for tests and A/B: the same sums, so the same bits either way).
const KernelTable& kernels_for(bool int8_narrow);
bool int8_narrow_enabled();
void int8_narrow_allow(bool on);
// Whether int8 models packed from now on take split panels (WeightFormat::split): where the
// table in use packs them so (KernelTable::int8_split), unless switched off
// (int8_split_allow(false), for tests and A/B: every table reads both, to the same sums).
bool int8_split_enabled();
void int8_split_allow(bool on);
// Whether float32 models packed from now on take W_ih and W_hh in 16-column strips
// (WeightFormat::split): where the table in use packs them so (KernelTable::f32_strips),
// unless switched off (f32_strips_allow(false), for tests and A/B: the same bits).
bool f32_strips_enabled();
void f32_strips_allow(bool on);

}  // namespace fastrnn
