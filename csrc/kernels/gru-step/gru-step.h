// GRU step with the gate math fused into the matmul epilogue.
// Math:     r = σ(W_hr·h + gx_r), z = σ(W_hz·h + gx_z), n = tanh(gx_n + r ⊙ (W_hn·h + b_hn)),
//           each recurrent sum from 0, then gx (and b_hn) added,
//           h' = n + z ⊙ (h − n)  (= (1−z)⊙n + z⊙h, written as PyTorch's CPU kernel does).
//           PyTorch trap: b_hn stays inside r ⊙ (…), so it cannot be folded into gx_n;
//           gx holds b_ir+b_hr, b_iz+b_hz and b_in only.
// Layout:   panel p = 16 hidden units × 3 gates: w (panels, K, 3, 16); gx rows (panels·48);
//           b_hn (panels·16); h_prev and h rows (panels·16).
// Accuracy: fp32 dot products, sigmoid/tanh per activations.h.
// Included inside an ISA's anonymous namespace (no includes here).

void gru_step(const StepArgs& s) {
  step_panels<3, 16>(s, ZeroSums{},
                     // W: V, a VPair (two consecutive V's of row b) or a VRowPair (V number sub of
                     // rows b and b + 1): step-driver.h, vload_units.
                     [&](int p, int b, int sub, auto(&acc)[3]) FASTRNN_INLINE_LAMBDA {
                       using W = std::remove_reference_t<decltype(acc[0])>;
                       const int u = unit_of<16>(p, 0, sub);
                       const float* gx = s.gx + b * s.ld_gx + p * 48 + sub * kVecLanes;
                       const W r = vsigmoid(vadd(acc[0], vload_units<W>(gx, s.ld_gx)));
                       const W z = vsigmoid(vadd(acc[1], vload_units<W>(gx + 16, s.ld_gx)));
                       const W hn = s.b_hn ? vadd(acc[2], vload_units<W>(s.b_hn + u, 0)) : acc[2];
                       const W n = vtanh(vfma(r, hn, vload_units<W>(gx + 32, s.ld_gx)));
                       const W h_prev = vload_units<W>(s.h_prev + b * s.ld_h_prev + u, s.ld_h_prev);
                       const W h = vfma(z, vsub(h_prev, n), n);
                       vstore_units(s.h + b * s.ld_h + u, s.ld_h, h);
                       store_output(s, b, u, h);
                     });
}
