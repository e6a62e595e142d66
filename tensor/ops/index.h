#pragma once
#include "tensor/tensor.h"

namespace kiln {

// labels: a tensor of any integer dtype, shape [...], values in [0, depth) -> [..., depth] in
// dtype (built in f32, then converted; 0 and 1 are exact in every dtype). Not differentiable.
// Throws for floating labels, and names the offending label when one is out of range.
Tensor one_hot(const Tensor& labels, int64_t depth, DType dtype = DType::f32);

}  // namespace kiln
