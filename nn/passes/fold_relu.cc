#include "nn/passes/fold_relu.h"

namespace kiln::nn {

FusedPlan fold_relu(const LayerGraph& graph) {
  using Step = FusedPlan::Step;
  FusedPlan plan = FusedPlan::plain(graph);
  // A producer read by anything besides the ReLU (another layer, a model output) must keep
  // its own output, so it cannot absorb the ReLU.
  std::vector<int> readers(graph.nodes.size(), 0);
  for (const LayerGraph::Node& node : graph.nodes) {
    for (const LayerGraph::Ref& in : node.inbound) readers[in.node]++;
  }
  for (const LayerGraph::Ref& out : graph.outputs) readers[out.node]++;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    const LayerGraph::Node& node = graph.nodes[n];
    if (graph.is_input(n) || !node.layer->is_relu_activation() || node.inbound.size() != 1) continue;
    size_t producer = node.inbound[0].node;
    if (!graph.is_input(producer) && readers[producer] == 1 && graph.nodes[producer].num_outputs == 1 &&
        graph.nodes[producer].layer->fuses_relu() &&
        plan.steps[producer] != Step::forward_input) {
      plan.steps[producer] = Step::run_with_relu;
      plan.steps[n] = Step::forward_input;
    }
  }
  return plan;
}

}  // namespace kiln::nn
