#pragma once
#include <array>
#include <string>

#include "tensor/ops/matmul.h"
#include "tensor/tensor.h"

namespace kiln {

enum class Padding { valid, same };
Padding padding_from_name(const std::string& name);  // "valid" or "same"

struct Conv2dOptions {
  std::array<int64_t, 2> strides{1, 1};
  Padding padding = Padding::valid;
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
  FusedActivation activation = FusedActivation::none;
};

// x: NHWC [N, H, W, C]; w: HWIO [KH, KW, C / groups, O] (Keras layout); bias: [O] or undefined.
// Returns NHWC [N, OH, OW, O] in x's dtype. w may be f32 when x is bf16 (mixed precision): the
// weights are converted while being reordered for oneDNN, and their gradient comes back in f32.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& options = {});

// Keras/TensorFlow padding arithmetic for one spatial dimension.
struct SpatialPlan {
  int64_t out = 0, pad_before = 0, pad_after = 0;
};
SpatialPlan plan_spatial(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, Padding padding,
                         const char* op, const std::string& shapes_for_error);

}  // namespace kiln
