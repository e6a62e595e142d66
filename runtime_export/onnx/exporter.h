#pragma once
// The ONNX exporter's internals (onnx_export.h is the API): one Exporter walks a Graph once;
// export_ops.cc writes each Kiln op, export_activations.cc the element-wise functions and
// epilogues, onnx_export.cc the model around them.
#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "runtime_export/onnx/layout.h"
#include "runtime_export/onnx/onnx_tensor.h"
#include "tensor/ops/eltwise.h"
#include "tensor/ops/fused.h"
#include "tensor/ops/op_kind.h"
#include "tensor/ops/quantized.h"
#include "tensor/ops/shape_ops.h"

namespace kiln::runtime_export::onnx_io {

using graph::Graph;
using graph::kBatch;
using graph::Node;

inline void set_attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
inline void set_attr(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
inline void set_attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
inline std::vector<int64_t> to_int64(const Perm& p) { return std::vector<int64_t>(p.begin(), p.end()); }

inline void set_type(onnx::ValueInfoProto* vi, const std::string& name, const graph::Value& v) {
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

  // How each op kind is written (export_ops.cc): a writer and the ONNX ops it emits, or no
  // writer and why not. One case per kind, no default (-Werror=switch).
  struct Rule {
    void (Exporter::*write)(const Node&);
    const char* onnx;
  };
  static Rule rule(ops::OpKind kind);

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
  void write_conv(const Node& n);
  // An ONNX Conv (NCHW in, OIHW weights) with the Kiln conv's geometry; 'same' padding as the
  // explicit pads Keras/TensorFlow use for the traced size.
  onnx::NodeProto* emit_conv(const std::vector<std::string>& ins, const std::string& out, const Shape& xs, const Shape& ws,
                             const Conv2dAttrs& conv);
  void write_pool(const Node& n);
  void write_linear(const Node& n);
  void write_binary(const Node& n);
  void write_reduce(const Node& n);
  void write_cast(const Node& n);
  void write_matmul(const Node& n);
  void write_attention(const Node& n);  // export_attention.cc
  void write_batch_norm(const Node& n);
  void write_softmax(const Node& n);
  void write_argmax(const Node& n);
  void write_reshape(const Node& n);
  void write_permute(const Node& n);
  void write_slice(const Node& n);
  void write_identity(const Node& n);
  void write_broadcast_to(const Node& n);
  void write_concat(const Node& n);
  void write_eltwise_node(const Node& n);
  // export_sequence.cc
  void write_gather(const Node& n);
  void write_layer_norm(const Node& n);
  // export_recurrent.cc
  void write_rnn(const Node& n);
  // export_upsampling.cc
  void write_conv_transpose(const Node& n);
  void write_resize(const Node& n);
  void write_pad(const Node& n);  // export_pad.cc
  void write_logical(const Node& n);  // export_logical.cc: where, the logical ops, erf
  // export_quantized.cc: the int8 nodes as QDQ.
  void write_quantize(const Node& n);
  void write_quantized_layer(const Node& n);
  std::string dequantized(int v, float scale, bool as_nchw);
  std::string dequantized_constant(const Tensor& q, const std::vector<float>& scales, int64_t axis, const std::string& base);
  std::string quantized_bias(int b, const QuantizedEpilogue& q);
};

}  // namespace kiln::runtime_export::onnx_io
