#include "graph/passes/fold_constants.h"

#include "graph/passes/graph_edit.h"
#include "tensor/ops/registry.h"

namespace kiln::graph::passes {

graph::Graph fold_constants(const graph::Graph& in) {
  graph::Graph g = in;
  std::vector<bool> erase(g.nodes.size(), false);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const graph::Node& node = g.nodes[k];
    std::vector<Tensor> args;
    for (int i : node.inputs) {
      const Tensor* t = constant_tensor(g, i);
      if (!t) break;
      args.push_back(*t);
    }
    if (args.size() != node.inputs.size() || args.empty()) continue;
    std::vector<Tensor> results = ops::run_op(node.call, args);
    for (size_t j = 0; j < results.size(); ++j) {
      // A view of a constant would alias it; folded constants own their bytes.
      g.constants.push_back({node.outputs[j], /*is_variable=*/false, results[j].clone_detached()});
    }
    erase[k] = true;
  }
  erase_nodes(g, erase);
  return validated_result("fold_constants", std::move(g));
}

}  // namespace kiln::graph::passes
