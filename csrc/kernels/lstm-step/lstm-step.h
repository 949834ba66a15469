// LSTM step with the gate math fused into the matmul epilogue, and the projection step.
// Math:     a = W_hh·h + G_x[t] (gates i,f,g,o; the recurrent sum from 0, then G_x); c' = σ(f)⊙c +
// σ(i)⊙tanh(g);
//           h' = σ(o)⊙tanh(c')  (with proj_size: r = σ(o)⊙tanh(c'), then h' = W_hr·r).
// Layout:   panel p = 16 hidden units × 4 gates: w (panels, K, 4, 16); gx rows
//           (panels·64) in the same order; c, h rows (panels·16); projection panels are
//           64 outputs: w_hr (ceil(P/64), H, 4, 16).
// Accuracy: fp32 dot products, sigmoid/tanh per activations.h; ≤ 1e-5 abs against
//           torch fp32 for ordinary scales (tests/parity/test_parity_torch.py).
// Included inside an ISA's anonymous namespace (no includes here).

void lstm_step(const StepArgs& s) {
  step_panels<4, 16>(s, ZeroSums{},
                     // W: V, a VPair (two consecutive V's of row b) or a VRowPair (V number sub of
                     // rows b and b + 1): step-driver.h, vload_units.
                     [&](int p, int b, int sub, auto(&acc)[4]) FASTRNN_INLINE_LAMBDA {
                       using W = std::remove_reference_t<decltype(acc[0])>;
                       add_gx<4>(s, p, b, sub, acc);
                       const W i = vsigmoid(acc[0]);
                       const W f = vsigmoid(acc[1]);
                       const W g = vtanh(acc[2]);
                       const W o = vsigmoid(acc[3]);
                       const int u = unit_of<16>(p, 0, sub);
                       float* c = s.c + b * s.ld_c + u;
                       const W c_new = vfma(f, vload_units<W>(c, s.ld_c), vmul(i, g));
                       vstore_units(c, s.ld_c, c_new);
                       const W h = vmul(o, vtanh(c_new));
                       vstore_units(s.h + b * s.ld_h + u, s.ld_h, h);
                       store_output(s, b, u, h);
                     });
}

void projection_step(const StepArgs& s) {
  step_panels<4, 64>(s, ZeroSums{}, [&](int p, int b, int sub, V(&acc)[4]) {
    for (int v = 0; v < 4; ++v) {
      const int u = unit_of<64>(p, v, sub);
      vstore(s.h + b * s.ld_h + u, acc[v]);
      store_output(s, b, u, acc[v]);
    }
  });
}
