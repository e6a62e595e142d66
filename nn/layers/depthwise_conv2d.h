#pragma once
#include <array>
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

struct DepthwiseConv2DOptions {
  std::array<int64_t, 2> strides{1, 1};
  std::string padding = "valid";  // or "same"
  int64_t depth_multiplier = 1;
  std::array<int64_t, 2> dilation_rate{1, 1};
  bool use_bias = true;
  std::string depthwise_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
};

// keras.layers.DepthwiseConv2D on NHWC input: weights "kernel" [KH, KW, C, depth_multiplier]
// (Keras 3 names it kernel; Keras 2 named it depthwise_kernel) and "bias" [C *
// depth_multiplier]; output channel c * depth_multiplier + m reads input channel c. Runs as a
// grouped conv2d (groups = C; tensor/ops/conv.h depthwise_conv2d), with a ReLU fused.
Layer DepthwiseConv2D(std::array<int64_t, 2> kernel_size, const std::string& activation = "",
                      const DepthwiseConv2DOptions& options = {}, const std::string& name = "");
Layer DepthwiseConv2D(int64_t kernel_size, const std::string& activation = "",
                      const DepthwiseConv2DOptions& options = {}, const std::string& name = "");

}  // namespace kiln::nn
