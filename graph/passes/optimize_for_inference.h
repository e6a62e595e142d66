#pragma once
#include "graph/graph.h"

namespace kiln::graph::passes {

// The passes InferenceModel runs, in order: dead code, identities, constant folding,
// BatchNorm folding, post-op fusion, input-scale folding, dead code again.
graph::Graph optimize_for_inference(const graph::Graph& g);

}  // namespace kiln::graph::passes
