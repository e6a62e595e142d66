#pragma once
#include <array>
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

struct SeparableConv2DOptions {
  std::array<int64_t, 2> strides{1, 1};
  std::string padding = "valid";  // or "same"
  std::array<int64_t, 2> dilation_rate{1, 1};
  int64_t depth_multiplier = 1;
  bool use_bias = true;
  std::string depthwise_initializer = "glorot_uniform";
  std::string pointwise_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
};

// keras.layers.SeparableConv2D on NHWC input: a depthwise convolution (weights
// "depthwise_kernel" [KH, KW, C, depth_multiplier]; strides, padding and dilation apply here)
// then a 1x1 convolution ("pointwise_kernel" [1, 1, C * depth_multiplier, filters], "bias"
// [filters]) with the activation, a ReLU fused.
Layer SeparableConv2D(int64_t filters, std::array<int64_t, 2> kernel_size, const std::string& activation = "",
                      const SeparableConv2DOptions& options = {}, const std::string& name = "");
Layer SeparableConv2D(int64_t filters, int64_t kernel_size, const std::string& activation = "",
                      const SeparableConv2DOptions& options = {}, const std::string& name = "");

}  // namespace kiln::nn
