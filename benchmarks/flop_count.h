#pragma once
// FLOPs of a training step counted from a model's graph, for the percent-of-peak columns of
// //benchmarks:compare. Counted are the multiply-adds of the GEMM-class ops (matmul, linear,
// conv2d and their fused and int8 forms, scaled_dot_product_attention's two products, and the
// recurrent ops' input and state products), 2 FLOPs each, which is where a step's arithmetic is
// and what the machine's peak (benchmarks/peak_flops.cc) is measured on; element-wise ops,
// normalization, pooling and the optimizer update are left out (under 2% of ResNet-18's).
#include <cstdint>

#include "graph/graph.h"

namespace kiln::bench {

struct StepFlops {
  double forward = 0;
  // The backward pass: each GEMM-class op computes the gradient of every input that needs one
  // (an input computed from a variable), each costing as much as the forward op: the kernel's
  // gradient always, the data gradient except where the data comes from the graph's inputs.
  // Attention's backward is twice its forward; a recurrent op's adds the state's gradient
  // through the recurrent kernel at every step.
  double backward = 0;
  double training() const { return forward + backward; }
};

// For one batch of `batch` samples through the graph (its symbolic batch dimension set to it).
// Throws std::invalid_argument for a batch < 1.
StepFlops count_step_flops(const graph::Graph& g, int64_t batch);

}  // namespace kiln::bench
