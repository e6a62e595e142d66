#pragma once
#include "graph/graph.h"

namespace kiln::quant {

// ONNX files spell a Dense layer on a rank > 2 value (a transformer's projections and MLP,
// ConvNeXt's pointwise layers) as MatMul(x, W) with a constant 2-D W, then Add(bias), which
// the importer writes as Kiln's matmul and add. Both are linear's math (x[..., K] @ W[K, N] +
// b[N]), so each such matmul becomes a linear, taking the Add's constant [N] (or [1, ..., N])
// as its bias when the Add is its only reader; quantize_graph then makes it a qlinear. Matmuls
// of two computed values (attention's Q @ K^T) are left alone.
graph::Graph dense_matmuls_as_linear(const graph::Graph& g);

}  // namespace kiln::quant
