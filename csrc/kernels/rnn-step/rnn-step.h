// Elman RNN step, tanh or relu, fused into the matmul epilogue.
// Math:     h' = tanh(W_hh·h + gx) or relu(W_hh·h + gx) (the recurrent sum from 0, then gx);
//           relu(NaN) = NaN as in torch.
// Layout:   panel p = 64 consecutive hidden units (4 vectors): w (panels, K, 4, 16);
//           gx and h rows (panels·64).
// Accuracy: fp32 dot products, tanh per activations.h; relu exact.
// Included inside an ISA's anonymous namespace (no includes here).

template <bool kRelu>
void rnn_step(const StepArgs& s) {
  step_panels<4, 64>(s, ZeroSums{}, [&](int p, int b, int sub, V(&acc)[4]) {
    add_gx<4>(s, p, b, sub, acc);
    for (int v = 0; v < 4; ++v) {
      // max(0, x) with x second: NaN propagates.
      const V h = kRelu ? vmax(vzero(), acc[v]) : vtanh(acc[v]);
      const int u = unit_of<64>(p, v, sub);
      vstore(s.h + b * s.ld_h + u, h);
      store_output(s, b, u, h);
    }
  });
}
