#include "graph/passes/graph_edit.h"

#include <stdexcept>

namespace kiln::graph::passes {

std::vector<int> use_counts(const graph::Graph& g) {
  std::vector<int> uses(g.values.size(), 0);
  for (const graph::Node& n : g.nodes) {
    for (int i : n.inputs) ++uses[i];
  }
  for (int o : g.outputs) ++uses[o];
  return uses;
}

int sole_consumer(const graph::Graph& g, const std::vector<int>& uses, int value) {
  if (uses[value] != 1) return -1;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    for (int i : g.nodes[k].inputs) {
      if (i == value) return static_cast<int>(k);
    }
  }
  return -1;  // the one use is a graph output
}

const Tensor* constant_tensor(const graph::Graph& g, int value) {
  const graph::Constant* c = g.constant_for(value);
  return c ? &c->tensor : nullptr;
}

int add_literal(graph::Graph& g, const std::string& name, const Tensor& tensor) {
  g.values.push_back({name, tensor.shape(), tensor.dtype()});
  int index = static_cast<int>(g.values.size()) - 1;
  g.constants.push_back({index, /*is_variable=*/false, tensor});
  return index;
}

void replace_uses(graph::Graph& g, int from, int to) {
  for (graph::Node& n : g.nodes) {
    for (int& i : n.inputs) {
      if (i == from) i = to;
    }
  }
  for (int& o : g.outputs) {
    if (o == from) o = to;
  }
}

void erase_nodes(graph::Graph& g, const std::vector<bool>& erase) {
  std::vector<graph::Node> kept;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    if (!erase[k]) kept.push_back(std::move(g.nodes[k]));
  }
  g.nodes = std::move(kept);
}

graph::Graph validated_result(const char* pass, graph::Graph g) {
  try {
    g.validate();
  } catch (const std::invalid_argument& e) {
    throw std::logic_error(std::string(pass) + " made an invalid graph from a valid one: " + e.what());
  }
  return g;
}

}  // namespace kiln::graph::passes
