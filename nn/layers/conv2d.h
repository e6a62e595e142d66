#pragma once
#include <array>
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

struct Conv2DOptions {
  std::array<int64_t, 2> strides{1, 1};
  std::string padding = "valid";  // or "same"
  std::array<int64_t, 2> dilation_rate{1, 1};
  int64_t groups = 1;
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
};

// keras.layers.Conv2D on NHWC input with an HWIO kernel; a ReLU is fused into the oneDNN
// convolution.
Layer Conv2D(int64_t filters, std::array<int64_t, 2> kernel_size, const std::string& activation = "",
             const Conv2DOptions& options = {}, const std::string& name = "");
Layer Conv2D(int64_t filters, int64_t kernel_size, const std::string& activation = "",
             const Conv2DOptions& options = {}, const std::string& name = "");

}  // namespace kiln::nn
