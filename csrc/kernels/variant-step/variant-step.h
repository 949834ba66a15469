// Step kernels of the cells that are not torch's (ONNX and Keras options): any activation
// of ONNX's list in each slot, clip, LSTM peepholes and input_forget, and the classic GRU
// (ONNX linear_before_reset=0, Keras reset_after=False) in two phases. Torch's cells keep
// their own kernels (lstm-step.h, gru-step.h, rnn-step.h), untouched by any of this.
// Math (ONNX's LSTM / GRU / RNN operators; clip(x) = min(c, max(−c, x)) when c > 0):
//   LSTM  i = f(clip(a_i + P_i ⊙ c)), f = input_forget ? 1 − i : f(clip(a_f + P_f ⊙ c)),
//         g = g(clip(a_g)), c' = f ⊙ c + i ⊙ g, o = f(clip(a_o + P_o ⊙ c')), h' = o ⊙ h(c')
//   GRU   r = f(clip(a_r)), z = f(clip(a_z)), with a = W_hh·h + gx;
//         torch form: n = g(clip(gx_n + r ⊙ (W_hn·h + b_hn)));
//         classic:    n = g(clip(gx_n + W_hn·(r ⊙ h))), gx_n holding b_in + b_hn;
//         h' = n + z ⊙ (h − n)
//   RNN   h' = g(clip(W_hh·h + gx))
// Layout:  as the torch-form kernels; the classic GRU's first phase reads W_hr, W_hz packed
//          as 16-unit panels of 2 gates (panels, K, 2, 16) and writes r ⊙ h (s.h) and z
//          (s.c); its second reads W_hn as 64-unit panels (panels, K, 4, 16) with the
//          first phase's r ⊙ h as the dot input (s.h_prev) and the real h in s.carry.
//          Peepholes: (3, s.ld_c) floats (ld_c = panels·16), i then f then o.
// Accuracy: fp32 dot products; sigmoid / tanh per activations.h; the other activations
//          from the same vector operations (Elu's e^x − 1 is not an expm1); Softplus per
//          lane with log1pf(expf(x)) (x > 20: x).
// Included inside an ISA's anonymous namespace after step-driver.h (no includes here).

FASTRNN_INLINE V vclip(const CellVariant& cv, V x) {
  if (cv.clip <= 0.0f) return x;
  // NaN survives: min/max return their second operand when either is NaN.
  return vmin(vset1(cv.clip), vmax(vset1(-cv.clip), x));
}

// Per lane, through the C library's log1pf and expf (plain external functions: no inline
// function compiled with this ISA's flags can leak to another's caller).
inline V vsoftplus(V x) {
  alignas(64) float lanes[kVecLanes];
  vstore(lanes, x);
  for (int i = 0; i < kVecLanes; ++i)
    lanes[i] = lanes[i] > 20.0f ? lanes[i] : ::log1pf(::expf(lanes[i]));
  return vload(lanes);
}

inline V vact(const Act& a, V x) {
  const V zero = vzero(), one = vset1(1.0f);
  switch (a.kind) {
    case ActKind::kSigmoid:
      return vsigmoid(x);
    case ActKind::kTanh:
      return vtanh(x);
    case ActKind::kRelu:
      return vmax(zero, x);
    case ActKind::kHardSigmoid:
      return vmax(zero, vmin(one, vfma(vset1(a.alpha), x, vset1(a.beta))));
    case ActKind::kLeakyRelu:
      return vselect(vlt(x, zero), vmul(vset1(a.alpha), x), x);
    case ActKind::kThresholdedRelu:
      return vselect(vlt(vset1(a.alpha), x), x, zero);
    case ActKind::kScaledTanh:
      return vmul(vset1(a.alpha), vtanh(vmul(vset1(a.beta), x)));
    case ActKind::kAffine:
      return vfma(vset1(a.alpha), x, vset1(a.beta));
    case ActKind::kElu:
      return vselect(vlt(x, zero), vmul(vset1(a.alpha), vsub(vexp(x), one)), x);
    case ActKind::kSoftsign:
      return vdiv(x, vadd(one, vabs(x)));
    case ActKind::kSoftplus:
      return vsoftplus(x);
  }
  return x;
}

void lstm_step_variant(const StepArgs& s) {
  const CellVariant& cv = *s.variant;
  step_panels<4, 16>(s, ZeroSums{}, [&](int p, int b, int sub, V(&acc)[4]) {
    add_gx<4>(s, p, b, sub, acc);
    const int u = unit_of<16>(p, 0, sub);
    float* c = s.c + b * s.ld_c + u;
    const V c_prev = vload(c);
    V a_i = acc[0], a_f = acc[1], a_o = acc[3];
    if (cv.peep != nullptr) {
      a_i = vfma(vload(cv.peep + u), c_prev, a_i);
      a_f = vfma(vload(cv.peep + s.ld_c + u), c_prev, a_f);
    }
    const V i = vact(cv.act[0], vclip(cv, a_i));
    const V f = cv.input_forget ? vsub(vset1(1.0f), i) : vact(cv.act[0], vclip(cv, a_f));
    const V g = vact(cv.act[1], vclip(cv, acc[2]));
    const V c_new = vfma(f, c_prev, vmul(i, g));
    vstore(c, c_new);
    if (cv.peep != nullptr) a_o = vfma(vload(cv.peep + 2 * s.ld_c + u), c_new, a_o);
    const V o = vact(cv.act[0], vclip(cv, a_o));
    const V h = vmul(o, vact(cv.act[2], c_new));
    vstore(s.h + b * s.ld_h + u, h);
    store_output(s, b, u, h);
  });
}

void gru_step_variant(const StepArgs& s) {
  const CellVariant& cv = *s.variant;
  step_panels<3, 16>(s, ZeroSums{}, [&](int p, int b, int sub, V(&acc)[3]) {
    const int u = unit_of<16>(p, 0, sub);
    const float* gx = s.gx + b * s.ld_gx + p * 48 + sub * kVecLanes;
    const V r = vact(cv.act[0], vclip(cv, vadd(acc[0], vload(gx))));
    const V z = vact(cv.act[0], vclip(cv, vadd(acc[1], vload(gx + 16))));
    const V hn = s.b_hn ? vadd(acc[2], vload(s.b_hn + u)) : acc[2];
    const V n = vact(cv.act[1], vclip(cv, vfma(r, hn, vload(gx + 32))));
    const V h_prev = vload(s.h_prev + b * s.ld_h_prev + u);
    const V h = vfma(z, vsub(h_prev, n), n);
    vstore(s.h + b * s.ld_h + u, h);
    store_output(s, b, u, h);
  });
}

// Classic GRU, phase 1 of 2: r and z of 16 units from W_hr, W_hz packed as 2-gate panels;
// writes r ⊙ h (s.h, the second phase's dot input) and z (s.c). gx is the GRU's own layout
// (48 floats per 16-unit panel: r, z, n). Inactive rows get r ⊙ h = h (s.carry), a finite
// value the second phase's dot products may read and then discard.
void gru_gates_step(const StepArgs& s) {
  const CellVariant& cv = *s.variant;
  step_panels<2, 16>(s, ZeroSums{}, [&](int p, int b, int sub, V(&acc)[2]) {
    const int u = unit_of<16>(p, 0, sub);
    const float* gx = s.gx + b * s.ld_gx + p * 48 + sub * kVecLanes;
    const V r = vact(cv.act[0], vclip(cv, vadd(acc[0], vload(gx))));
    const V z = vact(cv.act[0], vclip(cv, vadd(acc[1], vload(gx + 16))));
    const V h_prev = vload(s.h_prev + b * s.ld_h_prev + u);
    vstore(s.h + b * s.ld_h + u, vmul(r, h_prev));
    vstore(s.c + b * s.ld_c + u, z);
  });
}

// Classic GRU, phase 2 of 2: n from W_hn · (r ⊙ h) (64-unit panels), then h' = n + z ⊙ (h − n)
// with h from s.carry and z from s.c.
void gru_candidate_step(const StepArgs& s) {
  const CellVariant& cv = *s.variant;
  step_panels<4, 64>(s, ZeroSums{}, [&](int p, int b, int sub, V(&acc)[4]) {
    for (int v = 0; v < 4; ++v) {
      const int u = unit_of<64>(p, v, sub);
      // G_x's n block of the 16-unit group holding u (u % 16 = sub · kVecLanes).
      const float* gx_n = s.gx + b * s.ld_gx + (u / 16) * 48 + 32 + u % 16;
      const V n = vact(cv.act[1], vclip(cv, vadd(acc[v], vload(gx_n))));
      const V z = vload(s.c + b * s.ld_c + u);
      const V h_prev = vload(s.carry + b * s.ld_carry + u);
      const V h = vfma(z, vsub(h_prev, n), n);
      vstore(s.h + b * s.ld_h + u, h);
      store_output(s, b, u, h);
    }
  });
}

void rnn_step_variant(const StepArgs& s) {
  const CellVariant& cv = *s.variant;
  step_panels<4, 64>(s, ZeroSums{}, [&](int p, int b, int sub, V(&acc)[4]) {
    add_gx<4>(s, p, b, sub, acc);
    for (int v = 0; v < 4; ++v) {
      const V h = vact(cv.act[0], vclip(cv, acc[v]));
      const int u = unit_of<64>(p, v, sub);
      vstore(s.h + b * s.ld_h + u, h);
      store_output(s, b, u, h);
    }
  });
}
