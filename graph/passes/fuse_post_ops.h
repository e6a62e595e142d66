#pragma once
#include "graph/graph.h"

namespace kiln::graph::passes {

// Turns a conv2d or linear (constant weights) and the nodes after it that oneDNN can apply as
// post-ops into one fused_conv2d / fused_linear node (tensor/ops/fused.h):
//   conv -> [add or add_relu with a same-shaped residual] -> [relu | gelu_erf | gelu_tanh]
// Each absorbed node must be the only reader of the value before it. The fused node takes the
// place of the last absorbed node, so the residual is always computed before it.
graph::Graph fuse_post_ops(const graph::Graph& g);

}  // namespace kiln::graph::passes
