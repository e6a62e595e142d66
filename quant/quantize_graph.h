#pragma once
#include <map>
#include <set>
#include <vector>

#include "graph/graph.h"

namespace kiln::quant {

// How one activation value is stored in int8: symmetric (zero point 0), u8 when it cannot be
// negative (after ReLU), s8 otherwise.
struct ActivationQuant {
  DType dtype = DType::s8;
  float scale = 1.f;
};

struct QuantizeGraphOptions {
  std::set<int> keep_float;  // node indices of the input graph to leave in float
};

// The nodes quantize_graph() turns into int8 ones: conv2d / fused_conv2d / linear /
// fused_linear with constant f32 weights (and bias) on f32 data.
std::vector<int> quantizable_nodes(const graph::Graph& g);

// Static post-training quantization of an optimized f32 inference graph (BatchNorm folded,
// bias/ReLU/GELU/residual fused: graph/passes). Every quantizable node whose input,
// output (and residual) have an entry in `activations` becomes a qconv2d / qlinear with s8
// weights (symmetric, one scale per output channel). Data stays int8 between int8 layers and
// through max pooling and reshapes; quantize_linear / dequantize_linear appear only at the
// boundaries with float ops. A layer whose readers are all float writes f32 directly.
graph::Graph quantize_graph(const graph::Graph& g, const std::map<int, ActivationQuant>& activations,
                            const QuantizeGraphOptions& options = {});

}  // namespace kiln::quant
