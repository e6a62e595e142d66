#pragma once
#include <array>

#include "tensor/ops/conv.h"
#include "tensor/tensor.h"

namespace kiln {

struct Pool2dOptions {
  std::array<int64_t, 2> pool_size{2, 2};
  std::array<int64_t, 2> strides{0, 0};  // 0: equal to pool_size (Keras default)
  Padding padding = Padding::valid;
};

// NHWC pooling. Average pooling with 'same' padding excludes padded cells (as Keras does).
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options = {});
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options = {});
// [N, H, W, C] -> [N, C] (or [N, 1, 1, C] with keepdims).
Tensor global_avg_pool2d(const Tensor& x, bool keepdims = false);

}  // namespace kiln
