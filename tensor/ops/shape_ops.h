#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace kiln {

// Views share storage with their input when the layout allows and copy otherwise; all are
// differentiable.
Tensor reshape(const Tensor& x, Shape shape);  // one dimension may be -1
Tensor flatten(const Tensor& x, int start_axis = 1);  // [N, ...] -> [N, prod(...)]
Tensor permute(const Tensor& x, const std::vector<int>& perm);
Tensor transpose(const Tensor& x, int axis_a = -2, int axis_b = -1);
Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end, int64_t step = 1);
Tensor squeeze(const Tensor& x, int axis);
Tensor expand_dims(const Tensor& x, int axis);
Tensor contiguous(const Tensor& x);
Tensor broadcast_to(const Tensor& x, const Shape& shape);
Tensor concat(const std::vector<Tensor>& xs, int axis);
// Identity in the forward pass; blocks gradients (tf.stop_gradient).
Tensor stop_gradient(const Tensor& x);

}  // namespace kiln
