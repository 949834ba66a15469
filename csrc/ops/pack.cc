#include "ops/pack.h"

#include <atomic>
#include <cstring>
#include <stdexcept>

#include "cpu/kernel-select.h"

namespace fastrnn {
namespace {

// out[p][k][v][lane] = w[row][k] for the unit the slot maps to, zero beyond H.
// w: (geo.gates·H, K) row-major, or a bias vector when K = 1.
void panels_pack(const float* w, int H, int K, const PanelGeometry& geo, int panels, float* out) {
  const int per_gate = geo.vectors / geo.gates;  // vectors of one gate within a panel
  for (int p = 0; p < panels; ++p) {
    for (int k = 0; k < K; ++k) {
      float* dst = out + (static_cast<size_t>(p) * K + k) * geo.cols();
      for (int v = 0; v < geo.vectors; ++v) {
        const int gate = v / per_gate;
        for (int lane = 0; lane < kLanes; ++lane) {
          const int unit = p * geo.units + (v % per_gate) * kLanes + lane;
          dst[v * kLanes + lane] =
              unit < H ? w[static_cast<size_t>(gate * H + unit) * K + k] : 0.0f;
        }
      }
    }
  }
}

// A reduced matrix (int8 values or bf16 bits, row-major (geo.gates·H, K)) into
// (panels, weight_rows(K), vectors, 16) dwords: G = 2 or 4 consecutive k per dword, lowest
// k in the lowest bits, zero beyond H and K.
template <class T>
void panels_pack_reduced(const T* w, int H, int K, WeightType type, const PanelGeometry& geo,
                         int panels, uint32_t* out) {
  const int G = weight_group(type), Kd = weight_rows(type, K), bits = 32 / G;
  const uint32_t mask = G == 2 ? 0xFFFFu : 0xFFu;
  const int per_gate = geo.vectors / geo.gates;
  for (int p = 0; p < panels; ++p)
    for (int kk = 0; kk < Kd; ++kk) {
      uint32_t* dst = out + (static_cast<size_t>(p) * Kd + kk) * geo.cols();
      for (int v = 0; v < geo.vectors; ++v)
        for (int lane = 0; lane < kLanes; ++lane) {
          const int unit = p * geo.units + (v % per_gate) * kLanes + lane;
          uint32_t d = 0;
          for (int j = 0; j < G && unit < H && kk * G + j < K; ++j) {
            const T x = w[static_cast<size_t>((v / per_gate) * H + unit) * K + kk * G + j];
            d |= (static_cast<uint32_t>(x) & mask) << (bits * j);
          }
          dst[v * kLanes + lane] = d;
        }
    }
}

// Where row k of a panel's packed vector v starts when the panel of `rows` rows is split
// into its vectors of 16 columns, (vectors, rows, 16) (WeightFormat::split).
size_t split_offset(size_t v, int k, int rows) { return (v * rows + k) * kLanes; }

// One packed panel of `rows` rows of geo.vectors × 16 four-byte elements (floats or dwords)
// copied between whole panel rows, (rows, vectors, 16), and split vectors, (vectors, rows,
// 16): to_split from whole rows at `from` to split vectors at `to`, else back.
void panel_relayout(const uint32_t* from, uint32_t* to, int rows, const PanelGeometry& geo,
                    bool to_split) {
  for (int v = 0; v < geo.vectors; ++v)
    for (int k = 0; k < rows; ++k) {
      const size_t split = split_offset(v, k, rows);
      const size_t whole = (static_cast<size_t>(k) * geo.vectors + v) * kLanes;
      std::memcpy(to + (to_split ? split : whole), from + (to_split ? whole : split),
                  kLanes * sizeof(uint32_t));
    }
}

// `panels` packed panels of `rows` rows split in place: each panel's vectors of 16 columns
// apart, (vectors, rows, 16).
void panels_split(uint32_t* data, int rows, const PanelGeometry& geo, int panels) {
  const size_t panel = static_cast<size_t>(rows) * geo.cols();
  std::vector<uint32_t> whole(panel);
  for (size_t p = 0; p < static_cast<size_t>(panels); ++p) {
    std::memcpy(whole.data(), data + p * panel, panel * sizeof(uint32_t));
    panel_relayout(whole.data(), data + p * panel, rows, geo, true);
  }
}

// panels_split undone: `panels` split panels of `rows` rows from `split` into whole panel
// rows at `out`.
void panels_join(const uint32_t* split, int rows, const PanelGeometry& geo, int panels,
                 uint32_t* out) {
  const size_t panel = static_cast<size_t>(rows) * geo.cols();
  for (size_t p = 0; p < static_cast<size_t>(panels); ++p)
    panel_relayout(split + p * panel, out + p * panel, rows, geo, false);
}

// One weight matrix (rows (gates·H), K columns) in the model's format: fp32 panels, or
// reduced ones with (int8) the scales and Σ_k q of every packed column. strips: a float32
// matrix of the gate geometry (W_ih, W_hh), split where the table in use asks for strips.
void matrix_pack(const RnnConfig& cfg, const float* f, const void* r, const float* scales, int H,
                 int K, const PanelGeometry& geo, int panels, AlignedBuffer& out, PackedFormat& fmt,
                 bool strips = false) {
  const size_t cols = static_cast<size_t>(panels) * geo.cols();
  if (cfg.dtype == WeightType::kF32) {
    out.resize(cols * K);
    panels_pack(f, H, K, geo, panels, out.data());
    if (strips && f32_strips_enabled()) {
      fmt.split = true;
      panels_split(reinterpret_cast<uint32_t*>(out.data()), K, geo, panels);
    }
    return;
  }
  out.resize(cols * weight_rows(cfg.dtype, K));
  auto* dw = reinterpret_cast<uint32_t*>(out.data());
  if (cfg.dtype == WeightType::kBf16) {
    panels_pack_reduced(static_cast<const uint16_t*>(r), H, K, cfg.dtype, geo, panels, dw);
    return;
  }
  panels_pack_reduced(static_cast<const int8_t*>(r), H, K, cfg.dtype, geo, panels, dw);
  fmt.scale.resize(cols);
  panels_pack(scales, H, 1, geo, panels, fmt.scale.data());
  fmt.sum.resize(cols);
  auto* sum = reinterpret_cast<int32_t*>(fmt.sum.data());
  const int Kd = weight_rows(cfg.dtype, K);
  for (size_t p = 0; p < static_cast<size_t>(panels); ++p)
    for (int c = 0; c < geo.cols(); ++c) {
      int32_t total = 0;
      for (int kk = 0; kk < Kd; ++kk) {
        const uint32_t d = dw[(p * Kd + kk) * geo.cols() + c];
        for (int j = 0; j < 4; ++j) {
          const int8_t q = static_cast<int8_t>(d >> (8 * j));
          total += q;
          fmt.narrow = fmt.narrow && q >= -63 && q <= 63;
        }
      }
      sum[p * geo.cols() + c] = total;
    }
  // Split for the table in use (int8_split_enabled): each panel's vectors of 16 columns apart.
  if (!int8_split_enabled()) return;
  fmt.split = true;
  panels_split(dw, Kd, geo, panels);
}

// Element offset `rows` rows into a reduced matrix of K columns (int8 or bf16 elements).
const void* reduced_rows(const void* r, WeightType type, size_t rows, int K) {
  if (r == nullptr) return nullptr;
  const size_t bytes = type == WeightType::kBf16 ? 2 : 1;
  return static_cast<const char*>(r) + rows * K * bytes;
}

}  // namespace

RnnModel model_pack(const RnnConfig& cfg, const std::vector<RawWeights>& raw) {
  const int L = cfg.num_layers, D = cfg.num_directions, H = cfg.hidden_size;
  if (raw.size() != static_cast<size_t>(L * D))
    throw std::invalid_argument("model_pack: expected one weight set per layer and direction");
  RnnModel m;
  static std::atomic<uint64_t> next_id{1};
  m.id = next_id.fetch_add(1, std::memory_order_relaxed);
  m.cfg = cfg;
  m.geo = panel_geometry(cfg.cell);
  m.panels = div_up(H, m.geo.units);
  if (cfg.classic_gru()) {
    m.cand_panels = div_up(H, kProjectionGeometry.units);
    m.panels = m.cand_panels * (kProjectionGeometry.units / m.geo.units);
  }
  m.proj_panels = cfg.proj_size > 0 ? div_up(cfg.proj_size, kProjectionGeometry.units) : 0;
  const int G = m.geo.gates;
  const size_t cols = static_cast<size_t>(m.panels) * m.geo.cols();
  std::vector<float> bias(static_cast<size_t>(G) * H);
  for (int i = 0; i < L * D; ++i) {
    const RawWeights& r = raw[i];
    PackedWeights pw;
    const int I = cfg.layer_input(i / D);
    matrix_pack(cfg, r.w_ih, r.r_ih, r.s_ih, H, I, m.geo, m.panels, pw.w_ih, pw.f_ih, true);
    if (cfg.classic_gru()) {
      const PanelGeometry rz{2, 2, 16};
      matrix_pack(cfg, r.w_hh, r.r_hh, r.s_hh, H, H, rz, m.panels, pw.w_hh, pw.f_hh);
      const size_t n_rows = static_cast<size_t>(2) * H;
      matrix_pack(cfg, r.w_hh ? r.w_hh + n_rows * H : nullptr,
                  reduced_rows(r.r_hh, cfg.dtype, n_rows, H), r.s_hh ? r.s_hh + n_rows : nullptr, H,
                  H, kProjectionGeometry, m.cand_panels, pw.w_hn, pw.f_hn);
    } else {
      matrix_pack(cfg, r.w_hh, r.r_hh, r.s_hh, H, cfg.h_out(), m.geo, m.panels, pw.w_hh, pw.f_hh,
                  true);
    }
    // LSTM and RNN biases sum; torch's GRU's b_hn must stay inside r ⊙ (W_hn h + b_hn)
    // (the classic GRU adds it outside r: it sums).
    for (int j = 0; j < G * H; ++j) {
      const bool gru_n = cfg.cell == CellKind::kGru && !cfg.classic_gru() && j >= 2 * H;
      bias[j] = (r.b_ih ? r.b_ih[j] : 0.0f) + (r.b_hh && !gru_n ? r.b_hh[j] : 0.0f);
    }
    pw.bias.resize(cols);
    panels_pack(bias.data(), H, 1, m.geo, m.panels, pw.bias.data());
    if (cfg.peepholes && r.peep) {
      const size_t n = static_cast<size_t>(m.panels) * kLanes;
      pw.peep.resize(3 * n);
      for (int g = 0; g < 3; ++g)
        panels_pack(r.peep + static_cast<size_t>(g) * H, H, 1, PanelGeometry{1, 1, 16}, m.panels,
                    pw.peep.data() + g * n);
    }
    if (cfg.cell == CellKind::kGru && !cfg.classic_gru() && r.b_hh) {
      pw.b_hn.resize(static_cast<size_t>(m.panels) * kLanes);
      panels_pack(r.b_hh + 2 * H, H, 1, PanelGeometry{1, 1, 16}, m.panels, pw.b_hn.data());
    }
    if (m.proj_panels > 0)
      matrix_pack(cfg, r.w_hr, r.r_hr, r.s_hr, cfg.proj_size, H, kProjectionGeometry, m.proj_panels,
                  pw.w_hr, pw.f_hr);
    m.int8_narrow = cfg.dtype == WeightType::kInt8 && pw.f_ih.narrow && pw.f_hh.narrow &&
                    pw.f_hr.narrow && pw.f_hn.narrow && (i == 0 || m.int8_narrow);
    m.weights.push_back(std::move(pw));
  }
  return m;
}

void packed_matrices(const RnnModel& m, int ld, PackedMatrix (&out)[kMatrices]) {
  const RnnConfig& cfg = m.cfg;
  const PackedWeights& w = m.weights[ld];
  const int H = cfg.hidden_size;
  out[kWih] = {&w.w_ih, &w.f_ih, cfg.layer_input(ld / cfg.num_directions), m.panels};
  out[kWhh] = {&w.w_hh, &w.f_hh, cfg.classic_gru() ? H : cfg.h_out(), m.panels};
  out[kWhr] = {m.proj_panels > 0 ? &w.w_hr : nullptr, &w.f_hr, H, m.proj_panels};
  out[kWhn] = {m.cand_panels > 0 ? &w.w_hn : nullptr, &w.f_hn, H, m.cand_panels};
}

const float* whole_rows_hh(const RnnModel& m, int ld) {
  RnnModel::WholeRows& rows = *m.whole_rows;
  std::call_once(rows.once, [&] {
    rows.w_hh.resize(m.weights.size());
    for (size_t i = 0; i < m.weights.size(); ++i) {
      const PackedWeights& w = m.weights[i];
      if (!w.f_hh.split || m.cfg.dtype != WeightType::kF32) continue;
      rows.w_hh[i].resize(w.w_hh.size());
      panels_join(reinterpret_cast<const uint32_t*>(w.w_hh.data()), m.cfg.h_out(), m.geo, m.panels,
                  reinterpret_cast<uint32_t*>(rows.w_hh[i].data()));
    }
  });
  return rows.w_hh[ld].data();
}

int64_t widened_floats(const PackedMatrix& w) {
  if (w.buf == nullptr) return 0;
  // The packed dwords hold Kd = ceil(K / 2) rows of every panel's columns; the copy K rows.
  return static_cast<int64_t>(w.buf->size()) / weight_rows(WeightType::kBf16, w.K) * w.K;
}

int64_t widened_floats(const RnnModel& m) {
  int64_t total = 0;
  for (size_t ld = 0; ld < m.weights.size(); ++ld) {
    PackedMatrix mats[kMatrices];
    packed_matrices(m, static_cast<int>(ld), mats);
    for (const PackedMatrix& w : mats)
      if (__builtin_add_overflow(total, widened_floats(w), &total)) return -1;
  }
  return total;
}

void widen_bf16_panels(const PackedMatrix& w, int p0, int p1, float* out, bool strips) {
  const int K = w.K, Kd = weight_rows(WeightType::kBf16, K);
  const size_t cols = w.buf->size() / (static_cast<size_t>(w.panels) * Kd);
  const auto* packed = reinterpret_cast<const uint32_t*>(w.buf->data());
  for (int p = p0; p < p1; ++p) {
    float* panel = out + static_cast<size_t>(p) * K * cols;
    // Where column j of row k goes: (K, cols) panel rows, or (cols / 16, K, 16) strips.
    const auto at = [&](int k, size_t j) {
      return strips ? split_offset(j / kLanes, k, K) + j % kLanes : k * cols + j;
    };
    for (int kk = 0; kk < Kd; ++kk) {
      // Dword row kk holds k = 2kk in its low half, 2kk + 1 in its high half (zero past K).
      const uint32_t* src = packed + (static_cast<size_t>(p) * Kd + kk) * cols;
      for (size_t j = 0; j < cols; ++j) {
        const uint32_t bits = src[j] << 16;
        std::memcpy(panel + at(2 * kk, j), &bits, sizeof bits);
      }
      if (2 * kk + 1 == K) continue;
      for (size_t j = 0; j < cols; ++j) {
        const uint32_t bits = src[j] & 0xFFFF0000u;
        std::memcpy(panel + at(2 * kk + 1, j), &bits, sizeof bits);
      }
    }
  }
}

int64_t model_packed_floats(const RnnConfig& cfg) {
  const PanelGeometry geo = panel_geometry(cfg.cell);
  int64_t panels = div_up(cfg.hidden_size, geo.units);
  if (cfg.classic_gru()) panels = div_up(cfg.hidden_size, 64) * int64_t{4};
  const int64_t cols = panels * geo.cols();
  // The classic GRU's W_hn pack (64-unit panels of H rows) is at most 3 of its 16 columns
  // per unit more than the packs below count for it (w_hh at its torch-form size), and
  // peepholes 3 floats per unit: bounded by one more w_hh and 3 more biases.
  const int64_t extra_hh = cfg.classic_gru() ? 1 : 0, extra_bias = cfg.peepholes ? 3 : 0;
  const int64_t proj_panels =
      cfg.proj_size > 0 ? div_up(cfg.proj_size, kProjectionGeometry.units) : 0;
  int64_t total = 0;
  for (int l = 0; l < cfg.num_layers; ++l) {
    // The same sizes as model_pack's resizes: w_ih, w_hh, bias, b_hn, w_hr.
    int64_t w_ih, w_hh, w_hr, layer = cols;
    if (__builtin_mul_overflow(cols, int64_t{cfg.layer_input(l)}, &w_ih) ||
        __builtin_mul_overflow(cols, int64_t{cfg.h_out()}, &w_hh) ||
        __builtin_mul_overflow(proj_panels * kProjectionGeometry.cols(), int64_t{cfg.hidden_size},
                               &w_hr) ||
        __builtin_add_overflow(layer, w_ih, &layer) ||
        __builtin_add_overflow(layer, w_hh, &layer) ||
        __builtin_add_overflow(layer, extra_hh * w_hh, &layer) ||
        __builtin_add_overflow(layer, extra_bias * cols, &layer) ||
        __builtin_add_overflow(layer, w_hr, &layer) ||
        __builtin_add_overflow(layer, cfg.cell == CellKind::kGru ? panels * kLanes : 0, &layer) ||
        __builtin_mul_overflow(layer, int64_t{cfg.num_directions}, &layer) ||
        __builtin_add_overflow(total, layer, &total))
      return -1;
  }
  return total;
}

}  // namespace fastrnn
