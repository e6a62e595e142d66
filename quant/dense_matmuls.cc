#include "quant/dense_matmuls.h"

#include "graph/passes/graph_edit.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/shape_ops.h"

namespace kiln::quant {
namespace {

using graph::passes::constant_tensor;

bool is_dense_matmul(const graph::Graph& g, const graph::Node& n) {
  if (!n.call.is(ops::OpKind::matmul) || n.inputs.size() != 2 || n.outputs.size() != 1) return false;
  const Tensor* w = constant_tensor(g, n.inputs[1]);
  const graph::Value& x = g.values[n.inputs[0]];
  return w && w->dtype() == DType::f32 && w->ndim() == 2 && x.dtype == DType::f32 && x.shape.size() >= 2 &&
         !constant_tensor(g, n.inputs[0]);
}

// The Add's other operand when it is a constant f32 holding one value per output channel
// ([N], or [1, ..., 1, N] no longer than the output's rank), as an [N] tensor.
Tensor bias_of(const graph::Graph& g, const graph::Node& add, int value, int64_t channels) {
  if (!add.call.is(ops::OpKind::add) || add.inputs.size() != 2 || add.inputs[0] == add.inputs[1]) return Tensor();
  const int other = add.inputs[0] == value ? add.inputs[1] : add.inputs[0];
  const Tensor* b = constant_tensor(g, other);
  if (!b || b->dtype() != DType::f32 || b->numel() != channels || b->ndim() == 0) return Tensor();
  if (b->ndim() > static_cast<int64_t>(g.values[value].shape.size()) || b->shape().back() != channels) return Tensor();
  if (g.values[add.outputs[0]].shape != g.values[value].shape) return Tensor();
  return reshape(*b, {channels});
}

}  // namespace

graph::Graph dense_matmuls_as_linear(const graph::Graph& in) {
  graph::Graph g = in;
  std::vector<int> uses = graph::passes::use_counts(g);
  std::vector<bool> erase(g.nodes.size(), false);
  bool changed = false;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    graph::Node& n = g.nodes[k];
    if (erase[k] || !is_dense_matmul(g, n)) continue;
    changed = true;
    n.call = ops::Attrs("linear").set("activation", "none");
    const int out = n.outputs[0];
    const int reader = graph::passes::sole_consumer(g, uses, out);
    if (reader < 0 || erase[reader]) continue;
    const int64_t channels = g.values[out].shape.back();
    Tensor bias = bias_of(g, g.nodes[reader], out, channels);
    if (!bias.defined()) continue;
    // The linear takes the Add's place (and output), so what the Add read is computed before it.
    graph::Node linear = n;
    linear.inputs.push_back(graph::passes::add_literal(g, g.values[linear.inputs[1]].name + "/bias", bias));
    linear.outputs = g.nodes[reader].outputs;
    g.nodes[reader] = linear;
    erase[k] = true;
  }
  if (!changed) return in;
  graph::passes::erase_nodes(g, erase);
  return graph::passes::validated_result("dense_matmuls_as_linear", std::move(g));
}

}  // namespace kiln::quant
