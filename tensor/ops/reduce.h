#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace kiln {

// Reduce over axes (empty: all axes). Negative axes count from the end.
Tensor reduce_sum(const Tensor& x, const std::vector<int>& axes = {}, bool keepdims = false);
Tensor reduce_mean(const Tensor& x, const std::vector<int>& axes = {}, bool keepdims = false);
Tensor reduce_max(const Tensor& x, const std::vector<int>& axes = {}, bool keepdims = false);
// Sums a broadcast gradient back to shape (the reverse of NumPy broadcasting).
Tensor sum_to_shape(const Tensor& x, const Shape& shape);
// Index of the largest value along axis, as s32; not differentiable.
Tensor argmax(const Tensor& x, int axis = -1);

}  // namespace kiln
