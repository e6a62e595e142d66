#pragma once
#include <string>
#include <vector>

#include "graph/graph.h"

namespace kiln::graph::passes {

// Small edits the passes share.

// For each value: how many node inputs and graph outputs read it.
std::vector<int> use_counts(const graph::Graph& g);
// The node index that reads `value` when exactly one node reads it and it is not a graph
// output; -1 otherwise.
int sole_consumer(const graph::Graph& g, const std::vector<int>& uses, int value);
// The constant's tensor, or nullptr when `value` is not a constant.
const Tensor* constant_tensor(const graph::Graph& g, int value);
// Adds a literal constant (not a model variable) and returns its value index.
int add_literal(graph::Graph& g, const std::string& name, const Tensor& tensor);
// Every node input and graph output reading `from` reads `to` instead.
void replace_uses(graph::Graph& g, int from, int to);
// A pass's result after Graph::validate: every pass ends with it. Passes take valid graphs
// (InferenceModel and the loaders validate), so an invalid result is the pass's own bug,
// thrown as std::logic_error naming the pass. It costs one inference walk over the nodes
// (benchmarks/graph_validate_bench measures it against the passes themselves).
graph::Graph validated_result(const char* pass, graph::Graph g);
// Drops the nodes whose flag is set, keeping the order of the rest.
void erase_nodes(graph::Graph& g, const std::vector<bool>& erase);

}  // namespace kiln::graph::passes
