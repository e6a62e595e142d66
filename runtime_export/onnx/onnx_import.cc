#include "runtime_export/onnx/onnx_import.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>

#include "data/atomic_file.h"
#include "runtime_export/onnx/layout.h"
#include "runtime_export/onnx/onnx_tensor.h"
#include "tensor/allocator.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/shape_ops.h"

namespace kiln::runtime_export {
namespace {

using namespace onnx_io;
using graph::Graph;
using graph::kBatch;

constexpr int kOpset = 17;
constexpr int kMaxIrVersion = 8;
constexpr int kMaxRank = 8;
// Bounds on window arithmetic (Keras's padding formulas multiply these), far above any real
// model, so that hostile attributes cannot overflow int64.
constexpr int64_t kMaxWindow = int64_t{1} << 24;
constexpr int64_t kMaxSpatial = int64_t{1} << 31;

// An ONNX value as a Kiln value seen through a permutation: ONNX axis i is Kiln axis perm[i].
// Initializers stay unmaterialised (value -1) until an op needs them, so that a Transpose of
// weights folds into the constant.
struct Ref {
  int value = -1;
  std::string init;
  Perm perm;
};

// Attributes of one node: each handler takes what it understands; anything left is rejected.
class NodeAttrs {
 public:
  NodeAttrs(const onnx::NodeProto& n, const std::string& where) : where_(where) {
    for (const auto& a : n.attribute()) {
      if (!map_.emplace(a.name(), &a).second) throw std::invalid_argument(where + " repeats attribute '" + a.name() + "'");
    }
  }
  bool has(const std::string& k) const { return map_.count(k) != 0; }
  int64_t get_int(const std::string& k, int64_t def) { return take(k, onnx::AttributeProto::INT) ? last_->i() : def; }
  float get_float(const std::string& k, float def) { return take(k, onnx::AttributeProto::FLOAT) ? last_->f() : def; }
  std::string get_string(const std::string& k, const std::string& def) {
    return take(k, onnx::AttributeProto::STRING) ? last_->s() : def;
  }
  std::vector<int64_t> get_ints(const std::string& k, std::vector<int64_t> def) {
    if (!take(k, onnx::AttributeProto::INTS)) return def;
    return std::vector<int64_t>(last_->ints().begin(), last_->ints().end());
  }
  void done() const {
    for (const auto& [k, a] : map_) {
      if (!used_.count(k)) throw std::invalid_argument(where_ + " has attribute '" + k + "', which Kiln does not support");
    }
  }

 private:
  bool take(const std::string& k, onnx::AttributeProto::AttributeType type) {
    auto it = map_.find(k);
    if (it == map_.end()) return false;
    if (it->second->type() != type) {
      throw std::invalid_argument(where_ + ": attribute '" + k + "' has type " + std::to_string(it->second->type()) +
                                  ", expected " + std::to_string(type));
    }
    used_.insert(k);
    last_ = it->second;
    return true;
  }
  std::string where_;
  std::map<std::string, const onnx::AttributeProto*> map_;
  std::set<std::string> used_;
  const onnx::AttributeProto* last_ = nullptr;
};

std::string ints_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// NumPy broadcasting where kBatch only meets itself or 1.
Shape broadcast(const Shape& a, const Shape& b, const std::string& where) {
  Shape out(std::max(a.size(), b.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t x = i < out.size() - a.size() ? 1 : a[i - (out.size() - a.size())];
    int64_t y = i < out.size() - b.size() ? 1 : b[i - (out.size() - b.size())];
    if (x == y || y == 1) {
      out[i] = x;
    } else if (x == 1) {
      out[i] = y;
    } else {
      throw std::invalid_argument(where + ": shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
    }
  }
  return out;
}

class Importer {
 public:
  Importer(const onnx::GraphProto& gp) : gp_(gp) {}
  Graph run();

 private:
  const onnx::GraphProto& gp_;
  Graph g_;
  std::map<std::string, Ref> refs_;
  std::map<std::string, const onnx::TensorProto*> inits_;
  std::map<std::string, Tensor> init_tensors_;
  std::map<std::pair<std::string, Perm>, int> folded_;
  std::map<std::pair<int, Perm>, int> permuted_;
  std::set<std::string> names_;
  std::string where_;
  int index_ = 0;

  [[noreturn]] void fail(const std::string& msg) const { throw std::invalid_argument(where_ + ": " + msg); }

  std::string fresh(const std::string& base) {
    std::string n = base.empty() ? "value" : base;
    for (int k = 1; !names_.insert(n).second; ++k) n = base + "_" + std::to_string(k);
    return n;
  }
  // Shapes by value: callers pass shapes of values in g_.values, which this grows.
  int add_value(const std::string& name, Shape shape, DType dtype) {
    Shape probe = shape;
    for (int64_t& d : probe) {
      if (d == kBatch) d = 1;
      if (d < 0) fail("value '" + name + "' has shape " + shape_str(shape));
    }
    if (shape.size() > kMaxRank) fail("value '" + name + "' has rank " + std::to_string(shape.size()));
    checked_nbytes(probe, dtype_size(dtype), where_ + ": value '" + name + "'");
    g_.values.push_back({fresh(name), std::move(shape), dtype});
    return static_cast<int>(g_.values.size()) - 1;
  }
  int add_node(const ops::Attrs& call, const std::vector<int>& inputs, const std::string& name, Shape shape,
               DType dtype) {
    int out = add_value(name, std::move(shape), dtype);
    g_.nodes.push_back({call, inputs, {out}});
    return out;
  }

  const Tensor& init_tensor(const std::string& name) {
    auto it = init_tensors_.find(name);
    if (it != init_tensors_.end()) return it->second;
    return init_tensors_[name] = from_tensor_proto(*inits_.at(name));
  }
  Ref ref(const std::string& name) {
    if (name.empty()) fail("an omitted optional input where Kiln needs one");
    auto it = refs_.find(name);
    if (it != refs_.end()) return it->second;
    auto in = inits_.find(name);
    if (in == inits_.end()) fail("input '" + name + "' is not computed before this node, nor an input or initializer");
    if (in->second->data_type() == onnx::TensorProto::INT64) fail("INT64 initializer '" + name + "' used as data");
    int rank = static_cast<int>(init_tensor(name).ndim());
    return Ref{-1, name, identity_perm(rank)};
  }
  Shape shape_of(const Ref& r) {
    const Shape& s = r.value >= 0 ? g_.values[r.value].shape : init_tensor(r.init).shape();
    return permuted(s, r.perm);
  }
  DType dtype_of(const Ref& r) { return r.value >= 0 ? g_.values[r.value].dtype : init_tensor(r.init).dtype(); }
  int rank_of(const Ref& r) { return static_cast<int>(r.perm.size()); }

  // The Kiln value holding the ONNX value permuted by `extra` (empty: as is). Constants are
  // permuted once here; computed values get one permute node per distinct permutation.
  int materialize(const Ref& r, const Perm& extra = {}) {
    Perm p = extra.empty() ? r.perm : compose(r.perm, extra);
    if (!extra.empty()) check_perm(extra, rank_of(r), where_ + ": permutation");
    if (r.value < 0) {
      auto key = std::make_pair(r.init, p);
      auto it = folded_.find(key);
      if (it != folded_.end()) return it->second;
      Tensor t = init_tensor(r.init);
      if (!is_identity(p)) t = permuted_copy(t, p);
      int v = add_value(r.init, t.shape(), t.dtype());
      g_.constants.push_back({v, inits_.at(r.init)->doc_string() == "kiln variable", t});
      return folded_[key] = v;
    }
    if (is_identity(p)) return r.value;
    auto key = std::make_pair(r.value, p);
    auto it = permuted_.find(key);
    if (it != permuted_.end()) return it->second;
    const graph::Value& v = g_.values[r.value];
    std::string base = v.name + "_perm";
    int out = add_node(ops::Attrs("permute").set("perm", std::vector<int64_t>(p.begin(), p.end())), {r.value}, base,
                       permuted(v.shape, p), v.dtype);
    return permuted_[key] = out;
  }
  // A computed result: ONNX sees Kiln value v through perm.
  void define(const std::string& name, int v, const Perm& perm) {
    if (name.empty()) fail("an output without a name");
    if (refs_.count(name) || inits_.count(name)) fail("value '" + name + "' is defined twice");
    refs_[name] = Ref{v, "", perm};
  }
  // Kiln's name for a value ONNX calls `onnx_name` but which Kiln holds in NHWC.
  static std::string nhwc_name(const std::string& onnx_name) {
    const std::string suffix = "_nchw";
    if (onnx_name.size() > suffix.size() && onnx_name.compare(onnx_name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return onnx_name.substr(0, onnx_name.size() - suffix.size());
    }
    return onnx_name;
  }

  std::vector<int64_t> int64_input(const std::string& name, const char* what) {
    auto it = inits_.find(name);
    if (it == inits_.end()) fail(std::string(what) + " '" + name + "' must be an INT64 initializer");
    return int64_values(*it->second);
  }
  float scalar_input(const std::string& name, const char* what) {
    auto it = inits_.find(name);
    if (it == inits_.end()) fail(std::string(what) + " '" + name + "' must be a scalar initializer");
    const Tensor& t = init_tensor(name);
    if (t.numel() != 1) fail(std::string(what) + " '" + name + "' must hold one value, got " + t.describe());
    return static_cast<float>(load_element(t.raw_data(), t.dtype(), 0));
  }
  bool is_scalar_const(const std::string& name, float value) {
    if (!inits_.count(name) || inits_.at(name)->data_type() != onnx::TensorProto::FLOAT) return false;
    const Tensor& t = init_tensor(name);
    return t.numel() == 1 && std::fabs(t.to_vector()[0] - value) <= 1e-6f * std::max(1.f, std::fabs(value));
  }
  int64_t axis(int64_t a, int rank) {
    if (a < -rank || a >= rank) fail("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
    return a < 0 ? a + rank : a;
  }
  void want_inputs(const onnx::NodeProto& n, int lo, int hi) {
    if (n.input_size() < lo || n.input_size() > hi) {
      fail("takes " + std::to_string(lo) + (lo == hi ? "" : " to " + std::to_string(hi)) + " inputs, got " +
           std::to_string(n.input_size()));
    }
    if (n.output_size() != 1) fail("has " + std::to_string(n.output_size()) + " outputs, expected 1");
  }
  const onnx::NodeProto* next(int k) const {
    return index_ + k < gp_.node_size() ? &gp_.node(index_ + k) : nullptr;
  }
  static bool is(const onnx::NodeProto* n, const char* op, std::initializer_list<std::string> ins) {
    if (!n || n->op_type() != op || n->output_size() != 1 || n->input_size() != static_cast<int>(ins.size()) ||
        n->attribute_size() != 0 || !n->domain().empty()) {
      return false;
    }
    int i = 0;
    for (const auto& s : ins) {
      if (!s.empty() && n->input(i) != s) return false;
      ++i;
    }
    return true;
  }

  void unary(const onnx::NodeProto& n, const ops::Attrs& call) {
    Ref x = ref(n.input(0));
    if (!is_floating(dtype_of(x))) fail("input is " + std::string(dtype_name(dtype_of(x))) + ", expected FLOAT");
    int v = x.value >= 0 ? x.value : materialize(x, identity_perm(rank_of(x)));
    Perm perm = x.value >= 0 ? x.perm : identity_perm(rank_of(x));
    const graph::Value& in = g_.values[v];
    define(n.output(0), add_node(call, {v}, nhwc_name(n.output(0)), in.shape, in.dtype), perm);
  }
  ops::Attrs eltwise(const char* kind, float alpha = 0.f, float beta = 0.f) {
    ops::Attrs a(kind);
    a.set("alpha", alpha).set("beta", beta);
    return a;
  }
  std::string padding_of(const std::vector<int64_t>& pads, const Shape& nhwc, const Shape& kernel,
                         const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations) {
    if (pads.size() != 4) fail("pads " + ints_str(pads) + " should have 4 values");
    check_window(nhwc, kernel);
    if (std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; })) return "valid";
    SpatialPlan h = plan_spatial(nhwc[1], kernel[0], strides[0], dilations[0], Padding::same, "onnx", shape_str(nhwc));
    SpatialPlan w = plan_spatial(nhwc[2], kernel[1], strides[1], dilations[1], Padding::same, "onnx", shape_str(nhwc));
    if (pads == std::vector<int64_t>{h.pad_before, w.pad_before, h.pad_after, w.pad_after}) return "same";
    fail("pads " + ints_str(pads) + " are neither 'valid' nor Keras 'same' padding for input " + shape_str(nhwc));
  }
  std::vector<int64_t> pair_attr(NodeAttrs& a, const char* name, std::vector<int64_t> def) {
    std::vector<int64_t> v = a.get_ints(name, def);
    if (v.size() != 2 || v[0] <= 0 || v[1] <= 0 || v[0] > kMaxWindow || v[1] > kMaxWindow) {
      fail(std::string(name) + " " + ints_str(v) + " should be two values in [1, " + std::to_string(kMaxWindow) + "]");
    }
    return v;
  }
  void check_window(const Shape& nhwc, const Shape& kernel) {
    if (nhwc[1] < 0 || nhwc[2] < 0 || nhwc[1] > kMaxSpatial || nhwc[2] > kMaxSpatial) {
      fail("spatial size of " + shape_str(nhwc) + " is symbolic or too large");
    }
    if (kernel[0] <= 0 || kernel[1] <= 0 || kernel[0] > kMaxWindow || kernel[1] > kMaxWindow) {
      fail("kernel " + shape_str(kernel) + " is empty or too large");
    }
  }
  Shape spatial_out(const Shape& nhwc, const Shape& kernel, const std::vector<int64_t>& strides,
                    const std::vector<int64_t>& dilations, const std::string& padding, int64_t channels) {
    Padding p = padding == "same" ? Padding::same : Padding::valid;
    check_window(nhwc, kernel);
    SpatialPlan h = plan_spatial(nhwc[1], kernel[0], strides[0], dilations[0], p, "onnx", shape_str(nhwc));
    SpatialPlan w = plan_spatial(nhwc[2], kernel[1], strides[1], dilations[1], p, "onnx", shape_str(nhwc));
    return {nhwc[0], h.out, w.out, channels};
  }

  void conv(const onnx::NodeProto& n, NodeAttrs& a);
  void pool(const onnx::NodeProto& n, NodeAttrs& a);
  void batch_norm(const onnx::NodeProto& n, NodeAttrs& a);
  void gemm(const onnx::NodeProto& n, NodeAttrs& a);
  void matmul(const onnx::NodeProto& n);
  void binary(const onnx::NodeProto& n, const std::string& kind, const std::string& output, DType out_dtype);
  void reduce(const onnx::NodeProto& n, NodeAttrs& a);
  void reshape(const onnx::NodeProto& n, NodeAttrs& a);
  void slice(const onnx::NodeProto& n);
  void concat(const onnx::NodeProto& n, NodeAttrs& a);
  int cast_node(const Ref& x, DType to, const std::string& output);
  // Patterns: each returns the number of nodes it consumed (0: not this pattern).
  int gelu_erf(const onnx::NodeProto& n);
  int gelu_tanh(const onnx::NodeProto& n);
  int compare_then_cast(const onnx::NodeProto& n);
  int argmax_then_cast(const onnx::NodeProto& n, NodeAttrs& a);
  int round_clip_cast(const onnx::NodeProto& n);
  int node(const onnx::NodeProto& n);
};

void Importer::conv(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 2, 3);
  Ref x = ref(n.input(0)), w = ref(n.input(1));
  if (rank_of(x) != 4 || rank_of(w) != 4) fail("Conv wants NCHW input and OIHW weights, got " + shape_str(shape_of(x)) + ", " + shape_str(shape_of(w)));
  if (a.get_string("auto_pad", "NOTSET") != "NOTSET") fail("auto_pad is not supported (Kiln writes explicit pads)");
  int xv = materialize(x, kToNhwc), wv = materialize(w, kOihwToHwio);
  const Shape xs = g_.values[xv].shape, ws = g_.values[wv].shape;  // NHWC, HWIO
  std::vector<int64_t> kernel = a.get_ints("kernel_shape", {ws[0], ws[1]});
  if (kernel != std::vector<int64_t>{ws[0], ws[1]}) fail("kernel_shape " + ints_str(kernel) + " does not match weights " + shape_str(ws));
  auto strides = pair_attr(a, "strides", {1, 1}), dil = pair_attr(a, "dilations", {1, 1});
  int64_t group = a.get_int("group", 1);
  if (group <= 0 || xs[3] % group != 0 || xs[3] / group != ws[2] || ws[3] % group != 0) {
    fail("group " + std::to_string(group) + " does not fit input " + shape_str(xs) + " and weights " + shape_str(ws));
  }
  std::string padding = padding_of(a.get_ints("pads", {0, 0, 0, 0}), xs, {ws[0], ws[1]}, strides, dil);
  a.done();
  std::vector<int> ins{xv, wv};
  if (n.input_size() == 3) {
    Ref b = ref(n.input(2));
    ins.push_back(materialize(b));
    if (shape_of(b) != Shape{ws[3]}) fail("bias " + shape_str(shape_of(b)) + " does not match " + std::to_string(ws[3]) + " filters");
  }
  for (int i : ins) {
    if (g_.values[i].dtype != DType::f32) fail("Conv input '" + g_.values[i].name + "' is not FLOAT");
  }
  ops::Attrs call("conv2d");
  call.set("strides", strides).set("padding", padding.c_str()).set("dilation", dil);
  call.set("groups", ops::AttrValue(group)).set("activation", "none");
  Shape out = spatial_out(xs, {ws[0], ws[1]}, strides, dil, padding, ws[3]);
  define(n.output(0), add_node(call, ins, nhwc_name(n.output(0)), out, DType::f32), kToNchw);
}

void Importer::pool(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 1, 1);
  Ref x = ref(n.input(0));
  if (rank_of(x) != 4) fail("pooling wants an NCHW input, got " + shape_str(shape_of(x)));
  const bool max = n.op_type() == "MaxPool";
  if (a.get_string("auto_pad", "NOTSET") != "NOTSET") fail("auto_pad is not supported");
  if (a.get_int("ceil_mode", 0) != 0) fail("ceil_mode is not supported");
  if (max && a.get_int("storage_order", 0) != 0) fail("storage_order is not supported");
  auto kernel = pair_attr(a, "kernel_shape", {0, 0});
  auto strides = pair_attr(a, "strides", {1, 1});
  if (max) pair_attr(a, "dilations", {1, 1}) == std::vector<int64_t>{1, 1} || (fail("dilated pooling is not supported"), 0);
  int xv = materialize(x, kToNhwc);
  const Shape xs = g_.values[xv].shape;
  std::string padding = padding_of(a.get_ints("pads", {0, 0, 0, 0}), xs, kernel, strides, {1, 1});
  if (!max && a.get_int("count_include_pad", 0) != 0 && padding != "valid") {
    fail("count_include_pad=1 with padding (Kiln averages over the real cells only)");
  }
  a.done();
  if (g_.values[xv].dtype != DType::f32) fail("pooling input is not FLOAT");
  ops::Attrs call(max ? "max_pool2d" : "avg_pool2d");
  call.set("pool_size", kernel).set("strides", strides).set("padding", padding.c_str());
  Shape out = spatial_out(xs, kernel, strides, {1, 1}, padding, xs[3]);
  define(n.output(0), add_node(call, {xv}, nhwc_name(n.output(0)), out, DType::f32), kToNchw);
}

void Importer::batch_norm(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 5, 5);
  Ref x = ref(n.input(0));
  const int r = rank_of(x);
  if (r != 4 && r != 2) fail("BatchNormalization of rank " + std::to_string(r) + " is not supported");
  float eps = a.get_float("epsilon", 1e-5f);
  a.get_float("momentum", 0.9f);  // training only
  if (a.get_int("training_mode", 0) != 0) fail("training_mode=1 is not supported");
  a.done();
  int xv = r == 4 ? materialize(x, kToNhwc) : materialize(x);
  const graph::Value in = g_.values[xv];  // a copy: materialize() below grows g_.values
  std::vector<int> ins{xv};
  for (int i = 1; i < 5; ++i) {
    Ref p = ref(n.input(i));
    if (shape_of(p) != Shape{in.shape.back()} || dtype_of(p) != DType::f32) {
      fail("parameter '" + n.input(i) + "' is " + shape_str(shape_of(p)) + ", expected FLOAT[" + std::to_string(in.shape.back()) + "]");
    }
    ins.push_back(materialize(p));
  }
  if (in.dtype != DType::f32) fail("BatchNormalization input is not FLOAT");
  ops::Attrs call("batch_norm_inference");
  call.set("epsilon", ops::AttrValue(double{eps})).set("relu", false);
  Shape s = in.shape;
  define(n.output(0), add_node(call, ins, nhwc_name(n.output(0)), s, in.dtype), r == 4 ? kToNchw : identity_perm(2));
}

void Importer::gemm(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 2, 3);
  if (a.get_float("alpha", 1.f) != 1.f || a.get_float("beta", 1.f) != 1.f || a.get_int("transA", 0) != 0 ||
      a.get_int("transB", 0) != 0) {
    fail("only Gemm with alpha=1, beta=1 and no transposes is supported");
  }
  a.done();
  int xv = materialize(ref(n.input(0))), wv = materialize(ref(n.input(1)));
  const Shape xs = g_.values[xv].shape, ws = g_.values[wv].shape;
  if (xs.size() != 2 || ws.size() != 2 || xs[1] != ws[0]) fail("Gemm of " + shape_str(xs) + " and " + shape_str(ws));
  std::vector<int> ins{xv, wv};
  if (n.input_size() == 3) {
    int bv = materialize(ref(n.input(2)));
    if (g_.values[bv].shape != Shape{ws[1]}) fail("Gemm bias " + shape_str(g_.values[bv].shape) + " is not [" + std::to_string(ws[1]) + "]");
    ins.push_back(bv);
  }
  for (int i : ins) {
    if (g_.values[i].dtype != DType::f32) fail("Gemm input '" + g_.values[i].name + "' is not FLOAT");
  }
  define(n.output(0), add_node(ops::Attrs("linear").set("activation", "none"), ins, n.output(0), {xs[0], ws[1]}, DType::f32),
         identity_perm(2));
}

void Importer::matmul(const onnx::NodeProto& n) {
  want_inputs(n, 2, 2);
  int av = materialize(ref(n.input(0))), bv = materialize(ref(n.input(1)));
  const graph::Value &a = g_.values[av], &b = g_.values[bv];
  if (a.shape.size() < 2 || b.shape.size() < 2 || a.shape.back() != b.shape[b.shape.size() - 2] || a.dtype != b.dtype ||
      !is_floating(a.dtype)) {
    fail("MatMul of " + std::string(dtype_name(a.dtype)) + shape_str(a.shape) + " and " + dtype_name(b.dtype) + shape_str(b.shape));
  }
  Shape batch = broadcast(Shape(a.shape.begin(), a.shape.end() - 2), Shape(b.shape.begin(), b.shape.end() - 2), where_);
  batch.push_back(a.shape[a.shape.size() - 2]);
  batch.push_back(b.shape.back());
  define(n.output(0), add_node(ops::Attrs("matmul"), {av, bv}, n.output(0), batch, a.dtype), identity_perm(batch.size()));
}

void Importer::binary(const onnx::NodeProto& n, const std::string& kind, const std::string& output, DType out_dtype) {
  Ref a = ref(n.input(0)), b = ref(n.input(1));
  // Computed operands seen through one permutation are combined as they are (broadcasting is
  // per axis); constants are laid out to match, with leading 1s for a lower rank.
  Perm p;
  for (const Ref* r : {&a, &b}) {
    if (r->value < 0 || is_identity(r->perm)) continue;
    if (!p.empty() && p != r->perm) p.clear();
    else p = r->perm;
  }
  if (!p.empty()) {
    for (Ref* r : {&a, &b}) {
      if (r->value >= 0 && r->perm != p) p.clear();
      if (r->value < 0 && rank_of(*r) > static_cast<int>(p.size())) p.clear();
    }
  }
  auto operand = [&](Ref& r) {
    if (p.empty()) return materialize(r);
    if (r.value < 0 && rank_of(r) < static_cast<int>(p.size())) {
      Shape s = init_tensor(r.init).shape();
      s.insert(s.begin(), p.size() - s.size(), 1);
      std::string padded = r.init + "_rank" + std::to_string(p.size());
      if (!init_tensors_.count(padded)) {
        init_tensors_[padded] = kiln::reshape(init_tensor(r.init), s).clone_detached();
        inits_[padded] = inits_.at(r.init);
      }
      r = Ref{-1, padded, identity_perm(static_cast<int>(p.size()))};
    }
    return materialize(r, inverse(p));
  };
  int av = operand(a), bv = operand(b);
  const graph::Value &x = g_.values[av], &y = g_.values[bv];
  if (x.dtype != y.dtype) fail(n.op_type() + " of " + dtype_name(x.dtype) + " and " + dtype_name(y.dtype));
  Shape s = broadcast(x.shape, y.shape, where_);
  Perm perm = p.empty() ? identity_perm(static_cast<int>(s.size())) : p;
  define(output, add_node(ops::Attrs(kind), {av, bv}, nhwc_name(output), s, out_dtype), perm);
}

void Importer::reduce(const onnx::NodeProto& n, NodeAttrs& a) {
  const bool sum = n.op_type() == "ReduceSum";
  want_inputs(n, 1, sum ? 2 : 1);
  Ref x = ref(n.input(0));
  const int r = rank_of(x);
  std::vector<int64_t> axes = sum ? (n.input_size() == 2 ? int64_input(n.input(1), "axes") : std::vector<int64_t>{})
                                  : a.get_ints("axes", {});
  const bool keep = a.get_int("keepdims", 1) != 0;
  if (sum && a.get_int("noop_with_empty_axes", 0) != 0) fail("noop_with_empty_axes is not supported");
  a.done();
  if (axes.empty()) {
    for (int i = 0; i < r; ++i) axes.push_back(i);
  }
  std::set<int64_t> onnx_axes;
  for (int64_t ax : axes) {
    if (!onnx_axes.insert(axis(ax, r)).second) fail("axes " + ints_str(axes) + " repeat an axis");
  }
  // keepdims leaves the axis order alone, so a permuted value stays permuted.
  int xv = keep ? x.value : -1;
  Perm perm = x.perm;
  if (xv < 0) {
    xv = materialize(x);
    perm = identity_perm(r);
  }
  std::vector<int64_t> kiln_axes;
  for (int64_t ax : onnx_axes) kiln_axes.push_back(perm[ax]);
  std::sort(kiln_axes.begin(), kiln_axes.end());
  const graph::Value& in = g_.values[xv];
  if (!is_floating(in.dtype)) fail("reduction of " + std::string(dtype_name(in.dtype)));
  Shape s;
  for (int i = 0; i < r; ++i) {
    bool reduced = std::find(kiln_axes.begin(), kiln_axes.end(), i) != kiln_axes.end();
    if (!reduced) s.push_back(in.shape[i]);
    else if (keep) s.push_back(1);
  }
  const char* kind = sum ? "reduce_sum" : n.op_type() == "ReduceMean" ? "reduce_mean" : "reduce_max";
  ops::Attrs call(kind);
  call.set("axes", kiln_axes).set("keepdims", keep);
  define(n.output(0), add_node(call, {xv}, nhwc_name(n.output(0)), s, in.dtype), keep ? perm : identity_perm(s.size()));
}

void Importer::reshape(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 2, 2);
  if (a.get_int("allowzero", 0) != 0) fail("allowzero=1 is not supported");
  a.done();
  int xv = materialize(ref(n.input(0)));
  std::vector<int64_t> target = int64_input(n.input(1), "shape");
  const graph::Value& in = g_.values[xv];
  if (target.size() > kMaxRank) fail("reshape to rank " + std::to_string(target.size()));
  // The batch must be carried by a 0 ("copy this dimension"), never folded into another one.
  Shape out(target.size());
  int infer = -1;
  int64_t known = 1, total = 1;
  int batch_in = 0, batch_out = 0;
  for (int64_t d : in.shape) {
    if (d == kBatch) ++batch_in;
    else total *= d;  // bounded: the value's shape was checked when it was made
  }
  for (size_t i = 0; i < target.size(); ++i) {
    int64_t d = target[i];
    if (d == 0) {
      if (i >= in.shape.size()) fail("reshape copies dimension " + std::to_string(i) + " of " + shape_str(in.shape));
      d = in.shape[i];
    } else if (d == -1) {
      if (infer >= 0) fail("reshape target " + ints_str(target) + " has two -1");
      infer = static_cast<int>(i);
      continue;
    } else if (d < 0) {
      fail("reshape target " + ints_str(target) + " has a negative dimension");
    }
    out[i] = d;
    if (d == kBatch) {
      ++batch_out;
    } else if (d != 0 && known > std::numeric_limits<int64_t>::max() / d) {
      fail("reshape target " + ints_str(target) + " overflows");
    } else {
      known *= d;
    }
  }
  if (batch_in != batch_out) fail("reshape to " + ints_str(target) + " does not keep the batch dimension of " + shape_str(in.shape));
  if (infer >= 0) {
    if (known == 0 || total % known != 0) fail("cannot reshape " + shape_str(in.shape) + " to " + ints_str(target));
    out[infer] = total / known;
  } else if (known != total) {
    fail("cannot reshape " + shape_str(in.shape) + " to " + ints_str(target));
  }
  define(n.output(0), add_node(ops::Attrs("reshape").set("shape", target), {xv}, n.output(0), out, in.dtype),
         identity_perm(out.size()));
}

void Importer::slice(const onnx::NodeProto& n) {
  want_inputs(n, 3, 5);
  Ref x = ref(n.input(0));
  const int r = rank_of(x);
  std::vector<int64_t> starts = int64_input(n.input(1), "starts"), ends = int64_input(n.input(2), "ends");
  std::vector<int64_t> axes, steps;
  if (n.input_size() > 3) axes = int64_input(n.input(3), "axes");
  else for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (n.input_size() > 4) steps = int64_input(n.input(4), "steps");
  else steps.assign(starts.size(), 1);
  if (starts.size() != ends.size() || axes.size() != starts.size() || steps.size() != starts.size() || starts.empty()) {
    fail("Slice starts/ends/axes/steps differ in length");
  }
  if (x.value < 0) x = Ref{materialize(x), "", identity_perm(r)};
  int v = x.value;
  for (size_t k = 0; k < starts.size(); ++k) {
    int64_t a = x.perm[axis(axes[k], r)];
    const graph::Value& in = g_.values[v];
    int64_t dim = in.shape[a];
    if (dim == kBatch) fail("Slice along the batch dimension is not supported");
    if (steps[k] <= 0) fail("Slice step " + std::to_string(steps[k]) + " (Kiln slices forward only)");
    auto clamp = [&](int64_t i) { return std::clamp<int64_t>(i < 0 ? (i < -dim ? 0 : i + dim) : i, 0, dim); };
    int64_t s = clamp(starts[k]), e = std::max(clamp(ends[k]), s);
    int64_t step = std::min(steps[k], std::max<int64_t>(dim, 1));  // the same elements, no overflow
    ops::Attrs call("slice");
    call.set("axis", ops::AttrValue(a)).set("start", ops::AttrValue(s)).set("end", ops::AttrValue(e));
    call.set("step", ops::AttrValue(step));
    Shape shape = in.shape;
    shape[a] = e == s ? 0 : (e - s - 1) / step + 1;
    v = add_node(call, {v}, nhwc_name(n.output(0)), shape, in.dtype);
  }
  define(n.output(0), v, x.perm);
}

void Importer::concat(const onnx::NodeProto& n, NodeAttrs& a) {
  if (n.input_size() < 1 || n.output_size() != 1) fail("Concat takes one or more inputs and one output");
  int64_t ax = a.get_int("axis", std::numeric_limits<int64_t>::min());
  if (ax == std::numeric_limits<int64_t>::min()) fail("Concat needs an axis");
  a.done();
  std::vector<Ref> ins;
  for (const auto& s : n.input()) ins.push_back(ref(s));
  const int r = rank_of(ins[0]);
  Perm p = ins[0].value >= 0 ? ins[0].perm : identity_perm(r);
  for (const Ref& x : ins) {
    if (rank_of(x) != r) fail("Concat of different ranks");
    if (x.value < 0 || x.perm != p) p = identity_perm(r);
  }
  int64_t kiln_axis = p[axis(ax, r)];
  std::vector<int> vs;
  for (Ref& x : ins) vs.push_back(materialize(x, inverse(p)));
  Shape s = g_.values[vs[0]].shape;
  const DType dtype = g_.values[vs[0]].dtype;
  for (size_t i = 1; i < vs.size(); ++i) {
    const graph::Value& v = g_.values[vs[i]];
    for (int d = 0; d < r; ++d) {
      if (d != kiln_axis && v.shape[d] != s[d]) fail("Concat of " + shape_str(s) + " and " + shape_str(v.shape));
    }
    if (v.dtype != dtype) fail("Concat of different dtypes");
    if (v.shape[kiln_axis] == kBatch || s[kiln_axis] == kBatch) fail("Concat along the batch dimension");
    if (__builtin_add_overflow(s[kiln_axis], v.shape[kiln_axis], &s[kiln_axis])) fail("Concat size overflows");
  }
  if (vs.size() == 1 && s[kiln_axis] == kBatch) fail("Concat along the batch dimension");
  define(n.output(0), add_node(ops::Attrs("concat").set("axis", ops::AttrValue(kiln_axis)), vs, nhwc_name(n.output(0)), s, dtype), p);
}

int Importer::cast_node(const Ref& x, DType to, const std::string& output) {
  int v = x.value >= 0 ? x.value : materialize(x);
  Perm perm = x.value >= 0 ? x.perm : identity_perm(rank_of(x));
  const graph::Value& in = g_.values[v];
  define(output, add_node(ops::Attrs("cast").set("dtype", dtype_name(to)), {v}, nhwc_name(output), in.shape, to), perm);
  return 0;
}

int Importer::gelu_erf(const onnx::NodeProto& n) {
  // Div(x, sqrt2) -> Erf -> Add(., 1) -> Mul(x, .) -> Mul(., 0.5), as the exporter writes it.
  if (n.op_type() != "Div" || n.input_size() != 2 || n.output_size() != 1 || n.attribute_size() ||
      !is_scalar_const(n.input(1), static_cast<float>(M_SQRT2))) {
    return 0;
  }
  const std::string& x = n.input(0);
  const onnx::NodeProto *e = next(1), *a = next(2), *m = next(3), *h = next(4);
  if (!is(e, "Erf", {n.output(0)}) || !is(a, "Add", {e->output(0), ""}) || !is_scalar_const(a->input(1), 1.f) ||
      !is(m, "Mul", {x, a->output(0)}) || !is(h, "Mul", {m->output(0), ""}) || !is_scalar_const(h->input(1), 0.5f)) {
    return 0;
  }
  onnx::NodeProto probe;  // the pattern as one node: x in, h's output out
  probe.add_input(x);
  probe.add_output(h->output(0));
  unary(probe, eltwise("gelu_erf"));
  return 5;
}

int Importer::gelu_tanh(const onnx::NodeProto& n) {
  // x*x -> *x -> *0.044715 -> x+ -> *sqrt(2/pi) -> Tanh -> +1 ; x*0.5 ; * (the exporter's order)
  if (n.op_type() != "Mul" || n.input_size() != 2 || n.input(0) != n.input(1) || n.output_size() != 1 ||
      n.attribute_size()) {
    return 0;
  }
  const std::string& x = n.input(0);
  const onnx::NodeProto *x3 = next(1), *c = next(2), *s = next(3), *in = next(4), *t = next(5), *t1 = next(6), *hx = next(7),
                        *y = next(8);
  if (!is(x3, "Mul", {n.output(0), x}) || !is(c, "Mul", {x3->output(0), ""}) || !is_scalar_const(c->input(1), 0.044715f) ||
      !is(s, "Add", {x, c->output(0)}) || !is(in, "Mul", {s->output(0), ""}) ||
      !is_scalar_const(in->input(1), static_cast<float>(std::sqrt(2.0 / M_PI))) || !is(t, "Tanh", {in->output(0)}) ||
      !is(t1, "Add", {t->output(0), ""}) || !is_scalar_const(t1->input(1), 1.f) || !is(hx, "Mul", {x, ""}) ||
      !is_scalar_const(hx->input(1), 0.5f) || !is(y, "Mul", {hx->output(0), t1->output(0)})) {
    return 0;
  }
  onnx::NodeProto probe;
  probe.add_input(x);
  probe.add_output(y->output(0));
  unary(probe, eltwise("gelu_tanh"));
  return 9;
}

int Importer::compare_then_cast(const onnx::NodeProto& n) {
  static const std::map<std::string, std::string> kKinds = {
      {"Equal", "equal"}, {"Greater", "greater"}, {"GreaterOrEqual", "greater_equal"}, {"Less", "less"}};
  auto kind = kKinds.find(n.op_type());
  if (kind == kKinds.end()) return 0;
  want_inputs(n, 2, 2);
  if (n.attribute_size()) fail(n.op_type() + " takes no attributes");
  const onnx::NodeProto* c = next(1);
  if (!c || c->op_type() != "Cast" || c->input_size() != 1 || c->input(0) != n.output(0) || c->output_size() != 1) {
    fail(n.op_type() + " must be followed by a Cast of its result (Kiln comparisons give 1 or 0 in the input's dtype)");
  }
  NodeAttrs ca(*c, where_ + " (its Cast)");
  DType to = kiln_dtype(static_cast<int32_t>(ca.get_int("to", 0)), where_ + " Cast");
  ca.done();
  if (to != dtype_of(ref(n.input(0)))) fail(n.op_type() + " is cast to " + dtype_name(to) + ", not to its input's dtype");
  binary(n, kind->second, c->output(0), to);
  return 2;
}

int Importer::argmax_then_cast(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 1, 1);
  Ref x = ref(n.input(0));
  int64_t ax = axis(a.get_int("axis", 0), rank_of(x));
  if (a.get_int("keepdims", 1) != 0 || a.get_int("select_last_index", 0) != 0) fail("only ArgMax with keepdims=0 and select_last_index=0 is supported");
  a.done();
  const onnx::NodeProto* c = next(1);
  bool cast_ok = c && c->op_type() == "Cast" && c->input_size() == 1 && c->input(0) == n.output(0) && c->output_size() == 1 &&
                 c->attribute_size() == 1 && c->attribute(0).name() == "to" && c->attribute(0).type() == onnx::AttributeProto::INT &&
                 c->attribute(0).i() == onnx::TensorProto::INT32;
  if (!cast_ok) fail("ArgMax must be followed by a Cast to INT32 (Kiln's argmax gives s32)");
  int xv = materialize(x);
  const graph::Value& in = g_.values[xv];
  if (!is_floating(in.dtype)) fail("ArgMax of " + std::string(dtype_name(in.dtype)));
  Shape s = in.shape;
  s.erase(s.begin() + ax);
  define(c->output(0), add_node(ops::Attrs("argmax").set("axis", ops::AttrValue(ax)), {xv}, c->output(0), s, DType::s32),
         identity_perm(s.size()));
  return 2;
}

int Importer::round_clip_cast(const onnx::NodeProto& n) {
  // [Round ->] [Clip(lo, hi) ->] Cast: Kiln's rounding, saturating cast.
  int k = 0;
  const onnx::NodeProto* cur = &n;
  std::string x = n.input_size() ? n.input(0) : "";
  const bool round = n.op_type() == "Round";
  if (round) {
    want_inputs(n, 1, 1);
    if (n.attribute_size()) fail("Round takes no attributes");
    cur = next(++k);
  }
  std::string last = round ? n.output(0) : x;
  if (cur && cur->op_type() == "Clip" && cur->input_size() == 3 && cur->input(0) == last && cur->output_size() == 1 &&
      cur->attribute_size() == 0) {
    last = cur->output(0);
    cur = next(++k);
  }
  if (!cur || cur->op_type() != "Cast" || cur->input_size() != 1 || cur->input(0) != last || cur->output_size() != 1) {
    fail(std::string(round ? "Round" : "Clip") + " on its own is not a Kiln op (only as part of Round/Clip/Cast)");
  }
  NodeAttrs ca(*cur, where_ + " (its Cast)");
  DType to = kiln_dtype(static_cast<int32_t>(ca.get_int("to", 0)), where_ + " Cast");
  ca.done();
  Ref in = ref(x);
  if (is_floating(dtype_of(in)) != round || is_floating(to)) fail("Round/Clip/Cast from " + std::string(dtype_name(dtype_of(in))) + " to " + dtype_name(to));
  cast_node(in, to, cur->output(0));
  return k + 1;
}

int Importer::node(const onnx::NodeProto& n) {
  const std::string& op = n.op_type();
  if (!n.domain().empty()) fail("domain '" + n.domain() + "' is not supported");
  if (int k = gelu_erf(n)) return k;
  if (int k = gelu_tanh(n)) return k;
  if (int k = compare_then_cast(n)) return k;
  if (op == "Round" || (op == "Clip" && n.input_size() > 0 && refs_.count(n.input(0)) && !is_floating(dtype_of(ref(n.input(0)))))) {
    return round_clip_cast(n);
  }
  NodeAttrs a(n, where_);
  if (op == "ArgMax") return argmax_then_cast(n, a);
  if (op == "Conv") return conv(n, a), 1;
  if (op == "MaxPool" || op == "AveragePool") return pool(n, a), 1;
  if (op == "BatchNormalization") return batch_norm(n, a), 1;
  if (op == "Gemm") return gemm(n, a), 1;
  if (op == "ReduceSum" || op == "ReduceMean" || op == "ReduceMax") return reduce(n, a), 1;
  if (op == "Reshape") return reshape(n, a), 1;
  if (op == "Concat") return concat(n, a), 1;
  if (op == "Transpose") {
    want_inputs(n, 1, 1);
    Ref x = ref(n.input(0));
    std::vector<int64_t> perm = a.get_ints("perm", {});
    a.done();
    Perm p(perm.begin(), perm.end());
    for (int64_t q : perm) {
      if (q < 0 || q >= kMaxRank) fail("perm " + ints_str(perm));
    }
    check_perm(p, rank_of(x), where_ + ": perm");
    x.perm = compose(x.perm, p);
    if (n.output(0).empty() || refs_.count(n.output(0)) || inits_.count(n.output(0))) fail("redefines '" + n.output(0) + "'");
    refs_[n.output(0)] = x;  // no node: the permutation travels with the value (initializers included)
    return 1;
  }
  static const std::map<std::string, const char*> kUnary = {{"Sigmoid", "sigmoid"}, {"Tanh", "tanh"}, {"Exp", "exp"},
                                                            {"Log", "log"}, {"Sqrt", "sqrt"}, {"Abs", "abs"},
                                                            {"Softplus", "softplus"}, {"Relu", "relu"}};
  if (auto it = kUnary.find(op); it != kUnary.end()) {
    want_inputs(n, 1, 1);
    a.done();
    unary(n, eltwise(it->second));
    return 1;
  }
  if (op == "LeakyRelu" || op == "Elu") {
    want_inputs(n, 1, 1);
    float alpha = a.get_float("alpha", op == "Elu" ? 1.f : 0.01f);
    a.done();
    unary(n, eltwise(op == "Elu" ? "elu" : "relu", alpha));
    return 1;
  }
  if (op == "Clip") {
    want_inputs(n, 3, 3);
    a.done();
    float lo = scalar_input(n.input(1), "Clip min"), hi = scalar_input(n.input(2), "Clip max");
    if (!(lo <= hi)) fail("Clip min exceeds max");
    unary(n, eltwise("clip", lo, hi));
    return 1;
  }
  if (op == "Pow") {
    want_inputs(n, 2, 2);
    a.done();
    unary(n, eltwise("pow", 1.f, scalar_input(n.input(1), "Pow exponent")));
    return 1;
  }
  if (op == "Softmax" || op == "LogSoftmax") {
    want_inputs(n, 1, 1);
    Ref x = ref(n.input(0));
    int64_t ax = axis(a.get_int("axis", -1), rank_of(x));
    a.done();
    if (x.value < 0) x = Ref{materialize(x), "", identity_perm(rank_of(x))};
    const graph::Value& in = g_.values[x.value];
    if (!is_floating(in.dtype)) fail(op + " of " + dtype_name(in.dtype));
    ops::Attrs call(op == "Softmax" ? "softmax" : "log_softmax");
    call.set("axis", ops::AttrValue(int64_t{x.perm[ax]}));
    define(n.output(0), add_node(call, {x.value}, nhwc_name(n.output(0)), in.shape, in.dtype), x.perm);
    return 1;
  }
  static const std::map<std::string, const char*> kBinary = {{"Add", "add"}, {"Sub", "sub"}, {"Mul", "mul"},
                                                             {"Div", "div"}, {"Max", "maximum"}, {"Min", "minimum"}};
  if (auto it = kBinary.find(op); it != kBinary.end()) {
    want_inputs(n, 2, 2);
    a.done();
    DType dt = dtype_of(ref(n.input(0)));
    binary(n, it->second, n.output(0), dt);
    return 1;
  }
  if (op == "MatMul") return a.done(), matmul(n), 1;
  if (op == "Slice") return a.done(), slice(n), 1;
  if (op == "Identity") {
    want_inputs(n, 1, 1);
    a.done();
    Ref x = ref(n.input(0));
    if (x.value < 0) x = Ref{materialize(x), "", identity_perm(rank_of(x))};
    define(n.output(0), x.value, x.perm);
    return 1;
  }
  if (op == "Cast") {
    want_inputs(n, 1, 1);
    DType to = kiln_dtype(static_cast<int32_t>(a.get_int("to", 0)), where_ + " Cast");
    a.done();
    Ref x = ref(n.input(0));
    DType from = dtype_of(x);
    if (is_floating(from) && !is_floating(to)) fail("a float-to-integer Cast without Round (Kiln rounds to nearest even)");
    if (from == to) {
      if (x.value < 0) x = Ref{materialize(x), "", identity_perm(rank_of(x))};
      define(n.output(0), x.value, x.perm);
      return 1;
    }
    bool widening = is_floating(to) || (to == DType::s32);
    if (!widening) fail("a narrowing integer Cast without Clip (Kiln saturates)");
    return cast_node(x, to, n.output(0)), 1;
  }
  if (op == "Expand") {
    want_inputs(n, 2, 2);
    a.done();
    int xv = materialize(ref(n.input(0)));
    std::vector<int64_t> shape = int64_input(n.input(1), "shape");
    for (int64_t d : shape) {
      if (d < 0) fail("Expand shape " + ints_str(shape));
    }
    if (shape.size() > kMaxRank) fail("Expand to rank " + std::to_string(shape.size()));
    const graph::Value& in = g_.values[xv];
    Shape s = broadcast(in.shape, shape, where_);
    if (s != shape) fail("Expand of " + shape_str(in.shape) + " to " + ints_str(shape) + " (Kiln's broadcast_to gives exactly the shape)");
    define(n.output(0), add_node(ops::Attrs("broadcast_to").set("shape", shape), {xv}, n.output(0), s, in.dtype), identity_perm(s.size()));
    return 1;
  }
  fail("op '" + op + "' is not one Kiln imports");
}

Graph Importer::run() {
  for (const auto& t : gp_.initializer()) {
    if (!inits_.emplace(t.name(), &t).second) throw std::invalid_argument("initializer '" + t.name() + "' appears twice");
    if (t.name().empty()) throw std::invalid_argument("an initializer has no name");
  }
  if (gp_.sparse_initializer_size()) throw std::invalid_argument("sparse initializers are not supported");
  for (const auto& in : gp_.input()) {
    where_ = "graph input '" + in.name() + "'";
    if (inits_.count(in.name())) continue;  // IR < 4 lists initializers as inputs too
    if (!in.type().has_tensor_type()) fail("is not a tensor");
    const auto& tt = in.type().tensor_type();
    DType dtype = kiln_dtype(tt.elem_type(), where_);
    if (!tt.has_shape()) fail("has no shape");
    Shape s;
    for (int d = 0; d < tt.shape().dim_size(); ++d) {
      const auto& dim = tt.shape().dim(d);
      if (dim.has_dim_value() && dim.dim_value() >= 0) s.push_back(dim.dim_value());
      else if (d == 0 && dim.has_dim_param()) s.push_back(kBatch);
      else fail("dimension " + std::to_string(d) + " is neither a size nor (dimension 0 only) the symbolic batch");
    }
    if (refs_.count(in.name())) fail("is declared twice");
    int v = add_value(in.name(), s, dtype);
    g_.inputs.push_back(v);
    refs_[in.name()] = Ref{v, "", identity_perm(static_cast<int>(s.size()))};
  }
  for (index_ = 0; index_ < gp_.node_size();) {
    const onnx::NodeProto& n = gp_.node(index_);
    where_ = "node " + std::to_string(index_) + " ('" + n.name() + "', " + n.op_type() + ")";
    index_ += node(n);
  }
  if (gp_.output_size() == 0) throw std::invalid_argument("the graph has no outputs");
  for (const auto& o : gp_.output()) {
    where_ = "graph output '" + o.name() + "'";
    auto it = refs_.find(o.name());
    if (it == refs_.end()) fail("is never computed");
    int v = materialize(it->second);
    graph::Value& val = g_.values[v];
    if (o.type().has_tensor_type()) {
      const auto& tt = o.type().tensor_type();
      if (kiln_dtype(tt.elem_type(), where_) != val.dtype) fail("is declared " + std::to_string(tt.elem_type()) + " but computed as " + dtype_name(val.dtype));
      if (tt.has_shape()) {
        bool ok = tt.shape().dim_size() == static_cast<int>(val.shape.size());
        for (int d = 0; ok && d < tt.shape().dim_size(); ++d) {
          const auto& dim = tt.shape().dim(d);
          ok = dim.has_dim_value() ? dim.dim_value() == val.shape[d] : val.shape[d] == kBatch;
        }
        if (!ok) fail("has a declared shape other than the computed " + shape_str(val.shape));
      }
    }
    if (val.name != o.name() && !names_.count(o.name())) {
      names_.insert(o.name());
      val.name = o.name();
    }
    g_.outputs.push_back(v);
  }
  g_.validate();
  return g_;
}

}  // namespace

Graph parse_onnx(std::string_view bytes, const std::string& source) {
  auto error = [&](const std::string& msg) { return std::invalid_argument("onnx '" + source + "': " + msg); };
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) throw error("file is over 2 GiB");
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw error("not a valid ONNX protobuf (corrupt or truncated)");
  }
  if (model.ir_version() < 3 || model.ir_version() > kMaxIrVersion) {
    throw error("IR version " + std::to_string(model.ir_version()) + "; Kiln reads 3 to " + std::to_string(kMaxIrVersion));
  }
  bool default_domain = false;
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") {
      if (o.version() != kOpset) throw error("opset " + std::to_string(o.version()) + "; Kiln reads opset " + std::to_string(kOpset));
      default_domain = true;
    } else {
      throw error("opset domain '" + o.domain() + "' is not supported");
    }
  }
  if (!default_domain) throw error("no opset for the default domain");
  if (model.functions_size()) throw error("model-local functions are not supported");
  if (!model.has_graph()) throw error("no graph");
  try {
    return Importer(model.graph()).run();
  } catch (const AllocationError&) {
    throw;
  } catch (const std::invalid_argument& e) {
    throw error(e.what());
  } catch (const std::out_of_range& e) {
    throw error(e.what());
  } catch (const std::overflow_error& e) {
    throw error(e.what());
  } catch (const std::runtime_error& e) {  // AllocationError is rethrown above: a bug, not bad input
    throw error(e.what());
  }
}

Graph import_onnx(const std::string& path) {
  std::string bytes;
  try {
    bytes = data::read_file(path);
  } catch (const std::exception&) {
    throw std::invalid_argument("onnx '" + path + "' cannot be opened");
  }
  return parse_onnx(bytes, path);
}

}  // namespace kiln::runtime_export
