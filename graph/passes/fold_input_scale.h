#pragma once
#include "graph/graph.h"

namespace kiln::graph::passes {

// Moves a scale into the weights that read it: affine(x, alpha, 0) (Keras's Rescaling)
// whose only reader is a conv2d / linear (possibly through one reshape, as Flatten before a
// Dense) with constant f32 weights becomes conv(x, alpha * w): one pass over the data fewer.
graph::Graph fold_input_scale(const graph::Graph& g);

}  // namespace kiln::graph::passes
