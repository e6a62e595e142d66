#pragma once
// Builds a Plan's steps node by node: one case per op kind (builder.cc), one file per op
// family for the nodes that become oneDNN primitives, the eager op for the rest.
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "graph/graph.h"
#include "runtime_export/plan/plan_impl.h"
#include "tensor/ops/op_kind.h"
#include "tensor/ops/quantized.h"
#include "tensor/ops/support.h"

namespace kiln::runtime_export::plan_detail {

class Builder {
 public:
  Builder(Plan::Impl& p, const graph::Graph& g, const std::vector<Shape>& input_shapes, PackedWeights& weights);
  void build();

  // How the plan runs each op kind: a builder for a oneDNN primitive (which may still decline
  // a node, e.g. for its dtype, leaving it to the eager op) and what it makes, or none: the
  // eager op. One case per kind, no default (-Werror=switch).
  struct Rule {
    bool (Builder::*build)(const graph::Node&);
    const char* note;
  };
  static Rule rule(ops::OpKind kind);

 private:
  Shape concrete(const Shape& s) const;
  const PTensor& t(int id) const { return p_.tensors[id]; }
  bool constant(int value) const { return t(value_[value]).home == Home::constant; }
  int destination_for_residual(int residual_value, const memory::desc& dst_desc, const Shape& shape, DType dtype);
  dnnl::primitive_attr epilogue_attr(bool residual, Epilogue act);
  int bias_tensor(const graph::Node& n, int64_t channels, const memory::dims& dims);
  int unflattened(int dst2d, const Shape& shape);
  bool buffer_free_after_this_node(int id) const;

  // conv.cc, linear.cc, pool.cc, shape.cc, elementwise.cc, softmax.cc, batch_norm.cc
  bool conv(const graph::Node& n);
  bool linear(const graph::Node& n);
  // Node n (bias n.inputs[2], residual n.inputs[3] where present) as one matmul of x's
  // elements seen as [M, K] by the [K, N] kernel w, giving ys; linear and the convolutions that
  // are one (conv.cc) share it. packed_variant as PackedWeights::get takes it.
  bool dense_matmul(const graph::Node& n, int x, const Tensor& w, const Shape& ys, Epilogue act, bool post_ops,
                    const std::string& packed_variant);
  bool pool(const graph::Node& n);
  bool reshape(const graph::Node& n);
  bool permute(const graph::Node& n);
  // attention.cc
  bool attention(const graph::Node& n);
  // A tensor's plain (unblocked) form and its Kiln strides: itself when already strided.
  std::pair<int, Strides> strided(int id);
  // The permutation of the one node that reads `value`, when that node is a permute: a
  // producer can lay its result out so that the permute is plain.
  std::optional<std::vector<int>> sole_permute_reader(int value) const;
  bool cast(const graph::Node& n);
  bool binary(const graph::Node& n);
  bool eltwise(const graph::Node& n);
  bool softmax(const graph::Node& n);
  bool batch_norm(const graph::Node& n);
  bool layer_norm(const graph::Node& n);  // layer_norm.cc
  // upsampling.cc
  bool conv_transpose(const graph::Node& n);
  bool resize(const graph::Node& n);
  // quantized.cc
  bool requantize(const graph::Node& n);
  bool qconv(const graph::Node& n);
  bool qlinear(const graph::Node& n);
  dnnl::primitive_attr quantized_attr(const QuantizedEpilogue& q, DType residual_dtype, bool residual);
  int quantized_bias(const graph::Node& n, const QuantizedEpilogue& q, const memory::dims& dims);
  int quantized_destination(int residual_value, const memory::desc& dst_desc, const Shape& shape, DType out_dtype,
                            float residual_scale);
  // recurrent.cc
  bool recurrent(const graph::Node& n);
  // Anything else runs the eager op.
  void fallback(const graph::Node& n);

  Plan::Impl& p_;
  const graph::Graph& g_;
  PackedWeights& weights_;
  std::vector<int> value_;
  std::vector<int> last_read_;
  std::set<int> aliased_;
  int64_t batch_ = 1;
  int node_ = 0;
};

}  // namespace kiln::runtime_export::plan_detail

namespace kiln::runtime_export {
// What the inference plan does with each op kind (for the support matrix).
ops::Support plan_support(ops::OpKind kind);
}  // namespace kiln::runtime_export
