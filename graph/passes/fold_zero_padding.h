#pragma once
#include "graph/graph.h"

namespace kiln::graph::passes {

// Folds zero padding of H and W (a pad node with constant 0, what ZeroPadding2D traces to, or
// the concatenation with literal zero blocks it traced to before) into the explicit pads of the
// convolution or pooling that alone reads it, so the padded copy is never made.
//   conv2d, fused_conv2d: always (a convolution's padding is zeros).
//   max_pool2d: only when the padded value is provably non-negative (it comes out of a ReLU,
//     a ReLU epilogue, or an op whose results are >= 0), and each pad stays below the pool
//     size. Max pooling's own padding is ignored, not zero, so zeros around negative values
//     would change the maximum.
//   avg_pool2d: never: its padding is left out of the count (count_include_pad=0), the zeros
//     of ZeroPadding2D are counted.
graph::Graph fold_zero_padding(const graph::Graph& g);

}  // namespace kiln::graph::passes
