#pragma once
#include <array>
#include <optional>
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

struct Conv2DTransposeOptions {
  std::array<int64_t, 2> strides{1, 1};
  std::string padding = "valid";  // or "same"
  // Keras's None (the default): the padding decides the output size. Each value below its stride.
  std::optional<std::array<int64_t, 2>> output_padding;
  std::array<int64_t, 2> dilation_rate{1, 1};
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
};

// keras.layers.Conv2DTranspose on NHWC input, with Keras's kernel layout
// [kernel_h, kernel_w, filters, input channels] and output size (tensor/ops/conv_transpose.h).
Layer Conv2DTranspose(int64_t filters, std::array<int64_t, 2> kernel_size, const std::string& activation = "",
                      const Conv2DTransposeOptions& options = {}, const std::string& name = "");
Layer Conv2DTranspose(int64_t filters, int64_t kernel_size, const std::string& activation = "",
                      const Conv2DTransposeOptions& options = {}, const std::string& name = "");

}  // namespace kiln::nn
