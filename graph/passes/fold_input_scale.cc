#include "graph/passes/fold_input_scale.h"

#include "graph/passes/graph_edit.h"
#include "tensor/ops/binary.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::graph::passes {
namespace {

bool weighted(const graph::Graph& g, const graph::Node& n) {
  using K = ops::OpKind;
  if (!n.call.is(K::conv2d) && !n.call.is(K::fused_conv2d) && !n.call.is(K::linear) && !n.call.is(K::fused_linear)) {
    return false;
  }
  const Tensor* w = constant_tensor(g, n.inputs[1]);
  return w && w->dtype() == DType::f32;
}

}  // namespace

graph::Graph fold_input_scale(const graph::Graph& in) {
  graph::Graph g = in;
  std::vector<int> uses = use_counts(g);
  std::vector<bool> erase(g.nodes.size(), false);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const graph::Node& a = g.nodes[k];
    if (!a.call.is(ops::OpKind::affine)) continue;
    const ops::EltwiseAttrs scale = ops::parse_attrs_of<ops::OpKind::affine>(a.call);
    if (scale.beta != 0.f) continue;
    int c = sole_consumer(g, uses, a.outputs[0]);
    if (c < 0 || erase[c]) continue;
    int target = c;
    if (g.nodes[c].call.is(ops::OpKind::reshape)) {
      target = sole_consumer(g, uses, g.nodes[c].outputs[0]);
      if (target < 0 || erase[target]) continue;
    }
    graph::Node& t = g.nodes[target];
    bool reads_as_data = t.inputs[0] == (target == c ? a.outputs[0] : g.nodes[c].outputs[0]);
    if (!weighted(g, t) || !reads_as_data || uses[t.inputs[1]] != 1) continue;
    const float alpha = scale.alpha;
    const std::string name = g.values[t.inputs[1]].name + "/scaled";
    Tensor scaled = (*constant_tensor(g, t.inputs[1]) * alpha).clone_detached();
    t.inputs[1] = add_literal(g, name, scaled);
    // The reader (or the reshape before it) now reads the unscaled data.
    for (int& i : g.nodes[c].inputs) {
      if (i == a.outputs[0]) i = a.inputs[0];
    }
    erase[k] = true;
  }
  erase_nodes(g, erase);
  return validated_result("fold_input_scale", std::move(g));
}

}  // namespace kiln::graph::passes
