// fastrnn._core: validates arrays, releases the GIL, calls ops, returns numpy arrays.
// No math here. The friendly argument checks live in python/fastrnn; these checks are the
// last line of defence, so that no call from Python can reach the kernels with a bad shape.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/threads.h"
#include "cpu/cpu-features.h"
#include "cpu/kernel-select.h"
#include "ops/pack.h"
#include "ops/rnn-forward.h"

namespace py = pybind11;
using fastrnn::CellKind;

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;
using IndexArray = py::array_t<int64_t, py::array::c_style>;

std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

std::string shape_str(const std::vector<int64_t>& v) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << (v.size() == 1 ? ",)" : ")");
  return s.str();
}

// Requires a C-contiguous float32 array of exactly this shape; returns its data.
const float* checked(const py::handle& obj, const char* name, const std::vector<int64_t>& shape) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<float>()))
    throw py::type_error(std::string(name) + " must be float32, got " +
                         std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok)
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + ", got " +
                          shape_str(a));
  return static_cast<const float*>(a.data());
}

CellKind cell_from(const std::string& mode) {
  if (mode == "LSTM") return CellKind::kLstm;
  if (mode == "GRU") return CellKind::kGru;
  if (mode == "RNN_TANH") return CellKind::kRnnTanh;
  if (mode == "RNN_RELU") return CellKind::kRnnRelu;
  throw py::value_error("mode must be LSTM, GRU, RNN_TANH or RNN_RELU, got '" + mode + "'");
}

class Model {
 public:
  // weights: one tuple (w_ih, w_hh, b_ih, b_hh, w_hr) per layer·D + direction, torch's
  // shapes, None for absent tensors.
  Model(const std::string& mode, int input_size, int hidden_size, int num_layers,
        bool bidirectional, int proj_size, bool bias, const py::list& weights) {
    fastrnn::RnnConfig cfg;
    cfg.cell = cell_from(mode);
    cfg.input_size = input_size;
    cfg.hidden_size = hidden_size;
    cfg.num_layers = num_layers;
    cfg.num_directions = bidirectional ? 2 : 1;
    cfg.proj_size = proj_size;
    cfg.bias = bias;
    if (input_size < 1 || hidden_size < 1 || num_layers < 1 || proj_size < 0)
      throw py::value_error("sizes must be positive (proj_size >= 0)");
    if (proj_size > 0 && (cfg.cell != CellKind::kLstm || proj_size >= hidden_size))
      throw py::value_error("proj_size must be 0, or < hidden_size for LSTM");
    // Every size the packed layout derives must fit: 2^28 floats per matrix side is far
    // beyond any RNN and keeps all products well inside 64 bits.
    const int64_t limit = int64_t{1} << 24;
    if (input_size > limit || hidden_size > limit || num_layers > 4096)
      throw py::value_error("sizes too large");
    const int L = num_layers, D = cfg.num_directions;
    if (static_cast<int>(weights.size()) != L * D)
      throw py::value_error("weights must hold " + std::to_string(L * D) + " entries, got " +
                            std::to_string(weights.size()));
    const int64_t G = fastrnn::cell_gates(cfg.cell) * int64_t{hidden_size};
    std::vector<fastrnn::RawWeights> raw(L * D);
    for (int i = 0; i < L * D; ++i) {
      py::tuple t = weights[i].cast<py::tuple>();
      if (t.size() != 5) throw py::value_error("each weights entry is (w_ih, w_hh, b_ih, b_hh, w_hr)");
      const std::string sfx = "_l" + std::to_string(i / D) + (i % D ? "_reverse" : "");
      raw[i].w_ih = checked(t[0], ("weight_ih" + sfx).c_str(), {G, cfg.layer_input(i / D)});
      raw[i].w_hh = checked(t[1], ("weight_hh" + sfx).c_str(), {G, cfg.h_out()});
      if (bias) {
        raw[i].b_ih = checked(t[2], ("bias_ih" + sfx).c_str(), {G});
        raw[i].b_hh = checked(t[3], ("bias_hh" + sfx).c_str(), {G});
      }
      if (proj_size > 0)
        raw[i].w_hr = checked(t[4], ("weight_hr" + sfx).c_str(), {proj_size, hidden_size});
    }
    model_ = fastrnn::model_pack(cfg, raw);
  }

  py::tuple forward(const py::object& x_obj, const py::object& h0_obj, const py::object& c0_obj,
                    const py::object& lengths_obj, int num_threads) {
    const fastrnn::RnnConfig& cfg = model_.cfg;
    if (!py::isinstance<py::array>(x_obj)) throw py::type_error("x must be a numpy array");
    py::array x_arr = py::reinterpret_borrow<py::array>(x_obj);
    if (x_arr.ndim() != 3)
      throw py::value_error("x must have shape (T, B, " + std::to_string(cfg.input_size) +
                            "), got " + shape_str(x_arr));
    const int64_t T = x_arr.shape(0), B = x_arr.shape(1);
    const int LD = cfg.num_layers * cfg.num_directions, H_out = cfg.h_out();
    fastrnn::ForwardArgs a;
    a.x = checked(x_obj, "x", {T, B, cfg.input_size});
    a.T = T;
    a.B = B;
    if (!h0_obj.is_none()) a.h0 = checked(h0_obj, "h_0", {LD, B, H_out});
    if (!c0_obj.is_none()) {
      if (cfg.cell != CellKind::kLstm) throw py::value_error("c_0 is only for LSTM");
      a.c0 = checked(c0_obj, "c_0", {LD, B, cfg.hidden_size});
    }
    IndexArray lengths;
    if (!lengths_obj.is_none()) {
      lengths = lengths_obj.cast<IndexArray>();
      if (lengths.ndim() != 1 || lengths.shape(0) != B)
        throw py::value_error("lengths must have shape (" + std::to_string(B) + ",), got " +
                              shape_str(lengths));
      for (int64_t b = 0; b < B; ++b)
        if (lengths.at(b) < 1 || lengths.at(b) > T)
          throw py::value_error("lengths must be in [1, " + std::to_string(T) + "], got " +
                                std::to_string(lengths.at(b)) + " at index " +
                                std::to_string(b));
      a.lengths = lengths.data();
    }
    FloatArray y({T, B, static_cast<int64_t>(cfg.num_directions) * H_out});
    FloatArray h_n({static_cast<int64_t>(LD), B, static_cast<int64_t>(H_out)});
    py::object c_n = py::none();
    a.y = y.mutable_data();
    a.h_n = h_n.mutable_data();
    if (cfg.cell == CellKind::kLstm) {
      FloatArray c({static_cast<int64_t>(LD), B, static_cast<int64_t>(cfg.hidden_size)});
      a.c_n = c.mutable_data();
      c_n = c;
    }
    a.num_threads = num_threads > 0 ? num_threads : fastrnn::threads_get();
    {
      py::gil_scoped_release release;
      fastrnn::rnn_forward(model_, a);
    }
    return py::make_tuple(y, h_n, c_n);
  }

  // One step for a stream: x (B, I); h (L·D, B, H_out) and c (L·D, B, H) are the stream's
  // own state arrays, read and overwritten in place (the driver reads each layer's initial
  // state before it writes that layer's final state, unit by unit, on the same thread).
  // Returns the step's output (B, H_out). Unidirectional models only.
  FloatArray step(const py::object& x_obj, const py::object& h_obj, const py::object& c_obj) {
    const fastrnn::RnnConfig& cfg = model_.cfg;
    if (cfg.num_directions != 1) throw py::value_error("a bidirectional model cannot stream");
    if (!py::isinstance<py::array>(x_obj)) throw py::type_error("x must be a numpy array");
    py::array x_arr = py::reinterpret_borrow<py::array>(x_obj);
    if (x_arr.ndim() != 2)
      throw py::value_error("x must have shape (B, " + std::to_string(cfg.input_size) +
                            "), got " + shape_str(x_arr));
    const int64_t B = x_arr.shape(0);
    const int L = cfg.num_layers, H_out = cfg.h_out();
    fastrnn::ForwardArgs a;
    a.x = checked(x_obj, "x", {B, cfg.input_size});
    a.T = 1;
    a.B = B;
    py::array h_arr = py::reinterpret_borrow<py::array>(h_obj);
    a.h0 = checked(h_obj, "h", {L, B, H_out});
    if (!h_arr.writeable()) throw py::value_error("h must be writeable");
    a.h_n = static_cast<float*>(h_arr.mutable_data());
    if (cfg.cell == CellKind::kLstm) {
      py::array c_arr = py::reinterpret_borrow<py::array>(c_obj);
      a.c0 = checked(c_obj, "c", {L, B, cfg.hidden_size});
      if (!c_arr.writeable()) throw py::value_error("c must be writeable");
      a.c_n = static_cast<float*>(c_arr.mutable_data());
    }
    FloatArray y({B, static_cast<int64_t>(H_out)});
    a.y = y.mutable_data();
    a.num_threads = fastrnn::threads_get();
    {
      py::gil_scoped_release release;
      fastrnn::rnn_forward(model_, a);
    }
    return y;
  }

  int threads_for(int64_t batch, int max_threads) const {
    return fastrnn::rnn_forward_threads(model_, batch,
                                        max_threads > 0 ? max_threads : fastrnn::threads_get());
  }

 private:
  fastrnn::RnnModel model_;
};

py::array_t<float> map_activation(const FloatArray& x, bool sigmoid) {
  FloatArray y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const auto& k = fastrnn::kernels();
  (sigmoid ? k.sigmoid : k.tanh)(x.data(), y.mutable_data(), static_cast<size_t>(x.size()));
  return y;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastrnn compiled core (private): packing, kernels, the forward driver";

  py::class_<Model>(m, "Model")
      .def(py::init<const std::string&, int, int, int, bool, int, bool, const py::list&>(),
           py::arg("mode"), py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"),
           py::arg("bidirectional"), py::arg("proj_size"), py::arg("bias"), py::arg("weights"))
      .def("forward", &Model::forward, py::arg("x"), py::arg("h0"), py::arg("c0"),
           py::arg("lengths"), py::arg("num_threads") = 0)
      .def("step", &Model::step, py::arg("x"), py::arg("h"), py::arg("c"))
      .def("threads_for", &Model::threads_for, py::arg("batch"), py::arg("max_threads") = 0);

  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("num_threads must be >= 1, got " + std::to_string(n));
    fastrnn::threads_set(n);
  });
  m.def("get_num_threads", &fastrnn::threads_get);
  m.def("hardware_threads", &fastrnn::threads_hardware);
  m.def("isa", [] { return std::string(fastrnn::kernels().isa); });
  m.def("isa_available", &fastrnn::kernels_available);
  m.def("set_isa", [](const std::string& name) {
    try {
      return fastrnn::kernels_select(name);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  });
  m.def("cpu_features", [] {
    const fastrnn::CpuFeatures f = fastrnn::cpu_features_detect();
    py::dict d;
    d["avx2"] = f.avx2;
    d["avx512"] = f.avx512;
    d["avx512_bf16"] = f.avx512_bf16;
    d["avx512_vnni"] = f.avx512_vnni;
    return d;
  });
  m.def("sigmoid", [](const FloatArray& x) { return map_activation(x, true); });
  m.def("tanh", [](const FloatArray& x) { return map_activation(x, false); });
}
