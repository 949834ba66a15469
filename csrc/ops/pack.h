// Weight packing: torch's (G·H, K) matrices into the panel layout every kernel reads.
//
//   torch W: rows g·H + j (gate g, unit j), K columns.
//   packed:  (panels, K, NV, 16) — for each panel, K rows of NV·16 floats:
//
//     LSTM / GRU panel p, row k:   | i[16p..16p+15] | f[…] | g[…] | o[…] |   (GRU: r z n)
//     RNN / projection panel p:    | u[64p..+15] | u[64p+16..] | u[64p+32..] | u[64p+48..] |
//
//   Units ≥ H are zero padding. One panel holds everything the epilogue of its units needs,
//   and a thread that owns a panel range owns a contiguous slice of the packed W.
//
//   The classic GRU (linear_before_reset = false) needs r before W_hn's product, so its
//   W_hh is two packs: W_hr, W_hz as 16-unit panels of 2 gates | r[16p..] | z[16p..] |,
//   and W_hn as 64-unit panels like an RNN's. Its panels cover H rounded up to 64 units
//   (4 16-unit panels per 64-unit one), so both phases see the same units.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/aligned-buffer.h"
#include "core/types.h"
#include "kernels/kernel-table.h"

namespace fastrnn {

struct RnnConfig {
  CellKind cell = CellKind::kLstm;
  int input_size = 0;
  int hidden_size = 0;
  int proj_size = 0;  // LSTM only; 0: none
  int num_layers = 1;
  int num_directions = 1;
  bool bias = true;
  // Cell variants (ONNX / Keras; python/fastrnn/_config.py). variant: any of them, or
  // activations other than the cell's own: the *_variant step kernels run.
  bool variant = false;
  bool reverse = false;             // a unidirectional stack runs backwards in time
  bool linear_before_reset = true;  // GRU: false = classic (r before W_hn's product)
  bool peepholes = false;           // LSTM
  bool input_forget = false;        // LSTM: f = 1 − i
  float clip = 0.0f;                // > 0: gate pre-activations clamped to [−clip, clip]
  // The weight matrices' format (W_ih, W_hh, W_hr): fp32, bf16 or int8 (biases, peepholes
  // and all state stay fp32; kernels/reduced/reduced-dot.h).
  WeightType dtype = WeightType::kF32;
  Act act[2][3];  // per direction, the cell's activation slots
  int h_out() const { return proj_size > 0 ? proj_size : hidden_size; }
  bool classic_gru() const { return cell == CellKind::kGru && !linear_before_reset; }
  int layer_input(int layer) const { return layer == 0 ? input_size : num_directions * h_out(); }
};

// One layer and direction in torch's layout: contiguous float32, shapes as torch's.
struct RawWeights {
  const float* w_ih = nullptr;  // (G·H, I_k)
  const float* w_hh = nullptr;  // (G·H, H_out)
  const float* b_ih = nullptr;  // (G·H) or null
  const float* b_hh = nullptr;  // (G·H) or null
  const float* w_hr = nullptr;  // (P, H) or null
  const float* peep = nullptr;  // LSTM peepholes (3·H): i, f, o; or null
  // Reduced models (RnnConfig::dtype; the float matrices above are then unused): the same
  // matrices as bf16 bits (uint16) or int8 values, and for int8 one scale per row.
  const void* r_ih = nullptr;
  const void* r_hh = nullptr;
  const void* r_hr = nullptr;
  const float* s_ih = nullptr;
  const float* s_hh = nullptr;
  const float* s_hr = nullptr;
};

// The format data of a packed reduced matrix: per packed column, the int8 scale and Σ_k q.
struct PackedFormat {
  AlignedBuffer scale;  // floats
  AlignedBuffer sum;    // int32 bit patterns
  bool narrow = true;   // int8: every weight in [−63, 63] (vacuous for other formats)
  bool split = false;   // int8, float32 W_ih: 16-column sub-panels (WeightFormat::split)
  WeightFormat of(WeightType type, bool amx = false, bool bf16_rows = false) const {
    WeightFormat f;
    f.type = type;
    f.split = split && type != WeightType::kBf16;
    f.amx = amx && type != WeightType::kF32;
    f.bf16_rows = bf16_rows && type == WeightType::kBf16;
    if (type == WeightType::kInt8) {
      f.scale = scale.data();
      f.sum = reinterpret_cast<const int32_t*>(sum.data());
    }
    return f;
  }
};

struct PackedWeights {
  AlignedBuffer w_ih;  // (panels, I_k, NV, 16)
  AlignedBuffer w_hh;  // (panels, H_out, NV, 16); classic GRU: W_hr, W_hz (panels, H, 2, 16)
  AlignedBuffer bias;  // (panels·NV·16): b_ih + b_hh, except GRU's n gate: b_in only
  AlignedBuffer b_hn;  // GRU: (panels·16); the classic GRU sums b_hn into bias instead
  AlignedBuffer w_hr;  // LSTM projection: (proj_panels, H, 4, 16)
  AlignedBuffer w_hn;  // classic GRU: (cand_panels, H, 4, 16)
  AlignedBuffer peep;  // LSTM peepholes: (3, panels·16), i, f, o
  // Reduced models: the matrices above hold (panels, weight_rows(K), NV, 16) dwords; split
  // int8 ones (PackedFormat::split) (panels, NV, weight_rows(K), 16). A float32 W_ih or
  // W_hh in strips (f_ih.split, f_hh.split): (panels, NV, K, 16).
  PackedFormat f_ih, f_hh, f_hr, f_hn;
};

struct RnnModel {
  RnnConfig cfg;
  PanelGeometry geo;
  int panels = 0;                      // ceil(H / geo.units)
  int proj_panels = 0;                 // ceil(P / 64), 0 without projection
  int cand_panels = 0;                 // classic GRU: ceil(H / 64) panels of W_hn
  std::vector<PackedWeights> weights;  // index layer·D + direction
  uint64_t id = 0;  // unique to each model_pack result (the per-thread step plan's key)
  // int8 with every weight matrix in [−63, 63] (7-bit weights, python/fastrnn/_quantize.py):
  // the kernel table's int8_narrow sibling runs it (kernels_for, kernels/kernel-table.h).
  bool int8_narrow = false;
  // A float32 W_hh packed in strips (f_hh.split) for a table whose steps read whole panel
  // rows (packed while the AVX2 table was in use, run by another: set_isa): its copy in
  // panel rows, made on first use (whole_rows_hh). Shared by copies of the model.
  struct WholeRows {
    std::once_flag once;
    std::vector<AlignedBuffer> w_hh;  // index layer·D + direction
  };
  std::shared_ptr<WholeRows> whole_rows = std::make_shared<WholeRows>();
};

// The packed matrices of one layer·direction: W_ih, W_hh, W_hr (LSTM projection), W_hn (classic
// GRU), each with its reduction length K and panel count; buf null where the model has none.
struct PackedMatrix {
  const AlignedBuffer* buf = nullptr;
  const PackedFormat* fmt = nullptr;
  int K = 0, panels = 0;
};
constexpr int kMatrices = 4;
enum MatrixIndex : int { kWih = 0, kWhh = 1, kWhr = 2, kWhn = 3 };
void packed_matrices(const RnnModel& m, int ld, PackedMatrix (&out)[kMatrices]);

// Layer·direction ld's float32 W_hh in whole panel rows, (panels, K, NV, 16), where the
// model packed it in strips (f_hh.split): built once per model on first use, by whichever
// thread asks first (RnnModel::whole_rows).
const float* whole_rows_hh(const RnnModel& m, int ld);

// Floats of the fp32 copy of a bf16 matrix (widen_bf16_panels), 0 for none; of every
// matrix of the model, or -1 past int64.
int64_t widened_floats(const PackedMatrix& w);
int64_t widened_floats(const RnnModel& m);

// Panels [p0, p1) of a packed bf16 matrix (K rows, `panels` panels) widened to fp32 panels
// (panels, K, cols), or with strips in 16-column strips (panels, cols / 16, K, 16): the
// layouts and the values an fp32 model of the rounded weights packs.
void widen_bf16_panels(const PackedMatrix& w, int p0, int p1, float* out, bool strips);

// Packs all layers and directions; raw has num_layers·num_directions entries.
RnnModel model_pack(const RnnConfig& cfg, const std::vector<RawWeights>& raw);

// The floats model_pack allocates for cfg (with biases and GRU's b_hn), every product
// overflow-checked; -1 past int64. Lets callers bound a model before packing it.
int64_t model_packed_floats(const RnnConfig& cfg);

}  // namespace fastrnn
