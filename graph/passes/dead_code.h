#pragma once
#include "graph/graph.h"

namespace kiln::graph {

// Drops nodes and constants that do not reach an output (trace() runs it; so do the passes).
Graph eliminate_dead_code(const Graph& graph);

}  // namespace kiln::graph
