// fastrnn._core: validates arrays, releases the GIL, calls ops, returns numpy arrays.
// No math here. The friendly argument checks live in python/fastrnn; these checks are the
// last line of defence, so that no call from Python can reach the kernels with a bad shape.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/host-openmp.h"
#include "core/limits.h"
#include "core/thread-pool.h"
#include "core/threads.h"
#include "cpu/cpu-caches.h"
#include "cpu/cpu-features.h"
#include "cpu/kernel-select.h"
#include "ops/blocking.h"
#include "ops/forward-plan.h"
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

// Whether a (an array) has exactly this shape (a list of sizes: an initializer_list, a vector).
template <class Shape>
bool has_shape(const py::array& a, const Shape& shape) {
  if (a.ndim() != static_cast<py::ssize_t>(shape.size())) return false;
  py::ssize_t i = 0;
  for (const int64_t n : shape)
    if (a.shape(i++) != n) return false;
  return true;
}

// Requires a C-contiguous float32 array of exactly this shape; returns its data. (No heap
// allocation unless it throws: a stream's step checks three arrays.)
const float* checked(const py::handle& obj, const char* name,
                     std::initializer_list<int64_t> shape) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().equal(py::dtype::of<float>()))  // equal, not is: unpickled dtypes are copies
    throw py::type_error(std::string(name) + " must be float32, got " +
                         std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  if (!has_shape(a, shape))
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + ", got " +
                          shape_str(a));
  return static_cast<const float*>(a.data());
}

// The fields of obj when it is a C-contiguous float32 numpy array in the machine's byte
// order, else null. Read straight off the array: a stream's step checks three arrays, and
// pybind's dtype objects (a new reference and a comparison through numpy each) took ~0.1 us.
const py::detail::PyArray_Proxy* float_c_array(const py::handle& obj) {
  constexpr char kForeignOrder = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? '>' : '<';
  if (!py::detail::npy_api::get().PyArray_Check_(obj.ptr())) return nullptr;
  const py::detail::PyArray_Proxy* a = py::detail::array_proxy(obj.ptr());
  const py::detail::PyArrayDescr_Proxy* d = py::detail::array_descriptor_proxy(a->descr);
  const bool ok = d->type_num == py::detail::npy_api::NPY_FLOAT_ && d->byteorder != kForeignOrder &&
                  (a->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) != 0;
  return ok ? a : nullptr;
}

bool has_shape(const py::detail::PyArray_Proxy* a, std::initializer_list<int64_t> shape) {
  if (a->nd != static_cast<int>(shape.size())) return false;
  int i = 0;
  for (const int64_t n : shape)
    if (a->dimensions[i++] != n) return false;
  return true;
}

// A stream's state array (float32, C-contiguous, writeable, exactly this shape): its data.
float* checked_state(const py::handle& obj, const char* name,
                     std::initializer_list<int64_t> shape) {
  const py::detail::PyArray_Proxy* a = float_c_array(obj);
  if (a == nullptr || !has_shape(a, shape)) {
    checked(obj, name, shape);  // says what is wrong
    throw py::type_error(std::string(name) + " must be float32 in the machine's byte order");
  }
  if ((a->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_) == 0)
    throw py::value_error(std::string(name) + " must be writeable");
  return reinterpret_cast<float*>(a->data);
}

// A new C-contiguous float32 array of these sizes, through numpy's C API (pybind's array_t
// constructor builds shape and stride vectors on the heap).
py::array new_float_array(std::initializer_list<Py_intptr_t> shape) {
  const py::detail::npy_api& api = py::detail::npy_api::get();
  PyObject* descr = api.PyArray_DescrFromType_(py::detail::npy_api::NPY_FLOAT_);
  if (descr == nullptr) throw py::error_already_set();
  PyObject* a = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, static_cast<int>(shape.size()),
                                          shape.begin(), nullptr, nullptr, 0, nullptr);
  if (a == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::array>(a);
}

// Requires a C-contiguous array of dtype T and exactly this shape; returns its data.
template <class T>
const T* checked_as(const py::handle& obj, const std::string& name, const char* type_name,
                    const std::vector<int64_t>& shape) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error(name + " must be a numpy array");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().equal(py::dtype::of<T>()))
    throw py::type_error(name + " must be " + type_name + ", got " +
                         std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style)) throw py::value_error(name + " must be C-contiguous");
  if (!has_shape(a, shape))
    throw py::value_error(name + " must have shape " + shape_str(shape) + ", got " + shape_str(a));
  return static_cast<const T*>(a.data());
}

fastrnn::WeightType dtype_from(const std::string& name) {
  if (name == "float32") return fastrnn::WeightType::kF32;
  if (name == "bfloat16") return fastrnn::WeightType::kBf16;
  if (name == "int8") return fastrnn::WeightType::kInt8;
  throw py::value_error("dtype must be float32, bfloat16 or int8, got '" + name + "'");
}

// One weight matrix of a reduced model: bf16 bits (uint16, `shape`), or for int8 a tuple
// (values int8 `shape` in [−127, 127], scales float32 (rows,), finite and ≥ 0).
void checked_reduced(const py::handle& obj, const std::string& name, fastrnn::WeightType type,
                     const std::vector<int64_t>& shape, const void*& values, const float*& scales) {
  if (type == fastrnn::WeightType::kBf16) {
    values = checked_as<uint16_t>(obj, name, "uint16 (bfloat16 bits)", shape);
    return;
  }
  if (!py::isinstance<py::tuple>(obj) || py::len(obj) != 2)
    throw py::type_error(name + " of an int8 model must be a tuple (int8 values, float32 scales)");
  const py::tuple t = obj.cast<py::tuple>();
  const auto* q = checked_as<int8_t>(t[0], name, "int8", shape);
  const size_t n = static_cast<size_t>(shape[0]) * static_cast<size_t>(shape[1]);
  for (size_t i = 0; i < n; ++i)
    if (q[i] == -128)
      throw py::value_error(name + " int8 values must be in [-127, 127], got -128 at index " +
                            std::to_string(i));
  const float* s = checked_as<float>(t[1], name + " scales", "float32", {shape[0]});
  for (int64_t i = 0; i < shape[0]; ++i)
    if (!(s[i] >= 0.0f && s[i] <= 3.4028235e38f))
      throw py::value_error(name + " scales must be finite and >= 0, got " + std::to_string(s[i]) +
                            " at row " + std::to_string(i));
  values = q;
  scales = s;
}

// --- size bounds ----------------------------------------------------------------------------
// Every size from Python is bounded here (core/limits.h) before anything is allocated, and
// every product of sizes that an allocation uses is computed with an overflow check.

using fastrnn::kMaxArrayFloats;
using fastrnn::kMaxBatch;
using fastrnn::kMaxFeatures;
using fastrnn::kMaxLayers;
using fastrnn::kMaxPackedFloats;
int max_threads() { return fastrnn::threads_max(); }

// A per-call thread cap: 0 (the process budget) or 1 .. max_threads().
void thread_cap_check(int n, const char* name) {
  if (n < 0 || n > max_threads())
    throw py::value_error(std::string(name) + " must be in [1, " + std::to_string(max_threads()) +
                          "] (0: the default), got " + std::to_string(n));
}

// A Python int in [lo, hi], else a ValueError naming it (also beyond 64 bits).
int64_t int_in_range(const py::int_& value, const char* name, int64_t lo, int64_t hi) {
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow != 0 || v < lo || v > hi)
    throw py::value_error(std::string(name) + " must be in [" + std::to_string(lo) + ", " +
                          std::to_string(hi) + "], got " + std::string(py::str(value)));
  return v;
}

struct Dim {
  const char* name;
  int64_t size;  // >= 0
};

// The product of dims, or nullopt past limit (or past int64).
std::optional<int64_t> product_within(std::initializer_list<Dim> dims, int64_t limit) {
  int64_t n = 1;
  for (const Dim& d : dims)
    if (__builtin_mul_overflow(n, d.size, &n) || n > limit) return std::nullopt;
  return n;
}

// "(L·D, B, H_out) = (8192, 2, 4)"
std::string dims_str(std::initializer_list<Dim> dims) {
  std::ostringstream names, sizes;
  const char* sep = "";
  for (const Dim& d : dims) {
    names << sep << d.name;
    sizes << sep << d.size;
    sep = ", ";
  }
  return "(" + names.str() + ") = (" + sizes.str() + ")";
}

// Raises, naming the call's arguments, when one of the call's arrays or workspaces would
// hold more than kMaxArrayFloats floats.
void check_array_size(const std::string& args, const char* array, std::initializer_list<Dim> dims) {
  if (!product_within(dims, kMaxArrayFloats))
    throw py::value_error(args + " is too large for this model: " + array + " " + dims_str(dims) +
                          " would exceed 2^45 floats (2^47 bytes, more than a process can map)");
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
  Model(const std::string& mode, const py::int_& input_size, const py::int_& hidden_size,
        const py::int_& num_layers, bool bidirectional, const py::int_& proj_size, bool bias,
        const py::list& weights, const py::object& variant, const std::string& dtype) {
    fastrnn::RnnConfig cfg;
    cfg.cell = cell_from(mode);
    cfg.input_size = static_cast<int>(int_in_range(input_size, "input_size", 1, kMaxFeatures));
    cfg.hidden_size = static_cast<int>(int_in_range(hidden_size, "hidden_size", 1, kMaxFeatures));
    cfg.num_layers = static_cast<int>(int_in_range(num_layers, "num_layers", 1, kMaxLayers));
    cfg.num_directions = bidirectional ? 2 : 1;
    cfg.proj_size = static_cast<int>(int_in_range(proj_size, "proj_size", 0, kMaxFeatures));
    cfg.bias = bias;
    if (cfg.proj_size > 0 && (cfg.cell != CellKind::kLstm || cfg.proj_size >= cfg.hidden_size))
      throw py::value_error("proj_size must be 0, or < hidden_size for LSTM");
    variant_parse(variant, cfg);
    cfg.dtype = dtype_from(dtype);
    const bool reduced = cfg.dtype != fastrnn::WeightType::kF32;
    if (reduced)
      for (const auto& [name, size] : {std::pair<const char*, int>{"input_size", cfg.input_size},
                                       {"hidden_size", cfg.hidden_size},
                                       {"proj_size", cfg.proj_size}})
        if (size > fastrnn::kMaxReducedFeatures)
          throw py::value_error(std::string(name) + " of a " + dtype + " model must be at most " +
                                std::to_string(fastrnn::kMaxReducedFeatures) + ", got " +
                                std::to_string(size));
    check_packed_size(cfg);
    const int L = cfg.num_layers, D = cfg.num_directions, hidden = cfg.hidden_size;
    if (static_cast<int>(weights.size()) != L * D)
      throw py::value_error("weights must hold " + std::to_string(L * D) + " entries, got " +
                            std::to_string(weights.size()));
    const int64_t G = fastrnn::cell_gates(cfg.cell) * int64_t{hidden};
    std::vector<fastrnn::RawWeights> raw(L * D);
    for (int i = 0; i < L * D; ++i) {
      if (!py::isinstance<py::tuple>(weights[i]) ||
          (py::len(weights[i]) != 5 && py::len(weights[i]) != 6))
        throw py::type_error(
            "each weights entry is a tuple (w_ih, w_hh, b_ih, b_hh, w_hr[, weight_peep])");
      py::tuple t = weights[i].cast<py::tuple>();
      const std::string sfx = "_l" + std::to_string(i / D) + (i % D ? "_reverse" : "");
      const int64_t I = cfg.layer_input(i / D), P = cfg.proj_size;
      if (reduced) {
        checked_reduced(t[0], "weight_ih" + sfx, cfg.dtype, {G, I}, raw[i].r_ih, raw[i].s_ih);
        checked_reduced(t[1], "weight_hh" + sfx, cfg.dtype, {G, cfg.h_out()}, raw[i].r_hh,
                        raw[i].s_hh);
        if (P > 0)
          checked_reduced(t[4], "weight_hr" + sfx, cfg.dtype, {P, hidden}, raw[i].r_hr,
                          raw[i].s_hr);
      } else {
        raw[i].w_ih = checked(t[0], ("weight_ih" + sfx).c_str(), {G, I});
        raw[i].w_hh = checked(t[1], ("weight_hh" + sfx).c_str(), {G, cfg.h_out()});
        if (P > 0) raw[i].w_hr = checked(t[4], ("weight_hr" + sfx).c_str(), {P, hidden});
      }
      if (bias) {
        raw[i].b_ih = checked(t[2], ("bias_ih" + sfx).c_str(), {G});
        raw[i].b_hh = checked(t[3], ("bias_hh" + sfx).c_str(), {G});
      }
      if (cfg.peepholes) {
        if (py::len(t) != 6) throw py::value_error("peepholes need a weight_peep" + sfx);
        raw[i].peep = checked(t[5], ("weight_peep" + sfx).c_str(), {3 * int64_t{hidden}});
      }
    }
    model_ = fastrnn::model_pack(cfg, raw);
  }

  py::tuple forward(const py::object& x_obj, const py::object& h0_obj, const py::object& c0_obj,
                    const py::object& lengths_obj, int num_threads, bool host_openmp) {
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
    if (T < 1)
      throw py::value_error("x must hold at least one time step (T >= 1), got shape " +
                            shape_str(x_arr));
    thread_cap_check(num_threads, "num_threads");
    check_call_sizes(T, B, num_threads);
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
                                std::to_string(lengths.at(b)) + " at index " + std::to_string(b));
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
    a.host_openmp = host_openmp;
    {
      py::gil_scoped_release release;
      fastrnn::rnn_forward(model_, a);
    }
    return py::make_tuple(y, h_n, c_n);
  }

  // One step of a stream (python/fastrnn/_stream.py): x is (batch, I), or (I,) for an
  // unbatched stream (batch 0: one row, and the output is (H_out,)); h is the stream's list
  // [h, spare] of two (L, B, H_out) arrays: the step reads h and writes the new state into
  // spare, then swaps the two in the list (every thread reads all of h while the others
  // write their units of the new state: with one array, the call read a copy of it, which
  // cost a 2-thread 256-unit int8 step 4%); c (L, B, H) is read and overwritten in place
  // (each thread reads and writes its own units). Returns the step's output (B, H_out), or
  // None when x is not a C-contiguous float32 array of that shape: the stream then converts
  // it, or says what is wrong, and calls again. Unidirectional models only.
  py::object step(const py::handle& x_obj, const py::handle& h_obj, const py::handle& c_obj,
                  int64_t batch) {
    const fastrnn::RnnConfig& cfg = model_.cfg;
    if (cfg.num_directions != 1) throw py::value_error("a bidirectional model cannot stream");
    if (batch < 0 || batch > kMaxBatch)
      throw py::value_error("batch must be in [0, " + std::to_string(kMaxBatch) + "], got " +
                            std::to_string(batch));
    const int64_t B = batch > 0 ? batch : 1;
    const int64_t I = cfg.input_size;
    const py::detail::PyArray_Proxy* x = float_c_array(x_obj);
    const bool x_ok = x != nullptr && (batch > 0 ? has_shape(x, {B, I}) : has_shape(x, {I}));
    if (!x_ok) return py::none();
    const int L = cfg.num_layers, H_out = cfg.h_out();
    fastrnn::ForwardArgs a;
    a.x = reinterpret_cast<const float*>(x->data);
    const int threads = fastrnn::threads_get();
    check_step_sizes(B, threads);
    a.T = 1;
    a.B = B;
    if (!PyList_CheckExact(h_obj.ptr()) || PyList_GET_SIZE(h_obj.ptr()) != 2)
      throw py::type_error("h must be a list [h, spare] of two state arrays");
    // Held while the GIL is released: the list's items may change meanwhile, not the arrays.
    const auto h_in = py::reinterpret_borrow<py::object>(PyList_GET_ITEM(h_obj.ptr(), 0));
    const auto h_out = py::reinterpret_borrow<py::object>(PyList_GET_ITEM(h_obj.ptr(), 1));
    if (h_in.is(h_out)) throw py::value_error("h and its spare must be two arrays");
    a.h0 = checked_state(h_in, "h", {L, B, H_out});
    a.h_n = checked_state(h_out, "h's spare", {L, B, H_out});
    if (cfg.cell == CellKind::kLstm) {
      a.c_n = checked_state(c_obj, "c", {L, B, cfg.hidden_size});
      a.c0 = a.c_n;
    }
    py::array y = batch > 0 ? new_float_array({B, H_out}) : new_float_array({H_out});
    a.y = static_cast<float*>(y.mutable_data());
    a.num_threads = threads;
    {
      py::gil_scoped_release release;
      fastrnn::rnn_forward(model_, a);
    }
    // The spare holds the new state: the two change places in the list (which keeps its
    // reference to each), unless another thread changed the list meanwhile.
    PyObject* list = h_obj.ptr();
    if (PyList_GET_SIZE(list) == 2 && PyList_GET_ITEM(list, 0) == h_in.ptr() &&
        PyList_GET_ITEM(list, 1) == h_out.ptr()) {
      PyList_SET_ITEM(list, 0, h_out.ptr());
      PyList_SET_ITEM(list, 1, h_in.ptr());
    }
    return std::move(y);
  }

  // One call of a cell (python/fastrnn/_modules.py, _CellBase): x (B, I) or (I,); state
  // None (zeros), or h, for LSTM a tuple or list (h, c), each (B, H) or (H,) as x; all
  // C-contiguous float32 in the machine's byte order. Returns h', for LSTM (h', c'), with
  // x's batching, or None for anything else: the cell then converts it or says what is
  // wrong. The cell's own Python checks and its whole-sequence call took ~8 us at any size.
  // num_threads and host_openmp as for forward (fastrnn.accelerate's cells pass them).
  py::object cell(const py::handle& x_obj, const py::handle& state_obj, int num_threads,
                  bool host_openmp) {
    const fastrnn::RnnConfig& cfg = model_.cfg;
    const int64_t I = cfg.input_size, H = cfg.hidden_size;
    if (cfg.num_layers != 1 || cfg.num_directions != 1 || cfg.h_out() != H)
      throw py::value_error("a cell is one unidirectional layer without a projection");
    const py::detail::PyArray_Proxy* x = float_c_array(x_obj);
    if (x == nullptr || (x->nd != 1 && x->nd != 2) || x->dimensions[x->nd - 1] != I)
      return py::none();
    const bool batched = x->nd == 2;
    const int64_t B = batched ? x->dimensions[0] : 1;
    if (B < 1) return py::none();
    const auto state_of = [&](PyObject* obj) -> const float* {
      const py::detail::PyArray_Proxy* a = float_c_array(obj);
      const bool ok = a != nullptr && (batched ? has_shape(a, {B, H}) : has_shape(a, {H}));
      return ok ? reinterpret_cast<const float*>(a->data) : nullptr;
    };
    fastrnn::ForwardArgs a;
    py::object h_held, c_held;  // a list's items may change while the GIL is released
    if (!state_obj.is_none()) {
      PyObject* h = state_obj.ptr();
      if (cfg.cell == CellKind::kLstm) {
        PyObject* pair = state_obj.ptr();
        const bool two = (PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) == 2) ||
                         (PyList_CheckExact(pair) && PyList_GET_SIZE(pair) == 2);
        if (!two) return py::none();
        h = PySequence_Fast_GET_ITEM(pair, 0);
        c_held = py::reinterpret_borrow<py::object>(PySequence_Fast_GET_ITEM(pair, 1));
        if ((a.c0 = state_of(c_held.ptr())) == nullptr) return py::none();
      }
      h_held = py::reinterpret_borrow<py::object>(h);
      if ((a.h0 = state_of(h)) == nullptr) return py::none();
    }
    thread_cap_check(num_threads, "num_threads");
    const int threads = num_threads > 0 ? num_threads : fastrnn::threads_get();
    check_step_sizes(B, threads);
    const auto out = [&] { return batched ? new_float_array({B, H}) : new_float_array({H}); };
    // y is h'; the driver writes the final state apart, into h_n.
    py::array h_new = out(), h_n = out();
    py::object c_new = py::none();
    a.x = reinterpret_cast<const float*>(x->data);
    a.T = 1;
    a.B = B;
    a.y = static_cast<float*>(h_new.mutable_data());
    a.h_n = static_cast<float*>(h_n.mutable_data());
    if (cfg.cell == CellKind::kLstm) {
      py::array c = out();
      a.c_n = static_cast<float*>(c.mutable_data());
      c_new = std::move(c);
    }
    a.num_threads = threads;
    a.host_openmp = host_openmp;
    {
      py::gil_scoped_release release;
      fastrnn::rnn_forward(model_, a);
    }
    if (cfg.cell == CellKind::kLstm) return py::make_tuple(h_new, c_new);
    return std::move(h_new);
  }

  // The plan of a call of T steps and `batch` rows with at most `threads` threads (0: the
  // process budget), as the driver would make it alone on the machine (a busy pool may
  // give the call fewer threads; it then plans again for those).
  py::dict plan(int64_t batch, int64_t T, int threads) const {
    if (batch < 1 || batch > kMaxBatch)
      throw py::value_error("batch must be in [1, " + std::to_string(kMaxBatch) + "], got " +
                            std::to_string(batch));
    if (T < 1) throw py::value_error("T must be >= 1, got " + std::to_string(T));
    thread_cap_check(threads, "threads");
    const fastrnn::ForwardPlan p = plan_of(batch, T, threads);
    py::dict d;
    d["B"] = p.B;
    d["T"] = p.T;
    d["threads"] = p.threads;
    d["schedule"] = fastrnn::schedule_name(p.schedule);
    d["split"] = p.threads == 1                                ? "none"
                 : p.schedule == fastrnn::Schedule::kWavefront ? "layers"
                 : p.batch_split                               ? "batch"
                                                               : "panels";
    d["panel_threads"] = p.panel_threads;
    d["chunk"] = p.chunk;
    d["span"] = p.span;
    d["wave_chunk"] = p.wave_chunk;
    d["inline_projection"] = p.inline_projection;
    d["many_rows"] = p.many_rows;
    d["far_weights"] = p.far_weights;
    d["widen"] = p.widen;
    d["ahead"] = p.ahead;
    py::dict ws;
    ws["gx"] = py::make_tuple(p.gx[0], p.gx[1]);
    ws["h"] = p.h;
    ws["c"] = p.c;
    ws["r"] = p.r;
    ws["seq"] = py::make_tuple(p.seq[0], p.seq[1]);
    ws["wide"] = p.wide;
    const int LD = model_.cfg.num_layers * model_.cfg.num_directions;
    ws["total"] = p.workspace_floats(LD);
    d["workspace_floats"] = ws;
    return d;
  }

 private:
  // The packed weights model_pack would allocate, bounded before packing: sizes that pass
  // int_in_range can still multiply past 64 bits over 4096 layers, and padding to whole
  // panels enlarges small layers (×64 for an RNN with H=1).
  static void check_packed_size(const fastrnn::RnnConfig& cfg) {
    const int64_t H = cfg.hidden_size, P = cfg.proj_size;
    const int64_t floats = fastrnn::model_packed_floats(cfg);
    const bool ok = floats >= 0 && floats <= kMaxPackedFloats;
    if (!ok)
      throw py::value_error("model too large: input_size=" + std::to_string(cfg.input_size) +
                            ", hidden_size=" + std::to_string(H) + ", proj_size=" +
                            std::to_string(P) + ", num_layers=" + std::to_string(cfg.num_layers) +
                            ", bidirectional=" + (cfg.num_directions == 2 ? "True" : "False") +
                            " would pack to more than 2^35 weights (128 GiB)");
  }

  // Every array and workspace a call of T steps and B rows allocates, before any of them is.
  // The cell variants (python/fastrnn/_modules.py _core_variant): None for torch's cells,
  // else a dict with reverse, linear_before_reset, input_forget, clip and activations (per
  // direction, the cell's slots as (name, alpha, beta)); peepholes come with the weights.
  static void variant_parse(const py::object& obj, fastrnn::RnnConfig& cfg) {
    for (auto& slots : cfg.act) {
      const bool lstm = cfg.cell == CellKind::kLstm;
      slots[0].kind = cfg.cell == CellKind::kRnnTanh   ? fastrnn::ActKind::kTanh
                      : cfg.cell == CellKind::kRnnRelu ? fastrnn::ActKind::kRelu
                                                       : fastrnn::ActKind::kSigmoid;
      slots[1].kind = fastrnn::ActKind::kTanh;
      slots[2].kind = lstm ? fastrnn::ActKind::kTanh : fastrnn::ActKind::kSigmoid;
    }
    if (obj.is_none()) return;
    const py::dict d = obj.cast<py::dict>();
    cfg.variant = true;
    cfg.reverse = d["reverse"].cast<bool>();
    cfg.linear_before_reset = d["linear_before_reset"].cast<bool>();
    cfg.input_forget = d["input_forget"].cast<bool>();
    cfg.peepholes = d["peepholes"].cast<bool>();
    cfg.clip = d["clip"].cast<float>();
    if (!(cfg.clip >= 0.0f)) throw py::value_error("clip must be >= 0");
    if (cfg.reverse && cfg.num_directions != 1)
      throw py::value_error("reverse needs a unidirectional model");
    if (!cfg.linear_before_reset && cfg.cell != CellKind::kGru)
      throw py::value_error("linear_before_reset=False is a GRU option");
    if ((cfg.input_forget || cfg.peepholes) && (cfg.cell != CellKind::kLstm || cfg.proj_size))
      throw py::value_error("input_forget and peepholes are options of an LSTM without projection");
    static const std::pair<const char*, fastrnn::ActKind> kNames[] = {
        {"Sigmoid", fastrnn::ActKind::kSigmoid},
        {"Tanh", fastrnn::ActKind::kTanh},
        {"Relu", fastrnn::ActKind::kRelu},
        {"HardSigmoid", fastrnn::ActKind::kHardSigmoid},
        {"LeakyRelu", fastrnn::ActKind::kLeakyRelu},
        {"ThresholdedRelu", fastrnn::ActKind::kThresholdedRelu},
        {"ScaledTanh", fastrnn::ActKind::kScaledTanh},
        {"Affine", fastrnn::ActKind::kAffine},
        {"Elu", fastrnn::ActKind::kElu},
        {"Softsign", fastrnn::ActKind::kSoftsign},
        {"Softplus", fastrnn::ActKind::kSoftplus},
    };
    const py::list dirs = d["activations"].cast<py::list>();
    const size_t slots = static_cast<size_t>(cfg.cell == CellKind::kLstm  ? 3
                                             : cfg.cell == CellKind::kGru ? 2
                                                                          : 1);
    if (dirs.size() != static_cast<size_t>(cfg.num_directions))
      throw py::value_error("activations must hold one list per direction");
    for (size_t dir = 0; dir < dirs.size(); ++dir) {
      const py::list acts = dirs[dir].cast<py::list>();
      if (acts.size() != slots)
        throw py::value_error("activations must hold " + std::to_string(slots) +
                              " entries per direction, got " + std::to_string(acts.size()));
      for (size_t i = 0; i < slots; ++i) {
        const py::tuple a = py::tuple(acts[i]);
        const std::string name = a[0].cast<std::string>();
        bool found = false;
        for (const auto& [n, kind] : kNames)
          if (name == n) {
            cfg.act[dir][i].kind = kind;
            found = true;
          }
        if (!found) throw py::value_error("unknown activation " + name);
        cfg.act[dir][i].alpha = a[1].cast<float>();
        cfg.act[dir][i].beta = a[2].cast<float>();
      }
    }
  }

  fastrnn::ForwardPlan plan_of(int64_t B, int64_t T, int threads) const {
    return fastrnn::forward_plan(model_, B, T, threads > 0 ? threads : fastrnn::threads_get(),
                                 fastrnn::kernels_for(model_.int8_narrow), fastrnn::blocking_get());
  }

  // The sizes of one time step of B rows, checked once for each B and thread budget in a
  // row (a stream's steps, a cell's calls).
  void check_step_sizes(int64_t B, int threads) {
    const int64_t key = B * (int64_t{1} << 20) + threads;
    if (step_checked_.load(std::memory_order_relaxed) != key) {
      check_call_sizes(1, B, 0);
      step_checked_.store(key, std::memory_order_relaxed);
    }
  }

  void check_call_sizes(int64_t T, int64_t B, int threads) const {
    const fastrnn::RnnConfig& cfg = model_.cfg;
    const std::string args = "x with T=" + std::to_string(T) + ", B=" + std::to_string(B);
    if (B > kMaxBatch)
      throw py::value_error(args + ": the batch must be at most " + std::to_string(kMaxBatch) +
                            " rows");
    const int64_t LD = int64_t{cfg.num_layers} * cfg.num_directions;
    const int64_t D_H_out = int64_t{cfg.num_directions} * cfg.h_out();
    check_array_size(args, "y", {{"T", T}, {"B", B}, {"D·H_out", D_H_out}});
    check_array_size(args, "h_n", {{"L·D", LD}, {"B", B}, {"H_out", cfg.h_out()}});
    check_array_size(args, "c_n", {{"L·D", LD}, {"B", B}, {"H", cfg.hidden_size}});
    // The driver's workspace, from its plan: at the call's thread cap, and at 1 thread (a
    // busy pool may give the call fewer threads; fewer threads only grow the G_x chunk,
    // whose largest size is the 1-thread plan's; a bf16 copy does not depend on them).
    const int LD32 = static_cast<int>(LD);
    size_t floats = 0;
    try {
      floats = std::max(plan_of(B, T, threads).workspace_floats(LD32),
                        plan_of(B, T, 1).workspace_floats(LD32));
    } catch (const std::length_error&) {
      floats = SIZE_MAX;
    }
    if (floats > static_cast<size_t>(kMaxArrayFloats))
      throw py::value_error(args + ": the workspace would need more than 2^45 floats");
  }

  fastrnn::RnnModel model_;
  // The (rows, thread budget) whose step sizes check_call_sizes passed last (see check_step_sizes).
  mutable std::atomic<int64_t> step_checked_{-1};
};

// A cache size override from Python (bytes), or the detected size for None.
size_t cache_size_or(const std::optional<py::int_>& value, const char* name, size_t detected) {
  if (!value) return detected;
  return static_cast<size_t>(
      int_in_range(*value, name, fastrnn::kMinCacheBytes, fastrnn::kMaxCacheBytes));
}

// The caches in use; shared_by 0 (not known) becomes None.
py::dict caches_dict(const fastrnn::CpuCaches& c) {
  const auto count = [](int n) { return n > 0 ? py::object(py::int_(n)) : py::object(py::none()); };
  py::dict d;
  d["l1d"] = c.l1d;
  d["l2"] = c.l2;
  d["l3"] = c.l3;
  d["l1d_shared_by"] = count(c.l1d_shared_by);
  d["l2_shared_by"] = count(c.l2_shared_by);
  d["l3_shared_by"] = count(c.l3_shared_by);
  d["l3_near"] = c.l3_near;
  d["source"] = c.source;
  return d;
}

py::array_t<float> map_activation(const FloatArray& x, bool sigmoid) {
  FloatArray y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const auto& k = fastrnn::kernels();
  (sigmoid ? k.sigmoid : k.tanh)(x.data(), y.mutable_data(), static_cast<size_t>(x.size()));
  return y;
}

// Stream.step as a compiled callable (python/fastrnn/_stream.py puts one on each stream),
// without the Python method and pybind11's dispatch: bench/ab.py on a Sapphire Rapids-class
// Xeon, stream_lstm_256 and stream_gru_256 at 1 and 2 threads, 0.90-0.97x the time per step
// (all 6 rounds faster, each dtype); an 8-unit LSTM's step 0.77x (698 -> 536 ns). It holds the
// stream's model, [h, spare] list, c (or None), batch and a Python callable for anything but one
// positional argument that the core takes as it is (other dtypes, layouts, keywords, a model
// without weights): that converts or explains, as Stream.step did. The model's core is read at
// every call (load_state_dict replaces it) and held for the call's length; the last one's Model is
// kept to skip pybind11's cast.
struct Stepper {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* model;
  PyObject* h;
  PyObject* c;
  PyObject* slow;
  PyObject* core;  // the last core seen (a strong reference), null before the first call
  Model* core_model;
  int64_t batch;
};

PyObject* stepper_core_name() {
  static PyObject* name = PyUnicode_InternFromString("_core");
  return name;
}

PyObject* stepper_vectorcall(PyObject* self_obj, PyObject* const* args, size_t nargsf,
                             PyObject* kwnames) {
  auto* self = reinterpret_cast<Stepper*>(self_obj);
  if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != nullptr)
    return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
  PyObject* core_ptr = PyObject_GetAttr(self->model, stepper_core_name());
  if (core_ptr == nullptr) return nullptr;
  const auto core = py::reinterpret_steal<py::object>(core_ptr);  // held for the call
  try {
    if (core.ptr() != self->core) {
      if (core.is_none() || !py::isinstance<Model>(core))
        return PyObject_Vectorcall(self->slow, args, nargsf, nullptr);
      Model* m = core.cast<Model*>();
      Py_XSETREF(self->core, core.inc_ref().ptr());
      self->core_model = m;
    }
    py::object y = self->core_model->step(args[0], self->h, self->c, self->batch);
    if (y.is_none()) return PyObject_Vectorcall(self->slow, args, nargsf, nullptr);
    return y.release().ptr();
  } catch (...) {
    py::detail::try_translate_exceptions();
    return nullptr;
  }
}

// Its references, for the collector: it and its stream's method make a cycle.
std::array<PyObject**, 5> stepper_refs(Stepper* s) {
  return {&s->model, &s->h, &s->c, &s->slow, &s->core};
}

int stepper_traverse(PyObject* self_obj, visitproc visit, void* arg) {
  for (PyObject** ref : stepper_refs(reinterpret_cast<Stepper*>(self_obj))) Py_VISIT(*ref);
  return 0;
}

int stepper_clear(PyObject* self_obj) {
  for (PyObject** ref : stepper_refs(reinterpret_cast<Stepper*>(self_obj))) Py_CLEAR(*ref);
  reinterpret_cast<Stepper*>(self_obj)->core_model = nullptr;
  return 0;
}

void stepper_dealloc(PyObject* self_obj) {
  PyObject_GC_UnTrack(self_obj);
  stepper_clear(self_obj);
  PyObject_GC_Del(self_obj);
}

PyTypeObject* stepper_type() {
  static PyTypeObject* type = [] {
    static PyTypeObject t{};
    Py_SET_REFCNT(reinterpret_cast<PyObject*>(&t), 1);  // as PyVarObject_HEAD_INIT
    t.tp_name = "fastrnn._core.Stepper";
    t.tp_basicsize = sizeof(Stepper);
    t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL;
    t.tp_doc = "One step of a stream: call with x_t (see fastrnn.Stream.step).";
    t.tp_vectorcall_offset = offsetof(Stepper, vectorcall);
    t.tp_call = PyVectorcall_Call;
    t.tp_traverse = stepper_traverse;
    t.tp_clear = stepper_clear;
    t.tp_dealloc = stepper_dealloc;
    if (PyType_Ready(&t) < 0) throw py::error_already_set();
    return &t;
  }();
  return type;
}

py::object make_stepper(const py::object& model, const py::list& h, const py::object& c,
                        int64_t batch, const py::object& slow) {
  if (!PyCallable_Check(slow.ptr())) throw py::type_error("slow must be callable");
  Stepper* s = PyObject_GC_New(Stepper, stepper_type());
  if (s == nullptr) throw py::error_already_set();
  s->vectorcall = stepper_vectorcall;
  s->model = model.inc_ref().ptr();
  s->h = h.inc_ref().ptr();
  s->c = c.inc_ref().ptr();
  s->slow = slow.inc_ref().ptr();
  s->core = nullptr;
  s->core_model = nullptr;
  s->batch = batch;
  PyObject_GC_Track(reinterpret_cast<PyObject*>(s));
  return py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(s));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastrnn compiled core (private): packing, kernels, the forward driver";

  // The boundary's limits (core/limits.h), for the Python layer's own checks.
  py::dict limits;
  limits["max_features"] = fastrnn::kMaxFeatures;
  limits["max_layers"] = fastrnn::kMaxLayers;
  limits["max_parameters"] = fastrnn::kMaxParameters;
  limits["max_batch"] = fastrnn::kMaxBatch;
  limits["max_packed_floats"] = fastrnn::kMaxPackedFloats;
  limits["max_reduced_features"] = fastrnn::kMaxReducedFeatures;
  limits["max_array_floats"] = fastrnn::kMaxArrayFloats;
  limits["max_threads"] = fastrnn::threads_max();  // one call's thread cap
  m.attr("LIMITS") = limits;

  py::class_<Model>(m, "Model")
      .def(
          py::init<const std::string&, const py::int_&, const py::int_&, const py::int_&, bool,
                   const py::int_&, bool, const py::list&, const py::object&, const std::string&>(),
          py::arg("mode"), py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"),
          py::arg("bidirectional"), py::arg("proj_size"), py::arg("bias"), py::arg("weights"),
          py::arg("variant") = py::none(), py::arg("dtype") = "float32")
      .def("forward", &Model::forward, py::arg("x"), py::arg("h0"), py::arg("c0"),
           py::arg("lengths"), py::arg("num_threads") = 0, py::arg("host_openmp") = false)
      .def("step", &Model::step, py::arg("x"), py::arg("h"), py::arg("c"), py::arg("batch"))
      .def("cell", &Model::cell, py::arg("x"), py::arg("state"), py::arg("num_threads") = 0,
           py::arg("host_openmp") = false)
      .def("plan", &Model::plan, py::arg("batch"), py::arg("T"), py::arg("threads") = 0);
  // A stream's step (see Stepper): Stepper(model, [h, spare], c or None, batch, slow).
  m.def("stepper", &make_stepper, py::arg("model"), py::arg("h"), py::arg("c"), py::arg("batch"),
        py::arg("slow"));

  m.def("set_num_threads", [](const py::int_& n) {
    fastrnn::threads_set(static_cast<int>(int_in_range(n, "num_threads", 1, max_threads())));
  });
  m.def("get_num_threads", &fastrnn::threads_get);
  m.def("hardware_threads", &fastrnn::threads_hardware);
  m.def("threads_policy", [] {
    const fastrnn::ThreadsPolicy p = fastrnn::threads_policy();
    py::dict d;
    d["budget"] = p.budget;
    d["source"] = p.source;
    d["affinity_cpus"] = p.affinity_cpus;
    d["cgroup_cpus"] = p.cgroup_cpus > 0 ? py::object(py::float_(p.cgroup_cpus)) : py::none();
    d["cpus"] = p.cpus;
    d["ignored"] = p.ignored;
    d["backoff"] = fastrnn::threads_backoff_enabled();
    return d;
  });
  // Private, for tests: the quota read from fake /proc/self files.
  m.def("cgroup_cpu_quota", [](const std::string& proc_self) {
    const double q = fastrnn::cgroup_cpu_quota(proc_self);
    return q > 0 ? py::object(py::float_(q)) : py::none();
  });
  // The host program's OpenMP runtime that calls with host_openmp=True run their teams on
  // (fastrnn.accelerate attaches torch's); "" if none.
  m.def("host_openmp_attach", &fastrnn::host_openmp_attach, py::arg("hint") = "");
  m.def("host_openmp", &fastrnn::host_openmp_path);
  // Private, for tests: every host region counts as the wrong size (the fallback).
  m.def("host_openmp_test_mismatch", &fastrnn::host_openmp_test_mismatch, py::arg("on"));
  m.def("thread_pool", [] {
    const fastrnn::ThreadPoolState s = fastrnn::thread_pool_state();
    py::dict d;
    d["cores"] = s.cores;
    d["free"] = s.free;
    d["budget"] = s.budget;
    d["team_free"] = s.team_free;
    d["callers"] = s.callers;
    d["queued"] = s.queued;
    d["runners"] = s.runners;
    d["workers"] = s.workers;
    d["queued_calls"] = s.queued_calls;
    d["sleeps"] = s.sleeps;
    d["host_teams"] = s.host_teams;
    d["retracted"] = s.retracted;
    d["moved"] = s.moved;
    return d;
  });
  m.def("threads_guard", [] {
    const fastrnn::ThreadsGuardState g = fastrnn::threads_guard_state();
    py::dict d;
    d["backing_off"] = g.backing_off;
    d["contended_in_row"] = g.contended_in_row;
    d["backoff_len"] = g.backoff_len;
    return d;
  });
  m.def("isa", [] { return std::string(fastrnn::kernels().isa); });
  // Whether reduced kernels use AMX tiles (None: just ask; False / True: switch off / on
  // where the CPU has them). int8: the same sums either way (tests compare the two).
  m.def(
      "amx",
      [](std::optional<bool> on) {
        if (on) fastrnn::amx_allow(*on);
        return fastrnn::amx_enabled(fastrnn::WeightType::kInt8) ||
               fastrnn::amx_enabled(fastrnn::WeightType::kBf16);
      },
      py::arg("on") = py::none());
  // For tests: the row count of the AMX tile configuration the calling thread holds loaded
  // (0: none; every call releases it at its end, KernelTable::end_call).
  m.def("amx_tile_rows", [] { return fastrnn::amx_tile_rows(); });
  // Whether bf16 weights take bf16 dot products for every row on the avx512bf16 table (AMX
  // tiles, or VDPBF16PS where it outruns the FMAs). None: just ask; False / True: switch the
  // VDPBF16PS rows off / on where the CPU's are fast (AMX follows amx()).
  m.def(
      "bf16_dot_rows",
      [](std::optional<bool> on) {
        if (on) fastrnn::bf16_dot_allow(*on);
        return fastrnn::bf16_dot_rows();
      },
      py::arg("on") = py::none());
  // Whether int8 models with 7-bit weights (every weight in [−63, 63]) take the table's
  // narrow sibling (AVX2: VPMADDUBSW without VPSIGNB). None: just ask; False / True: switch it
  // off / on where the table has one. The same sums either way (tests compare the two).
  m.def(
      "int8_narrow",
      [](std::optional<bool> on) {
        if (on) fastrnn::int8_narrow_allow(*on);
        return fastrnn::int8_narrow_enabled();
      },
      py::arg("on") = py::none());
  // Whether int8 models packed from now on take the table's split panels (AVX2: 16-column
  // sub-panels for its 4 × 16 tile). None: just ask; False / True: switch it off / on where
  // the table has them. Every table reads both layouts, to the same sums (tests compare).
  m.def(
      "int8_split",
      [](std::optional<bool> on) {
        if (on) fastrnn::int8_split_allow(*on);
        return fastrnn::int8_split_enabled();
      },
      py::arg("on") = py::none());
  // Whether float32 models packed from now on take W_ih and W_hh in the table's 16-column
  // strips (AVX2). None: just ask; False / True: switch it off / on where the table has
  // them. The kernels read both layouts to the same bits (tests compare).
  m.def(
      "f32_strips",
      [](std::optional<bool> on) {
        if (on) fastrnn::f32_strips_allow(*on);
        return fastrnn::f32_strips_enabled();
      },
      py::arg("on") = py::none());
  m.def("isa_available", &fastrnn::kernels_available);
  // Private, for tests: None = the CPU's own choice, False = never, True = wherever the
  // size rules allow (see forward_plan_ahead_override).
  m.def("ahead_override", [](std::optional<bool> on) {
    fastrnn::forward_plan_ahead_override(on ? static_cast<int>(*on) : -1);
  });
  m.def("kernel_tiles", [] {
    const fastrnn::KernelTable& k = fastrnn::kernels();
    const auto shape = [](int rows, int cols) {
      return std::to_string(rows) + "x" + std::to_string(cols);
    };
    py::dict d;
    d["vector_floats"] = k.tiles.vector_floats;
    d["gemm"] = shape(k.tiles.gemm_rows, k.tiles.gemm_cols);
    d["step_batch1"] = shape(1, k.tiles.step1_cols);
    d["step"] = shape(k.tiles.step_rows, k.tiles.step_cols);
    d["split_k"] = k.tiles.split_k;
    d["ahead_rows"] = k.ahead_rows;
    return d;
  });
  m.def("set_isa", [](const std::string& name) {
    try {
      return fastrnn::kernels_select(name);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  });
  m.def("cpu_features", [] {
    const fastrnn::CpuFeatures& f = fastrnn::cpu_features();
    py::dict d;
    d["avx2"] = f.avx2;
    d["avx512"] = f.avx512;
    d["avx512_bf16"] = f.avx512_bf16;
    d["avx512_vnni"] = f.avx512_vnni;
    d["avx512_half_width"] = f.avx512_half_width;
    d["bf16_dot_fast"] = f.bf16_dot_fast;
    d["amx_int8"] = f.amx_int8;
    d["amx_bf16"] = f.amx_bf16;
    d["neon"] = f.neon;
    return d;
  });
  m.def("cpu_caches", [] { return caches_dict(fastrnn::blocking_caches()); });
  // Sets the caches the blocking derives from: the detected ones with the given levels
  // replaced (bytes; None: detected). The sizes replaced report their source as "env".
  // l3_near (see CpuCaches) is for tests that stand in for another CPU.
  m.def(
      "cpu_caches_override",
      [](std::optional<py::int_> l1d, std::optional<py::int_> l2, std::optional<py::int_> l3,
         std::optional<bool> l3_near) {
        fastrnn::CpuCaches c = fastrnn::cpu_caches_detect();
        c.l1d = cache_size_or(l1d, "FASTRNN_CACHE_L1D", c.l1d);
        c.l2 = cache_size_or(l2, "FASTRNN_CACHE_L2", c.l2);
        c.l3 = cache_size_or(l3, "FASTRNN_CACHE_L3", c.l3);
        if (l3_near) c.l3_near = *l3_near;
        if (l1d && l2 && l3)
          c.source = "env";
        else if (l1d || l2 || l3)
          c.source += "+env";
        fastrnn::blocking_select(c);
      },
      py::arg("l1d") = py::none(), py::arg("l2") = py::none(), py::arg("l3") = py::none(),
      py::arg("l3_near") = py::none());
  m.def("blocking", [] {
    const fastrnn::Blocking b = fastrnn::blocking_get();
    py::dict d;
    d["gx_chunk_floats"] = b.gx_chunk_floats;
    d["span_floats"] = b.span_floats;
    d["large_w_ih_floats"] = b.large_w_ih_floats;
    d["ahead_max_weight_bytes"] = b.ahead_max_weight_bytes;
    d["near_cache"] = b.near_is_private ? "l2" : "l3";
    return d;
  });
  m.def("sigmoid", [](const FloatArray& x) { return map_activation(x, true); });
  m.def("tanh", [](const FloatArray& x) { return map_activation(x, false); });
}

// For threadpoolctl (fastrnn/_threadpoolctl.py): it finds this library among the loaded ones
// and calls these through ctypes, so they are plain C with default visibility (pybind11
// builds everything else hidden).
extern "C" {
__attribute__((visibility("default"))) int fastrnn_get_num_threads() {
  return fastrnn::threads_get();
}
__attribute__((visibility("default"))) void fastrnn_set_num_threads(int n) {
  fastrnn::threads_set(std::clamp(n, 1, fastrnn::threads_max()));
}
__attribute__((visibility("default"))) const char* fastrnn_get_version() { return FASTRNN_VERSION; }
}
