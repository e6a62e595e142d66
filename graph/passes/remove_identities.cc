#include "graph/passes/remove_identities.h"

#include "graph/passes/graph_edit.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::graph::passes {
namespace {

bool is_identity(const graph::Graph& g, const graph::Node& n) {
  if (n.inputs.size() != 1 || n.outputs.size() != 1) return false;
  const graph::Value& in = g.values[n.inputs[0]];
  const graph::Value& out = g.values[n.outputs[0]];
  if (in.shape != out.shape || in.dtype != out.dtype) return false;
  using K = ops::OpKind;
  for (K k : {K::identity, K::contiguous, K::cast, K::reshape, K::broadcast_to}) {
    if (n.call.is(k)) return true;
  }
  if (!n.call.is(K::affine)) return false;
  ops::EltwiseAttrs a = ops::parse_attrs_of<K::affine>(n.call);
  return a.alpha == 1.f && a.beta == 0.f;
}

}  // namespace

graph::Graph remove_identities(const graph::Graph& in) {
  graph::Graph g = in;
  std::vector<bool> erase(g.nodes.size(), false);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    if (!is_identity(g, g.nodes[k])) continue;
    replace_uses(g, g.nodes[k].outputs[0], g.nodes[k].inputs[0]);
    erase[k] = true;
  }
  erase_nodes(g, erase);
  return validated_result("remove_identities", std::move(g));
}

}  // namespace kiln::graph::passes
