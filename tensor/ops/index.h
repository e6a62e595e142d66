#pragma once
#include "tensor/tensor.h"

namespace kiln {

// labels: integer tensor [...] with values in [0, depth) -> f32 [..., depth]; not differentiable.
// Throws naming the offending label when one is out of range.
Tensor one_hot(const Tensor& labels, int64_t depth, DType dtype = DType::f32);

}  // namespace kiln
