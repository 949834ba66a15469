// Shared vocabulary of the core: cell kinds, gate counts and the packed panel geometry.
//
// Dimension legend (used everywhere): B batch, T time, I input, H hidden, P projection,
// G gate rows (4H LSTM, 3H GRU, H RNN), L layers, D directions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastrnn {

enum class CellKind : int { kLstm = 0, kGru = 1, kRnnTanh = 2, kRnnRelu = 3 };

// Gate blocks in PyTorch's row order: LSTM i,f,g,o; GRU r,z,n; RNN one block.
constexpr int cell_gates(CellKind cell) {
  return cell == CellKind::kLstm ? 4 : cell == CellKind::kGru ? 3 : 1;
}

// Every kernel works on logical vectors of 16 floats (one zmm, two ymm, or 16 scalars), so
// the packed layout is the same for every instruction set and a model packed once can run
// on any kernel table.
constexpr int kLanes = 16;

// A panel is the unit of work of every microkernel: NV vectors of 16 columns, K rows deep.
// LSTM and GRU panels hold the G gates of the same 16 hidden units (NV = G, one vector per
// gate), so the gate math runs in the matmul's epilogue. RNN and projection panels hold 64
// consecutive output units (NV = 4): four independent accumulator chains per row instead of
// one keeps the FMA pipes busy at batch 1.
struct PanelGeometry {
  int gates;    // gate blocks in the torch weight (4, 3 or 1)
  int vectors;  // NV: 16-float vectors per panel row
  int units;    // hidden units covered by one panel (16 or 64)
  int cols() const { return vectors * kLanes; }
};

constexpr PanelGeometry panel_geometry(CellKind cell) {
  return cell == CellKind::kLstm  ? PanelGeometry{4, 4, 16}
         : cell == CellKind::kGru ? PanelGeometry{3, 3, 16}
                                  : PanelGeometry{1, 4, 64};
}

// Projection (LSTM proj_size > 0): P outputs, 64 per panel, no gates.
constexpr PanelGeometry kProjectionGeometry{1, 4, 64};

inline int div_up(int a, int b) { return (a + b - 1) / b; }

}  // namespace fastrnn
