#pragma once
#include "graph/graph.h"

namespace kiln::graph::passes {

// Evaluates every node whose inputs are all constants (a cast of a weight to bf16, a
// transpose of a kernel, ...) once, and turns its outputs into literal constants.
graph::Graph fold_constants(const graph::Graph& g);

}  // namespace kiln::graph::passes
