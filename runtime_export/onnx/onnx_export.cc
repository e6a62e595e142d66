#include "runtime_export/onnx/onnx_export.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <stdexcept>

#include "data/atomic_file.h"
#include "graph/trace.h"
#include "runtime_export/onnx/layout.h"
#include "runtime_export/onnx/onnx_tensor.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/eltwise.h"
#include "tensor/ops/fused.h"
#include "tensor/ops/pool.h"
#include "tensor/ops/shape_ops.h"

namespace kiln::runtime_export {
namespace {

using namespace onnx_io;
using graph::Graph;
using graph::kBatch;
using graph::Node;

constexpr int kIrVersion = 8;
constexpr int kOpset = 17;

void set_attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void set_attr(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
void set_attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
std::vector<int64_t> to_int64(const Perm& p) { return std::vector<int64_t>(p.begin(), p.end()); }

void set_type(onnx::ValueInfoProto* vi, const std::string& name, const graph::Value& v) {
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx_elem_type(v.dtype));
  auto* shape = tt->mutable_shape();
  for (int64_t d : v.shape) {
    if (d == kBatch) {
      shape->add_dim()->set_dim_param("batch");
    } else {
      shape->add_dim()->set_dim_value(d);
    }
  }
}

// Walks the graph's nodes once, writing each as ONNX nodes. Every Kiln value has a name in
// Kiln's layout (native) and, for rank-4 values, possibly one in NCHW; either is made from the
// other with a Transpose the first time an op asks for it.
class Exporter {
 public:
  Exporter(const Graph& g, onnx::GraphProto* gp) : g_(g), gp_(gp) {
    const size_t n = g.values.size();
    name_.resize(n);
    native_.resize(n);
    nchw_.resize(n);
    const_.assign(n, nullptr);
    for (const graph::Constant& c : g.constants) const_[c.value] = &c;
    for (size_t v = 0; v < n; ++v) name_[v] = fresh(g.values[v].name.empty() ? "value_" + std::to_string(v) : g.values[v].name);
  }

  void run() {
    for (const graph::Value& v : g_.values) {
      if (v.dtype == DType::bf16) bf16_ = true;
    }
    for (int i : g_.inputs) {
      native_[i] = name_[i];
      set_type(gp_->add_input(), name_[i], g_.values[i]);
    }
    for (size_t k = 0; k < g_.nodes.size(); ++k) {
      node_ = static_cast<int>(k);
      write(g_.nodes[k]);
    }
    node_ = -1;
    for (int o : g_.outputs) {
      std::string name = native(o);
      if (const_[o] || std::find(g_.inputs.begin(), g_.inputs.end(), o) != g_.inputs.end()) {
        name = fresh(name_[o] + "_out");
        emit("Identity", {native(o)}, {name});
      }
      set_type(gp_->add_output(), name, g_.values[o]);
    }
  }

  bool wrote_bf16() const { return bf16_; }

 private:
  const Graph& g_;
  onnx::GraphProto* gp_;
  std::vector<std::string> name_, native_, nchw_;
  std::vector<const graph::Constant*> const_;
  std::set<std::string> taken_;
  std::map<std::pair<int, std::string>, std::string> forms_;  // (constant value, form) -> initializer
  int node_ = -1;
  int emitted_ = 0;
  bool bf16_ = false;

  const graph::Value& val(int v) const { return g_.values[v]; }
  int rank(int v) const { return static_cast<int>(val(v).shape.size()); }

  std::string fresh(const std::string& base) {
    std::string n = base;
    for (int k = 1; !taken_.insert(n).second; ++k) n = base + "_" + std::to_string(k);
    return n;
  }

  [[noreturn]] void fail(const std::string& msg) const {
    const Node& n = g_.nodes[node_];
    std::string out = n.outputs.empty() ? std::string("?") : val(n.outputs[0]).name;
    throw std::invalid_argument("export_onnx: node " + std::to_string(node_) + " (op '" + n.call.op() + "', output '" +
                                out + "'): " + msg);
  }

  onnx::NodeProto* emit(const std::string& op, const std::vector<std::string>& in, const std::vector<std::string>& out) {
    auto* n = gp_->add_node();
    n->set_op_type(op);
    n->set_name("n" + std::to_string(emitted_++) + "_" + op);
    for (const auto& s : in) n->add_input(s);
    for (const auto& s : out) n->add_output(s);
    return n;
  }
  std::string tmp(const std::string& hint) { return fresh(hint + "_" + std::to_string(emitted_)); }

  std::string initializer(const Tensor& t, const std::string& base) {
    std::string name = fresh(base);
    to_tensor_proto(t, name, gp_->add_initializer());
    return name;
  }
  std::string scalar(float v) { return initializer(Tensor::scalar(v), "c" + std::to_string(emitted_)); }
  std::string scalar_in(DType dt, double v) {
    Tensor t = Tensor::empty({}, dt == DType::bf16 ? DType::f32 : dt);
    store_element(t.raw_data(), t.dtype(), 0, v);
    return initializer(t, "c" + std::to_string(emitted_));
  }
  std::string int64s(const std::vector<int64_t>& v, bool is_scalar = false) {
    std::string name = fresh("i" + std::to_string(emitted_));
    *gp_->add_initializer() = int64_tensor_proto(v, name, is_scalar);
    return name;
  }

  // A constant as an initializer in one of the forms the ops take: "native", "nchw" (rank 4),
  // "bcast_nchw" (a lower-rank operand broadcast against an NCHW value: leading 1s, then
  // permuted) or "oihw" (conv weights). Variables keep their name in the first form written.
  std::string const_form(int v, const std::string& form) {
    auto key = std::make_pair(v, form);
    auto it = forms_.find(key);
    if (it != forms_.end()) return it->second;
    Tensor t = const_[v]->tensor;
    if (form == "nchw" || form == "bcast_nchw") {
      Shape s = t.shape();
      if (s.size() > 4) fail("constant '" + val(v).name + "' of rank " + std::to_string(s.size()) + " in an NCHW op");
      s.insert(s.begin(), 4 - s.size(), 1);
      t = permuted_copy(reshape(t, s), kToNchw);
    } else if (form == "oihw") {
      if (t.ndim() != 4) fail("conv weights '" + val(v).name + "' are " + t.describe() + ", expected HWIO");
      t = permuted_copy(t, kHwioToOihw);
    }
    std::string name;
    if (forms_.empty() || std::none_of(forms_.begin(), forms_.end(), [&](const auto& f) { return f.first.first == v; })) {
      name = name_[v];
      to_tensor_proto(t, name, gp_->add_initializer());
      if (const_[v]->is_variable) gp_->mutable_initializer(gp_->initializer_size() - 1)->set_doc_string("kiln variable");
    } else {
      name = initializer(t, name_[v] + "_" + form);
    }
    forms_[key] = name;
    return name;
  }

  std::string native(int v) {
    if (const_[v]) return const_form(v, "native");
    if (native_[v].empty()) {
      if (nchw_[v].empty()) fail("value '" + val(v).name + "' is used before it is computed");
      native_[v] = name_[v];
      set_attr(emit("Transpose", {nchw_[v]}, {native_[v]}), "perm", to_int64(kToNhwc));
    }
    return native_[v];
  }
  std::string nchw(int v) {
    if (const_[v]) return const_form(v, rank(v) == 4 ? "nchw" : "bcast_nchw");
    if (rank(v) != 4) fail("value '" + val(v).name + "' of rank " + std::to_string(rank(v)) + " in an NCHW op");
    if (nchw_[v].empty()) {
      nchw_[v] = fresh(name_[v] + "_nchw");
      set_attr(emit("Transpose", {native(v)}, {nchw_[v]}), "perm", to_int64(kToNchw));
    }
    return nchw_[v];
  }
  std::string in(int v, bool as_nchw) { return as_nchw ? nchw(v) : native(v); }
  // The name an op writes its output under, in the chosen layout.
  std::string out(int v, bool as_nchw) {
    if (as_nchw) return nchw_[v] = fresh(name_[v] + "_nchw");
    return native_[v] = name_[v];
  }

  // NCHW when the output is rank 4, every computed input is rank 4 and one is already NCHW, and
  // every constant can be laid out to broadcast the same way: values stay NCHW as long as they can.
  bool stays_nchw(const std::vector<int>& ins, int output) const {
    if (rank(output) != 4) return false;
    bool any = false;
    for (int i : ins) {
      if (const_[i]) {
        if (rank(i) > 4) return false;
        continue;
      }
      if (rank(i) != 4) return false;
      any = any || !nchw_[i].empty();
    }
    return any;
  }

  int64_t axis_of(int64_t axis, int r) const {
    if (axis < -r || axis >= r) const_cast<Exporter*>(this)->fail("axis " + std::to_string(axis) + " for rank " + std::to_string(r));
    return axis < 0 ? axis + r : axis;
  }
  // Where Kiln axis a of a rank-4 NHWC value sits in its NCHW form.
  static int64_t nchw_axis(int64_t a) { return kToNhwc[a]; }

  void write(const Node& n);
  void write_eltwise(EltwiseKind kind, float alpha, float beta, const std::string& x, const std::string& y);
  void write_epilogue(Epilogue e, const std::string& x, const std::string& y);
  void write_conv(const Node& n, bool fused);
  void write_pool(const Node& n);
  void write_linear(const Node& n, bool fused);
  void write_binary(const Node& n);
  void write_reduce(const Node& n);
  void write_cast(const Node& n);
};

void Exporter::write_eltwise(EltwiseKind kind, float alpha, float beta, const std::string& x, const std::string& y) {
  switch (kind) {
    case EltwiseKind::relu:
      if (alpha == 0.f) {
        emit("Relu", {x}, {y});
      } else {
        set_attr(emit("LeakyRelu", {x}, {y}), "alpha", alpha);
      }
      return;
    case EltwiseKind::gelu_erf: {
      // x * 0.5 * (1 + erf(x / sqrt(2))), the order ONNX's own Gelu function uses.
      std::string a = tmp("gelu_div"), b = tmp("gelu_erf"), c = tmp("gelu_add"), d = tmp("gelu_mul");
      emit("Div", {x, scalar(static_cast<float>(M_SQRT2))}, {a});
      emit("Erf", {a}, {b});
      emit("Add", {b, scalar(1.f)}, {c});
      emit("Mul", {x, c}, {d});
      emit("Mul", {d, scalar(0.5f)}, {y});
      return;
    }
    case EltwiseKind::gelu_tanh: {
      // 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))
      std::string x2 = tmp("gelu_x2"), x3 = tmp("gelu_x3"), cx3 = tmp("gelu_cx3"), s = tmp("gelu_sum"),
                  in = tmp("gelu_in"), t = tmp("gelu_tanh"), t1 = tmp("gelu_t1"), hx = tmp("gelu_hx");
      emit("Mul", {x, x}, {x2});
      emit("Mul", {x2, x}, {x3});
      emit("Mul", {x3, scalar(0.044715f)}, {cx3});
      emit("Add", {x, cx3}, {s});
      emit("Mul", {s, scalar(static_cast<float>(std::sqrt(2.0 / M_PI)))}, {in});
      emit("Tanh", {in}, {t});
      emit("Add", {t, scalar(1.f)}, {t1});
      emit("Mul", {x, scalar(0.5f)}, {hx});
      emit("Mul", {hx, t1}, {y});
      return;
    }
    case EltwiseKind::sigmoid: emit("Sigmoid", {x}, {y}); return;
    case EltwiseKind::tanh: emit("Tanh", {x}, {y}); return;
    case EltwiseKind::exp: emit("Exp", {x}, {y}); return;
    case EltwiseKind::log: emit("Log", {x}, {y}); return;
    case EltwiseKind::sqrt: emit("Sqrt", {x}, {y}); return;
    case EltwiseKind::square: emit("Mul", {x, x}, {y}); return;
    case EltwiseKind::abs: emit("Abs", {x}, {y}); return;
    case EltwiseKind::elu: set_attr(emit("Elu", {x}, {y}), "alpha", alpha); return;
    case EltwiseKind::softplus: emit("Softplus", {x}, {y}); return;
    case EltwiseKind::swish: {
      std::string ax = tmp("swish_ax"), s = tmp("swish_sigmoid");
      emit("Mul", {x, scalar(alpha)}, {ax});
      emit("Sigmoid", {ax}, {s});
      emit("Mul", {x, s}, {y});
      return;
    }
    case EltwiseKind::affine: {
      std::string ax = tmp("affine_mul");
      emit("Mul", {x, scalar(alpha)}, {ax});
      emit("Add", {ax, scalar(beta)}, {y});
      return;
    }
    case EltwiseKind::clip: emit("Clip", {x, scalar(alpha), scalar(beta)}, {y}); return;
    case EltwiseKind::pow: {
      std::string p = tmp("pow");
      emit("Pow", {x, scalar(beta)}, {p});
      emit("Mul", {p, scalar(alpha)}, {y});
      return;
    }
  }
  fail("eltwise kind has no ONNX form");
}

void Exporter::write_epilogue(Epilogue e, const std::string& x, const std::string& y) {
  switch (e) {
    case Epilogue::none: emit("Identity", {x}, {y}); return;
    case Epilogue::relu: emit("Relu", {x}, {y}); return;
    case Epilogue::gelu_erf: write_eltwise(EltwiseKind::gelu_erf, 0.f, 0.f, x, y); return;
    case Epilogue::gelu_tanh: write_eltwise(EltwiseKind::gelu_tanh, 0.f, 0.f, x, y); return;
  }
}

void Exporter::write_conv(const Node& n, bool fused) {
  Conv2dAttrs conv = conv2d_options_from(ops::Attrs("conv2d")
                                             .set("strides", n.call.get_ints("strides"))
                                             .set("padding", n.call.get_string("padding"))
                                             .set("dilation", n.call.get_ints("dilation"))
                                             .set("groups", ops::AttrValue(n.call.get_int("groups")))
                                             .set("activation", fused ? "none" : n.call.get_string("activation")));
  Epilogue act = fused ? epilogue_from_name(n.call.get_string("activation"))
                       : (conv.activation == FusedActivation::relu ? Epilogue::relu : Epilogue::none);
  const int x = n.inputs[0], w = n.inputs[1];
  const Shape& xs = val(x).shape;
  const Shape& ws = val(w).shape;
  if (xs.size() != 4 || ws.size() != 4) fail("conv2d wants NHWC input and HWIO weights, got " + shape_str(xs) + ", " + shape_str(ws));
  if (xs[1] < 0 || xs[2] < 0) fail("conv2d input " + shape_str(xs) + " has a symbolic spatial size");
  std::string shapes = shape_str(xs) + " * " + shape_str(ws);
  SpatialPlan ph = plan_spatial(xs[1], ws[0], conv.strides[0], conv.dilation[0], conv.padding, "conv2d", shapes);
  SpatialPlan pw = plan_spatial(xs[2], ws[1], conv.strides[1], conv.dilation[1], conv.padding, "conv2d", shapes);
  std::string weights = const_[w] ? const_form(w, "oihw") : tmp(name_[w] + "_oihw");
  if (!const_[w]) set_attr(emit("Transpose", {native(w)}, {weights}), "perm", to_int64(kHwioToOihw));
  std::vector<std::string> ins{nchw(x), weights};
  if (n.inputs.size() > 2) ins.push_back(native(n.inputs[2]));
  const bool residual = n.inputs.size() > 3;
  const int y = n.outputs[0];
  std::string conv_out = residual || act != Epilogue::none ? tmp(name_[y] + "_conv") : out(y, true);
  auto* c = emit("Conv", ins, {conv_out});
  set_attr(c, "kernel_shape", std::vector<int64_t>{ws[0], ws[1]});
  set_attr(c, "strides", std::vector<int64_t>{conv.strides[0], conv.strides[1]});
  set_attr(c, "dilations", std::vector<int64_t>{conv.dilation[0], conv.dilation[1]});
  set_attr(c, "pads", std::vector<int64_t>{ph.pad_before, pw.pad_before, ph.pad_after, pw.pad_after});
  set_attr(c, "group", conv.groups);
  std::string last = conv_out;
  if (residual) {
    std::string sum = act != Epilogue::none ? tmp(name_[y] + "_sum") : out(y, true);
    emit("Add", {conv_out, nchw(n.inputs[3])}, {sum});
    last = sum;
  }
  if (act != Epilogue::none) write_epilogue(act, last, out(y, true));
}

void Exporter::write_pool(const Node& n) {
  Pool2dAttrs p = pool2d_options_from(n.call);
  const int x = n.inputs[0];
  const Shape& xs = val(x).shape;
  if (xs.size() != 4 || xs[1] < 0 || xs[2] < 0) fail("pooling wants a static NHWC input, got " + shape_str(xs));
  int64_t sh = p.strides[0] ? p.strides[0] : p.pool_size[0], sw = p.strides[1] ? p.strides[1] : p.pool_size[1];
  SpatialPlan ph = plan_spatial(xs[1], p.pool_size[0], sh, 1, p.padding, n.call.op().c_str(), shape_str(xs));
  SpatialPlan pw = plan_spatial(xs[2], p.pool_size[1], sw, 1, p.padding, n.call.op().c_str(), shape_str(xs));
  const bool max = n.call.op() == "max_pool2d";
  auto* node = emit(max ? "MaxPool" : "AveragePool", {nchw(x)}, {out(n.outputs[0], true)});
  set_attr(node, "kernel_shape", std::vector<int64_t>{p.pool_size[0], p.pool_size[1]});
  set_attr(node, "strides", std::vector<int64_t>{sh, sw});
  set_attr(node, "pads", std::vector<int64_t>{ph.pad_before, pw.pad_before, ph.pad_after, pw.pad_after});
  if (!max) set_attr(node, "count_include_pad", int64_t{0});  // Keras averages over real cells only
}

void Exporter::write_linear(const Node& n, bool fused) {
  Epilogue act = fused ? epilogue_from_name(n.call.get_string("activation"))
                       : (fused_activation_from_name(n.call.get_string("activation")) == FusedActivation::relu
                              ? Epilogue::relu
                              : Epilogue::none);
  const int x = n.inputs[0], w = n.inputs[1], y = n.outputs[0];
  const bool bias = n.inputs.size() > 2, residual = n.inputs.size() > 3;
  if (rank(w) != 2) fail("linear weights must be [K, N], got " + shape_str(val(w).shape));
  const bool more = residual || act != Epilogue::none;
  std::string lin = more ? tmp(name_[y] + "_linear") : out(y, false);
  if (rank(x) == 2) {
    std::vector<std::string> ins{native(x), native(w)};
    if (bias) ins.push_back(native(n.inputs[2]));
    emit("Gemm", ins, {lin});
  } else if (bias) {
    std::string mm = tmp(name_[y] + "_matmul");
    emit("MatMul", {native(x), native(w)}, {mm});
    emit("Add", {mm, native(n.inputs[2])}, {lin});
  } else {
    emit("MatMul", {native(x), native(w)}, {lin});
  }
  std::string last = lin;
  if (residual) {
    std::string sum = act != Epilogue::none ? tmp(name_[y] + "_sum") : out(y, false);
    emit("Add", {lin, native(n.inputs[3])}, {sum});
    last = sum;
  }
  if (act != Epilogue::none) write_epilogue(act, last, out(y, false));
}

void Exporter::write_binary(const Node& n) {
  static const std::map<std::string, std::string> kOps = {
      {"add", "Add"}, {"sub", "Sub"}, {"mul", "Mul"}, {"div", "Div"}, {"maximum", "Max"}, {"minimum", "Min"},
      {"add_relu", "Add"}, {"equal", "Equal"}, {"greater", "Greater"}, {"greater_equal", "GreaterOrEqual"},
      {"less", "Less"}};
  const std::string& op = n.call.op();
  const int y = n.outputs[0];
  const bool as_nchw = stays_nchw(n.inputs, y);
  std::vector<std::string> ins{in(n.inputs[0], as_nchw), in(n.inputs[1], as_nchw)};
  if (op == "add_relu") {
    std::string s = tmp(name_[y] + "_sum");
    emit("Add", ins, {s});
    emit("Relu", {s}, {out(y, as_nchw)});
  } else if (op == "equal" || op == "greater" || op == "greater_equal" || op == "less") {
    std::string b = tmp(name_[y] + "_bool");
    emit(kOps.at(op), ins, {b});
    set_attr(emit("Cast", {b}, {out(y, as_nchw)}), "to", int64_t{onnx_elem_type(val(y).dtype)});  // Kiln gives 1/0 in a's dtype
  } else {
    emit(kOps.at(op), ins, {out(y, as_nchw)});
  }
}

void Exporter::write_reduce(const Node& n) {
  const int x = n.inputs[0], y = n.outputs[0], r = rank(x);
  const bool keep = n.call.get_int("keepdims") != 0;
  std::vector<int64_t> axes;
  for (int64_t a : n.call.get_ints("axes")) axes.push_back(axis_of(a, r));
  if (axes.empty()) {
    for (int a = 0; a < r; ++a) axes.push_back(a);
  }
  // NCHW in and out when the reduced value keeps its axis order in both layouts.
  bool as_nchw = r == 4 && !const_[x] && !nchw_[x].empty();
  if (as_nchw && !keep) {
    std::vector<int> kept;
    for (int i : kToNchw) {
      if (std::find(axes.begin(), axes.end(), i) == axes.end()) kept.push_back(i);
    }
    as_nchw = std::is_sorted(kept.begin(), kept.end());
  }
  std::vector<int64_t> onnx_axes;
  for (int64_t a : axes) onnx_axes.push_back(as_nchw ? nchw_axis(a) : a);
  std::sort(onnx_axes.begin(), onnx_axes.end());
  const std::string& op = n.call.op();
  std::string result = out(y, as_nchw && keep);
  onnx::NodeProto* node;
  if (op == "reduce_sum") {
    node = emit("ReduceSum", {in(x, as_nchw), int64s(onnx_axes)}, {result});  // axes are an input since opset 13
  } else {
    node = emit(op == "reduce_mean" ? "ReduceMean" : "ReduceMax", {in(x, as_nchw)}, {result});
    set_attr(node, "axes", onnx_axes);
  }
  set_attr(node, "keepdims", int64_t{keep});
}

void Exporter::write_cast(const Node& n) {
  const int x = n.inputs[0], y = n.outputs[0];
  DType from = val(x).dtype, to = dtype_from_name(n.call.get_string("dtype"));
  const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
  std::string src = in(x, as_nchw), dst = out(y, as_nchw);
  if (is_floating(from) && is_floating(to)) {  // f32 <-> bf16: both are fp32 in the export
    emit("Identity", {src}, {dst});
    return;
  }
  // Kiln rounds to nearest even and saturates (a oneDNN reorder); ONNX's Cast truncates.
  auto range = [](DType d) -> std::pair<double, double> {
    switch (d) {
      case DType::u8: return {0, 255};
      case DType::s8: return {-128, 127};
      case DType::s32: return {-2147483648.0, 2147483520.0};  // the largest float below 2^31
      default: return {-3.4e38, 3.4e38};
    }
  };
  std::string cur = src;
  if (is_floating(from)) {
    std::string r = tmp(name_[y] + "_round");
    emit("Round", {cur}, {r});
    cur = r;
  }
  auto [lo, hi] = range(to);
  auto [flo, fhi] = range(from);
  if (lo > flo || hi < fhi) {
    std::string c = tmp(name_[y] + "_clip");
    emit("Clip", {cur, scalar_in(from, lo), scalar_in(from, hi)}, {c});
    cur = c;
  }
  set_attr(emit("Cast", {cur}, {dst}), "to", int64_t{onnx_elem_type(to)});
}

void Exporter::write(const Node& n) {
  const std::string& op = n.call.op();
  if (n.outputs.size() != 1) fail("expected one output, got " + std::to_string(n.outputs.size()));
  const int y = n.outputs[0];
  if (op == "conv2d" || op == "fused_conv2d") return write_conv(n, op == "fused_conv2d");
  if (op == "max_pool2d" || op == "avg_pool2d") return write_pool(n);
  if (op == "linear" || op == "fused_linear") return write_linear(n, op == "fused_linear");
  if (op == "reduce_sum" || op == "reduce_mean" || op == "reduce_max") return write_reduce(n);
  if (op == "cast") return write_cast(n);
  if (op == "add" || op == "sub" || op == "mul" || op == "div" || op == "maximum" || op == "minimum" || op == "add_relu" ||
      op == "equal" || op == "greater" || op == "greater_equal" || op == "less") {
    return write_binary(n);
  }
  if (op == "matmul") {
    emit("MatMul", {native(n.inputs[0]), native(n.inputs[1])}, {out(y, false)});
    return;
  }
  if (op == "batch_norm_inference") {
    const int x = n.inputs[0];
    if (rank(x) != 4 && rank(x) != 2) fail("batch_norm_inference of rank " + std::to_string(rank(x)) + " (ONNX wants the channel at axis 1)");
    const bool as_nchw = rank(x) == 4, relu = n.call.get_int("relu") != 0;
    std::string bn = relu ? tmp(name_[y] + "_bn") : out(y, as_nchw);
    auto* node = emit("BatchNormalization", {in(x, as_nchw), native(n.inputs[1]), native(n.inputs[2]), native(n.inputs[3]), native(n.inputs[4])}, {bn});
    set_attr(node, "epsilon", static_cast<float>(n.call.get_float("epsilon")));
    if (relu) emit("Relu", {bn}, {out(y, as_nchw)});
    return;
  }
  if (op == "softmax" || op == "log_softmax") {
    const int x = n.inputs[0];
    const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
    int64_t axis = axis_of(n.call.get_int("axis"), rank(x));
    auto* node = emit(op == "softmax" ? "Softmax" : "LogSoftmax", {in(x, as_nchw)}, {out(y, as_nchw)});
    set_attr(node, "axis", as_nchw ? nchw_axis(axis) : axis);
    return;
  }
  if (op == "argmax") {
    const int x = n.inputs[0];
    std::string idx = tmp(name_[y] + "_int64");
    auto* node = emit("ArgMax", {native(x)}, {idx});
    set_attr(node, "axis", axis_of(n.call.get_int("axis"), rank(x)));
    set_attr(node, "keepdims", int64_t{0});
    set_attr(emit("Cast", {idx}, {out(y, false)}), "to", int64_t{onnx::TensorProto::INT32});
    return;
  }
  if (op == "reshape") {
    emit("Reshape", {native(n.inputs[0]), int64s(n.call.get_ints("shape"))}, {out(y, false)});  // 0 copies, as in Kiln
    return;
  }
  if (op == "permute") {
    const int x = n.inputs[0];
    const auto& perm = n.call.get_ints("perm");
    if (static_cast<int>(perm.size()) != rank(x)) fail("perm " + shape_str(perm) + " for rank " + std::to_string(rank(x)));
    Perm p;
    for (int64_t a : perm) p.push_back(static_cast<int>(axis_of(a, rank(x))));
    check_perm(p, rank(x), "permute");
    // From the NCHW form when that is all there is: one Transpose instead of two.
    const bool from_nchw = !const_[x] && rank(x) == 4 && native_[x].empty() && !nchw_[x].empty();
    if (from_nchw) p = compose(kToNhwc, p);
    set_attr(emit("Transpose", {in(x, from_nchw)}, {out(y, false)}), "perm", to_int64(p));
    return;
  }
  if (op == "slice") {
    const int x = n.inputs[0];
    const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
    int64_t axis = axis_of(n.call.get_int("axis"), rank(x));
    emit("Slice",
         {in(x, as_nchw), int64s({n.call.get_int("start")}), int64s({n.call.get_int("end")}),
          int64s({as_nchw ? nchw_axis(axis) : axis}), int64s({n.call.get_int("step")})},
         {out(y, as_nchw)});
    return;
  }
  if (op == "contiguous" || op == "identity") {
    const int x = n.inputs[0];
    const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
    emit("Identity", {in(x, as_nchw)}, {out(y, as_nchw)});
    return;
  }
  if (op == "broadcast_to") {
    const auto& shape = n.call.get_ints("shape");
    for (int64_t d : shape) {
      if (d < 0) fail("broadcast_to shape has a negative dimension");
    }
    emit("Expand", {native(n.inputs[0]), int64s(shape)}, {out(y, false)});
    return;
  }
  if (op == "concat") {
    bool as_nchw = stays_nchw(n.inputs, y);
    int64_t axis = axis_of(n.call.get_int("axis"), rank(y));
    std::vector<std::string> ins;
    for (int i : n.inputs) ins.push_back(in(i, as_nchw));
    set_attr(emit("Concat", ins, {out(y, as_nchw)}), "axis", as_nchw ? nchw_axis(axis) : axis);
    return;
  }
  for (EltwiseKind kind : all_eltwise_kinds()) {
    if (op != eltwise_name(kind)) continue;
    const int x = n.inputs[0];
    const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
    write_eltwise(kind, static_cast<float>(n.call.get_float("alpha")), static_cast<float>(n.call.get_float("beta")),
                  in(x, as_nchw), out(y, as_nchw));
    return;
  }
  if (op == "batch_norm") fail("batch_norm with batch statistics is a training op; trace the model for inference");
  fail("op '" + op + "' has no ONNX mapping in Kiln's exporter");
}

}  // namespace

std::string serialize_onnx(const Graph& graph, const OnnxExportOptions& options) {
  if (options.opset != kOpset) {
    throw std::invalid_argument("export_onnx: opset " + std::to_string(options.opset) + " is not supported; Kiln writes opset " +
                                std::to_string(kOpset));
  }
  graph.validate();
  onnx::ModelProto model;
  model.set_ir_version(kIrVersion);
  model.set_producer_name(options.producer_name);
  model.set_producer_version(options.producer_version);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  auto* gp = model.mutable_graph();
  gp->set_name(options.graph_name);
  Exporter exporter(graph, gp);
  exporter.run();
  if (exporter.wrote_bf16()) {
    std::fprintf(stderr, "export_onnx: warning: bf16 values are written as fp32 (ONNX Runtime takes no bf16 inputs)\n");
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw std::runtime_error("export_onnx: protobuf serialization failed");
  return bytes;
}

void export_onnx(const Graph& graph, const std::string& path, const OnnxExportOptions& options) {
  data::write_file_atomically(path, serialize_onnx(graph, options));
}

void export_onnx(nn::Model& model, const std::vector<Tensor>& sample_inputs, const std::string& path,
                 const OnnxExportOptions& options) {
  export_onnx(graph::trace(model, sample_inputs), path, options);
}

}  // namespace kiln::runtime_export
