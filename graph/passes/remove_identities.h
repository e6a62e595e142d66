#pragma once
#include "graph/graph.h"

namespace kiln::graph::passes {

// Drops nodes that return their input unchanged: identity (stop_gradient, Dropout at
// inference), contiguous, a cast to the same dtype, affine(1, 0), a reshape or broadcast_to
// to the input's own shape. Readers of such a node's output read its input instead.
graph::Graph remove_identities(const graph::Graph& g);

}  // namespace kiln::graph::passes
