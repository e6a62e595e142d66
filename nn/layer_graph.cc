#include "nn/layer_graph.h"

#include <set>
#include <stdexcept>
#include <unordered_map>

namespace kiln::nn {

std::vector<Layer> LayerGraph::layers() const {
  std::vector<Layer> out;
  std::set<const LayerImpl*> seen;
  for (const Node& n : nodes) {
    if (n.layer.defined() && seen.insert(n.layer.ptr().get()).second) out.push_back(n.layer);
  }
  return out;
}

LayerGraph LayerGraph::from_symbolic(const std::vector<SymbolicTensor>& inputs,
                                     const std::vector<SymbolicTensor>& outputs, const std::string& model_name) {
  using SNode = SymbolicTensor::Node;
  LayerGraph g;
  std::unordered_map<const SNode*, size_t> index;
  auto add = [&](const SNode* s, std::vector<Ref> inbound) {
    index[s] = g.nodes.size();
    g.nodes.push_back({s->layer, std::move(inbound), s->outputs[0].shape, s->outputs[0].dtype, s->outputs.size()});
  };
  for (const SymbolicTensor& in : inputs) {
    if (!in.node()) throw std::invalid_argument("Model '" + model_name + "': an input is an empty symbolic tensor");
    if (in.node()->layer.defined()) throw std::invalid_argument("Model '" + model_name + "': inputs must come from Input()");
    if (index.count(in.node().get())) throw std::invalid_argument("Model '" + model_name + "': an Input() is listed twice");
    g.inputs.push_back(g.nodes.size());
    add(in.node().get(), {});
  }
  // Depth-first from each output, children in argument order, a node after its children: the
  // order the recursive walk of earlier versions produced, kept with an explicit stack so that
  // a long chain from a file cannot overflow the call stack.
  for (const SymbolicTensor& out : outputs) {
    if (!out.node()) throw std::invalid_argument("Model '" + model_name + "': an output is an empty symbolic tensor");
    std::vector<std::pair<const SNode*, size_t>> stack{{out.node().get(), 0}};
    while (!stack.empty()) {
      auto& [s, next] = stack.back();
      if (next == 0 && index.count(s)) {
        stack.pop_back();
        continue;
      }
      if (!s->layer.defined()) {
        throw std::invalid_argument("Model '" + model_name +
                                    "': an output depends on an Input() not listed in the model's inputs");
      }
      if (next < s->inputs.size()) {
        const SNode* child = s->inputs[next++].node().get();
        if (!index.count(child)) stack.push_back({child, 0});
        continue;
      }
      std::vector<Ref> inbound;
      for (const SymbolicTensor& in : s->inputs) inbound.push_back({index.at(in.node().get()), in.output_index()});
      const SNode* done = s;
      stack.pop_back();
      add(done, std::move(inbound));
    }
    g.outputs.push_back({index.at(out.node().get()), out.output_index()});
  }
  return g;
}

FusedPlan FusedPlan::plain(const LayerGraph& graph) {
  FusedPlan p;
  for (size_t i = 0; i < graph.nodes.size(); ++i) p.steps.push_back(graph.is_input(i) ? Step::input : Step::run);
  return p;
}

std::vector<MaskedTensor> run_layer_graph_masked(const LayerGraph& graph, const FusedPlan& plan,
                                                 const std::vector<MaskedTensor>& inputs, bool training) {
  if (plan.steps.size() != graph.nodes.size() || inputs.size() != graph.inputs.size()) {
    throw std::logic_error("run_layer_graph: the plan or the inputs do not fit the graph");
  }
  // Each node's outputs (one but for layers with several).
  std::vector<std::vector<MaskedTensor>> values(graph.nodes.size());
  for (size_t i = 0; i < inputs.size(); ++i) values[graph.inputs[i]] = {inputs[i]};
  auto value = [&](const LayerGraph::Ref& r) -> const MaskedTensor& { return values[r.node].at(r.output); };
  std::vector<Tensor> args, masks;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    const LayerGraph::Node& node = graph.nodes[n];
    switch (plan.steps[n]) {
      case FusedPlan::Step::input:
        break;
      case FusedPlan::Step::forward_input:
        values[n] = {value(node.inbound[0])};
        break;
      case FusedPlan::Step::run:
      case FusedPlan::Step::run_with_relu: {
        args.clear();
        masks.clear();
        for (const LayerGraph::Ref& in : node.inbound) {
          args.push_back(value(in).value);
          masks.push_back(value(in).mask);
        }
        if (plan.steps[n] == FusedPlan::Step::run_with_relu) {
          values[n] = {node.layer.impl().invoke_masked(args, masks, training, /*with_relu=*/true)};
        } else {
          values[n] = node.layer.impl().invoke_outputs(args, masks, training);
        }
        break;
      }
    }
  }
  std::vector<MaskedTensor> outs;
  for (const LayerGraph::Ref& o : graph.outputs) outs.push_back(value(o));
  return outs;
}

std::vector<Tensor> run_layer_graph(const LayerGraph& graph, const FusedPlan& plan, const std::vector<Tensor>& inputs,
                                    bool training) {
  std::vector<MaskedTensor> masked;
  masked.reserve(inputs.size());
  for (const Tensor& t : inputs) masked.push_back({t, Tensor()});
  std::vector<MaskedTensor> outs = run_layer_graph_masked(graph, plan, masked, training);
  std::vector<Tensor> values;
  values.reserve(outs.size());
  for (MaskedTensor& o : outs) values.push_back(std::move(o.value));
  return values;
}

}  // namespace kiln::nn
