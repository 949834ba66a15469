#include "ops/pack.h"

#include <stdexcept>

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

}  // namespace

RnnModel model_pack(const RnnConfig& cfg, const std::vector<RawWeights>& raw) {
  const int L = cfg.num_layers, D = cfg.num_directions, H = cfg.hidden_size;
  if (raw.size() != static_cast<size_t>(L * D))
    throw std::invalid_argument("model_pack: expected one weight set per layer and direction");
  RnnModel m;
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
    pw.w_ih.resize(cols * I);
    panels_pack(r.w_ih, H, I, m.geo, m.panels, pw.w_ih.data());
    if (cfg.classic_gru()) {
      const PanelGeometry rz{2, 2, 16};
      pw.w_hh.resize(static_cast<size_t>(m.panels) * rz.cols() * H);
      panels_pack(r.w_hh, H, H, rz, m.panels, pw.w_hh.data());
      pw.w_hn.resize(static_cast<size_t>(m.cand_panels) * kProjectionGeometry.cols() * H);
      panels_pack(r.w_hh + static_cast<size_t>(2) * H * H, H, H, kProjectionGeometry, m.cand_panels,
                  pw.w_hn.data());
    } else {
      pw.w_hh.resize(cols * cfg.h_out());
      panels_pack(r.w_hh, H, cfg.h_out(), m.geo, m.panels, pw.w_hh.data());
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
    if (m.proj_panels > 0) {
      pw.w_hr.resize(static_cast<size_t>(m.proj_panels) * kProjectionGeometry.cols() * H);
      panels_pack(r.w_hr, cfg.proj_size, H, kProjectionGeometry, m.proj_panels, pw.w_hr.data());
    }
    m.weights.push_back(std::move(pw));
  }
  return m;
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
