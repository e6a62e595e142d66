#include "runtime_export/passes/remove_identities.h"

#include "runtime_export/passes/graph_edit.h"

namespace kiln::runtime_export::passes {
namespace {

bool is_identity(const graph::Graph& g, const graph::Node& n) {
  const std::string& op = n.call.op();
  if (n.inputs.size() != 1 || n.outputs.size() != 1) return false;
  const graph::Value& in = g.values[n.inputs[0]];
  const graph::Value& out = g.values[n.outputs[0]];
  if (in.shape != out.shape || in.dtype != out.dtype) return false;
  if (op == "identity" || op == "contiguous" || op == "cast" || op == "reshape" || op == "broadcast_to") return true;
  if (op == "affine") return n.call.get_float("alpha") == 1.0 && n.call.get_float("beta") == 0.0;
  return false;
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
  return g;
}

}  // namespace kiln::runtime_export::passes
