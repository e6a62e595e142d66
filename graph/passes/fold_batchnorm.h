#pragma once
#include "graph/graph.h"

namespace kiln::graph::passes {

// Folds an inference BatchNormalization into the Conv2D or Dense before it:
//   bn(conv(x, w) + b) = conv(x, w * s) + (b - mean) * s + beta,  s = gamma / sqrt(var + eps)
// per output channel, computed in double. Applies when the conv/dense has constant weights,
// no fused activation, and the batch norm (with constant parameters) is the only reader of
// its output; the batch norm's fused ReLU becomes the conv's. The folded weights are literal
// constants (the model's variables keep their values).
graph::Graph fold_batchnorm(const graph::Graph& g);

}  // namespace kiln::graph::passes
