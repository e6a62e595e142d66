#pragma once
// The ONNX importer's internals (onnx_import.h is the API): one Importer walks a GraphProto
// once; import_ops.cc maps single ONNX ops, import_patterns.cc the multi-node patterns the
// exporter writes, onnx_import.cc the graph inputs, outputs and the file.
#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <stdexcept>
#include <vector>

#include "graph/graph.h"
#include "runtime_export/onnx/folded.h"
#include "runtime_export/onnx/layout.h"
#include "runtime_export/onnx/onnx_import.h"
#include "runtime_export/onnx/onnx_tensor.h"
#include "tensor/ops/conv.h"

namespace kiln::runtime_export::onnx_io {

using graph::Graph;
using graph::kBatch;

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
  std::vector<float> get_floats(const std::string& k) {
    if (!take(k, onnx::AttributeProto::FLOATS)) return {};
    return std::vector<float>(last_->floats().begin(), last_->floats().end());
  }
  void mark_used(const std::string& k) { used_.insert(k); }
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

inline std::string ints_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// NumPy broadcasting where kBatch only meets itself or 1.
inline Shape broadcast(const Shape& a, const Shape& b, const std::string& where) {
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
  // `opset`: the default domain's version, which decides several ops' semantics.
  Importer(const onnx::GraphProto& gp, int64_t opset) : gp_(gp), opset_(opset) {}
  Graph run();

 private:
  const onnx::GraphProto& gp_;
  const int64_t opset_;
  // The nodes in the order they are imported: Constant nodes first (they have no inputs), so
  // that the multi-node patterns see the ops next to each other, as exporters interleave
  // their constants between them. order_[i] is the node's index in the file.
  std::vector<int> order_;
  Graph g_;
  std::map<std::string, Ref> refs_;
  std::map<std::string, const onnx::TensorProto*> inits_;
  std::map<std::string, Tensor> init_tensors_;
  std::deque<onnx::TensorProto> owned_constants_;  // Constant nodes' values, which inits_ points at
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
    if (!onnx_import_support(call.kind()).supported) {
      throw std::logic_error(where_ + ": the importer made a " + call.op() + " node, which onnx_import_support rules out");
    }
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
    if (!refs_.count(name) && dequantized_.count(name)) materialize_dequantized(name);
    auto it = refs_.find(name);
    if (it != refs_.end()) return it->second;
    if (auto v = views_.find(name); v != views_.end()) {  // laid out once for the ops that need a plain value
      Ref r = flat(v->second, name);
      views_.erase(v);
      return refs_[name] = r;
    }
    if (folded_values_.count(name)) fail("'" + name + "' " + sym_str(folded_values_.at(name).ints) + " depends on the batch size and is used as data");
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
    if (refs_.count(name) || inits_.count(name) || views_.count(name) || folded_values_.count(name)) fail("value '" + name + "' is defined twice");
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
    return index_ + k < static_cast<int>(order_.size()) ? &gp_.node(order_[index_ + k]) : nullptr;
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
  // ONNX pads as Kiln padding: 'valid' when all zero, 'same' when Keras's, explicit otherwise.
  struct ImportedPadding {
    Padding padding = Padding::valid;
    Pads2d pads{0, 0, 0, 0};
    void set_on(ops::Attrs& call) const {
      call.set("padding", padding_name(padding));
      if (padding == Padding::explicit_pads) call.set("pads", std::vector<int64_t>(pads.begin(), pads.end()));
    }
  };
  ImportedPadding padding_of(const std::vector<int64_t>& pads, const Shape& nhwc, const Shape& kernel,
                             const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations) {
    if (pads.size() != 4) fail("pads " + ints_str(pads) + " should have 4 values");
    check_window(nhwc, kernel);
    for (int64_t p : pads) {
      if (p < 0 || p > kMaxWindow) fail("pads " + ints_str(pads) + " should be in [0, " + std::to_string(kMaxWindow) + "]");
    }
    if (std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; })) return {};
    SpatialPlan h = plan_spatial(nhwc[1], kernel[0], strides[0], dilations[0], Padding::same, "onnx", shape_str(nhwc));
    SpatialPlan w = plan_spatial(nhwc[2], kernel[1], strides[1], dilations[1], Padding::same, "onnx", shape_str(nhwc));
    if (pads == std::vector<int64_t>{h.pad_before, w.pad_before, h.pad_after, w.pad_after}) return {Padding::same};
    return {Padding::explicit_pads, {pads[0], pads[1], pads[2], pads[3]}};
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
                    const std::vector<int64_t>& dilations, const ImportedPadding& padding, int64_t channels) {
    check_window(nhwc, kernel);
    SpatialPlan h = plan_spatial(nhwc[1], kernel[0], strides[0], dilations[0], padding.padding, "onnx",
                                 shape_str(nhwc), pads_of_dim(padding.pads, 0));
    SpatialPlan w = plan_spatial(nhwc[2], kernel[1], strides[1], dilations[1], padding.padding, "onnx",
                                 shape_str(nhwc), pads_of_dim(padding.pads, 1));
    return {nhwc[0], h.out, w.out, channels};
  }

  void conv(const onnx::NodeProto& n, NodeAttrs& a);
  DType pooled_dtype(DType x, bool max);
  void pool(const onnx::NodeProto& n, NodeAttrs& a);
  void global_pool(const onnx::NodeProto& n, NodeAttrs& a);  // GlobalMaxPool, GlobalAveragePool
  void batch_norm(const onnx::NodeProto& n, NodeAttrs& a);
  void gemm(const onnx::NodeProto& n, NodeAttrs& a);
  void matmul(const onnx::NodeProto& n);
  void binary(const onnx::NodeProto& n, const std::string& kind, const std::string& output, DType out_dtype);
  void reduce(const onnx::NodeProto& n, NodeAttrs& a);
  void slice(const onnx::NodeProto& n);
  void concat(const onnx::NodeProto& n, NodeAttrs& a);
  // import_sequence.cc
  void gather(const onnx::NodeProto& n, NodeAttrs& a);
  void layer_norm(const onnx::NodeProto& n, NodeAttrs& a);
  void recurrent(const onnx::NodeProto& n, NodeAttrs& a);  // LSTM, GRU, RNN: import_recurrent.cc
  // import_upsampling.cc
  void conv_transpose(const onnx::NodeProto& n, NodeAttrs& a);
  // import_foreign.cc
  bool same_element_order(const Ref& x);
  void flatten(const onnx::NodeProto& n, NodeAttrs& a);
  Ref scaled_constant(const Ref& c, float factor, const char* what);
  void dropout(const onnx::NodeProto& n, NodeAttrs& a);
  void constant(const onnx::NodeProto& n, NodeAttrs& a);
  void cast_constant(const Ref& x, DType to, const std::string& output);
  void resize(const onnx::NodeProto& n, NodeAttrs& a);
  void pad(const onnx::NodeProto& n, NodeAttrs& a);  // import_pad.cc
  int cast_node(const Ref& x, DType to, const std::string& output);
  // import_cnn.cc: opset-dependent CNN ops
  void softmax(const onnx::NodeProto& n, NodeAttrs& a);   // Softmax, LogSoftmax (2-D coercion before 13)
  void gelu(const onnx::NodeProto& n, NodeAttrs& a);      // Gelu (opset 20)
  void reciprocal(const onnx::NodeProto& n, NodeAttrs& a);
  std::vector<int64_t> reduce_axes(const onnx::NodeProto& n, NodeAttrs& a, bool* noop);
  // Pooling pads with ceil_mode's extra bottom/right window folded in, and, for AveragePool
  // with count_include_pad=1, the constant that rescales Kiln's real-cells average.
  std::vector<int64_t> ceil_mode_pads(const std::vector<int64_t>& pads, const Shape& nhwc,
                                      const std::vector<int64_t>& kernel, const std::vector<int64_t>& strides);
  int include_pad_scale(int avg, const std::vector<int64_t>& pads, const std::vector<int64_t>& kernel,
                        const std::vector<int64_t>& strides, const Shape& nhwc_in);
  int silu(const onnx::NodeProto& n);  // Sigmoid(x) -> Mul(x, .): Kiln's swish
  // Whether no node but `readers` (and no graph output) reads `value`: a pattern may drop it.
  bool read_only_by(const std::string& value, std::initializer_list<const onnx::NodeProto*> nodes);
  int gelu_tanh_torch(const onnx::NodeProto& n);
  // Patterns: each returns the number of nodes it consumed (0: not this pattern).
  int gelu_erf(const onnx::NodeProto& n);
  int gelu_tanh(const onnx::NodeProto& n);
  int mish(const onnx::NodeProto& n);  // Softplus -> Tanh -> Mul(x, .): Mish before opset 18
  int argmax_then_cast(const onnx::NodeProto& n, NodeAttrs& a);
  int clip_then_cast(const onnx::NodeProto& n);
  int node(const onnx::NodeProto& n);
  // import_logical.cc: Where, Not, And, Or, Xor, the comparisons, Erf, Cast to BOOL on run-time values
  std::set<std::string> booleans_;  // ONNX values Kiln holds as 1/0 (BOOL inputs, comparisons, logical ops)
  std::map<int, int> float_copy_;  // an s32/u8 value -> its f32 cast, made once however often read
  int float_operand(const std::string& name);
  bool is_float_value(const std::string& name);
  int logical_node(const onnx::NodeProto& n);

  // Transformer exports (torch.onnx): import_shape.cc folds shape subgraphs (folded.h);
  // import_view.cc carries Reshape/Transpose chains as views; import_layer_norm_pattern.cc.
  struct View {  // ONNX dim j: the product of group j's dims of permute(value, perm)
    int value = -1;
    Perm perm;
    std::vector<int> groups;
  };
  std::map<std::string, Folded> folded_values_;
  std::map<std::string, View> views_;
  std::set<int> absorbed_;  // nodes a pattern has imported already
  std::map<std::string, std::vector<int>> readers_;
  bool is_folded(const std::string& name);
  Folded folded(const std::string& name);
  void define_folded(const std::string& name, Folded f);
  std::vector<SymInt> sym_shape(const std::string& name);
  std::vector<int64_t> axes_of(const onnx::NodeProto& n, NodeAttrs& a, int input, int since_opset);
  int fold(const onnx::NodeProto& n);
  View view_of(const std::string& name);
  std::vector<SymInt> view_dims(const View& v);
  void define_view(const std::string& name, const View& v);
  int kiln_reshape(int value, const Shape& shape, const std::string& name);
  View in_u_order(const View& v, const std::string& name);
  View merged(View v, bool only_last, const std::string& name);
  Ref flat(const View& v, const std::string& name);
  View transpose_view(const View& v, const Perm& p);
  View reshape_view(const View& v, const std::vector<SymInt>& target, const std::string& name);
  std::vector<SymInt> reshape_target(const std::vector<SymInt>& in, std::vector<SymInt> target, bool allowzero);
  void reshape_node(const onnx::NodeProto& n, NodeAttrs& a);
  void squeeze(const onnx::NodeProto& n, NodeAttrs& a);  // Squeeze, Unsqueeze
  void gather_view(const onnx::NodeProto& n, NodeAttrs& a);
  void matmul_rowwise(const onnx::NodeProto& n);
  void gemm_rowwise(const onnx::NodeProto& n, NodeAttrs& a);
  void expand(const onnx::NodeProto& n, NodeAttrs& a);
  int batch_zeros(int rank, DType dtype);
  void split(const onnx::NodeProto& n, NodeAttrs& a);
  int shape_and_view_node(const onnx::NodeProto& n);
  const std::vector<int>& readers(const std::string& name);
  const onnx::NodeProto* sole_reader(const std::string& name, const char* op, int* index);
  std::optional<float> scalar_ahead(const std::string& name);
  int layer_norm_decomposed(const onnx::NodeProto& n);
  // import_qdq.cc: QuantizeLinear / DequantizeLinear, as ONNX Runtime's quantize_static (QDQ
  // format) and Kiln's own int8 export write them.
  struct Dequantized {  // an int8 value that ONNX reads dequantized; materialized on first f32 use
    Ref q;
    float scale;
    int32_t zero_point;
  };
  struct QuantizedConstant {  // DequantizeLinear of an initializer (which is also folded to f32)
    std::string q_init;
    std::vector<float> scales;
    std::vector<int32_t> zero_points;
    int64_t axis;  // -1: per tensor
  };
  std::map<std::string, Dequantized> dequantized_;
  std::map<std::string, QuantizedConstant> quantized_constants_;
  std::map<int, int> dequantize_source_;  // f32 value of a dequantize_linear node -> its int8 input
  std::map<int, size_t> int8_layer_of_;   // f32 output value of a qconv2d / qlinear -> its node
  bool saw_qdq_ = false;
  void note_qdq_nodes();  // sets saw_qdq_
  void quantize(const onnx::NodeProto& n, NodeAttrs& a);
  void dequantize(const onnx::NodeProto& n, NodeAttrs& a);
  void materialize_dequantized(const std::string& name);
  bool int8_layer(const onnx::NodeProto& n, NodeAttrs& a);        // Conv, Gemm, MatMul on QDQ inputs
  int int8_source_of_layer_input();
  bool int8_passthrough(const onnx::NodeProto& n, NodeAttrs& a);  // MaxPool, Flatten on a QDQ input
};

}  // namespace kiln::runtime_export::onnx_io
